#!/bin/sh
# roundtrip.sh MORC MODEL: dump every stage of the -O2 pipeline with
# --dump-dir, then check that each stage survives `morc opt` (parse, verify,
# print) byte for byte, and that running -O2 on a parsed stage is stable.
set -eu
morc=$1 model=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/morc-rt.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$morc" dump "$model" -O2 --verify-each --dump-dir="$dir/stages" > "$dir/final.mor"
n=0
for f in "$dir"/stages/*.mor; do
  n=$((n + 1))
  "$morc" opt "$f" > "$dir/again.mor"
  if ! cmp -s "$f" "$dir/again.mor"; then
    echo "FAIL: $(basename "$f") changes when parsed and printed again:"
    diff "$f" "$dir/again.mor" | head -20
    exit 1
  fi
done
[ "$n" -eq 5 ] || { echo "FAIL: expected 5 stages, found $n"; exit 1; }
cmp -s "$dir/final.mor" "$dir/stages/04-after-plan-memory.mor" || { echo "FAIL: final output != last stage"; exit 1; }
echo "ok: $n stages round-trip unchanged"
