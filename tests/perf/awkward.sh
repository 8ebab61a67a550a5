#!/usr/bin/env bash
# awkward.sh: random-weight models with awkward sizes (hidden 44: K not a
# multiple of 8; FFN 70, vocab 101, 2 heads of 22; and hidden 72, 2 heads of
# 36: attention's 32-value V blocks plus a tail) through the LLVM JIT
# against the reference interpreter: T = 1, prime T (13; 67: past one
# 64-entry attention block; 131: past one 128-row matmul tile), and
# prefill + decode steps in chunks.
# usage: awkward.sh MORC MKWEIGHTS NPYCMP
set -euo pipefail
morc=$1 mk=$2 npycmp=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for shape in vanilla:44 mor:44 mor:72; do
  kind=${shape%%:*} D=${shape##*:}
  d=$tmp/$kind$D
  mkdir -p "$d"
  "$mk" "$d" "$kind" 5 "$D" 2 1 70 101 160
  for T in 1 13 67 131; do
    toks=$(seq 1 "$T" | awk '{ printf "%s%d", (NR > 1 ? "," : ""), ($1 * 37) % 101 }')
    chunks=()
    [ "$T" = 67 ] && chunks=(--chunks 61,1,5)
    [ "$T" = 131 ] && chunks=(--chunks 129,1,1)
    "$morc" run "$d/model.json" --backend ref --tokens "$toks" --logits "$tmp/ref.npy" --depths "$tmp/ref.txt"
    "$morc" run "$d/model.json" --backend llvm --tokens "$toks" "${chunks[@]}" --logits "$tmp/llvm.npy" --depths "$tmp/llvm.txt"
    "$npycmp" "$tmp/llvm.npy" "$tmp/ref.npy" 1e-4 || { echo "FAIL: $kind D=$D T=$T logits differ"; exit 1; }
    diff -q "$tmp/llvm.txt" "$tmp/ref.txt" >/dev/null || { echo "FAIL: $kind D=$D T=$T depths differ"; exit 1; }
    echo "ok: $kind D=$D T=$T ${chunks[*]}"
  done
done
