// GFLOP/s of the built-in f32 GEMM (on the CPU tier in use, column ranges on the worker threads as Gemm.multiply
// runs it) against oneDNN's f32 matmul primitive (when libdnnl.so.2 is installed), on the training shapes of the
// Qwen2.5-0.5B and Qwen1.5-1.8B benchmarks. Built and run by scripts/bench.py gemm.
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { int ta, tb; size_t m, n, k; const float *a, *b; float *c; } job;

static void run_cols(void *ctx, size_t chunk) {
    job *j = ctx;
    size_t blocks = (j->n + 31) / 32, per = (blocks + 1) / 2;
    size_t c0 = chunk * per * 32, c1 = (chunk + 1) * per * 32;
    if (c1 > j->n) c1 = j->n;
    if (c0 >= c1) return;
    pk_sgemm(j->ta, j->tb, j->m, j->n, j->k, 1.0f, j->a, j->ta ? j->m : j->k, j->b, j->tb ? j->k : j->n, 0, j->c, j->n, c0, c1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    // (m, n, k, transA, transB): forward x W^T, input gradient dy W, and weight-gradient-like products.
    const size_t shapes[][5] = {{512, 896, 896, 0, 1}, {512, 4864, 896, 0, 1}, {512, 896, 4864, 0, 1},
                                {512, 896, 4864, 0, 0}, {512, 2048, 2048, 0, 1}, {512, 5504, 2048, 0, 1}};
    printf("{\"tier\": \"%s\", \"features\": \"%s\", \"onednn\": \"%s\", \"shapes\": [", pk_cpu_tier_name(pk_tier()),
           pk_cpu_features(), pk_dnnl_available() ? pk_dnnl_version() : "");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        int ta = (int)shapes[s][3], tb = (int)shapes[s][4];
        float *a = malloc(m * k * 4), *b = malloc(n * k * 4), *c = malloc(m * n * 4);
        for (size_t i = 0; i < m * k; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < n * k; i++) b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        const double flop = 2.0 * m * n * k;
        job j = {ta, tb, m, n, k, a, b, c};
        double best_builtin = 1e9, best_dnnl = 1e9;
        pk_pool_run(threads, 2, run_cols, &j);   // warm-up: worker threads started, caches and pages touched
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            pk_pool_run(threads, 2, run_cols, &j);
            double t = now() - t0;
            if (t < best_builtin) best_builtin = t;
        }
        void *p = pk_dnnl_available() ? pk_dnnl_matmul_create(m, n, k, ta ? m : k, tb ? k : n, n, ta, tb, 1.0f, 0, 0) : NULL;
        if (p) {
            pk_dnnl_matmul_execute(p, a, b, c);   // warm-up
            for (int rep = 0; rep < 5; rep++) {
                double t0 = now();
                pk_dnnl_matmul_execute(p, a, b, c);
                double t = now() - t0;
                if (t < best_dnnl) best_dnnl = t;
            }
            pk_dnnl_matmul_destroy(p);
        }
        printf("%s{\"m\": %zu, \"n\": %zu, \"k\": %zu, \"trans_b\": %d, \"builtin_gflops\": %.1f, \"onednn_gflops\": %.1f}",
               s ? ", " : "", m, n, k, tb, flop / best_builtin / 1e9, p ? flop / best_dnnl / 1e9 : 0.0);
        free(a); free(b); free(c);
    }
    printf("]}\n");
    return 0;
}
