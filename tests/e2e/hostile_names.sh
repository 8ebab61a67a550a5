#!/usr/bin/env bash
# hostile_names.sh: names that come from model files (a model's folder name
# becomes the module name; tensor names; symbol names in IR text) hold
# quotes, newlines, "*/", backslashes, '%', control bytes, bytes that are not
# UTF-8 and a bidi override. Every output that shows them (IR text, DOT,
# reports, LLVM IR, C headers, error messages) must escape them: no control
# byte but newline and tab, valid UTF-8, no line a name could add, and text
# that its own reader (morc, dot, llvm-as, cc) still accepts.
# usage: hostile_names.sh MORC REPO_ROOT [LLVM_AS]
set -uo pipefail
morc=$1 root=$2 llvm_as=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
# safe FILE WHAT: no control bytes but newline and tab, well-formed UTF-8
safe() {
  n=$((n + 1))
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$1"; then fail "$2: control byte in the output"; return 1; fi
  if ! iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1; then fail "$2: the output is not UTF-8"; return 1; fi
  return 0
}
# ok RC WHAT: the command succeeded
ok() {
  n=$((n + 1))
  [ "$1" -eq 0 ] || { fail "$2: exit $1"; sed 's/^/    /' "$tmp/err"; }
}
has() { command -v "$1" >/dev/null 2>&1; }

# ---- a model in a hostile folder ---------------------------------------------
# The path also has "*/" and a would-be C declaration in it (for C comments).
name=$'ev"il\n \\%s%n\x01\xff\xe2\x80\xae`$(id)'
dir="$tmp/x*/ int injected_decl; /*/$name"
mkdir -p "$dir" "$tmp/plain"
cp "$root/examples/none_cycle/model.json" "$root/examples/none_cycle/model.safetensors" "$dir/"
cp "$root/examples/none_cycle/model.json" "$root/examples/none_cycle/model.safetensors" "$tmp/plain/"

"$morc" dump "$dir/model.json" -o "$tmp/a.mor" 2>"$tmp/err"; ok $? "dump of the hostile folder"
safe "$tmp/a.mor" "dump" && {
  n=$((n + 1))
  head -1 "$tmp/a.mor" | grep -qF 'module @"ev\"il\n \\%s%n\x01\xff\xe2\x80\xae`$(id)"' ||
    fail "dump: the module name is not quoted with escapes: $(head -1 "$tmp/a.mor" | cut -c1-80)"
  "$morc" dump "$tmp/a.mor" -o "$tmp/b.mor" 2>"$tmp/err"; ok $? "dump of the dumped IR"
  n=$((n + 1)); cmp -s "$tmp/a.mor" "$tmp/b.mor" || fail "dump: the IR text does not read back the same"
}

"$morc" dump --dot "$dir/model.json" -o "$tmp/a.dot" 2>"$tmp/err"; ok $? "dump --dot"
if safe "$tmp/a.dot" "dump --dot" && has dot; then
  n=$((n + 1)); dot -Tsvg "$tmp/a.dot" -o /dev/null 2>"$tmp/err" || { fail "dot does not read the DOT"; sed 's/^/    /' "$tmp/err"; }
fi

"$morc" report "$dir/model.json" >"$tmp/r.txt" 2>"$tmp/err"; ok $? "report"
"$morc" report "$tmp/plain/model.json" >"$tmp/rp.txt" 2>"$tmp/err"; ok $? "report of the plain copy"
if safe "$tmp/r.txt" "report"; then
  n=$((n + 1))
  [ "$(wc -l <"$tmp/r.txt")" -eq "$(wc -l <"$tmp/rp.txt")" ] || fail "report: the name added lines to the report"
fi

if "$morc" build --help >/dev/null 2>&1; then
  "$morc" build "$dir/model.json" --emit=llvm -o "$tmp/m.ll" 2>"$tmp/err"; ok $? "build --emit=llvm"
  safe "$tmp/m.ll" "build --emit=llvm"
  if [ -n "$llvm_as" ]; then
    n=$((n + 1)); "$llvm_as" "$tmp/m.ll" -o /dev/null 2>"$tmp/err" || { fail "llvm-as rejects the LLVM IR"; sed 's/^/    /' "$tmp/err"; }
  fi
  "$morc" build "$dir/model.json" --emit=bundle -o "$tmp/bund" 2>"$tmp/err"; ok $? "build --emit=bundle"
  if safe "$tmp/bund.h" "build --emit=bundle header"; then
    printf '#include "bund.h"\nconst char *weights_file = BUND_WEIGHTS_FILE;\n' >"$tmp/use.c"
    n=$((n + 1))
    if ! cc -std=c11 -Wall -Werror -fsyntax-only -I"$root" -I"$tmp" "$tmp/use.c" 2>"$tmp/err"; then
      fail "the bundle header does not compile"; sed 's/^/    /' "$tmp/err"
    elif cc -std=c11 -E -I"$root" -I"$tmp" "$tmp/use.c" 2>/dev/null | grep -q injected_decl; then
      fail "the model path escaped the header's comment"
    fi
  fi
fi

"$morc" run "$dir/model.json" --tokens 1,2,3 --logits "$tmp/l.npy" 2>"$tmp/err"; ok $? "run"

# ---- a hostile tensor name: only an error message can show it -----------------
# st FILE NAME_AS_JSON: a safetensors file with one F32 tensor of shape [1]
st() {
  local h="{\"$2\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
  local len=${#h} le="" i
  LC_ALL=C len=$(printf '%s' "$h" | wc -c)
  for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(((len >> (8 * i)) & 255))); done
  { printf "$le"; printf '%s' "$h"; printf '\0\0\0\0'; } >"$1"
}
mkdir -p "$tmp/t"
cp "$root/examples/none_cycle/model.safetensors" "$tmp/t/"
sed 's/"weights": \[/"weights": ["evil.safetensors", /' "$root/examples/none_cycle/model.json" >"$tmp/t/model.json"
st "$tmp/t/evil.safetensors" $'a\\"b\\nc*/ \\\\%s%n\xff\\u0001\xe2\x80\xae'
"$morc" dump "$tmp/t/model.json" >/dev/null 2>"$tmp/err"
rc=$?
n=$((n + 1)); [ "$rc" -eq 1 ] || fail "unexpected hostile tensor: exit $rc (want 1)"
if safe "$tmp/err" "unexpected-tensor message"; then
  n=$((n + 1)); [ "$(wc -l <"$tmp/err")" -eq 1 ] || { fail "the tensor name added lines to the message:"; sed 's/^/    /' "$tmp/err"; }
  n=$((n + 1))
  grep -qF "unexpected tensor 'a\\\"b\\nc*/ \\\\%s%n\\xff\\x01\\xe2\\x80\\xae'" "$tmp/err" ||
    { fail "the message does not show the escaped name:"; sed 's/^/    /' "$tmp/err"; }
fi

# ---- hostile symbol names in IR text ---------------------------------------------
hn='@"h\"o\\s\nt*/ %s%n\xff\x01\xe2\x80\xae"'
hn_sed=$(printf '%s' "$hn" | sed 's/[\\&|]/\\&/g') # as a sed replacement
sed -e "s|@\"odd \\\\\"name\\\\\"\\\\n\\*/\"|$hn_sed|g" -e 's|@kv\.0|@"kv\\n0\\xff"|g' "$root/tests/bad/ir/ok_small.mor" >"$tmp/h.mor"
n=$((n + 1)); grep -qF 'h\"o' "$tmp/h.mor" || fail "test setup: no hostile name in h.mor"
"$morc" dump "$tmp/h.mor" -o "$tmp/h1.mor" 2>"$tmp/err"; ok $? "dump of IR text with hostile symbols"
if safe "$tmp/h1.mor" "dump of IR text"; then
  "$morc" dump "$tmp/h1.mor" -o "$tmp/h2.mor" 2>"$tmp/err"; ok $? "dump of the dumped IR text"
  n=$((n + 1)); cmp -s "$tmp/h1.mor" "$tmp/h2.mor" || fail "IR text with hostile symbols does not read back the same"
fi
"$morc" dump --dot "$tmp/h.mor" -o "$tmp/h.dot" 2>"$tmp/err"; ok $? "dump --dot of IR text"
if safe "$tmp/h.dot" "dump --dot of IR text" && has dot; then
  n=$((n + 1)); dot -Tsvg "$tmp/h.dot" -o /dev/null 2>"$tmp/err" || { fail "dot does not read the DOT of IR text"; sed 's/^/    /' "$tmp/err"; }
fi
if "$morc" opt --help >/dev/null 2>&1; then
  "$morc" opt "$tmp/h.mor" -O2 -o "$tmp/ho.mor" 2>"$tmp/err"; ok $? "opt -O2 of IR text"
  safe "$tmp/ho.mor" "opt -O2 of IR text"
fi
"$morc" report "$tmp/h.mor" >"$tmp/hr.txt" 2>"$tmp/err"; ok $? "report of IR text"
safe "$tmp/hr.txt" "report of IR text"

# an error about a hostile symbol: the message is the error line, the source line and a caret
sed "s|  weight @r0 : f32\\[1, 4\\]|  weight @r0 : f32[1, 4]\\n  weight $hn_sed : f32[2]|" "$tmp/h.mor" >"$tmp/twice.mor"
"$morc" dump "$tmp/twice.mor" >/dev/null 2>"$tmp/err"
rc=$?
n=$((n + 1)); [ "$rc" -eq 1 ] || fail "symbol defined twice: exit $rc (want 1)"
if safe "$tmp/err" "defined-twice message"; then
  n=$((n + 1)); [ "$(wc -l <"$tmp/err")" -eq 3 ] || { fail "the symbol name added lines to the message:"; sed 's/^/    /' "$tmp/err"; }
fi

echo "$((n - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
