// Bandwidth-bound matrix-vector products for decode: each weight row is read once for up to m_count inputs
// (4 inputs per pass), from f32 weights. (bf16 weights multiply bf16-rounded inputs: pk_dot_bf16.)
#include "CKernels.h"
#include "internal.h"

#if PK_X86
// Rows [r0, r1) of W against all inputs, 4 inputs at a time, 16 weights a step.
PK_AVX512 static void gemv_f32_avx512(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                                      size_t m_count, size_t r0, size_t r1) {
    size_t kt = k & ~(size_t)15;
    __mmask16 tail = pk_tail_mask(k - kt);
    for (size_t r = r0; r < r1; r++) {
        const float *wr = w + r * k;
        if (r + 1 < r1) _mm_prefetch((const char *)(wr + k), _MM_HINT_T0);
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            size_t mm = m_count - m0 < 4 ? m_count - m0 : 4;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            const float *xs[4];
            for (size_t j = 0; j < 4; j++) xs[j] = x + (m0 + (j < mm ? j : 0)) * ldx;
            for (size_t i = 0; i < kt; i += 16) {
                __m512 wv = _mm512_loadu_ps(wr + i);
                for (size_t j = 0; j < mm; j++) acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[j] + i), acc[j]);
            }
            if (kt < k) {
                __m512 wv = _mm512_maskz_loadu_ps(tail, wr + kt);
                for (size_t j = 0; j < mm; j++)
                    acc[j] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, xs[j] + kt), acc[j]);
            }
            for (size_t j = 0; j < mm; j++) y[(m0 + j) * ldy + r] = _mm512_reduce_add_ps(acc[j]);
        }
    }
}

// AVX2: rows of W against up to 4 inputs, 16 weights a step in two accumulators per input.
PK_AVX2 static void gemv_f32_avx2(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                                  size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
        const float *wr = w + r * k;
        if (r + 1 < r1) _mm_prefetch((const char *)(wr + k), _MM_HINT_T0);
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            size_t mm = m_count - m0 < 4 ? m_count - m0 : 4;
            __m256 acc[4][2];
            for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
            const float *xs[4];
            for (size_t j = 0; j < 4; j++) xs[j] = x + (m0 + (j < mm ? j : 0)) * ldx;
            size_t i = 0;
            for (; i + 16 <= k; i += 16) {
                __m256 w0 = _mm256_loadu_ps(wr + i), w1 = _mm256_loadu_ps(wr + i + 8);
                for (size_t j = 0; j < mm; j++) {
                    acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xs[j] + i), acc[j][0]);
                    acc[j][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xs[j] + i + 8), acc[j][1]);
                }
            }
            for (size_t j = 0; j < mm; j++) {
                float s = pk_hsum256(_mm256_add_ps(acc[j][0], acc[j][1]));
                for (size_t t = i; t < k; t++) s += wr[t] * xs[j][t];
                y[(m0 + j) * ldy + r] = s;
            }
        }
    }
}
#endif

void pk_gemv_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                 size_t row_begin, size_t row_end) {
#if PK_X86
    if (pk_has_avx512()) { gemv_f32_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    if (pk_has_avx2()) { gemv_f32_avx2(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_gemv_f32(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
#endif
    for (size_t r = row_begin; r < row_end; r++)
        for (size_t m = 0; m < m_count; m++) {
            float s = 0;
            for (size_t i = 0; i < k; i++) s += w[r * k + i] * x[m * ldx + i];
            y[m * ldy + r] = s;
        }
}
