#!/usr/bin/env bash
# A local federation on loopback: one foundation and three partners, each a
# real fedshare-node with its own RocksDB folder, certificates from a
# development CA, synthetic records and consents, and agreements that let
# the foundation ask program-evaluation questions.
#
#   deploy/local/federation.sh up   BIN_DIR RUN_DIR   # start everything
#   deploy/local/federation.sh down RUN_DIR           # stop every node it started
#
# `up` chooses free ports (each node binds port 0 and reports what it got),
# and writes RUN_DIR/env with the addresses and identities, for scripts and
# tests to source. Nothing listens beyond 127.0.0.1.
set -euo pipefail

TRUST_DOMAIN=demo.fedshare.local
PARTNERS=(partner-north partner-south partner-east)

log() { printf '%s\n' "$*" >&2; }

wait_ready() {  # FILE PID: wait (bounded) for a node's ready file
  local file=$1 pid=$2
  for _ in $(seq 1 300); do
    [ -s "$file" ] && return 0
    kill -0 "$pid" 2>/dev/null || { log "node $pid exited; see ${file%.ready}.log"; return 1; }
    sleep 0.1
  done
  log "node $pid did not become ready in 30 s"
  return 1
}

field() {  # FILE KEY: the value of KEY=... in a ready line
  tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"
}

schema() {
  cat <<'PB'
datasets {
  name: "program_outcomes"
  description: "Program participants and their outcomes"
  consent_basis: OPT_IN
  fields { name: "participant_id" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION public_values: true
           categories: ["literacy", "numeracy", "mentoring", "employment"] }
  fields { name: "region" type: CATEGORY role: DIMENSION
           categories: ["north", "south", "east", "west", "central"] }
  fields { name: "cohort_year" type: INT64 role: DIMENSION }
  fields { name: "age" type: INT64 role: DIMENSION granularity: 5 }
  fields { name: "completed" type: BOOL role: DIMENSION }
  fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "sessions_attended" type: INT64 role: MEASURE lower: 0 upper: 200 }
  fields { name: "income" type: DOUBLE role: PRIVATE }
}
purposes { id: "research" description: "Research on program effects" }
purposes { id: "program-evaluation" parent: "research" dpv: "dpv:ServiceOptimisation" }
purposes { id: "marketing" dpv: "dpv:Marketing" }
PB
}

node_config() {  # ORG DIR
  local org=$1 dir=$2
  cat <<PB
org_id: "$org"
trust_domain: "$TRUST_DOMAIN"
data_dir: "data"
peer_address: "127.0.0.1:0"
local_address: "127.0.0.1:0"
tls { cert_file: "node/cert.pem" key_file: "node/key.pem" ca_file: "node/ca.pem"
      reload_interval_seconds: 5 }
PB
  schema
}

partner_agreement() {
  # The first permit that allows a whole question decides it: questions by
  # region or age with COUNT, SUM or HISTOGRAM get differentially private
  # answers; everything else falls to the exact agreement below.
  cat <<'PB'
agreements {
  id: "foundation-dp"
  description: "Noisy answers with an epsilon budget, for figures the foundation publishes"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "program-evaluation"
  aggregates: [COUNT, SUM, HISTOGRAM]
  group_fields: ["region", "age"]
  filter_fields: ["cohort_year"]
  measure_fields: ["outcome_score"]
  disclosure {
    mode: DIFFERENTIAL_PRIVACY
    max_records_per_subject: 2
    dp { epsilon_per_question: 0.5 budget_epsilon: 5 budget_window_seconds: 86400 }
  }
}
agreements {
  id: "foundation-program-evaluation"
  description: "The foundation may evaluate the programs it funds"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "program-evaluation"
  aggregates: [COUNT, COUNT_SUBJECTS, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM]
  filter_fields: ["program", "region", "cohort_year", "age", "completed"]
  group_fields: ["program", "region", "cohort_year", "completed"]
  measure_fields: ["outcome_score", "sessions_attended"]
  disclosure { mode: EXACT min_subjects: 10 }
}
PB
}

start_node() {  # ORG DIR BIN: start in the background, print the pid
  local org=$1 dir=$2 bin=$3
  rm -f "$dir/ready"
  "$bin/fedshare-node" --config "$dir/node.textproto" --ready-file "$dir/ready" \
    >/dev/null 2>"$dir/node.log" &
  echo $! >"$dir/pid"
  wait_ready "$dir/ready" "$(cat "$dir/pid")"
}

up() {
  local bin=$1 run=$2
  bin=$(cd "$bin" && pwd)
  mkdir -p "$run"
  run=$(cd "$run" && pwd)
  local fed="$bin/fedshare"

  log "== development CA and certificates (trust domain $TRUST_DOMAIN)"
  "$fed" certs ca --trust-domain "$TRUST_DOMAIN" --out "$run/pki/ca" >/dev/null
  for org in foundation "${PARTNERS[@]}"; do
    mkdir -p "$run/$org"
    "$fed" certs issue --ca "$run/pki/ca" --org "$org" --role node --out "$run/$org/node" >/dev/null
    "$fed" certs issue --ca "$run/pki/ca" --org "$org" --role operator --name admin \
      --out "$run/$org/operator" >/dev/null
  done
  "$fed" certs issue --ca "$run/pki/ca" --org foundation --role analyst --name ana \
    --out "$run/foundation/analyst" >/dev/null

  log "== partners: configs, synthetic data, nodes"
  local seed=1
  for org in "${PARTNERS[@]}"; do
    local dir="$run/$org"
    { node_config "$org" "$dir"; partner_agreement; } >"$dir/node.textproto"
    "$bin/fedshare-gen" --seed "$seed" --rows 3000 --out-dir "$dir/input" >/dev/null
    seed=$((seed + 1))
    start_node "$org" "$dir" "$bin"
    local local_addr
    local_addr=$(field "$dir/ready" local)
    "$fed" --node "$local_addr" --identity "$dir/operator" ingest --dataset program_outcomes \
      "$dir/input/records.csv" >&2
    "$fed" --node "$local_addr" --identity "$dir/operator" consent import \
      "$dir/input/consent.csv" >&2
    log "   $org: peer $(field "$dir/ready" peer), local $local_addr"
  done

  log "== foundation"
  local dir="$run/foundation"
  {
    node_config foundation "$dir"
    for org in "${PARTNERS[@]}"; do
      printf 'peers { org_id: "%s" address: "%s" groups: "grantees" }\n' \
        "$org" "$(field "$run/$org/ready" peer)"
    done
  } >"$dir/node.textproto"
  start_node foundation "$dir" "$bin"
  log "   foundation: peer $(field "$dir/ready" peer), local $(field "$dir/ready" local)"

  {
    echo "FEDSHARE_BIN=$bin"
    echo "FEDSHARE_RUN=$run"
    echo "FOUNDATION_LOCAL=$(field "$dir/ready" local)"
    echo "ANALYST=$run/foundation/analyst"
    for org in "${PARTNERS[@]}"; do
      local var=${org//-/_}
      echo "${var^^}_LOCAL=$(field "$run/$org/ready" local)"
      echo "${var^^}_PEER=$(field "$run/$org/ready" peer)"
    done
  } >"$run/env"
}

down() {
  local run=$1 pidfile pid
  for pidfile in "$run"/*/pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  up) up "$2" "$3" ;;
  down) down "$2" ;;
  *) echo "usage: $0 up BIN_DIR RUN_DIR | down RUN_DIR" >&2; exit 2 ;;
esac
