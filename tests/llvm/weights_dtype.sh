#!/usr/bin/env bash
# weights_dtype.sh: `--weights-dtype` (bf16, f16, q8 matmul weights).
#  1. Where the model's file already holds the format (bf16 files under bf16,
#     f16 files under f16), the weights are used as they are and widening is
#     exact: logits equal the golden ones within 1e-4, depths identical,
#     whole and one token at a time (built executable).
#  2. Every variant, every format, through the JIT: logits within a bound
#     set by the format's rounding (bf16 5e-2, f16 5e-3, q8 3e-1, times
#     max(1, max|logit|); the measured worst cases are about half of that,
#     see bench/accuracy) of the golden f32 logits.
#  3. A q8 executable gives the JIT's q8 logits, whole and in chunks.
#  4. Values a format cannot hold: every weight 65536 (beyond f16's 65504)
#     is an error naming a tensor under f16 (JIT and executable, exit 1),
#     and fine under bf16.
# usage: weights_dtype.sh MORC NPYCMP ROOT
set -euo pipefail
morc=$1 npycmp=$2 root=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model_of() { local f=$root/examples/$1/model.json; [ -f "$f" ] || f=$root/examples/$1/config.json; echo "$f"; }
fail=0

# 1. exact cases
for c in llama_plain:bf16 tc_mlp:bf16 ec_cycle:bf16 ec_defaults:f16 tc_stored_copies:f16; do
  v=${c%%:*} d=${c##*:} gold=$root/tests/golden/${c%%:*}
  toks=$(tr -d ' \n' < "$gold/tokens.txt")
  "$morc" build "$(model_of "$v")" -o "$tmp/$v" --weights-dtype "$d"
  ones=$(echo "$toks" | tr ',' '\n' | sed 's/.*/1/' | paste -sd,)
  for run in whole one_by_one; do
    extra=(); [ "$run" = one_by_one ] && grep -q "^$v 1$" "$root/tests/golden/manifest.txt" && extra=(--chunks "$ones")
    [ "$run" = one_by_one ] && [ ${#extra[@]} = 0 ] && continue
    "$tmp/$v" --tokens "$toks" -n 0 "${extra[@]}" --logits "$tmp/l.npy" --depths "$tmp/d.txt"
    if ! "$npycmp" "$tmp/l.npy" "$gold/logits.npy" 1e-4 || ! diff -q "$tmp/d.txt" "$gold/depths.txt" >/dev/null; then
      echo "FAIL: $v stored in its file's format ($d), $run: not the golden logits/depths"; fail=1
    else echo "ok: $v --weights-dtype $d ($run) is exact"; fi
  done
done

# 2. every variant and format, bounded error
while read -r v _; do
  toks=$(tr -d ' \n' < "$root/tests/golden/$v/tokens.txt")
  for d in bf16:5e-2 f16:5e-3 q8:3e-1; do
    "$morc" run "$(model_of "$v")" --backend llvm --weights-dtype "${d%%:*}" --tokens "$toks" --logits "$tmp/j.npy"
    if ! r=$("$npycmp" "$tmp/j.npy" "$root/tests/golden/$v/logits.npy" "${d##*:}"); then
      echo "FAIL: $v ${d%%:*}: $r"; fail=1
    else echo "ok: $v ${d%%:*}: ${r#npycmp: }"; fi
  done
done < "$root/tests/golden/manifest.txt"

# 3. a q8 executable = the q8 JIT, whole and in chunks (invariant 1 under q8)
v=ec_defaults gold=$root/tests/golden/ec_defaults
toks=$(tr -d ' \n' < "$gold/tokens.txt")
"$morc" run "$(model_of $v)" --backend llvm --weights-dtype q8 --tokens "$toks" --logits "$tmp/jit.npy"
"$morc" build "$(model_of $v)" -o "$tmp/q8" --weights-dtype q8
"$tmp/q8" --tokens "$toks" -n 0 --logits "$tmp/exe.npy"
if "$tmp/q8" --info | grep -q "^weight format q8 (matmul weights; "; then echo "ok: --info names the format"
else echo "FAIL: --info does not say 'weight format q8'"; "$tmp/q8" --info; fail=1; fi
"$tmp/q8" --tokens "$toks" -n 0 --chunks "$(tr -d ' \n' < "$gold/chunks.txt")" --logits "$tmp/exe_chunked.npy"
for f in exe exe_chunked; do
  if ! "$npycmp" "$tmp/$f.npy" "$tmp/jit.npy" 1e-4; then echo "FAIL: q8 $f differs from the q8 JIT"; fail=1
  else echo "ok: q8 $f = q8 JIT"; fi
done

# 4. f16 overflow: a copy of none_sequence whose every weight value is 65536.0
mkdir -p "$tmp/big"
cp "$root/examples/none_sequence/model.json" "$tmp/big/"
st=$root/examples/none_sequence/model.safetensors
hdr=$(od -An -t u8 -N8 "$st" | tr -d ' ')
size=$(stat -c %s "$st")
{ head -c $((8 + hdr)) "$st"; for _ in $(seq 1 $(((size - 8 - hdr) / 4))); do printf '\000\000\200\107'; done; } > "$tmp/big/model.safetensors"
set +e
msg=$("$morc" run "$tmp/big/model.json" --backend llvm --weights-dtype f16 --tokens 1,2 2>&1); rc=$?
"$morc" build "$tmp/big/model.json" -o "$tmp/big/exe" --weights-dtype f16 >/dev/null 2>&1
emsg=$("$tmp/big/exe" --tokens 1,2 -n 0 2>&1); erc=$?
"$morc" run "$tmp/big/model.json" --backend llvm --weights-dtype bf16 --tokens 1,2 >/dev/null 2>&1; brc=$?
set -e
if [ $rc = 1 ] && [ $erc = 1 ] && [ $brc = 0 ] && [[ "$msg" == *"has a value (65536) beyond the f16 range (65504)"* ]] &&
   [[ "$emsg" == *"beyond the f16 range"* ]]; then echo "ok: f16 overflow refused ($msg)"
else echo "FAIL: f16 overflow: run rc=$rc '$msg'; exe rc=$erc '$emsg'; bf16 rc=$brc"; fail=1; fi
exit $fail
