#!/usr/bin/env bash
# exe_cases.sh: behaviour of executables, bundles and libraries made by
# `morc build`, one case per ctest entry (see tests/llvm.cmake).
# usage: exe_cases.sh MORC NPYCMP SOURCE_DIR CASE
set -euo pipefail
morc=$1 npycmp=$2 src=$3 case=$4
ex=$src/examples
gold=$src/tests/golden
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
A=$ex/ec_linear_sigmoid_threshold/model.json   # causal, vocab 128, context 64
B=$ex/tc_mlp/model.json                         # other shapes
tokens=$(tr -d ' \n' < "$gold/ec_linear_sigmoid_threshold/tokens.txt")

fail() { echo "FAIL: $*"; exit 1; }
# expect CODE PATTERN cmd...: exit status CODE and PATTERN in stderr
expect() {
  local code=$1 pat=$2; shift 2
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" = "$code" ] || { cat "$tmp/err"; fail "'$*' exited $rc, expected $code"; }
  grep -q -- "$pat" "$tmp/err" || { cat "$tmp/err"; fail "'$*': stderr lacks '$pat'"; }
  echo "ok: exit $code, '$pat': $(head -n 1 "$tmp/err")"
}
golden_check() { # exe name
  "$1" --tokens "$tokens" -n 0 --logits "$tmp/$2.npy" --depths "$tmp/$2.txt"
  "$npycmp" "$tmp/$2.npy" "$gold/ec_linear_sigmoid_threshold/logits.npy" 1e-4 || fail "$2: logits"
  diff -q "$tmp/$2.txt" "$gold/ec_linear_sigmoid_threshold/depths.txt" >/dev/null || fail "$2: depths"
}

case $case in
embedded)  # weights inside the executable: the binary alone is enough
  mkdir -p "$tmp/b" && "$morc" build "$A" -o "$tmp/b/m" --embed-weights
  [ ! -e "$tmp/b/m.safetensors" ] || fail "--embed-weights still wrote m.safetensors"
  mkdir "$tmp/elsewhere" && mv "$tmp/b/m" "$tmp/elsewhere/m"
  (cd / && golden_check "$tmp/elsewhere/m" embedded)
  "$tmp/elsewhere/m" --info | grep -q "weights embedded" || fail "--info does not say the weights are embedded"
  ;;
beside)  # weights beside the executable, found from any working directory
  mkdir -p "$tmp/b" && "$morc" build "$A" -o "$tmp/b/m"
  [ -f "$tmp/b/m.safetensors" ] || fail "no m.safetensors beside the program"
  mkdir "$tmp/moved" && mv "$tmp/b/m" "$tmp/b/m.safetensors" "$tmp/moved/"
  (cd / && golden_check "$tmp/moved/m" beside)
  golden_check "$tmp/moved/m" beside2
  mv "$tmp/moved/m.safetensors" "$tmp/w.safetensors"
  expect 1 "cannot load the model's weights" "$tmp/moved/m" --tokens 1,2,3
  expect 1 "weights" "$tmp/moved/m" --tokens 1,2,3 --weights "$tmp/nonexistent.safetensors"
  "$tmp/moved/m" --tokens "$tokens" -n 0 --weights "$tmp/w.safetensors" --logits "$tmp/w.npy"
  "$npycmp" "$tmp/w.npy" "$gold/ec_linear_sigmoid_threshold/logits.npy" 1e-4 || fail "--weights: logits"
  # the original weight files work too (extra tensors are ignored)
  "$tmp/moved/m" --tokens "$tokens" -n 0 --weights "$ex/ec_linear_sigmoid_threshold/model.safetensors" --logits "$tmp/o.npy"
  "$npycmp" "$tmp/o.npy" "$gold/ec_linear_sigmoid_threshold/logits.npy" 1e-4 || fail "original weights: logits"
  ;;
mismatch)  # weights of another model: clear error, exit 1
  mkdir -p "$tmp/b" && "$morc" build "$A" -o "$tmp/b/a" && "$morc" build "$B" -o "$tmp/b/bm"
  expect 1 "not the weights" "$tmp/b/a" --tokens 1,2,3 --weights "$tmp/b/bm.safetensors"
  printf 'not a safetensors file' > "$tmp/junk.safetensors"
  expect 1 "junk.safetensors" "$tmp/b/a" --tokens 1,2,3 --weights "$tmp/junk.safetensors"
  # a tensor the model binds, of another shape, then of another dtype
  st() { # file json nbytes: a one-tensor safetensors file
    local h=$2
    printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00" > "$1"
    printf '%s' "$h" >> "$1"
    head -c "$3" /dev/zero >> "$1"
  }
  st "$tmp/shape.safetensors" '{"model.embed_tokens.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' 16
  expect 1 "compiled for F32 \[128, 32\]" "$tmp/b/a" --tokens 1,2,3 --weights "$tmp/shape.safetensors"
  st "$tmp/dtype.safetensors" '{"model.embed_tokens.weight":{"dtype":"F16","shape":[128,32],"data_offsets":[0,8192]}}' 8192
  expect 1 "is F16 \[128, 32\]" "$tmp/b/a" --tokens 1,2,3 --weights "$tmp/dtype.safetensors"
  ;;
bad_input)  # ids, context, usage
  mkdir -p "$tmp/b" && "$morc" build "$A" -o "$tmp/b/m"
  m=$tmp/b/m
  expect 1 "out of range" "$m" --tokens 1,128,3
  long=$(seq -s, 1 65)
  expect 1 "past the model's context" "$m" --tokens "$long"
  expect 1 "no tokenizer" "$m" --prompt "hello"
  expect 2 "unknown option" "$m" --tokens 1,2 --bogus
  expect 2 "missing --prompt" "$m"
  expect 2 "not a comma-separated" "$m" --tokens 1,,2
  expect 2 "add up to" "$m" --tokens 1,2,3 --chunks 1,1
  expect 2 "not a number" "$m" --tokens 1,2 --temp hot
  expect 2 "not a number" "$m" --tokens=1,2 --temp=hot
  expect 2 "--stats takes no value" "$m" --tokens 1,2 --stats=1
  expect 2 "unknown option '--bogus=1'" "$m" --tokens 1,2 --bogus=1
  expect 2 "--seed needs a value" "$m" --tokens 1,2 --seed
  # --name=value is --name value
  "$m" --tokens=1,5,9 -n 4 --seed=3 --temp=0.7 > "$tmp/e1" && "$m" --tokens 1,5,9 -n 4 --seed 3 --temp 0.7 > "$tmp/e2" ||
    fail "a run with --name=value options failed"
  cmp -s "$tmp/e1" "$tmp/e2" || fail "--name=value and --name value gave other output"
  # generation stops at the end of the context, with a note
  "$m" --tokens "$(seq -s, 1 60)" -n 10 --seed 1 >"$tmp/out" 2>"$tmp/err" || fail "generation up to the context failed"
  grep -q "end of the context" "$tmp/err" || fail "no note at the end of the context"
  echo "ok: generation stops at the context"
  ;;
generate)  # reproducible sampling, thread-count independent, greedy == C API
  mkdir -p "$tmp/b" && "$morc" build "$A" -o "$tmp/b/m"
  m=$tmp/b/m
  "$m" --tokens 1,5,9,17 -n 24 --seed 7 --temp 0.9 > "$tmp/g1"
  "$m" --tokens 1,5,9,17 -n 24 --seed 7 --temp 0.9 --threads 1 > "$tmp/g2"
  "$m" --tokens 1,5,9,17 -n 24 --seed 7 --temp 0.9 --threads 2 --chunks 2,2 > "$tmp/g3"
  cmp -s "$tmp/g1" "$tmp/g2" || fail "same seed, different output with --threads 1"
  cmp -s "$tmp/g1" "$tmp/g3" || fail "same seed, different output with --chunks"
  [ "$(wc -w < "$tmp/g1")" = 24 ] || fail "expected 24 tokens, got: $(cat "$tmp/g1")"
  "$m" --tokens 1,5,9,17 -n 24 --seed 8 --temp 5 > "$tmp/g4"
  cmp -s "$tmp/g1" "$tmp/g4" && fail "different seeds at temperature 5 gave the same 24 tokens"
  "$m" --tokens 1,5,9,17 -n 12 --temp 0 --show-routing > "$tmp/r"
  grep -q '\[[0-3]\]' "$tmp/r" || fail "--show-routing prints no [depth] marks: $(cat "$tmp/r")"
  "$m" --tokens 1,5,9,17 -n 12 --temp 0 --stats > /dev/null 2> "$tmp/s"
  for pat in "prompt:" "generation:" "tokens/s" "reached depth" "KV cache:" "bytes in use"; do
    grep -q "$pat" "$tmp/s" || fail "--stats lacks '$pat'"
  done
  cat "$tmp/g1" "$tmp/r" "$tmp/s"
  ;;
emit)  # every --emit kind; cross compilation of objects
  "$morc" build "$A" --emit=llvm -o "$tmp/m.ll" && grep -q "define.*mor_forward\|define.*_forward" "$tmp/m.ll" || fail "llvm"
  "$morc" build "$A" --emit=asm -o "$tmp/m.s" && grep -q "m_forward" "$tmp/m.s" || fail "asm"
  "$morc" build "$A" --emit=obj -o "$tmp/m.o" && [ "$(head -c 4 "$tmp/m.o" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "obj"
  "$morc" build "$A" --emit=bundle -o "$tmp/bun" && [ -f "$tmp/bun.o" ] && [ -f "$tmp/bun.h" ] && [ -f "$tmp/bun.safetensors" ] || fail "bundle"
  grep -q "extern const morrt_desc bun_model" "$tmp/bun.h" && grep -q "BUN_ARENA_BYTES" "$tmp/bun.h" && grep -q "BUN_KV_BYTES" "$tmp/bun.h" || fail "bundle header"
  "$morc" build "$A" --emit=lib -o "$tmp/libm.so" && [ -f "$tmp/libm.so" ] && [ -f "$tmp/m.h" ] || fail "lib"
  "$morc" build "$A" --emit=obj --target aarch64-linux-gnu --cpu generic -o "$tmp/arm.o"
  [ "$(od -An -tu2 -j18 -N2 "$tmp/arm.o" | tr -d ' ')" = 183 ] || fail "--target aarch64: e_machine is not EM_AARCH64"
  expect 2 "this machine's target" "$morc" build "$A" --target aarch64-linux-gnu -o "$tmp/x"
  expect 2 "expected exe, lib" "$morc" build "$A" --emit=wasm -o "$tmp/x"
  expect 1 "--target" "$morc" build "$A" --emit=obj --target nonsense-cpu-none -o "$tmp/x"
  echo "ok: llvm asm obj bundle lib, aarch64 object"
  ;;
capi)  # the C API example, linked with a bundle and with a shared library
  cc=${CC:-cc}
  "$morc" build "$A" --emit=bundle --name demo -o "$tmp/demo"
  "$cc" -std=c11 -Wall -Wextra -Werror -I"$src" -I"$tmp" "$src/examples/capi/main.c" "$tmp/demo.o" \
      "$(dirname "$morc")/../lib/libmorrt.a" ${MORC_TEST_LDFLAGS:-} -lm -lpthread -ldl -o "$tmp/capi"
  "$tmp/capi" "$tmp/demo.safetensors" 1,5,9,17 12 | tee "$tmp/c1"
  grep -q "same tokens" "$tmp/c1" || fail "capi: sequences disagree"
  mkdir -p "$tmp/so" && "$morc" build "$A" --emit=lib --name demo -o "$tmp/so/libdemo.so"
  "$cc" -std=c11 -I"$src" -I"$tmp/so" "$src/examples/capi/main.c" -L"$tmp/so" -ldemo -Wl,-rpath,"$tmp/so" \
      ${MORC_TEST_LDFLAGS:-} -o "$tmp/capi_so"
  "$tmp/capi_so" "$tmp/so/demo.safetensors" 1,5,9,17 12 > "$tmp/c2"
  cmp -s "$tmp/c1" "$tmp/c2" || fail "capi through the shared library differs"
  "$morc" build "$A" -o "$tmp/exe"
  want=$(grep '^tokens:' "$tmp/c1" | cut -d: -f2 | xargs)
  got=$("$tmp/exe" --tokens 1,5,9,17 -n 12 --temp 0 | xargs)
  [ "$want" = "$got" ] || fail "capi greedy tokens '$want' differ from the executable's '$got'"
  echo "ok: capi (bundle and lib) == executable: $got"
  ;;
max_tokens)  # --max-tokens: long prompts run in pieces (threshold routing), top_k refuses
  mkdir -p "$tmp/b" && "$morc" build "$A" -o "$tmp/b/m" --max-tokens 7
  "$tmp/b/m" --info | grep -q "tokens per call 7" || fail "--info does not show 7 tokens per call"
  golden_check "$tmp/b/m" pieces
  K=$ex/ec_mlp_sigmoid_topk/model.json
  "$morc" build "$K" -o "$tmp/b/k" --max-tokens 7
  expect 1 "scores a sequence in one call" "$tmp/b/k" --tokens "$tokens"
  expect 1 "cannot generate" "$tmp/b/k" --tokens 1,2,3 -n 4
  ktok=$(tr -d ' \n' < "$gold/ec_mlp_sigmoid_topk/tokens.txt")
  "$morc" build "$K" -o "$tmp/b/k2"
  "$tmp/b/k2" --tokens "$ktok" --logits "$tmp/k.npy"
  "$npycmp" "$tmp/k.npy" "$gold/ec_mlp_sigmoid_topk/logits.npy" 1e-4 || fail "top_k model: logits"
  expect 1 "top_k routing" "$tmp/b/k2" --tokens "$ktok" --chunks "1,$(( $(echo "$ktok" | tr ',' '\n' | wc -l) - 1 ))"
  ;;
prompt)  # a model with a tokenizer (made by mkmodel): text in, text out; exe == reference
  mk=$(dirname "$morc")/mkmodel
  mkdir "$tmp/tm" && "$mk" "$src/tests/data/tokenizer/tokenizer.json" "$tmp/tm"
  "$morc" build "$tmp/tm/model.json" -o "$tmp/tm/m"
  "$tmp/tm/m" --prompt "Hello world, this is a test" -n 16 --seed 3 > "$tmp/p1"
  "$tmp/tm/m" --prompt "Hello world, this is a test" -n 16 --seed 3 --threads 1 > "$tmp/p2"
  [ -s "$tmp/p1" ] || fail "--prompt produced no text"
  cmp -s "$tmp/p1" "$tmp/p2" || fail "--prompt: same seed, different text"
  "$tmp/tm/m" --prompt "Hello world" -n 8 --seed 3 --show-routing --stats > "$tmp/r" 2> "$tmp/s"
  grep -q '\[[0-3]\]' "$tmp/r" || fail "--show-routing: no [depth] marks"
  grep -q "tokens/s" "$tmp/s" || fail "--stats: no tokens/s"
  expect 1 "missing.json" "$tmp/tm/m" --prompt "hi" --tokenizer "$tmp/missing.json"
  # the built program against the reference interpreter on the same ids
  ids=3,17,250,99,4,120,301,7,45,200,11,64
  "$tmp/tm/m" --tokens "$ids" -n 0 --logits "$tmp/exe.npy" --depths "$tmp/exe.txt"
  "$morc" run "$tmp/tm/model.json" --tokens "$ids" --logits "$tmp/ref.npy" --depths "$tmp/ref.txt"
  "$npycmp" "$tmp/exe.npy" "$tmp/ref.npy" 1e-4 || fail "executable logits differ from the reference interpreter"
  diff -q "$tmp/exe.txt" "$tmp/ref.txt" >/dev/null || fail "executable depths differ from the reference interpreter"
  echo "ok: text: $(head -c 200 "$tmp/p1" | LC_ALL=C tr -cd '[:print:]')"
  ;;
*) echo "unknown case $case"; exit 2 ;;
esac
