# expect.sh: sourced by the CUDA test scripts (needs $tmp and fail()).
# expect CODE PATTERN COMMAND...: COMMAND exits CODE and its stderr matches PATTERN
# (stdout in $tmp/out.txt, stderr in $tmp/err.txt).
expect() {
  local code=$1 pat=$2; shift 2
  "$@" > "$tmp/out.txt" 2> "$tmp/err.txt"
  local rc=$?
  [ "$rc" = "$code" ] || { cat "$tmp/err.txt"; fail "'$*' exited $rc, expected $code"; }
  grep -q -- "$pat" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "'$*' did not say '$pat'"; }
  return 0
}
