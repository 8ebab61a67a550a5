#!/usr/bin/env bash
# same_logits.sh: two models must give the same logits on the same tokens
# (used for invariant 3: cycle sharing == Llama with the shared layers
# copied into every unrolled layer).
# usage: same_logits.sh MORC NPYCMP MODEL_A MODEL_B TOKENS_FILE [morc run flags...]
set -euo pipefail
morc=$1 npycmp=$2 a=$3 b=$4 tokfile=$5
shift 5
tokens=$(tr -d ' \n' < "$tokfile")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$morc" run "$a" --tokens "$tokens" --logits "$tmp/a.npy" "$@"
"$morc" run "$b" --tokens "$tokens" --logits "$tmp/b.npy" "$@"
"$npycmp" "$tmp/a.npy" "$tmp/b.npy" 1e-6
