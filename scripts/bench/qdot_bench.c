// Single-thread speed of the quantized matrix-vector products that decoding runs: ours (pk_packed_gemv_q8x on the
// layout peft keeps in memory, activations quantized as peft quantizes them) against llama.cpp's vec_dot for the same
// GGML type (libggml-cpu, loaded at run time; its activations quantized by its own from_float), on the same weights.
// Three shapes: a matrix that stays in L2 (kernel-bound), and eight stacked copies of each FFN shape of a 1.5B model
// (well over any L3 cache: bound by the memory's bandwidth, as decoding a whole model is).
// Built and run by scripts/bench.py qdot; prints one JSON object.
//
//   qdot_bench LIBGGML_CPU_SO LIBGGML_BASE_SO TYPE...
#include "CKernels.h"
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*from_float_t)(const float *, void *, int64_t);
typedef void (*vec_dot_t)(int, float *, size_t, const void *, size_t, const void *, size_t, int);
typedef struct { from_float_t from_float; vec_dot_t vec_dot; int vec_dot_type; int64_t nrows; } traits_cpu;
typedef const traits_cpu *(*get_traits_t)(int);
typedef size_t (*quantize_chunk_t)(int, const float *, void *, int64_t, int64_t, int64_t, const float *);
typedef size_t (*row_size_t)(int, int64_t);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static const struct { const char *name; int type; } types[] = {
    {"q4_0", 2}, {"q4_1", 3}, {"q5_0", 6}, {"q5_1", 7}, {"q8_0", 8}, {"q2_k", 10}, {"q3_k", 11},
    {"q4_k", 12}, {"q5_k", 13}, {"q6_k", 14}, {"iq4_nl", 20}, {"iq4_xs", 23}};

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: qdot_bench LIBGGML_CPU_SO LIBGGML_BASE_SO TYPE...\n");
        return 2;
    }
    void *cpu = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL), *base = dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL);
    if (!cpu || !base) {
        fprintf(stderr, "cannot load libggml: %s\n", dlerror());
        return 2;
    }
    void (*cpu_init)(void) = (void (*)(void))dlsym(cpu, "ggml_cpu_init");
    get_traits_t traits = (get_traits_t)dlsym(cpu, "ggml_get_type_traits_cpu");
    quantize_chunk_t quantize = (quantize_chunk_t)dlsym(base, "ggml_quantize_chunk");
    row_size_t row_size = (row_size_t)dlsym(base, "ggml_row_size");
    if (!cpu_init || !traits || !quantize || !row_size) {
        fprintf(stderr, "libggml lacks a symbol this bench needs\n");
        return 2;
    }
    cpu_init();
    const size_t shapes[3][2] = {{256, 1536}, {8 * 8960, 1536}, {8 * 1536, 8960}};   // (rows, k)
    printf("{\"tier\": \"%s\", \"results\": [", pk_cpu_tier_name(pk_tier()));
    int first = 1;
    for (int a = 3; a < argc; a++) {
        int type = -1;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            if (!strcmp(types[t].name, argv[a])) type = types[t].type;
        if (type < 0) {
            fprintf(stderr, "unknown type %s\n", argv[a]);
            return 2;
        }
        for (int s = 0; s < 3; s++) {
            const size_t rows = shapes[s][0], k = shapes[s][1];
            float *w = malloc(rows * k * sizeof(float)), *x = malloc(k * sizeof(float));
            uint32_t seed = 12345;
            for (size_t i = 0; i < rows * k; i++) {
                seed = seed * 1664525u + 1013904223u;
                w[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
            }
            for (size_t i = 0; i < k; i++) x[i] = sinf((float)i * 0.37f);
            const size_t rb = row_size(type, (int64_t)k);
            uint8_t *q = malloc(rows * rb);
            quantize(type, w, q, 0, (int64_t)rows, (int64_t)k, NULL);
            // ours: the in-memory layout, groups of 8 rows
            uint8_t *packed = malloc(pk_packed_bytes(type, rows, k));
            const size_t group_bytes = pk_packed_bytes(type, 8, k);
            for (size_t g = 0; g < (rows + 7) / 8; g++) {
                const uint8_t *r8[8];
                for (int r = 0; r < 8; r++) r8[r] = 8 * g + r < rows ? q + (8 * g + r) * rb : NULL;
                pk_pack_group(type, r8, k, packed + g * group_bytes);
            }
            int8_t *qx = malloc(k);
            float *dx = malloc(k / 32 * sizeof(float)), *y = malloc(rows * sizeof(float)), *yp = malloc(rows * sizeof(float));
            int32_t *sx = malloc(k / 32 * sizeof(int32_t));
            const traits_cpu *tr = traits(type), *vt = traits(tr->vec_dot_type);
            void *qy = malloc(row_size(tr->vec_dot_type, (int64_t)k));
            const int reps = s == 0 ? 2000 : 8;
            double best_ours = 1e9, best_peer = 1e9;
            for (int round = 0; round < 5; round++) {
                double t0 = now();
                for (int rep = 0; rep < reps; rep++) {
                    pk_quantize_activations_for(type, x, k, qx, dx, sx);
                    pk_packed_gemv_q8x(type, packed, rows, k, qx, dx, sx, y, rows, 1, 0, (rows + 7) / 8);
                }
                double t = (now() - t0) / reps;
                if (t < best_ours) best_ours = t;
                t0 = now();
                for (int rep = 0; rep < reps; rep++) {
                    vt->from_float(x, qy, (int64_t)k);
                    for (size_t r = 0; r < rows; r++) tr->vec_dot((int)k, yp + r, 0, q + r * rb, 0, qy, 0, 1);
                }
                t = (now() - t0) / reps;
                if (t < best_peer) best_peer = t;
            }
            // The two results agree to the activation quantization (both use 8-bit activations).
            double num = 0, den = 0;
            for (size_t r = 0; r < rows; r++) {
                num += (y[r] - yp[r]) * (y[r] - yp[r]);
                den += yp[r] * yp[r];
            }
            printf("%s{\"type\": \"%s\", \"rows\": %zu, \"k\": %zu, \"ours_us\": %.2f, \"llamacpp_us\": %.2f, "
                   "\"ratio\": %.3f, \"rel_diff\": %.2e}",
                   first ? "" : ", ", argv[a], rows, k, best_ours * 1e6, best_peer * 1e6, best_peer / best_ours,
                   sqrt(num / (den + 1e-30)));
            first = 0;
            fflush(stdout);
            free(w); free(x); free(q); free(packed); free(qx); free(dx); free(y); free(yp); free(sx); free(qy);
        }
    }
    printf("]}\n");
    return 0;
}
