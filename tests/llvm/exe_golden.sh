#!/usr/bin/env bash
# exe_golden.sh: compile one example model with `morc build` into a
# standalone executable and compare the logits and depths it writes with the
# golden files of the independent PyTorch reference; causal variants are
# also fed in chunks (prefill + decode steps) and with one thread.
# usage: exe_golden.sh MORC NPYCMP EXAMPLE_DIR GOLDEN_DIR CAUSAL [morc build flags...]
set -euo pipefail
morc=$1 npycmp=$2 ex=$3 gold=$4 causal=$5
shift 5
model=$ex/model.json
[ -f "$model" ] || model=$ex/config.json
tokens=$(tr -d ' \n' < "$gold/tokens.txt")
T=$(echo "$tokens" | tr ',' '\n' | wc -l)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$morc" build "$model" -o "$tmp/model" "$@"

check() { # name [flags...]
  local name=$1; shift
  "$tmp/model" --tokens "$tokens" -n 0 "$@" --logits "$tmp/$name.npy" --depths "$tmp/$name.txt"
  "$npycmp" "$tmp/$name.npy" "$gold/logits.npy" 1e-4 || { echo "FAIL: $name logits differ from the golden"; exit 1; }
  diff -q "$tmp/$name.txt" "$gold/depths.txt" >/dev/null || {
    echo "FAIL: $name depths differ from the golden"; paste "$tmp/$name.txt" "$gold/depths.txt" | head -n 40; exit 1; }
  echo "ok: $name"
}

check whole
check one_thread --threads 1
if [ "$causal" = 1 ]; then
  a=$((T / 3)); rest=$((T - a - 2))
  check chunked --chunks "$a,1,1,$rest"
  ones=$(printf '1,%.0s' $(seq 1 "$T")); ones=${ones%,}
  check one_by_one --chunks "$ones" --threads 2
fi
