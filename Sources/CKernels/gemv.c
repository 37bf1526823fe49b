// Bandwidth-bound matrix-vector products for decode: each weight row is read once for up to m_count inputs
// (4 inputs per pass), from f32 or bf16 weights (bf16 widened in registers, f32 accumulation).
#include "CKernels.h"
#include "internal.h"

#define LOAD_F32(p, i) _mm512_loadu_ps((p) + (i))
#define LOAD_BF16(p, i) pk_load_bf16x16((p) + (i))
#define MLOAD_F32(p, i, m) _mm512_maskz_loadu_ps((m), (p) + (i))
#define MLOAD_BF16(p, i, m) pk_maskload_bf16((p) + (i), (m))

// Rows [r0, r1) of W against all inputs, 4 inputs at a time.
#define GEMV_BODY(WT, LOADW, MLOADW)                                                                           \
    size_t kt = k & ~(size_t)15;                                                                               \
    __mmask16 tail = pk_tail_mask(k - kt);                                                                     \
    for (size_t r = r0; r < r1; r++) {                                                                         \
        const WT *wr = w + r * k;                                                                              \
        if (r + 1 < r1) _mm_prefetch((const char *)(wr + k), _MM_HINT_T0);                                     \
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {                                                           \
            size_t mm = m_count - m0 < 4 ? m_count - m0 : 4;                                                   \
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
            const float *xs[4];                                                                                \
            for (size_t j = 0; j < 4; j++) xs[j] = x + (m0 + (j < mm ? j : 0)) * ldx;                        \
            for (size_t i = 0; i < kt; i += 16) {                                                              \
                __m512 wv = LOADW(wr, i);                                                                      \
                for (size_t j = 0; j < mm; j++) acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[j] + i), acc[j]); \
            }                                                                                                  \
            if (kt < k) {                                                                                      \
                __m512 wv = MLOADW(wr, kt, tail);                                                              \
                for (size_t j = 0; j < mm; j++)                                                                \
                    acc[j] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, xs[j] + kt), acc[j]);            \
            }                                                                                                  \
            for (size_t j = 0; j < mm; j++) y[(m0 + j) * ldy + r] = _mm512_reduce_add_ps(acc[j]);              \
        }                                                                                                      \
    }

PK_AVX512 static void gemv_f32_avx512(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                                      size_t m_count, size_t r0, size_t r1) {
    GEMV_BODY(float, LOAD_F32, MLOAD_F32)
}

PK_AVX512 static void gemv_bf16_avx512(const uint16_t *w, size_t k, const float *x, size_t ldx, float *y,
                                       size_t ldy, size_t m_count, size_t r0, size_t r1) {
    GEMV_BODY(uint16_t, LOAD_BF16, MLOAD_BF16)
}

static inline float f32_at(const float *w, size_t i) { return w[i]; }
static inline float bf16_at(const uint16_t *w, size_t i) { return pk_bf16_scalar(w[i]); }

#define GEMV_SCALAR(AT)                                                                                         \
    for (size_t r = row_begin; r < row_end; r++)                                                               \
        for (size_t m = 0; m < m_count; m++) {                                                                 \
            float s = 0;                                                                                       \
            for (size_t i = 0; i < k; i++) s += AT(w, r * k + i) * x[m * ldx + i];                             \
            y[m * ldy + r] = s;                                                                                \
        }

void pk_gemv_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                 size_t row_begin, size_t row_end) {
    if (pk_has_avx512()) { gemv_f32_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    GEMV_SCALAR(f32_at)
}

void pk_gemv_bf16(const uint16_t *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                  size_t row_begin, size_t row_end) {
    if (pk_has_avx512()) { gemv_bf16_avx512(w, k, x, ldx, y, ldy, m_count, row_begin, row_end); return; }
    GEMV_SCALAR(bf16_at)
}
