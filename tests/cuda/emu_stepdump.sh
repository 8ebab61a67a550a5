#!/usr/bin/env bash
# emu_stepdump.sh: --dump-steps and stepcmp, the tools that find the first
# kernel whose results differ between a GPU and the CPU emulation. Dumps of
# the same run under two emulation schedules agree; a run whose last token
# differs first differs at the embedding step of the second call; a cut
# file, a file that is not a dump and a failed run are handled.
# usage: emu_stepdump.sh MORC CXX EMU_H DRIVER_SO STEPCMP MODEL
set -uo pipefail
morc=$1 cxx=$2 emuh=$3 driver=$4 stepcmp=$5 model=$6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$morc" build "$model" --target cuda --no-mma -o "$tmp/m" || fail "morc build"
"$morc" build "$model" --target cuda --no-mma --emit=cuda -o "$tmp/k.cu" || fail "morc build --emit=cuda"
"$cxx" -std=c++17 -O1 -fPIC -shared -w -include "$emuh" -x c++ "$tmp/k.cu" -o "$tmp/k.so" || fail "compiling the kernels"
export MORRT_CUDA_DRIVER=$driver MORC_EMU_KERNELS=$tmp/k.so
"$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --dump-steps "$tmp/a.dump" --logits "$tmp/a.npy" || fail "run with --dump-steps"
"$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --logits "$tmp/plain.npy" || fail "run"
cmp -s "$tmp/a.npy" "$tmp/plain.npy" || fail "--dump-steps changed the logits"
MORC_EMU_SCHEDULE=shuffle:3 "$tmp/m" --tokens 1,2,3,4,5 --chunks 4,1 --dump-steps "$tmp/b.dump" || fail "run (shuffled)"
"$stepcmp" "$tmp/a.dump" "$tmp/b.dump" > "$tmp/out.txt"; rc=$?
[ $rc = 0 ] || { cat "$tmp/out.txt"; fail "the same run under two schedules: stepcmp exit $rc"; }
grep -q "steps agree" "$tmp/out.txt" || fail "stepcmp said: $(cat "$tmp/out.txt")"
echo "ok: the same run agrees ($(cat "$tmp/out.txt"))"
"$tmp/m" --tokens 1,2,3,4,6 --chunks 4,1 --dump-steps "$tmp/c.dump" || fail "run (other last token)"
"$stepcmp" "$tmp/a.dump" "$tmp/c.dump" > "$tmp/out.txt"; rc=$?
[ $rc = 1 ] || { cat "$tmp/out.txt"; fail "another last token: stepcmp exit $rc, expected 1"; }
grep -q "^first difference: call 1, step 0 (embed" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "not the second call's embedding"; }
echo "ok: another last token first differs at the second call's embedding"
size=$(stat -c %s "$tmp/c.dump")
head -c $((size - 10)) "$tmp/c.dump" > "$tmp/cut.dump"
"$stepcmp" "$tmp/a.dump" "$tmp/cut.dump" > /dev/null 2> "$tmp/err.txt"; rc=$?
[ $rc = 2 ] && grep -q "cut short" "$tmp/err.txt" || fail "a cut dump: exit $rc, $(cat "$tmp/err.txt")"
"$stepcmp" "$tmp/a.dump" "$tmp/a.npy" > /dev/null 2> "$tmp/err.txt"; rc=$?
[ $rc = 2 ] && grep -q "not a step record" "$tmp/err.txt" || fail "not a dump: exit $rc, $(cat "$tmp/err.txt")"
"$stepcmp" "$tmp/a.dump" > /dev/null 2>&1; [ $? = 2 ] || fail "stepcmp without B did not exit 2"
echo "ok: cut files, other files, usage"
MORC_EMU_FAULT=7 "$tmp/m" --tokens 1,2,3,4,5 --dump-steps "$tmp/f.dump" 2> "$tmp/err.txt"; rc=$?
[ $rc = 3 ] || fail "a faulting run with --dump-steps exited $rc"
[ -e "$tmp/f.dump" ] || [ -e "$tmp/f.dump.part" ] && fail "a failed run left a dump behind"
grep -q "running step 6" "$tmp/err.txt" || fail "a faulting run with --dump-steps: $(cat "$tmp/err.txt")"
echo "ok: a failed run leaves no dump and names the step"
