// The built-in f32 GEMM, used when oneDNN is not installed: B packed into 32-column panels, A into 6-row panels,
// a register micro-kernel per tier (AVX-512: 6x32 in 12 registers; AVX2: 6x16 on 16-wide panels in 12 registers;
// NEON: 6x32, neon.c; scalar twin otherwise). One call computes a column range of C; the
// caller runs column ranges on separate threads.
#include <stdlib.h>
#include "CKernels.h"
#include "internal.h"

#define MR 6
#define NR 32
#define KC 256
#define MC 72
#ifndef NC
#define NC 384
#endif

static inline float a_at(int ta, const float *a, size_t lda, size_t i, size_t p) { return ta ? a[p * lda + i] : a[i * lda + p]; }

/// Bp[panel][p][0..nr) for columns [j0, j0 + nc), rows [p0, p0 + kc); zero beyond nc. nr: the tier's panel width.
static void pack_b(int tb, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc, float *bp, size_t nr) {
    for (size_t jp = 0; jp < nc; jp += nr) {
        size_t w = nc - jp < nr ? nc - jp : nr;
        float *dst = bp + (jp / nr) * kc * nr;
        if (!tb) {
            for (size_t p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + jp;
                size_t j = 0;
                for (; j < w; j++) dst[p * nr + j] = src[j];
                for (; j < nr; j++) dst[p * nr + j] = 0;
            }
        } else {
            // B stored [n, k]: read each of the panel's rows straight through (reading across 32 rows a column at a
            // time thrashes L1 when the row stride is a multiple of 4 KB, as k = 2048).
            for (size_t j = 0; j < w; j++) {
                const float *src = b + (j0 + jp + j) * ldb + p0;
                for (size_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (size_t p = 0; p < kc; p++)
                for (size_t j = w; j < nr; j++) dst[p * nr + j] = 0;
        }
    }
}

/// Ap[panel][p][0..MR) for rows [i0, i0 + mc); zero beyond mc.
static void pack_a(int ta, const float *a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc, float *ap) {
    for (size_t ip = 0; ip < mc; ip += MR) {
        size_t h = mc - ip < MR ? mc - ip : MR;
        float *dst = ap + (ip / MR) * kc * MR;
        for (size_t p = 0; p < kc; p++) {
            size_t r = 0;
            for (; r < h; r++) dst[p * MR + r] = a_at(ta, a, lda, i0 + ip + r, p0 + p);
            for (; r < MR; r++) dst[p * MR + r] = 0;
        }
    }
}

/// c[h, w] (ldc) = (add ? c : 0) + alpha * (Ap panel . Bp panel) over kc.
#if PK_X86
PK_AVX512 static void micro_avx512(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w,
                                   float alpha, int add) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(bp + p * NR), b1 = _mm512_loadu_ps(bp + p * NR + 16);
        const float *ar = ap + p * MR;
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ar[r]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
    __mmask16 m0 = w >= 16 ? (__mmask16)0xffff : pk_tail_mask(w);
    __mmask16 m1 = w >= 32 ? (__mmask16)0xffff : (w > 16 ? pk_tail_mask(w - 16) : 0);
    for (size_t r = 0; r < h; r++) {
        float *cr = c + r * ldc;
        __m512 v0 = _mm512_mul_ps(acc[r][0], al), v1 = _mm512_mul_ps(acc[r][1], al);
        if (add) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, v0);
        if (m1) _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
}

/// The AVX2 micro-kernel on 16-wide B panels (NR_AVX2): 6 rows x 16 columns in 12 accumulators.
#define NR_AVX2 16
PK_AVX2 static void micro_avx2(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w,
                               float alpha, int add) {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = _mm256_setzero_ps(); acc[r][1] = _mm256_setzero_ps(); }
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(bp + p * NR_AVX2), b1 = _mm256_load_ps(bp + p * NR_AVX2 + 8);
        const float *ar = ap + p * MR;
        for (int r = 0; r < MR; r++) {
            const __m256 av = _mm256_broadcast_ss(ar + r);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __m256 al = _mm256_set1_ps(alpha);
    const __m256i m0 = pk_tail_mask8(w >= 8 ? 8 : w), m1 = pk_tail_mask8(w >= 16 ? 8 : w > 8 ? w - 8 : 0);
    for (size_t r = 0; r < h; r++) {
        float *cr = c + r * ldc;
        __m256 v0 = _mm256_mul_ps(acc[r][0], al), v1 = _mm256_mul_ps(acc[r][1], al);
        if (w >= 16) {
            if (add) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8)); }
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        } else {
            if (add) { v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cr, m0)); v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cr + 8, m1)); }
            _mm256_maskstore_ps(cr, m0, v0);
            _mm256_maskstore_ps(cr + 8, m1, v1);
        }
    }
}
#endif

static void micro_scalar(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w,
                         float alpha, int add) {
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = 0;
    for (size_t p = 0; p < kc; p++)
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++) acc[r][j] += ap[p * MR + r] * bp[p * NR + j];
    for (size_t r = 0; r < h; r++)
        for (size_t j = 0; j < w; j++) c[r * ldc + j] = (add ? c[r * ldc + j] : 0) + alpha * acc[r][j];
}

void pk_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
              const float *b, size_t ldb, int accumulate, float *c, size_t ldc, size_t col_begin, size_t col_end) {
    if (m == 0 || col_end <= col_begin) return;
    (void)n;
    if (k == 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; i++)
                for (size_t j = col_begin; j < col_end; j++) c[i * ldc + j] = 0;
        return;
    }
    const int tier = pk_tier();
#if PK_X86
    const size_t nr = tier == PK_TIER_AVX2 ? NR_AVX2 : NR;
#else
    const size_t nr = NR;
#endif
    // Columns in blocks of equal width (a multiple of nr), at most NC, so that the packed B block stays in L2 across
    // the A blocks: 448 columns go as 2 x 224, not 384 and a thin 64. (The AVX-512 tier, measured on a 1 MB-L2
    // EPYC, packs the whole range at once as before.)
    const size_t ncols = col_end - col_begin, nblocks = (ncols + NC - 1) / NC;
    const size_t ncb = tier == PK_TIER_AVX512 ? ncols : ((ncols + nblocks - 1) / nblocks + nr - 1) / nr * nr;
    const size_t panels = ((ncb < ncols ? ncb : ncols) + nr - 1) / nr;
    float *bp = aligned_alloc(64, ((panels * nr * KC * sizeof(float)) + 63) / 64 * 64);
    float *ap = aligned_alloc(64, ((MC * KC * sizeof(float)) + 63) / 64 * 64);
    if (!bp || !ap) { free(bp); free(ap); return; }
    for (size_t j0 = col_begin; j0 < col_end; j0 += ncb) {
        const size_t nc = col_end - j0 < ncb ? col_end - j0 : ncb;
        for (size_t p0 = 0; p0 < k; p0 += KC) {
            size_t kc = k - p0 < KC ? k - p0 : KC;
            int add = accumulate || p0 > 0;
            pack_b(trans_b, b, ldb, p0, kc, j0, nc, bp, nr);
            for (size_t i0 = 0; i0 < m; i0 += MC) {
                size_t mc = m - i0 < MC ? m - i0 : MC;
                pack_a(trans_a, a, lda, i0, mc, p0, kc, ap);
                for (size_t jp = 0; jp < nc; jp += nr) {
                    size_t w = nc - jp < nr ? nc - jp : nr;
                    for (size_t ip = 0; ip < mc; ip += MR) {
                        size_t h = mc - ip < MR ? mc - ip : MR;
                        float *cp = c + (i0 + ip) * ldc + j0 + jp;
                        const float *a_panel = ap + (ip / MR) * kc * MR, *b_panel = bp + (jp / nr) * kc * nr;
                        switch (tier) {
#if PK_X86
                        case PK_TIER_AVX512: micro_avx512(a_panel, b_panel, kc, cp, ldc, h, w, alpha, add); break;
                        case PK_TIER_AVX2: micro_avx2(a_panel, b_panel, kc, cp, ldc, h, w, alpha, add); break;
#elif PK_ARM64
                        case PK_TIER_NEON: pk_neon_sgemm_micro(a_panel, b_panel, kc, cp, ldc, h, w, alpha, add); break;
#endif
                        default: micro_scalar(a_panel, b_panel, kc, cp, ldc, h, w, alpha, add); break;
                        }
                    }
                }
            }
        }
    }
    free(bp);
    free(ap);
}
