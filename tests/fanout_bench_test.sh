#!/usr/bin/env bash
# `make bench-fanout` at a small size, as a test: the fan-out table through the
# real programs (a real fedshare-node foundation, fedshare-sim-partners in both
# modes, real fedshare-node partner processes in both modes), every partner
# answering every question; the script's progress on stderr; and the variable
# it no longer takes refused. Figures are printed, never compared with a time.
set -euo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
build_dir=$1
script="$(dirname "${BASH_SOURCE[0]}")/../bench/fanout_bench.sh"
run=$(mktemp -d /tmp/fedshare-fanout-test.XXXXXX)
trap 'rm -rf "$run"' EXIT

code=0
FANOUT_DIR="$run" FANOUT_PARTNERS=3 FANOUT_REAL=2 FANOUT_QUESTIONS=2 \
  bash "$script" "$build_dir" >"$run/out" 2>"$run/err" || code=$?
out=$(cat "$run/out")
err=$(cat "$run/err")
if [ "$code" -ne 0 ]; then
  printf '%s\n%s\n' "$out" "$err" >&2
  cat "$run/stderr.log" >&2 || true
  fail "fanout_bench.sh exited $code"
fi
# One row per run, each with every answer in (the coverage column: answers
# of every partner to every timed question).
assert_line_starts "$out" "| partners | mode | p50 ms |" "fan-out table"
assert_line_starts "$out" "| 1 | partner-0 alone (baseline) |" "fan-out table"
for row in "| 3 | direct |" "| 3 | call-home |"; do
  assert_line_starts "$out" "$row" "fan-out table"
  line=$(grep -F "$row" <<<"$out")
  assert_eq "$(awk -F'|' '{gsub(/ /, "", $12); print $12}' <<<"$line")" "6/6" "coverage of $row"
done
for row in "| 2 | 2 real processes, direct |" "| 2 | 2 real processes, call-home |"; do
  assert_line_starts "$out" "$row" "fan-out table"
  line=$(grep -F "$row" <<<"$out")
  assert_eq "$(awk -F'|' '{gsub(/ /, "", $12); print $12}' <<<"$line")" "4/4" "coverage of $row"
done
# Header, rule, the baseline and the four runs, nothing else.
assert_eq "$(grep -c '^|' <<<"$out")" 7 "lines of the fan-out table"
# Progress on stderr, each run announced and timed.
for what in "3 simulated partners, direct" "3 simulated partners, call-home" \
  "2 real partner processes, direct" "2 real partner processes, call-home"; do
  assert_contains "$err" "fanout_bench.sh: $what ..." "progress"
  assert_contains "$err" "fanout_bench.sh: $what took " "progress"
done

# A run that fails is named, with where its output went, and ends the script
# with its status: here a build folder whose simulator is not a program.
mkdir -p "$run/broken/bin"
printf '#!/bin/sh\necho "simulated failure" >&2\nexit 3\n' >"$run/broken/bin/fedshare-sim-partners"
chmod +x "$run/broken/bin/fedshare-sim-partners"
code=0
FANOUT_DIR="$run/broken-out" FANOUT_PARTNERS=3 FANOUT_REAL=0 \
  bash "$script" "$run/broken" >"$run/out" 2>"$run/err" || code=$?
assert_eq "$code" 3 "exit status of a failed run"
assert_contains "$(cat "$run/err")" "3 simulated partners, direct failed (exit 3); see $run/broken-out/stderr.log" "failure"
assert_contains "$(cat "$run/broken-out/stderr.log")" "simulated failure" "the failed run's log"

# The variable of the old default sizes is refused, saying what replaced it.
code=0
FANOUT_DIR="$run" FANOUT_LARGE=1 bash "$script" "$build_dir" >"$run/out" 2>"$run/err" || code=$?
assert_eq "$code" 2 "exit status with FANOUT_LARGE"
assert_contains "$(cat "$run/err")" "FANOUT_LARGE is gone" "refusal"
