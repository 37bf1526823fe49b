// Elementwise and row kernels: dot, axpy, RMSNorm, SwiGLU, softmax, cross-entropy rows, AdamW.
#include "CKernels.h"
#include "internal.h"

#if PK_X86
PK_AVX512 static float dot_avx512(const float *a, const float *b, size_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n) {
        __mmask16 m = pk_tail_mask(n - i);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

PK_AVX2 static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    if (i < n) {
        const __m256i m0 = pk_tail_mask8(n - i), m1 = pk_tail_mask8(n - i > 8 ? n - i - 8 : 0);
        acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m0), _mm256_maskload_ps(b + i, m0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i + 8, m1), _mm256_maskload_ps(b + i + 8, m1), acc1);
    }
    return pk_hsum256(_mm256_add_ps(acc0, acc1));
}
#endif

float pk_dot(const float *a, const float *b, size_t n) {
#if PK_X86
    if (pk_has_avx512()) return dot_avx512(a, b, n);
    if (pk_has_avx2()) return dot_avx2(a, b, n);
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) return pk_neon_dot(a, b, n);
#endif
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

PK_INLINE void axpy_body(float alpha, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
PK_TIERED_VOID(axpy, (float alpha, const float *x, float *y, size_t n), (alpha, x, y, n))

double pk_sumsq(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

PK_INLINE void rmsnorm_forward_body(const float *x, const float *w, float *out, float *rstd, size_t n, size_t c,
                                     float eps) {
    for (size_t r = 0; r < n; r++) {
        const float *xr = x + r * c;
        float *o = out + r * c;
        float ss = pk_dot(xr, xr, c);
        float rs = 1.0f / sqrtf(ss / (float)c + eps);
        if (rstd) rstd[r] = rs;
        for (size_t i = 0; i < c; i++) o[i] = w[i] * (xr[i] * rs);
    }
}
PK_TIERED_VOID(rmsnorm_forward, (const float *x, const float *w, float *out, float *rstd, size_t n, size_t c, float eps),
               (x, w, out, rstd, n, c, eps))

// y = w * x * rs, rs = (mean(x^2)+eps)^-1/2.  dx_i = rs * (w_i dy_i) - rs^3 / c * x_i * sum_j (w_j dy_j x_j)
PK_INLINE void rmsnorm_backward_body(const float *dout, const float *x, const float *w, const float *rstd, float *dx,
                                      float *dw, size_t n, size_t c, int accumulate_dx) {
    for (size_t r = 0; r < n; r++) {
        const float *xr = x + r * c, *dy = dout + r * c;
        float *dxr = dx + r * c;
        float rs = rstd[r];
        float dot = 0;
        for (size_t i = 0; i < c; i++) dot += w[i] * dy[i] * xr[i];
        float coef = rs * rs * rs * dot / (float)c;
        if (accumulate_dx) {
            for (size_t i = 0; i < c; i++) dxr[i] += rs * w[i] * dy[i] - coef * xr[i];
        } else {
            for (size_t i = 0; i < c; i++) dxr[i] = rs * w[i] * dy[i] - coef * xr[i];
        }
        if (dw)
            for (size_t i = 0; i < c; i++) dw[i] += dy[i] * xr[i] * rs;
    }
}
PK_TIERED_VOID(rmsnorm_backward, (const float *dout, const float *x, const float *w, const float *rstd, float *dx,
                                  float *dw, size_t n, size_t c, int accumulate_dx),
               (dout, x, w, rstd, dx, dw, n, c, accumulate_dx))

#if PK_X86
PK_AVX512 static void swiglu_forward_avx512(const float *g, const float *u, float *out, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, pk_exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(gv, sig), uv));
    }
}

PK_AVX2 static void swiglu_forward_avx2(const float *g, const float *u, float *out, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 8) {
        const __m256i m = pk_tail_mask8(n - i >= 8 ? 8 : n - i);
        __m256 gv = _mm256_maskload_ps(g + i, m), uv = _mm256_maskload_ps(u + i, m);
        __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, pk_exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
        _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(_mm256_mul_ps(gv, sig), uv));
    }
}
#endif

void pk_swiglu_forward(const float *g, const float *u, float *out, size_t n) {
#if PK_X86
    if (pk_has_avx512()) { swiglu_forward_avx512(g, u, out, n); return; }
    if (pk_has_avx2()) { swiglu_forward_avx2(g, u, out, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_swiglu_forward(g, u, out, n); return; }
#endif
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        out[i] = g[i] * s * u[i];
    }
}

// silu(g) = g s, s = sigmoid(g); d silu / dg = s (1 + g (1 - s)).
#if PK_X86
PK_AVX512 static void swiglu_backward_avx512(const float *dout, const float *g, const float *u, float *dg,
                                             float *du, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 dy = _mm512_maskz_loadu_ps(m, dout + i);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, pk_exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
        __m512 silu = _mm512_mul_ps(gv, s);
        __m512 dsilu = _mm512_mul_ps(s, _mm512_fmadd_ps(gv, _mm512_sub_ps(one, s), one));
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(dy, silu));
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dy, uv), dsilu));
    }
}

PK_AVX2 static void swiglu_backward_avx2(const float *dout, const float *g, const float *u, float *dg, float *du,
                                         size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 8) {
        const __m256i m = pk_tail_mask8(n - i >= 8 ? 8 : n - i);
        __m256 gv = _mm256_maskload_ps(g + i, m), uv = _mm256_maskload_ps(u + i, m);
        __m256 dy = _mm256_maskload_ps(dout + i, m);
        __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, pk_exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
        __m256 silu = _mm256_mul_ps(gv, sg);
        __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, sg), one));
        _mm256_maskstore_ps(du + i, m, _mm256_mul_ps(dy, silu));
        _mm256_maskstore_ps(dg + i, m, _mm256_mul_ps(_mm256_mul_ps(dy, uv), dsilu));
    }
}
#endif

void pk_swiglu_backward(const float *dout, const float *g, const float *u, float *dg, float *du, size_t n) {
#if PK_X86
    if (pk_has_avx512()) { swiglu_backward_avx512(dout, g, u, dg, du, n); return; }
    if (pk_has_avx2()) { swiglu_backward_avx2(dout, g, u, dg, du, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_swiglu_backward(dout, g, u, dg, du, n); return; }
#endif
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        du[i] = dout[i] * g[i] * s;
        dg[i] = dout[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

#if PK_X86
PK_AVX512 static float max_avx512(const float *row, size_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, row + i));
    }
    return _mm512_reduce_max_ps(mx);
}

/// Writes exp(row - mx) in place (when write) and returns the sum.
PK_AVX512 static float exp_sum_avx512(float *row, size_t n, float mx, int write) {
    __m512 acc = _mm512_setzero_ps(), mv = _mm512_set1_ps(mx);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        __m512 e = pk_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + i), mv));
        e = _mm512_maskz_mov_ps(m, e);
        acc = _mm512_add_ps(acc, e);
        if (write) _mm512_mask_storeu_ps(row + i, m, e);
    }
    return _mm512_reduce_add_ps(acc);
}

PK_AVX512 static void scale_avx512(float *row, size_t n, float s) {
    __m512 sv = _mm512_set1_ps(s);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        _mm512_mask_storeu_ps(row + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + i), sv));
    }
}

PK_AVX2 static float max_avx2(const float *row, size_t n) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(row + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r = row[i] > r ? row[i] : r;
    return r;
}

/// Two accumulators of 8 lanes: 16 partial sums, as the AVX-512 body, so long rows (a vocabulary) lose no precision.
PK_AVX2 static float exp_sum_avx2(float *row, size_t n, float mx, int write) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), mv = _mm256_set1_ps(mx);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 e0 = pk_exp256(_mm256_sub_ps(_mm256_loadu_ps(row + i), mv));
        __m256 e1 = pk_exp256(_mm256_sub_ps(_mm256_loadu_ps(row + i + 8), mv));
        acc0 = _mm256_add_ps(acc0, e0);
        acc1 = _mm256_add_ps(acc1, e1);
        if (write) { _mm256_storeu_ps(row + i, e0); _mm256_storeu_ps(row + i + 8, e1); }
    }
    for (; i < n; i += 8) {
        const __m256i m = pk_tail_mask8(n - i >= 8 ? 8 : n - i);
        __m256 e = _mm256_and_ps(pk_exp256(_mm256_sub_ps(_mm256_maskload_ps(row + i, m), mv)), _mm256_castsi256_ps(m));
        acc0 = _mm256_add_ps(acc0, e);
        if (write) _mm256_maskstore_ps(row + i, m, e);
    }
    return pk_hsum256(_mm256_add_ps(acc0, acc1));
}

PK_AVX2 static void scale_avx2(float *row, size_t n, float s) {
    __m256 sv = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), sv));
    for (; i < n; i++) row[i] *= s;
}
#endif

// The row primitives of the softmax family, per tier. The scalar sums run in double: a float running sum over a
// vocabulary-sized row loses about sqrt(n) ulps, which the vector bodies' 16 partial sums do not.
static float row_max(const float *row, size_t n) {
#if PK_X86
    if (pk_has_avx512()) return max_avx512(row, n);
    if (pk_has_avx2()) return max_avx2(row, n);
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) return pk_neon_max(row, n);
#endif
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) mx = row[i] > mx ? row[i] : mx;
    return mx;
}

static float row_exp_sum(float *row, size_t n, float mx, int write) {
#if PK_X86
    if (pk_has_avx512()) return exp_sum_avx512(row, n, mx, write);
    if (pk_has_avx2()) return exp_sum_avx2(row, n, mx, write);
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) return pk_neon_exp_sum(row, n, mx, write);
#endif
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const float e = expf(row[i] - mx);
        if (write) row[i] = e;
        sum += e;
    }
    return (float)sum;
}

static void row_scale(float *row, size_t n, float s) {
#if PK_X86
    if (pk_has_avx512()) { scale_avx512(row, n, s); return; }
    if (pk_has_avx2()) { scale_avx2(row, n, s); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_scale(row, n, s); return; }
#endif
    for (size_t i = 0; i < n; i++) row[i] *= s;
}

float pk_softmax_row(float *row, size_t lo, size_t hi, size_t n) {
    if (hi <= lo) { memset(row, 0, n * sizeof(float)); return -INFINITY; }
    float *r = row + lo;
    size_t valid = hi - lo;
    const float mx = row_max(r, valid);
    const float sum = row_exp_sum(r, valid, mx, 1);
    row_scale(r, valid, 1.0f / sum);
    if (lo > 0) memset(row, 0, lo * sizeof(float));
    if (hi < n) memset(row + hi, 0, (n - hi) * sizeof(float));
    return mx + logf(sum);
}

void pk_exp_shifted_row(float *row, size_t lo, size_t hi, size_t n, float lse) {
    if (hi > lo) row_exp_sum(row + lo, hi - lo, lse, 1);
    if (lo > 0) memset(row, 0, lo * sizeof(float));
    if (hi < n) memset(row + hi, 0, (n - hi) * sizeof(float));
}

void pk_softmax_backward_row(const float *p, float *dp, size_t n, float d) {
    for (size_t i = 0; i < n; i++) dp[i] = p[i] * (dp[i] - d);
}

float pk_logsumexp(const float *row, size_t n, int32_t *argmax) {
    float mx = -INFINITY;
    size_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (row[i] > mx) { mx = row[i]; best = i; }
    if (argmax) *argmax = (int32_t)best;
    return mx + logf(row_exp_sum((float *)row, n, mx, 0));
}

void pk_softmax_xent_grad(float *row, size_t n, float lse, int32_t target, float scale) {
    row_exp_sum(row, n, lse, 1);
    row_scale(row, n, scale);
    if (target >= 0 && (size_t)target < n) row[target] -= scale;
}

double pk_gjsd_row(const float *zs, const float *zt, size_t n, float beta, float inv_t, float *grad, float *scratch) {
    float *es = scratch, *et = scratch + n;
    float ms = -INFINITY, mt = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        es[i] = zs[i] * inv_t;
        et[i] = zt[i] * inv_t;
        if (es[i] > ms) ms = es[i];
        if (et[i] > mt) mt = et[i];
    }
    // es, et <- exp(u - max); the sums give both log-normalisers.
    const float sum_s = row_exp_sum(es, n, ms, 1), sum_t = row_exp_sum(et, n, mt, 1);
    const float lse_s = ms + logf(sum_s), lse_t = mt + logf(sum_t);
    const float inv_s = 1.0f / sum_s, inv_tt = 1.0f / sum_t;
    const float a = log1pf(-beta), b = logf(beta);
    double loss = 0, mean = 0;
    for (size_t i = 0; i < n; i++) {
        const float ls = zs[i] * inv_t - lse_s, lt = zt[i] * inv_t - lse_t;
        const float s = es[i] * inv_s, t = et[i] * inv_tt;
        float g;
        if (beta == 0.0f) {
            loss += (double)t * (double)(lt - ls);
            g = s - t;
        } else if (beta == 1.0f) {
            loss += (double)s * (double)(ls - lt);
            g = ls - lt;
            mean += (double)s * g;
        } else {
            // log m: in probability space while it is a normal float, in log space below.
            const float m = (1.0f - beta) * s + beta * t;
            float lm;
            if (m > 1e-30f) {
                lm = logf(m);
            } else {
                const float x = ls + a, y = lt + b;
                lm = (x > y ? x : y) + log1pf(expf(-fabsf(x - y)));
            }
            loss += beta * (double)t * (double)(lt - lm) + (1.0 - beta) * (double)s * (double)(ls - lm);
            g = (1.0f - beta) * (ls - lm);
            mean += (double)s * g;
        }
        if (grad) grad[i] = g;
    }
    if (grad) {
        if (beta == 0.0f) {
            for (size_t i = 0; i < n; i++) grad[i] *= inv_t;
        } else {
            const float mf = (float)mean;
            for (size_t i = 0; i < n; i++) grad[i] = es[i] * inv_s * (grad[i] - mf) * inv_t;
        }
    }
    return loss;
}

PK_INLINE void adamw_body(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                          float eps, float weight_decay, float bc1, float bc2_sqrt) {
    float step = lr / bc1, decay = 1.0f - lr * weight_decay;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        p[i] *= decay;
        m[i] += (gi - m[i]) * (1.0f - beta1);
        v[i] = v[i] * beta2 + (1.0f - beta2) * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}
PK_TIERED_VOID(adamw, (float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                       float eps, float weight_decay, float bc1, float bc2_sqrt),
               (p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2_sqrt))

// RoPE (rotate-half layout): the first `rot` dimensions of each head of x[rows, heads * d] rotated by the angles of
// its row's position, from precomputed tables cos/sin [positions, rot / 2]; sign -1 rotates back (the backward).
// Angle i rotates the pair (v[i * step], v[i * step + partner]): halves are step 1, partner rot / 2; adjacent pairs
// (GLM) step 2, partner 1.
PK_INLINE void rope_rotate(float *x, size_t rows, size_t heads, size_t d, size_t rot, const int32_t *pos,
                           const float *cos_table, const float *sin_table, float sign, size_t step, size_t partner) {
    const size_t half = rot / 2;
    for (size_t r = 0; r < rows; r++) {
        const float *c = cos_table + (size_t)pos[r] * half, *sn = sin_table + (size_t)pos[r] * half;
        for (size_t h = 0; h < heads; h++) {
            float *v = x + (r * heads + h) * d;
            for (size_t i = 0; i < half; i++) {
                const size_t j = i * step;
                const float a = v[j], b = v[j + partner], si = sign * sn[i];
                v[j] = a * c[i] - b * si;
                v[j + partner] = b * c[i] + a * si;
            }
        }
    }
}

PK_INLINE void rope_body(float *x, size_t rows, size_t heads, size_t d, size_t rot, const int32_t *pos,
                         const float *cos_table, const float *sin_table, float sign) {
    rope_rotate(x, rows, heads, d, rot, pos, cos_table, sin_table, sign, 1, rot / 2);
}
PK_TIERED_VOID(rope, (float *x, size_t rows, size_t heads, size_t d, size_t rot, const int32_t *pos,
                      const float *cos_table, const float *sin_table, float sign),
               (x, rows, heads, d, rot, pos, cos_table, sin_table, sign))

// RoPE on adjacent pairs (GLM): (x[2i], x[2i+1]) of the first `rot` dimensions rotated by angle i.
void pk_rope_pairs(float *x, size_t rows, size_t heads, size_t d, size_t rot, const int32_t *pos,
                   const float *cos_table, const float *sin_table, float sign) {
    rope_rotate(x, rows, heads, d, rot, pos, cos_table, sin_table, sign, 2, 1);
}

// tanh(y) = 1 - 2 / (exp(2y) + 1); near 0 (|y| < 0.125), where that form cancels, its odd series
// y (1 - y^2/3 + 2y^4/15 - 17y^6/315) (truncation below 2e-10 relative there). +-1 far out, NaN stays NaN.
#define PK_TANH_SMALL 0.125f
#if PK_X86
PK_AVX512 static inline __m512 tanh512(__m512 y) {
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    const __m512 far = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(pk_exp512(_mm512_mul_ps(two, y)), one)));
    const __m512 y2 = _mm512_mul_ps(y, y);
    __m512 p = _mm512_fmadd_ps(y2, _mm512_set1_ps(-17.0f / 315.0f), _mm512_set1_ps(2.0f / 15.0f));
    p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(-1.0f / 3.0f));
    const __m512 near = _mm512_fmadd_ps(_mm512_mul_ps(p, y2), y, y);
    const __mmask16 small = _mm512_cmp_ps_mask(_mm512_abs_ps(y), _mm512_set1_ps(PK_TANH_SMALL), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(small, far, near);
}

PK_AVX2 static inline __m256 tanh256(__m256 y) {
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    const __m256 far = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(pk_exp256(_mm256_mul_ps(two, y)), one)));
    const __m256 y2 = _mm256_mul_ps(y, y);
    __m256 p = _mm256_fmadd_ps(y2, _mm256_set1_ps(-17.0f / 315.0f), _mm256_set1_ps(2.0f / 15.0f));
    p = _mm256_fmadd_ps(p, y2, _mm256_set1_ps(-1.0f / 3.0f));
    const __m256 near = _mm256_fmadd_ps(_mm256_mul_ps(p, y2), y, y);
    const __m256 ay = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), y);
    return _mm256_blendv_ps(far, near, _mm256_cmp_ps(ay, _mm256_set1_ps(PK_TANH_SMALL), _CMP_LT_OQ));
}
#endif

// Soft-capping (Gemma 2): x = cap * tanh(x / cap); its backward dy *= 1 - tanh(raw / cap)^2 from the raw values.
#if PK_X86
PK_AVX512 static void softcap_avx512(float *x, size_t n, float cap, float *dy) {
    const __m512 c = _mm512_set1_ps(cap), inv = _mm512_set1_ps(1.0f / cap), one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        const __m512 t = tanh512(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
        if (dy) _mm512_mask_storeu_ps(dy + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), _mm512_fnmadd_ps(t, t, one)));
        else _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(c, t));
    }
}

PK_AVX2 static void softcap_avx2(float *x, size_t n, float cap, float *dy) {
    const __m256 c = _mm256_set1_ps(cap), inv = _mm256_set1_ps(1.0f / cap), one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 8) {
        const __m256i m = pk_tail_mask8(n - i >= 8 ? 8 : n - i);
        const __m256 t = tanh256(_mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
        if (dy) _mm256_maskstore_ps(dy + i, m, _mm256_mul_ps(_mm256_maskload_ps(dy + i, m), _mm256_fnmadd_ps(t, t, one)));
        else _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(c, t));
    }
}
#endif

/// x = cap * tanh(x / cap) (dy NULL), or dy *= 1 - tanh(x / cap)^2 with x left as it is.
static void softcap_dispatch(float *x, size_t n, float cap, float *dy) {
#if PK_X86
    if (pk_has_avx512()) { softcap_avx512(x, n, cap, dy); return; }
    if (pk_has_avx2()) { softcap_avx2(x, n, cap, dy); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_softcap(x, n, cap, dy); return; }
#endif
    for (size_t i = 0; i < n; i++) {
        const float t = tanhf(x[i] / cap);
        if (dy) dy[i] *= 1.0f - t * t;
        else x[i] = cap * t;
    }
}

void pk_softcap(float *x, size_t n, float cap) { softcap_dispatch(x, n, cap, NULL); }
void pk_softcap_backward(float *dy, const float *raw, size_t n, float cap) { softcap_dispatch((float *)raw, n, cap, dy); }

// GELU (tanh approximation) gated MLP: gelu(g) = 0.5 g (1 + tanh(z)), z = sqrt(2/pi) (g + 0.044715 g^3), written as
// g * sigmoid(2z); d gelu / dg = s + g s (1 - s) dz2 with s = sigmoid(2z), dz2 = 2 sqrt(2/pi) (1 + 3 * 0.044715 g^2).
#define PK_GELU_C 0.7978845608028654f
#define PK_GELU_K 0.044715f
#if PK_X86
PK_AVX512 static void geglu_avx512(const float *dout, const float *g, const float *u, float *out, float *dg, float *du,
                                   size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), c2 = _mm512_set1_ps(2.0f * PK_GELU_C), k = _mm512_set1_ps(PK_GELU_K);
    const __m512 k3 = _mm512_set1_ps(3.0f * PK_GELU_K);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : pk_tail_mask(n - i);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        const __m512 x2 = _mm512_mul_ps(x, x);
        const __m512 z2 = _mm512_mul_ps(c2, _mm512_fmadd_ps(_mm512_mul_ps(k, x2), x, x));
        const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, pk_exp512(_mm512_sub_ps(_mm512_setzero_ps(), z2))));
        if (!dout) { _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(x, s), uv)); continue; }
        const __m512 dy = _mm512_maskz_loadu_ps(m, dout + i);
        const __m512 dz2 = _mm512_mul_ps(c2, _mm512_fmadd_ps(k3, x2, one));
        const __m512 xs = _mm512_mul_ps(x, s);
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(dy, xs));
        const __m512 dgelu = _mm512_fmadd_ps(_mm512_mul_ps(xs, _mm512_sub_ps(one, s)), dz2, s);
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dy, uv), dgelu));
    }
}

PK_AVX2 static void geglu_avx2(const float *dout, const float *g, const float *u, float *out, float *dg, float *du,
                               size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), c2 = _mm256_set1_ps(2.0f * PK_GELU_C), k = _mm256_set1_ps(PK_GELU_K);
    const __m256 k3 = _mm256_set1_ps(3.0f * PK_GELU_K);
    for (size_t i = 0; i < n; i += 8) {
        const __m256i m = pk_tail_mask8(n - i >= 8 ? 8 : n - i);
        const __m256 x = _mm256_maskload_ps(g + i, m), uv = _mm256_maskload_ps(u + i, m);
        const __m256 x2 = _mm256_mul_ps(x, x);
        const __m256 z2 = _mm256_mul_ps(c2, _mm256_fmadd_ps(_mm256_mul_ps(k, x2), x, x));
        const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, pk_exp256(_mm256_sub_ps(_mm256_setzero_ps(), z2))));
        if (!dout) { _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(_mm256_mul_ps(x, s), uv)); continue; }
        const __m256 dy = _mm256_maskload_ps(dout + i, m);
        const __m256 dz2 = _mm256_mul_ps(c2, _mm256_fmadd_ps(k3, x2, one));
        const __m256 xs = _mm256_mul_ps(x, s);
        _mm256_maskstore_ps(du + i, m, _mm256_mul_ps(dy, xs));
        const __m256 dgelu = _mm256_fmadd_ps(_mm256_mul_ps(xs, _mm256_sub_ps(one, s)), dz2, s);
        _mm256_maskstore_ps(dg + i, m, _mm256_mul_ps(_mm256_mul_ps(dy, uv), dgelu));
    }
}
#endif

/// The forward (dout NULL: out = gelu(g) * u) or the backward (dg, du from dout) of the GELU-gated MLP.
static void geglu_dispatch(const float *dout, const float *g, const float *u, float *out, float *dg, float *du, size_t n) {
#if PK_X86
    if (pk_has_avx512()) { geglu_avx512(dout, g, u, out, dg, du, n); return; }
    if (pk_has_avx2()) { geglu_avx2(dout, g, u, out, dg, du, n); return; }
#elif PK_ARM64
    if (pk_tier() == PK_TIER_NEON) { pk_neon_geglu(dout, g, u, out, dg, du, n); return; }
#endif
    for (size_t i = 0; i < n; i++) {
        const float x = g[i], z2 = 2.0f * PK_GELU_C * (x + PK_GELU_K * x * x * x);
        const float s = 1.0f / (1.0f + expf(-z2));
        if (!dout) { out[i] = x * s * u[i]; continue; }
        const float dz2 = 2.0f * PK_GELU_C * (1.0f + 3.0f * PK_GELU_K * x * x);
        du[i] = dout[i] * x * s;
        dg[i] = dout[i] * u[i] * (s + x * s * (1.0f - s) * dz2);
    }
}

void pk_geglu_forward(const float *g, const float *u, float *out, size_t n) { geglu_dispatch(NULL, g, u, out, NULL, NULL, n); }

void pk_geglu_backward(const float *dout, const float *g, const float *u, float *dg, float *du, size_t n) {
    geglu_dispatch(dout, g, u, NULL, dg, du, n);
}

