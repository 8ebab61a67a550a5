#!/usr/bin/env bash
# The exact runs of the KJV study (docs/routing-study.md). Two single-threaded
# trainings at a time (2 cores; one torch thread per process is ~3x faster than
# two threads on this shared machine). Every run is resumable: rerun this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
W=${W:-build-kjv}
MOR_STEPS=${MOR_STEPS:-200}
[ -f $W/data/train.npy ] || $PY tools/train/data.py $W/data
run() { local name=$1; shift; $PY tools/train/train.py --data $W/data --out $W/$name "$@" > $W/$name.log 2>&1; }
mkdir -p $W
run mor --kind mor --steps $MOR_STEPS &
run vanilla --kind vanilla --match-mor-steps $MOR_STEPS &
wait
run recursive --kind recursive --match-mor-steps $MOR_STEPS &
# token choice: with balanced depths its per-token compute is the MoR one, so
# equal compute is --steps $MOR_STEPS; the study's run was cut to 100 steps for time
# (started with 200, resumed at its step-50 checkpoint with --steps 100)
run tc --kind tc --steps $((MOR_STEPS / 2)) &
wait
