#!/usr/bin/env bash
# Runs the libFuzzer targets (built by `make fuzz-build` into bin/fuzz/) for a bounded time each.
#   scripts/fuzz.sh [target...]      default: every bin/fuzz/* binary
# Environment:
#   FUZZ_SECONDS   time per target (default 20; make check uses the default, `make fuzz FUZZ_SECONDS=600`)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_MERGE=1   afterwards, merge the inputs that found new coverage into test/fuzz/corpus/<target>
#   FUZZ_CORPUS    another folder of <target>/ corpora to start from (default test/fuzz/corpus)
# Each target runs on a copy of test/fuzz/corpus/<target> (so a run never grows the committed
# corpus), with test/fuzz/<target>.dict when there is one. Any crash, leak, sanitizer report,
# timeout or out-of-memory fails the run; the input is kept in build/fuzz/artifacts/<target>/ and
# belongs in test/fuzz/corpus/<target>/ as a regression input once the bug is fixed.
# Builds nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

seconds=${FUZZ_SECONDS:-20}
timeout=${FUZZ_TIMEOUT:-10}
bindir=$repo/bin/fuzz
corpus_root=${FUZZ_CORPUS:-$repo/test/fuzz/corpus}
artifacts_root=$repo/build/fuzz/artifacts

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$bindir"/*; do [ -x "$f" ] && targets+=("$(basename "$f")"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $bindir (run make fuzz-build)" >&2; exit 1; }

work=$(mktemp -d /tmp/splitpool-fuzz-run.XXXXXX)
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
start_all=$SECONDS
for t in "${targets[@]}"; do
    bin=$bindir/$t
    [ -x "$bin" ] || { echo "fuzz: $bin is missing (run make fuzz-build)" >&2; failed+=("$t"); continue; }
    corpus=$work/$t
    mkdir -p "$corpus" "$artifacts_root/$t"
    if [ -d "$corpus_root/$t" ]; then cp -R "$corpus_root/$t/." "$corpus/"; fi
    args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -detect_leaks=1
          -print_final_stats=1 -artifact_prefix="$artifacts_root/$t/")
    dict=$repo/test/fuzz/$t.dict
    [ -f "$dict" ] && args+=(-dict="$dict")
    log=$work/$t.log
    echo "fuzz: $t for ${seconds}s (corpus: $(find "$corpus" -type f | wc -l) inputs)"
    rc=0
    # libFuzzer and the sanitizers write to stderr; keep it for the report.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
    # A sanitizer report that did not end the process still fails the run.
    if [ "$rc" = 0 ] && grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: (Address|Leak|Undefined)Sanitizer' "$log"; then
        rc=99
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    done_line=$(grep -E '^Done [0-9]+ runs in' "$log" | tail -n 1 || true)
    cov=$(grep -E '#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' || true)
    if [ "$rc" != 0 ]; then
        failed+=("$t")
        echo "fuzz: $t FAILED (exit $rc); the end of its log:" >&2
        tail -n 60 "$log" >&2
        echo "fuzz: crashing inputs are kept in $artifacts_root/$t/" >&2
        summary+=("$(printf '%-12s FAILED (exit %s)' "$t" "$rc")")
        continue
    fi
    summary+=("$(printf '%-12s %10s execs  %7s exec/s  %s' "$t" "${runs:-?}" "${eps:-?}" "$cov")")
    echo "fuzz: $t: ${done_line:-no final stats}${eps:+, $eps exec/s}"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        mkdir -p "$corpus_root/$t"
        "$bin" -merge=1 -timeout="$timeout" -rss_limit_mb=2048 "$corpus_root/$t" "$corpus" >"$work/$t.merge.log" 2>&1 ||
            { echo "fuzz: merging into $corpus_root/$t failed" >&2; tail -n 20 "$work/$t.merge.log" >&2; failed+=("$t"); }
    fi
done

echo "fuzz: summary ($((SECONDS - start_all))s in all)"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
