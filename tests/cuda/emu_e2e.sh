#!/usr/bin/env bash
# emu_e2e.sh: one example variant built with `morc build --target cuda`, run
# by the built executable on the CPU emulation of the CUDA driver and GPU
# (emu_driver.c + the generated .cu compiled for the host with emu.h), and
# compared with the golden logits and depths of the PyTorch reference:
# whole, and for causal variants as a prefill plus decode steps and one
# token at a time (the decode kernels and the CUDA graph path; without the
# graph for two variants).
# usage: emu_e2e.sh MORC NPYCMP CXX EMU_H DRIVER_SO EXAMPLE_DIR GOLDEN_DIR CAUSAL TOL [build options...]
set -euo pipefail
morc=$1 npycmp=$2 cxx=$3 emuh=$4 driver=$5 ex=$6 gold=$7 causal=$8 tol=$9
shift 9
model=$ex/model.json
[ -f "$model" ] || model=$ex/config.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$morc" build "$model" --target cuda -o "$tmp/model" "$@"
"$morc" build "$model" --target cuda --emit=cuda -o "$tmp/k.cu" "$@"
"$cxx" -std=c++17 -O1 -fPIC -shared -w -include "$emuh" -x c++ "$tmp/k.cu" -o "$tmp/k.so"
tokens=$(tr -d ' \n' < "$gold/tokens.txt")
T=$(echo "$tokens" | tr ',' '\n' | wc -l)
export MORRT_CUDA_DRIVER=$driver MORC_EMU_KERNELS=$tmp/k.so
check() { # name runner-options...
  local name=$1; shift
  "$tmp/model" --tokens "$tokens" "$@" --logits "$tmp/$name.npy" --depths "$tmp/$name.txt"
  "$npycmp" "$tmp/$name.npy" "$gold/logits.npy" "$tol" || { echo "FAIL: $name logits differ from the golden"; exit 1; }
  diff -q "$tmp/$name.txt" "$gold/depths.txt" >/dev/null || {
    echo "FAIL: $name depths differ from the golden"; paste "$tmp/$name.txt" "$gold/depths.txt" | head -n 40; exit 1; }
  echo "ok: $name"
}
check whole
if [ "$causal" = 1 ]; then
  a=$((T / 3)); rest=$((T - a - 2))
  check chunked --chunks "$a,1,1,$rest"
  ones=$(printf '1,%.0s' $(seq 1 "$T")); ones=${ones%,}
  check one_by_one --chunks "$ones"
  # the same launches without the graph: for two variants (one per routing kind) to keep the suite short
  case $(basename "$ex") in ec_linear_sigmoid_threshold | tc_softmax) check chunked_no_graph --chunks "$a,1,1,$rest" --no-graph ;; esac
fi
