// Elementwise and row kernels: dot, axpy, RMSNorm, SwiGLU, softmax, cross-entropy rows, AdamW.
#include "CKernels.h"
#include "internal.h"

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

float pk_dot(const float *a, const float *b, size_t n) {
    if (pk_has_avx512()) return dot_avx512(a, b, n);
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void pk_axpy(float alpha, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

double pk_sumsq(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

void pk_rmsnorm_forward(const float *x, const float *w, float *out, float *rstd, size_t n, size_t c, float eps) {
    for (size_t r = 0; r < n; r++) {
        const float *xr = x + r * c;
        float *o = out + r * c;
        float ss = 0;
        for (size_t i = 0; i < c; i++) ss += xr[i] * xr[i];
        float rs = 1.0f / sqrtf(ss / (float)c + eps);
        if (rstd) rstd[r] = rs;
        for (size_t i = 0; i < c; i++) o[i] = w[i] * (xr[i] * rs);
    }
}

// y = w * x * rs, rs = (mean(x^2)+eps)^-1/2.  dx_i = rs * (w_i dy_i) - rs^3 / c * x_i * sum_j (w_j dy_j x_j)
void pk_rmsnorm_backward(const float *dout, const float *x, const float *w, const float *rstd, float *dx, float *dw,
                         size_t n, size_t c, int accumulate_dx) {
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

void pk_swiglu_forward(const float *g, const float *u, float *out, size_t n) {
    if (pk_has_avx512()) { swiglu_forward_avx512(g, u, out, n); return; }
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        out[i] = g[i] * s * u[i];
    }
}

// silu(g) = g s, s = sigmoid(g); d silu / dg = s (1 + g (1 - s)).
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

void pk_swiglu_backward(const float *dout, const float *g, const float *u, float *dg, float *du, size_t n) {
    if (pk_has_avx512()) { swiglu_backward_avx512(dout, g, u, dg, du, n); return; }
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        du[i] = dout[i] * g[i] * s;
        dg[i] = dout[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

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

float pk_softmax_row(float *row, size_t lo, size_t hi, size_t n) {
    if (hi <= lo) { memset(row, 0, n * sizeof(float)); return -INFINITY; }
    float *r = row + lo;
    size_t valid = hi - lo;
    float mx, sum;
    if (pk_has_avx512()) {
        mx = max_avx512(r, valid);
        sum = exp_sum_avx512(r, valid, mx, 1);
        scale_avx512(r, valid, 1.0f / sum);
    } else {
        mx = -INFINITY;
        for (size_t i = 0; i < valid; i++) mx = r[i] > mx ? r[i] : mx;
        sum = 0;
        for (size_t i = 0; i < valid; i++) { r[i] = expf(r[i] - mx); sum += r[i]; }
        float inv = 1.0f / sum;
        for (size_t i = 0; i < valid; i++) r[i] *= inv;
    }
    if (lo > 0) memset(row, 0, lo * sizeof(float));
    if (hi < n) memset(row + hi, 0, (n - hi) * sizeof(float));
    return mx + logf(sum);
}

void pk_exp_shifted_row(float *row, size_t lo, size_t hi, size_t n, float lse) {
    if (hi > lo) {
        if (pk_has_avx512()) {
            exp_sum_avx512(row + lo, hi - lo, lse, 1);
        } else {
            for (size_t i = lo; i < hi; i++) row[i] = expf(row[i] - lse);
        }
    }
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
    float sum;
    if (pk_has_avx512()) {
        sum = exp_sum_avx512((float *)row, n, mx, 0);
    } else {
        sum = 0;
        for (size_t i = 0; i < n; i++) sum += expf(row[i] - mx);
    }
    return mx + logf(sum);
}

void pk_softmax_xent_grad(float *row, size_t n, float lse, int32_t target, float scale) {
    if (pk_has_avx512()) {
        exp_sum_avx512(row, n, lse, 1);
        scale_avx512(row, n, scale);
    } else {
        for (size_t i = 0; i < n; i++) row[i] = expf(row[i] - lse) * scale;
    }
    if (target >= 0 && (size_t)target < n) row[target] -= scale;
}

void pk_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
              float weight_decay, float bc1, float bc2_sqrt) {
    float step = lr / bc1, decay = 1.0f - lr * weight_decay;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        p[i] *= decay;
        m[i] += (gi - m[i]) * (1.0f - beta1);
        v[i] = v[i] * beta2 + (1.0f - beta2) * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}
