#!/usr/bin/env bash
# bf16_dot.sh: `morc build --bf16-dot` (bf16 weights; prefill matmuls with
# their activations rounded to bf16, on AVX512-BF16's vdpbf16ps).
#  1. Code generation, on any machine: built for a CPU with AVX512-BF16 the
#     assembly has vdpbf16ps, without the option it has none (also at -O0,
#     where nothing folds the unused tile away), and a cross build for
#     aarch64 (no such instruction) still compiles.
#  2. Usage: without bf16 weights, or for a target without +avx512bf16, a
#     usage error (exit 2) that says which, and no output file; morc run
#     takes it with the JIT only.
#  3. Where this CPU has AVX512-BF16: variants with golden logits (each
#     routing kind, plain Llama, a BF16 file), built
#     with --bf16-dot, give logits within the bf16 bound of
#     weights_dtype.sh (5e-2 x max(1, max|logit|)) of the golden f32 ones,
#     and other bits than the same build without --bf16-dot (the tile ran);
#     the JIT (morc run --backend llvm --bf16-dot) gives the executable's bits.
#     The kernel itself is checked exactly by test_gemm (perf_gemm_awkward_shapes).
# usage: bf16_dot.sh MORC NPYCMP ROOT
set -euo pipefail
morc=$1 npycmp=$2 root=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model_of() { local f=$root/examples/$1/model.json; [ -f "$f" ] || f=$root/examples/$1/config.json; echo "$f"; }
fail=0
ex=$(model_of ec_cycle)

# 1. code generation
"$morc" build "$ex" --emit=asm -o "$tmp/dot.s" --weights-dtype bf16 --bf16-dot --cpu znver4 --features +avx512bf16
"$morc" build "$ex" --emit=asm -o "$tmp/plain.s" --weights-dtype bf16 --cpu znver4 --features +avx512bf16
"$morc" build "$ex" --emit=asm -o "$tmp/o0.s" --weights-dtype bf16 --cpu x86-64-v3 -O0 --llvm-opt 0
"$morc" build "$ex" --emit=obj -o "$tmp/arm.o" --weights-dtype bf16 --target aarch64-linux-gnu -O0 --llvm-opt 0
n_dot=$(grep -c vdpbf16ps "$tmp/dot.s" || true)
n_plain=$({ grep -c vdpbf16ps "$tmp/plain.s" "$tmp/o0.s" || true; } | awk -F: '{s += $2} END {print s}')
if [ "$n_dot" -gt 0 ] && [ "$n_plain" = 0 ] && [ -s "$tmp/arm.o" ]; then
  echo "ok: vdpbf16ps with --bf16-dot ($n_dot), none without (also -O0), aarch64 builds"
else
  echo "FAIL: vdpbf16ps: $n_dot with --bf16-dot (want > 0), $n_plain without (want 0)"; fail=1
fi

# 2. usage
usage() { # want-substring args...
  local want=$1 rc=0; shift
  "$morc" build "$ex" -o "$tmp/never" "$@" 2> "$tmp/err" || rc=$?
  if [ $rc = 2 ] && grep -qF -- "$want" "$tmp/err" && [ ! -e "$tmp/never" ]; then echo "ok: usage error: $want"
  else echo "FAIL: morc build $* exited $rc (want 2 and '$want'):"; cat "$tmp/err"; fail=1; fi
}
usage "--bf16-dot multiplies bf16 weights: add --weights-dtype bf16" --bf16-dot
usage "--bf16-dot multiplies bf16 weights: add --weights-dtype bf16" --bf16-dot --weights-dtype f16
usage "do not include +avx512bf16" --bf16-dot --weights-dtype bf16 --cpu x86-64-v3
usage "do not include +avx512bf16" --bf16-dot --weights-dtype bf16 --cpu znver4 --features=-avx512bf16
rc=0; "$morc" run "$ex" --tokens 1,2 --bf16-dot 2> "$tmp/err" || rc=$?
if [ $rc = 2 ] && grep -qF -- "--bf16-dot needs --backend llvm" "$tmp/err"; then echo "ok: morc run --bf16-dot needs the JIT"
else echo "FAIL: morc run --bf16-dot (reference backend) exited $rc"; cat "$tmp/err"; fail=1; fi

# 3. runs
if ! grep -qw avx512_bf16 /proc/cpuinfo; then
  echo "SKIP part 3: this CPU has no AVX512-BF16"
  exit $fail
fi
for v in none_cycle ec_linear_sigmoid_threshold ec_tanh_topk_negalpha tc_softmax llama_plain ec_cycle; do
  gold=$root/tests/golden/$v
  toks=$(tr -d ' \n' < "$gold/tokens.txt")
  "$morc" build "$(model_of "$v")" -o "$tmp/dot_$v" --weights-dtype bf16 --bf16-dot
  "$morc" build "$(model_of "$v")" -o "$tmp/bf_$v" --weights-dtype bf16
  "$tmp/dot_$v" --tokens "$toks" -n 0 --logits "$tmp/d.npy"
  "$tmp/bf_$v" --tokens "$toks" -n 0 --logits "$tmp/b.npy"
  if [ $v = ec_cycle ]; then # the JIT compiles the same code
    "$morc" run "$(model_of "$v")" --backend llvm --weights-dtype bf16 --bf16-dot --tokens "$toks" --logits "$tmp/j.npy"
    if cmp -s "$tmp/j.npy" "$tmp/d.npy"; then echo "ok: morc run --backend llvm --bf16-dot gives the executable's logits"
    else echo "FAIL: morc run --backend llvm --bf16-dot differs from the executable"; fail=1; fi
  fi
  if ! r=$("$npycmp" "$tmp/d.npy" "$gold/logits.npy" 5e-2); then
    echo "FAIL: $v --bf16-dot: $r"; fail=1
  elif cmp -s "$tmp/d.npy" "$tmp/b.npy"; then
    echo "FAIL: $v --bf16-dot gives the bits of the build without it: the AVX512-BF16 tile did not run"; fail=1
  else
    echo "ok: $v --bf16-dot: ${r#npycmp: }"
  fi
  rm -f "$tmp/dot_$v" "$tmp/bf_$v" "$tmp/dot_$v.safetensors" "$tmp/bf_$v.safetensors"
done
exit $fail
