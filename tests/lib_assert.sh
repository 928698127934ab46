# Assertions for the shell tests, sourced by each:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
# Each helper checks one expectation; when it does not hold it prints
# "FAIL: ..." to stderr and exits 1 (in a subshell, only the subshell).
# shellcheck shell=bash

# fail MESSAGE...: the test fails here.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# assert_contains TEXT NEEDLE [WHAT]: TEXT holds NEEDLE (a fixed string).
# On failure TEXT is printed too.
assert_contains() {
  if [[ "$1" != *"$2"* ]]; then
    printf '%s\n' "$1" >&2
    fail "${3:-output} lacks: $2"
  fi
}

# assert_line_starts TEXT PREFIX [WHAT]: a line of TEXT starts with PREFIX.
assert_line_starts() {
  local line
  while IFS= read -r line; do
    [[ "$line" == "$2"* ]] && return 0
  done <<<"$1"
  printf '%s\n' "$1" >&2
  fail "${3:-output} has no line starting with: $2"
}

# assert_eq ACTUAL EXPECTED WHAT: the two strings are equal.
assert_eq() {
  [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# assert_ok WHAT COMMAND...: COMMAND exits 0.
assert_ok() {
  local what=$1
  shift
  "$@" || fail "$what (exit $?: $*)"
}
