// Counter-based dropout masks: one 64-bit SplitMix hash per 4 elements, 16 bits each.
#include "CKernels.h"
#include "internal.h"

PK_INLINE uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// True when element i is kept.
PK_INLINE int kept(uint64_t key, size_t i, uint32_t threshold) {
    uint64_t h = mix64(key + 0x9E3779B97F4A7C15ull * (uint64_t)(i >> 2));
    uint32_t draw = (uint32_t)(h >> (16 * (i & 3))) & 0xffffu;
    return draw >= threshold;
}

PK_INLINE void dropout_body(const float *x, float *out, size_t n, uint64_t key, float p, float scale, size_t offset) {
    uint32_t threshold = (uint32_t)(p * 65536.0f);
    for (size_t i = 0; i < n; i++) out[i] = kept(key, offset + i, threshold) ? x[i] * scale : 0.0f;
}
PK_TIERED_VOID(dropout, (const float *x, float *out, size_t n, uint64_t key, float p, float scale, size_t offset),
               (x, out, n, key, p, scale, offset))

PK_INLINE void dropout_backward_add_body(const float *g, float *dx, size_t n, uint64_t key, float p, float scale,
                                         size_t offset) {
    uint32_t threshold = (uint32_t)(p * 65536.0f);
    for (size_t i = 0; i < n; i++)
        if (kept(key, offset + i, threshold)) dx[i] += g[i] * scale;
}
PK_TIERED_VOID(dropout_backward_add, (const float *g, float *dx, size_t n, uint64_t key, float p, float scale,
                                      size_t offset), (g, dx, n, key, p, scale, offset))
