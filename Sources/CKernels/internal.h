// Shared helpers of the C kernels: the architecture switches, the per-tier target attributes, vectorised exp and
// bf16 loads for each x86 tier, and the scalar conversions every tier shares.
#ifndef CKERNELS_INTERNAL_H
#define CKERNELS_INTERNAL_H
#include "CKernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define PK_X86 1
#define PK_ARM64 0
#include <immintrin.h>
#elif defined(__aarch64__)
#define PK_X86 0
#define PK_ARM64 1
#include <arm_neon.h>
#else
#define PK_X86 0
#define PK_ARM64 0
#endif

#define PK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define PK_AVX2 __attribute__((target("avx2,fma,f16c")))

/// Instantiates a plain C loop body once per x86 tier (the compiler vectorises each for its instruction set):
/// NAME##_avx2 and NAME##_avx512 call the always-inline NAME##_body with the same arguments.
#define PK_INLINE static inline __attribute__((always_inline))
#if PK_X86
#define PK_TIERED_VOID(name, params, args)                                                                           \
    PK_AVX512 static void name##_avx512 params { name##_body args; }                                                 \
    PK_AVX2 static void name##_avx2 params { name##_body args; }                                                     \
    void pk_##name params {                                                                                          \
        if (pk_has_avx512()) { name##_avx512 args; return; }                                                         \
        if (pk_has_avx2()) { name##_avx2 args; return; }                                                             \
        name##_body args;                                                                                            \
    }
#else
// ARM64: the baseline instruction set has NEON, so the plain body is already the vector one.
#define PK_TIERED_VOID(name, params, args) void pk_##name params { name##_body args; }
#endif

#if PK_ARM64
// NEON bodies (neon.c), dispatched from the kernels' entry points on the NEON tier.
float pk_neon_dot(const float *a, const float *b, size_t n);
void pk_neon_swiglu_forward(const float *g, const float *u, float *out, size_t n);
void pk_neon_swiglu_backward(const float *dout, const float *g, const float *u, float *dg, float *du, size_t n);
void pk_neon_softcap(float *x, size_t n, float cap, float *dy);
void pk_neon_geglu(const float *dout, const float *g, const float *u, float *out, float *dg, float *du, size_t n);
/// max of row[0..n); sum of exp(row - mx), written back in place when write; row *= s.
float pk_neon_max(const float *row, size_t n);
float pk_neon_exp_sum(float *row, size_t n, float mx, int write);
void pk_neon_scale(float *row, size_t n, float s);
void pk_neon_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
void pk_neon_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void pk_neon_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void pk_neon_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void pk_neon_gemv_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                      size_t r0, size_t r1);
void pk_neon_gemm_small_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                            size_t m_count, size_t r0, size_t r1);
void pk_neon_dot_bf16(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                      size_t m_count, size_t r0, size_t r1);
/// The sgemm micro-kernel: c[h, w] (ldc) = (add ? c : 0) + alpha * (ap panel [kc][6] . bp panel [kc][32]).
void pk_neon_sgemm_micro(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w,
                         float alpha, int add);
/// One packed group of 8 rows against one input (quant_packed.c's layout and scaling): out[8].
void pk_neon_group_q8x(int type, const uint8_t *g, size_t k, const int8_t *qx, const float *dx, const int32_t *sx,
                       float out[8]);
/// One row of a row-layout format (quant_rows.c) against mt <= 4 inputs (qx [mt, k], dx [mt, k/32], and
/// bs16 [mt, k/16]: the sum of each 16 activations): out[mt].
void pk_neon_row_dot(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx, const int16_t *bs16,
                     size_t mt, float *out);
#endif

/// q4_k regrouped (quant_packed.c): the 8 rows' 6-bit scales and mins of a packed block, un[8 j + r] and
/// un[64 + 8 j + r] for sub-block j of row r.
void pk_q4k_unpack_scales(const uint8_t *blk, uint8_t un[128]);

/// iq4_nl's and iq4_xs's sixteen non-linear levels (quant.c).
extern const int8_t pk_iq4_levels[16];

// ---- row-layout formats (quant_rows.c) ----
/// Whether a format stays in GGML's row layout in memory (q2_k, q3_k, q5_k, q6_k, iq4_xs).
int pk_is_row_type(int type);
/// Whether a format has quant_rows.c's integer form (the row-layout formats, and q4_1, q5_1, iq4_nl): its GGML
/// blocks dequantize through it.
int pk_has_row_form(int type);
/// One block as int8 levels q[block size], 16-weight scales sc and offsets mn (w = sc * q - mn); returns whether any
/// offset is non-zero.
int pk_row_unpack_block(int type, const uint8_t *block, int8_t *q, float *sc, float *mn);
/// One row of k weights dequantized into of (f32) or, when of is NULL, ob (bf16).
void pk_row_dequantize(int type, const uint8_t *row, size_t k, float *of, uint16_t *ob);
/// pk_packed_gemv_q8x for the row-layout formats (rows padded to 8; groups are 8 consecutive rows).
void pk_rows_gemv_q8x(int type, const uint8_t *w, size_t rows, size_t k, const int8_t *qx, const float *dx,
                      float *y, size_t ldy, size_t m_count, size_t g0, size_t g1);

static inline float pk_bf16_scalar(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t pk_to_bf16_scalar(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#if PK_X86
/// exp(x) for 16 lanes; relative error about 2e-7 on [-87, 88], 0 below, +inf above.
PK_AVX512 static inline __m512 pk_exp512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3365478515625f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    __m512 res = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    res = _mm512_mask_blend_ps(under, res, _mm512_setzero_ps());
    res = _mm512_mask_blend_ps(over, res, _mm512_set1_ps(INFINITY));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(nan, res, x);   // NaN in, NaN out
}

PK_AVX512 static inline __m512 pk_load_bf16x16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

PK_AVX512 static inline __m512 pk_maskload_bf16(const uint16_t *p, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}


/// exp(x) for 8 lanes (AVX2), the same polynomial as pk_exp512.
PK_AVX2 static inline __m256 pk_exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    res = _mm256_blendv_ps(res, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    res = _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    // NaN in, NaN out (the clamps above would turn it into a number).
    return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/// Lanes [0, rem) set, as a maskload/maskstore mask (rem <= 8).
PK_AVX2 static inline __m256i pk_tail_mask8(size_t rem) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), idx);
}

/// 8 bf16 values widened to f32.
PK_AVX2 static inline __m256 pk_load_bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/// Sum of the 8 lanes.
PK_AVX2 static inline float pk_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Round to nearest even to bf16 (NaN stays a quiet NaN), 8 lanes into 8 halves.
PK_AVX2 static inline __m128i pk_to_bf16x8(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                  _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)))), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40)), nan);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

static inline __mmask16 pk_tail_mask(size_t rem) { return (__mmask16)((1u << rem) - 1u); }
#endif

// f16 scalars (round to nearest even, as the hardware conversion), for the block formats' scales.
static inline uint16_t f16_bits(float f) {
    uint16_t h;
    pk_f32_to_f16(&f, &h, 1);
    return h;
}

static inline float f16_value(uint16_t h) {
    float f;
    pk_f16_to_f32(&h, &f, 1);
    return f;
}

/// The f16 stored (unaligned) at p.
static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_value(h);
}

#endif
