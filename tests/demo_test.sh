#!/usr/bin/env bash
# `make demo` as a test: the local federation script stands up a foundation
# and three partners, and the demo must print the coverage of all three and a
# combined table, then stop every node it started.
set -euo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
build_dir=$1
here=$(cd "$(dirname "$0")/.." && pwd)
run=$(mktemp -d /tmp/fedshare-demo-test.XXXXXX)
trap 'rm -rf "$run"' EXIT

out=$(FEDSHARE_DEMO_DIR=$run bash "$here/deploy/local/demo.sh" "$build_dir" 2>&1) || {
  code=$?
  printf '%s\n' "$out" >&2
  fail "deploy/local/demo.sh exited $code"
}
for expected in "coverage: 3 of 3 partners answered" "partner-north  answered" \
  "partner-south  answered" "partner-east   answered" "combined:" "rule 'purpose'" \
  "audit log verifies" "OK      receipt of partner-north" "OK      receipt of foundation" "dry run: this question would cost epsilon 0.5; epsilon left 5 of 5" \
  "95% interval of the true figure" "differential privacy: epsilon spent 0.5; epsilon left 4.5 of 5"; do
  assert_contains "$out" "$expected" "demo output"
done
if grep -q "FAILED  receipt" <<<"$out"; then
  fail "a receipt of the demo does not verify"
fi
# Every node the demo started has stopped: none of their ports answers.
checked=0
for ready in "$run"/*/ready; do
  for port in $(tr ' ' '\n' <"$ready" | sed -n 's/^\(peer\|local\)=.*://p'); do
    checked=$((checked + 1))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      fail "port $port still accepts connections after the demo"
    fi
  done
done
assert_eq "$checked" 8 "listener ports of the demo's 4 nodes"
echo "demo test: 1 passed, 0 failed"
