// The engine's worker threads. Decoding makes a few hundred short parallel calls per token, so waking sleeping
// threads for each (tens of microseconds apiece) would cost as much as the work: workers spin briefly on a
// generation counter after each call and only then sleep on a condition variable.
#include "CKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#include <time.h>

// A worker spins this long after a job before it sleeps: longer than the serial gaps between decoding's parallel
// calls, short enough not to steal a core from oneDNN's threads during long GEMMs.
static const long SPIN_NANOSECONDS = 50000;

static long elapsed_ns(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

static struct {
    pthread_mutex_t lock;         // held by the one caller running a job; others run theirs inline
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    _Atomic uint64_t generation;  // bumped once per job
    _Atomic int sleepers;
    // (chunks << 32) | next chunk: one atomic, so a late worker never pairs a chunk number with another job's count.
    _Atomic uint64_t ticket;
    _Atomic size_t done;          // chunks finished
    pk_task_fn fn;
    void *ctx;
    int workers;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static _Thread_local int inside_job;
static pthread_once_t started = PTHREAD_ONCE_INIT;
static int wanted_workers;

static void take_chunks(void) {
    for (;;) {
        const uint64_t t = atomic_fetch_add_explicit(&pool.ticket, 1, memory_order_acq_rel);
        const size_t c = (size_t)(t & 0xffffffffu);
        if (c >= (size_t)(t >> 32)) return;
        pool.fn(pool.ctx, c);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_acq_rel);
    }
}

static void *worker(void *arg) {
    (void)arg;
    inside_job = 1;
    uint64_t seen = atomic_load(&pool.generation);
    for (;;) {
        uint64_t g;
        struct timespec since;
        clock_gettime(CLOCK_MONOTONIC, &since);
        for (unsigned spins = 1; (g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen; spins++) {
            CPU_RELAX();
            if (spins % 64 == 0 && elapsed_ns(&since) > SPIN_NANOSECONDS) break;
        }
        if (g == seen) {
            pthread_mutex_lock(&pool.sleep_lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((g = atomic_load(&pool.generation)) == seen) pthread_cond_wait(&pool.wake, &pool.sleep_lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.sleep_lock);
        }
        seen = g;
        take_chunks();
    }
    return NULL;
}

static void start_workers(void) {
    for (int i = 0; i < wanted_workers; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 8 << 20);
        if (pthread_create(&t, &attr, worker, NULL) == 0) {
            pthread_detach(t);
            pool.workers++;
        }
        pthread_attr_destroy(&attr);
    }
}

void pk_pool_run(int threads, size_t chunks, pk_task_fn fn, void *ctx) {
    if (chunks == 0) return;
    // Nested calls, calls while another thread's job runs, and single chunks run inline.
    if (chunks == 1 || threads <= 1 || chunks > 0xffffffffu || inside_job || pthread_mutex_trylock(&pool.lock) != 0) {
        for (size_t c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    wanted_workers = threads - 1;
    pthread_once(&started, start_workers);
    if (pool.workers == 0) {
        pthread_mutex_unlock(&pool.lock);
        for (size_t c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.done, 0);
    atomic_store(&pool.ticket, (uint64_t)chunks << 32);
    atomic_fetch_add(&pool.generation, 1);   // publishes the job (sequentially consistent)
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.sleep_lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep_lock);
    }
    inside_job = 1;
    take_chunks();
    inside_job = 0;
    while (atomic_load_explicit(&pool.done, memory_order_acquire) < chunks) CPU_RELAX();
    pthread_mutex_unlock(&pool.lock);
}
