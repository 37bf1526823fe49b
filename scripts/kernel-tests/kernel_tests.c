// Kernel tests in plain C: the kernels of Sources/CKernels against naive references written here (double precision
// where sums are involved), on every CPU tier the machine has (scalar, AVX2, AVX-512 on x86-64; scalar, NEON on
// ARM64), bit for bit where the kernels promise it (conversions, dropout masks, quantized integer sums, the
// independence of pk_dot_bf16's rows from the batch). Built and run by run.sh, natively or for ARM64 under qemu.
//
// With PEFT_CPU set, only the tier it selects runs (checking the environment path of dispatch.c); otherwise each
// available tier is switched to with pk_set_cpu_tier. One line per failure ("FAIL [tier] kernel: ..."), a summary
// per tier, and last exactly "N passed, N failed"; the exit status is 1 when anything failed.
// Deterministic: fixed seeds, no threads, no clocks, no locale.
#include "CKernels.h"
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- bookkeeping ------------------------------------------------------------------------------------------------

static int total_pass, total_fail, tier_pass, tier_fail;
static int current_tier;
static char label[64];   // the tier (and mode) in failure lines, e.g. "neon" or "neon/no-dotprod"

static void result(int ok, const char *kernel, const char *fmt, ...) {
    if (ok) { tier_pass++; return; }
    tier_fail++;
    printf("FAIL [%s] %s: ", label, kernel);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/// Runs `stmt` on the scalar tier (the reference twin of every vector body), then returns to the tier under test.
#define ON_SCALAR(stmt)                                                                                                \
    do {                                                                                                               \
        pk_set_cpu_tier(PK_TIER_SCALAR);                                                                               \
        stmt;                                                                                                          \
        pk_set_cpu_tier(current_tier);                                                                                 \
    } while (0)

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// ---- random data (SplitMix64) -------------------------------------------------------------------------------------

static uint64_t rng_state;
static void seed(uint64_t s) { rng_state = s * 0x2545F4914F6CDD1Dull + 1; }
static uint64_t next64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/// Uniform in [-1, 1).
static float unif(void) { return (float)((double)(next64() >> 40) / 8388608.0 - 1.0); }
/// Roughly normal, mean 0, variance 1 (sum of 4 uniforms; no libm, so the data is the same everywhere).
static float gauss(void) { return (unif() + unif() + unif() + unif()) * 0.8660254f; }
static int irange(int lo, int hi) { return lo + (int)(next64() % (uint64_t)(hi - lo + 1)); }
static void fill(float *x, size_t n, float scale) { for (size_t i = 0; i < n; i++) x[i] = scale * gauss(); }

// ---- comparisons (each call is one check) --------------------------------------------------------------------

/// |got - ref| <= rtol * scale + atol element-wise (scale NULL: |ref|); a NaN reference wants a NaN.
static void expect_close(const char *kernel, const char *what, const float *got, const double *ref,
                         const double *scale, size_t n, double rtol, double atol) {
    size_t bad = n, nbad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double s = scale ? scale[i] : fabs(ref[i]);
        int ok;
        if (isnan(ref[i])) ok = isnan(got[i]);
        else if (isinf(ref[i])) ok = got[i] == ref[i];
        else ok = fabs((double)got[i] - ref[i]) <= rtol * s + atol;
        if (!ok) {
            if (bad == n) bad = i;
            nbad++;
        }
        if (!isnan(ref[i]) && !isinf(ref[i]) && s > 0) {
            const double e = fabs((double)got[i] - ref[i]) / s;
            if (e > worst) worst = e;
        }
    }
    if (bad == n) { result(1, kernel, ""); return; }
    const double s = scale ? scale[bad] : fabs(ref[bad]);
    result(0, kernel, "%s: %zu of %zu off, first [%zu] got %.9g want %.9g (|diff| %.3g, allowed %.3g), worst %.3g of scale",
           what, nbad, n, bad, (double)got[bad], ref[bad], fabs((double)got[bad] - ref[bad]), rtol * s + atol, worst);
}

static void expect_close1(const char *kernel, const char *what, float got, double ref, double scale, double rtol,
                          double atol) {
    expect_close(kernel, what, &got, &ref, &scale, 1, rtol, atol);
}

/// Bytes equal, elements of `size` bytes; the first difference reported.
static void expect_same(const char *kernel, const char *what, const void *got, const void *want, size_t n,
                        size_t size) {
    const uint8_t *g = got, *w = want;
    size_t nbad = 0, bad = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(g + i * size, w + i * size, size)) {
            if (bad == n) bad = i;
            nbad++;
        }
    if (bad == n) { result(1, kernel, ""); return; }
    uint64_t a = 0, b = 0;
    memcpy(&a, g + bad * size, size < 8 ? size : 8);
    memcpy(&b, w + bad * size, size < 8 ? size : 8);
    if (size == 4)
        result(0, kernel, "%s: %zu of %zu differ, first [%zu] got 0x%08llx (%.9g) want 0x%08llx (%.9g)", what, nbad, n,
               bad, (unsigned long long)a, (double)float_of((uint32_t)a), (unsigned long long)b,
               (double)float_of((uint32_t)b));
    else
        result(0, kernel, "%s: %zu of %zu differ, first [%zu] got 0x%llx want 0x%llx", what, nbad, n, bad,
               (unsigned long long)a, (unsigned long long)b);
}

// ---- vector helpers ------------------------------------------------------------------------------------------

static const size_t lengths[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 4097};
#define NLENGTHS (sizeof lengths / sizeof lengths[0])

static void test_dot_axpy(void) {
    char what[64];
    for (size_t t = 0; t < NLENGTHS; t++) {
        const size_t n = lengths[t];
        seed(100 + n);
        float *a = xmalloc(n * 4), *b = xmalloc(n * 4), *y = xmalloc(n * 4);
        double *ref = xmalloc(n * 8), *scale = xmalloc(n * 8);
        fill(a, n, 1);
        fill(b, n, 2);
        fill(y, n, 1);
        double s = 0, sa = 0, ss = 0;
        for (size_t i = 0; i < n; i++) {
            s += (double)a[i] * b[i];
            sa += fabs((double)a[i] * b[i]);
            ss += (double)a[i] * a[i];
        }
        snprintf(what, sizeof what, "n=%zu", n);
        expect_close1("pk_dot", what, pk_dot(a, b, n), s, sa, 1e-5, 1e-30);
        const double sq = pk_sumsq(a, n);
        result(fabs(sq - ss) <= 1e-12 * ss, "pk_sumsq", "%s: got %.17g want %.17g", what, sq, ss);
        const float alpha = -0.37f;
        for (size_t i = 0; i < n; i++) {
            ref[i] = (double)y[i] + (double)alpha * a[i];
            scale[i] = fabs((double)y[i]) + fabs((double)alpha * a[i]);
        }
        pk_axpy(alpha, a, y, n);
        expect_close("pk_axpy", what, y, ref, scale, n, 2.5e-7, 0);
        free(a), free(b), free(y), free(ref), free(scale);
    }
}

// ---- RMSNorm -------------------------------------------------------------------------------------------------

static void test_rmsnorm(void) {
    static const size_t shapes[][2] = {{1, 1}, {3, 7}, {2, 64}, {4, 129}, {2, 1000}};
    char what[64];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t n = shapes[s][0], c = shapes[s][1];
        const float eps = 1e-5f;
        seed(200 + s);
        float *x = xmalloc(n * c * 4), *w = xmalloc(c * 4), *out = xmalloc(n * c * 4), *rstd = xmalloc(n * 4);
        float *dout = xmalloc(n * c * 4), *dx = xmalloc(n * c * 4), *dw = xmalloc(c * 4), *rs_in = xmalloc(n * 4);
        float *dx0 = xmalloc(n * c * 4), *dw0 = xmalloc(c * 4);
        double *ref = xmalloc(n * c * 8), *scale = xmalloc(n * c * 8), *rref = xmalloc(n * 8);
        double *dwref = xmalloc(c * 8), *dwscale = xmalloc(c * 8);
        fill(x, n * c, 1.5f);
        fill(w, c, 1);
        fill(dout, n * c, 1);
        fill(dx0, n * c, 1);
        fill(dw0, c, 1);
        for (size_t r = 0; r < n; r++) {
            double ss = 0;
            for (size_t i = 0; i < c; i++) ss += (double)x[r * c + i] * x[r * c + i];
            rref[r] = 1.0 / sqrt(ss / (double)c + eps);
            rs_in[r] = (float)rref[r];
            for (size_t i = 0; i < c; i++) ref[r * c + i] = (double)w[i] * x[r * c + i] * rref[r];
        }
        snprintf(what, sizeof what, "n=%zu c=%zu", n, c);
        pk_rmsnorm_forward(x, w, out, rstd, n, c, eps);
        expect_close("pk_rmsnorm_forward", what, out, ref, NULL, n * c, 4e-6, 1e-30);
        expect_close("pk_rmsnorm_forward(rstd)", what, rstd, rref, NULL, n, 4e-6, 0);
        pk_rmsnorm_forward(x, w, out, NULL, n, c, eps);   // rstd may be NULL
        expect_close("pk_rmsnorm_forward(rstd NULL)", what, out, ref, NULL, n * c, 4e-6, 1e-30);

        // Backward from the same rstd (rounded to float, as the kernel receives it).
        for (int acc = 0; acc < 2; acc++) {
            memcpy(dx, dx0, n * c * 4);
            memcpy(dw, dw0, c * 4);
            for (size_t i = 0; i < c; i++) { dwref[i] = dw0[i]; dwscale[i] = fabs((double)dw0[i]); }
            for (size_t r = 0; r < n; r++) {
                const float *xr = x + r * c, *dy = dout + r * c;
                const double rs = rs_in[r];
                double dot = 0, dabs = 0;
                for (size_t i = 0; i < c; i++) {
                    dot += (double)w[i] * dy[i] * xr[i];
                    dabs += fabs((double)w[i] * dy[i] * xr[i]);
                }
                const double coef = rs * rs * rs * dot / (double)c, cabs = rs * rs * rs * dabs / (double)c;
                for (size_t i = 0; i < c; i++) {
                    const double prior = acc ? dx0[r * c + i] : 0;
                    ref[r * c + i] = prior + rs * w[i] * dy[i] - coef * xr[i];
                    scale[r * c + i] = fabs(prior) + fabs(rs * w[i] * dy[i]) + cabs * fabs((double)xr[i]);
                    dwref[i] += (double)dy[i] * xr[i] * rs;
                    dwscale[i] += fabs((double)dy[i] * xr[i] * rs);
                }
            }
            snprintf(what, sizeof what, "n=%zu c=%zu accumulate=%d", n, c, acc);
            pk_rmsnorm_backward(dout, x, w, rs_in, dx, dw, n, c, acc);
            expect_close("pk_rmsnorm_backward(dx)", what, dx, ref, scale, n * c, 1e-5, 1e-30);
            expect_close("pk_rmsnorm_backward(dw)", what, dw, dwref, dwscale, c, 1e-5, 1e-30);
            memcpy(dx, dx0, n * c * 4);
            pk_rmsnorm_backward(dout, x, w, rs_in, dx, NULL, n, c, acc);   // dw may be NULL
            expect_close("pk_rmsnorm_backward(dw NULL)", what, dx, ref, scale, n * c, 1e-5, 1e-30);
        }
        free(x), free(w), free(out), free(rstd), free(dout), free(dx), free(dw), free(rs_in), free(dx0), free(dw0);
        free(ref), free(scale), free(rref), free(dwref), free(dwscale);
    }
}

// ---- SwiGLU --------------------------------------------------------------------------------------------------

/// A gated activation's reference in double: out = act(g) u, du = dy act(g), dg = dy u act'(g), and the magnitude
/// of dg's terms (its scale: they cancel in the far negative tail).
typedef void (*gated_ref_fn)(double g, double u, double dy, double *out, double *dg, double *du, double *dg_scale);

static void swiglu_ref(double g, double u, double dy, double *out, double *dg, double *du, double *dg_scale) {
    const double s = 1.0 / (1.0 + exp(-g));
    *out = g * s * u;
    *du = dy * g * s;
    *dg = dy * u * s * (1.0 + g * (1.0 - s));
    *dg_scale = fabs(dy * u * s) * (1.0 + fabs(g) * (1.0 - s));
}

/// gelu_tanh(g) = 0.5 g (1 + tanh(z)), z = sqrt(2/pi) (g + 0.044715 g^3), as g sigmoid(2z) (0.5 (1 + tanh z)
/// cancels to 0 in double for large negative g, where the value is ~1e-28).
static void geglu_ref(double g, double u, double dy, double *out, double *dg, double *du, double *dg_scale) {
    const double c = sqrt(2.0 / 3.14159265358979323846), z = c * (g + 0.044715 * g * g * g);
    const double s = 1.0 / (1.0 + exp(-2.0 * z)), dz2 = 2.0 * c * (1.0 + 3.0 * 0.044715 * g * g);
    const double gelu = g * s, dgelu = s + g * s * (1.0 - s) * dz2;
    *out = gelu * u;
    *du = dy * gelu;
    *dg = dy * u * dgelu;
    *dg_scale = fabs(dy * u) * (1.0 + fabs(g) * (1.0 + 3.0 * 0.044715 * g * g));
}

/// A gated activation's forward and backward kernels against `ref` on lengths 1..1001 (every vector tail), gates of
/// `spread` with `special` values planted, within rtol / atol.
static void test_gated(const char *name, void (*forward)(const float *, const float *, float *, size_t),
                       void (*backward)(const float *, const float *, const float *, float *, float *, size_t),
                       gated_ref_fn ref_fn, const float *special, size_t nspecial, float spread, uint64_t seed0,
                       double rtol, double atol) {
    static const size_t ns[] = {1, 3, 4, 5, 8, 17, 64, 1001};
    char what[64], kernel[64];
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const size_t n = ns[t];
        seed(seed0 + n);
        float *g = xmalloc(n * 4), *u = xmalloc(n * 4), *dy = xmalloc(n * 4), *out = xmalloc(n * 4);
        float *dg = xmalloc(n * 4), *du = xmalloc(n * 4);
        double *ref = xmalloc(n * 8), *rdg = xmalloc(n * 8), *rdu = xmalloc(n * 8), *scale = xmalloc(n * 8);
        fill(g, n, spread);
        fill(u, n, 1);
        fill(dy, n, 1);
        for (size_t i = 0; i < n && i < nspecial; i++) g[(i * 7) % n] = special[i];
        for (size_t i = 0; i < n; i++) ref_fn(g[i], u[i], dy[i], ref + i, rdg + i, rdu + i, scale + i);
        snprintf(what, sizeof what, "n=%zu", n);
        forward(g, u, out, n);
        snprintf(kernel, sizeof kernel, "pk_%s_forward", name);
        expect_close(kernel, what, out, ref, NULL, n, rtol, atol);
        backward(dy, g, u, dg, du, n);
        snprintf(kernel, sizeof kernel, "pk_%s_backward(du)", name);
        expect_close(kernel, what, du, rdu, NULL, n, rtol, atol);
        snprintf(kernel, sizeof kernel, "pk_%s_backward(dg)", name);
        expect_close(kernel, what, dg, rdg, scale, n, rtol, atol);
        free(g), free(u), free(dy), free(out), free(dg), free(du), free(ref), free(rdg), free(rdu), free(scale);
    }
}

static void test_swiglu(void) {
    static const float special[] = {-100.f, 100.f, -88.5f, 88.5f, -87.f, 87.f, 0.f, -0.f, -1.2785f, 20.f, -20.f};
    // The vector exp saturates to +inf above 88.37 (expf only above 88.72): sigmoid(-88.5) becomes 0 instead of a
    // subnormal 3.6e-39, hence the absolute 1e-34 (|g u| <= 100).
    test_gated("swiglu", pk_swiglu_forward, pk_swiglu_backward, swiglu_ref, special, sizeof special / sizeof special[0],
               6, 300, 2e-6, 1e-34);
}

static void test_geglu(void) {
    static const float special[] = {-30.f, 30.f, -9.f, 9.f, 0.f, -0.f, -1.2785f, 4.f, -4.f, 1e-3f, -1e-3f};
    // Relative 1e-5: in the far negative tail sigmoid(2z) = exp(2z) inherits z's f32 rounding times |2z| (up to ~40
    // here), 5e-6 relative. Absolute 1e-30: the vector exp flushes results below e^-87 to 0.
    test_gated("geglu", pk_geglu_forward, pk_geglu_backward, geglu_ref, special, sizeof special / sizeof special[0],
               4, 350, 1e-5, 1e-30);
}

static void test_softcap(void) {
    static const size_t ns[] = {1, 3, 4, 5, 8, 17, 64, 1001};
    static const float special[] = {0.f, -0.f, 1e-6f, -1e-6f, 6.f, -6.f, 6.25f, -6.25f, 1e3f, -1e3f, 1e30f, -1e30f};
    static const float caps[] = {50.f, 30.f, 2.f};
    char what[64];
    for (size_t c = 0; c < 3; c++) {
        const float cap = caps[c];
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
            const size_t n = ns[t];
            seed(370 + n + c);
            float *x = xmalloc(n * 4), *raw = xmalloc(n * 4), *dy = xmalloc(n * 4);
            double *ref = xmalloc(n * 8), *rdy = xmalloc(n * 8), *scale = xmalloc(n * 8);
            fill(raw, n, 3 * cap);
            fill(dy, n, 1);
            // Near 0 (the series' side of the 0.125 switch), around the switch and far out.
            for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++)
                raw[(i * 5) % n] = special[i] < 10.f && special[i] > -10.f && special[i] != 0.f && fabsf(special[i]) > 1.f
                                       ? special[i] * cap / 50.f : special[i];
            for (size_t i = 0; i < n; i++) {
                const double th = tanh((double)raw[i] / cap);
                ref[i] = cap * th;
                rdy[i] = dy[i] * (1.0 - th * th);
                scale[i] = fabs((double)dy[i]);
            }
            snprintf(what, sizeof what, "n=%zu cap=%g", n, cap);
            memcpy(x, raw, n * 4);
            pk_softcap(x, n, cap);
            expect_close("pk_softcap", what, x, ref, NULL, n, 2e-6, 0);
            pk_softcap_backward(dy, raw, n, cap);
            expect_close("pk_softcap_backward", what, dy, rdy, scale, n, 2e-6, 0);
            free(x), free(raw), free(dy), free(ref), free(rdy), free(scale);
        }
    }
}

// ---- softmax family --------------------------------------------------------------------------------------------

/// logsumexp of row[lo, hi) as the kernels define it: max in float, exp(row - max) of the float difference, summed
/// in double.
static double ref_lse(const float *row, size_t lo, size_t hi, float *max_out) {
    float mx = -INFINITY;
    for (size_t i = lo; i < hi; i++) mx = row[i] > mx ? row[i] : mx;
    double s = 0;
    for (size_t i = lo; i < hi; i++) s += exp((double)(float)(row[i] - mx));
    if (max_out) *max_out = mx;
    return (double)mx + log(s);
}

static void test_softmax(void) {
    static const size_t ns[] = {1, 2, 5, 16, 17, 100, 1000, 4099};
    char what[96];
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const size_t n = ns[t];
        size_t ranges[4][2] = {{0, n}, {n > 2 ? 1 : 0, n > 2 ? n - 1 : n}, {n / 3, n / 2 + 1}, {n / 2, n / 2}};
        for (int q = 0; q < 4; q++) {
            const size_t lo = ranges[q][0], hi = ranges[q][1];
            seed(400 + 10 * n + q);
            float *x = xmalloc(n * 4), *row = xmalloc(n * 4);
            double *ref = xmalloc(n * 8);
            fill(x, n, 3);
            if (n > 20) { x[lo + 3] = -INFINITY; x[lo + 7] = -INFINITY; }   // masked logits
            memcpy(row, x, n * 4);
            snprintf(what, sizeof what, "n=%zu range=[%zu,%zu)", n, lo, hi);
            const float lse = pk_softmax_row(row, lo, hi, n);
            if (hi <= lo) {
                int zero = isinf(lse) && lse < 0;
                for (size_t i = 0; i < n; i++) zero &= row[i] == 0;
                result(zero, "pk_softmax_row", "%s: empty range must give zeros and -inf (got %g)", what, (double)lse);
            } else {
                const double rl = ref_lse(x, lo, hi, NULL);
                for (size_t i = 0; i < n; i++) ref[i] = i >= lo && i < hi ? exp((double)x[i] - rl) : 0;
                expect_close("pk_softmax_row", what, row, ref, NULL, n, 5e-6, 1e-37);
                expect_close1("pk_softmax_row(lse)", what, lse, rl, fabs(rl), 1e-6, 4e-6);
                int zeros = 1;
                for (size_t i = 0; i < n; i++) if (i < lo || i >= hi) zeros &= bits_of(row[i]) == 0;
                result(zeros, "pk_softmax_row(outside)", "%s: entries outside the range must be +0", what);

                // exp_shifted_row from the saved lse: exp(row - lse), of the float difference.
                memcpy(row, x, n * 4);
                for (size_t i = 0; i < n; i++) ref[i] = i >= lo && i < hi ? exp((double)(float)(x[i] - lse)) : 0;
                pk_exp_shifted_row(row, lo, hi, n, lse);
                expect_close("pk_exp_shifted_row", what, row, ref, NULL, n, 1e-6, 1e-37);
            }
            free(x), free(row), free(ref);
        }
    }
    // NaN in, NaN out; -inf in, 0 out.
    {
        float row[21];
        seed(450);
        fill(row, 21, 2);
        row[5] = NAN;
        row[19] = -INFINITY;
        pk_exp_shifted_row(row, 0, 21, 21, 3.0f);
        int ok = isnan(row[5]) && row[19] == 0;
        for (int i = 0; i < 21; i++) if (i != 5) ok &= !isnan(row[i]);
        result(ok, "pk_exp_shifted_row", "NaN must stay NaN (got %g), -inf must give 0 (got %g)", (double)row[5],
               (double)row[19]);
    }
    // softmax backward: dp = p * (dp - d).
    {
        const size_t n = 37;
        float p[37], dp[37];
        double ref[37];
        seed(460);
        fill(p, n, 1);
        fill(dp, n, 1);
        const float d = 0.3f;
        for (size_t i = 0; i < n; i++) ref[i] = (double)p[i] * ((double)dp[i] - d);
        pk_softmax_backward_row(p, dp, n, d);
        expect_close("pk_softmax_backward_row", "n=37", dp, ref, NULL, n, 3e-7, 1e-30);
    }
}

static void test_logsumexp_xent(void) {
    static const size_t ns[] = {1, 2, 17, 1000, 151936};
    char what[64];
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const size_t n = ns[t];
        seed(500 + n);
        float *x = xmalloc(n * 4), *row = xmalloc(n * 4);
        double *ref = xmalloc(n * 8), *scale = xmalloc(n * 8);
        fill(x, n, 4);
        size_t first = 0;
        if (n > 3) { x[n / 3] = 30; x[n / 2] = 30; first = n / 3; }   // the first of equal maxima
        else for (size_t i = 1; i < n; i++) if (x[i] > x[first]) first = i;
        snprintf(what, sizeof what, "n=%zu", n);
        int32_t arg = -1;
        const float lse = pk_logsumexp(x, n, &arg);
        const double rl = ref_lse(x, 0, n, NULL);
        expect_close1("pk_logsumexp", what, lse, rl, fabs(rl), 1e-6, 1e-5);
        result(arg == (int32_t)first, "pk_logsumexp(argmax)", "%s: got %d want %zu", what, arg, first);
        const float lse2 = pk_logsumexp(x, n, NULL);
        result(bits_of(lse2) == bits_of(lse), "pk_logsumexp(argmax NULL)", "%s: %g vs %g", what, (double)lse2, (double)lse);

        const float scl = 0.125f;
        for (int variant = 0; variant < 2; variant++) {
            const int32_t target = variant ? -1 : (int32_t)(n / 2);
            memcpy(row, x, n * 4);
            for (size_t i = 0; i < n; i++) {
                const double p = exp((double)(float)(x[i] - lse));
                ref[i] = p * scl - ((int32_t)i == target ? scl : 0);
                scale[i] = fabs(p * scl) + ((int32_t)i == target ? scl : 0);
            }
            pk_softmax_xent_grad(row, n, lse, target, scl);
            snprintf(what, sizeof what, "n=%zu target=%d", n, target);
            expect_close("pk_softmax_xent_grad", what, row, ref, scale, n, 2e-6, 1e-38);
        }
        free(x), free(row), free(ref), free(scale);
    }
}

// ---- distillation's generalized JSD ------------------------------------------------------------------------

static void test_gjsd(void) {
    static const size_t ns[] = {5, 1000, 151936};
    static const float betas[] = {0.0f, 0.3f, 1.0f};
    char what[80];
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const size_t n = ns[t];
        seed(900 + n);
        float *zs = xmalloc(n * 4), *zt = xmalloc(n * 4), *grad = xmalloc(n * 4), *scratch = xmalloc(2 * n * 4);
        double *ps = xmalloc(n * 8), *pt = xmalloc(n * 8), *ref = xmalloc(n * 8), *scale = xmalloc(n * 8);
        fill(zs, n, 6);
        fill(zt, n, 6);
        const float inv_t = 0.5f;
        // Reference distributions in double.
        double ms = -INFINITY, mt = -INFINITY, ss = 0, st = 0;
        for (size_t i = 0; i < n; i++) { ms = fmax(ms, zs[i] * (double)inv_t); mt = fmax(mt, zt[i] * (double)inv_t); }
        for (size_t i = 0; i < n; i++) { ps[i] = exp(zs[i] * (double)inv_t - ms); ss += ps[i]; pt[i] = exp(zt[i] * (double)inv_t - mt); st += pt[i]; }
        for (size_t i = 0; i < n; i++) { ps[i] /= ss; pt[i] /= st; }
        for (size_t b = 0; b < sizeof betas / sizeof betas[0]; b++) {
            const double beta = betas[b];
            double loss = 0, mean = 0, worst = 0;
            for (size_t i = 0; i < n; i++) {
                const double m = (1 - beta) * ps[i] + beta * pt[i];
                double g;
                if (beta == 0) { loss += pt[i] * log(pt[i] / ps[i]); g = 0; }
                else if (beta == 1) { loss += ps[i] * log(ps[i] / pt[i]); g = log(ps[i] / pt[i]); }
                else { loss += beta * pt[i] * log(pt[i] / m) + (1 - beta) * ps[i] * log(ps[i] / m); g = (1 - beta) * log(ps[i] / m); }
                ref[i] = g;
                mean += ps[i] * g;
            }
            for (size_t i = 0; i < n; i++) {
                ref[i] = beta == 0 ? (ps[i] - pt[i]) * inv_t : ps[i] * (ref[i] - mean) * inv_t;
                worst = fmax(worst, fabs(ref[i]));
            }
            for (size_t i = 0; i < n; i++) scale[i] = worst;
            const double got = pk_gjsd_row(zs, zt, n, (float)beta, inv_t, grad, scratch);
            snprintf(what, sizeof what, "n=%zu beta=%.1f", n, beta);
            expect_close1("pk_gjsd_row", what, (float)got, loss, fabs(loss), 1e-5, 1e-9);
            expect_close("pk_gjsd_row(grad)", what, grad, ref, scale, n, 1e-4, 1e-12);
            const double again = pk_gjsd_row(zs, zt, n, (float)beta, inv_t, NULL, scratch);
            result(again == got, "pk_gjsd_row(no grad)", "%s: %g vs %g", what, again, got);
        }
        free(zs), free(zt), free(grad), free(scratch), free(ps), free(pt), free(ref), free(scale);
    }
}

// ---- AdamW -----------------------------------------------------------------------------------------------------

static void test_adamw(void) {
    const size_t n = 1003;
    float *p = xmalloc(n * 4), *g = xmalloc(n * 4), *m = xmalloc(n * 4), *v = xmalloc(n * 4);
    double *rp = xmalloc(n * 8), *sp = xmalloc(n * 8), *rm = xmalloc(n * 8), *sm = xmalloc(n * 8);
    double *rv = xmalloc(n * 8), *sv = xmalloc(n * 8);
    seed(600);
    fill(p, n, 1);
    fill(g, n, 0.1f);
    fill(m, n, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = 1e-4f * fabsf(gauss());
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    const float bc1 = 1.0f - b1 * b1 * b1, bc2 = sqrtf(1.0f - b2 * b2 * b2);
    for (size_t i = 0; i < n; i++) {
        const double p1 = (double)p[i] * (1.0 - (double)lr * wd);
        const double m1 = (double)m[i] + ((double)g[i] - m[i]) * (1.0 - (double)b1);
        const double v1 = (double)v[i] * b2 + (1.0 - (double)b2) * g[i] * g[i];
        const double upd = (double)lr / bc1 * m1 / (sqrt(v1) / bc2 + eps);
        rp[i] = p1 - upd;
        sp[i] = fabs(p1) + fabs(upd);
        rm[i] = m1;
        sm[i] = fabs((double)m[i]) + fabs(((double)g[i] - m[i]) * (1.0 - b1));
        rv[i] = v1;
        sv[i] = fabs(v1);
    }
    pk_adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
    expect_close("pk_adamw(p)", "n=1003", p, rp, sp, n, 1e-6, 0);
    expect_close("pk_adamw(m)", "n=1003", m, rm, sm, n, 1e-6, 0);
    expect_close("pk_adamw(v)", "n=1003", v, rv, sv, n, 1e-6, 0);
    free(p), free(g), free(m), free(v), free(rp), free(sp), free(rm), free(sm), free(rv), free(sv);
}

// ---- dropout ---------------------------------------------------------------------------------------------------

/// The mask as dropout.c documents it: element i is kept when the i-th 16-bit draw of the stream `key` (four draws
/// per SplitMix64 hash of key + golden * (i / 4)) is at least p * 65536.
static int ref_kept(uint64_t key, size_t i, float p) {
    uint64_t z = key + 0x9E3779B97F4A7C15ull * (uint64_t)(i >> 2);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ((uint32_t)(z >> (16 * (i & 3))) & 0xffffu) >= (uint32_t)(p * 65536.0f);
}

static void test_dropout(void) {
    const size_t n = 1037;
    static const float ps[] = {0.1f, 0.5f};
    char what[64];
    float *x = xmalloc(n * 4), *out = xmalloc(n * 4), *want = xmalloc(n * 4), *g = xmalloc(n * 4);
    float *dx = xmalloc(n * 4), *dx0 = xmalloc(n * 4), *dxs = xmalloc(n * 4), *part = xmalloc(n * 4);
    for (int q = 0; q < 2; q++) {
        const float p = ps[q], scale = 1.0f / (1.0f - p);
        const uint64_t key = 0x1234567890abcdefull + (uint64_t)q;
        seed(700 + q);
        fill(x, n, 1);
        fill(g, n, 1);
        fill(dx0, n, 1);
        size_t dropped = 0;
        for (size_t i = 0; i < n; i++) {
            const int k = ref_kept(key, i + 3, p);
            want[i] = k ? x[i] * scale : 0.0f;
            dropped += !k;
        }
        snprintf(what, sizeof what, "p=%g n=%zu offset=3", (double)p, n);
        pk_dropout(x, out, n, key, p, scale, 3);
        expect_same("pk_dropout", what, out, want, n, 4);
        result(fabs((double)dropped / n - p) < 0.05, "pk_dropout(rate)", "%s: dropped %zu of %zu", what, dropped, n);
        // The mask is a function of (key, index): a later slice with its offset matches.
        pk_dropout(x + 5, part, n - 5, key, p, scale, 8);
        expect_same("pk_dropout(slice)", what, part, out + 5, n - 5, 4);
        // Backward: dropped entries untouched bit for bit, kept ones dx + g * scale (one rounding, or none where the
        // compiler fuses it: FMA tiers built with fp-contract on).
        memcpy(dx, dx0, n * 4);
        pk_dropout_backward_add(g, dx, n, key, p, scale, 3);
        double *ref = xmalloc(n * 8), *sc = xmalloc(n * 8);
        int mask_ok = 1;
        for (size_t i = 0; i < n; i++) {
            const int k = ref_kept(key, i + 3, p);
            ref[i] = k ? (double)dx0[i] + (double)g[i] * scale : dx0[i];
            sc[i] = fabs((double)dx0[i]) + fabs((double)g[i] * scale);
            if (!k) mask_ok &= bits_of(dx[i]) == bits_of(dx0[i]);
        }
        expect_close("pk_dropout_backward_add", what, dx, ref, sc, n, 2.5e-7, 0);
        result(mask_ok, "pk_dropout_backward_add(mask)", "%s: a dropped entry changed", what);
        free(ref), free(sc);
        // The same mask and values on the scalar tier (forward: one rounding, the same bits on every tier).
        memcpy(dxs, dx0, n * 4);
        ON_SCALAR(pk_dropout(x, want, n, key, p, scale, 3); pk_dropout_backward_add(g, dxs, n, key, p, scale, 3));
        expect_same("pk_dropout(vs scalar tier)", what, out, want, n, 4);
        int same_mask = 1;
        for (size_t i = 0; i < n; i++) same_mask &= (bits_of(dx[i]) == bits_of(dx0[i])) == (bits_of(dxs[i]) == bits_of(dx0[i]));
        result(same_mask, "pk_dropout_backward_add(mask vs scalar tier)", "%s: the entries updated differ", what);
    }
    free(x), free(out), free(want), free(g), free(dx), free(dx0), free(dxs), free(part);
}

// ---- conversions -----------------------------------------------------------------------------------------------

static int half_is_nan(uint16_t h) { return (h & 0x7fffu) > 0x7c00u; }

/// The value of an IEEE half as a float, computed independently of convert.c (exact in double); NaN: a NaN.
static float half_value(uint16_t h) {
    const int e = (h >> 10) & 31, m = h & 0x3ff;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp((double)(m | 0x400), e - 25);
    return (float)((h & 0x8000) ? -v : v);
}

static void test_conversions(void) {
    // bf16 -> f32: all 65536 values, exact (the upper half of the float).
    {
        const size_t n = 65536;
        uint16_t *src = xmalloc(n * 2);
        float *got = xmalloc(n * 4), *want = xmalloc(n * 4);
        for (size_t i = 0; i < n; i++) src[i] = (uint16_t)i;
        for (size_t i = 0; i < n; i++) want[i] = float_of((uint32_t)src[i] << 16);
        pk_bf16_to_f32(src, got, n);
        expect_same("pk_bf16_to_f32", "all 65536", got, want, n, 4);
        pk_bf16_to_f32(src + 1, got, 13);   // odd start and length
        expect_same("pk_bf16_to_f32", "n=13", got, want + 1, 13, 4);
        free(src), free(got), free(want);
    }
    // f32 -> bf16: special values, ties, NaN payloads, random bit patterns; exact vs pk_to_bf16_scalar and the
    // scalar tier.
    {
        static const uint32_t special[] = {
            0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x00000001, 0x00007fff, 0x00008000, 0x00018000,
            0x007fffff, 0x00800000, 0x807fffff, 0x80008000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f807fff,
            0xbf808000, 0xbf818000, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0xff7f8000, 0x7f800000, 0xff800000,
            0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff800001, 0x7fffffff, 0xffffffff, 0x7fa12345,
            0x7f80ffff, 0x7f810000, 0x80000001};
        const size_t ns = sizeof special / sizeof special[0], n = ns + 40000 + 1;
        float *src = xmalloc(n * 4);
        uint16_t *got = xmalloc(n * 2), *want = xmalloc(n * 2), *sc = xmalloc(n * 2);
        seed(800);
        for (size_t i = 0; i < ns; i++) src[i] = float_of(special[i]);
        for (size_t i = ns; i < n; i++) {
            const uint32_t r = (uint32_t)next64();
            src[i] = float_of(i % 3 == 0 ? (r & 0xffff0000u) | 0x8000u : i % 3 == 1 ? r : bits_of(gauss()));
        }
        for (size_t i = 0; i < n; i++) want[i] = pk_to_bf16_scalar(src[i]);
        pk_f32_to_bf16(src, got, n);
        expect_same("pk_f32_to_bf16", "specials, ties, NaNs, random bits", got, want, n, 2);
        ON_SCALAR(pk_f32_to_bf16(src, sc, n));
        expect_same("pk_f32_to_bf16(vs scalar tier)", "same inputs", got, sc, n, 2);
        pk_f32_to_bf16(src + 3, got, 7);
        expect_same("pk_f32_to_bf16", "n=7", got, want + 3, 7, 2);
        free(src), free(got), free(want), free(sc);
    }
    // f16 -> f32: all 65536 values, exact for all but NaN (NaN: a NaN of the same sign; bit for bit on NEON).
    {
        const size_t n = 65536;
        uint16_t *src = xmalloc(n * 2);
        float *got = xmalloc(n * 4), *sc = xmalloc(n * 4);
        for (size_t i = 0; i < n; i++) src[i] = (uint16_t)i;
        pk_f16_to_f32(src, got, n);
        ON_SCALAR(pk_f16_to_f32(src, sc, n));
        size_t bad = n, nbad = 0, nanbits = 0;
        for (size_t i = 0; i < n; i++) {
            int ok;
            if (half_is_nan(src[i])) {
                ok = isnan(got[i]) && (bits_of(got[i]) >> 31) == (uint32_t)(src[i] >> 15);
                nanbits += bits_of(got[i]) != bits_of(sc[i]);
            } else {
                ok = bits_of(got[i]) == bits_of(half_value(src[i])) && bits_of(sc[i]) == bits_of(got[i]);
            }
            if (!ok) { if (bad == n) bad = i; nbad++; }
        }
        result(nbad == 0, "pk_f16_to_f32", "all 65536: %zu wrong, first 0x%04zx got 0x%08x scalar 0x%08x", nbad,
               bad == n ? 0 : bad, bad == n ? 0 : bits_of(got[bad]), bad == n ? 0 : bits_of(sc[bad]));
        if (current_tier == PK_TIER_NEON || current_tier == PK_TIER_SCALAR)
            result(nanbits == 0, "pk_f16_to_f32(NaN bits)", "%zu NaNs differ from the scalar twin's bits", nanbits);
        pk_f16_to_f32(src + 0x3c00, got, 5);   // odd length: 1, 1 + 2^-10, ...
        int ok = 1;
        for (int i = 0; i < 5; i++) ok &= bits_of(got[i]) == bits_of(half_value((uint16_t)(0x3c00 + i)));
        result(ok, "pk_f16_to_f32", "n=5 tail wrong");
        free(src), free(got), free(sc);
    }
    // f32 -> f16: for every finite half h >= 0 its value, the midpoint to the next half (a tie: the even one wins)
    // and the floats either side of the midpoint; both signs; specials (overflow, subnormals, NaN). Exact vs the
    // expected half and the scalar tier; NaN: a NaN of the same sign (bit for bit on NEON).
    {
        static const uint32_t special[] = {0x477fefff, 0x477ff000, 0x477fe000, 0x47800000, 0x501502f9, 0x7f800000,
                                           0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa12345, 0xffffffff,
                                           0x33800000, 0x33000000, 0x33000001, 0x32ffffff, 0x33c00000, 0x34200000,
                                           0x38800000, 0x387fc000, 0x387fe000, 0x00000001, 0x807fffff, 0x80000000};
        const size_t ns = sizeof special / sizeof special[0];
        const size_t n = ns + 0x7c00 * 8;
        float *src = xmalloc(n * 4);
        uint16_t *got = xmalloc(n * 2), *sc = xmalloc(n * 2), *want = xmalloc(n * 2);
        int *known = xmalloc(n * sizeof(int));
        size_t at = 0;
        for (size_t i = 0; i < ns; i++) { src[at] = float_of(special[i]); known[at++] = 0; }
        for (uint32_t h = 0; h < 0x7c00; h++) {
            const float v = half_value((uint16_t)h), next = h == 0x7bff ? 65536.0f : half_value((uint16_t)(h + 1));
            const float mid = (float)(((double)v + (double)next) / 2);   // exact: 12 significant bits
            const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            const float fs[4] = {v, mid, nextafterf(mid, INFINITY), nextafterf(mid, -INFINITY)};
            const uint16_t hs[4] = {(uint16_t)h, even, (uint16_t)(h + 1), (uint16_t)h};
            for (int s = 0; s < 2; s++)
                for (int j = 0; j < 4; j++) {
                    src[at] = s ? -fs[j] : fs[j];
                    want[at] = (uint16_t)(hs[j] | (s ? 0x8000 : 0));
                    known[at++] = 1;
                }
        }
        pk_f32_to_f16(src, got, n);
        ON_SCALAR(pk_f32_to_f16(src, sc, n));
        size_t bad = n, nbad = 0, nanbits = 0;
        for (size_t i = 0; i < n; i++) {
            int ok;
            if (isnan(src[i])) {
                ok = half_is_nan(got[i]) && (got[i] >> 15) == (bits_of(src[i]) >> 31);
                nanbits += got[i] != sc[i];
            } else {
                ok = got[i] == sc[i] && (!known[i] || got[i] == want[i]);
            }
            if (!ok) { if (bad == n) bad = i; nbad++; }
        }
        result(nbad == 0, "pk_f32_to_f16", "%zu of %zu wrong, first %.9g (0x%08x): got 0x%04x scalar 0x%04x want 0x%04x",
               nbad, n, bad == n ? 0.0 : (double)src[bad], bad == n ? 0 : bits_of(src[bad]), bad == n ? 0 : got[bad],
               bad == n ? 0 : sc[bad], bad == n || !known[bad] ? 0 : want[bad]);
        if (current_tier == PK_TIER_NEON || current_tier == PK_TIER_SCALAR)
            result(nanbits == 0, "pk_f32_to_f16(NaN bits)", "%zu NaNs differ from the scalar twin's bits", nanbits);
        pk_f32_to_f16(src + ns + 1, got, 3);
        result(!memcmp(got, want + ns + 1, 6), "pk_f32_to_f16", "n=3 tail wrong");
        free(src), free(got), free(sc), free(want), free(known);
    }
}

// ---- matrix-vector products ------------------------------------------------------------------------------------

typedef struct { size_t rows, k, m; } mv_shape;
static const mv_shape mv_shapes[] = {{1, 1, 1},   {5, 3, 2},   {13, 37, 5},  {8, 64, 4},  {7, 100, 6},
                                     {3, 300, 9}, {9, 16, 11}, {17, 129, 3}, {6, 7, 1},   {4, 17, 4},
                                     {11, 33, 7}, {5, 8, 2},   {10, 5, 3},   {3, 1031, 2}};
#define N_MV (sizeof mv_shapes / sizeof mv_shapes[0])

static const float SENTINEL = 12345.5f;

/// y [m, ldy] for rows [r0, r1) against the double reference; every other entry must still hold the sentinel.
static void check_mv(const char *kernel, const char *what, const float *y, size_t ldy, size_t m_count, size_t rows,
                     size_t r0, size_t r1, const double *ref, const double *scale) {
    size_t n = m_count * ldy;
    float *got = xmalloc(n * 4);
    double *rf = xmalloc(n * 8), *sc = xmalloc(n * 8);
    int untouched = 1;
    size_t cnt = 0;
    for (size_t m = 0; m < m_count; m++)
        for (size_t r = 0; r < ldy; r++) {
            const float v = y[m * ldy + r];
            if (r >= r0 && r < r1) {
                got[cnt] = v;
                rf[cnt] = ref[m * rows + r];
                sc[cnt++] = scale[m * rows + r];
            } else {
                untouched &= bits_of(v) == bits_of(SENTINEL);
            }
        }
    expect_close(kernel, what, got, rf, sc, cnt, 1e-5, 1e-30);
    result(untouched, kernel, "%s: wrote outside rows [%zu, %zu)", what, r0, r1);
    free(got), free(rf), free(sc);
}

static void test_gemv_f32(void) {
    char what[96];
    for (size_t s = 0; s < N_MV; s++) {
        const size_t rows = mv_shapes[s].rows, k = mv_shapes[s].k, mc = mv_shapes[s].m, ldx = k + 3, ldy = rows + 2;
        seed(900 + s);
        float *w = xmalloc(rows * k * 4), *x = xmalloc(mc * ldx * 4), *y = xmalloc(mc * ldy * 4);
        double *ref = xmalloc(mc * rows * 8), *scale = xmalloc(mc * rows * 8);
        fill(w, rows * k, 1);
        fill(x, mc * ldx, 1);
        for (size_t m = 0; m < mc; m++)
            for (size_t r = 0; r < rows; r++) {
                double a = 0, b = 0;
                for (size_t i = 0; i < k; i++) {
                    a += (double)w[r * k + i] * x[m * ldx + i];
                    b += fabs((double)w[r * k + i] * x[m * ldx + i]);
                }
                ref[m * rows + r] = a;
                scale[m * rows + r] = b;
            }
        const size_t ranges[2][2] = {{0, rows}, {rows > 3 ? 2 : 0, rows > 3 ? rows - 1 : rows}};
        for (int q = 0; q < 2; q++) {
            const size_t r0 = ranges[q][0], r1 = ranges[q][1];
            snprintf(what, sizeof what, "rows=%zu k=%zu m=%zu rows [%zu,%zu)", rows, k, mc, r0, r1);
            for (size_t i = 0; i < mc * ldy; i++) y[i] = SENTINEL;
            pk_gemv_f32(w, k, x, ldx, y, ldy, mc, r0, r1);
            check_mv("pk_gemv_f32", what, y, ldy, mc, rows, r0, r1, ref, scale);
            for (size_t i = 0; i < mc * ldy; i++) y[i] = SENTINEL;
            pk_gemm_small_f32(w, k, x, ldx, y, ldy, mc, r0, r1);
            check_mv("pk_gemm_small_f32", what, y, ldy, mc, rows, r0, r1, ref, scale);
        }
        free(w), free(x), free(y), free(ref), free(scale);
    }
}

static void test_dot_bf16(void) {
    static const size_t ks[] = {1, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 37, 100, 260};
    char what[96];
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        const size_t k = ks[t], rows = 11, mc = 11, ldx = k + 5, ldy = rows + 1;
        seed(1000 + k);
        float *tmp = xmalloc((rows * k + mc * ldx) * 4), *y = xmalloc(mc * ldy * 4), *y1 = xmalloc(ldy * 4);
        uint16_t *w = xmalloc(rows * k * 2), *x = xmalloc(mc * ldx * 2);
        double *ref = xmalloc(mc * rows * 8), *scale = xmalloc(mc * rows * 8);
        fill(tmp, rows * k + mc * ldx, 1);
        for (size_t i = 0; i < rows * k; i++) w[i] = pk_to_bf16_scalar(tmp[i]);
        for (size_t i = 0; i < mc * ldx; i++) x[i] = pk_to_bf16_scalar(tmp[rows * k + i]);
        for (size_t m = 0; m < mc; m++)
            for (size_t r = 0; r < rows; r++) {
                double a = 0, b = 0;
                for (size_t i = 0; i < k; i++) {
                    const double p = (double)pk_bf16_scalar(w[r * k + i]) * pk_bf16_scalar(x[m * ldx + i]);
                    a += p;
                    b += fabs(p);
                }
                ref[m * rows + r] = a;
                scale[m * rows + r] = b;
            }
        for (int q = 0; q < 2; q++) {
            const size_t r0 = q ? 2 : 0, r1 = q ? rows - 1 : rows;
            snprintf(what, sizeof what, "rows=%zu k=%zu m=%zu rows [%zu,%zu)", rows, k, mc, r0, r1);
            for (size_t i = 0; i < mc * ldy; i++) y[i] = SENTINEL;
            pk_dot_bf16(w, k, x, ldx, y, ldy, mc, r0, r1);
            check_mv("pk_dot_bf16", what, y, ldy, mc, rows, r0, r1, ref, scale);
        }
        // An input's result is the same bit for bit alone (m_count = 1) as inside the batch of 11, and a row's the
        // same whichever tile of rows it falls in (row ranges starting at 0..3).
        for (size_t i = 0; i < mc * ldy; i++) y[i] = SENTINEL;
        pk_dot_bf16(w, k, x, ldx, y, ldy, mc, 0, rows);
        size_t bad_m = mc, bad_r = rows;
        for (size_t m = 0; m < mc && bad_m == mc; m++) {
            pk_dot_bf16(w, k, x + m * ldx, ldx, y1, ldy, 1, 0, rows);
            for (size_t r = 0; r < rows; r++)
                if (bits_of(y1[r]) != bits_of(y[m * ldy + r])) { bad_m = m; bad_r = r; break; }
        }
        snprintf(what, sizeof what, "k=%zu", k);
        result(bad_m == mc, "pk_dot_bf16(m_count independence)", "%s: input %zu row %zu: alone %.9g, in 11 %.9g",
               what, bad_m, bad_r, bad_m == mc ? 0.0 : (double)y1[bad_r], bad_m == mc ? 0.0 : (double)y[bad_m * ldy + bad_r]);
        for (size_t m0 = 1; m0 < 4; m0++) {   // batches starting at other inputs (other tiles of inputs)
            float *yb = xmalloc(mc * ldy * 4);
            pk_dot_bf16(w, k, x + m0 * ldx, ldx, yb, ldy, mc - m0, 0, rows);
            int same = 1;
            for (size_t m = 0; m < mc - m0; m++) same &= !memcmp(yb + m * ldy, y + (m0 + m) * ldy, rows * 4);
            result(same, "pk_dot_bf16(batch offset independence)", "%s: inputs from %zu differ", what, m0);
            free(yb);
        }
        for (size_t r0 = 1; r0 < 4; r0++) {
            float *yb = xmalloc(mc * ldy * 4);
            memcpy(yb, y, mc * ldy * 4);
            pk_dot_bf16(w, k, x, ldx, yb, ldy, mc, r0, rows);
            result(!memcmp(yb, y, mc * ldy * 4), "pk_dot_bf16(row tile independence)", "%s: rows from %zu differ",
                   what, r0);
            free(yb);
        }
        free(tmp), free(y), free(y1), free(w), free(x), free(ref), free(scale);
    }
}

// ---- sgemm -------------------------------------------------------------------------------------------------------

static void test_sgemm(void) {
    static const size_t shapes[][3] = {{37, 29, 53}, {100, 33, 7}, {5, 70, 300}, {1, 1, 1},  {6, 32, 256},
                                       {7, 33, 257}, {73, 65, 20}, {13, 100, 3}, {5, 7, 0}, {12, 48, 513},
                                       {75, 1100, 70}};   // the last: several column blocks and A blocks
    static const float alphas[] = {1.0f, -0.5f};
    char what[128];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const size_t lda = ta ? m + 2 : k + 1, ldb = tb ? k + 1 : n + 3, ldc = n + 5;
                const size_t asz = (ta ? k : m) * lda, bsz = (tb ? n : k) * ldb;
                seed(1100 + 4 * s + 2 * ta + tb);
                float *a = xmalloc(asz * 4), *b = xmalloc(bsz * 4), *c0 = xmalloc(m * ldc * 4), *c = xmalloc(m * ldc * 4);
                double *ab = xmalloc(m * n * 8), *abs_ = xmalloc(m * n * 8);
                fill(a, asz, 1);
                fill(b, bsz, 1);
                fill(c0, m * ldc, 1);
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++) {
                        double t = 0, u = 0;
                        for (size_t p = 0; p < k; p++) {
                            const double v = (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                            t += v;
                            u += fabs(v);
                        }
                        ab[i * n + j] = t;
                        abs_[i * n + j] = u;
                    }
                for (int ai = 0; ai < 2; ai++)
                    for (int acc = 0; acc < 2; acc++)
                        for (int sub = 0; sub < 2; sub++) {
                            const float alpha = alphas[ai];
                            const size_t cb = sub ? n / 4 : 0, ce = sub ? n - n / 5 : n;
                            if (sub && ce <= cb) continue;
                            memcpy(c, c0, m * ldc * 4);
                            pk_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, acc, c, ldc, cb, ce);
                            double *ref = xmalloc(m * n * 8 + 8), *scale = xmalloc(m * n * 8 + 8);
                            float *got = xmalloc(m * n * 4 + 4);
                            size_t cnt = 0;
                            int untouched = 1;
                            for (size_t i = 0; i < m; i++)
                                for (size_t j = 0; j < ldc; j++) {
                                    if (j >= cb && j < ce) {
                                        const double prior = acc ? c0[i * ldc + j] : 0;
                                        got[cnt] = c[i * ldc + j];
                                        ref[cnt] = prior + alpha * ab[i * n + j];
                                        scale[cnt++] = fabs(prior) + fabs(alpha) * abs_[i * n + j];
                                    } else {
                                        untouched &= bits_of(c[i * ldc + j]) == bits_of(c0[i * ldc + j]);
                                    }
                                }
                            snprintf(what, sizeof what, "m=%zu n=%zu k=%zu ta=%d tb=%d alpha=%g accumulate=%d cols [%zu,%zu)",
                                     m, n, k, ta, tb, (double)alpha, acc, cb, ce);
                            expect_close("pk_sgemm", what, got, ref, scale, cnt, 1e-5, 1e-30);
                            result(untouched, "pk_sgemm(outside)", "%s: wrote outside the column range", what);
                            free(ref), free(scale), free(got);
                        }
                free(a), free(b), free(c0), free(c), free(ab), free(abs_);
            }
    }
}

// ---- quantized formats -----------------------------------------------------------------------------------------

/// Every block format: the round trip, the in-memory layout and the products.
static const int qtypes_all[] = {PK_Q8_0, PK_Q4_0, PK_Q5_0, PK_Q4_K, PK_Q6_K, PK_Q4_1, PK_Q5_1, PK_Q2_K, PK_Q3_K,
                                 PK_Q5_K, PK_IQ4_NL, PK_IQ4_XS};
#define NQ_ALL (sizeof qtypes_all / sizeof qtypes_all[0])
static const char *qname(int t) {
    switch (t) {
    case PK_Q8_0: return "q8_0";
    case PK_Q4_0: return "q4_0";
    case PK_Q5_0: return "q5_0";
    case PK_Q4_K: return "q4_k";
    case PK_Q4_1: return "q4_1";
    case PK_Q5_1: return "q5_1";
    case PK_Q2_K: return "q2_k";
    case PK_Q3_K: return "q3_k";
    case PK_Q5_K: return "q5_k";
    case PK_IQ4_NL: return "iq4_nl";
    case PK_IQ4_XS: return "iq4_xs";
    default: return "q6_k";
    }
}

/// Relative RMS error bounds of quantize -> dequantize on the test's data (normal, one outlier of 8 sigma), about
/// 1.4 times GGML's errors there (q8_0 0.0085, q6_k 0.018, q5_k 0.036, q5_1 0.049, q5_0 0.071, q4_k 0.071,
/// iq4_xs 0.081, q4_1 0.095, iq4_nl 0.110, q4_0 0.147, q3_k 0.151, q2_k 0.312): a misplaced nibble, scale or sign gives
/// errors of order 1.
static double qbound(int t) {
    switch (t) {
    case PK_Q8_0: return 0.012;
    case PK_Q6_K: return 0.025;
    case PK_Q5_0: return 0.1;
    case PK_Q4_K: return 0.1;
    case PK_Q4_1: return 0.14;
    case PK_Q5_1: return 0.07;
    case PK_Q2_K: return 0.45;
    case PK_Q3_K: return 0.21;
    case PK_Q5_K: return 0.05;
    case PK_IQ4_NL: return 0.16;
    case PK_IQ4_XS: return 0.12;
    default: return 0.2;
    }
}

static void test_quant_roundtrip(void) {
    char what[64];
    for (size_t q = 0; q < NQ_ALL; q++) {
        const int type = qtypes_all[q];
        const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type), nb = 4, n = nb * bs;
        seed(1200 + q);
        float *x = xmalloc(n * 4), *y = xmalloc(n * 4), *ys = xmalloc(n * 4);
        uint8_t *blk = xmalloc(nb * bb), *blks = xmalloc(nb * bb);
        fill(x, n, 0.5f);
        x[5] = 4.0f;   // an outlier in the first block
        for (size_t i = 3 * bs; i < n; i++) x[i] = 0;   // an all-zero block
        pk_quantize(type, x, blk, nb);
        pk_dequantize(type, blk, y, nb);
        double e2 = 0, x2 = 0;
        int zeros = 1;
        for (size_t i = 0; i < 3 * bs; i++) {
            e2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            x2 += (double)x[i] * x[i];
        }
        for (size_t i = 3 * bs; i < n; i++) zeros &= y[i] == 0;
        snprintf(what, sizeof what, "%s, %zu blocks", qname(type), nb);
        const double rel = sqrt(e2 / x2);
        result(rel <= qbound(type), "pk_quantize/pk_dequantize", "%s: relative RMS error %.4g > %.4g", what, rel, qbound(type));
        result(zeros, "pk_quantize/pk_dequantize(zero block)", "%s: a zero block must come back zero", what);
        ON_SCALAR(pk_quantize(type, x, blks, nb); pk_dequantize(type, blk, ys, nb));
        expect_same("pk_quantize(vs scalar tier)", what, blk, blks, nb * bb, 1);
        expect_same("pk_dequantize(vs scalar tier)", what, y, ys, n, 4);
        free(x), free(y), free(ys), free(blk), free(blks);
    }
}

/// rows x k weights quantized row by row into GGML blocks (rows of k / bs blocks).
static uint8_t *quantize_rows(int type, const float *w, size_t rows, size_t k) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type);
    uint8_t *q = xmalloc(rows * (k / bs) * bb);
    for (size_t r = 0; r < rows; r++) pk_quantize(type, w + r * k, q + r * (k / bs) * bb, k / bs);
    return q;
}

/// The packed matrix of GGML rows (rows padded to 8).
static uint8_t *pack_rows(int type, const uint8_t *q, size_t rows, size_t k) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type), rb = (k / bs) * bb;
    const size_t groups = (rows + 7) / 8, gbytes = pk_packed_bytes(type, 8, k);
    uint8_t *p = xmalloc(groups * gbytes);
    for (size_t g = 0; g < groups; g++) {
        const uint8_t *rp[8];
        for (int r = 0; r < 8; r++) rp[r] = 8 * g + r < rows ? q + (8 * g + r) * rb : NULL;
        pk_pack_group(type, rp, k, p + g * gbytes);
    }
    return p;
}

static void test_pack(void) {
    char what[64];
    for (size_t q = 0; q < NQ_ALL; q++) {
        const int type = qtypes_all[q];
        const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type), nb = 3, k = nb * bs;
        const size_t rows = 13, rb = nb * bb;
        seed(1300 + q);
        float *w = xmalloc(rows * k * 4), *deq = xmalloc(rows * k * 4), *got = xmalloc(rows * k * 4);
        uint16_t *gotb = xmalloc(rows * k * 2), *wantb = xmalloc(rows * k * 2);
        fill(w, rows * k, 1);
        uint8_t *qr = quantize_rows(type, w, rows, k);
        uint8_t *packed = pack_rows(type, qr, rows, k);
        const size_t gbytes = pk_packed_bytes(type, 8, k);
        snprintf(what, sizeof what, "%s rows=%zu k=%zu", qname(type), rows, k);
        result(pk_packed_bytes(type, rows, k) == 2 * gbytes && gbytes == nb * pk_packed_block_bytes(type),
               "pk_packed_bytes", "%s: %zu", what, pk_packed_bytes(type, rows, k));
        // Every row back bit for bit; padding rows as zero blocks.
        uint8_t *row = xmalloc(rb), *zero = calloc(1, rb);
        int ok = 1;
        for (size_t r = 0; r < 16; r++) {
            pk_unpack_row(type, packed + (r / 8) * gbytes, k, (int)(r % 8), row);
            ok &= !memcmp(row, r < rows ? qr + r * rb : zero, rb);
        }
        result(ok, "pk_pack_group/pk_unpack_row", "%s: a row did not come back bit for bit", what);
        for (size_t r = 0; r < rows; r++) pk_dequantize(type, qr + r * rb, deq + r * k, nb);
        for (size_t i = 0; i < rows * k; i++) wantb[i] = pk_to_bf16_scalar(deq[i]);
        const size_t ranges[2][2] = {{0, rows}, {3, 11}};
        for (int s = 0; s < 2; s++) {
            const size_t r0 = ranges[s][0], r1 = ranges[s][1];
            snprintf(what, sizeof what, "%s k=%zu rows [%zu,%zu)", qname(type), k, r0, r1);
            pk_packed_dequantize(type, packed, k, r0, r1, got);
            expect_same("pk_packed_dequantize", what, got, deq + r0 * k, (r1 - r0) * k, 4);
            pk_packed_dequantize_bf16(type, packed, k, r0, r1, gotb);
            expect_same("pk_packed_dequantize_bf16", what, gotb, wantb + r0 * k, (r1 - r0) * k, 2);
        }
        free(w), free(deq), free(got), free(gotb), free(wantb), free(qr), free(packed), free(row), free(zero);
    }
}

static void test_quantize_activations(void) {
    const size_t k = 96;
    float x[96], dx[3], want_dx[3];
    int8_t qx[96], want_q[96];
    int32_t sx[3], want_s[3];
    seed(1400);
    fill(x, k, 2);
    for (size_t i = 64; i < 96; i++) x[i] = 0;   // a zero block: scale 0, quants 0
    for (size_t b = 0; b < 3; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            want_q[32 * b + j] = (int8_t)(int)roundf(x[32 * b + j] * id);
            s += want_q[32 * b + j];
        }
        uint16_t h;
        ON_SCALAR(pk_f32_to_f16(&d, &h, 1); pk_f16_to_f32(&h, &want_dx[b], 1));
        want_s[b] = s;
    }
    pk_quantize_activations(x, k, qx, dx, sx);
    int ok = !memcmp(qx, want_q, k) && !memcmp(sx, want_s, sizeof sx) && !memcmp(dx, want_dx, sizeof dx);
    result(ok, "pk_quantize_activations", "k=96: quants, scales or sums differ from the reference");

    // Every tier gives the scalar tier's bytes, per 32 and per 256 (q2_k: one scale per 256), on data with exact
    // ties (x / d = n + 1/2), zeros, tiny and huge blocks.
    enum { K = 1024 };
    static float xs[K];
    static int8_t q1[K], q2[K];
    float d1[K / 32], d2[K / 32];
    int32_t s1[K / 32], s2[K / 32];
    fill(xs, K, 3);
    for (size_t i = 0; i < 32; i++) xs[i] = (float)i - 15.5f;   // with amax 127, d = 1: every value a tie
    xs[31] = 127.f;
    for (size_t i = 256; i < 288; i++) xs[i] = 0;
    for (size_t i = 512; i < 768; i++) xs[i] *= 1e-37f;
    for (size_t i = 768; i < 800; i++) xs[i] *= 1e30f;
    const int types[2] = {PK_Q4_0, PK_Q2_K};
    for (int t = 0; t < 2; t++) {
        pk_quantize_activations_for(types[t], xs, K, q1, d1, s1);
        ON_SCALAR(pk_quantize_activations_for(types[t], xs, K, q2, d2, s2));
        ok = !memcmp(q1, q2, K) && !memcmp(s1, s2, sizeof s1) && !memcmp(d1, d2, sizeof d1);
        result(ok, "pk_quantize_activations_for", "%s: bytes differ from the scalar tier's", qname(types[t]));
    }
}

/// The packed product against references: y[m, r] for the rows of groups [g0, g1), m < m_count.
///   exact: integer data (scales 1): the result must be the integer sum exactly;
///   otherwise: within 1e-5 of sum |w x| of the scalar tier and 2e-5 of the f64 reference from dequantized rows.
static void q8x_case(int type, int exact, size_t k, size_t rows, size_t m_count, const uint8_t *qrows, const int8_t *qx,
                     const float *dx, const int32_t *sx, const char *kernel) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type), nb = k / bs, rb = nb * bb;
    const size_t ldy = rows + 3, groups = (rows + 7) / 8;
    uint8_t *packed = pack_rows(type, qrows, rows, k);
    float *deq = xmalloc(rows * k * 4), *y = xmalloc(m_count * ldy * 4), *ys = xmalloc(m_count * ldy * 4);
    double *ref = xmalloc(m_count * rows * 8), *scale = xmalloc(m_count * rows * 8);
    for (size_t r = 0; r < rows; r++) pk_dequantize(type, qrows + r * rb, deq + r * k, nb);
    for (size_t m = 0; m < m_count; m++)
        for (size_t r = 0; r < rows; r++) {
            double a = 0, b = 0;
            for (size_t i = 0; i < k; i++) {
                const double v = (double)deq[r * k + i] * ((double)qx[m * k + i] * dx[m * (k / 32) + i / 32]);
                a += v;
                b += fabs(v);
            }
            ref[m * rows + r] = a;
            scale[m * rows + r] = b;
        }
    char what[128];
    const size_t granges[2][2] = {{0, groups}, {1, groups}};
    for (int s = 0; s < 2; s++) {
        const size_t g0 = granges[s][0], g1 = granges[s][1], r0 = 8 * g0, r1 = 8 * g1 < rows ? 8 * g1 : rows;
        if (g1 <= g0) continue;
        snprintf(what, sizeof what, "%s%s k=%zu rows=%zu m=%zu groups [%zu,%zu)", qname(type), exact ? " integer" : "",
                 k, rows, m_count, g0, g1);
        for (size_t i = 0; i < m_count * ldy; i++) y[i] = ys[i] = SENTINEL;
        pk_packed_gemv_q8x(type, packed, rows, k, qx, dx, sx, y, ldy, m_count, g0, g1);
        if (exact) {
            // Integer data: every partial sum is an integer below 2^24, so any tier gets the exact value.
            check_mv(kernel, what, y, ldy, m_count, rows, r0, r1, ref, scale);
            size_t bad = 0, nbad = 0;
            for (size_t m = 0; m < m_count; m++)
                for (size_t r = r0; r < r1; r++)
                    if ((double)y[m * ldy + r] != ref[m * rows + r]) { if (!nbad) bad = m * ldy + r; nbad++; }
            result(nbad == 0, kernel, "%s: %zu integer results inexact, first y[%zu] = %.9g", what, nbad, bad,
                   nbad ? (double)y[bad] : 0.0);
        } else {
            ON_SCALAR(pk_packed_gemv_q8x(type, packed, rows, k, qx, dx, sx, ys, ldy, m_count, g0, g1));
            double *sref = xmalloc(m_count * rows * 8);
            for (size_t m = 0; m < m_count; m++)
                for (size_t r = 0; r < rows; r++) sref[m * rows + r] = r >= r0 && r < r1 ? ys[m * ldy + r] : 0;
            float *got = xmalloc(m_count * rows * 4);
            double *rs = xmalloc(m_count * rows * 8), *ss = xmalloc(m_count * rows * 8);
            size_t cnt = 0;
            for (size_t m = 0; m < m_count; m++)
                for (size_t r = r0; r < r1; r++) {
                    got[cnt] = y[m * ldy + r];
                    rs[cnt] = sref[m * rows + r];
                    ss[cnt++] = scale[m * rows + r];
                }
            char w2[160];
            snprintf(w2, sizeof w2, "%s vs scalar tier", what);
            expect_close(kernel, w2, got, rs, ss, cnt, 1e-5, 1e-30);
            // The f64 reference from the dequantized rows and activations (2e-5 of sum |w x|), and the untouched rest.
            snprintf(w2, sizeof w2, "%s vs f64 reference", what);
            cnt = 0;
            for (size_t m = 0; m < m_count; m++)
                for (size_t r = r0; r < r1; r++) rs[cnt++] = ref[m * rows + r];
            expect_close(kernel, w2, got, rs, ss, cnt, 2e-5, 1e-30);
            int untouched = 1;
            for (size_t m = 0; m < m_count; m++)
                for (size_t r = 0; r < ldy; r++)
                    if (r < r0 || r >= r1) untouched &= bits_of(y[m * ldy + r]) == bits_of(SENTINEL);
            result(untouched, kernel, "%s: wrote outside rows [%zu, %zu)", what, r0, r1);
            free(sref), free(got), free(rs), free(ss);
        }
    }
    free(packed), free(deq), free(y), free(ys), free(ref), free(scale);
}

/// GGML rows of integer data with every scale 1 (f16 0x3c00): random levels in the format's range.
static uint8_t *integer_rows(int type, size_t rows, size_t k) {
    const size_t bs = pk_quant_block_size(type), bb = pk_quant_block_bytes(type), nb = k / bs;
    uint8_t *q = xmalloc(rows * nb * bb);
    const uint16_t one = 0x3c00;
    for (size_t blk = 0; blk < rows * nb; blk++) {
        uint8_t *b = q + blk * bb;
        for (size_t i = 0; i < bb; i++) b[i] = (uint8_t)next64();   // levels: any bytes
        if (type == PK_Q6_K) {
            memcpy(b + 208, &one, 2);
            for (int j = 0; j < 16; j++) b[192 + j] = (uint8_t)(int8_t)irange(-20, 20);
        } else if (type == PK_Q4_K || type == PK_Q5_K || type == PK_Q4_1 || type == PK_Q5_1) {
            memcpy(b, &one, 2);
            memcpy(b + 2, &one, 2);   // dmin (or m) 1; q4_k/q5_k's 12 bytes of 6-bit scales and mins stay random
        } else if (type == PK_Q2_K) {
            memcpy(b + 80, &one, 2);
            memcpy(b + 82, &one, 2);
        } else if (type == PK_Q3_K) {
            memcpy(b + 108, &one, 2);
        } else if (type == PK_IQ4_XS) {
            // Sub-block scales 0..3 (high bits 2, low bits 0..3): the table's levels reach 127.
            memcpy(b, &one, 2);
            b[2] = b[3] = 0xAA;
            for (int j = 4; j < 8; j++) b[j] &= 0x33;
        } else {
            memcpy(b, &one, 2);
        }
    }
    return q;
}

static void test_q8x(void) {
    // Variants: as detected; without the integer dot products (where there are); with vpdpbusd emulated in AVX2
    // (where the tier is AVX2 without AVX-VNNI), which runs the VNNI bodies' unsigned levels and offsets.
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 1) {
            if (!pk_has_vnni()) continue;
            pk_force_no_vnni(1);
            snprintf(label + strlen(label), sizeof label - strlen(label), "/no-vnni");
        }
        if (variant == 2) {
            pk_force_no_vnni(0);
            pk_force_emulated_vnni(1);
            if (!pk_emulated_vnni()) { pk_force_emulated_vnni(0); continue; }
            snprintf(label + strlen(label), sizeof label - strlen(label), "/emulated-vnni");
        }
        const char *kernel = "pk_packed_gemv_q8x";
        for (size_t q = 0; q < NQ_ALL; q++) {
            const int type = qtypes_all[q];
            const size_t bs = pk_quant_block_size(type);
            const size_t kn[2] = {bs == 32 ? 7 * 32 : 256, bs == 32 ? 32 : 512};
            for (int kk = 0; kk < 2; kk++) {
                const size_t k = kn[kk], rows = 13, mmax = 5, nb = k / 32;
                seed(1500 + 10 * q + kk);
                // Activations: integers (scale 1) for the exact case; quantized normal data otherwise.
                int8_t *qx = xmalloc(mmax * k), *qxi = xmalloc(mmax * k);
                float *dx = xmalloc(mmax * nb * 4), *dxi = xmalloc(mmax * nb * 4), *xa = xmalloc(mmax * k * 4);
                int32_t *sx = xmalloc(mmax * nb * 4), *sxi = xmalloc(mmax * nb * 4);
                const int lim = bs == 32 ? 127 : 20;   // k-quants: keep every partial sum below 2^24
                for (size_t i = 0; i < mmax * k; i++) qxi[i] = (int8_t)irange(-lim, lim);
                for (size_t b = 0; b < mmax * nb; b++) {
                    dxi[b] = 1.0f;
                    int32_t s = 0;
                    for (int j = 0; j < 32; j++) s += qxi[32 * b + j];
                    sxi[b] = s;
                }
                fill(xa, mmax * k, 1);
                for (size_t m = 0; m < mmax; m++) pk_quantize_activations_for(type, xa + m * k, k, qx + m * k, dx + m * nb, sx + m * nb);
                uint8_t *qi = integer_rows(type, rows, k);
                float *w = xmalloc(rows * k * 4);
                fill(w, rows * k, 1);
                uint8_t *qr = quantize_rows(type, w, rows, k);
                for (size_t m = 1; m <= mmax; m++) {
                    q8x_case(type, 1, k, rows, m, qi, qxi, dxi, sxi, kernel);
                    q8x_case(type, 0, k, rows, m, qr, qx, dx, sx, kernel);
                }
                free(qx), free(qxi), free(dx), free(dxi), free(xa), free(sx), free(sxi), free(qi), free(w), free(qr);
            }
        }
        if (variant) {
            pk_force_no_vnni(0);
            pk_force_emulated_vnni(0);
            *strrchr(label, '/') = 0;
        }
    }
}

// ---- driver ----------------------------------------------------------------------------------------------------

// ---- rotary position embedding ---------------------------------------------------------------------------------

static void test_rope(void) {
    static const size_t ds[] = {2, 8, 16, 64, 128};
    char what[64];
    for (size_t t = 0; t < sizeof ds / sizeof ds[0]; t++)
    for (size_t part = 0; part < 2; part++) {
        // The whole head rotated, then (partial rotary) only its first half when that is even.
        const size_t d = ds[t], rot = part ? d / 2 : d, half = rot / 2, rows = 5, heads = 3, positions = 11;
        if (rot < 2 || rot % 2) continue;
        seed(700 + d + part);
        float *cs = xmalloc(positions * half * 4), *sn = xmalloc(positions * half * 4);
        for (size_t p = 0; p < positions; p++)
            for (size_t i = 0; i < half; i++) {
                const double angle = (double)p * pow(10000.0, -2.0 * (double)i / (double)rot);
                cs[p * half + i] = (float)cos(angle);
                sn[p * half + i] = (float)sin(angle);
            }
        const int32_t pos[5] = {0, 10, 3, 7, 1};
        const size_t n = rows * heads * d;
        float *x = xmalloc(n * 4), *y = xmalloc(n * 4);
        double *ref = xmalloc(n * 8);
        fill(x, n, 2);
        memcpy(y, x, n * 4);
        for (size_t i = 0; i < n; i++) ref[i] = x[i];
        for (size_t r = 0; r < rows; r++)
            for (size_t h = 0; h < heads; h++)
                for (size_t i = 0; i < half; i++) {
                    const size_t at = (r * heads + h) * d;
                    const double c = cs[pos[r] * half + i], s = sn[pos[r] * half + i];
                    ref[at + i] = (double)x[at + i] * c - (double)x[at + i + half] * s;
                    ref[at + i + half] = (double)x[at + i + half] * c + (double)x[at + i] * s;
                }
        snprintf(what, sizeof what, "d=%zu rot=%zu", d, rot);
        pk_rope(y, rows, heads, d, rot, pos, cs, sn, 1.0f);
        expect_close("pk_rope", what, y, ref, NULL, n, 1e-6, 1e-6);
        pk_rope(y, rows, heads, d, rot, pos, cs, sn, -1.0f);
        for (size_t i = 0; i < n; i++) ref[i] = x[i];
        expect_close("pk_rope(inverse)", what, y, ref, NULL, n, 1e-6, 1e-6);
        free(cs), free(sn), free(x), free(y), free(ref);
    }
}

static void run_tier(int tier) {
    current_tier = tier;
    tier_pass = tier_fail = 0;
    snprintf(label, sizeof label, "%s", pk_cpu_tier_name(tier));
    const int vnni = pk_has_vnni(), bf16dot = pk_has_avx512bf16();
    test_dot_axpy();
    test_rmsnorm();
    test_swiglu();
    test_geglu();
    test_softcap();
    test_rope();
    test_softmax();
    test_logsumexp_xent();
    test_gjsd();
    test_adamw();
    test_dropout();
    test_conversions();
    test_gemv_f32();
    test_dot_bf16();
    if (bf16dot) {   // the widening body of AVX-512 CPUs without AVX512-BF16, on this one
        pk_force_no_bf16_dot(1);
        strcat(label, "/no-bf16-dot");
        test_dot_bf16();
        *strrchr(label, '/') = 0;
        pk_force_no_bf16_dot(0);
    }
    test_sgemm();
    test_quant_roundtrip();
    test_pack();
    test_quantize_activations();
    test_q8x();
    printf("tier %-6s (integer dot products: %s%s): passed %d, failed %d\n", pk_cpu_tier_name(tier),
           vnni ? "yes, also run without" : "no", bf16dot ? "; bf16 dot products: yes, also run without" : "",
           tier_pass, tier_fail);
    fflush(stdout);
    total_pass += tier_pass;
    total_fail += tier_fail;
}

int main(void) {
    const char *env = getenv("PEFT_CPU");
    printf("kernel tests: cpu features \"%s\", best tier %s\n", pk_cpu_features(), pk_cpu_tier_name(pk_cpu_best_tier()));
    if (env && *env) {
        // The tier PEFT_CPU selects, through dispatch.c's environment path.
        const int t = pk_tier();
        current_tier = t;
        snprintf(label, sizeof label, "%s", pk_cpu_tier_name(t));
        const int named = strcmp(pk_cpu_tier_name(t), env) == 0 && !pk_cpu_env_refused();
        tier_pass = tier_fail = 0;
        result(named, "PEFT_CPU", "PEFT_CPU=%s selected tier %s (refused: %d)", env, pk_cpu_tier_name(t),
               pk_cpu_env_refused());
        total_pass += tier_pass;
        total_fail += tier_fail;
        printf("PEFT_CPU=%s: running tier %s only\n", env, pk_cpu_tier_name(t));
        run_tier(t);
    } else {
        for (int t = PK_TIER_SCALAR; t <= PK_TIER_NEON; t++) {
            if (!pk_tier_available(t)) continue;
            if (pk_set_cpu_tier(t) != 0) {
                printf("FAIL [%s] pk_set_cpu_tier: available but refused\n", pk_cpu_tier_name(t));
                total_fail++;
                continue;
            }
            run_tier(t);
        }
    }
    printf("%d passed, %d failed\n", total_pass, total_fail);
    return total_fail ? 1 : 0;
}
