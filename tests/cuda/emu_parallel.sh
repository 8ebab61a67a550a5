#!/usr/bin/env bash
# emu_parallel.sh: the protocols between concurrent blocks of one launch.
# Two kernels let the last of their blocks finish the work of the others:
# the QKV GEMM's KV-count commit (mor_commit: every block reads the old
# count, the last one to take the ticket stores the new one) and the
# split-KV decode attention (the last block of a (row, head) merges the
# partials of the other 15). The other emulation tests run one block at a
# time; here the kernels are compiled with -DMOR_EMU_PARALLEL and
# MORC_EMU_SCHEDULE=parallel:N runs a launch's blocks on N OS threads at
# once (tests/cuda/emu.h).
#  1. Bits: every run under parallel:2 must equal the one-block-at-a-time
#     run: a prefill plus three decode steps (the whole sequence for models
#     that are not causal), so both the prefill and the decode kernels run.
#  2. ThreadSanitizer: the kernels compiled with -fsanitize=thread as well,
#     libtsan preloaded into the executable, parallel:2. Any data race
#     between blocks (a read of another block's write that no atomic
#     orders) fails the test. First the test plants two such races (the
#     ticket of each protocol taken with a plain read and write instead of
#     atomicAdd) and requires ThreadSanitizer to report both, so a sanitizer
#     that sees nothing cannot pass for clean kernels. Where ThreadSanitizer
#     cannot run at all (no libtsan, or a kernel whose address-space layout
#     it rejects even without ASLR), part 2 says so and is skipped.
# Models: the medium model of emu_medium.sh (f32 math, and BF16 tensor
# cores) and example variants with each routing kind and GQA.
# usage: emu_parallel.sh MORC CC CXX EMU_H DRIVER_SO MKWEIGHTS_C EXAMPLES GOLDEN
set -euo pipefail
morc=$1 cc=$2 cxx=$3 emuh=$4 driver=$5 mkw=$6 examples=$7 golden=$8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MORRT_CUDA_DRIVER=$driver
fail=0
cxxflags=(-std=c++17 -O1 -fPIC -shared -w -DMOR_EMU_PARALLEL -include "$emuh" -x c++)

"$cc" -O2 -o "$tmp/mkweights" "$mkw"
mkdir -p "$tmp/m"
"$tmp/mkweights" "$tmp/m" mor 5 128 2 1 256 512 512 >/dev/null
models=() # name|model|tokens|causal|build options
medium_tokens() { seq 0 $(($1 - 1)) | awk '{printf "%s%d", (NR > 1 ? "," : ""), ($1 * 37 + 11) % 512}'; }
for v in ec_linear_sigmoid_threshold ec_mlp_sigmoid_topk tc_softmax ec_cycle; do
  model=$examples/$v/model.json
  [ -f "$model" ] || model=$examples/$v/config.json
  causal=$(awk -v v=$v '$1 == v {print $2}' "$golden/manifest.txt")
  opt=--no-mma
  [ $v = ec_cycle ] && opt= # stored as bf16: tensor cores
  models+=("$v|$model|$(tr -d ' \n' < "$golden/$v/tokens.txt")|$causal|$opt")
done

# each_model FN MEDIUM_TOKENS: FN NAME MODEL TOKENS CAUSAL OPTIONS for the medium model
# (f32 math and tensor cores, on MEDIUM_TOKENS) and for each example variant
each_model() {
  local fn=$1 mt=$2 m name model tokens causal opt
  "$fn" medium_f32 "$tmp/m/model.json" "$mt" 1 --no-mma
  "$fn" medium_bf16 "$tmp/m/model.json" "$mt" 1 "--weights-dtype bf16"
  for m in "${models[@]}"; do
    IFS='|' read -r name model tokens causal opt <<< "$m"
    "$fn" "$name" "$model" "$tokens" "$causal" "$opt"
  done
}
# build NAME MODEL OPTIONS: the executable and the generated source (once per NAME)
build() {
  local name=$1 model=$2 opt=$3
  [ -x "$tmp/$name" ] && [ -f "$tmp/$name.cu" ] && return 0
  # shellcheck disable=SC2086 # opt: options split at spaces
  "$morc" build "$model" --target cuda -o "$tmp/$name" $opt
  # shellcheck disable=SC2086
  "$morc" build "$model" --target cuda --emit=cuda -o "$tmp/$name.cu" $opt
}
# chunkings TOKENS CAUSAL: a prefill plus three decode steps when causal, else "whole"
chunkings() {
  local T
  T=$(echo "$1" | tr ',' '\n' | wc -l)
  if [ "$2" = 1 ]; then echo "$((T - 3)),1,1,1"; else echo whole; fi
}

echo "== 1. blocks on 2 threads give the bits of one block at a time"
bits() { # NAME MODEL TOKENS CAUSAL OPT
  local name=$1 model=$2 tokens=$3 causal=$4 opt=$5
  build "$name" "$model" "$opt"
  "$cxx" "${cxxflags[@]}" "$tmp/$name.cu" -o "$tmp/$name.so" -lpthread
  for chunks in $(chunkings "$tokens" "$causal"); do
    local o=() bad=0
    [ "$chunks" = whole ] || o=(--chunks "$chunks")
    for s in forward parallel:2; do
      MORC_EMU_SCHEDULE=$s MORC_EMU_KERNELS=$tmp/$name.so "$tmp/$name" --tokens "$tokens" "${o[@]}" \
        --logits "$tmp/o_$s.npy" --depths "$tmp/d_$s.txt"
      if [ $s != forward ] && ! { cmp -s "$tmp/o_$s.npy" "$tmp/o_forward.npy" && cmp -s "$tmp/d_$s.txt" "$tmp/d_forward.txt"; }; then
        echo "FAIL: $name chunks $chunks: $s gives other results than one block at a time"
        bad=1
      fi
    done
    if [ $bad = 0 ]; then echo "ok: $name chunks $chunks"; else fail=1; fi
  done
}
each_model bits "$(medium_tokens 136)"

echo "== 2. ThreadSanitizer: no data race between the blocks of a launch"
libtsan=$("$cxx" -print-file-name=libtsan.so)
run_prefix=()
probe() {
  printf '#include <pthread.h>\nstatic int x;\nstatic void *f(void *p) { __atomic_fetch_add(&x, 1, __ATOMIC_SEQ_CST); return p; }\n%s\n' \
    'int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); pthread_join(t, 0); return x != 1; }' > "$tmp/probe.c"
  "$cc" -fsanitize=thread -o "$tmp/probe" "$tmp/probe.c" 2> "$tmp/probe.log" || return 1
  "$tmp/probe" >> "$tmp/probe.log" 2>&1 && return 0
  # ThreadSanitizer of older compilers rejects the layout that high ASLR entropy gives
  command -v setarch >/dev/null && setarch "$(uname -m)" -R "$tmp/probe" >> "$tmp/probe.log" 2>&1 &&
    run_prefix=(setarch "$(uname -m)" -R) && return 0
  return 1
}
if [ ! -f "$libtsan" ] || ! probe; then
  echo "SKIP part 2: ThreadSanitizer does not run on this machine (libtsan: $libtsan)"
  sed -n 1,5p "$tmp/probe.log" 2>/dev/null || true
  exit $fail
fi
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_signal_unsafe=0"
# tsan NAME SO TOKENS CHUNKS: run under ThreadSanitizer; the status, 66 for a race
tsan() {
  local name=$1 so=$2 tokens=$3 chunks=$4 o=()
  [ "$chunks" = whole ] || o=(--chunks "$chunks")
  MORC_EMU_SCHEDULE=parallel:2 MORC_EMU_KERNELS=$so LD_PRELOAD=$libtsan "${run_prefix[@]}" \
    "$tmp/$name" --tokens "$tokens" "${o[@]}" --logits "$tmp/tsan.npy" > "$tmp/tsan.log" 2>&1
}
tsan_build() { # NAME SOURCE SO
  "$cxx" "${cxxflags[@]}" -g -fsanitize=thread "$2" -o "$3" -lpthread
}
short=$(medium_tokens 24)
# the planted races: each must be reported, in the function that has it
build medium_f32 "$tmp/m/model.json" --no-mma
plant() { # LABEL FUNCTION SED-EXPRESSION
  local label=$1 fn=$2
  sed "$3" "$tmp/medium_f32.cu" > "$tmp/planted.cu"
  if cmp -s "$tmp/planted.cu" "$tmp/medium_f32.cu"; then
    echo "FAIL: the $label ticket was not found in the generated source (update this test)"
    fail=1
    return
  fi
  tsan_build planted "$tmp/planted.cu" "$tmp/planted.so"
  local rc=0
  tsan medium_f32 "$tmp/planted.so" "$short" 20,1,1,1,1 || rc=$?
  if [ $rc = 66 ] && grep -q "WARNING: ThreadSanitizer: data race" "$tmp/tsan.log" && grep -q "$fn" "$tmp/tsan.log"; then
    echo "ok: a race planted in the $label is reported ($fn)"
  else
    echo "FAIL: a race planted in the $label is not reported (status $rc)"
    tail -n 20 "$tmp/tsan.log"
    fail=1
  fi
}
plant "KV-count commit" mor_commit 's/int t = atomicAdd(ticket, 1);/int t = *ticket; *ticket = t + 1;/'
plant "split-KV attention merge" fam_attention_dec \
  's/int t = atomicAdd(&tickets\[m \* H + h\], 1);/int t = tickets[m * H + h]; tickets[m * H + h] = t + 1;/'
# the kernels as generated
clean() { # NAME MODEL TOKENS CAUSAL OPT
  local name=$1 model=$2 tokens=$3 causal=$4 opt=$5
  build "$name" "$model" "$opt"
  tsan_build "$name" "$tmp/$name.cu" "$tmp/${name}_tsan.so"
  for chunks in $(chunkings "$tokens" "$causal"); do
    local rc=0
    tsan "$name" "$tmp/${name}_tsan.so" "$tokens" "$chunks" || rc=$?
    if [ $rc = 0 ]; then
      echo "ok: $name chunks $chunks: no race"
    else
      echo "FAIL: $name chunks $chunks: status $rc under ThreadSanitizer"
      grep -A 24 -m1 "WARNING: ThreadSanitizer" "$tmp/tsan.log" || tail -n 20 "$tmp/tsan.log"
      fail=1
    fi
  done
}
each_model clean "$short"
exit $fail
