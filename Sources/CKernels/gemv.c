// Bandwidth-bound matrix-vector products for decode: each weight row is read once for up to m_count inputs.
#include "CKernels.h"
#include "internal.h"

#define PK_GEMV_MAX_M 8

PK_AVX512 static inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

PK_AVX512 static void gemv_f32_avx512(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                                      size_t m_count, size_t r0, size_t r1) {
    size_t kt = k & ~(size_t)15;
    __mmask16 tail = pk_tail_mask(k - kt);
    for (size_t r = r0; r < r1; r++) {
        const float *wr = w + r * k;
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            size_t mm = m_count - m0 < 4 ? m_count - m0 : 4;
            __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
                   acc3 = _mm512_setzero_ps();
            const float *x0 = x + m0 * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
            for (size_t i = 0; i < kt; i += 16) {
                __m512 wv = _mm512_loadu_ps(wr + i);
                acc0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x0 + i), acc0);
                if (mm > 1) acc1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + i), acc1);
                if (mm > 2) acc2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x2 + i), acc2);
                if (mm > 3) acc3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x3 + i), acc3);
            }
            if (kt < k) {
                __m512 wv = _mm512_maskz_loadu_ps(tail, wr + kt);
                acc0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x0 + kt), acc0);
                if (mm > 1) acc1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x1 + kt), acc1);
                if (mm > 2) acc2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x2 + kt), acc2);
                if (mm > 3) acc3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x3 + kt), acc3);
            }
            y[(m0 + 0) * ldy + r] = hsum512(acc0);
            if (mm > 1) y[(m0 + 1) * ldy + r] = hsum512(acc1);
            if (mm > 2) y[(m0 + 2) * ldy + r] = hsum512(acc2);
            if (mm > 3) y[(m0 + 3) * ldy + r] = hsum512(acc3);
        }
    }
}

PK_AVX512 static void gemv_bf16_avx512(const uint16_t *w, size_t k, const float *x, size_t ldx, float *y,
                                       size_t ldy, size_t m_count, size_t r0, size_t r1) {
    size_t kt = k & ~(size_t)15;
    __mmask16 tail = pk_tail_mask(k - kt);
    for (size_t r = r0; r < r1; r++) {
        const uint16_t *wr = w + r * k;
        if (r + 1 < r1) _mm_prefetch((const char *)(wr + k), _MM_HINT_T0);
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            size_t mm = m_count - m0 < 4 ? m_count - m0 : 4;
            __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
                   acc3 = _mm512_setzero_ps();
            const float *x0 = x + m0 * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
            for (size_t i = 0; i < kt; i += 16) {
                __m512 wv = pk_load_bf16x16(wr + i);
                acc0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x0 + i), acc0);
                if (mm > 1) acc1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + i), acc1);
                if (mm > 2) acc2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x2 + i), acc2);
                if (mm > 3) acc3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x3 + i), acc3);
            }
            if (kt < k) {
                __m512 wv = pk_maskload_bf16(wr + kt, tail);
                acc0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x0 + kt), acc0);
                if (mm > 1) acc1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x1 + kt), acc1);
                if (mm > 2) acc2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x2 + kt), acc2);
                if (mm > 3) acc3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x3 + kt), acc3);
            }
            y[(m0 + 0) * ldy + r] = hsum512(acc0);
            if (mm > 1) y[(m0 + 1) * ldy + r] = hsum512(acc1);
            if (mm > 2) y[(m0 + 2) * ldy + r] = hsum512(acc2);
            if (mm > 3) y[(m0 + 3) * ldy + r] = hsum512(acc3);
        }
    }
}

void pk_gemv_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                 size_t row_begin, size_t row_end) {
    if (pk_has_avx512()) { gemv_f32_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    for (size_t r = row_begin; r < row_end; r++)
        for (size_t m = 0; m < m_count; m++) {
            float s = 0;
            for (size_t i = 0; i < k; i++) s += w[r * k + i] * x[m * ldx + i];
            y[m * ldy + r] = s;
        }
}

void pk_gemv_bf16(const uint16_t *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                  size_t row_begin, size_t row_end) {
    if (pk_has_avx512()) { gemv_bf16_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    for (size_t r = row_begin; r < row_end; r++)
        for (size_t m = 0; m < m_count; m++) {
            float s = 0;
            for (size_t i = 0; i < k; i++) s += pk_bf16_scalar(w[r * k + i]) * x[m * ldx + i];
            y[m * ldy + r] = s;
        }
}
