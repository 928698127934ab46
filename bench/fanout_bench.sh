#!/usr/bin/env bash
# `make bench-fanout`: the fan-out table of docs/performance.md ("Fan-out").
#
#   bench/fanout_bench.sh BUILD_DIR
#
# For each size in FANOUT_PARTNERS (default "10 100 1000"; FANOUT_LARGE=1 adds
# 5000), fedshare-sim-partners in both modes, then FANOUT_REAL (default 50) real
# fedshare-node partner processes in both modes (bench/real_partners_bench.sh).
# Prints one Markdown table: the first row is partner 0 asked alone (the
# baseline); the rest one row per run. Certificates are kept in
# BUILD_DIR/bench-fanout for later runs. Sizes of 1,000 and more time
# FANOUT_QUESTIONS_LARGE (default 5) questions, smaller ones FANOUT_QUESTIONS
# (default 20).
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
sizes=${FANOUT_PARTNERS:-10 100 1000}
[ "${FANOUT_LARGE:-0}" = 1 ] && sizes="$sizes 5000"
real=${FANOUT_REAL:-50}
dir="$build_dir/bench-fanout"
mkdir -p "$dir"

first=(--header --baseline-row)
for n in $sizes; do
  questions=${FANOUT_QUESTIONS:-20}
  [ "$n" -ge 1000 ] && questions=${FANOUT_QUESTIONS_LARGE:-5}
  for mode in direct call-home; do
    "$build_dir/bin/fedshare-sim-partners" --partners "$n" --mode "$mode" --dir "$dir" \
      --questions "$questions" "${first[@]}" 2>>"$dir/stderr.log"
    first=()
  done
done
if [ "$real" -gt 0 ]; then
  for mode in direct call-home; do
    FANOUT_QUESTIONS=${FANOUT_QUESTIONS:-20} bash "$here/real_partners_bench.sh" "$build_dir" \
      "$real" "$mode" 2>>"$dir/stderr.log"
  done
fi
