#!/usr/bin/env bash
# hostile.sh: names from model files never reach the generated CUDA source
# unescaped. A model's IR with a module name and weight/cache names made to
# break out of comments and strings (*/, newlines, quotes, backslashes,
# #error, %s) still gives a .cu that NVRTC compiles, and none of the hostile
# text appears in the source, the PTX or the launch plan.
# usage: hostile.sh MORC PTXAS MODEL
set -euo pipefail
morc=$1 ptxas=$2 model=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$morc" dump "$model" -O2 > "$tmp/plain.mor"
# @"..." names: \n, \" and \\ are IR string escapes
evil='*/\n#error INJECTED_A\n/* \" \\ %s %n'
evil=$(printf '%s' "$evil" | sed 's/\\/\\\\/g') # backslashes doubled for sed's replacement text
sed -e "s|^module @[^ ]*|module @\"m$evil\"|" \
    -e "s|@model\.embed_tokens\.weight|@\"e$evil\"|g" \
    -e "s|@kv\.0\b|@\"k$evil\"|g" \
    -e "s|@model\.norm\.weight|@\"n$evil\"|g" "$tmp/plain.mor" > "$tmp/evil.mor"
grep -q 'INJECTED_A' "$tmp/evil.mor" || { echo "FAIL: the hostile IR was not made"; exit 1; }
"$morc" build "$tmp/evil.mor" --target cuda --emit=cuda -o "$tmp/k.cu"
"$morc" build "$tmp/evil.mor" --target cuda --emit=plan -o "$tmp/plan.txt"
"$morc" build "$tmp/evil.mor" --target cuda --emit=ptx -o "$tmp/k.ptx"
"$ptxas" -arch=sm_90 "$tmp/k.ptx" -o "$tmp/k.cubin"
for f in k.cu plan.txt k.ptx; do
  # INJECTED_A may only appear right after the escaped "#error " (\x23error\x20)
  if grep -n -e '#error' -e 'INJECTED_A' "$tmp/$f" | grep -v 'x23error\\x20INJECTED_A' | grep -q .; then
    grep -n -e '#error' -e 'INJECTED_A' "$tmp/$f" | head
    echo "FAIL: hostile text reached $f unescaped"; exit 1
  fi
done
# the escaped form is there (the names are shown, safely)
grep -q 'model .m\\x2a\\x2f\\x0a\\x23error\\x20INJECTED_A\\x0a' "$tmp/k.cu" ||
  { echo "FAIL: the module name is not shown escaped in the banner"; head -3 "$tmp/k.cu"; exit 1; }
head -1 "$tmp/k.cu"
echo "ok: hostile names escaped"
