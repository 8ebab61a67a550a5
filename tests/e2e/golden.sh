#!/usr/bin/env bash
# golden.sh: run one example model with morc and compare its logits and
# depths with the golden files made by the independent PyTorch reference
# (tests/reference/). Causal variants are also run in chunks (a prefill and
# decode steps), which must give the same logits (invariant 1).
# usage: golden.sh MORC NPYCMP EXAMPLE_DIR GOLDEN_DIR CAUSAL [morc run flags...]
set -euo pipefail
morc=$1 npycmp=$2 ex=$3 gold=$4 causal=$5
shift 5
model=$ex/model.json
[ -f "$model" ] || model=$ex/config.json
tokens=$(tr -d ' \n' < "$gold/tokens.txt")
T=$(echo "$tokens" | tr ',' '\n' | wc -l)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # name chunks...
  local name=$1; shift
  "$morc" run "$model" --tokens "$tokens" "$@" --logits "$tmp/$name.npy" --depths "$tmp/$name.txt"
  "$npycmp" "$tmp/$name.npy" "$gold/logits.npy" 1e-4 || { echo "FAIL: $name logits differ from the golden"; exit 1; }
  diff -q "$tmp/$name.txt" "$gold/depths.txt" >/dev/null || {
    echo "FAIL: $name depths differ from the golden"; paste "$tmp/$name.txt" "$gold/depths.txt" | head -n 40; exit 1; }
  echo "ok: $name"
}

check whole "$@"
if [ "$causal" = 1 ]; then
  a=$((T / 3)); rest=$((T - a - 2))
  check chunked --chunks "$a,1,1,$rest" "$@"
  ones=$(printf '1,%.0s' $(seq 1 "$T")); ones=${ones%,}
  check one_by_one --chunks "$ones" "$@"
fi
