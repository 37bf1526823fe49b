// Quantized matrices kept row by row exactly as GGML stores them (no regrouping): the 256-weight formats other than
// q4_k (q2_k, q3_k, q5_k, q6_k, iq4_xs). In memory they take the bytes they take on disk. The integer form below also
// serves q4_1, q5_1 and iq4_nl (regrouped in memory, quant_packed.c) for dequantizing GGML blocks.
//
// Every format reduces to one integer form, block by block (pk_row_unpack_block): a signed level per weight and,
// per 16 weights, a float scale and a float offset,
//     w[i] = scale[i / 16] * level[i] - offset[i / 16],
// computed in GGML's order, so that dequantizing through it is bit for bit GGML's (and the `gguf` package's)
// dequantization. Products with 8-bit activations (blocks of 32 with a scale dx each) are then
//     sum_i w[i] x[i] = sum_32-chunks dx * (scale_lo * isum(first 16) + scale_hi * isum(last 16))
//                       - sum_16-groups offset * dx * sum(first or last 16 activations),
// with integer sums of int8 levels times int8 activations: AVX2's maddubs (sign trick for two signed operands), NEON's
// SDOT, or plain C. The level range of every format fits int8 with |level| <= 127.
#include "CKernels.h"
#include "internal.h"

#include <stdlib.h>

// Dequantization must round as GGML's reference C does: no contraction of scale * level - offset.
#pragma clang fp contract(off)

int pk_is_row_type(int type) {
    switch (type) {
    case PK_Q2_K: case PK_Q3_K: case PK_Q5_K: case PK_Q6_K: case PK_IQ4_XS:
        return 1;
    default:
        return 0;
    }
}

int pk_has_row_form(int type) {
    return pk_is_row_type(type) || type == PK_Q4_1 || type == PK_Q5_1 || type == PK_IQ4_NL;
}

// The exact value of an IEEE half (for block scales; no rounding happens).
static inline float half_value(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {   // subnormal: value man * 2^-24, exact in f32
        float f = (float)man * 5.9604644775390625e-8f;
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// The 6-bit scale and min of sub-block j of q4_k/q5_k's 12 packed bytes.
static inline void kscale_min(int j, const uint8_t *q, int *s, int *m) {
    if (j < 4) {
        *s = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *s = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// The scales sc[block size / 16] and offsets mn[block size / 16] of one block of `type` (w = sc * level - mn);
// returns whether any offset is non-zero (formats without offsets leave mn untouched).
static inline int block_scales(int type, const uint8_t *b, float *restrict sc, float *restrict mn) {
    switch (type) {
    case PK_Q4_1:
    case PK_Q5_1: {
        // w = d * level + m.
        const float d = half_value(b), m = half_value(b + 2);
        sc[0] = sc[1] = d;
        mn[0] = mn[1] = -m;
        return m != 0;
    }
    case PK_IQ4_NL:
        sc[0] = sc[1] = half_value(b);
        return 0;
    case PK_IQ4_XS: {
        // d (f16), the 2 high bits of each sub-block scale (u16), their 4 low bits (4 bytes); scale offset 32.
        const float d = half_value(b);
        const uint16_t sh = (uint16_t)(b[2] | (b[3] << 8));
        for (int j = 0; j < 8; j++) {
            const int ls = ((b[4 + j / 2] >> (4 * (j % 2))) & 0xF) | (((sh >> (2 * j)) & 3) << 4);
            sc[2 * j] = sc[2 * j + 1] = d * (float)(ls - 32);
        }
        return 0;
    }
    case PK_Q2_K: {
        // scales[16]: low nibble the scale, high nibble the min, under d and dmin (bytes 80, 82).
        const float d = half_value(b + 80), dmin = half_value(b + 82);
        int any = 0;
        for (int g = 0; g < 16; g++) {
            sc[g] = d * (float)(b[g] & 0xF);
            mn[g] = dmin * (float)(b[g] >> 4);
            any |= b[g] >> 4;
        }
        return any != 0 && dmin != 0;
    }
    case PK_Q3_K: {
        // 12 bytes at 96: the low 4 bits of scales 0-7 and 8-15 in the nibbles of bytes 0-7, the high 2 bits in bytes
        // 8-11; offset 32; under d (byte 108).
        const uint8_t *s = b + 96;
        const float d = half_value(b + 108);
        for (int g = 0; g < 16; g++) {
            const int lo = g < 8 ? s[g] & 0xF : s[g - 8] >> 4;
            const int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
            sc[g] = d * (float)((lo | (hi << 4)) - 32);
        }
        return 0;
    }
    case PK_Q5_K: {
        const float d = half_value(b), dmin = half_value(b + 2);
        int any = 0;
        for (int j = 0; j < 8; j++) {
            int sj, mj;
            kscale_min(j, b + 4, &sj, &mj);
            sc[2 * j] = sc[2 * j + 1] = d * (float)sj;
            mn[2 * j] = mn[2 * j + 1] = dmin * (float)mj;
            any |= mj;
        }
        return any != 0 && dmin != 0;
    }
    case PK_Q6_K: {
        const int8_t *s = (const int8_t *)(b + 192);
        const float d = half_value(b + 208);
        for (int g = 0; g < 16; g++) sc[g] = d * (float)s[g];
        return 0;
    }
    default:
        return 0;
    }
}

// The levels q[block size] of one block, in plain C.
static inline void block_levels(int type, const uint8_t *b, int8_t *restrict q) {
    switch (type) {
    case PK_Q4_1:
    case PK_Q5_1: {
        const uint8_t *qs = b + (type == PK_Q5_1 ? 8 : 4);
        uint32_t qh = 0;
        if (type == PK_Q5_1) memcpy(&qh, b + 4, 4);
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((qs[j] & 0xF) | (((qh >> j) & 1) << 4));
            q[j + 16] = (int8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        break;
    }
    case PK_IQ4_NL:
    case PK_IQ4_XS: {
        // iq4_nl: 16 nibble bytes after d; iq4_xs: 8 sub-blocks of 16 nibble bytes at byte 8.
        const uint8_t *qs = b + (type == PK_IQ4_NL ? 2 : 8);
        for (int j = 0; j < (type == PK_IQ4_NL ? 1 : 8); j++) {
            for (int i = 0; i < 16; i++) {
                q[32 * j + i] = pk_iq4_levels[qs[16 * j + i] & 0xF];
                q[32 * j + 16 + i] = pk_iq4_levels[qs[16 * j + i] >> 4];
            }
        }
        break;
    }
    case PK_Q2_K:
        // qs[64] at 16: 128 weights per 32 bytes, four 2-bit planes of 32.
        for (int n = 0; n < 2; n++)
            for (int p = 0; p < 4; p++)
                for (int l = 0; l < 32; l++) q[128 * n + 32 * p + l] = (int8_t)((b[16 + 32 * n + l] >> (2 * p)) & 3);
        break;
    case PK_Q3_K:
        // hmask[32], qs[64]: level = 2 low bits - (high bit clear ? 4 : 0); high bit 4n + p of hmask[l].
        for (int n = 0; n < 2; n++)
            for (int p = 0; p < 4; p++)
                for (int l = 0; l < 32; l++)
                    q[128 * n + 32 * p + l] = (int8_t)(((b[32 + 32 * n + l] >> (2 * p)) & 3) - (((b[l] >> (4 * n + p)) & 1) ? 0 : 4));
        break;
    case PK_Q5_K: {
        // qh[32] at 16, qs[128] at 48: for each 64 weights, low then high nibbles of 32 bytes, fifth bits 2p, 2p + 1.
        const uint8_t *qh = b + 16;
        for (int p = 0; p < 4; p++) {
            const uint8_t *ql = b + 48 + 32 * p;
            for (int l = 0; l < 32; l++) {
                q[64 * p + l] = (int8_t)((ql[l] & 0xF) | (((qh[l] >> (2 * p)) & 1) << 4));
                q[64 * p + 32 + l] = (int8_t)((ql[l] >> 4) | (((qh[l] >> (2 * p + 1)) & 1) << 4));
            }
        }
        break;
    }
    case PK_Q6_K:
        // ql[128], qh[64]: per 128 weights, 64 ql bytes (low, then high nibbles) and 32 qh bytes (2 bits each).
        for (int n = 0; n < 2; n++) {
            const uint8_t *l0 = b + 64 * n, *h = b + 128 + 32 * n;
            int8_t *o = q + 128 * n;
            for (int l = 0; l < 32; l++) {
                o[l] = (int8_t)(((l0[l] & 0xF) | ((h[l] & 3) << 4)) - 32);
                o[l + 32] = (int8_t)(((l0[l + 32] & 0xF) | (((h[l] >> 2) & 3) << 4)) - 32);
                o[l + 64] = (int8_t)(((l0[l] >> 4) | (((h[l] >> 4) & 3) << 4)) - 32);
                o[l + 96] = (int8_t)(((l0[l + 32] >> 4) | (((h[l] >> 6) & 3) << 4)) - 32);
            }
        }
        break;
    default:
        break;
    }
}

static inline int unpack_block(int type, const uint8_t *b, int8_t *restrict q, float *restrict sc,
                               float *restrict mn) {
    block_levels(type, b, q);
    return block_scales(type, b, sc, mn);
}

int pk_row_unpack_block(int type, const uint8_t *block, int8_t *q, float *sc, float *mn) {
    for (int g = 0; g < 16; g++) mn[g] = 0;
    return unpack_block(type, block, q, sc, mn);
}

// ---- dequantization ----

PK_INLINE void row_dequantize_body(int type, const uint8_t *row, size_t k, float *of, uint16_t *ob) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    int8_t q[256];
    float sc[16], mn[16], y[256];
    for (size_t b = 0; b < k / bs; b++) {
        for (int g = 0; g < 16; g++) mn[g] = 0;
        unpack_block(type, row + b * bb, q, sc, mn);
        float *out = of ? of + b * bs : y;
        for (size_t i = 0; i < bs; i++) out[i] = sc[i / 16] * (float)q[i] - mn[i / 16];
        if (!of)
            for (size_t i = 0; i < bs; i++) ob[b * bs + i] = pk_to_bf16_scalar(y[i]);
    }
}

#if PK_X86
PK_AVX2 static void row_dequantize_avx2(int type, const uint8_t *row, size_t k, float *of, uint16_t *ob) {
    row_dequantize_body(type, row, k, of, ob);
}
#endif

void pk_row_dequantize(int type, const uint8_t *row, size_t k, float *of, uint16_t *ob) {
#if PK_X86
    if (pk_has_avx2()) { row_dequantize_avx2(type, row, k, of, ob); return; }
#endif
    row_dequantize_body(type, row, k, of, ob);
}

// ---- products with 8-bit activations ----
//
// Each input brings, beside its int8 values qx and block scales dx, bs16[g] = the sum of its activations
// 16g..16g+15 (at most 16 * 127 in magnitude): a block's offsets then cost one product per 16 weights.

// bs16 for m_count inputs, or NULL when out of memory.
static int16_t *activation_sums16(const int8_t *qx, size_t k, size_t m_count) {
    int16_t *s = malloc(m_count * (k / 16) * sizeof(int16_t));
    if (!s) return NULL;
    for (size_t g = 0; g < m_count * (k / 16); g++) {
        int t = 0;
        for (int j = 0; j < 16; j++) t += qx[16 * g + j];
        s[g] = (int16_t)t;
    }
    return s;
}

// One row against mt inputs (the scalar twin of the vector kernels): out[j] = dot(row, x_j).
static void row_dot_scalar(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx,
                           const int16_t *bs16, size_t mt, float *out) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    int8_t q[256];
    float sc[16], mn[16];
    for (size_t j = 0; j < mt; j++) out[j] = 0;
    for (size_t b = 0; b < k / bs; b++) {
        const int offsets = pk_row_unpack_block(type, row + b * bb, q, sc, mn);
        for (size_t j = 0; j < mt; j++) {
            const int8_t *x = qx + j * k + b * bs;
            const float *d = dx + j * (k / 32) + b * bs / 32;
            const int16_t *s = bs16 + j * (k / 16) + b * bs / 16;
            float acc = 0;
            for (size_t g = 0; g < bs / 16; g++) {
                int32_t isum = 0;
                for (int i = 0; i < 16; i++) isum += q[16 * g + i] * x[16 * g + i];
                acc += sc[g] * d[g / 2] * (float)isum;
                if (offsets) acc -= mn[g] * (d[g / 2] * (float)s[g]);
            }
            out[j] += acc;
        }
    }
}

#if PK_X86
// ---- AVX2: levels unpacked in vector registers, products with maddubs ----
//
// maddubs multiplies unsigned by signed bytes: the levels go in unsigned (q3_k + 4, q6_k + 32, the others as
// stored), the bias taken back out of the integer sum (see block_scales_i8). iq4's table levels (-127..113) stay
// signed and take the sign trick: |w| times x with w's sign.

PK_AVX2 static inline __m256i nibbles_lo_hi(__m128i v) {
    const __m128i m = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// The value of the IEEE half at p by F16C (exact, as half_value).
PK_AVX2 static inline float half_f16c(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// The 256-weight formats, block by block, all in registers (nothing goes through memory between the unpacking and
// the products: stores of scales read back as vectors stall the store-to-load forwarding).
//
// A block gives its integer sub-block scales as int8 (16 for the formats with 16-weight groups: q2_k, q3_k, q6_k; 8
// for those with 32-weight sub-blocks: q5_k, iq4_xs) and its float super-scale d; q2_k and q5_k also their unsigned
// integer minimums (16 or 8) and the float dmin. The offsets then stay integers: q3_k's and q6_k's level bias (4, 32)
// folds into the block's integer sum as bias * sum_g scale_g * bsum_g; q2_k's and q5_k's minimums give a second
// integer sum, sum_g min_g * bsum_g, times dmin. (bsum_g: the sum of the int8 activations of 16-weight group g.)
typedef struct {
    __m128i sc8, mins;
    float d, dmin;
} vec_block_scales;

PK_AVX2 PK_INLINE vec_block_scales block_scales_i8(const int type, const uint8_t *b) {
    vec_block_scales s = {_mm_setzero_si128(), _mm_setzero_si128(), 0.f, 0.f};
    switch (type) {
    case PK_Q2_K: {
        const __m128i v = _mm_loadu_si128((const __m128i *)b), m4 = _mm_set1_epi8(0xF);
        s.sc8 = _mm_and_si128(v, m4);
        s.mins = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        s.d = half_f16c(b + 80);
        s.dmin = half_f16c(b + 82);
        break;
    }
    case PK_Q3_K: {
        // Low 4 bits: the nibbles of bytes 0-7 (scales 0-7, then 8-15); high 2 bits: bits 2t..2t+1 of bytes 8-11
        // for scales 4t..4t+3. Offset 32; levels biased by 4.
        const uint8_t *p = b + 96;
        const __m128i a = _mm_loadl_epi64((const __m128i *)p), m4 = _mm_set1_epi8(0xF);
        const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(a, m4), _mm_and_si128(_mm_srli_epi16(a, 4), m4));
        int32_t h;
        memcpy(&h, p + 8, 4);
        const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(h), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
        s.sc8 = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
        s.d = half_f16c(b + 108);
        break;
    }
    case PK_Q6_K:
        s.sc8 = _mm_loadu_si128((const __m128i *)(b + 192));
        s.d = half_f16c(b + 208);
        break;
    case PK_Q5_K: {
        // The 12 bytes as three words: scales 0-3 and mins 0-3 in the low 6 bits of words 0 and 1; scales and mins
        // 4-7 from the nibbles of word 2 and the top 2 bits of words 0 and 1.
        uint32_t u[3];
        memcpy(u, b + 4, 12);
        const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
        const uint32_t s_lo = u[0] & m6, m_lo = u[1] & m6;
        const uint32_t s_hi = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
        const uint32_t m_hi = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
        s.sc8 = _mm_setr_epi32((int)s_lo, (int)s_hi, 0, 0);
        s.mins = _mm_setr_epi32((int)m_lo, (int)m_hi, 0, 0);
        s.d = half_f16c(b);
        s.dmin = half_f16c(b + 2);
        break;
    }
    case PK_IQ4_XS: {
        // 4 low bits from the nibbles of bytes 4-7, 2 high bits from the u16 at byte 2; offset 32.
        int32_t l;
        memcpy(&l, b + 4, 4);
        const int32_t h = b[2] | (b[3] << 8);
        const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)), _mm256_set1_epi32(0xF));
        const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(h), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)), _mm256_set1_epi32(3));
        const __m256i ls = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
        const __m128i s16 = _mm_packs_epi32(_mm256_castsi256_si128(ls), _mm256_extracti128_si256(ls, 1));
        s.sc8 = _mm_packs_epi16(s16, s16);
        s.d = half_f16c(b);
        break;
    }
    default:
        break;
    }
    return s;
}

// Whether a 256-weight format's scales are per 16 weights (else per 32).
static inline int groups_of_16(int type) { return type == PK_Q2_K || type == PK_Q3_K || type == PK_Q6_K; }

// The levels of chunk c (weights 32c..32c+31) of a 256-weight block: unsigned (q3_k + 4, q6_k + 32), iq4_xs signed.
PK_AVX2 PK_INLINE __m256i chunk_levels(const int type, const uint8_t *b, const int c) {
    const __m256i m2 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    const int n = c / 4, p = c % 4;
    switch (type) {
    case PK_Q2_K:
        return _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(b + 16 + 32 * n)), 2 * p), m2);
    case PK_Q3_K: {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(b + 32 + 32 * n)), 2 * p), m2);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)b), 4 * n + p), one);
        return _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
    }
    case PK_Q5_K: {
        // 64 weights per 32 bytes: chunk 2p the low nibbles, 2p + 1 the high; fifth bit c of qh.
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b + 48 + 32 * (c / 2)));
        const __m256i nib = c % 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(b + 16)), c), one);
        return _mm256_or_si256(nib, _mm256_slli_epi16(h, 4));
    }
    case PK_Q6_K: {
        // 128 weights per 64 ql bytes and 32 qh bytes: chunks 0, 1 the low nibbles of ql 0-31, 32-63; 2, 3 the high.
        const __m256i l = _mm256_loadu_si256((const __m256i *)(b + 64 * n + 32 * (p % 2)));
        const __m256i nib = p < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * n)), 2 * p), m2);
        return _mm256_or_si256(nib, _mm256_slli_epi16(h, 4));
    }
    case PK_IQ4_XS: {
        const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4_levels));
        return _mm256_shuffle_epi8(table, nibbles_lo_hi(_mm_loadu_si128((const __m128i *)(b + 8 + 16 * c))));
    }
    default:
        return _mm256_setzero_si256();
    }
}

#ifndef ROW_PREFETCH
#define ROW_PREFETCH 4096
#endif

// The 256-weight formats, one row against mt <= 4 inputs whose activations share one scale per 256
// (pk_quantize_activations_for): per block, the levels times the activations summed in int32 lanes with the integer
// sub-block scales (maddubs, then madd with the scales), the offsets as integers too (see block_scales_i8; bs16: the
// inputs' int16 sums per 16 activations), one conversion to float, times d * dx. `type` and `mt` are constants in
// each instantiation below (so that the accumulators stay in registers and the chunk loop unrolls). Two rows per pass
// measured slower once the offsets became integer sums (q5_k on 8960-wide rows: 0.92x llama.cpp against 1.40x).
// out[j] = dot(row, x_j).
PK_AVX2 PK_INLINE void row_dot_avx2_body(const int type, const uint8_t *row, size_t k, const int8_t *qx,
                                         const float *dx, const int16_t *bs16, const int mt, float *out) {
    const size_t bb = pk_quant_block_bytes(type), nx = k / 32, ns = k / 16;
    const int is_signed = type == PK_IQ4_XS, g16 = groups_of_16(type);
    const int has_mins = type == PK_Q2_K || type == PK_Q5_K;
    const int bias_shift = type == PK_Q3_K ? 2 : type == PK_Q6_K ? 5 : 0;   // level bias 4 or 32
    __m256 acc[4], macc[4];
    for (int j = 0; j < mt; j++) acc[j] = macc[j] = _mm256_setzero_ps();
    for (size_t b = 0; b < k / 256; b++) {
        const uint8_t *blk = row + b * bb;
        // Rows follow one another in memory: fetch ahead of the block in use (the hardware prefetchers alone leave
        // decoding well short of the memory's bandwidth on these formats).
        for (size_t line = 0; line < bb; line += 64) _mm_prefetch((const char *)(blk + ROW_PREFETCH + line), _MM_HINT_T0);
        const vec_block_scales sc = block_scales_i8(type, blk);
        // The int16 scales, scales 0-7 in both 128-bit lanes and (16-weight groups) scales 8-15 in both: one in-lane
        // shuffle per chunk then spreads (s[2c] x 8, s[2c + 1] x 8), or s[c] x 16 for 32-weight sub-blocks.
        const __m256i all16 = _mm256_cvtepi8_epi16(sc.sc8);
        const __m256i first8 = _mm256_permute2x128_si256(all16, all16, 0x00);
        const __m256i last8 = _mm256_permute2x128_si256(all16, all16, 0x11);
        __m256i isum[4];
        for (int j = 0; j < mt; j++) isum[j] = _mm256_setzero_si256();
#pragma clang loop unroll(full)
        for (int c = 0; c < 8; c++) {
            const int lo = g16 ? 2 * (c % 4) : c, hi = g16 ? 2 * (c % 4) + 1 : c;
            const __m256i pick = _mm256_setr_epi8((char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1),
                (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1),
                (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1),
                (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1),
                (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1),
                (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1));
            const __m256i lv = chunk_levels(type, blk, c);
            const __m256i wu = is_signed ? _mm256_sign_epi8(lv, lv) : lv;
            const __m256i s16 = _mm256_shuffle_epi8(g16 && c >= 4 ? last8 : first8, pick);
            for (int j = 0; j < mt; j++) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(qx + j * k + 256 * b + 32 * (size_t)c));
                if (is_signed) x = _mm256_sign_epi8(x, lv);
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(wu, x), s16));
            }
        }
        for (int j = 0; j < mt; j++) {
            const __m256i bsum = _mm256_loadu_si256((const __m256i *)(bs16 + j * ns + 16 * b));
            const float dxj = dx[j * nx + 8 * b];
            __m256i t = isum[j];
            // q3_k / q6_k: levels stored + bias: minus bias * sum_g scale_g * bsum_g.
            if (bias_shift) t = _mm256_sub_epi32(t, _mm256_slli_epi32(_mm256_madd_epi16(all16, bsum), bias_shift));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(sc.d * dxj), acc[j]);
            if (has_mins) {
                // q2_k: a minimum per 16 weights; q5_k: per 32 (each taken twice, once per half).
                const __m128i m = type == PK_Q5_K ? _mm_unpacklo_epi8(sc.mins, sc.mins) : sc.mins;
                const __m256i mi = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m), bsum);
                macc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mi), _mm256_set1_ps(sc.dmin * dxj), macc[j]);
            }
        }
    }
    for (int j = 0; j < mt; j++) out[j] = pk_hsum256(_mm256_sub_ps(acc[j], macc[j]));
}

// Rows [r0, r1) of a row-layout matrix against m_count inputs into y[m * ldy + r], up to 4 inputs at a time.
#define ROWS_DOT_AVX2(T)                                                                                             \
    PK_AVX2 static void rows_dot_avx2_##T(const uint8_t *w, size_t row_bytes, size_t r0, size_t r1, size_t k,       \
                                          const int8_t *qx, const float *dx, const int16_t *bs16, size_t m_count,   \
                                          float *y, size_t ldy) {                                                   \
        float out[4];                                                                                               \
        for (size_t r = r0; r < r1; r++) {                                                                          \
            for (size_t m0 = 0; m0 < m_count; m0 += 4) {                                                            \
                const size_t mt = m_count - m0 < 4 ? m_count - m0 : 4;                                              \
                const int8_t *x = qx + m0 * k;                                                                      \
                const float *d = dx + m0 * (k / 32);                                                                \
                const int16_t *bs = bs16 + m0 * (k / 16);                                                           \
                const uint8_t *wr = w + r * row_bytes;                                                              \
                switch (mt) {                                                                                       \
                case 1: row_dot_avx2_body(PK_##T, wr, k, x, d, bs, 1, out); break;                                  \
                case 2: row_dot_avx2_body(PK_##T, wr, k, x, d, bs, 2, out); break;                                  \
                case 3: row_dot_avx2_body(PK_##T, wr, k, x, d, bs, 3, out); break;                                  \
                default: row_dot_avx2_body(PK_##T, wr, k, x, d, bs, 4, out); break;                                 \
                }                                                                                                   \
                for (size_t j = 0; j < mt; j++) y[(m0 + j) * ldy + r] = out[j];                                     \
            }                                                                                                       \
        }                                                                                                           \
    }
ROWS_DOT_AVX2(Q2_K)
ROWS_DOT_AVX2(Q3_K)
ROWS_DOT_AVX2(Q5_K)
ROWS_DOT_AVX2(Q6_K)
ROWS_DOT_AVX2(IQ4_XS)

typedef void (*rows_kernel)(const uint8_t *, size_t, size_t, size_t, size_t, const int8_t *, const float *,
                            const int16_t *, size_t, float *, size_t);

static rows_kernel rows_kernel_avx2(int type) {
    switch (type) {
    case PK_Q2_K: return rows_dot_avx2_Q2_K;
    case PK_Q3_K: return rows_dot_avx2_Q3_K;
    case PK_Q5_K: return rows_dot_avx2_Q5_K;
    case PK_Q6_K: return rows_dot_avx2_Q6_K;
    case PK_IQ4_XS: return rows_dot_avx2_IQ4_XS;
    default: return NULL;
    }
}
#endif

void pk_rows_gemv_q8x(int type, const uint8_t *w, size_t rows, size_t k, const int8_t *qx, const float *dx,
                      float *y, size_t ldy, size_t m_count, size_t g0, size_t g1) {
    const size_t row_bytes = k / pk_quant_block_size(type) * pk_quant_block_bytes(type);
    const int tier = pk_tier();
    const size_t r1 = rows < 8 * g1 ? rows : 8 * g1;
    if (8 * g0 >= r1) return;
    int16_t *bs16 = activation_sums16(qx, k, m_count);
    if (!bs16) {   // no memory for the sums: dequantize row by row instead (slow, but right)
        float *wr = malloc(k * sizeof(float));
        for (size_t r = 8 * g0; r < r1 && wr; r++) {
            pk_row_dequantize(type, w + r * row_bytes, k, wr, NULL);
            for (size_t m = 0; m < m_count; m++) {
                float t = 0;
                for (size_t i = 0; i < k; i++) t += wr[i] * dx[m * (k / 32) + i / 32] * (float)qx[m * k + i];
                y[m * ldy + r] = t;
            }
        }
        free(wr);
        return;
    }
#if PK_X86
    const rows_kernel avx2 = tier >= PK_TIER_AVX2 ? rows_kernel_avx2(type) : NULL;
    if (avx2) {
        avx2(w, row_bytes, 8 * g0, r1, k, qx, dx, bs16, m_count, y, ldy);
        free(bs16);
        return;
    }
#endif
    for (size_t r = 8 * g0; r < r1; r++) {
        const uint8_t *wr = w + r * row_bytes;
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            const size_t mt = m_count - m0 < 4 ? m_count - m0 : 4;
            float out[4];
            const int8_t *x = qx + m0 * k;
            const float *d = dx + m0 * (k / 32);
            const int16_t *bs = bs16 + m0 * (k / 16);
#if PK_ARM64
            if (tier == PK_TIER_NEON) pk_neon_row_dot(type, wr, k, x, d, bs, mt, out);
            else row_dot_scalar(type, wr, k, x, d, bs, mt, out);
#else
            (void)tier;
            row_dot_scalar(type, wr, k, x, d, bs, mt, out);
#endif
            for (size_t j = 0; j < mt; j++) y[(m0 + j) * ldy + r] = out[j];
        }
    }
    free(bs16);
}
