#!/usr/bin/env bash
# bad_inputs.sh: every golden bad input (tests/bad/frontend/*.json,
# tests/bad/ir/*.mor) through the morc command line: exit code 1, one
# "morc: error: " message holding the expected text (the .expected file
# beside it), and no output file left behind.
# usage: bad_inputs.sh MORC REPO_ROOT
set -uo pipefail
morc=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0
for input in "$root"/tests/bad/frontend/*.json "$root"/tests/bad/ir/*.mor; do
  base=${input%.*}
  [ -f "$base.expected" ] || continue # valid.json, ok_*.mor, shard indexes
  n=$((n + 1))
  "$morc" dump "$input" -o "$tmp/out.mor" >/dev/null 2>"$tmp/err"
  rc=$?
  # the expected text may span lines: compare it with the message as one string
  if [ "$rc" -ne 1 ]; then
    echo "FAIL: $(basename "$input"): exit $rc (want 1)"; sed 's/^/    /' "$tmp/err"; fails=$((fails + 1))
  elif [ "$(head -c 13 "$tmp/err")" != "morc: error: " ]; then
    echo "FAIL: $(basename "$input"): the message does not start with 'morc: error: '"; sed 's/^/    /' "$tmp/err"
    fails=$((fails + 1))
  elif ! want=$(cat "$base.expected") awk 'BEGIN { RS = "\001" } { exit index($0, ENVIRON["want"]) ? 0 : 1 }' "$tmp/err"; then
    echo "FAIL: $(basename "$input"): the message lacks the expected text"; sed 's/^/    /' "$tmp/err"
    echo "    (wanted: $(cat "$base.expected"))"; fails=$((fails + 1))
  elif ls "$tmp" | grep -q out; then
    echo "FAIL: $(basename "$input"): left an output file behind"; fails=$((fails + 1))
  fi
  rm -f "$tmp"/out*
done
echo "$((n - fails)) passed, $fails failed"
[ "$n" -gt 50 ] && [ "$fails" -eq 0 ]
