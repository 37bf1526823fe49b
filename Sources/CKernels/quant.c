// GGML block formats: q8_0 and q4_0 (32 weights per block with one f16 scale) and q4_k (256 weights per super-block,
// 8 sub-blocks with 6-bit scales and mins). Quantizers round exactly as GGML's reference quantizers; dequantizers
// matrices in memory are regrouped eight rows at a time for the products (quant_packed.c).
#include "CKernels.h"
#include "internal.h"

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
    for (int j = 0; j < 32; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
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
        int q0 = (int)(x0 + 8.5f), q1 = (int)(x1 + 8.5f);   // truncation toward zero; the sums are >= 0.5
        q0 = q0 < 15 ? q0 : 15;
        q1 = q1 < 15 ? q1 : 15;
        out[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

// Candidate grids is in [from, to] of make_qkx2_quants, all fitted with the current `min`: the fitted scale and min,
// the weighted squared error, and whether the fit exists (D > 0). Scalar twin of the vector version below.
static void qkx2_candidates(int n, int nmax, const float *x, const float *weights, float min, float max, float rmin,
                            float rdelta, int from, int to, float sum_w, float sum_x, float *cs, float *cm, float *ce,
                            int *ok) {
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
            cur_error += weights[i] * diff * diff;
        }
        cs[is] = this_scale;
        cm[is] = this_min;
        ce[is] = cur_error;
    }
}

// The same, 16 candidates per vector: each lane performs the scalar operations in the scalar order (separate
// multiplies and adds, no fused products), so every result is bit for bit the scalar one.
#if PK_X86
PK_AVX512 static void qkx2_candidates_avx512(int n, int nmax, const float *x, const float *weights, float min, float max,
                                             float rmin, float rdelta, int from, int to, float sum_w, float sum_x,
                                             float *cs, float *cm, float *ce, int *ok) {
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
            err = _mm512_add_ps(err, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(weights[i]), diff), diff));
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
#endif

// GGML's make_qkx2_quants for one sub-block: an affine grid (scale, min <= 0) fitted by weighted least squares over
// `nstep + 1` candidate grid densities. Returns the scale and writes -min and the levels L.
//
// Each accepted candidate moves `min`, which the later candidates are fitted from; so the candidates after the
// current best are evaluated together with the current min until the first improves on it, which is then taken
// and the rest evaluated again: the scalar loop's sequence of choices exactly, in a few vector passes.
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              float rmin, float rdelta, int nstep) {
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
        best_error += weights[i] * diff * diff;
    }
    float cs[64], cm[64], ce[64];
    int ok[64];
#if PK_X86
    const int vector = n <= 256 && nstep < 64 && pk_has_avx512();
#else
    const int vector = 0;
#endif
    int best = -1;
    float best_min = min;   // the min the chosen grid was fitted from
    for (int from = 0; from <= nstep;) {
#if PK_X86
        if (vector) qkx2_candidates_avx512(n, nmax, x, weights, min, max, rmin, rdelta, from, nstep, sum_w, sum_x, cs, cm, ce, ok);
        else
#endif
        qkx2_candidates(n, nmax, x, weights, min, max, rmin, rdelta, from, nstep, sum_w, sum_x, cs, cm, ce, ok);
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

static void quantize_q4_k(const float *x, uint8_t *out) {
    uint8_t L[256];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], -1.f, 0.1f, 20);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *sc = out + 4, *qs = out + 16;
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
            L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
        }
    }
    for (int j = 0; j < 256; j += 64) {
        for (int l = 0; l < 32; ++l) qs[l] = L[j + l] | (L[j + l + 32] << 4);
        qs += 32;
    }
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
        int q0 = (int8_t)(x0 + 16.5f), q1 = (int8_t)(x1 + 16.5f);
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

void pk_q6k_levels(const uint8_t *b, uint8_t *L) {
    const uint8_t *ql = b, *qh = b + 128;
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; ++l) {
            L[j + l] = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
            L[j + l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            L[j + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            L[j + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
        ql += 64;
        qh += 32;
    }
}

void pk_q6k_pack_levels(const uint8_t *L, uint8_t *b) {
    uint8_t *ql = b, *qh = b + 128;
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; ++l) {
            ql[l] = (L[j + l] & 0xF) | ((L[j + l + 64] & 0xF) << 4);
            ql[l + 32] = (L[j + l + 32] & 0xF) | ((L[j + l + 96] & 0xF) << 4);
            qh[l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
        }
        ql += 64;
        qh += 32;
    }
}

void pk_quantize(int type, const float *x, uint8_t *out, size_t nblocks) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    for (size_t b = 0; b < nblocks; b++) {
        switch (type) {
        case PK_Q8_0: quantize_q8_0(x + b * bs, out + b * bb); break;
        case PK_Q4_0: quantize_q4_0(x + b * bs, out + b * bb); break;
        case PK_Q5_0: quantize_q5_0(x + b * bs, out + b * bb); break;
        case PK_Q6_K: quantize_q6_k(x + b * bs, out + b * bb); break;
        default: quantize_q4_k(x + b * bs, out + b * bb); break;
        }
    }
}

// ---- dequantizers ----

static void dequantize_block(int type, const uint8_t *b, float *y) {
    uint16_t h;
    memcpy(&h, type == PK_Q6_K ? b + 208 : b, 2);
    const float d = f16_value(h);
    switch (type) {
    case PK_Q6_K: {
        uint8_t L[256];
        pk_q6k_levels(b, L);
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int i = 0; i < 256; i++) y[i] = d * (float)sc[i / 16] * (float)((int)L[i] - 32);
        break;
    }
    case PK_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
        break;
    case PK_Q5_0: {
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((int)((b[6 + j] & 0xF) | (((qh >> j) & 1) << 4)) - 16) * d;
            y[16 + j] = (float)((int)((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16) * d;
        }
        break;
    }
    case PK_Q4_0:
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b[2 + j] & 0xF) - 8);
            y[16 + j] = d * (float)((b[2 + j] >> 4) - 8);
        }
        break;
    default: {
        uint16_t mh;
        memcpy(&mh, b + 2, 2);
        const float dmin = f16_value(mh);
        const uint8_t *sc = b + 4, *qs = b + 16;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            scale_min_k4(j, sc, &s, &m);
            const float ds = d * s, dm = dmin * m;
            const uint8_t *q = qs + (j / 2) * 32;
            const int shift = (j % 2) * 4;
            for (int l = 0; l < 32; l++) y[32 * j + l] = ds * (float)((q[l] >> shift) & 0xF) - dm;
        }
    }
    }
}

void pk_dequantize(int type, const uint8_t *blocks, float *out, size_t nblocks) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    for (size_t b = 0; b < nblocks; b++) dequantize_block(type, blocks + b * bb, out + b * bs);
}
