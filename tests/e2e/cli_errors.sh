#!/usr/bin/env bash
# cli_errors.sh: bad command lines and bad inputs to `morc` give the right
# exit code (1 bad input, 2 bad usage), a message that says what is wrong,
# and leave no output file behind.
# usage: cli_errors.sh MORC REPO_ROOT
set -uo pipefail
morc=$1 root=$2
ex=$root/examples/ec_linear_sigmoid_threshold/model.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0

# expect CODE "SUBSTRING" args...
expect() {
  local code=$1 want=$2; shift 2
  n=$((n + 1))
  rm -f "$tmp/out.npy" "$tmp/out.txt"
  "$morc" "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  if [ "$rc" -ne "$code" ] || { [ -n "$want" ] && ! grep -qF -- "$want" "$tmp/stderr"; }; then
    echo "FAIL: morc $* -> exit $rc (want $code), stderr:"; sed 's/^/    /' "$tmp/stderr"
    echo "    (wanted: $want)"
    fails=$((fails + 1))
  elif [ -e "$tmp/out.npy" ] || [ -e "$tmp/out.txt" ] || ls "$tmp"/out.* 2>/dev/null | grep -q tmp; then
    echo "FAIL: morc $* left an output file behind"; fails=$((fails + 1))
  fi
}

expect 2 "unknown command 'frob'" frob
expect 2 "unknown option '--bogus'" run "$ex" --tokens 1 --bogus
expect 2 "missing --tokens" run "$ex"
expect 2 "missing MODEL" dump
expect 2 "--tokens: item 2: expected a non-negative integer, found 'x'" run "$ex" --tokens 1,x,3
expect 2 "--tokens: item 2: expected a non-negative integer, found '-4'" run "$ex" --tokens 1,-4
expect 2 "--tokens: trailing comma" run "$ex" --tokens 1,2,
expect 2 "--tokens: item 1: number too large" run "$ex" --tokens 99999999999999999999999
expect 2 "--chunks: the sizes add up to 4, but --tokens has 3 ids" run "$ex" --tokens 1,2,3 --chunks 2,2
expect 2 "--chunks: size 2 is 0" run "$ex" --tokens 1,2,3 --chunks 3,0
expect 2 "unknown backend 'gpu'" run "$ex" --tokens 1 --backend gpu
expect 2 "--logits needs a value" run "$ex" --tokens 1 --logits
expect 2 "--weights-dtype q4: expected f32, bf16, f16 or q8" run "$ex" --tokens 1 --backend llvm --weights-dtype q4
expect 2 "--weights-dtype needs --backend llvm" run "$ex" --tokens 1 --weights-dtype bf16
expect 2 "--weights-dtype int4: expected f32, bf16, f16 or q8" build "$ex" -o "$tmp/never" --weights-dtype int4
# --cpu and --features LLVM does not know: a usage error, not LLVM's abort; 'native' is this machine's
expect 2 "--cpu bogus: LLVM does not know this processor" build "$ex" -o "$tmp/never" --cpu bogus
expect 2 "--features '+bogus': LLVM does not know a feature" build "$ex" -o "$tmp/never" --features=+bogus
expect 2 "--cpu native: this machine's CPU, but --target aarch64" build "$ex" -o "$tmp/never.o" --emit=obj \
  --target aarch64-linux-gnu --cpu native
expect 2 "--cpu skylake: LLVM does not know this processor for aarch64" build "$ex" -o "$tmp/never.o" --emit=obj \
  --target=aarch64-linux-gnu --cpu=skylake
n=$((n + 1))
if ! "$morc" build "$ex" -o "$tmp/native" --cpu=native >/dev/null 2>"$tmp/stderr" || ! [ -x "$tmp/native" ]; then
  echo "FAIL: morc build --cpu=native:"; sed 's/^/    /' "$tmp/stderr"; fails=$((fails + 1))
fi
rm -f "$tmp/native"
expect 1 "token id 128 is out of range (vocab_size 128)" run "$ex" --tokens 1,128 --logits "$tmp/out.npy"
expect 1 "65 tokens do not fit in the context of 64 positions" run "$ex" --tokens "$(seq -s, 1 65)" --logits "$tmp/out.npy"
expect 1 "cannot open" run "$tmp/nonexistent.json" --tokens 1 --logits "$tmp/out.npy"
printf '{"vocab_size": 10,' > "$tmp/trunc.json"
expect 1 "trunc.json:1:19" run "$tmp/trunc.json" --tokens 1 --logits "$tmp/out.npy"
expect 1 "top_k" run "$root/examples/ec_mlp_sigmoid_topk/model.json" --tokens 1,2,3 --chunks 2,1 --logits "$tmp/out.npy"
expect 1 "use of undefined value" dump "$root/tests/bad/ir/undefined_value.mor" -o "$tmp/out.txt"
expect 1 "cannot create" run "$ex" --tokens 1 --logits "$tmp/no/such/dir/out.npy"
# a failed run leaves none of its outputs: the logits are not kept when the depths cannot be written
expect 1 "cannot write" run "$ex" --tokens 1,2 --logits "$tmp/out.npy" --depths "$tmp/no/such/dir/out.txt"
expect 1 "token id 128 is out of range" run "$ex" --tokens 1,128 --logits "$tmp/out.npy" --depths "$tmp/out.txt"
expect 1 "65 tokens do not fit in the context of 64 positions" run "$ex" --tokens "$(seq -s, 1 65)" --chunks 60,5 --depths "$tmp/out.txt"
expect 1 "unterminated" dump "$root/tests/bad/ir/unterminated_region.mor" -o "$tmp/out.txt"
expect 1 "wrong_type.mor:" dump "$root/tests/bad/ir/wrong_type.mor" -o "$tmp/out.txt"

# limits: the memory estimate against --max-memory (default: physical memory)
nc=$root/examples/none_cycle/model.json
expect 1 "none_cycle/model.json: this run needs about 106.2 KiB of memory (weights 88.6 KiB as f32, KV caches 12.4 KiB for 3 tokens, activations 3.8 KiB), more than the 1.0 KiB that --max-memory allows" \
  run "$nc" --tokens 1,2,3 --max-memory 1K --logits "$tmp/out.npy"
expect 0 "" run "$nc" --tokens 1,2,3 --max-memory 1M
expect 2 "--max-memory: expected a size such as 16G, 512M or 1.5T, found '12Q'" run "$nc" --tokens 1 --max-memory 12Q
expect 2 "--max-memory: '0' is not a positive number of bytes" run "$nc" --tokens 1 --max-memory 0
expect 2 "--max-memory needs a value" run "$nc" --tokens 1 --max-memory

# every long option with a value takes it as the next argument or after '='
expect 0 "" run "$nc" --tokens=1,2,3 --backend=ref --chunks=2,1 --logits="$tmp/a.npy" --depths "$tmp/a.txt"
expect 0 "" run "$nc" --tokens 1,2,3 --backend ref --chunks 2,1 --logits "$tmp/b.npy" --depths="$tmp/b.txt"
if ! cmp -s "$tmp/a.npy" "$tmp/b.npy" || ! cmp -s "$tmp/a.txt" "$tmp/b.txt"; then
  echo "FAIL: --opt=VALUE and --opt VALUE gave other results"; fails=$((fails + 1))
fi
expect 2 "unknown backend 'gpu'" run "$ex" --tokens=1 --backend=gpu
expect 2 "--context 0: expected a positive number of tokens" report "$ex" --context=0
expect 2 "--context x: expected a positive number of tokens" report "$ex" --context x
expect 2 "--context needs a value" report "$ex" --context
expect 2 "unknown option '-o=x'" dump "$ex" -o=x
expect 0 "" dump "$ex" -o "$tmp/d.txt"
expect 0 "" report "$nc" --context=8
expect 2 "--max-tokens 0: expected a count >= 1" build "$ex" -o "$tmp/never" --max-tokens=0
expect 2 "--max-tokens 0: expected a count >= 1" build "$ex" --target=cuda -o "$tmp/never" --max-tokens=0

# NaN/Inf weights: a warning that names the tensor, and the run goes on
mkdir -p "$tmp/nan"
cp "$root/examples/none_cycle/model.json" "$root/examples/none_cycle/model.safetensors" "$tmp/nan/"
hlen=$(od -An -t u8 -N 8 "$tmp/nan/model.safetensors" | tr -d ' ')
printf '\x00\x00\xc0\x7f\x00\x00\x80\x7f' | dd of="$tmp/nan/model.safetensors" bs=1 seek=$((8 + hlen)) conv=notrunc 2>/dev/null
expect 0 "morc: warning: $tmp/nan/model.safetensors: tensor 'model.embed_tokens.weight': 2 of 4096 values are NaN or infinite" \
  run "$tmp/nan/model.json" --tokens 1,2

# --help is true: every option the usage text lists is accepted
for cmd in dump run; do
  "$morc" $cmd --help >"$tmp/help" || { echo "FAIL: morc $cmd --help"; fails=$((fails + 1)); }
done
echo "$((n - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
