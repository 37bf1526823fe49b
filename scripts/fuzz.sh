#!/usr/bin/env bash
# Fuzzes every reader of other people's files and bytes with libFuzzer + AddressSanitizer (FuzzTesting/).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s for each of the 11 targets
#
# Each target starts from its seeds (FuzzTesting/Corpus/<target>, kept in git) plus what earlier runs found
# (.build-fuzz/corpus/<target>, not kept), with its dictionary when there is one, a 5 s limit per input, and 2 GB
# for the process and for any one allocation. A finding (crash, trap, timeout, out-of-memory) is written to
# FuzzTesting/FailCases/<target>/ and the script exits non-zero; once fixed, keep the file: `swift test` replays every
# file there (FuzzReplayTests). The summary gives executions, coverage and findings per target.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-60}
shift || true
all=(FuzzSafetensors FuzzGGUF FuzzConfig FuzzTokenizerJSON FuzzSentencePiece FuzzJSON FuzzJinja FuzzDataset FuzzAdapter
     FuzzOpenAIRequest FuzzHubResponse)
targets=("${@:-${all[@]}}")

flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
(cd FuzzTesting && swift build "${flags[@]}") || { echo "fuzz build failed"; exit 2; }
bin=$(cd FuzzTesting && swift build "${flags[@]}" --show-bin-path)

# The Swift objects must carry libFuzzer's coverage counters, or the run is blind.
sections=$(objdump -h "$bin/FuzzTargets.build/FuzzTargets.swift.o" 2>/dev/null | grep -c sancov)
if [ "${sections:-0}" -eq 0 ]; then
    echo "warning: FuzzTargets.swift.o has no __sancov sections: the Swift code is not instrumented" >&2
fi

export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:handle_abort=1
export PEFT_ROOT="$root"
mkdir -p .build-fuzz/logs
status=0
printf '%-20s %12s %8s %8s %s\n' target executions cov ft findings > .build-fuzz/summary.txt
for t in "${targets[@]}"; do
    corpus=.build-fuzz/corpus/$t
    mkdir -p "$corpus" "FuzzTesting/FailCases/$t"
    dict=()
    [ -f "FuzzTesting/Dictionaries/$t.dict" ] && dict=(-dict="FuzzTesting/Dictionaries/$t.dict")
    before=$(ls "FuzzTesting/FailCases/$t" | wc -l)
    log=.build-fuzz/logs/$t.log
    "$bin/$t" "$corpus" "FuzzTesting/Corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=5 \
        -rss_limit_mb=2048 -malloc_limit_mb=2048 -artifact_prefix="FuzzTesting/FailCases/$t/" \
        -print_final_stats=1 > "$log" 2>&1
    rc=$?
    after=$(ls "FuzzTesting/FailCases/$t" | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    found=$((after - before))
    printf '%-20s %12s %8s %8s %s\n' "$t" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$found" | tee -a .build-fuzz/summary.txt
    if [ $rc -ne 0 ] || [ $found -gt 0 ]; then
        status=1
        echo "  $t: exit $rc; see $log" >&2
        grep -m3 -E 'ERROR|Fatal error|SUMMARY|timeout|out-of-memory' "$log" >&2 || true
    fi
done
cat .build-fuzz/summary.txt
exit $status
