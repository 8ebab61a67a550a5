#!/usr/bin/env bash
# emu_schedules.sh: races, found by changing the order in which the CPU
# emulation runs a launch's blocks and a block's threads (MORC_EMU_SCHEDULE,
# tests/cuda/emu.h). A kernel that is free of races computes the same bits
# whatever the order; one where a thread reads memory that another thread
# writes between the same two barriers, that relies on warp lanes running in
# lockstep, or whose blocks assume an order, does not. Each model runs under
# forward, reverse and two shuffled schedules, whole and as a prefill plus
# decode steps, and every run must equal the forward run bit for bit.
# Models: the medium model of emu_medium.sh (f32 math, and BF16 tensor
# cores with the 128x128 tiles and the tensor-core attention), and example
# variants with each routing kind (threshold and top-k expert choice, token
# choice) and GQA.
# usage: emu_schedules.sh MORC CC CXX EMU_H DRIVER_SO MKWEIGHTS_C EXAMPLES GOLDEN
set -euo pipefail
morc=$1 cc=$2 cxx=$3 emuh=$4 driver=$5 mkw=$6 examples=$7 golden=$8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MORRT_CUDA_DRIVER=$driver
schedules="forward reverse shuffle:1 shuffle:7"
fail=0
# check NAME MODEL TOKENS CAUSAL build-options...
check() {
  local name=$1 model=$2 tokens=$3 causal=$4
  shift 4
  "$morc" build "$model" --target cuda -o "$tmp/$name" "$@"
  "$morc" build "$model" --target cuda --emit=cuda -o "$tmp/$name.cu" "$@"
  "$cxx" -std=c++17 -O1 -fPIC -shared -w -include "$emuh" -x c++ "$tmp/$name.cu" -o "$tmp/$name.so"
  local T chunkings=(whole)
  T=$(echo "$tokens" | tr ',' '\n' | wc -l)
  [ "$causal" = 1 ] && chunkings+=("$((T - 3)),1,1,1")
  for chunks in "${chunkings[@]}"; do
    local opt=() bad=0
    [ "$chunks" = whole ] || opt=(--chunks "$chunks")
    for s in $schedules; do
      MORC_EMU_SCHEDULE=$s MORC_EMU_KERNELS=$tmp/$name.so "$tmp/$name" --tokens "$tokens" "${opt[@]}" \
        --logits "$tmp/o_$s.npy" --depths "$tmp/d_$s.txt"
      if [ "$s" != forward ] && ! { cmp -s "$tmp/o_$s.npy" "$tmp/o_forward.npy" && cmp -s "$tmp/d_$s.txt" "$tmp/d_forward.txt"; }; then
        echo "FAIL: $name chunks $chunks: schedule $s gives other results than forward (a race)"
        bad=1
      fi
    done
    if [ $bad = 0 ]; then echo "ok: $name chunks $chunks (${schedules// /, })"; else fail=1; fi
  done
}
"$cc" -O2 -o "$tmp/mkweights" "$mkw"
mkdir -p "$tmp/m"
"$tmp/mkweights" "$tmp/m" mor 5 128 2 1 256 512 512
tokens=$(seq 0 263 | awk '{printf "%s%d", (NR > 1 ? "," : ""), ($1 * 37 + 11) % 512}')
check medium_f32 "$tmp/m/model.json" "$tokens" 1 --no-mma
check medium_bf16 "$tmp/m/model.json" "$tokens" 1 --weights-dtype bf16
for v in ec_linear_sigmoid_threshold ec_mlp_sigmoid_topk tc_softmax ec_cycle; do
  model=$examples/$v/model.json
  [ -f "$model" ] || model=$examples/$v/config.json
  causal=$(awk -v v=$v '$1 == v {print $2}' "$golden/manifest.txt")
  opts=(--no-mma)
  [ $v = ec_cycle ] && opts=() # stored as bf16: tensor cores
  check "$v" "$model" "$(tr -d ' \n' < "$golden/$v/tokens.txt")" "$causal" "${opts[@]}"
done
exit $fail
