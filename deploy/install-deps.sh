#!/usr/bin/env bash
# Installs the Debian 12 packages fedshare needs to build, test and run.
# Idempotent: installs only what is missing, and does nothing when all is there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libssl-dev libabsl-dev
  # Ed25519 for the audit checkpoints (node/audit/checkpoint.cc)
  libsodium-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # fedshare-bench answers Q1 with SQLite too, as a reference (docs/performance.md)
  libsqlite3-dev
  libcli11-dev libspdlog-dev libfmt-dev
  coinor-libclp-dev libglpk-dev
  # make fuzz, make test-sanitize and make tsa (clang: libFuzzer, ASan, -Wthread-safety)
  clang-14 libclang-rt-14-dev
  # the Python client (client/python) and its pytest suite
  python3-grpcio python3-protobuf python3-pytest
  # `fedshare dashboard`'s browser test drives Chromium (tests/dashboard_test.sh).
  chromium
)
# npm installs the dashboard's chart library at build time
# (client/dashboard/package.json). Debian's nodejs and npm, unless a node
# with its own npm (another vendor's nodejs package) is there already.
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
# --ops adds what the deployment tests use (tests/deploy_lint_test.sh,
# tests/container_test.sh): compose validation, and building and running the
# container image rootless from a debootstrapped base.
if [ "${1:-}" = "--ops" ]; then
  packages+=(shellcheck docker-compose podman debootstrap runc uidmap slirp4netns)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
