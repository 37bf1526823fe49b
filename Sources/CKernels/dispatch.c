// The CPU tier, chosen once at run time in this one place: scalar; x86-64 AVX2 + FMA + F16C (AVX-VNNI where
// present); AVX-512 F/BW/VL/DQ (+ VNNI, + BF16); ARM64 NEON (+ dotprod, i8mm, bf16). PEFT_CPU names a lower tier to
// force; tests switch tiers with pk_set_cpu_tier. Every kernel asks pk_tier() which body to run.
#include "CKernels.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

typedef struct {
    int avx2, avx512, avx512vnni, avx512bf16, avxvnni;   // x86-64
    int neon, dotprod, i8mm, bf16;                      // ARM64
} pk_features;

static pk_features features;
static int detected = 0;
static int best_tier = PK_TIER_SCALAR;
static int active_tier = -1;
static int env_refused = 0;
static int forced_no_vnni = 0;

static void detect(void) {
    if (detected) return;
    memset(&features, 0, sizeof features);
#if PK_X86
    __builtin_cpu_init();
    features.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    features.avx512 = features.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    features.avx512vnni = features.avx512 && __builtin_cpu_supports("avx512vnni");
    features.avx512bf16 = features.avx512 && __builtin_cpu_supports("avx512bf16");
    // AVX-VNNI (VEX-coded vpdpbusd): CPUID leaf 7 subleaf 1, EAX bit 4.
    {
        unsigned a = 0, b = 0, c = 0, d = 0;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
        features.avxvnni = features.avx2 && ((a >> 4) & 1);
    }
    best_tier = features.avx512 ? PK_TIER_AVX512 : features.avx2 ? PK_TIER_AVX2 : PK_TIER_SCALAR;
#elif PK_ARM64
    features.neon = 1;   // Advanced SIMD is part of every ARMv8-A
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    features.dotprod = (hw >> 20) & 1;   // HWCAP_ASIMDDP
    features.i8mm = (hw2 >> 13) & 1;     // HWCAP2_I8MM
    features.bf16 = (hw2 >> 14) & 1;     // HWCAP2_BF16
#elif defined(__APPLE__)
    features.dotprod = 1;                // every Apple Silicon core
#endif
    best_tier = PK_TIER_NEON;
#endif
    detected = 1;
}

static int tier_from_name(const char *s) {
    if (!s || !*s) return -1;
    if (!strcmp(s, "scalar")) return PK_TIER_SCALAR;
    if (!strcmp(s, "avx2")) return PK_TIER_AVX2;
    if (!strcmp(s, "avx512")) return PK_TIER_AVX512;
    if (!strcmp(s, "neon")) return PK_TIER_NEON;
    return -2;
}

int pk_tier_available(int tier) {
    detect();
    switch (tier) {
    case PK_TIER_SCALAR: return 1;
    case PK_TIER_AVX2: return features.avx2;
    case PK_TIER_AVX512: return features.avx512;
    case PK_TIER_NEON: return features.neon;
    default: return 0;
    }
}

int pk_tier(void) {
    int t = active_tier;
    if (t >= 0) return t;
    detect();
    t = best_tier;
    const int wanted = tier_from_name(getenv("PEFT_CPU"));
    if (wanted >= 0 && pk_tier_available(wanted)) t = wanted;
    else if (wanted != -1) env_refused = 1;
    active_tier = t;
    return t;
}

int pk_cpu_best_tier(void) {
    detect();
    return best_tier;
}

int pk_set_cpu_tier(int tier) {
    if (!pk_tier_available(tier)) return -1;
    active_tier = tier;
    return 0;
}

int pk_cpu_env_refused(void) {
    (void)pk_tier();
    return env_refused;
}

const char *pk_cpu_tier_name(int tier) {
    switch (tier) {
    case PK_TIER_AVX2: return "avx2";
    case PK_TIER_AVX512: return "avx512";
    case PK_TIER_NEON: return "neon";
    default: return "scalar";
    }
}

const char *pk_cpu_features(void) {
    static char text[128];
    detect();
    text[0] = 0;
#define ADD(flag, name) if (flag) { if (text[0]) strcat(text, " "); strcat(text, name); }
    ADD(features.avx2, "avx2 fma f16c")
    ADD(features.avxvnni, "avx-vnni")
    ADD(features.avx512, "avx512f/bw/vl/dq")
    ADD(features.avx512vnni, "avx512-vnni")
    ADD(features.avx512bf16, "avx512-bf16")
    ADD(features.neon, "neon")
    ADD(features.dotprod, "dotprod")
    ADD(features.i8mm, "i8mm")
    ADD(features.bf16, "bf16")
#undef ADD
    return text;
}

int pk_has_avx512(void) { return pk_tier() == PK_TIER_AVX512; }
int pk_has_avx2(void) { return pk_tier() == PK_TIER_AVX2; }

int pk_has_vnni(void) {
    const int t = pk_tier();
    if (forced_no_vnni) return 0;
    if (t == PK_TIER_AVX512) return features.avx512vnni;
    if (t == PK_TIER_AVX2) return features.avxvnni;
    if (t == PK_TIER_NEON) return features.dotprod;
    return 0;
}

void pk_force_no_vnni(int on) { forced_no_vnni = on; }

static int emulated_vnni;
void pk_force_emulated_vnni(int on) { emulated_vnni = on; }
int pk_emulated_vnni(void) { return emulated_vnni && pk_tier() == PK_TIER_AVX2 && !features.avxvnni; }

static int forced_no_bf16 = 0;
void pk_force_no_bf16_dot(int on) { forced_no_bf16 = on; }

int pk_has_avx512bf16(void) { return pk_tier() == PK_TIER_AVX512 && features.avx512bf16 && !forced_no_bf16; }

int pk_has_i8mm(void) { return pk_tier() == PK_TIER_NEON && features.i8mm && !forced_no_vnni; }
