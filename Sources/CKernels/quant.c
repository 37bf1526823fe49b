// GGML block formats: q8_0 and q4_0 (32 weights per block with one f16 scale) and q4_k (256 weights per super-block,
// 8 sub-blocks with 6-bit scales and mins). Quantizers round exactly as GGML's reference quantizers; dequantizers
// and the dot-product kernels for matrix-vector products (decode) read the blocks in place.
#include "CKernels.h"
#include "internal.h"

// ---- f16 scalars (round to nearest even, as the hardware conversion) ----
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

// Round half to even for |v| < 2^22 (GGML's nearest_int).
static inline int nearest_int(float v) {
    float val = v + 12582912.f;
    int i;
    memcpy(&i, &val, 4);
    return (i & 0x007fffff) - 0x00400000;
}

size_t pk_quant_block_size(int type) { return type == PK_Q4_K ? 256 : 32; }

size_t pk_quant_block_bytes(int type) {
    switch (type) {
    case PK_Q8_0: return 34;
    case PK_Q4_0: return 18;
    default: return 144;
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

static void quantize_q4_0(const float *x, uint8_t *out) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    }
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

// GGML's make_qkx2_quants for one sub-block: an affine grid (scale, min <= 0) fitted by weighted least squares over
// `nstep + 1` candidate grid densities. Returns the scale and writes -min and the levels L.
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
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
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += weights[i] * diff * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
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
    uint8_t L[256], Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
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

void pk_quantize(int type, const float *x, uint8_t *out, size_t nblocks) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    for (size_t b = 0; b < nblocks; b++) {
        switch (type) {
        case PK_Q8_0: quantize_q8_0(x + b * bs, out + b * bb); break;
        case PK_Q4_0: quantize_q4_0(x + b * bs, out + b * bb); break;
        default: quantize_q4_k(x + b * bs, out + b * bb); break;
        }
    }
}

// ---- dequantizers ----

static void dequantize_block(int type, const uint8_t *b, float *y) {
    uint16_t h;
    memcpy(&h, b, 2);
    const float d = f16_value(h);
    switch (type) {
    case PK_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
        break;
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

// ---- dot products of one quantized row with f32 inputs (decode) ----

// Scalar twin: dot of the k weights of one row with x.
static float dot_row_scalar(int type, const uint8_t *row, size_t k, const float *x) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    float buf[256], acc = 0;
    for (size_t b = 0; b < k / bs; b++) {
        dequantize_block(type, row + b * bb, buf);
        for (size_t j = 0; j < bs; j++) acc += buf[j] * x[b * bs + j];
    }
    return acc;
}

// Hardware f16 -> f32 (F16C) inside the vector kernels.
PK_AVX512 static inline float f16_fast(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

PK_AVX512 static inline __m512 q8_lanes(const uint8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

// acc[j] += dot(row, x_j) for up to 4 inputs, one block type at a time.
PK_AVX512 static void dot_rows_avx512(int type, const uint8_t *row, size_t k, const float *const *xs, size_t mm,
                                      float *out) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const __m512i low = _mm512_set1_epi32(0xF), eight = _mm512_set1_epi32(8);
    if (type == PK_Q8_0) {
        for (size_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = row + b * 34;
            const __m512 d = _mm512_set1_ps(f16_fast(blk));
            const __m512 w0 = _mm512_mul_ps(d, q8_lanes(blk + 2)), w1 = _mm512_mul_ps(d, q8_lanes(blk + 18));
            for (size_t j = 0; j < mm; j++) {
                const float *x = xs[j] + b * 32;
                acc[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc[j]);
                acc[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), acc[j]);
            }
        }
    } else if (type == PK_Q4_0) {
        for (size_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = row + b * 18;
            const __m512 d = _mm512_set1_ps(f16_fast(blk));
            const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
            const __m512 w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(bytes, low), eight)));
            const __m512 w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight)));
            for (size_t j = 0; j < mm; j++) {
                const float *x = xs[j] + b * 32;
                acc[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), acc[j]);
                acc[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), acc[j]);
            }
        }
    } else {
        for (size_t b = 0; b < k / 256; b++) {
            const uint8_t *blk = row + b * 144;
            const float d = f16_fast(blk), dmin = f16_fast(blk + 2);
            const uint8_t *sc = blk + 4, *qs = blk + 16;
            for (int j = 0; j < 8; j += 2) {
                // Sub-blocks j (low nibbles) and j + 1 (high nibbles) share 32 bytes.
                uint8_t s0, m0, s1, m1;
                scale_min_k4(j, sc, &s0, &m0);
                scale_min_k4(j + 1, sc, &s1, &m1);
                const __m512 ds0 = _mm512_set1_ps(d * s0), dm0 = _mm512_set1_ps(dmin * m0);
                const __m512 ds1 = _mm512_set1_ps(d * s1), dm1 = _mm512_set1_ps(dmin * m1);
                const uint8_t *q = qs + (j / 2) * 32;
                const __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
                const __m512i b1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 16)));
                const __m512 w00 = _mm512_fmsub_ps(ds0, _mm512_cvtepi32_ps(_mm512_and_si512(b0, low)), dm0);
                const __m512 w01 = _mm512_fmsub_ps(ds0, _mm512_cvtepi32_ps(_mm512_and_si512(b1, low)), dm0);
                const __m512 w10 = _mm512_fmsub_ps(ds1, _mm512_cvtepi32_ps(_mm512_srli_epi32(b0, 4)), dm1);
                const __m512 w11 = _mm512_fmsub_ps(ds1, _mm512_cvtepi32_ps(_mm512_srli_epi32(b1, 4)), dm1);
                for (size_t i = 0; i < mm; i++) {
                    const float *x = xs[i] + b * 256 + 32 * j;
                    acc[i] = _mm512_fmadd_ps(w00, _mm512_loadu_ps(x), acc[i]);
                    acc[i] = _mm512_fmadd_ps(w01, _mm512_loadu_ps(x + 16), acc[i]);
                    acc[i] = _mm512_fmadd_ps(w10, _mm512_loadu_ps(x + 32), acc[i]);
                    acc[i] = _mm512_fmadd_ps(w11, _mm512_loadu_ps(x + 48), acc[i]);
                }
            }
        }
    }
    for (size_t j = 0; j < mm; j++) out[j] = _mm512_reduce_add_ps(acc[j]);
}

// One input (decode): four independent accumulators so the FMA latency never serialises the row.
PK_AVX512 static float dot_row1_avx512(int type, const uint8_t *row, size_t k, const float *x) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    const __m512i low = _mm512_set1_epi32(0xF), eight = _mm512_set1_epi32(8);
    if (type == PK_Q8_0 || type == PK_Q4_0) {
        const size_t bb = type == PK_Q8_0 ? 34 : 18, nb = k / 32;
        size_t b = 0;
        for (; b < nb; b++) {
            const uint8_t *blk = row + b * bb;
            const __m512 d = _mm512_set1_ps(f16_fast(blk));
            __m512 w0, w1;
            if (type == PK_Q8_0) {
                w0 = q8_lanes(blk + 2);
                w1 = q8_lanes(blk + 18);
            } else {
                const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
                w0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(bytes, low), eight));
                w1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight));
            }
            const __m512 p0 = _mm512_mul_ps(w0, _mm512_loadu_ps(x + b * 32));
            const __m512 p1 = _mm512_mul_ps(w1, _mm512_loadu_ps(x + b * 32 + 16));
            if (b & 1) {
                a2 = _mm512_fmadd_ps(d, p0, a2);
                a3 = _mm512_fmadd_ps(d, p1, a3);
            } else {
                a0 = _mm512_fmadd_ps(d, p0, a0);
                a1 = _mm512_fmadd_ps(d, p1, a1);
            }
        }
    } else {
        for (size_t b = 0; b < k / 256; b++) {
            const uint8_t *blk = row + b * 144;
            const float d = f16_fast(blk), dmin = f16_fast(blk + 2);
            const uint8_t *sc = blk + 4, *qs = blk + 16;
            for (int j = 0; j < 8; j += 2) {
                uint8_t s0, m0, s1, m1;
                scale_min_k4(j, sc, &s0, &m0);
                scale_min_k4(j + 1, sc, &s1, &m1);
                const uint8_t *q = qs + (j / 2) * 32;
                const float *xx = x + b * 256 + 32 * j;
                const __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
                const __m512i b1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 16)));
                const __m512 x0 = _mm512_loadu_ps(xx), x1 = _mm512_loadu_ps(xx + 16);
                const __m512 x2 = _mm512_loadu_ps(xx + 32), x3 = _mm512_loadu_ps(xx + 48);
                // sum(ds * q * x - dm * x) = ds * sum(q x) - dm * sum(x)
                const __m512 qx0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(b0, low)), x0,
                                                   _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(b1, low)), x1));
                const __m512 qx1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(b0, 4)), x2,
                                                   _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(b1, 4)), x3));
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(d * s0), qx0, a0);
                a1 = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * m0), _mm512_add_ps(x0, x1), a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(d * s1), qx1, a2);
                a3 = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * m1), _mm512_add_ps(x2, x3), a3);
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

void pk_gemv_quant(int type, const uint8_t *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                   size_t m_count, size_t r0, size_t r1) {
    const size_t row_bytes = k / pk_quant_block_size(type) * pk_quant_block_bytes(type);
    const int vector = pk_has_avx512();
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = w + r * row_bytes;
        if (r + 1 < r1) _mm_prefetch((const char *)(row + row_bytes), _MM_HINT_T0);
        for (size_t m0 = 0; m0 < m_count; m0 += 4) {
            size_t mm = m_count - m0 < 4 ? m_count - m0 : 4;
            const float *xs[4];
            float out[4];
            for (size_t j = 0; j < 4; j++) xs[j] = x + (m0 + (j < mm ? j : 0)) * ldx;
            if (vector && mm == 1) {
                out[0] = dot_row1_avx512(type, row, k, xs[0]);
            } else if (vector) {
                dot_rows_avx512(type, row, k, xs, mm, out);
            } else {
                for (size_t j = 0; j < mm; j++) out[j] = dot_row_scalar(type, row, k, xs[j]);
            }
            for (size_t j = 0; j < mm; j++) y[(m0 + j) * ldy + r] = out[j];
        }
    }
}

// ---- decode with 8-bit activations (as llama.cpp): x quantized per block of 32, integer dot products ----

void pk_quantize_activations(const float *x, size_t k, int8_t *qx, float *dx, int32_t *sx) {
    for (size_t b = 0; b < k / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            const int v = (int)roundf(x[b * 32 + j] * id);
            qx[b * 32 + j] = (int8_t)v;
            s += v;
        }
        dx[b] = f16_value(f16_bits(d));   // the scale as llama.cpp's q8 activation blocks store it
        sx[b] = s;
    }
}

// Scalar twin: the same integer sums, the same per-block scaling.
static float dot_q8x_scalar(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx, const int32_t *sx) {
    float acc = 0;
    if (type == PK_Q8_0 || type == PK_Q4_0) {
        const size_t bb = type == PK_Q8_0 ? 34 : 18;
        for (size_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = row + b * bb;
            uint16_t h;
            memcpy(&h, blk, 2);
            int32_t isum = 0;
            if (type == PK_Q8_0) {
                for (int j = 0; j < 32; j++) isum += (int8_t)blk[2 + j] * qx[b * 32 + j];
            } else {
                for (int j = 0; j < 16; j++) isum += (blk[2 + j] & 0xF) * qx[b * 32 + j] + (blk[2 + j] >> 4) * qx[b * 32 + 16 + j];
                isum -= 8 * sx[b];
            }
            acc += f16_value(h) * dx[b] * (float)isum;
        }
        return acc;
    }
    for (size_t b = 0; b < k / 256; b++) {
        const uint8_t *blk = row + b * 144;
        uint16_t h, mh;
        memcpy(&h, blk, 2);
        memcpy(&mh, blk + 2, 2);
        const float d = f16_value(h), dmin = f16_value(mh);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            scale_min_k4(j, blk + 4, &s, &m);
            const uint8_t *q = blk + 16 + (j / 2) * 32;
            const int shift = (j % 2) * 4;
            const size_t xb = b * 8 + j;
            int32_t isum = 0;
            for (int l = 0; l < 32; l++) isum += ((q[l] >> shift) & 0xF) * qx[xb * 32 + l];
            acc += dx[xb] * (d * s * (float)isum - dmin * m * (float)sx[xb]);
        }
    }
    return acc;
}

#define PK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx512vnni")))

// u8 x s8 dot products of 32 bytes into 8 int32 lanes.
PK_VNNI static inline __m256i dot_u8s8_vnni(__m256i a, __m256i b) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b); }
PK_AVX512 static inline __m256i dot_u8s8_avx(__m256i a, __m256i b) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));   // no overflow: |a| <= 127 or 15
}

#define DOT_Q8X_BODY(DOT)                                                                                              \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                                     \
    const __m256i low = _mm256_set1_epi8(0xF);                                                                         \
    if (type == PK_Q8_0) {                                                                                             \
        for (size_t b = 0; b < k / 32; b++) {                                                                          \
            const uint8_t *blk = row + b * 34;                                                                         \
            const __m256i w = _mm256_loadu_si256((const __m256i *)(blk + 2));                                          \
            const __m256i x = _mm256_loadu_si256((const __m256i *)(qx + b * 32));                                      \
            const __m256i isum = DOT(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));                                  \
            const __m256 scale = _mm256_set1_ps(f16_fast(blk) * dx[b]);                                                \
            if (b & 1) acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc1);                                  \
            else acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc0);                                        \
        }                                                                                                              \
    } else if (type == PK_Q4_0) {                                                                                      \
        /* sum((q - 8) x) = sum(q x) - 8 sum(x): the second term is one scalar per block. */                              \
        float corr = 0;                                                                                                \
        for (size_t b = 0; b < k / 32; b++) {                                                                          \
            const uint8_t *blk = row + b * 18;                                                                         \
            const __m128i bytes = _mm_loadu_si128((const __m128i *)(blk + 2));                                         \
            const __m256i w = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(bytes),                  \
                                                                       _mm_srli_epi16(bytes, 4), 1), low);            \
            const __m256i isum = DOT(w, _mm256_loadu_si256((const __m256i *)(qx + b * 32)));                            \
            const float d = f16_fast(blk) * dx[b];                                                                     \
            corr += d * (float)sx[b];                                                                                  \
            if (b & 1) acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc1);                       \
            else acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc0);                             \
        }                                                                                                              \
        acc0 = _mm256_add_ps(acc0, _mm256_set_ps(0, 0, 0, 0, 0, 0, 0, -8.f * corr));                                   \
    } else {                                                                                                           \
        for (size_t b = 0; b < k / 256; b++) {                                                                         \
            const uint8_t *blk = row + b * 144;                                                                        \
            const float d = f16_fast(blk), dmin = f16_fast(blk + 2);                                                   \
            for (int j = 0; j < 8; j += 2) {                                                                           \
                uint8_t s0, m0, s1, m1;                                                                                \
                scale_min_k4(j, blk + 4, &s0, &m0);                                                                    \
                scale_min_k4(j + 1, blk + 4, &s1, &m1);                                                                \
                const __m256i bytes = _mm256_loadu_si256((const __m256i *)(blk + 16 + (j / 2) * 32));                 \
                const size_t xb = b * 8 + j;                                                                           \
                const __m256i i0 = DOT(_mm256_and_si256(bytes, low), _mm256_loadu_si256((const __m256i *)(qx + xb * 32))); \
                const __m256i i1 = DOT(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), low),                             \
                                       _mm256_loadu_si256((const __m256i *)(qx + (xb + 1) * 32)));                     \
                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(dx[xb] * d * s0), acc0);                \
                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_set1_ps(dx[xb + 1] * d * s1), acc1);            \
                acc0 = _mm256_add_ps(acc0, _mm256_set_ps(0, 0, 0, 0, 0, 0, 0,                                          \
                                     -dx[xb] * dmin * m0 * (float)sx[xb] - dx[xb + 1] * dmin * m1 * (float)sx[xb + 1])); \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    __m256 t = _mm256_add_ps(acc0, acc1);                                                                              \
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));                                   \
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                                                        \
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));                                                                          \
    return _mm_cvtss_f32(s4);

PK_VNNI static float dot_q8x_vnni(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx, const int32_t *sx) {
    DOT_Q8X_BODY(dot_u8s8_vnni)
}

PK_AVX512 static float dot_q8x_avx(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx, const int32_t *sx) {
    DOT_Q8X_BODY(dot_u8s8_avx)
}

static int vnni_state = -1;

void pk_gemv_quant_q8x(int type, const uint8_t *w, size_t k, const int8_t *qx, const float *dx, const int32_t *sx,
                       float *y, size_t ldy, size_t m_count, size_t r0, size_t r1) {
    const size_t row_bytes = k / pk_quant_block_size(type) * pk_quant_block_bytes(type), nb = k / 32;
    if (vnni_state < 0) { __builtin_cpu_init(); vnni_state = __builtin_cpu_supports("avx512vnni"); }
    const int vector = pk_has_avx512(), vnni = vector && vnni_state;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = w + r * row_bytes;
        if (r + 1 < r1) _mm_prefetch((const char *)(row + row_bytes), _MM_HINT_T0);
        for (size_t m = 0; m < m_count; m++) {
            const int8_t *q = qx + m * k;
            const float *d = dx + m * nb;
            const int32_t *s = sx + m * nb;
            y[m * ldy + r] = vnni ? dot_q8x_vnni(type, row, k, q, d, s)
                           : vector ? dot_q8x_avx(type, row, k, q, d, s) : dot_q8x_scalar(type, row, k, q, d, s);
        }
    }
}
