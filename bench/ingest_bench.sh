#!/usr/bin/env bash
# `make bench-ingest`: ingest rows/s end to end from the CLI, the node's peak
# memory during the ingest, and the node's cold start on the loaded store.
#
#   bench/ingest_bench.sh BUILD_DIR [ROWS] [RUN_DIR]
#
# Generates ROWS synthetic records (fedshare-gen, default 1,000,000), starts a
# real node on loopback (ports it chooses), times `fedshare ingest` from the
# command's start to its end, reads the node's VmHWM, stops the node (TERM),
# then times a start on the same store from launch to the ready file, and a
# second ingest of a small file into the loaded store (the tail block path).
# Prints one table. Nothing listens beyond 127.0.0.1; RUN_DIR (default a new
# temporary folder) is removed at the end unless given.
set -euo pipefail
build_dir=${1:-build}
rows=${2:-1000000}
bin=$(cd "$build_dir/bin" && pwd)
keep=0
if [ -n "${3:-}" ]; then
  run=$3
  keep=1
  mkdir -p "$run"
else
  run=$(mktemp -d /tmp/fedshare-bench-ingest.XXXXXX)
fi
run=$(cd "$run" && pwd)
pid=

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [ "$keep" = 1 ] || rm -rf "$run"
}
trap cleanup EXIT

now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system, in clock ticks
field() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"; }

start_node() {  # sets pid; waits (bounded) for the ready file
  rm -f "$run/ready"
  "$bin/fedshare-node" --config "$run/node.textproto" --ready-file "$run/ready" \
    >/dev/null 2>>"$run/node.log" &
  pid=$!
  for _ in $(seq 1 6000); do
    [ -s "$run/ready" ] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "node exited; see $run/node.log" >&2; return 1; }
    sleep 0.01
  done
  echo "node did not become ready in 60 s" >&2
  return 1
}

stop_node() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}

"$bin/fedshare-gen" --seed 1 --rows "$rows" --out-dir "$run/input" >/dev/null
"$bin/fedshare-gen" --seed 2 --rows 1000 --out-dir "$run/more" >/dev/null
"$bin/fedshare" certs ca --trust-domain bench.fedshare.local --out "$run/pki/ca" >/dev/null
"$bin/fedshare" certs issue --ca "$run/pki/ca" --org bench --role node --out "$run/node" >/dev/null
"$bin/fedshare" certs issue --ca "$run/pki/ca" --org bench --role operator --name admin \
  --out "$run/operator" >/dev/null
{
  cat <<PB
org_id: "bench"
trust_domain: "bench.fedshare.local"
data_dir: "data"
peer_address: "127.0.0.1:0"
local_address: "127.0.0.1:0"
tls { cert_file: "node/cert.pem" key_file: "node/key.pem" ca_file: "node/ca.pem" }
limits { ingest_memory_budget_bytes: ${FEDSHARE_BENCH_INGEST_BUDGET:-0} }
PB
  cat "$run/input/config.textproto"
} >"$run/node.textproto"

start_node
local_addr=$(field "$run/ready" local)
bytes=$(stat -c %s "$run/input/records.csv")
# Baselines in the same run, on the same (cached) file: reading it, and
# counting its lines.
cat "$run/input/records.csv" >/dev/null
b0=$(now)
cat "$run/input/records.csv" >/dev/null
b1=$(now)
lines=$(wc -l <"$run/input/records.csv")
b2=$(now)
c0=$(cpu_ticks "$pid")
TIMEFORMAT='%U %S'
t0=$(now)
{ time "$bin/fedshare" --node "$local_addr" --identity "$run/operator" ingest \
  --dataset program_outcomes "$run/input/records.csv" >"$run/ingest.out"; } 2>"$run/cli.time"
t1=$(now)
c1=$(cpu_ticks "$pid")
cli_cpu=$(tail -n 1 "$run/cli.time" | awk '{print $1 + $2}')
written=$(sed -n 's/^wrote \([0-9]*\) rows.*/\1/p' "$run/ingest.out")
hwm_kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status")
t2=$(now)
"$bin/fedshare" --node "$local_addr" --identity "$run/operator" ingest \
  --dataset program_outcomes "$run/more/records.csv" >"$run/ingest-more.out"
t3=$(now)
stop_node

t4=$(now)
start_node
t5=$(now)
stop_node

awk -v rows="$rows" -v bytes="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" \
  -v t4="$t4" -v t5="$t5" -v hwm="$hwm_kib" -v cpu="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" \
  -v b0="$b0" -v b1="$b1" -v b2="$b2" -v lines="$lines" -v written="$written" \
  -v cli_cpu="$cli_cpu" 'BEGIN {
  printf "| figure | value |\n|---|---|\n"
  printf "| records ingested | %d (%.1f MiB CSV; rows written, the checksum: %d) |\n", rows, bytes / 1048576, written
  printf "| baseline: cat FILE > /dev/null (cached) | %.3f s (%.0f MiB/s) |\n", b1 - b0, bytes / 1048576 / (b1 - b0)
  printf "| baseline: wc -l FILE | %.3f s (%.0f lines/s, %d lines) |\n", b2 - b1, lines / (b2 - b1), lines
  printf "| ingest, CLI start to end | %.3f s (%.1fx wc -l) |\n", t1 - t0, (t1 - t0) / (b2 - b1)
  printf "| ingest rows/s | %.0f |\n", rows / (t1 - t0)
  printf "| CLI CPU (user + system) | %.2f s |\n", cli_cpu
  printf "| node CPU during the ingest (user + system) | %.2f s (%.0f rows per CPU second) |\n", cpu / hz, rows / (cpu / hz)
  printf "| node peak RSS (VmHWM) after the ingest | %.1f MiB |\n", hwm / 1024
  printf "| 1,000 more records into the loaded store | %.3f s |\n", t3 - t2
  printf "| cold start on the loaded store (launch to ready) | %.3f s |\n", t5 - t4
}'
