// Quantized matrices in memory: GGML blocks regrouped eight rows at a time ("x8"), so that one 256-bit integer dot
// product (VNNI dpbusd) serves eight output rows at once and no horizontal sums are needed.
//
// Rows are padded to a multiple of 8 (padding rows are zero blocks). For block column b of a group of 8 rows, the
// packed block holds, in order:
//   - q8_0 (272 bytes): the 8 rows' f16 scales, then 8 chunks; chunk c holds bytes 4c..4c+3 of each row's 32
//     quants (row 0 first), each stored + 128 (XOR 0x80) so that they are unsigned for dpbusd;
//   - q4_0 (144 bytes): the 8 f16 scales, then 4 chunks of bytes 4c..4c+3 of each row's 16 nibble bytes (low nibble:
//     weight 4c+i, high nibble: weight 16+4c+i);
//   - q5_0 (176 bytes): the 8 f16 scales, the 8 rows' 32-bit masks of fifth bits (bit j: weight j), then the nibble
//     chunks as q4_0;
//   - q4_1 (160 bytes): the 8 f16 scales d, the 8 f16 minimums m, then the nibble chunks as q4_0;
//   - q5_1 (192 bytes): the 8 f16 d, the 8 f16 m, the 8 masks of fifth bits, then the nibble chunks as q4_0;
//   - iq4_nl (144 bytes): as q4_0, the nibbles being indices into iq4_nl's table of 16 levels;
//   - q4_k (1152 bytes): the 8 f16 super-scales d, the 8 f16 super-mins dmin, the 12 bytes of packed 6-bit scales
//     and mins of each row as [byte][row] (96; the kernels unpack them for all 8 rows at once), then 32 chunks of 4
//     bytes of each row's 128 quant bytes.
// Each takes exactly the bytes of its 8 GGML blocks. The other formats stay in GGML's row layout (quant_rows.c).
// Packing is lossless: each row's GGML block is recovered exactly (pk_unpack_row), so files written from memory and
// dequantized values are those of the GGML blocks.
#include "CKernels.h"
#include "internal.h"

#include <stdlib.h>

size_t pk_packed_block_bytes(int type) {
    if (pk_is_row_type(type)) return 8 * pk_quant_block_bytes(type);   // 8 rows, one after the other (quant_rows.c)
    switch (type) {
    case PK_Q8_0: return 272;
    case PK_Q4_0: return 144;
    case PK_Q5_0: return 176;
    case PK_Q4_1: return 160;
    case PK_Q5_1: return 192;
    case PK_IQ4_NL: return 144;
    default: return 1152;   // q4_k
    }
}

size_t pk_packed_bytes(int type, size_t rows, size_t k) {
    return (rows + 7) / 8 * (k / pk_quant_block_size(type)) * pk_packed_block_bytes(type);
}

// Header bytes before the quant chunks, and quant bytes per GGML block row.
static size_t header_bytes(int type) {
    switch (type) {
    case PK_Q4_K: return 128;
    case PK_Q5_0: return 48;
    case PK_Q4_1: return 32;
    case PK_Q5_1: return 64;
    default: return 16;
    }
}
static size_t quant_bytes(int type) { return type == PK_Q8_0 ? 32 : type == PK_Q4_K ? 128 : 16; }
// GGML's bytes before the quants: d (2), then m (2) for q4_1/q5_1, then the fifth bits (4) for q5_0/q5_1.
static size_t ggml_header_bytes(int type) {
    switch (type) {
    case PK_Q4_K: return 16;
    case PK_Q5_0: return 6;
    case PK_Q4_1: return 4;
    case PK_Q5_1: return 8;
    default: return 2;
    }
}
// Where the 8 rows' f16 minimums (q4_1, q5_1) and 32-bit masks of fifth bits (q5_0, q5_1) sit in a packed block.
enum { MINS_AT = 16 };
static inline size_t fifth_bits_at(int type) { return type == PK_Q5_1 ? 32 : 16; }
static inline int has_fifth_bits(int type) { return type == PK_Q5_0 || type == PK_Q5_1; }
static inline int has_mins(int type) { return type == PK_Q4_1 || type == PK_Q5_1; }

// q4_k: the 6-bit scales and mins of the 8 rows of a packed block (12 bytes per row as [byte][row] at 32) unpacked to
// un[8 * j + r] (scale of sub-block j, row r) and un[64 + 8 * j + r] (its min). Bytes 0-3 hold scales 0-3 (low 6
// bits), 4-7 mins 0-3; bytes 8-11 the low 4 bits of scales 4-7 (low nibble) and mins 4-7 (high nibble), whose top 2
// bits are the top bits of bytes 0-3 (scales) and 4-7 (mins).
// Row r's scales sc[j] and mins mn[j] alone (what dequantizing one row needs).
static inline void q4k_row_scales(const uint8_t *blk, int r, uint8_t sc[8], uint8_t mn[8]) {
    const uint8_t *q = blk + 32 + r;
    for (int j = 0; j < 4; j++) {
        sc[j] = q[8 * j] & 63;
        mn[j] = q[8 * (j + 4)] & 63;
        sc[j + 4] = (q[8 * (j + 8)] & 0xF) | ((q[8 * j] >> 6) << 4);
        mn[j + 4] = (q[8 * (j + 8)] >> 4) | ((q[8 * (j + 4)] >> 6) << 4);
    }
}

void pk_q4k_unpack_scales(const uint8_t *blk, uint8_t un[128]) {
    for (int r = 0; r < 8; r++) {
        uint8_t sc[8], mn[8];
        q4k_row_scales(blk, r, sc, mn);
        for (int j = 0; j < 8; j++) {
            un[8 * j + r] = sc[j];
            un[64 + 8 * j + r] = mn[j];
        }
    }
}

void pk_pack_group(int type, const uint8_t *const rows[8], size_t k, uint8_t *out) {
    if (pk_is_row_type(type)) {
        const size_t row_bytes = k / pk_quant_block_size(type) * pk_quant_block_bytes(type);
        for (int r = 0; r < 8; r++) {
            if (rows[r]) memcpy(out + r * row_bytes, rows[r], row_bytes);
            else memset(out + r * row_bytes, 0, row_bytes);
        }
        return;
    }
    const size_t bb = pk_quant_block_bytes(type), pb = pk_packed_block_bytes(type), nb = k / pk_quant_block_size(type);
    const size_t hb = header_bytes(type), qb = quant_bytes(type), gh = ggml_header_bytes(type);
    const uint8_t flip = type == PK_Q8_0 ? 0x80 : 0;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *dst = out + b * pb;
        memset(dst, 0, pb);
        for (int r = 0; r < 8; r++) {
            const uint8_t *src = rows[r] ? rows[r] + b * bb : NULL;
            if (src) {
                memcpy(dst + 2 * r, src, 2);
                if (type == PK_Q4_K) {
                    memcpy(dst + 16 + 2 * r, src + 2, 2);
                    for (int j = 0; j < 12; j++) dst[32 + 8 * j + r] = src[4 + j];
                }
                if (has_mins(type)) memcpy(dst + MINS_AT + 2 * r, src + 2, 2);
                if (has_fifth_bits(type)) memcpy(dst + fifth_bits_at(type) + 4 * r, src + gh - 4, 4);
            }
            for (size_t c = 0; c < qb / 4; c++) {
                for (int i = 0; i < 4; i++) dst[hb + c * 32 + 4 * r + i] = (src ? src[gh + 4 * c + i] : 0) ^ flip;
            }
        }
    }
}

void pk_unpack_row(int type, const uint8_t *group, size_t k, int r, uint8_t *out) {
    if (pk_is_row_type(type)) {
        const size_t row_bytes = k / pk_quant_block_size(type) * pk_quant_block_bytes(type);
        memcpy(out, group + r * row_bytes, row_bytes);
        return;
    }
    const size_t bb = pk_quant_block_bytes(type), pb = pk_packed_block_bytes(type), nb = k / pk_quant_block_size(type);
    const size_t hb = header_bytes(type), qb = quant_bytes(type), gh = ggml_header_bytes(type);
    const uint8_t flip = type == PK_Q8_0 ? 0x80 : 0;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *src = group + b * pb;
        uint8_t *dst = out + b * bb;
        memcpy(dst, src + 2 * r, 2);
        if (has_mins(type)) memcpy(dst + 2, src + MINS_AT + 2 * r, 2);
        if (has_fifth_bits(type)) memcpy(dst + gh - 4, src + fifth_bits_at(type) + 4 * r, 4);
        if (type == PK_Q4_K) {
            memcpy(dst + 2, src + 16 + 2 * r, 2);
            for (int j = 0; j < 12; j++) dst[4 + j] = src[32 + 8 * j + r];
        }
        for (size_t c = 0; c < qb / 4; c++) {
            for (int i = 0; i < 4; i++) dst[gh + 4 * c + i] = src[hb + c * 32 + 4 * r + i] ^ flip;
        }
    }
}

// ---- dequantization of rows [r0, r1) (f32 or bf16, row-major [r1 - r0, k]) ----


// Values of row r (0..7) of one packed block into y (block-size floats).
static void dequantize_packed_block(int type, const uint8_t *blk, int r, float *y) {
    const float d = f16_at(blk + 2 * r);
    const size_t hb = header_bytes(type);
    if (type == PK_Q8_0) {
        for (int c = 0; c < 8; c++)
            for (int i = 0; i < 4; i++) y[4 * c + i] = d * (float)(int8_t)(blk[hb + c * 32 + 4 * r + i] ^ 0x80);
    } else if (type != PK_Q4_K) {
        // The 4- and 5-bit formats of 32: level l of weight j; q4_0 d * (l - 8), q5_0 d * (l - 16), q4_1 / q5_1
        // d * l + m, iq4_nl d * table[l], each rounded as GGML's reference code rounds it (no contraction).
        uint32_t qh = 0;
        if (has_fifth_bits(type)) memcpy(&qh, blk + fifth_bits_at(type) + 4 * r, 4);
        const float m = has_mins(type) ? f16_at(blk + MINS_AT + 2 * r) : 0.f;
        for (int j = 0; j < 32; j++) {
            const uint8_t v = blk[hb + (j % 16) / 4 * 32 + 4 * r + j % 4];
            const int l = (j < 16 ? v & 0xF : v >> 4) | (int)(((qh >> j) & 1) << 4);
            switch (type) {
            case PK_Q4_0: y[j] = d * (float)(l - 8); break;
            case PK_Q5_0: y[j] = d * (float)(l - 16); break;
            case PK_IQ4_NL: y[j] = d * (float)pk_iq4_levels[l]; break;
            default: { const float t = (float)l * d; y[j] = t + m; } break;
            }
        }
    } else {
        const float dmin = f16_at(blk + 16 + 2 * r);
        uint8_t sc[8], mn[8];
        q4k_row_scales(blk, r, sc, mn);
        for (int p = 0; p < 4; p++) {
            const float s0 = d * sc[2 * p], m0 = dmin * mn[2 * p];
            const float s1 = d * sc[2 * p + 1], m1 = dmin * mn[2 * p + 1];
            for (int c = 0; c < 8; c++)
                for (int i = 0; i < 4; i++) {
                    const uint8_t v = blk[hb + (8 * p + c) * 32 + 4 * r + i];
                    y[64 * p + 4 * c + i] = s0 * (float)(v & 0xF) - m0;
                    y[64 * p + 32 + 4 * c + i] = s1 * (float)(v >> 4) - m1;
                }
        }
    }
}

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// 16 values to bf16, round to nearest even (NaN stays a quiet NaN), as pk_f32_to_bf16.
#if PK_X86
PK_AVX512 static inline void store_bf16x16(uint16_t *dst, __m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i r = _mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    _mm256_storeu_si256((__m256i *)dst, _mm512_cvtepi32_epi16(r));
}

PK_AVX512 static inline float half_fast(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

PK_AVX512 static inline void put16(float *of, uint16_t *ob, size_t at, __m512 v) {
    if (of) _mm512_storeu_ps(of + at, v);
    else store_bf16x16(ob + at, v);
}

// Row r of a packed group's 4-byte chunks c0, c0 + 1, ... (n of them, stride 32 bytes) as one vector of bytes.
PK_AVX512 static inline __m128i row_bytes16(const uint8_t *chunks, int r) {
    const uint8_t *p = chunks + 4 * r;
    return _mm_setr_epi32((int)load_u32(p), (int)load_u32(p + 32), (int)load_u32(p + 64), (int)load_u32(p + 96));
}

// Rows [r0, r1) dequantized into of (f32) or ob (bf16), row-major with leading dimension k.
PK_AVX512 static void dequantize_rows_avx512(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, float *of,
                                             uint16_t *ob) {
    const size_t bs = pk_quant_block_size(type), nb = k / bs, pb = pk_packed_block_bytes(type), hb = header_bytes(type);
    const __m512i low = _mm512_set1_epi32(0xF);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *group = w + (r / 8) * nb * pb;
        const int i = (int)(r % 8);
        const size_t row = (r - r0) * k;
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *blk = group + b * pb;
            const size_t at = row + b * bs;
            const __m512 d = _mm512_set1_ps(half_fast(blk + 2 * i));
            if (type == PK_Q8_0) {
                const __m128i flip = _mm_set1_epi8((char)0x80);
                const __m128i lo = _mm_xor_si128(row_bytes16(blk + hb, i), flip);
                const __m128i hi = _mm_xor_si128(row_bytes16(blk + hb + 128, i), flip);
                put16(of, ob, at, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))));
                put16(of, ob, at + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))));
            } else if (type == PK_Q5_0) {
                const __m512i v = _mm512_cvtepu8_epi32(row_bytes16(blk + hb, i));
                const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                uint32_t qh;
                memcpy(&qh, blk + 16 + 4 * i, 4);
                const __m512i one = _mm512_set1_epi32(1), sixteen = _mm512_set1_epi32(16);
                const __m512i h0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)qh), lanes), one), 4);
                const __m512i h1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)(qh >> 16)), lanes), one), 4);
                put16(of, ob, at, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_or_si512(_mm512_and_si512(v, low), h0), sixteen))));
                put16(of, ob, at + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_or_si512(_mm512_srli_epi32(v, 4), h1), sixteen))));
            } else if (type == PK_Q4_0) {
                const __m512i v = _mm512_cvtepu8_epi32(row_bytes16(blk + hb, i));
                const __m512i eight = _mm512_set1_epi32(8);
                put16(of, ob, at, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, low), eight))));
                put16(of, ob, at + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight))));
            } else {
                const float dmin = half_fast(blk + 16 + 2 * i), dd = half_fast(blk + 2 * i);
                uint8_t sc[8], mn[8];
                q4k_row_scales(blk, i, sc, mn);
                for (int p = 0; p < 4; p++) {
                    const __m512 s0 = _mm512_set1_ps(dd * sc[2 * p]), m0 = _mm512_set1_ps(dmin * mn[2 * p]);
                    const __m512 s1 = _mm512_set1_ps(dd * sc[2 * p + 1]), m1 = _mm512_set1_ps(dmin * mn[2 * p + 1]);
                    const uint8_t *chunks = blk + hb + 256 * p;
                    const __m512i va = _mm512_cvtepu8_epi32(row_bytes16(chunks, i));
                    const __m512i vb = _mm512_cvtepu8_epi32(row_bytes16(chunks + 128, i));
                    put16(of, ob, at + 64 * p, _mm512_sub_ps(_mm512_mul_ps(s0, _mm512_cvtepi32_ps(_mm512_and_si512(va, low))), m0));
                    put16(of, ob, at + 64 * p + 16, _mm512_sub_ps(_mm512_mul_ps(s0, _mm512_cvtepi32_ps(_mm512_and_si512(vb, low))), m0));
                    put16(of, ob, at + 64 * p + 32, _mm512_sub_ps(_mm512_mul_ps(s1, _mm512_cvtepi32_ps(_mm512_srli_epi32(va, 4))), m1));
                    put16(of, ob, at + 64 * p + 48, _mm512_sub_ps(_mm512_mul_ps(s1, _mm512_cvtepi32_ps(_mm512_srli_epi32(vb, 4))), m1));
                }
            }
        }
    }
}

#endif

// The scalar twin, also compiled for AVX2 (the compiler vectorises the per-block loops).
PK_INLINE void dequantize_rows_body(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, float *of,
                                    uint16_t *ob) {
    float buf[256];
    const size_t bs = pk_quant_block_size(type), nb = k / bs, pb = pk_packed_block_bytes(type);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *group = w + (r / 8) * nb * pb;
        for (size_t b = 0; b < nb; b++) {
            float *y = of ? of + (r - r0) * k + b * bs : buf;
            dequantize_packed_block(type, group + b * pb, (int)(r % 8), y);
            if (!of)
                for (size_t j = 0; j < bs; j++) ob[(r - r0) * k + b * bs + j] = pk_to_bf16_scalar(buf[j]);
        }
    }
}

#if PK_X86
PK_AVX2 static void dequantize_rows_avx2(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, float *of,
                                         uint16_t *ob) {
    dequantize_rows_body(type, w, k, r0, r1, of, ob);
}
#endif

static void dequantize_rows(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, float *of, uint16_t *ob) {
    if (pk_is_row_type(type)) {
        const size_t row_bytes = k / pk_quant_block_size(type) * pk_quant_block_bytes(type);
        for (size_t r = r0; r < r1; r++)
            pk_row_dequantize(type, w + r * row_bytes, k, of ? of + (r - r0) * k : NULL, of ? NULL : ob + (r - r0) * k);
        return;
    }
#if PK_X86
    const int avx512_body = type == PK_Q8_0 || type == PK_Q4_0 || type == PK_Q5_0 || type == PK_Q4_K;
    if (pk_has_avx512() && avx512_body) { dequantize_rows_avx512(type, w, k, r0, r1, of, ob); return; }
    if (pk_has_avx2()) { dequantize_rows_avx2(type, w, k, r0, r1, of, ob); return; }
#endif
    dequantize_rows_body(type, w, k, r0, r1, of, ob);
}

void pk_packed_dequantize(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, float *out) {
    dequantize_rows(type, w, k, r0, r1, out, NULL);
}

void pk_packed_dequantize_bf16(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, uint16_t *out) {
    dequantize_rows(type, w, k, r0, r1, NULL, out);
}

// ---- products with 8-bit activations: y[m, r] = sum_b dw[r,b] dx[m,b] (sum_i q[r,i] qx[m,i] - offset sx[m,b]) ----

// Activations to 8 bits: q = roundf(x / d) (half away from zero) with d = amax / 127 over each block of `span`
// (32, or 256 for the row-layout k-quants as llama.cpp's q8_K), one scale and one integer sum per 32 written for the
// blocks of 32 it covers. The vector body gives the same bytes as the scalar one.
static void quantize_span_scalar(const float *x, size_t span, int8_t *qx, float *dx, int32_t *sx, int f16_scale) {
    float amax = 0;
    for (size_t j = 0; j < span; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
    for (size_t c = 0; c < span / 32; c++) {
        int32_t s = 0;
        for (size_t j = 32 * c; j < 32 * c + 32; j++) {
            const int v = (int)roundf(x[j] * id);
            qx[j] = (int8_t)v;
            s += v;
        }
        dx[c] = f16_scale ? f16_value(f16_bits(d)) : d;   // q8_0 blocks store the scale as f16; q8_K as f32
        sx[c] = s;
    }
}

#if PK_X86
PK_AVX2 static void quantize_span_avx2(const float *x, size_t span, int8_t *qx, float *dx, int32_t *sx, int f16_scale) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (size_t j = 0; j < span; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h), d = amax / 127.f, id = d ? 1.f / d : 0.f;
    if (amax != amax || id > 3e38f) {   // NaN, or a scale so small that x / d overflows: the scalar body's bytes
        quantize_span_scalar(x, span, qx, dx, sx, f16_scale);
        return;
    }
    const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    for (size_t c = 0; c < span / 32; c++) {
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * i), vid);
            // roundf: truncate, then one step away from zero where the dropped part is at least one half (exact).
            const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 up = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(v, t), abs_mask), half, _CMP_GE_OQ);
            const __m256 step = _mm256_and_ps(up, _mm256_or_ps(one, _mm256_and_ps(v, sign)));
            q[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
        }
        const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        // int32 -> int8 (values within -127..127): packs interleave 128-bit lanes; the permute restores the order.
        const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        _mm256_storeu_si256((__m256i *)(qx + 32 * c), _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        dx[c] = f16_scale ? f16_value(f16_bits(d)) : d;
        sx[c] = _mm_cvtsi128_si32(s4);
    }
}
#endif

static void quantize_spans(const float *x, size_t k, size_t span, int8_t *qx, float *dx, int32_t *sx, int f16_scale) {
#if PK_X86
    if (pk_has_avx2()) {
        for (size_t b = 0; b < k / span; b++)
            quantize_span_avx2(x + span * b, span, qx + span * b, dx + span / 32 * b, sx + span / 32 * b, f16_scale);
        return;
    }
#endif
    for (size_t b = 0; b < k / span; b++)
        quantize_span_scalar(x + span * b, span, qx + span * b, dx + span / 32 * b, sx + span / 32 * b, f16_scale);
}

void pk_quantize_activations(const float *x, size_t k, int8_t *qx, float *dx, int32_t *sx) {
    quantize_spans(x, k, 32, qx, dx, sx, 1);
}

void pk_quantize_activations_for(int type, const float *x, size_t k, int8_t *qx, float *dx, int32_t *sx) {
    if (!pk_is_row_type(type) || pk_quant_block_size(type) != 256) quantize_spans(x, k, 32, qx, dx, sx, 1);
    else quantize_spans(x, k, 256, qx, dx, sx, 0);
}

// Scalar twin of the vector kernel: the same integer sums and the same scaling, for one group and one input.
static void group_q8x_scalar(int type, const uint8_t *g, size_t k, const int8_t *qx, const float *dx,
                             const int32_t *sx, float out[8]) {
    const size_t pb = pk_packed_block_bytes(type), hb = header_bytes(type);
    for (int r = 0; r < 8; r++) out[r] = 0;
    if (type == PK_Q8_0) {
        for (size_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = g + b * pb;
            const int8_t *xb = qx + 32 * b;
            for (int r = 0; r < 8; r++) {
                int32_t isum = -128 * sx[b];
                for (int c = 0; c < 8; c++)
                    for (int i = 0; i < 4; i++) isum += blk[hb + c * 32 + 4 * r + i] * xb[4 * c + i];
                out[r] += f16_at(blk + 2 * r) * dx[b] * (float)isum;
            }
        }
        return;
    }
    if (type != PK_Q4_K) {
        // The 4- and 5-bit formats of 32: integer levels (q4_0 - 8, q5_0 - 16, iq4_nl's table) times the
        // activations, times d dx; q4_1 / q5_1 add m dx sx.
        const int offset = type == PK_Q4_0 ? 8 : type == PK_Q5_0 ? 16 : 0;
        for (size_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = g + b * pb;
            const int8_t *xb = qx + 32 * b;
            for (int r = 0; r < 8; r++) {
                uint32_t qh = 0;
                if (has_fifth_bits(type)) memcpy(&qh, blk + fifth_bits_at(type) + 4 * r, 4);
                int32_t isum = -offset * sx[b];
                for (int j = 0; j < 32; j++) {
                    const uint8_t v = blk[hb + (j % 16) / 4 * 32 + 4 * r + j % 4];
                    const int l = (j < 16 ? v & 0xF : v >> 4) | (int)(((qh >> j) & 1) << 4);
                    isum += (type == PK_IQ4_NL ? pk_iq4_levels[l] : l) * xb[j];
                }
                out[r] += f16_at(blk + 2 * r) * dx[b] * (float)isum;
                if (has_mins(type)) out[r] += f16_at(blk + MINS_AT + 2 * r) * (dx[b] * (float)sx[b]);
            }
        }
        return;
    }
    for (size_t b = 0; b < k / 256; b++) {
        const uint8_t *blk = g + b * pb;
        uint8_t un[128];
        pk_q4k_unpack_scales(blk, un);
        for (int r = 0; r < 8; r++) {
            float fs = 0, ms = 0;
            for (int j = 0; j < 8; j++) {
                const size_t xb = 8 * b + j;
                const int p = j / 2, shift = 4 * (j % 2);
                int32_t isum = 0;
                for (int c = 0; c < 8; c++)
                    for (int i = 0; i < 4; i++) isum += ((blk[hb + (8 * p + c) * 32 + 4 * r + i] >> shift) & 0xF) * qx[32 * xb + 4 * c + i];
                fs += (float)isum * (float)un[8 * j + r] * dx[xb];
                ms += (float)un[64 + 8 * j + r] * dx[xb] * (float)sx[xb];
            }
            out[r] += f16_at(blk + 2 * r) * fs - f16_at(blk + 16 + 2 * r) * ms;
        }
    }
}

#if PK_X86
#ifndef PREFETCH
#define PREFETCH 4096
#endif

#define PK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx512vnni")))

// acc + sum over groups of four of u8 a times s8 b, per 32-bit lane.
PK_VNNI static inline __m256i dot4_vnni(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_epi32(acc, a, b); }
#define PK_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
PK_AVXVNNI static inline __m256i dot4_avxvnni(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
PK_AVX2 static inline __m256i dot4_avx2(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
}
// vpdpbusd's meaning in AVX2 (no saturation: u8 and s8 widened to int16, pairs then quads summed), for the tests of
// the VNNI bodies on machines without VNNI (pk_force_emulated_vnni).
PK_AVX2 static inline __m256i dot4_emulated(__m256i acc, __m256i a, __m256i b) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i lo = _mm256_madd_epi16(_mm256_unpacklo_epi8(a, zero), _mm256_srai_epi16(_mm256_unpacklo_epi8(b, b), 8));
    const __m256i hi = _mm256_madd_epi16(_mm256_unpackhi_epi8(a, zero), _mm256_srai_epi16(_mm256_unpackhi_epi8(b, b), 8));
    return _mm256_add_epi32(acc, _mm256_hadd_epi32(lo, hi));
}
PK_AVX512 static inline __m256i dot4_avx(__m256i acc, __m256i a, __m256i b) {
    // maddubs saturates at 2^15: fine for 4-bit a (15 * 127 * 2); q8_0 takes the sign path below instead.
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
}

static inline int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// One group of 8 rows against up to 4 inputs (MT of them): weights of a block are unpacked once for all inputs.
#define GROUP_Q8X_BODY(DOT, SIGNED_Q8)                                                                                 \
    const size_t pb = pk_packed_block_bytes(type), nb = k / 32;                                                        \
    const __m256i low = _mm256_set1_epi8(0xF);                                                                         \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};              \
    if (type != PK_Q4_K) {                                                                                              \
        const int q8 = type == PK_Q8_0, q5 = has_fifth_bits(type), nl = type == PK_IQ4_NL, mins = has_mins(type);       \
        /* Offsets: the unsigned levels' bias times the activations' sum (iq4_nl: its table + 128 for dpbusd; with      \
           the sign trick, signed levels and none). */                                                                  \
        const int32_t offset = q8 ? (SIGNED_Q8 ? 0 : -128) : type == PK_Q4_0 ? -8 : type == PK_Q5_0 ? -16               \
                             : nl && !SIGNED_Q8 ? -128 : 0;                                                             \
        /* q5_0 / q5_1: each lane's fifth bits, spread one per byte (bit 4) for the 4 weights of a chunk. */            \
        const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12,                     \
                                                0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);                    \
        const __m256i bits = _mm256_setr_epi8(1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8,                           \
                                              1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8);                          \
        const __m256i fifth = _mm256_set1_epi8(0x10);                                                                   \
        const __m256i table = _mm256_add_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4_levels)), \
                                              _mm256_set1_epi8(SIGNED_Q8 ? 0 : (char)0x80));                            \
        const size_t at = header_bytes(type), qh_at = fifth_bits_at(type);                                              \
        for (size_t b = 0; b < nb; b++) {                                                                               \
            const uint8_t *blk = g + b * pb;                                                                            \
            _mm_prefetch((const char *)(blk + PREFETCH), _MM_HINT_T0);                                                  \
            _mm_prefetch((const char *)(blk + PREFETCH + 64), _MM_HINT_T0);                                             \
            _mm_prefetch((const char *)(blk + PREFETCH + 128), _MM_HINT_T0);                                            \
            _mm_prefetch((const char *)(blk + PREFETCH + 192), _MM_HINT_T0);                                            \
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));                                   \
            const __m256 mw = mins ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + MINS_AT))) : _mm256_setzero_ps(); \
            __m256i w[8];                                                                                               \
            if (q8) {                                                                                                   \
                for (int c = 0; c < 8; c++) w[c] = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));            \
                if (SIGNED_Q8)                                                                                          \
                    for (int c = 0; c < 8; c++) w[c] = _mm256_xor_si256(w[c], _mm256_set1_epi8((char)0x80));            \
            } else {                                                                                                    \
                const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(blk + qh_at)) : _mm256_setzero_si256();    \
                for (int c = 0; c < 4; c++) {                                                                           \
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + at + 32 * c));                         \
                    w[c] = _mm256_and_si256(v, low);                                                                    \
                    w[4 + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);                                          \
                    if (q5) {                                                                                           \
                        const __m256i b0 = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_srli_epi32(qh, 4 * c), spread), bits); \
                        const __m256i b1 = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_srli_epi32(qh, 16 + 4 * c), spread), bits); \
                        w[c] = _mm256_or_si256(w[c], _mm256_and_si256(_mm256_cmpeq_epi8(b0, bits), fifth));             \
                        w[4 + c] = _mm256_or_si256(w[4 + c], _mm256_and_si256(_mm256_cmpeq_epi8(b1, bits), fifth));     \
                    }                                                                                                   \
                    if (nl) {                                                                                           \
                        w[c] = _mm256_shuffle_epi8(table, w[c]);                                                        \
                        w[4 + c] = _mm256_shuffle_epi8(table, w[4 + c]);                                                \
                    }                                                                                                   \
                }                                                                                                       \
            }                                                                                                           \
            /* Signed levels (q8_0, iq4_nl under the sign trick): |w| times x with w's sign. */                         \
            const int sign_trick = SIGNED_Q8 && (q8 || nl);                                                             \
            for (int j = 0; j < MT; j++) {                                                                              \
                const int8_t *xq = qx + j * k + 32 * b;                                                                 \
                const int32_t sxb = sx[j * nb + b];                                                                     \
                __m256i s0 = _mm256_set1_epi32(offset * sxb), s1 = _mm256_setzero_si256();                              \
                for (int c = 0; c < 8; c += 2) {                                                                        \
                    /* chunk c covers weights 4c..4c+3 (q8_0), or 4c'..+3 and 16+4c'.. (c' = c % 4: 4-bit formats) */   \
                    const int o0 = q8 ? 4 * c : c < 4 ? 4 * c : 16 + 4 * (c - 4);                                       \
                    const int o1 = q8 ? 4 * c + 4 : c < 4 ? 4 * c + 4 : 16 + 4 * (c - 3);                               \
                    const __m256i x0 = _mm256_set1_epi32(load_i32(xq + o0));                                            \
                    const __m256i x1 = _mm256_set1_epi32(load_i32(xq + o1));                                            \
                    if (sign_trick) {                                                                                   \
                        s0 = DOT(s0, _mm256_sign_epi8(w[c], w[c]), _mm256_sign_epi8(x0, w[c]));                         \
                        s1 = DOT(s1, _mm256_sign_epi8(w[c + 1], w[c + 1]), _mm256_sign_epi8(x1, w[c + 1]));             \
                    } else {                                                                                            \
                        s0 = DOT(s0, w[c], x0);                                                                         \
                        s1 = DOT(s1, w[c + 1], x1);                                                                     \
                    }                                                                                                   \
                }                                                                                                       \
                const __m256 dxb = _mm256_set1_ps(dx[j * nb + b]);                                                      \
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), _mm256_mul_ps(dw, dxb), acc[j]); \
                if (mins) acc[j] = _mm256_fmadd_ps(mw, _mm256_mul_ps(dxb, _mm256_set1_ps((float)sxb)), acc[j]);         \
            }                                                                                                           \
        }                                                                                                               \
    } else {                                                                                                           \
        for (size_t b = 0; b < k / 256; b++) {                                                                         \
            const uint8_t *blk = g + b * pb;                                                                           \
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));                                  \
            const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));                           \
            /* the 6-bit scales and mins of sub-blocks 0-3 and 4-7, [sub-block][row] (see pk_q4k_unpack_scales) */         \
            const __m256i q0 = _mm256_loadu_si256((const __m256i *)(blk + 32));                                        \
            const __m256i q1 = _mm256_loadu_si256((const __m256i *)(blk + 64));                                        \
            const __m256i q2 = _mm256_loadu_si256((const __m256i *)(blk + 96));                                        \
            const __m256i m6 = _mm256_set1_epi8(63), m2 = _mm256_set1_epi8(3);                                         \
            const __m256i s03 = _mm256_and_si256(q0, m6), m03 = _mm256_and_si256(q1, m6);                              \
            const __m256i s47 = _mm256_or_si256(_mm256_and_si256(q2, low),                                             \
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q0, 6), m2), 4));                                 \
            const __m256i m47 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q2, 4), low),                       \
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q1, 6), m2), 4));                                 \
            __m256 fs[4], ms[4];                                                                                       \
            for (int j = 0; j < MT; j++) { fs[j] = _mm256_setzero_ps(); ms[j] = _mm256_setzero_ps(); }                 \
            for (int p = 0; p < 4; p++) {                                                                              \
                __m256i wl[8], wh[8];                                                                                  \
                for (int c = 0; c < 8; c++) {                                                                          \
                    if (c % 2 == 0) _mm_prefetch((const char *)(blk + PREFETCH + 128 + 32 * (8 * p + c)), _MM_HINT_T0); \
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * (8 * p + c)));             \
                    wl[c] = _mm256_and_si256(v, low);                                                                  \
                    wh[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);                                            \
                }                                                                                                      \
                /* sub-blocks 2p (low 8 bytes) and 2p + 1 (high 8 bytes) of the 8 rows */                              \
                const __m128i sp = p < 2 ? (p ? _mm256_extracti128_si256(s03, 1) : _mm256_castsi256_si128(s03))        \
                                         : (p == 3 ? _mm256_extracti128_si256(s47, 1) : _mm256_castsi256_si128(s47)); \
                const __m128i mp = p < 2 ? (p ? _mm256_extracti128_si256(m03, 1) : _mm256_castsi256_si128(m03))        \
                                         : (p == 3 ? _mm256_extracti128_si256(m47, 1) : _mm256_castsi256_si128(m47)); \
                const __m256 sl = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sp));                                        \
                const __m256 sh = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(sp, sp)));                \
                const __m256 ml = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(mp));                                        \
                const __m256 mh = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(mp, mp)));                \
                for (int j = 0; j < MT; j++) {                                                                         \
                    const size_t xb = j * nb + 8 * b + 2 * p;                                                          \
                    const int8_t *x0 = qx + 32 * xb, *x1 = x0 + 32;                                                    \
                    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();                                  \
                    for (int c = 0; c < 8; c++) {                                                                      \
                        s0 = DOT(s0, wl[c], _mm256_set1_epi32(load_i32(x0 + 4 * c)));                                  \
                        s1 = DOT(s1, wh[c], _mm256_set1_epi32(load_i32(x1 + 4 * c)));                                  \
                    }                                                                                                  \
                    fs[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(sl, _mm256_set1_ps(dx[xb])), fs[j]); \
                    fs[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(sh, _mm256_set1_ps(dx[xb + 1])), fs[j]); \
                    ms[j] = _mm256_fmadd_ps(ml, _mm256_set1_ps(dx[xb] * (float)sx[xb]), ms[j]);                        \
                    ms[j] = _mm256_fmadd_ps(mh, _mm256_set1_ps(dx[xb + 1] * (float)sx[xb + 1]), ms[j]);                \
                }                                                                                                      \
            }                                                                                                          \
            for (int j = 0; j < MT; j++) acc[j] = _mm256_fnmadd_ps(dm, ms[j], _mm256_fmadd_ps(dw, fs[j], acc[j]));    \
        }                                                                                                              \
    }                                                                                                                  \
    for (int j = 0; j < MT; j++) _mm256_storeu_ps(out + 8 * j, acc[j]);

#define DEFINE_GROUP_KERNEL(NAME, ATTR, DOT, SIGNED_Q8, MTV)                                                           \
    ATTR static void NAME(int type, const uint8_t *g, size_t k, const int8_t *qx, const float *dx, const int32_t *sx,   \
                          float *out) {                                                                                \
        enum { MT = MTV };                                                                                             \
        GROUP_Q8X_BODY(DOT, SIGNED_Q8)                                                                                 \
    }

DEFINE_GROUP_KERNEL(group_vnni_1, PK_VNNI, dot4_vnni, 0, 1)
DEFINE_GROUP_KERNEL(group_vnni_2, PK_VNNI, dot4_vnni, 0, 2)
DEFINE_GROUP_KERNEL(group_vnni_3, PK_VNNI, dot4_vnni, 0, 3)
DEFINE_GROUP_KERNEL(group_vnni_4, PK_VNNI, dot4_vnni, 0, 4)
DEFINE_GROUP_KERNEL(group_avx_1, PK_AVX512, dot4_avx, 1, 1)
DEFINE_GROUP_KERNEL(group_avx_2, PK_AVX512, dot4_avx, 1, 2)
DEFINE_GROUP_KERNEL(group_avx_3, PK_AVX512, dot4_avx, 1, 3)
DEFINE_GROUP_KERNEL(group_avx_4, PK_AVX512, dot4_avx, 1, 4)
// The same 256-bit body on AVX2 (maddubs, sign trick for q8_0) and AVX-VNNI (vpdpbusd, VEX-coded).
DEFINE_GROUP_KERNEL(group_avx2_1, PK_AVX2, dot4_avx2, 1, 1)
DEFINE_GROUP_KERNEL(group_avx2_2, PK_AVX2, dot4_avx2, 1, 2)
DEFINE_GROUP_KERNEL(group_avx2_3, PK_AVX2, dot4_avx2, 1, 3)
DEFINE_GROUP_KERNEL(group_avx2_4, PK_AVX2, dot4_avx2, 1, 4)
DEFINE_GROUP_KERNEL(group_avxvnni_1, PK_AVXVNNI, dot4_avxvnni, 0, 1)
DEFINE_GROUP_KERNEL(group_avxvnni_2, PK_AVXVNNI, dot4_avxvnni, 0, 2)
DEFINE_GROUP_KERNEL(group_avxvnni_3, PK_AVXVNNI, dot4_avxvnni, 0, 3)
DEFINE_GROUP_KERNEL(group_avxvnni_4, PK_AVXVNNI, dot4_avxvnni, 0, 4)
DEFINE_GROUP_KERNEL(group_emulated_1, PK_AVX2, dot4_emulated, 0, 1)
DEFINE_GROUP_KERNEL(group_emulated_2, PK_AVX2, dot4_emulated, 0, 2)
DEFINE_GROUP_KERNEL(group_emulated_3, PK_AVX2, dot4_emulated, 0, 3)
DEFINE_GROUP_KERNEL(group_emulated_4, PK_AVX2, dot4_emulated, 0, 4)
#endif

typedef void (*group_kernel)(int, const uint8_t *, size_t, const int8_t *, const float *, const int32_t *, float *);

void pk_packed_gemv_q8x(int type, const uint8_t *w, size_t rows, size_t k, const int8_t *qx, const float *dx,
                        const int32_t *sx, float *y, size_t ldy, size_t m_count, size_t g0, size_t g1) {
    if (pk_is_row_type(type)) { pk_rows_gemv_q8x(type, w, rows, k, qx, dx, y, ldy, m_count, g0, g1); return; }
    const size_t group_bytes = k / pk_quant_block_size(type) * pk_packed_block_bytes(type), nb = k / 32;
    const group_kernel *kernels = NULL;   // per tier, for 1..4 inputs at a time; NULL: one input at a time
    const int tier = pk_tier(), vnni = pk_has_vnni();
#if PK_X86
    static const group_kernel vnni_kernels[4] = {group_vnni_1, group_vnni_2, group_vnni_3, group_vnni_4};
    static const group_kernel avx_kernels[4] = {group_avx_1, group_avx_2, group_avx_3, group_avx_4};
    static const group_kernel avxvnni_kernels[4] = {group_avxvnni_1, group_avxvnni_2, group_avxvnni_3, group_avxvnni_4};
    static const group_kernel avx2_kernels[4] = {group_avx2_1, group_avx2_2, group_avx2_3, group_avx2_4};
    if (tier == PK_TIER_AVX512) kernels = vnni ? vnni_kernels : avx_kernels;
    static const group_kernel emulated_kernels[4] = {group_emulated_1, group_emulated_2, group_emulated_3, group_emulated_4};
    if (tier == PK_TIER_AVX2) kernels = vnni ? avxvnni_kernels : pk_emulated_vnni() ? emulated_kernels : avx2_kernels;
#else
    (void)vnni;
#endif
    for (size_t g = g0; g < g1; g++) {
        const uint8_t *group = w + g * group_bytes;
        const size_t r = 8 * g, live = rows - r < 8 ? rows - r : 8;
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            const size_t mt = m_count - m0 < 4 ? m_count - m0 : 4;
            float out[32];
            if (kernels) {
                kernels[mt - 1](type, group, k, qx + m0 * k, dx + m0 * nb, sx + m0 * nb, out);
            } else {
                for (size_t j = 0; j < mt; j++) {
#if PK_ARM64
                    if (tier == PK_TIER_NEON) {
                        pk_neon_group_q8x(type, group, k, qx + (m0 + j) * k, dx + (m0 + j) * nb, sx + (m0 + j) * nb, out + 8 * j);
                        continue;
                    }
#endif
                    group_q8x_scalar(type, group, k, qx + (m0 + j) * k, dx + (m0 + j) * nb, sx + (m0 + j) * nb, out + 8 * j);
                }
            }
            for (size_t j = 0; j < mt; j++) memcpy(y + (m0 + j) * ldy + r, out + 8 * j, live * sizeof(float));
        }
    }
}
