#!/bin/sh
# run_checks.sh TEST MORC FILECHECK EXAMPLES: run every `// RUN: ...` line of
# TEST with bash (pipefail), after substituting %s (the test file), %t (one
# scratch path for the whole file, as in lit), %S (its folder), %morc, %FileCheck and %examples. `not CMD` inverts CMD's
# exit status (it must fail with 1 or 2, not crash).
set -u
test_file=$1 morc=$2 filecheck=$3 examples=$4
scratch=$(mktemp -d "${TMPDIR:-/tmp}/morc-check.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
not() { "$@"; rc=$?; [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ]; }
n=0
grep '^// RUN:' "$test_file" | sed 's|^// RUN: *||' > "$scratch/run_lines"
while IFS= read -r line; do
  n=$((n + 1))
  cmd=$(printf '%s' "$line" | sed -e "s|%S|$(dirname "$test_file")|g" -e "s|%s|$test_file|g" -e "s|%t|$scratch/t|g" -e "s|%morc|$morc|g" \
        -e "s|%FileCheck|$filecheck|g" -e "s|%examples|$examples|g")
  echo "RUN $n: $cmd"
  if ! bash -o pipefail -c "not() { \"\$@\"; rc=\$?; [ \"\$rc\" -eq 1 ] || [ \"\$rc\" -eq 2 ]; }; $cmd"; then
    echo "FAILED: RUN line $n of $test_file"
    exit 1
  fi
done < "$scratch/run_lines"
[ "$n" -gt 0 ] || { echo "no RUN lines in $test_file"; exit 1; }
echo "passed ($n RUN lines)"
