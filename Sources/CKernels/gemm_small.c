// Small-M matrix products (prefill of short prompts, small batches) straight from f32 weights:
// 4 weight rows x 4 input rows per register tile, so each weight element loaded feeds 4 FMAs and each input
// element 4 more, without widening whole panels first.
#include <stdlib.h>
#include "CKernels.h"
#include "internal.h"

#if PK_X86
#define LOAD_W_F32(p, i) _mm512_loadu_ps((p) + (i))
#define MLOAD_W_F32(p, i, m) _mm512_maskz_loadu_ps((m), (p) + (i))

// One 4x4 tile: rows r..r+nr of W (nr <= 4) against inputs m..m+nm (nm <= 4).
#define TILE_BODY(WT, LOADW, MLOADW)                                                                           \
    {                                                                                                          \
        __m512 acc[4][4];                                                                                      \
        for (int a = 0; a < 4; a++)                                                                            \
            for (int b = 0; b < 4; b++) acc[a][b] = _mm512_setzero_ps();                                     \
        const WT *wr[4];                                                                                       \
        const float *xr[4];                                                                                    \
        for (int a = 0; a < 4; a++) wr[a] = w + (r + (a < nr ? a : 0)) * k;                                   \
        for (int b = 0; b < 4; b++) xr[b] = x + (m + (b < nm ? b : 0)) * ldx;                                 \
        size_t i = 0;                                                                                          \
        for (; i + 16 <= k; i += 16) {                                                                         \
            __m512 xv0 = _mm512_loadu_ps(xr[0] + i), xv1 = _mm512_loadu_ps(xr[1] + i);                        \
            __m512 xv2 = _mm512_loadu_ps(xr[2] + i), xv3 = _mm512_loadu_ps(xr[3] + i);                        \
            for (int a = 0; a < 4; a++) {                                                                      \
                __m512 wv = LOADW(wr[a], i);                                                                   \
                acc[a][0] = _mm512_fmadd_ps(wv, xv0, acc[a][0]);                                               \
                acc[a][1] = _mm512_fmadd_ps(wv, xv1, acc[a][1]);                                               \
                acc[a][2] = _mm512_fmadd_ps(wv, xv2, acc[a][2]);                                               \
                acc[a][3] = _mm512_fmadd_ps(wv, xv3, acc[a][3]);                                               \
            }                                                                                                  \
        }                                                                                                      \
        if (i < k) {                                                                                           \
            __mmask16 t = pk_tail_mask(k - i);                                                                 \
            __m512 xv0 = _mm512_maskz_loadu_ps(t, xr[0] + i), xv1 = _mm512_maskz_loadu_ps(t, xr[1] + i);      \
            __m512 xv2 = _mm512_maskz_loadu_ps(t, xr[2] + i), xv3 = _mm512_maskz_loadu_ps(t, xr[3] + i);      \
            for (int a = 0; a < 4; a++) {                                                                      \
                __m512 wv = MLOADW(wr[a], i, t);                                                               \
                acc[a][0] = _mm512_fmadd_ps(wv, xv0, acc[a][0]);                                               \
                acc[a][1] = _mm512_fmadd_ps(wv, xv1, acc[a][1]);                                               \
                acc[a][2] = _mm512_fmadd_ps(wv, xv2, acc[a][2]);                                               \
                acc[a][3] = _mm512_fmadd_ps(wv, xv3, acc[a][3]);                                               \
            }                                                                                                  \
        }                                                                                                      \
        for (size_t a = 0; a < nr; a++)                                                                        \
            for (size_t b = 0; b < nm; b++) y[(m + b) * ldy + r + a] = _mm512_reduce_add_ps(acc[a][b]);       \
    }

PK_AVX512 static void small_f32_avx512(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                                       size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 4) {
        size_t nr = r1 - r < 4 ? r1 - r : 4;
        for (size_t m = 0; m < m_count; m += 4) {
            size_t nm = m_count - m < 4 ? m_count - m : 4;
            TILE_BODY(float, LOAD_W_F32, MLOAD_W_F32)
        }
    }
}

// AVX2: tiles of 2 weight rows x 4 inputs (8 accumulators of 8 lanes; 16 registers in all).
PK_AVX2 static void small_f32_avx2(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                                   size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 2) {
        const size_t nr = r1 - r < 2 ? r1 - r : 2;
        for (size_t m = 0; m < m_count; m += 4) {
            const size_t nm = m_count - m < 4 ? m_count - m : 4;
            __m256 acc[2][4];
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 4; b++) acc[a][b] = _mm256_setzero_ps();
            const float *wr[2] = {w + r * k, w + (r + (nr > 1 ? 1 : 0)) * k};
            const float *xr[4];
            for (size_t b = 0; b < 4; b++) xr[b] = x + (m + (b < nm ? b : 0)) * ldx;
            size_t i = 0;
            for (; i + 8 <= k; i += 8) {
                const __m256 x0 = _mm256_loadu_ps(xr[0] + i), x1 = _mm256_loadu_ps(xr[1] + i);
                const __m256 x2 = _mm256_loadu_ps(xr[2] + i), x3 = _mm256_loadu_ps(xr[3] + i);
                for (int a = 0; a < 2; a++) {
                    const __m256 wv = _mm256_loadu_ps(wr[a] + i);
                    acc[a][0] = _mm256_fmadd_ps(wv, x0, acc[a][0]);
                    acc[a][1] = _mm256_fmadd_ps(wv, x1, acc[a][1]);
                    acc[a][2] = _mm256_fmadd_ps(wv, x2, acc[a][2]);
                    acc[a][3] = _mm256_fmadd_ps(wv, x3, acc[a][3]);
                }
            }
            for (size_t a = 0; a < nr; a++)
                for (size_t b = 0; b < nm; b++) {
                    float s = pk_hsum256(acc[a][b]);
                    for (size_t t = i; t < k; t++) s += wr[a][t] * xr[b][t];
                    y[(m + b) * ldy + r + a] = s;
                }
        }
    }
}
#endif

void pk_gemm_small_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                       size_t row_begin, size_t row_end) {
#if PK_X86
    if (pk_has_avx512()) { small_f32_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    if (pk_has_avx2()) { small_f32_avx2(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_gemm_small_f32(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
#endif
    pk_gemv_f32(w, k, x, ldx, y, ldy, m_count, row_begin, row_end);
}

// ---- bf16 x bf16 products for decoding ---------------------------------------------------------------
// Inputs rounded to bf16 (as llama.cpp does for bf16 weights), pairs of products accumulated in f32 by
// vdpbf16ps: twice the multiply rate of widening the weights to f32, which decides the speed of batched decoding.
// Every (input, weight row) accumulator runs the same instruction sequence whatever the tile it sits in, so an
// input's result does not depend on how many inputs are multiplied with it (batched decoding equals decoding alone).

#ifndef PREFETCH_ROWS
#define PREFETCH_ROWS 4
#endif
static void dot_bf16_scalar(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                            size_t m_count, size_t r0, size_t r1);

#if PK_X86
#define PK_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))

PK_AVX512BF16 static inline __attribute__((always_inline)) void
dot_tile_bf16(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy, size_t r, size_t nr,
              size_t m, const int NM) {
    __m512 acc[4][4];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < NM; b++) acc[a][b] = _mm512_setzero_ps();
    const uint16_t *wr[4];
    for (int a = 0; a < 4; a++) wr[a] = w + (r + ((size_t)a < nr ? (size_t)a : 0)) * k;
    const uint16_t *xr[4];
    for (int b = 0; b < NM; b++) xr[b] = x + (m + b) * ldx;
    size_t i = 0;
    for (; i + 32 <= k; i += 32) {
        __m512bh xv[4];
        for (int b = 0; b < NM; b++) xv[b] = (__m512bh)_mm512_loadu_si512(xr[b] + i);
        for (int a = 0; a < 4; a++) {
            __m512bh wv = (__m512bh)_mm512_loadu_si512(wr[a] + i);
            // The next tiles' rows, a line each: the stream outruns the hardware prefetcher once the products
            // take time of their own.
            _mm_prefetch((const char *)(wr[a] + PREFETCH_ROWS * k + i), _MM_HINT_T0);
            for (int b = 0; b < NM; b++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], wv, xv[b]);
        }
    }
    if (i < k) {
        __mmask32 t = (__mmask32)((k - i) >= 32 ? 0xffffffffu : ((1u << (k - i)) - 1u));
        __m512bh xv[4];
        for (int b = 0; b < NM; b++) xv[b] = (__m512bh)_mm512_maskz_loadu_epi16(t, xr[b] + i);
        for (int a = 0; a < 4; a++) {
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(t, wr[a] + i);
            for (int b = 0; b < NM; b++) acc[a][b] = _mm512_dpbf16_ps(acc[a][b], wv, xv[b]);
        }
    }
    for (size_t a = 0; a < nr; a++)
        for (int b = 0; b < NM; b++) y[(m + b) * ldy + r + a] = _mm512_reduce_add_ps(acc[a][b]);
}

PK_AVX512BF16 static void dot_bf16_avx512(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y,
                                          size_t ldy, size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 4) {
        size_t nr = r1 - r < 4 ? r1 - r : 4;
        size_t m = 0;
        for (; m + 4 <= m_count; m += 4) dot_tile_bf16(w, k, x, ldx, y, ldy, r, nr, m, 4);
        switch (m_count - m) {
        case 3: dot_tile_bf16(w, k, x, ldx, y, ldy, r, nr, m, 3); break;
        case 2: dot_tile_bf16(w, k, x, ldx, y, ldy, r, nr, m, 2); break;
        case 1: dot_tile_bf16(w, k, x, ldx, y, ldy, r, nr, m, 1); break;
        default: break;
        }
    }
}

// Without the instruction on AVX-512 (no BF16): both operands widened to f32, where every product of two
// bf16 values is exact, and fused into f32 sums; tiles of 4 weight rows x NM inputs, each (input, row) sum running
// the same instruction sequence in any tile.
PK_AVX512 static inline __attribute__((always_inline)) void
dot_tile_wide_avx512(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy, size_t r,
                     size_t nr, size_t m, const int NM) {
    __m512 acc[4][2];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < NM; b++) acc[a][b] = _mm512_setzero_ps();
    const uint16_t *wr[4];
    for (int a = 0; a < 4; a++) wr[a] = w + (r + ((size_t)a < nr ? (size_t)a : 0)) * k;
    size_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 xv[2];
        for (int b = 0; b < NM; b++) xv[b] = pk_load_bf16x16(x + (m + b) * ldx + i);
        for (int a = 0; a < 4; a++) {
            // the next tile's rows, a line each (decoding outruns the hardware prefetcher)
            if ((i & 31) == 0) _mm_prefetch((const char *)(wr[a] + PREFETCH_ROWS * k + i), _MM_HINT_T0);
            const __m512 wv = pk_load_bf16x16(wr[a] + i);
            for (int b = 0; b < NM; b++) acc[a][b] = _mm512_fmadd_ps(wv, xv[b], acc[a][b]);
        }
    }
    for (size_t a = 0; a < nr; a++)
        for (int b = 0; b < NM; b++) {
            float s = _mm512_reduce_add_ps(acc[a][b]);
            const uint16_t *xb = x + (m + b) * ldx;
            for (size_t t = i; t < k; t++) s += pk_bf16_scalar(wr[a][t]) * pk_bf16_scalar(xb[t]);
            y[(m + b) * ldy + r + a] = s;
        }
}

PK_AVX512 static void dot_bf16_wide_avx512(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y,
                                           size_t ldy, size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 4) {
        const size_t nr = r1 - r < 4 ? r1 - r : 4;
        size_t m = 0;
        for (; m + 2 <= m_count; m += 2) dot_tile_wide_avx512(w, k, x, ldx, y, ldy, r, nr, m, 2);
        if (m < m_count) dot_tile_wide_avx512(w, k, x, ldx, y, ldy, r, nr, m, 1);
    }
}

// AVX2: 16 weights a load, split into their even and odd elements as f32 by one shift and one mask (no widening
// loads), against the inputs split the same way once per call: half the instructions per weight of widening 8 at a
// time, which decides how close decoding gets to the memory bandwidth.
PK_AVX2 static inline __attribute__((always_inline)) void
dot_tile_split_avx2(const uint16_t *w, size_t k, const float *xs, size_t k2, float *y, size_t ldy, size_t r, size_t nr,
                    size_t m, const int NM) {
    __m256 acc[4][2];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < NM; b++) acc[a][b] = _mm256_setzero_ps();
    const uint16_t *wr[4];
    for (int a = 0; a < 4; a++) wr[a] = w + (r + ((size_t)a < nr ? (size_t)a : 0)) * k;
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    size_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256 xe[2], xo[2];
        for (int b = 0; b < NM; b++) {
            xe[b] = _mm256_loadu_ps(xs + (m + b) * 2 * k2 + i / 2);
            xo[b] = _mm256_loadu_ps(xs + (m + b) * 2 * k2 + k2 + i / 2);
        }
        for (int a = 0; a < 4; a++) {
            if ((i & 31) == 0) _mm_prefetch((const char *)(wr[a] + PREFETCH_ROWS * k + i), _MM_HINT_T0);
            const __m256i v = _mm256_loadu_si256((const __m256i *)(wr[a] + i));
            const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, high));
            for (int b = 0; b < NM; b++) acc[a][b] = _mm256_fmadd_ps(wo, xo[b], _mm256_fmadd_ps(we, xe[b], acc[a][b]));
        }
    }
    for (size_t a = 0; a < nr; a++)
        for (int b = 0; b < NM; b++) {
            float s = pk_hsum256(acc[a][b]);
            const float *xe = xs + (m + b) * 2 * k2, *xo = xe + k2;
            for (size_t t = i; t < k; t++) s += pk_bf16_scalar(wr[a][t]) * (t % 2 ? xo[t / 2] : xe[t / 2]);
            y[(m + b) * ldy + r + a] = s;
        }
}

PK_AVX2 static void dot_bf16_avx2(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                                  size_t m_count, size_t r0, size_t r1) {
    // xs[m]: the even elements of input m as f32, then the odd ones (k2 = ceil(k / 2) each).
    const size_t k2 = (k + 1) / 2;
    float stack[2 * 2048];
    float *xs = 2 * k2 * m_count <= 2 * 2048 ? stack : malloc(2 * k2 * m_count * sizeof(float));
    if (!xs) { dot_bf16_scalar(w, k, x, ldx, y, ldy, m_count, r0, r1); return; }   // same sums, without the copy
    for (size_t m = 0; m < m_count; m++) {
        float *xe = xs + m * 2 * k2, *xo = xe + k2;
        for (size_t t = 0; t < k; t++) (t % 2 ? xo : xe)[t / 2] = pk_bf16_scalar(x[m * ldx + t]);
        if (k % 2) xo[k2 - 1] = 0;
    }
    for (size_t r = r0; r < r1; r += 4) {
        const size_t nr = r1 - r < 4 ? r1 - r : 4;
        size_t m = 0;
        for (; m + 2 <= m_count; m += 2) dot_tile_split_avx2(w, k, xs, k2, y, ldy, r, nr, m, 2);
        if (m < m_count) dot_tile_split_avx2(w, k, xs, k2, y, ldy, r, nr, m, 1);
    }
    if (xs != stack) free(xs);
}
#endif

// The same sums without the instruction: each product of two bf16 values is exact in f32; pairs are added as
// the instruction's lanes do (lane j holds elements 2j and 2j+1), then the 16 lanes are summed.
static void dot_bf16_scalar(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                            size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
        const uint16_t *wr = w + r * k;
        for (size_t m = 0; m < m_count; m++) {
            const uint16_t *xr = x + m * ldx;
            float lane[16] = {0};
            for (size_t i = 0; i < k; i++) lane[(i % 32) / 2] += pk_bf16_scalar(wr[i]) * pk_bf16_scalar(xr[i]);
            float s = 0;
            for (int j = 0; j < 16; j++) s += lane[j];
            y[m * ldy + r] = s;
        }
    }
}

void pk_dot_bf16(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                 size_t row_begin, size_t row_end) {
#if PK_X86
    if (pk_has_avx512bf16()) { dot_bf16_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    if (pk_has_avx512()) { dot_bf16_wide_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    if (pk_has_avx2()) { dot_bf16_avx2(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_dot_bf16(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
#endif
    dot_bf16_scalar(w, k, x, ldx, y, ldy, m_count, row_begin, row_end);
}
