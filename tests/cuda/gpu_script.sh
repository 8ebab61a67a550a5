#!/usr/bin/env bash
# gpu_script.sh: tests/gpu/run.sh, which otherwise runs only on a GPU
# machine, dry-run on the CPU emulation: `prepare` for two example variants
# (ec_cycle, stored as bf16, also with tensor-core executables) without the
# 360M-class model, then `run` with the emulated driver, which must pass
# every check; then the same
# bundle with one variant's reference logits swapped for another's, where
# `run` must fail that variant and say that the emulation computes the same
# (the step comparison that names the first differing kernel on a GPU).
# usage: gpu_script.sh BUILD_DIR DRIVER_SO
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$1 driver=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export MORC_BUILD=$build MORC_NO_BUILD=1 MORC_GPU_VARIANTS="ec_cycle tc_softmax" MORC_GPU_NO_BENCH=1
"$root/tests/gpu/run.sh" prepare "$tmp/b" > "$tmp/prep.txt" 2>&1 || { cat "$tmp/prep.txt"; fail "prepare"; }
[ -f "$tmp/b/bundle.tar.gz" ] || fail "prepare made no bundle"
MORRT_CUDA_DRIVER=$driver "$root/tests/gpu/run.sh" run "$tmp/b" > "$tmp/run.txt" 2>&1 || { cat "$tmp/run.txt"; fail "run"; }
cat "$tmp/run.txt"
n=$(grep -c '^PASS' "$tmp/run.txt")
[ "$n" = 8 ] || fail "expected 8 PASS lines (ec_cycle: 3 f32 + 2 tensor-core, tc_softmax: 3 f32), got $n"
grep -q "== 0 failure(s)" "$tmp/run.txt" || fail "no '0 failure(s)' line"
echo "ok: prepare and run pass on the emulation"
# a broken reference: tc_softmax compared with ec_cycle's logits
mkdir "$tmp/x" && tar -xzf "$tmp/b/bundle.tar.gz" -C "$tmp/x" || fail "unpacking the bundle"
cp "$tmp/x/ex/ec_cycle/ref.npy" "$tmp/x/ex/tc_softmax/ref.npy"
mkdir "$tmp/bad" && tar -czf "$tmp/bad/bundle.tar.gz" -C "$tmp/x" . || fail "packing"
MORRT_CUDA_DRIVER=$driver "$root/tests/gpu/run.sh" run "$tmp/bad" > "$tmp/run.txt" 2>&1 && { cat "$tmp/run.txt"; fail "run passed a wrong reference"; }
grep -q '^FAIL  tc_softmax f32 whole' "$tmp/run.txt" || { cat "$tmp/run.txt"; fail "no FAIL line for tc_softmax"; }
grep -q 'GPU vs emulation: .* steps agree' "$tmp/run.txt" || { cat "$tmp/run.txt"; fail "no step comparison"; }
grep -q 'the emulation computes the same' "$tmp/run.txt" || { cat "$tmp/run.txt"; fail "no diagnosis"; }
echo "ok: a wrong reference fails, with the step comparison"
