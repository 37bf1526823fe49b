// Memory read bandwidth of this machine, as decoding sees it: T threads each summing its half of a 1 GiB buffer
// (far beyond the caches), best of 5 passes. Prints GB/s. Built and run by scripts/bench.py generate.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const double *p; size_t n; double sum; } part;

static void *reader(void *arg) {
    part *q = arg;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= q->n; i += 4) { s0 += q->p[i]; s1 += q->p[i + 1]; s2 += q->p[i + 2]; s3 += q->p[i + 3]; }
    q->sum = s0 + s1 + s2 + s3;
    return NULL;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const size_t bytes = (size_t)1 << 30, n = bytes / sizeof(double);
    double *buf = malloc(bytes);
    if (!buf) return 1;
    memset(buf, 1, bytes);
    double best = 1e9, total = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[64];
        part parts[64];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int t = 0; t < threads; t++) {
            parts[t] = (part){buf + n / threads * t, n / threads, 0};
            pthread_create(&th[t], NULL, reader, &parts[t]);
        }
        for (int t = 0; t < threads; t++) { pthread_join(th[t], NULL); total += parts[t].sum; }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (s < best) best = s;
    }
    printf("{\"read_gb_per_second\": %.2f, \"threads\": %d, \"checksum\": %.0f}\n", bytes / best / 1e9, threads, total);
    free(buf);
    return 0;
}
