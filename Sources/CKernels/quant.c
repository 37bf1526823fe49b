// GGML block formats. 32 weights a block: q4_0, q4_1, q5_0, q5_1, q8_0 (an f16 scale; q4_1 and q5_1 also an f16 min)
// and iq4_nl (4-bit indices into a non-linear table). 256 a super-block: q2_k, q3_k, q4_k, q5_k, q6_k (sub-block
// scales of 4, 6 or 8 bits under f16 super-scales) and iq4_xs (iq4_nl's table, 6-bit scales of 32-weight sub-blocks).
// Quantizers round exactly as GGML's reference quantizers (quantize_row_*_ref, byte for byte); dequantizers compute
// exactly as GGML's dequantize_row_* and gguf-py's numpy ones (bit for bit). Matrices in memory are regrouped eight
// rows at a time for the products (quant_packed.c).
#include "CKernels.h"
#include "internal.h"
#include <float.h>
#include <limits.h>

// The quantizers must round exactly as GGML's reference C: no fused multiply-adds anywhere in this file (ARM64 and
// FMA-capable x86 targets would otherwise contract a * b + c).
#pragma clang fp contract(off)

// Round half to even for |v| < 2^22 (GGML's nearest_int).
static inline int nearest_int(float v) {
    float val = v + 12582912.f;
    int i;
    memcpy(&i, &val, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// A float converted to int as GGML's reference build (x86-64) converts it: truncation toward zero, and INT_MIN for a
// NaN or what int cannot hold (x86's cvttss2si; ARM64 would saturate instead). GGML's q4_0, q4_1, q5_0, q5_1 and q8_0
// quantizers convert to int8_t / uint8_t, the low byte of that. A subnormal scale (1 / d infinite) gives such values:
// with this the bytes are the reference's on every platform.
static inline int trunc_int(float v) { return v >= -2147483648.f && v < 2147483648.f ? (int)v : INT_MIN; }

size_t pk_quant_block_size(int type) {
    switch (type) {
    case PK_Q2_K: case PK_Q3_K: case PK_Q4_K: case PK_Q5_K: case PK_Q6_K: case PK_IQ4_XS: return 256;
    default: return 32;
    }
}

size_t pk_quant_block_bytes(int type) {
    switch (type) {
    case PK_Q4_0: return 18;
    case PK_Q4_1: return 20;
    case PK_Q5_0: return 22;
    case PK_Q5_1: return 24;
    case PK_Q8_0: return 34;
    case PK_Q2_K: return 84;
    case PK_Q3_K: return 110;
    case PK_Q4_K: return 144;
    case PK_Q5_K: return 176;
    case PK_Q6_K: return 210;
    case PK_IQ4_NL: return 18;
    case PK_IQ4_XS: return 136;
    default: return 0;
    }
}

// ---- quantizers ----

static void quantize_q8_0(const float *x, uint8_t *out) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.f;
    const float id = d ? 1.f / d : 0.f;
    uint16_t h = f16_bits(d);
    memcpy(out, &h, 2);
    for (int j = 0; j < 32; j++) out[2 + j] = (uint8_t)trunc_int(roundf(x[j] * id));
}

// The element of largest magnitude, with its sign (the first of equals), as GGML's quantizers pick it.
static inline float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    }
    return max;
}

static void quantize_q4_0(const float *x, uint8_t *out) {
    const float max = signed_absmax(x, 32);
    const float d = max / -8.f;
    const float id = d ? 1.f / d : 0.f;
    uint16_t h = f16_bits(d);
    memcpy(out, &h, 2);
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[16 + j] * id;
        int q0 = (int8_t)trunc_int(x0 + 8.5f), q1 = (int8_t)trunc_int(x1 + 8.5f);
        q0 = q0 < 15 ? q0 : 15;
        q1 = q1 < 15 ? q1 : 15;
        out[2 + j] = (uint8_t)((uint8_t)q0 | ((uint8_t)q1 << 4));
    }
}

// The block's minimum and maximum (q4_1, q5_1).
static inline void block_range(const float *x, float *min, float *max) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *min = lo;
    *max = hi;
}

// q4_1: f16 d, f16 m (the minimum), 16 bytes of nibbles (weight j low, j + 16 high); d = (max - min) / 15, levels
// (x - min) / d + 0.5 truncated (through int8_t; q5_1's through uint8_t).
static void quantize_q4_1(const float *x, uint8_t *out) {
    float min, max;
    block_range(x, &min, &max);
    const float d = (max - min) / 15.f;
    const float id = d ? 1.f / d : 0.f;
    uint16_t h = f16_bits(d), m = f16_bits(min);
    memcpy(out, &h, 2);
    memcpy(out + 2, &m, 2);
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
        int q0 = (int8_t)trunc_int(x0 + 0.5f), q1 = (int8_t)trunc_int(x1 + 0.5f);
        q0 = q0 < 15 ? q0 : 15;
        q1 = q1 < 15 ? q1 : 15;
        out[4 + j] = (uint8_t)((uint8_t)q0 | ((uint8_t)q1 << 4));
    }
}

// q5_1: f16 d, f16 m, the 32 fifth bits (qh), 16 bytes of low nibbles; d = (max - min) / 31, no clamp (as GGML).
static void quantize_q5_1(const float *x, uint8_t *out) {
    float min, max;
    block_range(x, &min, &max);
    const float d = (max - min) / 31.f;
    const float id = d ? 1.f / d : 0.f;
    uint16_t h = f16_bits(d), m = f16_bits(min);
    memcpy(out, &h, 2);
    memcpy(out + 2, &m, 2);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
        const uint8_t q0 = (uint8_t)trunc_int(x0 + 0.5f), q1 = (uint8_t)trunc_int(x1 + 0.5f);
        out[8 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= ((uint32_t)(q0 & 0x10) >> 4) << j;
        qh |= ((uint32_t)(q1 & 0x10) >> 4) << (j + 16);
    }
    memcpy(out + 4, &qh, 4);
}

// Candidate grids is in [from, to] of make_qkx2_quants, all fitted with the current `min`: the fitted scale and min,
// the weighted error (squared, or absolute with use_mad: w * |diff|), and whether the fit exists (D > 0). Scalar twin
// of the vector version below.
static void qkx2_candidates(int n, int nmax, const float *x, const float *weights, float min, float max, float rmin,
                            float rdelta, int from, int to, float sum_w, float sum_x, int use_mad, float *cs, float *cm,
                            float *ce, int *ok) {
    uint8_t Laux[256];
    for (int is = from; is <= to; ++is) {
        const float iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        ok[is] = D > 0;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float cur_error = 0;
        for (int i = 0; i < n; ++i) {
            const float diff = this_scale * Laux[i] + this_min - x[i];
            cur_error += weights[i] * (use_mad ? fabsf(diff) : diff * diff);   // w * (diff * diff), as GGML
        }
        cs[is] = this_scale;
        cm[is] = this_min;
        ce[is] = cur_error;
    }
}

// The same, 16 candidates per vector (8 with AVX2): each lane performs the scalar operations in the scalar order
// (separate multiplies and adds, no fused products), so every result is bit for bit the scalar one.
#if PK_X86
PK_AVX512 static void qkx2_candidates_avx512(int n, int nmax, const float *x, const float *weights, float min, float max,
                                             float rmin, float rdelta, int from, int to, float sum_w, float sum_x,
                                             int use_mad, float *cs, float *cm, float *ce, int *ok) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 magic = _mm512_set1_ps(12582912.f), zero = _mm512_setzero_ps();
    const __m512i mant = _mm512_set1_epi32(0x007fffff), bias = _mm512_set1_epi32(0x00400000);
    const __m512i top = _mm512_set1_epi32(nmax);
    __m512 lf[256];
    for (int base = from; base <= to; base += 16) {
        const __m512 is = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32(base), lane));
        const __m512 iscale = _mm512_div_ps(
            _mm512_add_ps(_mm512_add_ps(_mm512_set1_ps(rmin), _mm512_mul_ps(_mm512_set1_ps(rdelta), is)), _mm512_set1_ps((float)nmax)),
            _mm512_set1_ps(max - min));
        __m512 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; ++i) {
            const __m512 v = _mm512_mul_ps(iscale, _mm512_set1_ps(x[i] - min));
            __m512i l = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(_mm512_add_ps(v, magic)), mant), bias);
            l = _mm512_min_epi32(_mm512_max_epi32(l, _mm512_setzero_si512()), top);
            lf[i] = _mm512_cvtepi32_ps(l);
            const __m512 w = _mm512_set1_ps(weights[i]);
            const __m512 wl = _mm512_mul_ps(w, lf[i]);
            sum_l = _mm512_add_ps(sum_l, wl);
            sum_l2 = _mm512_add_ps(sum_l2, _mm512_mul_ps(wl, lf[i]));
            sum_xl = _mm512_add_ps(sum_xl, _mm512_mul_ps(wl, _mm512_set1_ps(x[i])));
        }
        const __m512 sw = _mm512_set1_ps(sum_w), sx = _mm512_set1_ps(sum_x);
        const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sw, sum_l2), _mm512_mul_ps(sum_l, sum_l));
        const __mmask16 valid = _mm512_cmp_ps_mask(D, zero, _CMP_GT_OQ);
        __m512 scale = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sw, sum_xl), _mm512_mul_ps(sx, sum_l)), D);
        __m512 mn = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sum_l2, sx), _mm512_mul_ps(sum_l, sum_xl)), D);
        const __mmask16 positive = _mm512_cmp_ps_mask(mn, zero, _CMP_GT_OQ);
        mn = _mm512_mask_blend_ps(positive, mn, zero);
        scale = _mm512_mask_blend_ps(positive, scale, _mm512_div_ps(sum_xl, sum_l2));
        __m512 err = zero;
        for (int i = 0; i < n; ++i) {
            const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale, lf[i]), mn), _mm512_set1_ps(x[i]));
            const __m512 e = use_mad ? _mm512_abs_ps(diff) : _mm512_mul_ps(diff, diff);
            err = _mm512_add_ps(err, _mm512_mul_ps(_mm512_set1_ps(weights[i]), e));
        }
        float s16[16], m16[16], e16[16];
        _mm512_storeu_ps(s16, scale);
        _mm512_storeu_ps(m16, mn);
        _mm512_storeu_ps(e16, err);
        for (int j = 0; j < 16 && base + j <= to; j++) {
            ok[base + j] = (valid >> j) & 1;
            cs[base + j] = s16[j];
            cm[base + j] = m16[j];
            ce[base + j] = e16[j];
        }
    }
}

// The same with 8 candidates per vector (AVX2), lane by lane in the scalar order.
PK_AVX2 static void qkx2_candidates_avx2(int n, int nmax, const float *x, const float *weights, float min, float max,
                                         float rmin, float rdelta, int from, int to, float sum_w, float sum_x,
                                         int use_mad, float *cs, float *cm, float *ce, int *ok) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 magic = _mm256_set1_ps(12582912.f), zero = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.f);
    const __m256i mant = _mm256_set1_epi32(0x007fffff), bias = _mm256_set1_epi32(0x00400000);
    const __m256i top = _mm256_set1_epi32(nmax);
    __m256 lf[256];
    for (int base = from; base <= to; base += 8) {
        const __m256 is = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(base), lane));
        const __m256 iscale = _mm256_div_ps(
            _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(rmin), _mm256_mul_ps(_mm256_set1_ps(rdelta), is)), _mm256_set1_ps((float)nmax)),
            _mm256_set1_ps(max - min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; ++i) {
            const __m256 v = _mm256_mul_ps(iscale, _mm256_set1_ps(x[i] - min));
            __m256i l = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(_mm256_add_ps(v, magic)), mant), bias);
            l = _mm256_min_epi32(_mm256_max_epi32(l, _mm256_setzero_si256()), top);
            lf[i] = _mm256_cvtepi32_ps(l);
            const __m256 w = _mm256_set1_ps(weights[i]);
            const __m256 wl = _mm256_mul_ps(w, lf[i]);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf[i]));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, _mm256_set1_ps(x[i])));
        }
        const __m256 sw = _mm256_set1_ps(sum_w), sx = _mm256_set1_ps(sum_x);
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sw, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const int valid = _mm256_movemask_ps(_mm256_cmp_ps(D, zero, _CMP_GT_OQ));
        __m256 scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sw, sum_xl), _mm256_mul_ps(sx, sum_l)), D);
        __m256 mn = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sx), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 positive = _mm256_cmp_ps(mn, zero, _CMP_GT_OQ);
        mn = _mm256_blendv_ps(mn, zero, positive);
        scale = _mm256_blendv_ps(scale, _mm256_div_ps(sum_xl, sum_l2), positive);
        __m256 err = zero;
        for (int i = 0; i < n; ++i) {
            const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, lf[i]), mn), _mm256_set1_ps(x[i]));
            const __m256 e = use_mad ? _mm256_andnot_ps(sign, diff) : _mm256_mul_ps(diff, diff);
            err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_set1_ps(weights[i]), e));
        }
        float s8[8], m8[8], e8[8];
        _mm256_storeu_ps(s8, scale);
        _mm256_storeu_ps(m8, mn);
        _mm256_storeu_ps(e8, err);
        for (int j = 0; j < 8 && base + j <= to; j++) {
            ok[base + j] = (valid >> j) & 1;
            cs[base + j] = s8[j];
            cm[base + j] = m8[j];
            ce[base + j] = e8[j];
        }
    }
}
#endif

// GGML's make_qkx2_quants for one sub-block: an affine grid (scale, min <= 0) fitted by weighted least squares over
// `nstep + 1` candidate grid densities, the best by weighted squared (or, use_mad, absolute) error. Returns the scale
// and writes -min and the levels L.
//
// Each accepted candidate moves `min`, which the later candidates are fitted from; so the candidates after the
// current best are evaluated together with the current min until the first improves on it, which is then taken
// and the rest evaluated again: the scalar loop's sequence of choices exactly, in a few vector passes.
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * L[i] + min - x[i];
        best_error += weights[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    float cs[64], cm[64], ce[64];
    int ok[64];
#if PK_X86
    const int vector = n <= 256 && nstep < 64 ? (pk_has_avx512() ? 2 : pk_has_avx2() ? 1 : 0) : 0;
#else
    const int vector = 0;
#endif
    int best = -1;
    float best_min = min;   // the min the chosen grid was fitted from
    for (int from = 0; from <= nstep;) {
#if PK_X86
        if (vector == 2)
            qkx2_candidates_avx512(n, nmax, x, weights, min, max, rmin, rdelta, from, nstep, sum_w, sum_x, use_mad, cs,
                                   cm, ce, ok);
        else if (vector == 1)
            qkx2_candidates_avx2(n, nmax, x, weights, min, max, rmin, rdelta, from, nstep, sum_w, sum_x, use_mad, cs,
                                 cm, ce, ok);
        else
#endif
        qkx2_candidates(n, nmax, x, weights, min, max, rmin, rdelta, from, nstep, sum_w, sum_x, use_mad, cs, cm, ce,
                        ok);
        int taken = -1;
        for (int is = from; is <= nstep; ++is) {
            if (ok[is] && ce[is] < best_error) { taken = is; break; }
        }
        if (taken < 0) break;
        best = taken;
        best_min = min;
        best_error = ce[taken];
        scale = cs[taken];
        min = cm[taken];
        from = taken + 1;
    }
    if (best >= 0) {
        iscale = (rmin + rdelta * best + nmax) / (max - best_min);
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - best_min));
            L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        }
    }
    *the_min = -min;
    return scale;
}

// The 6-bit scale and min of sub-block j from the 12 packed bytes.
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

// q4_k and q5_k alike: per 32-weight sub-block an affine grid of levels 0..nmax (make_qkx2_quants, weights
// av_x + |x|), the 8 scales and 8 mins quantized to 6 bits under the f16 d and dmin (out[0..3]) and packed into
// out[4..15]; then every level again from the quantized scale and min. Leaves the 256 levels in L.
static void quantize_k_affine(const float *x, uint8_t *out, int nmax, float rmin, int nstep, uint8_t *L) {
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *sc = out + 4;
    memset(sc, 0, 12);
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sc[j - 4] |= ((ls >> 4) << 6);
            sc[j - 0] |= ((lm >> 4) << 6);
        }
    }
    uint16_t dh = f16_bits(max_scale / 63.f), mh = f16_bits(max_min / 63.f);
    memcpy(out, &dh, 2);
    memcpy(out + 2, &mh, 2);
    const float dall = f16_value(dh), dmin = f16_value(mh);
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        scale_min_k4(j, sc, &s, &m);
        const float d = dall * s;
        if (!d) continue;
        const float dm = dmin * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        }
    }
}

// q4_K: f16 d, f16 dmin, 12 bytes of scales and mins, then 128 bytes: 64-weight groups as 32 bytes of nibbles
// (weight l low, l + 32 high).
static void quantize_q4_k(const float *x, uint8_t *out) {
    uint8_t L[256];
    quantize_k_affine(x, out, 15, -1.f, 20, L);
    uint8_t *qs = out + 16;
    for (int j = 0; j < 256; j += 64) {
        for (int l = 0; l < 32; ++l) qs[l] = L[j + l] | (L[j + l + 32] << 4);
        qs += 32;
    }
}

// q5_K: q4_K's head, then qh[32] (the fifth bits: bit 2g of byte l for weight 64g + l, bit 2g + 1 for 64g + 32 + l)
// and q4_K's nibbles.
static void quantize_q5_k(const float *x, uint8_t *out) {
    uint8_t L[256];
    quantize_k_affine(x, out, 31, -0.5f, 15, L);
    uint8_t *qh = out + 16, *ql = out + 48;
    memset(qh, 0, 32);
    for (int g = 0; g < 4; ++g) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t l1 = L[64 * g + l], l2 = L[64 * g + 32 + l];
            qh[l] |= (uint8_t)(((l1 >> 4) << (2 * g)) | ((l2 >> 4) << (2 * g + 1)));
            ql[32 * g + l] = (l1 & 0xF) | ((l2 & 0xF) << 4);
        }
    }
}

// 2 bits a weight for 256 levels (0..3): byte l of each 32-byte group holds weights l, l + 32, l + 64, l + 96
// of its 128, from the low bits up (q2_K and q3_K).
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6);
        }
    }
}

// q2_K: 16 scale bytes (sub-block scale low nibble, min high), 64 bytes of 2-bit levels, f16 d, f16 dmin. Each
// 16-weight sub-block gets make_qkx2_quants with weights |x| and the absolute error; the scales and mins are quantized
// to 4 bits under d and dmin and the levels found again from them.
static void quantize_q2_k(const float *x, uint8_t *out) {
    uint8_t L[256];
    float weights[16], mins[16], scales[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *sc = out;
    uint16_t dh = 0, mh = 0;   // f16 +0
    if (max_scale > 0) {
        const float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; ++j) sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
        dh = f16_bits(max_scale / 15.f);
    } else {
        memset(sc, 0, 16);
    }
    if (max_min > 0) {
        const float iscale = 15.f / max_min;
        for (int j = 0; j < 16; ++j) sc[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
        mh = f16_bits(max_min / 15.f);
    }
    memcpy(out + 80, &dh, 2);
    memcpy(out + 82, &mh, 2);
    const float dall = f16_value(dh), dmin = f16_value(mh);
    for (int j = 0; j < 16; ++j) {
        const float d = dall * (sc[j] & 0xF);
        if (!d) continue;
        const float dm = dmin * (sc[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int((x[16 * j + ii] + dm) / d);
            L[16 * j + ii] = (uint8_t)(l < 0 ? 0 : l > 3 ? 3 : l);
        }
    }
    pack_2bit(L, out + 16);
}

// GGML's make_q3_quants with do_rmse for one sub-block of a symmetric grid, levels -nmax..nmax-1: levels from the
// absolute maximum, then up to 5 sweeps moving single levels while the weighted (x^2) least-squares fit improves.
// Writes levels + nmax into L (0 throughout for an all-zero block) and returns the fitted scale.
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(x, n);
    if (fabsf(max) < 1e-15f) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            int l = nearest_int(x[i] * sl2 / slx);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            if (l == L[i]) continue;
            slx += w * x[i] * l;
            sl2 += w * l * l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)l;
                sumlx = slx;
                suml2 = sl2;
                ++changed;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// q3_K's 6-bit scale (0..63, stored + 32) of sub-block j: low nibbles in bytes 0..7 (j and j + 8 share a byte), the
// high 2 bits in bytes 8..11 (byte 8 + j % 4, bits 2 (j / 4)).
static inline int q3k_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// q3_K: hmask[32] (the third bit of weight e: bit e / 32 of byte e % 32), 64 bytes of 2-bit low levels, 12 bytes of
// 6-bit scales, f16 d. Levels -4..3 per 16-weight sub-block (make_q3_quants); the scales quantized against the one of
// largest magnitude (d = that / -32) and the levels found again from them.
static void quantize_q3_k(const float *x, uint8_t *out) {
    int8_t L[256];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        const float scale = fabsf(scales[j]);
        if (scale > amax) {
            amax = scale;
            max_scale = scales[j];
        }
    }
    uint8_t *hmask = out, *qs = out + 32, *sc = out + 96;
    memset(sc, 0, 12);
    uint16_t dh = 0;
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; ++j) {
            int l = (int8_t)nearest_int(iscale * scales[j]);
            l = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
            if (j < 8) sc[j] = (uint8_t)(l & 0xF);
            else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
            sc[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        dh = f16_bits(1 / iscale);
    }
    memcpy(out + 108, &dh, 2);
    const float dall = f16_value(dh);
    for (int j = 0; j < 16; ++j) {
        const float d = dall * (q3k_scale(sc, j) - 32);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)((l < -4 ? -4 : l > 3 ? 3 : l) + 4);
        }
    }
    memset(hmask, 0, 32);
    uint8_t low[256];
    for (int j = 0; j < 256; ++j) {
        const int l = L[j];
        if (l > 3) hmask[j % 32] |= (uint8_t)(1 << (j / 32));
        low[j] = (uint8_t)(l > 3 ? l - 4 : l);
    }
    pack_2bit(low, qs);
}

// q5_0: f16 d, the 32 fifth bits (qh), then 16 bytes of low nibbles (weight j low, j + 16 high); d = max / -16.
static void quantize_q5_0(const float *x, uint8_t *out) {
    const float max = signed_absmax(x, 32);
    const float d = max / -16.f;
    const float id = d ? 1.f / d : 0.f;
    uint16_t h = f16_bits(d);
    memcpy(out, &h, 2);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id, x1 = x[16 + j] * id;
        int q0 = (int8_t)trunc_int(x0 + 16.5f), q1 = (int8_t)trunc_int(x1 + 16.5f);
        q0 = q0 < 31 ? q0 : 31;
        q1 = q1 < 31 ? q1 : 31;
        out[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= ((uint32_t)(q0 & 0x10) >> 4) << j;
        qh |= ((uint32_t)(q1 & 0x10) >> 4) << (j + 16);
    }
    memcpy(out + 2, &qh, 4);
}

// GGML's make_qx_quants with rmse_type 1 (weights x^2) for one sub-block of a symmetric grid with levels
// -nmax..nmax-1: the best of 19 candidate scales by weighted least squares. Writes levels + nmax into L.
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(x, n);
    if (fabsf(max) < 1e-15f) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), 16 int8 sub-block scales, f16 d; 6.5625 bits per weight.
static void quantize_q6_k(const float *x, uint8_t *out) {
    int8_t L[256];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
        const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        scales[ib] = scale;
        const float abs_scale = fabsf(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    memset(out, 0, 210);
    if (max_abs_scale < 1e-15f) return;
    uint8_t *ql = out, *qh = out + 128;
    int8_t *sc = (int8_t *)(out + 192);
    const float iscale = -128.f / max_scale;
    const uint16_t dh = f16_bits(1 / iscale);
    memcpy(out + 208, &dh, 2);
    for (int ib = 0; ib < 16; ++ib) {
        const int v = nearest_int(iscale * scales[ib]);
        sc[ib] = (int8_t)(v < 127 ? v : 127);
    }
    const float dd = f16_value(dh);
    for (int j = 0; j < 16; ++j) {
        const float d = dd * sc[j];
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            L[16 * j + ii] = (int8_t)(l + 32);
        }
    }
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l] = q1 | (q3 << 4);
            ql[l + 32] = q2 | (q4 << 4);
            qh[l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
        }
        ql += 64;
        qh += 32;
    }
}

// iq4_nl's 16 levels (GGML's kvalues_iq4nl), shared by iq4_xs and by every kernel that reads them.
const int8_t pk_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// The index of the level nearest to v, the upper one at a midpoint, by bisection (GGML's best_index_int8 as in the
// reference build, ggml 0.25.3). A NaN (an overflowed scale's) picks the top level there; llama.cpp's later
// branch-free search picks 0 for it and agrees everywhere else.
static inline int iq4_index(float v) {
    if (v <= pk_iq4_levels[0]) return 0;
    if (v >= pk_iq4_levels[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < pk_iq4_levels[mid]) hi = mid;
        else lo = mid;
    }
    return v - pk_iq4_levels[hi - 1] < pk_iq4_levels[hi] - v ? hi - 1 : hi;
}

// iq4_nl (n = 32, ntry -1) and iq4_xs (n = 256, ntry 7) as GGML's quantize_row_iq4_nl_impl without an importance
// matrix (weights x^2). Each 32-weight sub-block: a scale from the largest magnitude, refitted by weighted least
// squares over the levels it picks, and for ntry > 0 the best of the 2 ntry + 1 further scales (level -127 + t at the
// largest magnitude). iq4_nl stores that scale as its f16 d (and picks the levels again with it for ntry > 0); iq4_xs
// quantizes the 8 scales to 6 bits under d = -(scale of largest magnitude) / 32 and picks every level again with
// its sub-block's quantized scale. Writes the f16 d at dh, the nibbles at q4 (n / 2 bytes: per 32 weights, j low and
// j + 16 high) and for iq4_xs the scales (scales_h: 2 high bits each, scales_l: 4 low bits each).
static void quantize_iq4(int n, int ntry, const float *x, uint8_t *dh, uint8_t *q4, uint8_t *scales_h,
                         uint8_t *scales_l) {
    uint8_t L[256];
    float scales[8], weight[32];
    float max_scale = 0, amax_scale = 0;
    const int nsub = n / 32;
    for (int ib = 0; ib < nsub; ++ib) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
        const float max = signed_absmax(xb, 32);
        if (fabsf(max) < 1e-15f) {
            scales[ib] = 0;
            memset(Lb, 0, 32);
            continue;
        }
        float d = ntry > 0 ? -max / pk_iq4_levels[0] : max / pk_iq4_levels[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const int l = iq4_index(id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = pk_iq4_levels[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; ++itry) {
            id = (itry + pk_iq4_levels[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                const float q = pk_iq4_levels[iq4_index(id * xb[j])], w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) {
            amax_scale = fabsf(d);
            max_scale = d;
        }
    }
    if (nsub > 1) {
        uint16_t sh = 0;
        const float d = -max_scale / 32;
        const uint16_t h = f16_bits(d);
        memcpy(dh, &h, 2);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < nsub; ++ib) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j) L[32 * ib + j] = (uint8_t)iq4_index(idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = (uint8_t)(l & 0xF);
            else scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
            sh |= (uint16_t)((l >> 4) << (2 * ib));
        }
        memcpy(scales_h, &sh, 2);
    } else {
        const uint16_t h = f16_bits(scales[0]);
        memcpy(dh, &h, 2);
        if (ntry > 0) {
            const float id = scales[0] ? 1 / scales[0] : 0;
            for (int j = 0; j < 32; ++j) L[j] = (uint8_t)iq4_index(id * x[j]);
        }
    }
    for (int i = 0; i < nsub; ++i) {
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = L[32 * i + j] | (L[32 * i + 16 + j] << 4);
    }
}

// iq4_nl: f16 d, 16 bytes of nibbles (weight j low, j + 16 high), each an index into pk_iq4_levels.
static void quantize_iq4_nl(const float *x, uint8_t *out) { quantize_iq4(32, -1, x, out, out + 2, NULL, NULL); }
// llama_model_quantize's iq4_nl: the same with 7 scale tries each way (its reference row quantizer makes none).
static void quantize_iq4_nl_search(const float *x, uint8_t *out) { quantize_iq4(32, 7, x, out, out + 2, NULL, NULL); }

// iq4_xs: f16 d, scales_h (u16), scales_l[4], 128 bytes of nibbles as iq4_nl's, 32 weights at a time.
static void quantize_iq4_xs(const float *x, uint8_t *out) { quantize_iq4(256, 7, x, out, out + 8, out + 2, out + 4); }

void pk_quantize_for_file(int type, const float *x, uint8_t *out, size_t nblocks) {
    if (type != PK_IQ4_NL) { pk_quantize(type, x, out, nblocks); return; }
    for (size_t b = 0; b < nblocks; b++) quantize_iq4_nl_search(x + 32 * b, out + 18 * b);
}

void pk_quantize(int type, const float *x, uint8_t *out, size_t nblocks) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    for (size_t b = 0; b < nblocks; b++) {
        const float *xb = x + b * bs;
        uint8_t *ob = out + b * bb;
        switch (type) {
        case PK_Q4_0: quantize_q4_0(xb, ob); break;
        case PK_Q4_1: quantize_q4_1(xb, ob); break;
        case PK_Q5_0: quantize_q5_0(xb, ob); break;
        case PK_Q5_1: quantize_q5_1(xb, ob); break;
        case PK_Q8_0: quantize_q8_0(xb, ob); break;
        case PK_Q2_K: quantize_q2_k(xb, ob); break;
        case PK_Q3_K: quantize_q3_k(xb, ob); break;
        case PK_Q4_K: quantize_q4_k(xb, ob); break;
        case PK_Q5_K: quantize_q5_k(xb, ob); break;
        case PK_Q6_K: quantize_q6_k(xb, ob); break;
        case PK_IQ4_NL: quantize_iq4_nl(xb, ob); break;
        case PK_IQ4_XS: quantize_iq4_xs(xb, ob); break;
        default: return;   // not a block format (pk_quant_block_bytes 0): nothing written
        }
    }
}

// ---- dequantizers ----

// Every product in GGML's order: a sub-block scale d * s first, then times the level, less the min (q2_k, q4_k, q5_k)
// or plus it (q4_1, q5_1).
static void dequantize_block(int type, const uint8_t *b, float *y) {
    switch (type) {
    case PK_Q4_0: {
        const float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b[2 + j] & 0xF) - 8);
            y[16 + j] = d * (float)((b[2 + j] >> 4) - 8);
        }
        break;
    }
    case PK_Q5_0: {
        const float d = f16_at(b);
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((int)((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16) * d;
            y[16 + j] = (float)((int)((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16) * d;
        }
        break;
    }
    case PK_Q8_0: {
        const float d = f16_at(b);
        for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
        break;
    }
    case PK_Q4_K: {
        const float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *sc = b + 4, *qs = b + 16;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            scale_min_k4(j, sc, &s, &m);
            const float ds = d * s, dm = dmin * m;
            const uint8_t *q = qs + (j / 2) * 32;
            const int shift = (j % 2) * 4;
            for (int l = 0; l < 32; l++) y[32 * j + l] = ds * (float)((q[l] >> shift) & 0xF) - dm;
        }
        break;
    }
    default: break;
    }
}

void pk_dequantize(int type, const uint8_t *blocks, float *out, size_t nblocks) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    if (!bb) return;   // not a block format: nothing written
    // The formats kept row by row in memory dequantize through their one integer form (quant_rows.c).
    if (pk_has_row_form(type)) { pk_row_dequantize(type, blocks, nblocks * bs, out, NULL); return; }
    for (size_t b = 0; b < nblocks; b++) dequantize_block(type, blocks + b * bb, out + b * bs);
}
