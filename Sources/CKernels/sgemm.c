// The built-in f32 GEMM, used when oneDNN is not installed: B packed into 32-column panels, A into 6-row panels,
// a register micro-kernel per tier (AVX-512: 12x32 on 12-row panels in 24 registers; AVX2: 6x16 on 16-wide panels
// in 12 registers; NEON: 6x32, neon.c; scalar twin otherwise). One call computes a column range of C; the caller runs
// column ranges on separate threads.
#include <stdlib.h>
#include "CKernels.h"
#include "internal.h"

#define MR 6
#ifndef MR512
#define MR512 12
#endif
#define NR 32
#define KC 256
#define MC 72   // a multiple of MR and MR512
#ifndef NC512
#define NC512 512
#endif
#ifndef NC
#define NC 384
#endif
_Static_assert(MC % MR == 0 && MC % MR512 == 0, "A blocks must hold whole panels of every tier (pack_a fills MC x KC)");
_Static_assert(MR512 <= 14, "the AVX-512 micro-kernel keeps 2 x MR512 accumulators in 32 registers");

static inline float a_at(int ta, const float *a, size_t lda, size_t i, size_t p) { return ta ? a[p * lda + i] : a[i * lda + p]; }

#if PK_X86
/// B stored [n, k], rows [j, j + 8) x k [p0, p0 + kc8) (kc8 a multiple of 8) into the panel at column jj: 8x8 blocks
/// transposed in registers, so that both the reads and the writes are whole vectors.
PK_AVX2 static void pack_b_transposed_8(const float *b, size_t ldb, size_t p0, size_t kc8, float *dst, size_t nr) {
    for (size_t p = 0; p < kc8; p += 8) {
        __m256 r[8], t[8], u[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(b + i * ldb + p0 + p);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int h = 0; h < 8; h += 4) {   // rows 0-3, then 4-7
            u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
            u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xee);
            u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
            u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xee);
        }
        for (int c = 0; c < 4; c++) {   // column c from the low lanes, column c + 4 from the high ones
            _mm256_storeu_ps(dst + (p + c) * nr, _mm256_permute2f128_ps(u[c], u[c + 4], 0x20));
            _mm256_storeu_ps(dst + (p + c + 4) * nr, _mm256_permute2f128_ps(u[c], u[c + 4], 0x31));
        }
    }
}
#endif

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
            // B stored [n, k]: a transpose. Vector tiers move 8x8 blocks; the rest reads each of the panel's rows
            // straight through (reading across 32 rows a column at a time thrashes L1 when the row stride is a
            // multiple of 4 KB, as k = 2048).
            size_t j = 0, kc8 = 0;
#if PK_X86
            if (pk_tier() != PK_TIER_SCALAR) {
                kc8 = kc / 8 * 8;
                for (; j + 8 <= w; j += 8) pack_b_transposed_8(b + (j0 + jp + j) * ldb, ldb, p0, kc8, dst + j, nr);
                for (size_t jj = 0; jj < j; jj++) {   // the k tail of the blocked rows
                    const float *src = b + (j0 + jp + jj) * ldb + p0;
                    for (size_t p = kc8; p < kc; p++) dst[p * nr + jj] = src[p];
                }
            }
#endif
            for (; j < w; j++) {
                const float *src = b + (j0 + jp + j) * ldb + p0;
                for (size_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
            }
            for (size_t p = 0; p < kc; p++)
                for (size_t jj = w; jj < nr; jj++) dst[p * nr + jj] = 0;
        }
    }
}

#if PK_X86
/// A stored [m, k], rows [i, i + 4) x k [p0, p0 + kc4) (kc4 a multiple of 4) into the panel at row r: 4x4 blocks
/// transposed in registers.
PK_AVX2 static void pack_a_rows_4(const float *a, size_t lda, size_t p0, size_t kc4, float *dst, size_t mr) {
    for (size_t p = 0; p < kc4; p += 4) {
        __m128 r0 = _mm_loadu_ps(a + p0 + p), r1 = _mm_loadu_ps(a + lda + p0 + p);
        __m128 r2 = _mm_loadu_ps(a + 2 * lda + p0 + p), r3 = _mm_loadu_ps(a + 3 * lda + p0 + p);
        const __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);
        const __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
        _mm_storeu_ps(dst + p * mr, _mm_movelh_ps(t0, t2));
        _mm_storeu_ps(dst + (p + 1) * mr, _mm_movehl_ps(t2, t0));
        _mm_storeu_ps(dst + (p + 2) * mr, _mm_movelh_ps(t1, t3));
        _mm_storeu_ps(dst + (p + 3) * mr, _mm_movehl_ps(t3, t1));
    }
}
#endif

/// Ap[panel][p][0..mr) for rows [i0, i0 + mc); zero beyond mc. mr: the tier's panel height.
static void pack_a(int ta, const float *a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc, float *ap, size_t mr) {
    for (size_t ip = 0; ip < mc; ip += mr) {
        size_t h = mc - ip < mr ? mc - ip : mr;
        float *dst = ap + (ip / mr) * kc * mr;
        size_t r0 = 0;   // rows below r0 are packed
#if PK_X86
        // A stored [m, k] on a vector tier: groups of 4 rows as 4x4 transposes, the k tail by element.
        if (!ta && pk_tier() != PK_TIER_SCALAR) {
            const size_t kc4 = kc / 4 * 4;
            for (; r0 + 4 <= h; r0 += 4) {
                const float *src = a + (i0 + ip + r0) * lda;
                pack_a_rows_4(src, lda, p0, kc4, dst + r0, mr);
                for (size_t p = kc4; p < kc; p++)
                    for (size_t r = 0; r < 4; r++) dst[p * mr + r0 + r] = src[r * lda + p0 + p];
            }
        }
#endif
        for (size_t p = 0; p < kc; p++) {
            size_t r = r0;
            for (; r < h; r++) dst[p * mr + r] = a_at(ta, a, lda, i0 + ip + r, p0 + p);
            for (; r < mr; r++) dst[p * mr + r] = 0;
        }
    }
}

/// c[h, w] (ldc) = (add ? c : 0) + alpha * (Ap panel . Bp panel) over kc.
#if PK_X86
PK_AVX512 static void micro_avx512(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w,
                                   float alpha, int add) {
    __m512 acc[MR512][2];
    for (int r = 0; r < MR512; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    for (size_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(bp + p * NR), b1 = _mm512_loadu_ps(bp + p * NR + 16);
        const float *ar = ap + p * MR512;
        for (int r = 0; r < MR512; r++) {
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
    const size_t nr = tier == PK_TIER_AVX2 ? NR_AVX2 : NR, mr = tier == PK_TIER_AVX512 ? MR512 : MR;
#else
    const size_t nr = NR, mr = MR;
#endif
    // Columns in blocks of equal width (a multiple of nr), at most NC (NC512 on AVX-512), so that the packed B block
    // stays in L2 across the A blocks: 448 columns go as 2 x 224, not 384 and a thin 64. (Packing a 4864-column range
    // at once, as AVX-512 once did, ran the wide shapes at 0.64x oneDNN on a 1 MB-L2 Zen 5.)
    const size_t ncmax = tier == PK_TIER_AVX512 ? NC512 : NC;
    const size_t ncols = col_end - col_begin, nblocks = (ncols + ncmax - 1) / ncmax;
    const size_t ncb = ((ncols + nblocks - 1) / nblocks + nr - 1) / nr * nr;
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
                pack_a(trans_a, a, lda, i0, mc, p0, kc, ap, mr);
                for (size_t jp = 0; jp < nc; jp += nr) {
                    size_t w = nc - jp < nr ? nc - jp : nr;
                    for (size_t ip = 0; ip < mc; ip += mr) {
                        size_t h = mc - ip < mr ? mc - ip : mr;
                        float *cp = c + (i0 + ip) * ldc + j0 + jp;
                        const float *a_panel = ap + (ip / mr) * kc * mr, *b_panel = bp + (jp / nr) * kc * nr;
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
