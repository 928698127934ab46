#!/bin/sh
# One-shot load for deploy/compose: ingests each partner's synthetic records
# and consents through its local listener, once. The fixed idempotency key
# makes a rerun after a partial load report the earlier ingest instead of
# being refused as a duplicate file.
set -eu
out=/fedshare
[ -e "$out/loaded" ] && exit 0
for org in partner-north partner-south partner-east; do
  /usr/local/bin/fedshare --node "$org:7444" --identity "$out/$org/operator" \
    ingest --dataset program_outcomes --idempotency-key compose-initial-load \
    "$out/$org/records.csv"
  /usr/local/bin/fedshare --node "$org:7444" --identity "$out/$org/operator" \
    consent import "$out/$org/consent.csv"
done
touch "$out/loaded"
