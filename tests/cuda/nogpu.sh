#!/usr/bin/env bash
# nogpu.sh: a CUDA executable on a machine without a GPU: --help and --info
# work, a run says "no CUDA driver or GPU found" and exits 1 (forced with a
# driver path that does not exist, and for real when this machine has no
# libcuda.so.1), bad input is reported before the GPU is needed, and a
# damaged executable gives a message, never a crash.
# usage: nogpu.sh MORC MODEL
set -uo pipefail
morc=$1 model=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$morc" build "$model" --target cuda -o "$tmp/m" || fail "morc build"
"$morc" build "$model" --target=cuda --emit=plan -o "$tmp/plan.txt" || fail "morc build --target=cuda"
grep -q "launch plan" "$tmp/plan.txt" || fail "--target=cuda did not take the CUDA backend"
"$tmp/m" --help >/dev/null || fail "--help"
"$tmp/m" --info > "$tmp/info.txt" || fail "--info"
grep -q "launches per forward call" "$tmp/info.txt" || fail "--info output"

. "$(dirname "$0")/expect.sh"
expect 1 "no CUDA driver or GPU found" env MORRT_CUDA_DRIVER=/nonexistent/libcuda.so.1 "$tmp/m" --tokens 1,2,3
echo "ok: no driver (forced)"
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
  echo "note: this machine has libcuda.so.1; the unforced no-GPU run is skipped"
else
  expect 1 "no CUDA driver or GPU found" env -u MORRT_CUDA_DRIVER "$tmp/m" --tokens 1,2,3
  echo "ok: no driver (this machine)"
fi
expect 1 "out of range" env MORRT_CUDA_DRIVER=/nonexistent "$tmp/m" --tokens 1,99999999
expect 2 "unknown argument" "$tmp/m" --bogus
expect 2 "unknown argument '--bogus=2'" "$tmp/m" --bogus=2
expect 2 "--stats takes no value" "$tmp/m" --tokens 1 --stats=yes
expect 2 "--seed -1: expected a non-negative integer" "$tmp/m" --tokens=1 --seed=-1
expect 2 "-n: expected a non-negative integer" "$tmp/m" --tokens=1 -n x
expect 1 "out of range" env MORRT_CUDA_DRIVER=/nonexistent "$tmp/m" --tokens=1,99999999
# weights left out of the program: needed at run time, checked before the GPU
"$morc" build "$model" --target cuda --no-embed-weights -o "$tmp/nw" || fail "morc build --no-embed-weights"
[ "$(stat -c %s "$tmp/nw")" -lt "$(stat -c %s "$tmp/m")" ] || fail "--no-embed-weights did not leave the weights out"
expect 1 "built without its weights" env MORRT_CUDA_DRIVER=/nonexistent "$tmp/nw" --tokens 1,2,3
other=$(dirname "$model")/../none_n1/model.safetensors
expect 1 "has another shape or dtype\|is missing" env MORRT_CUDA_DRIVER=/nonexistent "$tmp/nw" --tokens 1,2 --weights "$other"
expect 1 "no CUDA driver or GPU found" env MORRT_CUDA_DRIVER=/nonexistent "$tmp/nw" --tokens 1,2 \
  --weights "$(dirname "$model")/model.safetensors"
expect 2 "nothing to do" "$tmp/m"
echo "ok: bad input and usage"

# damaged files: cut short, and bytes of the plan flipped
size=$(stat -c %s "$tmp/m")
head -c $((size - 100)) "$tmp/m" > "$tmp/cut" && chmod +x "$tmp/cut"
expect 1 "carries no model\|damaged" "$tmp/cut" --info
for k in 1 2 3 4 5 6 7 8; do
  cp "$tmp/m" "$tmp/bad"
  # the plan starts after the runner, at the offset stored in the trailer
  off=$(tail -c 24 "$tmp/m" | head -c 8 | od -An -tu8 | tr -d ' ')
  pos=$((off + 8 + k * 37))
  printf '\xff\xff\xff\x7f' | dd of="$tmp/bad" bs=1 seek=$pos conv=notrunc status=none
  "$tmp/bad" --info >/dev/null 2>&1
  rc=$?
  [ $rc -le 3 ] || fail "a damaged plan (byte $pos) crashed the runner (exit $rc)"
done
echo "ok: damaged executables"
