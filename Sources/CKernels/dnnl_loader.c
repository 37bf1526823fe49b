// oneDNN's matmul primitive, loaded with dlopen so the build needs no oneDNN headers and the binary runs (with the
// built-in GEMM) where oneDNN is absent. Only pointers to oneDNN structs cross this boundary; the structs
// themselves live in opaque, generously sized buffers. Targets the oneDNN 2.x C API (Debian bookworm: 2.6).
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "CKernels.h"

typedef int st_t;                                   // dnnl_status_t; 0 = success
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; } version_t;
typedef struct { int arg; void *memory; } exec_arg_t;
enum { DT_BF16 = 2, DT_F32 = 3, ENGINE_CPU = 1, STREAM_IN_ORDER = 1, ARG_SRC = 1, ARG_DST = 17, ARG_WEIGHTS = 33 };
enum { MD_BYTES = 2048, OP_DESC_BYTES = 8192 };     // sizeof in 2.6: 696 and 2800

static struct {
    st_t (*engine_create)(void **, int, size_t);
    st_t (*stream_create)(void **, void *, unsigned);
    st_t (*stream_wait)(void *);
    st_t (*md_init_by_strides)(void *, int, const int64_t *, int, const int64_t *);
    st_t (*matmul_desc_init)(void *, const void *, const void *, const void *, const void *);
    st_t (*attr_create)(void **);
    st_t (*attr_destroy)(void *);
    st_t (*attr_set_output_scales)(void *, int64_t, int, const float *);
    st_t (*attr_set_post_ops)(void *, const void *);
    st_t (*post_ops_create)(void **);
    st_t (*post_ops_append_sum)(void *, float);
    st_t (*post_ops_destroy)(void *);
    st_t (*pd_create)(void **, const void *, const void *, void *, const void *);
    st_t (*pd_destroy)(void *);
    st_t (*primitive_create)(void **, const void *);
    st_t (*primitive_destroy)(void *);
    st_t (*primitive_execute)(const void *, void *, int, const exec_arg_t *);
    st_t (*memory_create)(void **, const void *, void *, void *);
    st_t (*memory_set_data_handle)(void *, void *);
    st_t (*memory_destroy)(void *);
    const version_t *(*version)(void);
    void *engine, *stream;
    int ready;
    char version_text[32];
} dnnl;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    if (getenv("PEFT_NO_ONEDNN")) return;
    // oneDNN runs on OpenMP; short spin-waits between GEMMs leave the cores to the engine's own threads for
    // the elementwise work in between (measured +6% training throughput). A user setting wins.
    setenv("GOMP_SPINCOUNT", "1000", 0);
    void *lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
#define SYM(field, name) if (!(*(void **)&dnnl.field = dlsym(lib, name))) return
    SYM(engine_create, "dnnl_engine_create");
    SYM(stream_create, "dnnl_stream_create");
    SYM(stream_wait, "dnnl_stream_wait");
    SYM(md_init_by_strides, "dnnl_memory_desc_init_by_strides");
    SYM(matmul_desc_init, "dnnl_matmul_desc_init");
    SYM(attr_create, "dnnl_primitive_attr_create");
    SYM(attr_destroy, "dnnl_primitive_attr_destroy");
    SYM(attr_set_output_scales, "dnnl_primitive_attr_set_output_scales");
    SYM(attr_set_post_ops, "dnnl_primitive_attr_set_post_ops");
    SYM(post_ops_create, "dnnl_post_ops_create");
    SYM(post_ops_append_sum, "dnnl_post_ops_append_sum");
    SYM(post_ops_destroy, "dnnl_post_ops_destroy");
    SYM(pd_create, "dnnl_primitive_desc_create");
    SYM(pd_destroy, "dnnl_primitive_desc_destroy");
    SYM(primitive_create, "dnnl_primitive_create");
    SYM(primitive_destroy, "dnnl_primitive_destroy");
    SYM(primitive_execute, "dnnl_primitive_execute");
    SYM(memory_create, "dnnl_memory_create");
    SYM(memory_set_data_handle, "dnnl_memory_set_data_handle");
    SYM(memory_destroy, "dnnl_memory_destroy");
    SYM(version, "dnnl_version");
#undef SYM
    const version_t *v = dnnl.version();
    if (!v || v->major != 2) return;
    if (dnnl.engine_create(&dnnl.engine, ENGINE_CPU, 0) != 0) return;
    if (dnnl.stream_create(&dnnl.stream, dnnl.engine, STREAM_IN_ORDER) != 0) return;
    snprintf(dnnl.version_text, sizeof dnnl.version_text, "%d.%d.%d", v->major, v->minor, v->patch);
    dnnl.ready = 1;
}

int pk_dnnl_available(void) {
    pthread_once(&once, load);
    return dnnl.ready;
}

const char *pk_dnnl_version(void) { return pk_dnnl_available() ? dnnl.version_text : ""; }

typedef struct { void *primitive, *a, *b, *c; } matmul_t;

static int desc(void *md, size_t rows, size_t cols, size_t ld, int transposed, int dtype) {
    int64_t dims[12] = {(int64_t)rows, (int64_t)cols}, strides[12] = {0};
    if (transposed) { strides[0] = 1; strides[1] = (int64_t)ld; } else { strides[0] = (int64_t)ld; strides[1] = 1; }
    return dnnl.md_init_by_strides(md, 2, dims, dtype, strides);
}

void *pk_dnnl_matmul_create(size_t m, size_t n, size_t k, size_t lda, size_t ldb, size_t ldc, int trans_a,
                            int trans_b, float alpha, int accumulate, int bf16_inputs) {
    int in = bf16_inputs ? DT_BF16 : DT_F32;
    if (!pk_dnnl_available()) return NULL;
    _Alignas(64) unsigned char src[MD_BYTES], wei[MD_BYTES], dst[MD_BYTES];
    unsigned char *op = aligned_alloc(64, OP_DESC_BYTES);
    if (!op) return NULL;
    memset(src, 0, sizeof src); memset(wei, 0, sizeof wei); memset(dst, 0, sizeof dst); memset(op, 0, OP_DESC_BYTES);
    matmul_t *mm = calloc(1, sizeof *mm);
    void *attr = NULL, *post = NULL, *pd = NULL;
    int ok = mm && desc(src, m, k, lda, trans_a, in) == 0 && desc(wei, k, n, ldb, trans_b, in) == 0 &&
             desc(dst, m, n, ldc, 0, DT_F32) == 0 && dnnl.matmul_desc_init(op, src, wei, NULL, dst) == 0 &&
             dnnl.attr_create(&attr) == 0;
    if (ok && alpha != 1.0f) ok = dnnl.attr_set_output_scales(attr, 1, 0, &alpha) == 0;
    if (ok && accumulate) {
        ok = dnnl.post_ops_create(&post) == 0 && dnnl.post_ops_append_sum(post, 1.0f) == 0 &&
             dnnl.attr_set_post_ops(attr, post) == 0;
    }
    ok = ok && dnnl.pd_create(&pd, op, attr, dnnl.engine, NULL) == 0 && dnnl.primitive_create(&mm->primitive, pd) == 0 &&
         dnnl.memory_create(&mm->a, src, dnnl.engine, NULL) == 0 &&
         dnnl.memory_create(&mm->b, wei, dnnl.engine, NULL) == 0 &&
         dnnl.memory_create(&mm->c, dst, dnnl.engine, NULL) == 0;
    if (post) dnnl.post_ops_destroy(post);
    if (attr) dnnl.attr_destroy(attr);
    if (pd) dnnl.pd_destroy(pd);
    free(op);
    if (!ok) { pk_dnnl_matmul_destroy(mm); return NULL; }
    return mm;
}

int pk_dnnl_matmul_execute(void *handle, const void *a, const void *b, float *c) {
    matmul_t *mm = handle;
    if (dnnl.memory_set_data_handle(mm->a, (void *)a) || dnnl.memory_set_data_handle(mm->b, (void *)b) ||
        dnnl.memory_set_data_handle(mm->c, c))
        return 1;
    exec_arg_t args[3] = {{ARG_SRC, mm->a}, {ARG_WEIGHTS, mm->b}, {ARG_DST, mm->c}};
    if (dnnl.primitive_execute(mm->primitive, dnnl.stream, 3, args)) return 1;
    return dnnl.stream_wait(dnnl.stream);
}

void pk_dnnl_matmul_destroy(void *handle) {
    matmul_t *mm = handle;
    if (!mm) return;
    if (mm->a) dnnl.memory_destroy(mm->a);
    if (mm->b) dnnl.memory_destroy(mm->b);
    if (mm->c) dnnl.memory_destroy(mm->c);
    if (mm->primitive) dnnl.primitive_destroy(mm->primitive);
    free(mm);
}
