#!/usr/bin/env bash
# emu_faults.sh: a kernel that faults on the GPU. The emulated driver makes
# the N-th kernel run fail the way a GPU does (MORC_EMU_FAULT, emu_driver.c:
# the launch succeeds, the next synchronization and every later call return
# CUDA_ERROR_ILLEGAL_ADDRESS). The executable must exit 3 with the driver's
# error and a hint, and with --sync-steps name the step and kernel that
# failed; in the CUDA graph of a decode step too. Also the switch of
# programmatic dependent launch (--no-pdl, and a driver that refuses it).
# usage: emu_faults.sh MORC CXX EMU_H DRIVER_SO MODEL
set -uo pipefail
morc=$1 cxx=$2 emuh=$3 driver=$4 model=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$morc" build "$model" --target cuda --no-mma -o "$tmp/m" || fail "morc build"
"$morc" build "$model" --target cuda --no-mma --emit=cuda -o "$tmp/k.cu" || fail "morc build --emit=cuda"
"$morc" build "$model" --target cuda --no-mma --emit=plan -o "$tmp/plan.txt" || fail "morc build --emit=plan"
"$cxx" -std=c++17 -O1 -fPIC -shared -w -include "$emuh" -x c++ "$tmp/k.cu" -o "$tmp/k.so" || fail "compiling the kernels"
export MORRT_CUDA_DRIVER=$driver MORC_EMU_KERNELS=$tmp/k.so
. "$(dirname "$0")/expect.sh"
expect_fails() { # expect, and no logits were written
  expect "$@"
  [ -e "$tmp/o.npy" ] && fail "'${*:3}' wrote logits after a CUDA error"
  return 0
}
# the plan's 4th step (index 3), as --emit=plan lists it: its label and its kernel for 5 tokens (one variant)
step3=$(awk '$1 == "3" {print $2; exit}' "$tmp/plan.txt")
[ -n "$step3" ] || fail "no step 3 in the plan"
expect_fails 3 "CUDA_ERROR_ILLEGAL_ADDRESS.*--sync-steps names" env MORC_EMU_FAULT=4 "$tmp/m" --tokens 1,2,3,4,5 --logits "$tmp/o.npy"
echo "ok: a faulting kernel: exit 3, the driver's error, the hint"
expect_fails 3 "running step 3 ($step3.*for 5 tokens: CUDA_ERROR_ILLEGAL_ADDRESS" \
  env MORC_EMU_FAULT=4 "$tmp/m" --tokens 1,2,3,4,5 --sync-steps --logits "$tmp/o.npy"
echo "ok: --sync-steps names step 3 ($step3)"
# a fault inside the decode graph: the prefill of 4 tokens runs every step once
n=$(awk '/^# [0-9]+ steps/ {print $2; exit}' "$tmp/plan.txt")
[ -n "$n" ] || fail "no step count in the plan"
expect_fails 3 "CUDA_ERROR_ILLEGAL_ADDRESS" env MORC_EMU_FAULT=$((n + 2)) "$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --logits "$tmp/o.npy"
expect_fails 3 "running step 1 (.*for 1 tokens: CUDA_ERROR_ILLEGAL_ADDRESS" \
  env MORC_EMU_FAULT=$((n + 2)) "$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --sync-steps --logits "$tmp/o.npy"
echo "ok: in a decode step (graph, and --sync-steps)"
# and without a fault, --sync-steps computes the same logits
"$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --logits "$tmp/a.npy" || fail "run"
"$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --sync-steps --logits "$tmp/b.npy" || fail "run --sync-steps"
cmp -s "$tmp/a.npy" "$tmp/b.npy" || fail "--sync-steps changed the logits"
echo "ok: --sync-steps alone changes nothing"
# programmatic dependent launch: on by default for sm_90 (the emulated GPU is sm_90), off with
# --no-pdl or where the driver refuses cuLaunchKernelEx; the logits are the same bits
"$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --stats 2> "$tmp/s.txt" > /dev/null || fail "run --stats"
grep -q "programmatic dependent launch on" "$tmp/s.txt" || fail "PDL is not on by default: $(cat "$tmp/s.txt")"
"$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --no-pdl --stats --logits "$tmp/c.npy" 2> "$tmp/s.txt" > /dev/null || fail "--no-pdl"
grep -q "programmatic dependent launch off" "$tmp/s.txt" || fail "--no-pdl: $(cat "$tmp/s.txt")"
cmp -s "$tmp/a.npy" "$tmp/c.npy" || fail "--no-pdl changed the logits"
MORC_EMU_NO_LAUNCH_EX=1 "$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --stats --logits "$tmp/d.npy" 2> "$tmp/s.txt" > /dev/null ||
  fail "a driver without cuLaunchKernelEx: $(cat "$tmp/s.txt")"
grep -q "programmatic dependent launch off" "$tmp/s.txt" || fail "no fallback when PDL is refused: $(cat "$tmp/s.txt")"
cmp -s "$tmp/a.npy" "$tmp/d.npy" || fail "the fallback changed the logits"
echo "ok: programmatic dependent launch on by default, off with --no-pdl, and when the driver refuses it"
# a misaligned vector load faults on a GPU ("misaligned address") but not on x86: the emulation
# checks the alignment of every MOR_LDG / MOR_LD and stops on one (here the f32 GEMV's float4
# weight load moved by one float)
sed 's/MOR_LDG((const float4 \*)((const float \*)wr + k))/MOR_LDG((const float4 *)((const float *)wr + k + 1))/' \
  "$tmp/k.cu" > "$tmp/bad.cu"
cmp -s "$tmp/k.cu" "$tmp/bad.cu" && fail "the GEMV's float4 load was not found in the generated source (update this test)"
"$cxx" -std=c++17 -O1 -fPIC -shared -w -include "$emuh" -x c++ "$tmp/bad.cu" -o "$tmp/bad.so" || fail "compiling"
expect_fails 134 "a 16-byte load from .* which is not 16-byte aligned" \
  env MORC_EMU_KERNELS="$tmp/bad.so" "$tmp/m" --tokens 1,2,3,4,5 --logits "$tmp/o.npy"
echo "ok: a misaligned vector load stops the emulation"
