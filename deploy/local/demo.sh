#!/usr/bin/env bash
# `make demo`: a foundation and three partners on this machine; the foundation
# asks all of them questions and prints the coverage and combined tables, one
# of them under differential privacy with intervals and the budget left.
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "$build_dir/bin" && pwd)
run=${FEDSHARE_DEMO_DIR:-$(mktemp -d /tmp/fedshare-demo.XXXXXX)}

cleanup() { "$here/federation.sh" down "$run"; }
trap cleanup EXIT

"$here/federation.sh" up "$bin" "$run"
# shellcheck disable=SC1091
. "$run/env"

sql="SELECT program, COUNT(*), COUNT(DISTINCT subject), AVG(outcome_score), STDDEV(outcome_score) FROM program_outcomes WHERE cohort_year >= 2020 GROUP BY program PURPOSE 'program-evaluation'"

echo
echo "== The foundation's partners, and whether each answers:"
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" peers

echo
echo "== The foundation asks every partner (analyst ana, through the foundation's node):"
echo "   $sql"
echo
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" query --all-peers --sql "$sql" \
  --save "$run/answer-1.json"

sql2="SELECT program, completed, COUNT(*), AVG(sessions_attended) FROM program_outcomes WHERE cohort_year = 2023 AND region = 'central' GROUP BY program, completed PURPOSE 'program-evaluation'"
echo
echo "== A narrower question: small cells are withheld, and combined cells missing a part say so:"
echo "   $sql2"
echo
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" query --all-peers --sql "$sql2" \
  --save "$run/answer-2.json"

sql3="SELECT region, COUNT(*), SUM(outcome_score) FROM program_outcomes WHERE cohort_year >= 2020 GROUP BY region PURPOSE 'program-evaluation'"
echo
echo "== Under the partners' differential-privacy agreement: what a question would cost (dry run),"
echo "   then the noisy answer with 95% intervals and the epsilon budget left at each partner:"
echo "   $sql3"
echo
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" query --all-peers --dry-run \
  --sql "$sql3"
echo
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" query --all-peers --sql "$sql3" \
  --save "$run/answer-3.json"

echo
echo "== A question outside the partners' agreements is refused by each of them:"
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" query --all-peers \
  --sql "SELECT COUNT(*) FROM program_outcomes PURPOSE 'marketing'" --save "$run/answer-4.json" ||
  echo "(fedshare exited $?: fewer partners answered than --min-coverage, here none)"

echo
echo "== The foundation's audit log:"
"$bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$FEDSHARE_RUN/foundation/operator" audit show

echo
echo "== Every receipt of those answers and refusals (each partner's and the foundation's),"
echo "   checked with no trust in any node (leaf hash, Merkle inclusion proof, Ed25519 checkpoint):"
for answer in "$run"/answer-*.json; do
  "$bin/fedshare" audit verify --receipt "$answer"
done

cat <<TXT

== Configs, logs and data of this run are in $run
== To repeat it by hand (the federation stops when this script ends):
   deploy/local/federation.sh up $bin /tmp/my-federation
   . /tmp/my-federation/env
   $bin/fedshare --node \$FOUNDATION_LOCAL --identity \$ANALYST peers
   $bin/fedshare --node \$FOUNDATION_LOCAL --identity \$ANALYST query --all-peers \\
       --sql "$sql"
   $bin/fedshare --node \$PARTNER_NORTH_LOCAL --identity /tmp/my-federation/partner-north/operator datasets
   deploy/local/federation.sh down /tmp/my-federation
TXT
