#!/usr/bin/env bash
# `fedshare dashboard` in a browser (issue 16): the local federation script
# stands up a foundation and three partners (real nodes on port 0, certificates
# made now), one partner is stopped, the analyst starts the dashboard, and
# tests/dashboard_test.mjs drives Debian's Chromium with npm's playwright-core
# through the page. The screenshot is left in the build folder:
# BUILD_DIR/dashboard_test.png.
#
#   tests/dashboard_test.sh BUILD_DIR NPM_DIR
set -euo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
build_dir=$(cd "$1" && pwd)
npm_dir=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "$chromium is missing: run deploy/install-deps.sh"
[ -d "$npm_dir/node_modules/playwright-core" ] || fail "playwright-core is not installed in $npm_dir"

run=$(mktemp -d /tmp/fedshare-dashboard-test.XXXXXX)
dashboard_pid=""
cleanup() {
  if [ -n "$dashboard_pid" ]; then kill "$dashboard_pid" 2>/dev/null || true; fi
  bash "$here/deploy/local/federation.sh" down "$run/fed" || true
  rm -rf "$run"
}
trap cleanup EXIT

bash "$here/deploy/local/federation.sh" up "$build_dir/bin" "$run/fed" 2>"$run/federation.log" || {
  cat "$run/federation.log" >&2
  fail "the local federation did not start"
}
set -a
# shellcheck disable=SC1091
. "$run/fed/env"
set +a

# Stop partner-north and wait for it to exit: the page must show it missing.
stopped=partner-north
pid=$(cat "$run/fed/$stopped/pid")
kill -TERM "$pid"
timeout 30 tail --pid="$pid" -f /dev/null || fail "$stopped did not stop"

# The dashboard prints its URL on its first line; read it from the pipe.
exec 3< <(exec "$build_dir/bin/fedshare" --node "$FOUNDATION_LOCAL" --identity "$ANALYST" \
  dashboard --history-dir "$run/answers" 2>"$run/dashboard.log")
dashboard_pid=$!
IFS= read -r -t 30 line <&3 || {
  cat "$run/dashboard.log" >&2
  fail "fedshare dashboard printed no URL"
}
assert_line_starts "$line" "dashboard: http://127.0.0.1:" "the dashboard's first line"
url=${line#dashboard: }
[[ "$url" =~ \?token=[0-9a-f]{48}$ ]] || fail "no token in the URL: $url"

status=0
DASHBOARD_NPM_DIR=$npm_dir DASHBOARD_URL=$url FEDSHARE="$build_dir/bin/fedshare" \
  HISTORY_DIR="$run/answers" SCREENSHOT="$build_dir/dashboard_test.png" \
  STOPPED_PARTNER=$stopped CHROMIUM=$chromium \
  timeout 240 node "$here/tests/dashboard_test.mjs" || status=$?
# The dashboard served the whole test without dying (a sanitizer finding
# would have ended it).
if ! kill -0 "$dashboard_pid" 2>/dev/null; then
  cat "$run/dashboard.log" >&2
  fail "fedshare dashboard exited during the test"
fi
if [ "$status" -ne 0 ]; then
  cat "$run/dashboard.log" >&2
  fail "tests/dashboard_test.mjs exited $status"
fi
