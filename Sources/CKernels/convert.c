// dtype conversions: bf16 and f16 <-> f32.
#include "CKernels.h"
#include "internal.h"

#if PK_X86
PK_AVX512 static void bf16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, pk_load_bf16x16(src + i));
    if (i < n) {
        __mmask16 m = pk_tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, m, pk_maskload_bf16(src + i, m));
    }
}

PK_AVX2 static void bf16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, pk_load_bf16x8(src + i));
    for (; i < n; i++) dst[i] = pk_bf16_scalar(src[i]);
}
#endif

void pk_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if PK_X86
    if (pk_has_avx512()) { bf16_to_f32_avx512(src, dst, n); return; }
    if (pk_has_avx2()) { bf16_to_f32_avx2(src, dst, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_bf16_to_f32(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pk_bf16_scalar(src[i]);
}

// Round to nearest even in integer arithmetic (AVX-512F only); NaN stays a quiet NaN.
#if PK_X86
PK_AVX512 static void f32_to_bf16_avx512(const float *src, uint16_t *dst, size_t n) {
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + i));
        __m512i rounded = _mm512_srli_epi32(
            _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
        __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absmask), inf);
        __m512i nanbits = _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet);
        __m512i r = _mm512_mask_blend_epi32(nan, rounded, nanbits);
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtepi32_epi16(r));
    }
}

PK_AVX2 static void f32_to_bf16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(dst + i), pk_to_bf16x8(_mm256_loadu_ps(src + i)));
    for (; i < n; i++) dst[i] = pk_to_bf16_scalar(src[i]);
}

// f16 with the F16C instructions (AVX2 and AVX-512 tiers): round to nearest even, as the scalar twins.
PK_AVX2 static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

PK_AVX2 static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

void pk_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
#if PK_X86
    if (pk_has_avx512()) { f32_to_bf16_avx512(src, dst, n); return; }
    if (pk_has_avx2()) { f32_to_bf16_avx2(src, dst, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_f32_to_bf16(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pk_to_bf16_scalar(src[i]);
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) { mant <<= 1; exp--; }
            mant &= 0x3ffu;
            u = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t float_to_half(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);            // NaN
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);           // overflow -> inf (rounded)
    if (absu < 0x38800000u) {                                             // subnormal or zero
        if (absu < 0x33000000u) return (uint16_t)sign;
        uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
        int shift = 113 - (int)(absu >> 23) + 13;
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t v = absu - (112u << 23);
    uint32_t half = v >> 13, rem = v & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
}

void pk_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if PK_X86
    if (pk_tier() != PK_TIER_SCALAR) { f16_to_f32_f16c(src, dst, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_f16_to_f32(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}

void pk_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if PK_X86
    if (pk_tier() != PK_TIER_SCALAR) { f32_to_f16_f16c(src, dst, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_f32_to_f16(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half(src[i]);
}
