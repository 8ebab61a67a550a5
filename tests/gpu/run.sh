#!/usr/bin/env bash
# tests/gpu/run.sh: check morc's CUDA backend on a GPU against the reference
# interpreter, and measure it (under 5 minutes on an H200).
#
#   tests/gpu/run.sh                 everything, on a machine that both builds morc and has a GPU
#   tests/gpu/run.sh prepare [DIR]   where morc builds (no GPU needed): build morc, then into
#                                    DIR/bundle.tar.gz (default DIR build-gpu-bundle, about 22 MiB):
#                                    the CUDA executables of every example variant, the reference
#                                    interpreter's logits (morc run --backend ref), and the
#                                    360M-class benchmark model's executables without weights plus
#                                    its reference logits
#   tests/gpu/run.sh run [DIR]       on the GPU machine: needs only the NVIDIA driver and a C
#                                    compiler (the benchmark's random weights are made there by
#                                    bench/mkweights.c, the same values as in `prepare`)
#
# The split exists because the GPU machines of this project's workplace carry
# CUDA but not morc's build dependencies (LLVM 19, cJSON, Check); the
# executables morc makes need only libc and the driver. For the device tool:
#   run(command="set -o pipefail; tests/gpu/run.sh run 2>&1 | tee $OUT/gpu-run.txt",
#       carry=["build-gpu-bundle"], timeout_s=480)
# (the whole log comes back in $OUT even if the command is stopped at its limit; every
# program run here has its own limit, so a kernel that never ends costs 60 s, not the lease)
# (the bundle is one .tar.gz because the tree that travels is limited to 64 MiB)
#
# For prepare: MORC_BUILD=DIR uses that build folder (MORC_NO_BUILD=1: as it is, without
# building), MORC_GPU_VARIANTS="a b" only those example variants, MORC_GPU_NO_BENCH=1 leaves
# the 360M-class model out (ctest's gpu_script_dry_run does all three).
#
# A dry run of `run` without a GPU, on the CPU emulation (each executable's kernels are in the
# bundle as EXE.so): MORRT_CUDA_DRIVER=$PWD/build/lib/libmorcuda_emu.so tests/gpu/run.sh run
# (the 360M-class model and the benchmark are skipped then).
#
# Checks (exit 1 when one fails):
#   every example variant, f32 math (--no-mma): logits within 1e-3 * max(1, max|ref|) of the
#     reference, depths equal; whole, and for causal variants as prefill + decode steps and one
#     token at a time (the decode kernels and the CUDA graph)
#   the bf16 variants with BF16 tensor-core GEMMs: logits within 3e-2 (routing decisions of
#     borderline tokens may flip with bf16 activations: reported, not failed)
#   the 360M-class model (f32 weights, f32 math) on 8 tokens against the reference
# Benchmark (360M class: 32 layers, d 960, 15 heads, 5 KV heads, FFN 2560, vocab 49152,
# MoR middle_cycle N_r 3 expert-choice, random weights, BF16 on the GPU): prefill of 2048
# tokens and decode of 256 tokens, against the bandwidth bound (weight bytes each decoded
# token reads at the measured copy bandwidth) and the BF16 tensor-core peak.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-all}
dir=${2:-$root/build-gpu-bundle}
L=32 D=960 H=15 KVH=5 F=2560 V=49152 CTX=2048
BENCH_T=2048 BENCH_DECODE=256

prepare() {
  # MORC_BUILD: an existing build folder to use as it is configured
  local build=${MORC_BUILD:-$root/build-gpu-prep}
  echo "== prepare: building morc in $build"
  [ -n "${MORC_BUILD:-}" ] || cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
  [ -n "${MORC_NO_BUILD:-}" ] ||
    cmake --build "$build" -j"$(nproc)" --target morc morrt-cuda npycmp stepcmp morcuda_emu >/dev/null || exit 1
  local morc=$build/bin/morc
  local out=$dir
  dir=$(mktemp -d) # staging; packed into $out/bundle.tar.gz at the end
  mkdir -p "$dir/ex" "$dir/bench" "$dir/bin" || exit 1
  cp "$build/bin/npycmp" "$build/bin/stepcmp" "$dir/bin/" && cp "$root/bench/mkweights.c" "$dir/bench/" || exit 1
  cp "$(find "$build" -name libmorcuda_emu.so | head -n 1)" "$dir/bin/" || exit 1
  echo "== prepare: example variants (reference logits, CUDA executables)"
  local jobs=()
  while read -r v causal; do
    [ -n "$v" ] || continue
    [ -z "${MORC_GPU_VARIANTS:-}" ] || case " $MORC_GPU_VARIANTS " in *" $v "*) ;; *) continue ;; esac
    local ex=$root/examples/$v model
    model=$ex/model.json
    [ -f "$model" ] || model=$ex/config.json
    mkdir -p "$dir/ex/$v"
    tr -d ' \n' < "$root/tests/golden/$v/tokens.txt" > "$dir/ex/$v/tokens.txt"
    echo "$causal" > "$dir/ex/$v/causal"
    "$morc" run "$model" --backend ref --tokens "$(cat "$dir/ex/$v/tokens.txt")" \
      --logits "$dir/ex/$v/ref.npy" --depths "$dir/ex/$v/ref_depths.txt" || exit 1
    # each executable X comes with X.so: its kernels compiled for the CPU emulation, which
    # `run` uses to find the first kernel whose results differ when a check fails
    local cxx="${CXX:-c++} -std=c++17 -O1 -fPIC -shared -w -include $root/tests/cuda/emu.h -x c++"
    local x=$dir/ex/$v/f32
    jobs+=("$morc build $model --target cuda --no-mma -o $x && $morc build $model --target cuda --no-mma --emit=cuda -o $x.cu && $cxx $x.cu -o $x.so && rm $x.cu")
    if grep -q '"BF16"' "$ex"/*.safetensors 2>/dev/null; then
      x=$dir/ex/$v/mma
      jobs+=("$morc build $model --target cuda -o $x && $morc build $model --target cuda --emit=cuda -o $x.cu && $cxx $x.cu -o $x.so && rm $x.cu")
    fi
  done < "$root/tests/golden/manifest.txt"
  printf '%s\n' "${jobs[@]}" | xargs -P "$(nproc)" -I{} sh -c '{}' || exit 1
  if [ -n "${MORC_GPU_NO_BENCH:-}" ]; then
    echo "== prepare: 360M-class benchmark model skipped (MORC_GPU_NO_BENCH)"
    rm -rf "$out" && mkdir -p "$out" && tar -czf "$out/bundle.tar.gz" -C "$dir" . || exit 1
    rm -rf "$dir"
    return 0
  fi
  echo "== prepare: 360M-class benchmark model"
  local tmp=${TMPDIR:-/tmp}/morc-gpu-bench-$$
  mkdir -p "$tmp/m" && cc -O2 -o "$tmp/mkweights" "$root/bench/mkweights.c" || exit 1
  "$tmp/mkweights" "$tmp/m" mor $L $D $H $KVH $F $V $CTX || exit 1
  "$morc" build "$tmp/m/model.json" --target cuda --weights-dtype bf16 --no-embed-weights \
    --max-tokens $BENCH_T -o "$dir/bench/mor360_bf16" || exit 1
  "$morc" build "$tmp/m/model.json" --target cuda --no-mma --no-embed-weights --max-tokens 16 \
    -o "$dir/bench/mor360_f32" || exit 1
  echo "1,100,2000,30000,49151,7,77,777" > "$dir/bench/tokens.txt"
  "$morc" run "$tmp/m/model.json" --backend ref --tokens "$(cat "$dir/bench/tokens.txt")" \
    --logits "$dir/bench/ref.npy" --depths "$dir/bench/ref_depths.txt" || exit 1
  rm -rf "$tmp"
  rm -rf "$out" && mkdir -p "$out" && tar -czf "$out/bundle.tar.gz" -C "$dir" . || exit 1
  rm -rf "$dir"
  dir=$out
  du -sh "$out/bundle.tar.gz"
}

failures=0
report() { # status name detail
  printf '%-5s %-46s %s\n' "$1" "$2" "$3"
  [ "$1" = FAIL ] && failures=$((failures + 1))
  return 0
}

# run one executable on tokens, compare logits (tol) and depths; $1 = name, $2 = exe, $3 = ref dir, $4 tol, $5 strict depths
check() {
  local name=$1 exe=$2 refdir=$3 tol=$4 strict=$5
  shift 5
  local out=$tmp/out.npy dep=$tmp/out.txt
  rm -f "$out" "$dep"
  $limit "$exe" --tokens "$(cat "$refdir/tokens.txt")" "$@" --logits "$out" --depths "$dep" 2> "$tmp/err.txt"
  local rc=$?
  if [ $rc -eq 124 ] && [ -n "$limit" ]; then
    report FAIL "$name" "did not finish in ${limit#timeout } s (a kernel that never ends?)"
    return
  elif [ $rc -eq 3 ]; then # a CUDA error: run again, waiting after every kernel, to name the one that failed
    $limit "$exe" --tokens "$(cat "$refdir/tokens.txt")" "$@" --sync-steps > /dev/null 2> "$tmp/err2.txt"
    report FAIL "$name" "exit 3: $(head -c 300 "$tmp/err.txt"); with --sync-steps: $(head -c 400 "$tmp/err2.txt")"
    return
  elif [ $rc -ne 0 ]; then
    report FAIL "$name" "exit $rc: $(head -c 300 "$tmp/err.txt")"
    return
  fi
  if [ ! -f "$out" ] || [ ! -f "$dep" ]; then
    report FAIL "$name" "exit 0 but no logits or depths written"
    return
  fi
  local res ddiff=""
  res=$("$bin/npycmp" "$out" "$refdir/ref.npy" "$tol" 2>&1)
  rc=$?
  cmp -s "$dep" "$refdir/ref_depths.txt" || ddiff="depths differ at $(diff "$dep" "$refdir/ref_depths.txt" | grep -c '^<') tokens"
  if [ $rc -ne 0 ]; then
    report FAIL "$name" "${res#npycmp: } $ddiff"
    diagnose "$exe" "$refdir" "$tol" "$@"
  elif [ -n "$ddiff" ] && [ "$strict" = 1 ]; then
    report FAIL "$name" "$ddiff"
  elif [ -n "$ddiff" ]; then
    report WARN "$name" "${res#npycmp: }; $ddiff (bf16 activations: a borderline router score)"
  else
    report PASS "$name" "${res#npycmp: }"
  fi
}

# after a failed comparison: the same run on the GPU and on the CPU emulation (the bundle's
# emulated driver and EXE.so), each dumping the device state after every kernel, and stepcmp
# names the first step (kernel) whose results differ; once per executable
diagnose() {
  local exe=$1 refdir=$2 tol=$3
  shift 3
  [ -f "$exe.so" ] && [ -f "$bin/libmorcuda_emu.so" ] || return 0
  case " $diagnosed " in *" $exe "*) return 0 ;; esac
  diagnosed="$diagnosed $exe"
  $limit "$exe" --tokens "$(cat "$refdir/tokens.txt")" "$@" --dump-steps "$tmp/gpu.dump" 2> "$tmp/d.err" &&
    MORRT_CUDA_DRIVER=$bin/libmorcuda_emu.so MORC_EMU_KERNELS=$exe.so $limit "$exe" \
      --tokens "$(cat "$refdir/tokens.txt")" "$@" --dump-steps "$tmp/emu.dump" 2>> "$tmp/d.err" ||
    { echo "      (no step comparison: $(head -c 300 "$tmp/d.err"))"; return 0; }
  "$bin/stepcmp" "$tmp/gpu.dump" "$tmp/emu.dump" "$tol" > "$tmp/d.out" 2>&1
  local src=$?
  head -n 6 "$tmp/d.out" | sed 's/^/      GPU vs emulation: /'
  [ $src = 0 ] && echo "      (the emulation computes the same: the kernels or the plan differ from the reference, not the GPU)"
  [ $src = 1 ] && echo "      (the first step listed is the first kernel whose results on the GPU differ from its emulation)"
  rm -f "$tmp/gpu.dump" "$tmp/emu.dump"
}

run() {
  [ -f "$dir/bundle.tar.gz" ] || { echo "no bundle in $dir: run '$0 prepare' first"; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir "$tmp/b" && tar -xzf "$dir/bundle.tar.gz" -C "$tmp/b" || exit 1
  dir=$tmp/b
  bin=$dir/bin
  diagnosed=""
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
  # a kernel that hangs must not use up the machine's time: every run has a limit
  limit=""
  command -v timeout >/dev/null && limit="timeout 60"
  local cc=${CC:-cc}
  command -v "$cc" >/dev/null || cc=gcc
  echo "== example variants against the reference interpreter"
  for vd in "$dir"/ex/*/; do
    local v
    v=$(basename "$vd")
    local T causal
    T=$(awk -F, '{print NF}' "$vd/tokens.txt")
    causal=$(cat "$vd/causal")
    check "$v f32 whole" "$vd/f32" "$vd" 1e-3 1
    if [ "$causal" = 1 ]; then
      local a=$((T / 3)) ones
      ones=$(printf '1,%.0s' $(seq 1 "$T")); ones=${ones%,}
      check "$v f32 chunked" "$vd/f32" "$vd" 1e-3 1 --chunks "$a,1,1,$((T - a - 2))"
      check "$v f32 one token at a time" "$vd/f32" "$vd" 1e-3 1 --chunks "$ones"
    fi
    if [ -x "$vd/mma" ]; then
      check "$v bf16 tensor cores whole" "$vd/mma" "$vd" 3e-2 0
      [ "$causal" = 1 ] && check "$v bf16 tensor cores chunked" "$vd/mma" "$vd" 3e-2 0 --chunks "$((T / 2)),$((T - T / 2))"
    fi
  done
  if [ -n "${MORRT_CUDA_DRIVER:-}" ] || [ ! -x "$dir/bench/mor360_bf16" ]; then # nothing to measure
    if [ -n "${MORRT_CUDA_DRIVER:-}" ]; then
      echo "== 360M-class model and benchmark skipped: MORRT_CUDA_DRIVER is set (emulation)"
    else
      echo "== 360M-class model and benchmark skipped: not in the bundle (MORC_GPU_NO_BENCH)"
    fi
    echo "== $failures failure(s)"
    [ $failures -eq 0 ]
    return
  fi
  echo "== 360M-class model: random weights made here"
  "$cc" -O2 -o "$tmp/mkweights" "$dir/bench/mkweights.c" || exit 1
  mkdir -p "$tmp/m" && "$tmp/mkweights" "$tmp/m" mor $L $D $H $KVH $F $V $CTX || exit 1
  check "360M-class f32, 8 tokens" "$dir/bench/mor360_f32" "$dir/bench" 1e-3 1 --weights "$tmp/m/model.safetensors"
  check "360M-class f32, 8 tokens one at a time" "$dir/bench/mor360_f32" "$dir/bench" 1e-3 1 \
    --weights "$tmp/m/model.safetensors" --chunks 1,1,1,1,1,1,1,1
  echo "== benchmark: 360M class, BF16 weights, tensor cores"
  ${limit:+timeout 240} "$dir/bench/mor360_bf16" --weights "$tmp/m/model.safetensors" --bench-bandwidth --bench-prefill $BENCH_T \
    --bench-reps 5 --bench-decode $BENCH_DECODE > "$tmp/bench.txt" 2> "$tmp/bench.err"
  local brc=$?
  cat "$tmp/bench.err" "$tmp/bench.txt"
  [ $brc -eq 124 ] && [ -n "$limit" ] && echo "the benchmark did not finish in 240 s"
  if [ $brc -ne 0 ]; then
    report FAIL "benchmark" "exit $brc"
  else
    awk -v L=$L -v D=$D -v H=$H -v KVH=$KVH -v F=$F -v V=$V -v T=$BENCH_T -v NRC=3 '
      function depths(line, arr,   i, n, parts, kv) { # "(depths 0:a 1:b ...)" -> arr[d]
        sub(/.*\(depths /, "", line); sub(/\).*/, "", line)
        n = split(line, parts, " ")
        for (i = 1; i <= n; i++) { split(parts[i], kv, ":"); arr[kv[1]] = kv[2] }
      }
      /^bandwidth:/ { bw = $2 }
      /^prefill:/ { pms = $5; depths($0, pd) }
      /^decode:/ { s = $0; sub(/ tokens\/s,.*/, "", s); sub(/.*: /, "", s); dtps = s + 0; depths($0, dd) }
      END {
        hd = D / H; B = (L - 2) / NRC
        P = D*H*hd + 2*D*KVH*hd + H*hd*D + 3*D*F          # parameters of one layer
        # decode: bf16 bytes each token reads: 2 unique layers, B block layers per recursion run, lm_head
        n = 0; bytes = 0
        for (d = 0; d <= NRC; d++) { c = dd[d] + 0; n += c; bytes += c * ((2 + B * d) * 2 * P + 2 * V * D) }
        if (n > 0 && bw > 0 && dtps > 0) {
          bpt = bytes / n; bound = bw * 1e9 / bpt
          printf "decode:  %.1f tokens/s; bound %.1f tokens/s (%.1f MB of weights per token at %.0f GB/s measured): %.1f%% of the bound (target >= 50%%)\n", dtps, bound, bpt / 1e6, bw, 100 * dtps / bound
        }
        # prefill: GEMM FLOPs (layers run per token by its depth, lm_head) + causal attention
        for (r = 0; r <= NRC; r++) { ge[r] = 0; for (d = r; d <= NRC; d++) ge[r] += pd[d] }
        fl = 2 * (T * 2 * P + T * V * D); at = 4 * H * hd * (2 * T * T / 2)
        for (r = 1; r <= NRC; r++) { fl += 2 * ge[r] * B * P; at += 4 * H * hd * B * ge[r] * ge[r] / 2 }
        if (pms > 0) {
          tf = (fl + at) / (pms / 1e3) / 1e12
          printf "prefill: %d tokens in %.3f ms: %.1f TFLOP/s (%.0f GFLOP: GEMM %.0f, attention %.0f): %.1f%% of the 989 TFLOP/s BF16 dense peak (target >= 30%%), %.1f%% of the 790 TFLOP/s measured for large BF16 matrix products on this kind\n", T, pms, tf, (fl + at) / 1e9, fl / 1e9, at / 1e9, 100 * tf / 989, 100 * tf / 790
        }
      }' "$tmp/bench.txt"
  fi
  echo "== the same decode without programmatic dependent launch, and without the CUDA graph"
  for opt in --no-pdl --no-graph; do
    ${limit:+timeout 120} "$dir/bench/mor360_bf16" --weights "$tmp/m/model.safetensors" --bench-prefill $BENCH_T \
      --bench-reps 1 --bench-decode $BENCH_DECODE $opt 2>&1 | grep '^decode:' | sed "s/^/$opt: /"
  done
  echo "== $failures failure(s)"
  [ $failures -eq 0 ]
}

case $mode in
  prepare) prepare ;;
  run) run ;;
  all) prepare && run ;;
  *) echo "usage: $0 [prepare|run] [DIR]"; exit 2 ;;
esac
