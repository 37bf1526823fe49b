#include "CKernels.h"
#include "internal.h"

static int forced_scalar = 0;
static int avx512_state = -1;

int pk_has_avx512(void) {
    if (avx512_state < 0) {
        __builtin_cpu_init();
        avx512_state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl");
    }
    return avx512_state && !forced_scalar;
}

void pk_force_scalar(int on) { forced_scalar = on; }

static int forced_no_vnni = 0;
static int vnni_state = -1;

int pk_has_vnni(void) {
    if (vnni_state < 0) {
        __builtin_cpu_init();
        vnni_state = __builtin_cpu_supports("avx512vnni");
    }
    return pk_has_avx512() && vnni_state && !forced_no_vnni;
}

void pk_force_no_vnni(int on) { forced_no_vnni = on; }

static int bf16_state = -1;

int pk_has_avx512bf16(void) {
    if (bf16_state < 0) {
        __builtin_cpu_init();
        bf16_state = __builtin_cpu_supports("avx512bf16");
    }
    return pk_has_avx512() && bf16_state;
}
