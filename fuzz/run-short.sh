#!/usr/bin/env bash
# Builds every fuzz target and runs each for about SECONDS (default 40), one after the other.
# A target passes when libFuzzer ends its time without a crash, a timeout or an out-of-memory;
# a failing input is saved under fuzz/artifacts/TARGET/ (replay it: see docs/reliability.md).
# Closing line, counted by tests/setup-and-run.sh: `fuzz: N passed, M failed`.
#
# Built without a sanitizer (safe Rust: the bugs are panics, which libFuzzer catches as crashes)
# but with debug assertions and overflow checks, so an overflow is a crash here too.
# Usage: fuzz/run-short.sh [SECONDS] [--build-only | --no-build]
#   --build-only  build the targets and stop (tests/setup-and-run.sh builds them in the background
#                 while the Rust tests run); --no-build  run targets built before.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-40}"
stage="${2:-}"
case "$stage" in
"" | --build-only | --no-build) ;;
*)
    echo "usage: fuzz/run-short.sh [SECONDS] [--build-only | --no-build]" >&2
    exit 2
    ;;
esac
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; this lets the stable toolchain take them
export CARGO_TERM_COLOR=never
FUZZ_FLAGS=(--sanitizer none)
root="$PWD/fuzz"
logs="$PWD/target/fuzz-logs"
mkdir -p "$logs"

# The dictionary each target mutates with.
dictionary() {
    case "$1" in
    ingest_body | agent_json) echo "$root/dict/json.dict" ;;
    agent_nginx) echo "$root/dict/nginx.dict" ;;
    config) echo "$root/dict/toml.dict" ;;
    netlink) echo "$root/dict/netlink.dict" ;;
    esac
}

if [ "$stage" != --no-build ]; then
    started=$(date +%s)
    if ! cargo fuzz build "${FUZZ_FLAGS[@]}" >"$logs/build.log" 2>&1; then
        tail -n 40 "$logs/build.log"
        echo "fuzz: 0 passed, 1 failed (the fuzz targets did not build; log: $logs/build.log)"
        exit 1
    fi
    echo "fuzz targets built in $(($(date +%s) - started)) s"
    [ "$stage" = --build-only ] && exit 0
fi

passed=0
failed=0
for target in $(cargo fuzz list); do
    corpus="$root/corpus/$target"
    mkdir -p "$corpus"
    log="$logs/$target.log"
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "$corpus" "$root/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
        -dict="$(dictionary "$target")" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log")
        echo "fuzz target $target: ok, ${runs:-?} runs in ${seconds} s"
        passed=$((passed + 1))
    else
        echo "fuzz target $target: FAILED (log: $log)"
        grep -E "^(==[0-9]+== ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)" "$log" | head -n 10
        tail -n 20 "$log"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
