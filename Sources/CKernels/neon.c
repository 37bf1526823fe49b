// NEON bodies of the kernels (ARM64), called from each kernel's entry point on the NEON tier (vector.c, convert.c,
// gemv.c, gemm_small.c, sgemm.c, quant_packed.c); the scalar twin next to each call site defines the meaning.
// Vectors are 4 floats; sums over long rows keep 16 partial sums, as the x86 bodies do. Tails (n not a multiple of
// the vector width) go through a zero-padded buffer or a short scalar loop.
#include "CKernels.h"
#include "internal.h"

#if PK_ARM64

// The dot-product extension (SDOT), for the quantized products when pk_has_vnni() says the CPU has it. GCC's
// arm_neon.h declares vdotq_s32 for armv8.2-a+dotprod, and inlines it only into functions of that architecture.
#if defined(__clang__)
#define PK_DOTPROD __attribute__((target("dotprod")))
#else
#define PK_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

// ---- helpers -------------------------------------------------------------------------------------------------

/// Fully unrolls the short loops over a register tile's rows and inputs, so that its accumulators stay in registers
/// (clang does so by itself at -O3; GCC at -O2 needs telling).
#define PK_UNROLL _Pragma("GCC unroll 8")

/// p[0..rem) (rem < 4) in the low lanes, zeros above.
PK_INLINE float32x4_t load_tail(const float *p, size_t rem) {
    float t[4] = {0, 0, 0, 0};
    memcpy(t, p, rem * sizeof(float));
    return vld1q_f32(t);
}

/// The low rem lanes (rem < 4) of v into p[0..rem).
PK_INLINE void store_tail(float *p, float32x4_t v, size_t rem) {
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, rem * sizeof(float));
}

/// Lanes [0, rem) set (rem <= 4).
PK_INLINE uint32x4_t tail_mask4(size_t rem) {
    static const uint32_t idx[4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(idx), vdupq_n_u32((uint32_t)rem));
}

/// (a0 + a1) + (a2 + a3), then the 4 lanes: the 16 partial sums of a long row in a fixed order.
PK_INLINE float hsum16(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
}

/// exp(x) for 4 lanes, the polynomial of pk_exp512 / pk_exp256: relative error about 2e-7 on [-87.3, 88.37],
/// 0 below, +inf above, NaN in -> NaN out.
PK_INLINE float32x4_t exp4(float32x4_t x) {
    const float32x4_t hi = vdupq_n_f32(88.3762626647949f), lo = vdupq_n_f32(-87.3365478515625f);
    const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), hi);
    const float32x4_t fx = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(xc, fx, vdupq_n_f32(0.693359375f));       // xc - fx * ln2 (high part)
    r = vfmsq_f32(r, fx, vdupq_n_f32(-2.12194440e-4f));                  // ... - fx * ln2 (low part)
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(fx), vdupq_n_s32(127)), 23);   // 2^fx
    float32x4_t res = vmulq_f32(p, vreinterpretq_f32_s32(e));
    res = vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0f), res);
    res = vbslq_f32(vcgtq_f32(x, hi), vdupq_n_f32(INFINITY), res);
    return vbslq_f32(vceqq_f32(x, x), res, x);   // NaN in, NaN out (the clamps above would make it a number)
}

/// 1 / (1 + exp(-g)).
PK_INLINE float32x4_t sigmoid4(float32x4_t g) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    return vdivq_f32(one, vaddq_f32(one, exp4(vnegq_f32(g))));
}

// ---- vector helpers ------------------------------------------------------------------------------------------

float pk_neon_dot(const float *a, const float *b, size_t n) {
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        acc2 = vfmaq_f32(acc2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        acc3 = vfmaq_f32(acc3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
    if (i < n) acc1 = vfmaq_f32(acc1, load_tail(a + i, n - i), load_tail(b + i, n - i));
    return hsum16(acc0, acc1, acc2, acc3);
}

// out = silu(g) * u = (g * sigmoid(g)) * u.
void pk_neon_swiglu_forward(const float *g, const float *u, float *out, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t gv = vld1q_f32(g + i);
        vst1q_f32(out + i, vmulq_f32(vmulq_f32(gv, sigmoid4(gv)), vld1q_f32(u + i)));
    }
    if (i < n) {
        const float32x4_t gv = load_tail(g + i, n - i);
        store_tail(out + i, vmulq_f32(vmulq_f32(gv, sigmoid4(gv)), load_tail(u + i, n - i)), n - i);
    }
}

/// tanh(y): 1 - 2 / (exp(2y) + 1), and near 0 (|y| < 0.125) its odd series, as vector.c's x86 bodies.
PK_INLINE float32x4_t tanh4(float32x4_t y) {
    const float32x4_t one = vdupq_n_f32(1.0f), two = vdupq_n_f32(2.0f);
    const float32x4_t far = vsubq_f32(one, vdivq_f32(two, vaddq_f32(exp4(vmulq_f32(two, y)), one)));
    const float32x4_t y2 = vmulq_f32(y, y);
    float32x4_t p = vfmaq_f32(vdupq_n_f32(2.0f / 15.0f), y2, vdupq_n_f32(-17.0f / 315.0f));
    p = vfmaq_f32(vdupq_n_f32(-1.0f / 3.0f), p, y2);
    const float32x4_t near = vfmaq_f32(y, vmulq_f32(p, y2), y);
    return vbslq_f32(vcltq_f32(vabsq_f32(y), vdupq_n_f32(0.125f)), near, far);
}

// x = cap * tanh(x / cap), or (dy given) dy *= 1 - tanh(x / cap)^2.
void pk_neon_softcap(float *x, size_t n, float cap, float *dy) {
    const float32x4_t c = vdupq_n_f32(cap), inv = vdupq_n_f32(1.0f / cap), one = vdupq_n_f32(1.0f);
    for (size_t i = 0; i < n; i += 4) {
        const size_t rem = n - i < 4 ? n - i : 4;
        const float32x4_t t = tanh4(vmulq_f32(rem == 4 ? vld1q_f32(x + i) : load_tail(x + i, rem), inv));
        const float32x4_t v = dy ? vmulq_f32(rem == 4 ? vld1q_f32(dy + i) : load_tail(dy + i, rem), vfmsq_f32(one, t, t))
                                 : vmulq_f32(c, t);
        float *dst = dy ? dy + i : x + i;
        if (rem == 4) vst1q_f32(dst, v); else store_tail(dst, v, rem);
    }
}

// The GELU-gated MLP: out = gelu(g) * u (dout NULL), or dg, du from dout; gelu(g) = g sigmoid(2z),
// z2 = 2 sqrt(2/pi) (g + 0.044715 g^3).
void pk_neon_geglu(const float *dout, const float *g, const float *u, float *out, float *dg, float *du, size_t n) {
    const float32x4_t one = vdupq_n_f32(1.0f), c2 = vdupq_n_f32(2.0f * 0.7978845608028654f);
    const float32x4_t k = vdupq_n_f32(0.044715f), k3 = vdupq_n_f32(3.0f * 0.044715f);
    for (size_t i = 0; i < n; i += 4) {
        const size_t rem = n - i < 4 ? n - i : 4;
        const float32x4_t x = rem == 4 ? vld1q_f32(g + i) : load_tail(g + i, rem);
        const float32x4_t uv = rem == 4 ? vld1q_f32(u + i) : load_tail(u + i, rem);
        const float32x4_t x2 = vmulq_f32(x, x);
        const float32x4_t s = sigmoid4(vmulq_f32(c2, vfmaq_f32(x, vmulq_f32(k, x2), x)));
        const float32x4_t xs = vmulq_f32(x, s);
        if (!dout) {
            const float32x4_t v = vmulq_f32(xs, uv);
            if (rem == 4) vst1q_f32(out + i, v); else store_tail(out + i, v, rem);
            continue;
        }
        const float32x4_t dy = rem == 4 ? vld1q_f32(dout + i) : load_tail(dout + i, rem);
        const float32x4_t dz2 = vmulq_f32(c2, vfmaq_f32(one, k3, x2));
        const float32x4_t dgelu = vfmaq_f32(s, vmulq_f32(xs, vsubq_f32(one, s)), dz2);
        const float32x4_t a = vmulq_f32(vmulq_f32(dy, uv), dgelu), b = vmulq_f32(dy, xs);
        if (rem == 4) { vst1q_f32(dg + i, a); vst1q_f32(du + i, b); }
        else { store_tail(dg + i, a, rem); store_tail(du + i, b, rem); }
    }
}

// s = sigmoid(g): du = dout * g * s; dg = dout * u * s (1 + g (1 - s)).
PK_INLINE void swiglu_backward4(float32x4_t dy, float32x4_t gv, float32x4_t uv, float32x4_t *dg, float32x4_t *du) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    const float32x4_t s = sigmoid4(gv);
    const float32x4_t dsilu = vmulq_f32(s, vfmaq_f32(one, gv, vsubq_f32(one, s)));
    *du = vmulq_f32(dy, vmulq_f32(gv, s));
    *dg = vmulq_f32(vmulq_f32(dy, uv), dsilu);
}

void pk_neon_swiglu_backward(const float *dout, const float *g, const float *u, float *dg, float *du, size_t n) {
    size_t i = 0;
    float32x4_t a, b;
    for (; i + 4 <= n; i += 4) {
        swiglu_backward4(vld1q_f32(dout + i), vld1q_f32(g + i), vld1q_f32(u + i), &a, &b);
        vst1q_f32(dg + i, a);
        vst1q_f32(du + i, b);
    }
    if (i < n) {
        const size_t rem = n - i;
        swiglu_backward4(load_tail(dout + i, rem), load_tail(g + i, rem), load_tail(u + i, rem), &a, &b);
        store_tail(dg + i, a, rem);
        store_tail(du + i, b, rem);
    }
}

// ---- softmax rows --------------------------------------------------------------------------------------------

/// max of row[0..n) (-inf for n = 0); NaN entries are passed over, as the scalar comparison does.
float pk_neon_max(const float *row, size_t n) {
    float32x4_t m0 = vdupq_n_f32(-INFINITY), m1 = m0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        m0 = vmaxnmq_f32(m0, vld1q_f32(row + i));
        m1 = vmaxnmq_f32(m1, vld1q_f32(row + i + 4));
    }
    for (; i + 4 <= n; i += 4) m0 = vmaxnmq_f32(m0, vld1q_f32(row + i));
    float mx = vmaxnmvq_f32(vmaxnmq_f32(m0, m1));
    for (; i < n; i++) mx = row[i] > mx ? row[i] : mx;
    return mx;
}

/// Sum of exp(row - mx) over row[0..n) in 16 partial sums; exp(row - mx) written back in place when write.
float pk_neon_exp_sum(float *row, size_t n, float mx, int write) {
    const float32x4_t mv = vdupq_n_f32(mx);
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float32x4_t e0 = exp4(vsubq_f32(vld1q_f32(row + i), mv));
        const float32x4_t e1 = exp4(vsubq_f32(vld1q_f32(row + i + 4), mv));
        const float32x4_t e2 = exp4(vsubq_f32(vld1q_f32(row + i + 8), mv));
        const float32x4_t e3 = exp4(vsubq_f32(vld1q_f32(row + i + 12), mv));
        acc0 = vaddq_f32(acc0, e0);
        acc1 = vaddq_f32(acc1, e1);
        acc2 = vaddq_f32(acc2, e2);
        acc3 = vaddq_f32(acc3, e3);
        if (write) {
            vst1q_f32(row + i, e0);
            vst1q_f32(row + i + 4, e1);
            vst1q_f32(row + i + 8, e2);
            vst1q_f32(row + i + 12, e3);
        }
    }
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = exp4(vsubq_f32(vld1q_f32(row + i), mv));
        acc0 = vaddq_f32(acc0, e);
        if (write) vst1q_f32(row + i, e);
    }
    if (i < n) {
        const size_t rem = n - i;
        float32x4_t e = exp4(vsubq_f32(load_tail(row + i, rem), mv));
        e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), tail_mask4(rem)));   // padding lanes add 0
        acc1 = vaddq_f32(acc1, e);
        if (write) store_tail(row + i, e, rem);
    }
    return hsum16(acc0, acc1, acc2, acc3);
}

void pk_neon_scale(float *row, size_t n, float s) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vst1q_f32(row + i, vmulq_n_f32(vld1q_f32(row + i), s));
        vst1q_f32(row + i + 4, vmulq_n_f32(vld1q_f32(row + i + 4), s));
    }
    for (; i < n; i++) row[i] *= s;
}

// ---- conversions (bit for bit the scalar twins of convert.c / internal.h, NaN included) -----------------------

void pk_neon_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vld1q_u16(src + i);
        vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
        vst1q_f32(dst + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
    }
    for (; i < n; i++) dst[i] = pk_bf16_scalar(src[i]);
}

/// 4 floats to bf16, round to nearest even in integer arithmetic; NaN keeps its top bits and becomes quiet.
PK_INLINE uint16x4_t to_bf16x4(float32x4_t v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t bias = vaddq_u32(vdupq_n_u32(0x7fff), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1)));
    const uint16x4_t rounded = vshrn_n_u32(vaddq_u32(u, bias), 16);
    const uint16x4_t quiet = vorr_u16(vshrn_n_u32(u, 16), vdup_n_u16(0x40));
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    return vbsl_u16(vmovn_u32(nan), quiet, rounded);
}

void pk_neon_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_u16(dst + i, vcombine_u16(to_bf16x4(vld1q_f32(src + i)), to_bf16x4(vld1q_f32(src + i + 4))));
    for (; i < n; i++) dst[i] = pk_to_bf16_scalar(src[i]);
}

/// 4 halves to floats (FCVTL: exact), NaN mapped as the scalar twin does: payload shifted up, not made quiet.
PK_INLINE float32x4_t from_f16x4(uint16x4_t h) {
    const float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u16(h));
    const uint32x4_t w = vmovl_u16(h);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(w, vdupq_n_u32(0x7fff)), vdupq_n_u32(0x7c00));
    const uint32x4_t bits = vorrq_u32(vorrq_u32(vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x8000)), 16), vdupq_n_u32(0x7f800000)),
                                      vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x3ff)), 13));
    return vbslq_f32(nan, vreinterpretq_f32_u32(bits), f);
}

/// 4 floats to halves (FCVTN: round to nearest even, overflow to inf, subnormals exact); NaN to sign | 0x7e00.
PK_INLINE uint16x4_t to_f16x4(float32x4_t v) {
    const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(v));
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    const uint16x4_t quiet = vorr_u16(vand_u16(vshrn_n_u32(u, 16), vdup_n_u16(0x8000)), vdup_n_u16(0x7e00));
    return vbsl_u16(vmovn_u32(nan), quiet, h);
}

void pk_neon_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, from_f16x4(vld1_u16(src + i)));
    if (i < n) {
        uint16_t t[4] = {0, 0, 0, 0};
        memcpy(t, src + i, (n - i) * sizeof(uint16_t));
        store_tail(dst + i, from_f16x4(vld1_u16(t)), n - i);
    }
}

void pk_neon_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, to_f16x4(vld1q_f32(src + i)));
    if (i < n) {
        uint16_t t[4];
        vst1_u16(t, to_f16x4(load_tail(src + i, n - i)));
        memcpy(dst + i, t, (n - i) * sizeof(uint16_t));
    }
}

// ---- matrix-vector products (decode) ---------------------------------------------------------------------------

/// Row wr of W (k weights) against inputs m0 .. m0 + NM (NM <= 4, a constant once inlined): 16 weights a step,
/// 4 accumulators per input; y[(m0 + j) * ldy + r].
PK_INLINE void gemv_tile(const float *wr, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t r,
                         size_t m0, const int NM) {
    float32x4_t acc[4][4];
    const float *xs[4];
    PK_UNROLL for (int j = 0; j < NM; j++) {
        xs[j] = x + (m0 + (size_t)j) * ldx;
        PK_UNROLL for (int q = 0; q < 4; q++) acc[j][q] = vdupq_n_f32(0);
    }
    size_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const float32x4_t w0 = vld1q_f32(wr + i), w1 = vld1q_f32(wr + i + 4);
        const float32x4_t w2 = vld1q_f32(wr + i + 8), w3 = vld1q_f32(wr + i + 12);
        PK_UNROLL for (int j = 0; j < NM; j++) {
            acc[j][0] = vfmaq_f32(acc[j][0], w0, vld1q_f32(xs[j] + i));
            acc[j][1] = vfmaq_f32(acc[j][1], w1, vld1q_f32(xs[j] + i + 4));
            acc[j][2] = vfmaq_f32(acc[j][2], w2, vld1q_f32(xs[j] + i + 8));
            acc[j][3] = vfmaq_f32(acc[j][3], w3, vld1q_f32(xs[j] + i + 12));
        }
    }
    for (; i + 4 <= k; i += 4) {
        const float32x4_t wv = vld1q_f32(wr + i);
        PK_UNROLL for (int j = 0; j < NM; j++) acc[j][0] = vfmaq_f32(acc[j][0], wv, vld1q_f32(xs[j] + i));
    }
    PK_UNROLL for (int j = 0; j < NM; j++) {
        float s = hsum16(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        for (size_t t = i; t < k; t++) s += wr[t] * xs[j][t];
        y[(m0 + (size_t)j) * ldy + r] = s;
    }
}

/// y[m, r] = W[r, :] . x[m, :] for rows [r0, r1), every input m: each weight row read once per 4 inputs.
void pk_neon_gemv_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t m_count,
                      size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
        const float *wr = w + r * k;
        size_t m = 0;
        for (; m + 4 <= m_count; m += 4) gemv_tile(wr, k, x, ldx, y, ldy, r, m, 4);
        switch (m_count - m) {
        case 3: gemv_tile(wr, k, x, ldx, y, ldy, r, m, 3); break;
        case 2: gemv_tile(wr, k, x, ldx, y, ldy, r, m, 2); break;
        case 1: gemv_tile(wr, k, x, ldx, y, ldy, r, m, 1); break;
        default: break;
        }
    }
}

/// A register tile of 4 weight rows (r .. r + nr, nr <= 4; missing rows repeat row r and are not stored) x NM
/// inputs (NM <= 4, a constant once inlined): 16 accumulators of 4 lanes, each weight vector feeding NM FMAs.
PK_INLINE void small_tile(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy, size_t r,
                          size_t nr, size_t m, const int NM) {
    float32x4_t acc[4][4];
    const float *wr[4], *xr[4];
    PK_UNROLL for (int a = 0; a < 4; a++) {
        wr[a] = w + (r + ((size_t)a < nr ? (size_t)a : 0)) * k;
        PK_UNROLL for (int b = 0; b < NM; b++) acc[a][b] = vdupq_n_f32(0);
    }
    PK_UNROLL for (int b = 0; b < NM; b++) xr[b] = x + (m + (size_t)b) * ldx;
    size_t i = 0;
    for (; i + 4 <= k; i += 4) {
        float32x4_t xv[4];
        PK_UNROLL for (int b = 0; b < NM; b++) xv[b] = vld1q_f32(xr[b] + i);
        PK_UNROLL for (int a = 0; a < 4; a++) {
            const float32x4_t wv = vld1q_f32(wr[a] + i);
            PK_UNROLL for (int b = 0; b < NM; b++) acc[a][b] = vfmaq_f32(acc[a][b], wv, xv[b]);
        }
    }
    PK_UNROLL for (int a = 0; a < 4; a++) {
        if ((size_t)a >= nr) break;
        PK_UNROLL for (int b = 0; b < NM; b++) {
            float s = vaddvq_f32(acc[a][b]);
            for (size_t t = i; t < k; t++) s += wr[a][t] * xr[b][t];
            y[(m + (size_t)b) * ldy + r + (size_t)a] = s;
        }
    }
}

void pk_neon_gemm_small_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                            size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 4) {
        const size_t nr = r1 - r < 4 ? r1 - r : 4;
        size_t m = 0;
        for (; m + 4 <= m_count; m += 4) small_tile(w, k, x, ldx, y, ldy, r, nr, m, 4);
        switch (m_count - m) {
        case 3: small_tile(w, k, x, ldx, y, ldy, r, nr, m, 3); break;
        case 2: small_tile(w, k, x, ldx, y, ldy, r, nr, m, 2); break;
        case 1: small_tile(w, k, x, ldx, y, ldy, r, nr, m, 1); break;
        default: break;
        }
    }
}

// ---- bf16 x bf16 products ----------------------------------------------------------------------------------------
// Both operands widened to f32, where the product of two bf16 values is exact, and fused into f32 sums (no BFDOT:
// its intermediate rounding differs). Tiles of 4 weight rows x NM inputs (NM = 2, or 1 for the last input); every
// (input, row) pair runs the same sequence in any tile: per 8 elements one FMA into each of its two accumulators
// (elements 0-3, 4-7), then one 4-element step into the first, then (acc0 + acc1) summed across lanes, then the
// last k % 4 products in order. An input's result therefore does not depend on m_count nor on the tile.

PK_INLINE float32x4_t bf16_lo(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)); }
PK_INLINE float32x4_t bf16_hi(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)); }
PK_INLINE float32x4_t bf16_x4(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

PK_INLINE void dot_bf16_tile(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                             size_t r, size_t nr, size_t m, const int NM) {
    float32x4_t acc[4][2][2];
    const uint16_t *wr[4], *xr[2];
    PK_UNROLL for (int a = 0; a < 4; a++) {
        wr[a] = w + (r + ((size_t)a < nr ? (size_t)a : 0)) * k;
        PK_UNROLL for (int b = 0; b < NM; b++) acc[a][b][0] = acc[a][b][1] = vdupq_n_f32(0);
    }
    PK_UNROLL for (int b = 0; b < NM; b++) xr[b] = x + (m + (size_t)b) * ldx;
    size_t i = 0;
    for (; i + 8 <= k; i += 8) {
        float32x4_t xl[2], xh[2];
        PK_UNROLL for (int b = 0; b < NM; b++) {
            const uint16x8_t v = vld1q_u16(xr[b] + i);
            xl[b] = bf16_lo(v);
            xh[b] = bf16_hi(v);
        }
        PK_UNROLL for (int a = 0; a < 4; a++) {
            const uint16x8_t v = vld1q_u16(wr[a] + i);
            const float32x4_t wl = bf16_lo(v), wh = bf16_hi(v);
            PK_UNROLL for (int b = 0; b < NM; b++) {
                acc[a][b][0] = vfmaq_f32(acc[a][b][0], wl, xl[b]);
                acc[a][b][1] = vfmaq_f32(acc[a][b][1], wh, xh[b]);
            }
        }
    }
    if (i + 4 <= k) {
        float32x4_t xv[2];
        PK_UNROLL for (int b = 0; b < NM; b++) xv[b] = bf16_x4(xr[b] + i);
        PK_UNROLL for (int a = 0; a < 4; a++) {
            const float32x4_t wv = bf16_x4(wr[a] + i);
            PK_UNROLL for (int b = 0; b < NM; b++) acc[a][b][0] = vfmaq_f32(acc[a][b][0], wv, xv[b]);
        }
        i += 4;
    }
    PK_UNROLL for (int a = 0; a < 4; a++) {
        if ((size_t)a >= nr) break;
        PK_UNROLL for (int b = 0; b < NM; b++) {
            float s = vaddvq_f32(vaddq_f32(acc[a][b][0], acc[a][b][1]));
            for (size_t t = i; t < k; t++) s += pk_bf16_scalar(wr[a][t]) * pk_bf16_scalar(xr[b][t]);
            y[(m + (size_t)b) * ldy + r + (size_t)a] = s;
        }
    }
}

void pk_neon_dot_bf16(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                      size_t m_count, size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r += 4) {
        const size_t nr = r1 - r < 4 ? r1 - r : 4;
        size_t m = 0;
        for (; m + 2 <= m_count; m += 2) dot_bf16_tile(w, k, x, ldx, y, ldy, r, nr, m, 2);
        if (m < m_count) dot_bf16_tile(w, k, x, ldx, y, ldy, r, nr, m, 1);
    }
}

// ---- sgemm micro-kernel --------------------------------------------------------------------------------------------
// Ap panel [kc][6], Bp panel [kc][32]. Each half of the 32 columns is a 6 x 16 register block: 24 accumulators,
// 4 vectors of B, the 6 values of A as one vector of 4 and one of 2 (by-lane FMAs), 30 of the 32 registers.

/// Columns [0, 16) of the B panel at bp (row stride 32) into c (h rows, w0 <= 16 live columns).
PK_INLINE void micro_half(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w0,
                          float alpha, int add) {
    float32x4_t acc[6][4];
    PK_UNROLL for (int r = 0; r < 6; r++)
        PK_UNROLL for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_f32(0);
    for (size_t p = 0; p < kc; p++) {
        const float *b = bp + p * 32, *a = ap + p * 6;
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
        const float32x4_t a03 = vld1q_f32(a);
        const float32x2_t a45 = vld1_f32(a + 4);
#define ROW_Q(R, AV, L)                                                                                                \
    acc[R][0] = vfmaq_laneq_f32(acc[R][0], b0, AV, L);                                                               \
    acc[R][1] = vfmaq_laneq_f32(acc[R][1], b1, AV, L);                                                               \
    acc[R][2] = vfmaq_laneq_f32(acc[R][2], b2, AV, L);                                                               \
    acc[R][3] = vfmaq_laneq_f32(acc[R][3], b3, AV, L);
#define ROW_D(R, AV, L)                                                                                                \
    acc[R][0] = vfmaq_lane_f32(acc[R][0], b0, AV, L);                                                                \
    acc[R][1] = vfmaq_lane_f32(acc[R][1], b1, AV, L);                                                                \
    acc[R][2] = vfmaq_lane_f32(acc[R][2], b2, AV, L);                                                                \
    acc[R][3] = vfmaq_lane_f32(acc[R][3], b3, AV, L);
        ROW_Q(0, a03, 0)
        ROW_Q(1, a03, 1)
        ROW_Q(2, a03, 2)
        ROW_Q(3, a03, 3)
        ROW_D(4, a45, 0)
        ROW_D(5, a45, 1)
#undef ROW_Q
#undef ROW_D
    }
    PK_UNROLL for (int r = 0; r < 6; r++) {   // constant trip count: the accumulators stay in registers
        if ((size_t)r >= h) break;
        float *cr = c + (size_t)r * ldc;
        float32x4_t v[4];
        PK_UNROLL for (int q = 0; q < 4; q++) v[q] = vmulq_n_f32(acc[r][q], alpha);
        if (w0 >= 16) {
            PK_UNROLL for (int q = 0; q < 4; q++) {
                if (add) v[q] = vaddq_f32(vld1q_f32(cr + 4 * q), v[q]);
                vst1q_f32(cr + 4 * q, v[q]);
            }
        } else {
            float t[16];
            PK_UNROLL for (int q = 0; q < 4; q++) vst1q_f32(t + 4 * q, v[q]);
            for (size_t j = 0; j < w0; j++) cr[j] = (add ? cr[j] : 0) + t[j];
        }
    }
}

void pk_neon_sgemm_micro(const float *ap, const float *bp, size_t kc, float *c, size_t ldc, size_t h, size_t w,
                         float alpha, int add) {
    micro_half(ap, bp, kc, c, ldc, h, w < 16 ? w : 16, alpha, add);
    if (w > 16) micro_half(ap, bp + 16, kc, c + 16, ldc, h, w - 16, alpha, add);
}

// ---- quantized products: one packed group of 8 rows against one input -------------------------------------------
// The layout is quant_packed.c's: a chunk is 32 bytes, 4 bytes of each of the 8 rows (row 0 first), so 16 bytes
// hold 4 rows and one 4-byte slice of the activations (broadcast to the 4 lanes) pairs with all of them. Each
// accumulator holds 4 rows' integer sums (rows 0-3 and 4-7 in two); the integer sums are exactly the scalar twin's
// (q8_0 is summed with signed weights: sum (u - 128) x = sum u x - 128 sx), and the float scaling follows
// group_q8x_scalar's order, per row lane.
//
// Two ways to form the sums, one kernel body (Q8X_GROUP_KERNEL) for both:
//   - SDOT (dotprod): 4 products of int8 pairs added into each 32-bit lane, one instruction per 4 rows;
//   - without it: SMULL/SMULL2 into 16-bit products (|w x| <= 128 * 128, exact), SADALP into 32-bit pair sums
//     (lanes: row 0, row 0, row 1, row 1 / rows 2, 3 likewise), the pairs added at the end (ADDP).

/// The 4 activations at p in every 32-bit lane.
PK_INLINE int8x16_t dup4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

PK_INLINE int8x16_t as_s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

/// The 8 f16 values at p (rows 0-3, 4-7) as floats.
PK_INLINE void f16x8(const uint8_t *p, float32x4_t *lo, float32x4_t *hi) {
    const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p));
    *lo = vcvt_f32_f16(vget_low_f16(h));
    *hi = vcvt_high_f32_f16(h);
}

/// The 8 bytes at p, unsigned (q4_k scales and mins) or signed (q6_k scales), as floats.
PK_INLINE void u8x8(const uint8_t *p, float32x4_t *lo, float32x4_t *hi) {
    const uint16x8_t v = vmovl_u8(vld1_u8(p));
    *lo = vcvtq_f32_u32(vmovl_u16(vget_low_u16(v)));
    *hi = vcvtq_f32_u32(vmovl_high_u16(v));
}
PK_INLINE void s8x8(const uint8_t *p, float32x4_t *lo, float32x4_t *hi) {
    const int16x8_t v = vmovl_s8(vld1_s8((const int8_t *)p));
    *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(v)));
    *hi = vcvtq_f32_s32(vmovl_high_s16(v));
}

/// q5_0: bit 4 of each weight byte of a chunk from the rows' 32-bit masks qh (one row a lane): byte 4r + i gets
/// bit (shift + i) of row r's mask.
PK_INLINE uint8x16_t fifth_bits(uint32x4_t qh, int shift) {
    static const uint8_t spread[16] = {0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12};
    static const uint8_t select[16] = {1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
    const uint8x16_t t = vqtbl1q_u8(vreinterpretq_u8_u32(vshlq_u32(qh, vdupq_n_s32(-shift))), vld1q_u8(spread));
    return vandq_u8(vtstq_u8(t, vld1q_u8(select)), vdupq_n_u8(0x10));
}

/// SDOT accumulators: lane r = row r's sum.
PK_INLINE int32x4_t sdot_zero(void) { return vdupq_n_s32(0); }
PK_DOTPROD PK_INLINE int32x4_t sdot_dot(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
PK_INLINE int32x4_t sdot_sum(int32x4_t acc) { return acc; }

/// Widening accumulators: pair sums (lo: rows 0, 0, 1, 1; hi: rows 2, 2, 3, 3).
typedef struct { int32x4_t lo, hi; } pk_wide_acc;
PK_INLINE pk_wide_acc wide_zero(void) {
    pk_wide_acc a = {vdupq_n_s32(0), vdupq_n_s32(0)};
    return a;
}
PK_INLINE pk_wide_acc wide_dot(pk_wide_acc acc, int8x16_t w, int8x16_t x) {
    acc.lo = vpadalq_s16(acc.lo, vmull_s8(vget_low_s8(w), vget_low_s8(x)));
    acc.hi = vpadalq_s16(acc.hi, vmull_high_s8(w, x));
    return acc;
}
PK_INLINE int32x4_t wide_sum(pk_wide_acc acc) { return vpaddq_s32(acc.lo, acc.hi); }

/// q4_k: one sub-block's sums i0, i1 (rows 0-3, 4-7) into fs += (isum * scale) * dx and ms += (min * dx) * sx.
PK_INLINE void q4k_scale(float32x4_t fs[2], float32x4_t ms[2], int32x4_t i0, int32x4_t i1, const uint8_t *sc,
                         const uint8_t *mn, float d, int32_t s) {
    float32x4_t s0, s1, m0, m1;
    u8x8(sc, &s0, &s1);
    u8x8(mn, &m0, &m1);
    fs[0] = vaddq_f32(fs[0], vmulq_n_f32(vmulq_f32(vcvtq_f32_s32(i0), s0), d));
    fs[1] = vaddq_f32(fs[1], vmulq_n_f32(vmulq_f32(vcvtq_f32_s32(i1), s1), d));
    ms[0] = vaddq_f32(ms[0], vmulq_n_f32(vmulq_n_f32(m0, d), (float)s));
    ms[1] = vaddq_f32(ms[1], vmulq_n_f32(vmulq_n_f32(m1, d), (float)s));
}

#define Q8X_GROUP_KERNEL(NAME, ATTR, ACC, ZERO, DOT, SUM)                                                             \
    ATTR static void NAME(int type, const uint8_t *g, size_t k, const int8_t *qx, const float *dx, const int32_t *sx, \
                          float out[8]) {                                                                             \
        const size_t pb = pk_packed_block_bytes(type);                                                                \
        const uint8x16_t low = vdupq_n_u8(0xF);                                                                       \
        float32x4_t o0 = vdupq_n_f32(0), o1 = vdupq_n_f32(0);   /* rows 0-3, 4-7 */                                   \
        float32x4_t d0, d1;                                                                                           \
        if (type != PK_Q4_K) {                                                                                         \
            /* header: 8 f16 scales (q4_1 / q5_1: + 8 f16 minimums; q5_0 / q5_1: + 8 masks of fifth bits);             \
               out += (d * dx) * isum per block (q4_1 / q5_1: + m * dx * sx) */                                        \
            const int q5 = type == PK_Q5_0 || type == PK_Q5_1, mins = type == PK_Q4_1 || type == PK_Q5_1;              \
            const int nl = type == PK_IQ4_NL;                                                                          \
            const int8x16_t table = vld1q_s8(pk_iq4_levels);                                                              \
            for (size_t b = 0; b < k / 32; b++) {                                                                      \
                const uint8_t *blk = g + b * pb;                                                                       \
                const int8_t *xb = qx + 32 * b;                                                                        \
                ACC a0 = ZERO(), a1 = ZERO();                                                                          \
                int32_t offset = 0;                                                                                    \
                if (type == PK_Q8_0) {                                                                                 \
                    const uint8x16_t flip = vdupq_n_u8(0x80);   /* stored + 128: back to signed */                     \
                    for (int c = 0; c < 8; c++) {                                                                      \
                        const uint8_t *ch = blk + 16 + 32 * c;                                                         \
                        const int8x16_t xr = dup4(xb + 4 * c);                                                         \
                        a0 = DOT(a0, as_s8(veorq_u8(vld1q_u8(ch), flip)), xr);                                         \
                        a1 = DOT(a1, as_s8(veorq_u8(vld1q_u8(ch + 16), flip)), xr);                                    \
                    }                                                                                                  \
                } else {                                                                                               \
                    /* chunk c: low nibbles are weights 4c + i, high nibbles 16 + 4c + i */                            \
                    const uint8_t *qs = blk + (type == PK_Q5_1 ? 64 : type == PK_Q5_0 ? 48 : type == PK_Q4_1 ? 32 : 16);       \
                    uint32x4_t h0 = vdupq_n_u32(0), h1 = h0;                                                           \
                    if (q5) {                                                                                          \
                        const uint8_t *qh = blk + (type == PK_Q5_1 ? 32 : 16);                                         \
                        h0 = vreinterpretq_u32_u8(vld1q_u8(qh));                                                       \
                        h1 = vreinterpretq_u32_u8(vld1q_u8(qh + 16));                                                  \
                    }                                                                                                  \
                    for (int c = 0; c < 4; c++) {                                                                      \
                        const uint8x16_t v0 = vld1q_u8(qs + 32 * c), v1 = vld1q_u8(qs + 32 * c + 16);                  \
                        uint8x16_t l0 = vandq_u8(v0, low), u0 = vshrq_n_u8(v0, 4);                                     \
                        uint8x16_t l1 = vandq_u8(v1, low), u1 = vshrq_n_u8(v1, 4);                                     \
                        if (q5) {                                                                                      \
                            l0 = vorrq_u8(l0, fifth_bits(h0, 4 * c));                                                  \
                            u0 = vorrq_u8(u0, fifth_bits(h0, 16 + 4 * c));                                             \
                            l1 = vorrq_u8(l1, fifth_bits(h1, 4 * c));                                                  \
                            u1 = vorrq_u8(u1, fifth_bits(h1, 16 + 4 * c));                                             \
                        }                                                                                              \
                        const int8x16_t xl = dup4(xb + 4 * c), xh = dup4(xb + 16 + 4 * c);                             \
                        if (nl) {                                                                                      \
                            a0 = DOT(a0, vqtbl1q_s8(table, l0), xl);                                                   \
                            a0 = DOT(a0, vqtbl1q_s8(table, u0), xh);                                                   \
                            a1 = DOT(a1, vqtbl1q_s8(table, l1), xl);                                                   \
                            a1 = DOT(a1, vqtbl1q_s8(table, u1), xh);                                                   \
                        } else {                                                                                       \
                            a0 = DOT(a0, as_s8(l0), xl);                                                               \
                            a0 = DOT(a0, as_s8(u0), xh);                                                               \
                            a1 = DOT(a1, as_s8(l1), xl);                                                               \
                            a1 = DOT(a1, as_s8(u1), xh);                                                               \
                        }                                                                                              \
                    }                                                                                                  \
                    offset = (type == PK_Q5_0 ? -16 : type == PK_Q4_0 ? -8 : 0) * sx[b];                               \
                }                                                                                                      \
                const int32x4_t off = vdupq_n_s32(offset);                                                             \
                f16x8(blk, &d0, &d1);                                                                                  \
                o0 = vaddq_f32(o0, vmulq_f32(vmulq_n_f32(d0, dx[b]), vcvtq_f32_s32(vaddq_s32(SUM(a0), off))));         \
                o1 = vaddq_f32(o1, vmulq_f32(vmulq_n_f32(d1, dx[b]), vcvtq_f32_s32(vaddq_s32(SUM(a1), off))));         \
                if (mins) {                                                                                            \
                    float32x4_t m0, m1;                                                                                \
                    f16x8(blk + 16, &m0, &m1);                                                                         \
                    const float ms = dx[b] * (float)sx[b];                                                             \
                    o0 = vaddq_f32(o0, vmulq_n_f32(m0, ms));                                                           \
                    o1 = vaddq_f32(o1, vmulq_n_f32(m1, ms));                                                           \
                }                                                                                                      \
            }                                                                                                          \
        } else {                                                                                                      \
            /* q4_k: 8 f16 d, 8 f16 dmin, packed scales and mins (unpacked per block to [sub-block][row]); chunk     \
               8p + c holds bytes 32p + 4c + i: low nibbles sub-block 2p, high nibbles 2p + 1 */                      \
            for (size_t b = 0; b < k / 256; b++) {                                                                    \
                const uint8_t *blk = g + b * pb;                                                                      \
                uint8_t un[128];                                                                                      \
                pk_q4k_unpack_scales(blk, un);                                                                        \
                float32x4_t fs[2] = {vdupq_n_f32(0), vdupq_n_f32(0)}, ms[2] = {vdupq_n_f32(0), vdupq_n_f32(0)};       \
                for (int p = 0; p < 4; p++) {                                                                         \
                    const size_t xb = 8 * b + 2 * p;                                                                  \
                    const int8_t *x0 = qx + 32 * xb, *x1 = x0 + 32;                                                   \
                    ACC l0 = ZERO(), l1 = ZERO(), u0 = ZERO(), u1 = ZERO();                                           \
                    for (int c = 0; c < 8; c++) {                                                                     \
                        const uint8_t *ch = blk + 128 + 32 * (8 * p + c);                                             \
                        const uint8x16_t v0 = vld1q_u8(ch), v1 = vld1q_u8(ch + 16);                                   \
                        const int8x16_t xl = dup4(x0 + 4 * c), xh = dup4(x1 + 4 * c);                                 \
                        l0 = DOT(l0, as_s8(vandq_u8(v0, low)), xl);                                                   \
                        l1 = DOT(l1, as_s8(vandq_u8(v1, low)), xl);                                                   \
                        u0 = DOT(u0, as_s8(vshrq_n_u8(v0, 4)), xh);                                                   \
                        u1 = DOT(u1, as_s8(vshrq_n_u8(v1, 4)), xh);                                                   \
                    }                                                                                                 \
                    q4k_scale(fs, ms, SUM(l0), SUM(l1), un + 16 * p, un + 64 + 16 * p, dx[xb], sx[xb]);           \
                    q4k_scale(fs, ms, SUM(u0), SUM(u1), un + 8 + 16 * p, un + 72 + 16 * p, dx[xb + 1], sx[xb + 1]); \
                }                                                                                                     \
                float32x4_t m0, m1;                                                                                   \
                f16x8(blk, &d0, &d1);                                                                                 \
                f16x8(blk + 16, &m0, &m1);                                                                            \
                o0 = vaddq_f32(o0, vsubq_f32(vmulq_f32(d0, fs[0]), vmulq_f32(m0, ms[0])));                           \
                o1 = vaddq_f32(o1, vsubq_f32(vmulq_f32(d1, fs[1]), vmulq_f32(m1, ms[1])));                           \
            }                                                                                                         \
        }                                                                                                             \
        vst1q_f32(out, o0);                                                                                           \
        vst1q_f32(out + 4, o1);                                                                                       \
    }

Q8X_GROUP_KERNEL(group_q8x_sdot, PK_DOTPROD, int32x4_t, sdot_zero, sdot_dot, sdot_sum)
Q8X_GROUP_KERNEL(group_q8x_wide, , pk_wide_acc, wide_zero, wide_dot, wide_sum)

void pk_neon_group_q8x(int type, const uint8_t *g, size_t k, const int8_t *qx, const float *dx, const int32_t *sx,
                       float out[8]) {
    if (pk_has_vnni()) group_q8x_sdot(type, g, k, qx, dx, sx, out);
    else group_q8x_wide(type, g, k, qx, dx, sx, out);
}


// ---- one row of a row-layout format (quant_rows.c) against up to 4 inputs ----
// The block is unpacked to int8 levels, 16-weight scales and offsets (pk_row_unpack_block); each 16 levels are
// multiplied by 16 activations into 4 lanes (SDOT, or SMULL + pairwise adds), scaled in float per lane and summed at
// the end, in quant_rows.c's order per 16 weights.
PK_DOTPROD PK_INLINE int32x4_t dot16_sdot(int8x16_t w, int8x16_t x) { return vdotq_s32(vdupq_n_s32(0), w, x); }
PK_INLINE int32x4_t dot16_wide(int8x16_t w, int8x16_t x) {
    return vaddq_s32(vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x))), vpaddlq_s16(vmull_high_s8(w, x)));
}

#define ROW_DOT_KERNEL(NAME, ATTR, DOT16)                                                                            \
    ATTR static void NAME(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx,                \
                          const int16_t *bs16, size_t mt, float *out) {                                             \
        const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);                               \
        int8_t q[256];                                                                                              \
        float sc[16], mn[16], off[4] = {0, 0, 0, 0};                                                                \
        float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};                       \
        for (size_t b = 0; b < k / bs; b++) {                                                                       \
            const int offsets = pk_row_unpack_block(type, row + b * bb, q, sc, mn);                                 \
            for (size_t g = 0; g < bs / 16; g++) {                                                                  \
                const int8x16_t w = vld1q_s8(q + 16 * g);                                                           \
                for (size_t j = 0; j < mt; j++) {                                                                   \
                    const size_t at = j * k + b * bs + 16 * g;                                                      \
                    const int32x4_t p = DOT16(w, vld1q_s8(qx + at));                                                \
                    acc[j] = vaddq_f32(acc[j], vmulq_n_f32(vcvtq_f32_s32(p), sc[g] * dx[at / 32]));                 \
                }                                                                                                   \
            }                                                                                                       \
            if (offsets) {                                                                                          \
                for (size_t j = 0; j < mt; j++) {                                                                   \
                    const int16_t *s = bs16 + j * (k / 16) + b * bs / 16;                                           \
                    const float *d = dx + j * (k / 32) + b * bs / 32;                                               \
                    for (size_t g = 0; g < bs / 16; g++) off[j] += mn[g] * (d[g / 2] * (float)s[g]);                \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (size_t j = 0; j < mt; j++) out[j] = vaddvq_f32(acc[j]) - off[j];                                       \
    }

ROW_DOT_KERNEL(row_dot_sdot, PK_DOTPROD, dot16_sdot)
ROW_DOT_KERNEL(row_dot_wide, , dot16_wide)

void pk_neon_row_dot(int type, const uint8_t *row, size_t k, const int8_t *qx, const float *dx, const int16_t *bs16,
                     size_t mt, float *out) {
    if (pk_has_vnni()) row_dot_sdot(type, row, k, qx, dx, bs16, mt, out);
    else row_dot_wide(type, row, k, qx, dx, bs16, mt, out);
}

#endif
