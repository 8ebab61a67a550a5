#!/usr/bin/env bash
# nvrtc.sh: the kernels of one example variant compile with NVRTC for sm_80
# and sm_90, and ptxas accepts the PTX: the fused IR (-O2, the default) for
# both, and the high-level IR (-O0) with bf16 weights, so that every op's
# kernel and the tensor-core GEMM are generated too, for sm_80.
# usage: nvrtc.sh MORC PTXAS MODEL
set -euo pipefail
morc=$1 ptxas=$2 model=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { # arch tag build-options...
  local arch=$1 tag=$2; shift 2
  "$morc" build "$model" --target cuda --cuda-arch "$arch" --emit=ptx -o "$tmp/$tag.ptx" "$@"
  "$ptxas" -arch="$arch" "$tmp/$tag.ptx" -o "$tmp/$tag.cubin"
  echo "ok: $arch $tag ($(grep -c '^.visible .entry' "$tmp/$tag.ptx") kernels)"
}
check sm_90 O2
check sm_80 O2
check sm_80 O0-bf16 -O0 --weights-dtype bf16
