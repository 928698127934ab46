#!/usr/bin/env bash
# `make demo` as a test: the local federation script stands up a foundation
# and three partners, and the demo must print the coverage of all three and a
# combined table, then stop every node it started.
set -euo pipefail
build_dir=$1
here=$(cd "$(dirname "$0")/.." && pwd)
run=$(mktemp -d /tmp/fedshare-demo-test.XXXXXX)
out="$run.out"
trap 'rm -rf "$run" "$out"' EXIT

assert_contains() {
  if ! grep -qF -- "$1" "$out"; then
    echo "FAIL: demo output lacks: $1" >&2
    cat "$out" >&2
    exit 1
  fi
}

FEDSHARE_DEMO_DIR=$run bash "$here/deploy/local/demo.sh" "$build_dir" >"$out" 2>&1
assert_contains "coverage: 3 of 3 partners answered"
assert_contains "partner-north  answered"
assert_contains "partner-south  answered"
assert_contains "partner-east   answered"
assert_contains "combined:"
assert_contains "rule 'purpose'"
assert_contains "hash chain verifies"
# Every node the demo started has stopped: none of their ports answers.
checked=0
for ready in "$run"/*/ready; do
  for port in $(tr ' ' '\n' <"$ready" | sed -n 's/^\(peer\|local\)=.*://p'); do
    checked=$((checked + 1))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "FAIL: port $port still accepts connections after the demo" >&2
      exit 1
    fi
  done
done
if [ "$checked" -ne 8 ]; then
  echo "FAIL: expected 8 listener ports (4 nodes), found $checked" >&2
  exit 1
fi
echo "demo test: 1 passed, 0 failed"
