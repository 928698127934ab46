#!/usr/bin/env bash
# Fan-out to N real fedshare-node partner processes (issue 13; docs/performance.md
# "Fan-out"), measured like fedshare-sim-partners and printed as one row of its
# table.
#
#   bench/real_partners_bench.sh BUILD_DIR [N=50] [MODE=direct|call-home]
#
# Each partner is a fedshare-node with its own config, certificate, RocksDB
# folder, 300 synthetic records (fedshare-gen) loaded with `fedshare ingest` and
# `fedshare consent import`, and an agreement for the foundation. Direct
# partners listen on a loopback port each; call-home partners listen on
# nothing but their admin port and dial the foundation. Then the foundation
# starts, fedshare-sim-partners --foundation-pid measures it, and every node
# is stopped (SIGTERM, then SIGKILL after 10 s), also on error or Ctrl-C.
set -euo pipefail
build_dir=${1:-build}
n=${2:-50}
mode=${3:-direct}
questions=${FANOUT_QUESTIONS:-20}
bin=$(cd "$build_dir/bin" && pwd)
run=$(mktemp -d /tmp/fedshare-bench-real.XXXXXX)
trust_domain=bench.fedshare.local
pids=()

log() { printf '%s\n' "$*" >&2; }

stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$run"
}
trap stop_all EXIT

field() {  # FILE KEY: the value of KEY=... in a ready line
  tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"
}

start_node() {  # DIR: start in the background; wait (bounded) for its ready file
  local dir=$1
  "$bin/fedshare-node" --config "$dir/node.textproto" --ready-file "$dir/ready" \
    >/dev/null 2>"$dir/node.log" &
  pids+=($!)
  for _ in $(seq 1 600); do
    [ -s "$dir/ready" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { log "node exited; see $dir/node.log"; return 1; }
    sleep 0.1
  done
  log "node in $dir did not become ready in 60 s"
  return 1
}

node_config() {  # ORG
  cat <<PB
org_id: "$1"
trust_domain: "$trust_domain"
data_dir: "data"
peer_address: "127.0.0.1:0"
local_address: "127.0.0.1:0"
tls { cert_file: "node/cert.pem" key_file: "node/key.pem" ca_file: "node/ca.pem" }
PB
  cat "$run/schema.textproto"
}

"$bin/fedshare" certs ca --trust-domain "$trust_domain" --out "$run/pki/ca" >/dev/null
"$bin/fedshare-gen" --seed 1 --rows 1 --out-dir "$run/schema" >/dev/null
# The dataset and purposes of fedshare-gen's sample config.
cp "$run/schema/config.textproto" "$run/schema.textproto"

log "== $n partner nodes ($mode)"
for i in $(seq 0 $((n - 1))); do
  org=partner-$i
  dir=$run/$org
  mkdir -p "$dir"
  "$bin/fedshare" certs issue --ca "$run/pki/ca" --org "$org" --role node --out "$dir/node" \
    >/dev/null
  "$bin/fedshare" certs issue --ca "$run/pki/ca" --org "$org" --role operator --name op \
    --out "$dir/operator" >/dev/null
  {
    node_config "$org"
    cat <<'PB'
agreements {
  id: "open"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "program-evaluation"
  aggregates: [COUNT, COUNT_SUBJECTS, AVG]
  group_fields: ["program"]
  measure_fields: ["outcome_score"]
  disclosure { repeat_limit: 1000000 }
}
PB
    if [ "$mode" = call-home ]; then
      echo 'disable_peer_listener: true'
      echo 'upstreams { org_id: "foundation" address: "FOUNDATION_PEER" }'
    fi
  } >"$dir/node.textproto"
  "$bin/fedshare-gen" --seed $((i + 1)) --rows 300 --out-dir "$dir/input" >/dev/null
done

mkdir -p "$run/foundation"
"$bin/fedshare" certs issue --ca "$run/pki/ca" --org foundation --role node \
  --out "$run/foundation/node" >/dev/null
"$bin/fedshare" certs issue --ca "$run/pki/ca" --org foundation --role analyst --name ana \
  --out "$run/foundation/analyst" >/dev/null

load_partner() {  # DIR
  local dir=$1 local_addr
  local_addr=$(field "$dir/ready" local)
  "$bin/fedshare" --node "$local_addr" --identity "$dir/operator" ingest \
    --dataset program_outcomes "$dir/input/records.csv" >/dev/null
  "$bin/fedshare" --node "$local_addr" --identity "$dir/operator" consent import \
    "$dir/input/consent.csv" >/dev/null
}

foundation_config() {
  node_config foundation
  echo 'peer_deadline_ms: 60000'
  echo "limits { max_connections: $((n + 64)) }"
  for i in $(seq 0 $((n - 1))); do
    if [ "$mode" = call-home ]; then
      printf 'peers { org_id: "partner-%d" call_home: true }\n' "$i"
    else
      printf 'peers { org_id: "partner-%d" address: "%s" }\n' "$i" \
        "$(field "$run/partner-$i/ready" peer)"
    fi
  done
}

if [ "$mode" = call-home ]; then
  # The foundation first, on a port of its own choosing; partners dial it.
  foundation_config >"$run/foundation/node.textproto"
  start_node "$run/foundation"
  foundation_peer=$(field "$run/foundation/ready" peer)
  for i in $(seq 0 $((n - 1))); do
    sed -i "s/FOUNDATION_PEER/$foundation_peer/" "$run/partner-$i/node.textproto"
    start_node "$run/partner-$i"
    load_partner "$run/partner-$i"
  done
else
  for i in $(seq 0 $((n - 1))); do
    start_node "$run/partner-$i"
    load_partner "$run/partner-$i"
  done
  foundation_config >"$run/foundation/node.textproto"
  start_node "$run/foundation"
fi
foundation_pid=${pids[0]}
[ "$mode" = call-home ] || foundation_pid=${pids[-1]}

if [ "$mode" = call-home ]; then  # until every partner holds its stream
  for _ in $(seq 1 600); do
    connected=$("$bin/fedshare" --node "$(field "$run/foundation/ready" local)" \
      --identity "$run/foundation/analyst" peers --no-probe 2>/dev/null | grep -cw connected || true)
    [ "$connected" -ge "$n" ] && break
    sleep 0.2
  done
fi

# Partner 0 alone (the baseline) is asked on its peer port, which a
# call-home partner does not have: there the baseline column stays empty.
partner0=$(field "$run/partner-0/ready" peer)
[ "$partner0" = none ] && partner0=
"$bin/fedshare-sim-partners" --foundation-pid "$foundation_pid" \
  --foundation-local "$(field "$run/foundation/ready" local)" \
  --analyst-dir "$run/foundation/analyst" --node-dir "$run/foundation/node" \
  --trust-domain "$trust_domain" --partner0-address "$partner0" \
  --partner0-org partner-0 --partners "$n" --mode "$n real processes, $mode" \
  --questions "$questions" "${@:4}"
