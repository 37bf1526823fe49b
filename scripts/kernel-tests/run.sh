#!/usr/bin/env bash
# Builds kernel_tests.c with the C kernels (Sources/CKernels) and runs it on every CPU tier there is.
#
#   scripts/kernel-tests/run.sh [native]   cc (clang or gcc): this machine's tiers, then once with PEFT_CPU=scalar
#   scripts/kernel-tests/run.sh sanitized  the same under AddressSanitizer and UndefinedBehaviorSanitizer
#   scripts/kernel-tests/run.sh aarch64    aarch64-linux-gnu-gcc -static, run under qemu-aarch64 as a core without
#                                           dotprod (cortex-a57: the widening integer path), as one with dotprod,
#                                           i8mm and bf16 (max: the SDOT path), and once with PEFT_CPU=scalar
#
# Build output goes to .build-kernel-tests/<mode>/ (ignored by .gitignore's .build-*/). Exits non-zero when the
# build or any run fails, after naming the runs that failed. Overrides: CC (native compiler), AARCH64_CC, QEMU.
set -u
cd "$(dirname "$0")/../.." || exit 2

mode=${1:-native}
out=.build-kernel-tests/$mode
mkdir -p "$out"

# The kernels without the run-time loaders of oneDNN and Open MPI and the thread pool (none of them kernels).
sources=()
for f in Sources/CKernels/*.c; do
    case "$(basename "$f")" in
    dnnl_loader.c | mpi_loader.c | pool.c) ;;
    *) sources+=("$f") ;;
    esac
done
flags=(-O2 -std=c11 -fno-math-errno -ffp-contract=off -I Sources/CKernels/include -I Sources/CKernels)

failed=()
run() {   # run NAME COMMAND...: runs one configuration, echoing its output, and records a failure by name
    local name=$1
    shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@"
    local rc=$?
    echo "=== $name: exit $rc ($((SECONDS - start)) s)"
    [ $rc -eq 0 ] || failed+=("$name (exit $rc)")
}

case "$mode" in
native)
    cc=${CC:-cc}
    echo "building with $($cc --version | head -1)"
    "$cc" "${flags[@]}" scripts/kernel-tests/kernel_tests.c "${sources[@]}" -o "$out/kernel_tests" -lm || exit 1
    run "native" "$out/kernel_tests"
    run "native PEFT_CPU=scalar" env PEFT_CPU=scalar "$out/kernel_tests"
    ;;
sanitized)
    # AddressSanitizer and UndefinedBehaviorSanitizer (any finding aborts), on this machine's tiers and the scalar one.
    cc=${CC:-cc}
    echo "building with $($cc --version | head -1), -fsanitize=address,undefined"
    "$cc" "${flags[@]/-O2/-O1}" -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        scripts/kernel-tests/kernel_tests.c "${sources[@]}" -o "$out/kernel_tests" -lm || exit 1
    run "sanitized" env ASAN_OPTIONS=detect_leaks=0 "$out/kernel_tests"
    run "sanitized PEFT_CPU=scalar" env ASAN_OPTIONS=detect_leaks=0 PEFT_CPU=scalar "$out/kernel_tests"
    ;;
aarch64)
    cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
    qemu=${QEMU:-qemu-aarch64}
    for tool in "$cc" "$qemu"; do
        command -v "$tool" >/dev/null || {
            echo "$tool not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)"
            exit 2
        }
    done
    echo "building with $($cc --version | head -1)"
    "$cc" "${flags[@]}" -march=armv8-a -static scripts/kernel-tests/kernel_tests.c "${sources[@]}" \
        -o "$out/kernel_tests" -lm || exit 1
    run "qemu cortex-a57 (no dotprod)" "$qemu" -cpu cortex-a57 "$out/kernel_tests"
    run "qemu max (dotprod, i8mm, bf16)" "$qemu" -cpu max "$out/kernel_tests"
    run "qemu max PEFT_CPU=scalar" env PEFT_CPU=scalar "$qemu" -cpu max "$out/kernel_tests"
    ;;
*)
    echo "usage: $0 [native|sanitized|aarch64]"
    exit 2
    ;;
esac

if [ ${#failed[@]} -gt 0 ]; then
    echo "kernel tests FAILED in: ${failed[*]}"
    exit 1
fi
echo "kernel tests passed ($mode)"
