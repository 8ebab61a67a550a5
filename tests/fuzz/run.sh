#!/usr/bin/env bash
# run.sh: builds the libFuzzer harnesses with Debian's clang-19 (ASan +
# UBSan) in build-fuzz/ and runs each for a bounded time on its seed corpus.
# New inputs go to build-fuzz/corpus/<harness>/ (the committed seeds in
# tests/fuzz/corpus/ are only read); a crash leaves
# build-fuzz/crashes/<harness>-crash-* and fails the run. Copy such a file
# into tests/fuzz/corpus/<harness>/ once fixed: the replay tests keep it.
#   MORC_FUZZ_SECONDS   seconds per harness (default 30)
#   MORC_FUZZ_ONLY      run only these harnesses (space-separated names)
#   MORC_JOBS           harnesses run at once, and build jobs (default 2)
# usage: tests/fuzz/run.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-fuzz}
secs=${MORC_FUZZ_SECONDS:-30}
clang=/usr/lib/llvm-19/bin/clang
# passes: the -O2 pipeline on verified IR (seeds: the IR corpus). It was opt-in
# until the pipeline passed it; it runs by default since specialize-depths and
# fuse-shared-block keep rows symbols consistent (docs/errors.md, "Fuzzing").
harnesses=(config safetensors ir passes cli tokenizer_load tokenizer_encode cuda_plan)
[ -n "${MORC_FUZZ_ONLY:-}" ] && read -r -a harnesses <<<"$MORC_FUZZ_ONLY"

CC=$clang cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${MORC_JOBS:-2}" -- --no-print-directory >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TMPDIR=${TMPDIR:-/tmp}
mkdir -p "$build/crashes"

# fuzz_one H: run harness H for $secs seconds; its verdict goes to $build/fuzz_H.result
fuzz_one() {
  local h=$1 log=$build/fuzz_$1.log seeds=$root/tests/fuzz/corpus/$1
  [ "$h" = passes ] && seeds=$root/tests/fuzz/corpus/ir
  mkdir -p "$build/corpus/$h"
  if "$build/fuzz_$h" "$build/corpus/$h" "$seeds" -max_total_time="$secs" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/crashes/$h-" >"$log" 2>&1; then
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    printf '%-18s %ss ... ok (%s runs, %s)\n' "$h" "$secs" "${runs:-?}" "${cov:-cov: ?}" >"$build/fuzz_$h.result"
  else
    { printf '%-18s %ss ... FAILED: see %s\n' "$h" "$secs" "$log"
      grep -E 'ERROR|fuzz check failed|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/    /'; } >"$build/fuzz_$h.result"
    return 1
  fi
}

# MORC_JOBS harnesses at a time (each is one process on one core)
jobs=${MORC_JOBS:-2} running=0 ran=()
for h in "${harnesses[@]}"; do
  if [ ! -x "$build/fuzz_$h" ]; then
    echo "$h: not built (its sources are missing), skipped"
    continue
  fi
  rm -f "$build/fuzz_$h.result"
  fuzz_one "$h" &
  ran+=("$h")
  if [ $((++running)) -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
failed=()
for h in "${ran[@]}"; do
  cat "$build/fuzz_$h.result" 2>/dev/null || echo "$h: no result"
  grep -q ' ok (' "$build/fuzz_$h.result" 2>/dev/null || failed+=("$h")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} harness(es) failed: ${failed[*]}"
  exit 1
fi
