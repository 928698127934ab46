#!/usr/bin/env bash
# `make bench` at a small size, as a test: every row of both tables runs
# through the real programs (the engine in process, SQLite, a real node over
# gRPC+mTLS, the real CLI ingesting into a node on an empty store), and the
# bench's own checks hold: every checksum agrees, every ingest wrote every
# row, and the questions asked of the store the CLI wrote answer as the
# in-process engine does; then once with --no-ingest (the node on the store
# written in process). Figures are printed, never compared with a time.
set -euo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
build_dir=$1
run=$(mktemp -d /tmp/fedshare-bench-test.XXXXXX)
trap 'rm -rf "$run"' EXIT

rows=20000
out=$("$build_dir/bin/fedshare-bench" --rows "$rows" --runs 2 --ingest-runs 2 --dir "$run" 2>&1) || {
  code=$?
  printf '%s\n' "$out" >&2
  fail "fedshare-bench exited $code"
}
assert_contains "$out" "checksums agree" "bench output"
for row in "| engine in process" "| plain arrays + consent bitmap (baseline)" "| SQLite" \
  "| node over gRPC+mTLS, 1 client " "| node over gRPC+mTLS, 16 clients" \
  "| read the CSV, count its lines, in this process (baseline)" \
  "| fedshare ingest from the CLI, empty store, 2 runs"; do
  assert_line_starts "$out" "$row" "bench table"
done
# Both CLI ingests report every row written.
assert_contains "$out" "| $rows,$rows " "the ingest row's checksum"
assert_contains "$out" "on the store the CLI wrote" "the start after the ingest"
# The Q1 rows' checksums are one value, the ingest's rows included.
sums=$(grep -E '^\| (engine|plain|SQLite|node)' <<<"$out" | awk -F'|' '{print $7}' | sort -u | wc -l)
assert_eq "$sums" 1 "distinct Q1 checksums"

# Without the ingest rows the node is asked on the store the bench wrote in
# process, and the second table is not printed.
out=$("$build_dir/bin/fedshare-bench" --rows "$rows" --runs 2 --no-ingest --no-sqlite --dir "$run" 2>&1) || {
  code=$?
  printf '%s\n' "$out" >&2
  fail "fedshare-bench --no-ingest exited $code"
}
assert_contains "$out" "checksums agree" "bench --no-ingest output"
assert_contains "$out" "(node start on the store:" "bench --no-ingest output"
if grep -q "Ingest and start" <<<"$out"; then
  fail "bench --no-ingest printed the ingest table"
fi
