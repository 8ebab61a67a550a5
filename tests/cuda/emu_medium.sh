#!/usr/bin/env bash
# emu_medium.sh: a model in realistic proportions (head_dim 64, K 128..256)
# made by bench/mkweights.c (MoR middle_cycle, N_r 3, expert-choice), run on
# the CPU emulation with 300 tokens in one call (the 128x128 tensor-core
# GEMM tiles), in pieces (the 64x64 tiles and the decode kernels), against
# `morc run --backend ref`: f32 math at 1e-3, and BF16 weights + tensor
# cores at 3e-2 (its routers saturate, so routing does not flip).
# usage: emu_medium.sh MORC NPYCMP CC CXX EMU_H DRIVER_SO MKWEIGHTS_C
set -euo pipefail
morc=$1 npycmp=$2 cc=$3 cxx=$4 emuh=$5 driver=$6 mkw=$7
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cc" -O2 -o "$tmp/mkweights" "$mkw"
mkdir -p "$tmp/m"
"$tmp/mkweights" "$tmp/m" mor 5 128 2 1 256 512 512
model=$tmp/m/model.json
tokens=$(seq 0 299 | awk '{printf "%s%d", (NR > 1 ? "," : ""), ($1 * 37 + 11) % 512}')
"$morc" run "$model" --backend ref --tokens "$tokens" --logits "$tmp/ref.npy" --depths "$tmp/ref.txt"
export MORRT_CUDA_DRIVER=$driver
for cfg in f32 bf16; do
  if [ $cfg = f32 ]; then opts=(--no-mma); tol=1e-3; else opts=(--weights-dtype bf16); tol=3e-2; fi
  "$morc" build "$model" --target cuda -o "$tmp/$cfg" "${opts[@]}"
  "$morc" build "$model" --target cuda --emit=cuda -o "$tmp/$cfg.cu" "${opts[@]}"
  "$cxx" -std=c++17 -O1 -fPIC -shared -w -include "$emuh" -x c++ "$tmp/$cfg.cu" -o "$tmp/$cfg.so"
  for chunks in 300 250,50 290,1,1,1,1,1,1,1,1,1,1; do
    MORC_EMU_KERNELS=$tmp/$cfg.so "$tmp/$cfg" --tokens "$tokens" --chunks "$chunks" --logits "$tmp/o.npy" --depths "$tmp/o.txt"
    "$npycmp" "$tmp/o.npy" "$tmp/ref.npy" $tol || { echo "FAIL: $cfg chunks $chunks: logits"; exit 1; }
    cmp -s "$tmp/o.txt" "$tmp/ref.txt" || { echo "FAIL: $cfg chunks $chunks: depths"; exit 1; }
    echo "ok: $cfg chunks $chunks"
  done
done
