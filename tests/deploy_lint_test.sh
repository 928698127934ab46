#!/usr/bin/env bash
# The checks below are called through `lint`, which shellcheck cannot see.
# shellcheck disable=SC2317
# Issue 12: the deployment files are accepted by the tools that consume them.
#   - every git-tracked shell script passes shellcheck;
#   - deploy/systemd/fedshare-node.service passes systemd-analyze verify;
#   - deploy/compose/compose.yaml passes docker-compose config;
#   - deploy/k8s, rendered per overlay, validates against the Kubernetes
#     schemas of npm's kubernetes-models, offline once installed (cached in
#     the build folder).
# Every check runs; the test then fails if any of them rejected its files. A
# check whose tool is missing is reported as skipped; the test exits 77
# (ctest SKIP_RETURN_CODE) when any check was skipped and none failed.
#
#   tests/deploy_lint_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
src=$(cd "${1:?source dir}" && pwd)
build=$(cd "${2:?build dir}" && pwd)
rejected=()
skipped=()

lint() {  # NAME COMMAND...: run, report, and remember a rejection
  local name=$1
  shift
  if "$@"; then
    echo "ok: $name"
  else
    echo "rejected: $name"
    rejected+=("$name")
  fi
}

skip() {  # NAME REASON
  echo "skipped: $1 ($2)"
  skipped+=("$1")
}

shell_scripts() {
  git -C "$src" ls-files -z '*.sh' | (cd "$src" && xargs -0 shellcheck -x)
}

systemd_unit() {
  local tmp
  tmp=$(mktemp -d)
  # verify checks that ExecStart exists: point it at the built binary.
  sed "s|/usr/bin/fedshare-node|$build/bin/fedshare-node|g" \
    "$src/deploy/systemd/fedshare-node.service" >"$tmp/fedshare-node.service"
  local out rc
  out=$(systemd-analyze verify "$tmp/fedshare-node.service" 2>&1)
  rc=$?
  rm -rf "$tmp"
  [ -n "$out" ] && echo "$out"
  # Any complaint fails, not only a non-zero exit.
  [ "$rc" -eq 0 ] && [ -z "$out" ]
}

compose_file() {
  docker-compose -f "$src/deploy/compose/compose.yaml" config -q
}

k8s_overlays() {
  local dir=$build/k8s-validate ok=0
  mkdir -p "$dir"
  cp "$src/deploy/k8s/validate/package.json" "$src/deploy/k8s/validate/validate.mjs" "$dir/"
  for overlay in "$src"/deploy/k8s/overlays/*/; do
    echo "-- $(basename "$overlay")"
    kubectl kustomize "$overlay" | (cd "$dir" && node validate.mjs) || ok=1
  done
  return "$ok"
}

if command -v shellcheck >/dev/null; then
  lint "shellcheck over git-tracked *.sh" shell_scripts
else
  skip shellcheck "shellcheck not installed: apt-get install shellcheck"
fi

if command -v systemd-analyze >/dev/null; then
  lint "systemd-analyze verify fedshare-node.service" systemd_unit
else
  skip systemd "systemd-analyze not installed"
fi

if command -v docker-compose >/dev/null; then
  lint "docker-compose config" compose_file
else
  skip compose "docker-compose not installed: bash deploy/install-deps.sh --ops"
fi

if ! command -v kubectl >/dev/null || ! command -v node >/dev/null; then
  skip k8s "kubectl (for kustomize) or node not installed"
elif [ ! -d "$build/k8s-validate/node_modules/kubernetes-models" ] &&
  ! (mkdir -p "$build/k8s-validate" && cd "$build/k8s-validate" &&
    cp "$src/deploy/k8s/validate/package.json" . &&
    npm install --no-audit --no-fund --silent >/dev/null 2>&1); then
  skip k8s "npm could not install kubernetes-models into $build/k8s-validate"
else
  lint "kustomize overlays validate against Kubernetes schemas" k8s_overlays
fi

assert_eq "${#rejected[@]}" 0 "deployment checks that rejected their files (${rejected[*]})"
if [ ${#skipped[@]} -ne 0 ]; then
  echo "some checks were skipped: ${skipped[*]}"
  exit 77
fi
exit 0
