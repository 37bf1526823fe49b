#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and under ThreadSanitizer (each in its own scratch folder), and the C
# kernels under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   bash scripts/sanitize.sh [address|thread|kernels|all]     # default: all
#
# XCTest itself leaks, so leak detection is off; everything else an ASan/TSan/UBSan report is a failure (the run
# exits non-zero). Under TSan the command-line tests run an ordinary debug `peft` (PEFT_TEST_EXECUTABLE): the library,
# kernels and server in the test process are instrumented, the children are not. Times on 2 cores: kernels about
# 1 minute, each Swift suite a fresh build (10-20 minutes), then its tests (ASan about 3x, TSan about 2x the plain run).
set -uo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
status=0
run() {
    local name=$1
    shift
    echo "=== $name"
    local start=$SECONDS
    "$@"
    local rc=$?
    echo "=== $name: exit $rc ($((SECONDS - start)) s)"
    [ $rc -eq 0 ] || status=1
}
if [ "$which" = kernels ] || [ "$which" = all ]; then
    run "C kernels, ASan + UBSan" bash scripts/kernel-tests/run.sh sanitized
fi
if [ "$which" = address ] || [ "$which" = all ]; then
    run "swift test, AddressSanitizer" env ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no \
        swift test --sanitize=address --scratch-path .build-asan
fi
if [ "$which" = thread ] || [ "$which" = all ]; then
    # The library and the server run in-process under TSan; the command-line tests' `peft` children come from the
    # ordinary debug build (a TSan-built child trains 20-50 times slower and the suite would not end in hours).
    run "peft for the command-line tests" swift build --product peft
    run "swift test, ThreadSanitizer" env TSAN_OPTIONS=halt_on_error=1 SWIFT_BACKTRACE=enable=no \
        PEFT_TEST_EXECUTABLE="$(swift build --show-bin-path)/peft" \
        swift test --sanitize=thread --scratch-path .build-tsan
fi
exit $status
