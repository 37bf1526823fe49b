// SIMD hot loops for swift-peft. Plain C over raw pointers; every function has a naive Swift twin in the tests.
// Shapes are given in comments as [rows, cols] row-major. Each function dispatches at run time on the CPU tier
// (dispatch.c): a scalar body everywhere, AVX2 and AVX-512 bodies on x86-64, NEON bodies on ARM64.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU tiers (dispatch.c) -------------------------------------------------------------------------
enum { PK_TIER_SCALAR = 0, PK_TIER_AVX2 = 1, PK_TIER_AVX512 = 2, PK_TIER_NEON = 3 };
/// The tier the kernels run: the best this CPU has, or the lower one PEFT_CPU (scalar|avx2|avx512|neon) names.
int pk_tier(void);
/// The best tier this CPU has.
int pk_cpu_best_tier(void);
/// 1 when this CPU can run `tier`.
int pk_tier_available(int tier);
/// Switches every kernel to `tier` (tests run each tier the machine has). 0 on success, -1 when the CPU lacks it.
int pk_set_cpu_tier(int tier);
/// 1 when PEFT_CPU names a tier this CPU lacks or a name that is no tier (the best tier runs instead).
int pk_cpu_env_refused(void);
/// "scalar", "avx2", "avx512", "neon".
const char *pk_cpu_tier_name(int tier);
/// The SIMD features found, e.g. "avx2 fma f16c avx-vnni".
const char *pk_cpu_features(void);
/// 1 when the active tier is AVX-512 / AVX2.
int pk_has_avx512(void);
int pk_has_avx2(void);
/// Integer dot products of the active tier: AVX512-VNNI, AVX-VNNI or NEON dotprod (unless switched off for tests).
int pk_has_vnni(void);
void pk_force_no_vnni(int on);
/// Tests only: on an AVX2 machine without AVX-VNNI, run the quantized products' VNNI bodies (unsigned levels, offsets
/// by activation sums) with vpdpbusd's exact meaning spelled in AVX2 instructions, so that they are checked here too.
void pk_force_emulated_vnni(int on);
int pk_emulated_vnni(void);
/// NEON i8mm (smmla) on the NEON tier.
int pk_has_i8mm(void);

// ---- conversions ------------------------------------------------------------------------------------
void pk_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/// Round to nearest even, NaN kept NaN (as torch does).
void pk_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void pk_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void pk_f32_to_f16(const float *src, uint16_t *dst, size_t n);

// ---- matrix-vector (decode) -------------------------------------------------------------------------
/// y[m, r] = sum_k x[m, k] * W[r, k] for r in [row_begin, row_end), m in [0, m_count).
/// W: [rows, k] f32 (ldw = k); x: [m_count, ldx]; y: [m_count, ldy]. Reads each weight row once for all m.
void pk_gemv_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                 size_t m_count, size_t row_begin, size_t row_end);

/// Small-M products with weights read once per 4 inputs: y[m, r] = sum_k x[m, k] * W[r, k] for
/// r in [row_begin, row_end), all m < m_count. Register tiles of weight rows x inputs.
void pk_gemm_small_f32(const float *w, size_t k, const float *x, size_t ldx, float *y, size_t ldy,
                       size_t m_count, size_t row_begin, size_t row_end);

/// Products of bf16 weights with bf16 inputs: y[m, r] = sum_k x[m, k] * W[r, k], f32 sums (vdpbf16ps where the CPU
/// has AVX512-BF16; elsewhere both operands widened, which is exact). An input's result is independent of m_count.
void pk_dot_bf16(const uint16_t *w, size_t k, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                 size_t m_count, size_t row_begin, size_t row_end);
/// The active tier is AVX-512 and the CPU has AVX512-BF16 (unless switched off for tests).
int pk_has_avx512bf16(void);
/// Tests: switches the bf16 dot-product instructions off, so an AVX512-BF16 machine runs the widening body that
/// AVX-512 CPUs without them (Skylake-X, Ice Lake, Zen 4 without BF16 enabled) run.
void pk_force_no_bf16_dot(int on);

// ---- GEMM --------------------------------------------------------------------------------------------
/// Built-in f32 GEMM over columns [col_begin, col_end) of C: C = alpha * op(A) op(B) (+ C when accumulate).
/// op(A) is [m, k] (A stored [k, m] when trans_a); op(B) is [k, n] (B stored [n, k] when trans_b).
void pk_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
              const float *b, size_t ldb, int accumulate, float *c, size_t ldc, size_t col_begin, size_t col_end);

/// oneDNN, loaded at run time (libdnnl.so.2, oneDNN 2.x) when present; nothing is linked at build time.
/// 1 when the library loaded and its version is supported.
int pk_dnnl_available(void);
/// A cached-by-caller matmul primitive for C[m, n] = alpha * op(A) op(B) (+ C), C f32; A and B are f32, or bf16
/// when bf16_inputs (f32 accumulation). NULL on failure.
void *pk_dnnl_matmul_create(size_t m, size_t n, size_t k, size_t lda, size_t ldb, size_t ldc, int trans_a,
                            int trans_b, float alpha, int accumulate, int bf16_inputs);
/// Runs a primitive from pk_dnnl_matmul_create. Returns 0 on success.
int pk_dnnl_matmul_execute(void *matmul, const void *a, const void *b, float *c);
void pk_dnnl_matmul_destroy(void *matmul);
/// "2.6.3" or "" when not loaded.
const char *pk_dnnl_version(void);

// ---- vector helpers ---------------------------------------------------------------------------------
float pk_dot(const float *a, const float *b, size_t n);
/// y += alpha * x
void pk_axpy(float alpha, const float *x, float *y, size_t n);
/// Sum of squares.
double pk_sumsq(const float *x, size_t n);

// ---- normalisation ----------------------------------------------------------------------------------
/// out[n, c] = x[n, c] * rstd[n] * w[c], rstd[n] = 1 / sqrt(mean(x^2) + eps). rstd may be NULL.
void pk_rmsnorm_forward(const float *x, const float *w, float *out, float *rstd, size_t n, size_t c, float eps);
/// dx[n, c] (+)= backward of the above given dout; dw[c] += sum_n dout * x * rstd (dw may be NULL).
void pk_rmsnorm_backward(const float *dout, const float *x, const float *w, const float *rstd,
                         float *dx, float *dw, size_t n, size_t c, int accumulate_dx);

// ---- rotary position embedding ------------------------------------------------------------------------
/// Rotates the first `rot` dimensions of each head of x[rows, heads * d] in place (rotate-half layout) by the angles
/// of position pos[r]: cos_table / sin_table are [positions, rot / 2]; sign -1 rotates back (the backward).
void pk_rope(float *x, size_t rows, size_t heads, size_t d, size_t rot, const int32_t *pos, const float *cos_table,
             const float *sin_table, float sign);

// ---- activations ------------------------------------------------------------------------------------
/// out = silu(gate) * up, elementwise over n.
void pk_swiglu_forward(const float *gate, const float *up, float *out, size_t n);
/// dgate, dup from dout (may alias nothing).
void pk_swiglu_backward(const float *dout, const float *gate, const float *up, float *dgate, float *dup, size_t n);
/// out = gelu_tanh(gate) * up (Gemma), and its backward.
void pk_geglu_forward(const float *gate, const float *up, float *out, size_t n);
void pk_geglu_backward(const float *dout, const float *gate, const float *up, float *dgate, float *dup, size_t n);
/// Soft-capping (Gemma 2's attention scores and logits): x = cap * tanh(x / cap) over n floats.
void pk_softcap(float *x, size_t n, float cap);
/// Its backward from the raw (uncapped) values: dy *= 1 - tanh(raw / cap)^2.
void pk_softcap_backward(float *dy, const float *raw, size_t n, float cap);
/// pk_rope on adjacent pairs (x[2i], x[2i+1]) instead of halves (GLM's interleaved rotary).
void pk_rope_pairs(float *x, size_t rows, size_t heads, size_t d, size_t rot, const int32_t *pos, const float *cos_table,
                   const float *sin_table, float sign);

// ---- softmax / loss -----------------------------------------------------------------------------------
/// In place softmax over row[lo..hi); entries outside set to 0. Returns logsumexp of row[lo..hi).
float pk_softmax_row(float *row, size_t lo, size_t hi, size_t n);
/// row[j] = exp(row[j] - lse) for j in [lo, hi), 0 elsewhere in [0, n): recomputes softmax from a saved lse.
void pk_exp_shifted_row(float *row, size_t lo, size_t hi, size_t n, float lse);
/// Softmax backward for one row: dp[j] = p[j] * (dp[j] - d), where d = sum_j p[j] dp[j] (given).
void pk_softmax_backward_row(const float *p, float *dp, size_t n, float d);
/// Returns logsumexp(row[0..n)) and writes the max index to *argmax (may be NULL).
float pk_logsumexp(const float *row, size_t n, int32_t *argmax);
/// row <- (softmax(row) - onehot(target)) * scale, given lse = logsumexp(row).
void pk_softmax_xent_grad(float *row, size_t n, float lse, int32_t target, float scale);
/// Distillation's generalized Jensen-Shannon divergence of one row (TRL's generalized_jsd_loss): s = softmax(zs *
/// inv_t), t = softmax(zt * inv_t), m = (1 - beta) s + beta t; beta 0: KL(t || s), beta 1: KL(s || t), otherwise
/// beta KL(t || m) + (1 - beta) KL(s || m). Returns it (summed in double); when grad is not NULL, writes its
/// derivative in zs there. scratch holds 2n floats.
double pk_gjsd_row(const float *zs, const float *zt, size_t n, float beta, float inv_t, float *grad, float *scratch);

// ---- dropout ----------------------------------------------------------------------------------------
/// Counter-based dropout: element i is dropped when the i-th 16-bit draw of the stream `key` is below
/// p * 65536. out[i] = dropped ? 0 : x[i] * scale. A pure function of (key, i): backward regenerates the mask.
void pk_dropout(const float *x, float *out, size_t n, uint64_t key, float p, float scale, size_t offset);
/// dx[i] += dropped(i) ? 0 : g[i] * scale, with the mask of pk_dropout(key, p).
void pk_dropout_backward_add(const float *g, float *dx, size_t n, uint64_t key, float p, float scale, size_t offset);

// ---- optimiser --------------------------------------------------------------------------------------
/// AdamW (decoupled weight decay, PyTorch's formulation): p -= lr * wd * p; m,v updated;
/// p -= lr / bc1 * m / (sqrt(v) / bc2_sqrt + eps), with bc1 = 1 - beta1^t and bc2_sqrt = sqrt(1 - beta2^t).
void pk_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
              float eps, float weight_decay, float bc1, float bc2_sqrt);

#ifdef __cplusplus
}
#endif
/// Runs fn(ctx, c) for c in [0, chunks) on `threads` threads (the caller and persistent workers that spin briefly
/// between jobs); nested calls and calls while another job runs execute inline.
typedef void (*pk_task_fn)(void *ctx, size_t chunk);
void pk_pool_run(int threads, size_t chunks, pk_task_fn fn, void *ctx);

/// SHA-256, streaming.
typedef struct { uint32_t h[8]; uint64_t length; uint8_t buffer[64]; size_t used; } pk_sha256;
void pk_sha256_init(pk_sha256 *s);
void pk_sha256_update(pk_sha256 *s, const uint8_t *data, size_t n);
void pk_sha256_final(pk_sha256 *s, uint8_t out[32]);

/// Open MPI loaded at run time (mpi_loader.c). pk_mpi_launched: the world size mpirun announced (0: not launched).
int pk_mpi_launched(void);
int pk_mpi_init(void);
const char *pk_mpi_error(void);
int pk_mpi_rank(void);
int pk_mpi_size(void);
/// In-place sums over all ranks; 0 on success.
int pk_mpi_allreduce_f32(float *buf, size_t count);
int pk_mpi_allreduce_f64(double *buf, size_t count);
int pk_mpi_barrier(void);
void pk_mpi_abort(int code);
void pk_mpi_finalize(void);

/// GGML block formats (see quant.c): q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl (32 weights a block), q2_k, q3_k, q4_k,
/// q5_k, q6_k, iq4_xs (256 a super-block).
// GGML type ids.
enum {
    PK_Q4_0 = 2, PK_Q4_1 = 3, PK_Q5_0 = 6, PK_Q5_1 = 7, PK_Q8_0 = 8, PK_Q2_K = 10, PK_Q3_K = 11, PK_Q4_K = 12,
    PK_Q5_K = 13, PK_Q6_K = 14, PK_IQ4_NL = 20, PK_IQ4_XS = 23
};
size_t pk_quant_block_size(int type);
size_t pk_quant_block_bytes(int type);
/// Quantizes nblocks blocks of x (GGML's reference rounding) into out.
void pk_quantize(int type, const float *x, uint8_t *out, size_t nblocks);
/// As llama.cpp's llama_model_quantize without an importance matrix: pk_quantize, except iq4_nl, which searches
/// 7 scales each way there (its reference row quantizer none).
void pk_quantize_for_file(int type, const float *x, uint8_t *out, size_t nblocks);
void pk_dequantize(int type, const uint8_t *blocks, float *out, size_t nblocks);
/// Quantized matrices in memory: groups of 8 rows, block column by block column (quant_packed.c); rows padded to 8.
size_t pk_packed_block_bytes(int type);
size_t pk_packed_bytes(int type, size_t rows, size_t k);
/// Packs 8 rows of GGML blocks (k weights each; a NULL row is padding) into one group.
void pk_pack_group(int type, const uint8_t *const rows[8], size_t k, uint8_t *out);
/// Row r (0..7) of a packed group back as GGML blocks, bit for bit.
void pk_unpack_row(int type, const uint8_t *group, size_t k, int r, uint8_t *out);
/// Rows [r0, r1) of a packed matrix as f32 / bf16, row-major [r1 - r0, k].
void pk_packed_dequantize(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, float *out);
void pk_packed_dequantize_bf16(int type, const uint8_t *w, size_t k, size_t r0, size_t r1, uint16_t *out);

/// 8-bit activations: x[k] as int8 per block of 32 (scale dx, f16-rounded as llama.cpp; sum sx).
void pk_quantize_activations(const float *x, size_t k, int8_t *qx, float *dx, int32_t *sx);
/// The activations a format's products take: pk_quantize_activations, except for the 256-weight formats kept row by
/// row (q2_k, q3_k, q5_k, q6_k, iq4_xs), whose products need one scale per 256 (as llama.cpp's q8_K), written in
/// dx for each of the 8 blocks of 32 it covers.
void pk_quantize_activations_for(int type, const float *x, size_t k, int8_t *qx, float *dx, int32_t *sx);
/// y[m, r] = dot(row r of the packed W [rows, k], x_m) for the rows of groups [g0, g1), all m < m_count, from
/// quantized activations qx[m, k], dx[m, k/32], sx[m, k/32]; integer dot products (VNNI where present).
void pk_packed_gemv_q8x(int type, const uint8_t *w, size_t rows, size_t k, const int8_t *qx, const float *dx,
                        const int32_t *sx, float *y, size_t ldy, size_t m_count, size_t g0, size_t g1);

#endif
