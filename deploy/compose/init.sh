#!/bin/sh
# One-shot init for deploy/compose: a development CA, node/operator/analyst
# certificates, node configs and synthetic data, into /fedshare (the `pki`
# volume). Does nothing when /fedshare/done exists, so `up` is repeatable.
set -eu
out=/fedshare
[ -e "$out/done" ] && exit 0
fed=/usr/local/bin/fedshare
td=compose.fedshare.local
partners="partner-north partner-south partner-east"

"$fed" certs ca --trust-domain "$td" --out "$out/ca" >/dev/null
for org in foundation $partners; do
  "$fed" certs issue --ca "$out/ca" --org "$org" --role node --out "$out/$org/node" >/dev/null
  "$fed" certs issue --ca "$out/ca" --org "$org" --role operator --name admin \
    --out "$out/$org/operator" >/dev/null
done
"$fed" certs issue --ca "$out/ca" --org foundation --role analyst --name ana \
  --out "$out/foundation/analyst" >/dev/null

config() {  # ORG
  cat <<PB
org_id: "$1"
trust_domain: "$td"
data_dir: "/var/lib/fedshare/data"
peer_address: "0.0.0.0:7443"
tls {
  cert_file: "/fedshare/$1/node/cert.pem"
  key_file: "/fedshare/$1/node/key.pem"
  ca_file: "/fedshare/$1/node/ca.pem"
}
purposes { id: "research" }
purposes { id: "program-evaluation" parent: "research" }
datasets {
  name: "program_outcomes"
  consent_basis: OPT_IN
  fields { name: "participant_id" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION public_values: true
           categories: ["literacy", "numeracy", "mentoring", "employment"] }
  fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
}
PB
}

seed=1
for org in $partners; do
  {
    config "$org"
    cat <<PB
agreements {
  id: "foundation-evaluation"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "program-evaluation"
  aggregates: [COUNT, COUNT_SUBJECTS, SUM, AVG]
  group_fields: ["program"]
  measure_fields: ["outcome_score"]
}
PB
  } >"$out/$org/node.textproto"
  # 400 synthetic participants, each consenting to program evaluation.
  awk -v seed="$seed" -v org="$org" 'BEGIN {
    srand(seed); split("literacy numeracy mentoring employment", p, " ");
    print "participant_id,program,outcome_score" > "/dev/stdout";
    for (i = 0; i < 400; i++) printf "%s-%d,%s,%.1f\n", org, i, p[1 + i % 4], rand() * 100;
  }' >"$out/$org/records.csv"
  awk -v org="$org" 'BEGIN {
    print "subject,purpose,event,time,valid_until,scope";
    for (i = 0; i < 400; i++) printf "%s-%d,program-evaluation,GIVEN,2025-01-01,,*\n", org, i;
  }' >"$out/$org/consent.csv"
  seed=$((seed + 1))
done

{
  config foundation
  for org in $partners; do
    printf 'peers { org_id: "%s" address: "%s:7443" groups: "grantees" }\n' "$org" "$org"
  done
} >"$out/foundation/node.textproto"

# The nodes run as uid 10001 and read their own key.
chown -R 10001:10001 "$out" 2>/dev/null || true
touch "$out/done"
echo "init: CA, certificates, configs and data written to $out"
