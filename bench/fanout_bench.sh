#!/usr/bin/env bash
# The fan-out table of docs/performance.md ("Fan-out"), run by `make bench` and
# `make bench-fanout`.
#
#   bench/fanout_bench.sh BUILD_DIR
#
# For each size in FANOUT_PARTNERS (default "10 100 1000 5000", the sizes of
# issue 13), fedshare-sim-partners in both modes, then FANOUT_REAL (default
# 50) real fedshare-node partner processes in both modes
# (bench/real_partners_bench.sh). Prints one Markdown table on stdout: the
# first row is partner 0 asked alone (the baseline); the rest one row per run.
# Says on stderr which run it is in, and how long each took; the tools' own
# logs go to DIR/stderr.log. Certificates are kept in DIR for later runs; DIR
# is FANOUT_DIR, by default BUILD_DIR/bench-fanout. Sizes of 1,000 and more time
# FANOUT_QUESTIONS_LARGE (default 5) questions, smaller ones FANOUT_QUESTIONS
# (default 20).
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${FANOUT_LARGE:-}" ]; then
  echo "fanout_bench.sh: FANOUT_LARGE is gone: 5000 partners are in the default sizes;" \
    "set FANOUT_PARTNERS=\"10 100 1000\" for a shorter run" >&2
  exit 2
fi
sizes=${FANOUT_PARTNERS:-10 100 1000 5000}
real=${FANOUT_REAL:-50}
dir=${FANOUT_DIR:-$build_dir/bench-fanout}
mkdir -p "$dir"

# One run, announced and timed on stderr; its own stderr goes to the log, and
# a failure says so and where to look, and ends the script with its status.
timed() {  # WHAT COMMAND...
  local what=$1 start=$SECONDS code=0
  shift
  echo "fanout_bench.sh: $what ..." >&2
  "$@" 2>>"$dir/stderr.log" || code=$?
  if [ "$code" -ne 0 ]; then
    echo "fanout_bench.sh: $what failed (exit $code); see $dir/stderr.log" >&2
    exit "$code"
  fi
  echo "fanout_bench.sh: $what took $((SECONDS - start)) s" >&2
}

first=(--header --baseline-row)
for n in $sizes; do
  questions=${FANOUT_QUESTIONS:-20}
  [ "$n" -ge 1000 ] && questions=${FANOUT_QUESTIONS_LARGE:-5}
  for mode in direct call-home; do
    timed "$n simulated partners, $mode" \
      "$build_dir/bin/fedshare-sim-partners" --partners "$n" --mode "$mode" --dir "$dir" \
      --questions "$questions" "${first[@]}"
    first=()
  done
done
if [ "$real" -gt 0 ]; then
  for mode in direct call-home; do
    timed "$real real partner processes, $mode" env FANOUT_QUESTIONS="${FANOUT_QUESTIONS:-20}" \
      bash "$here/real_partners_bench.sh" "$build_dir" "$real" "$mode"
  done
fi
