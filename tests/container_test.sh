#!/usr/bin/env bash
# Issue 12: the container image runs a node that the host's CLI queries over
# mTLS, with its root filesystem read-only, and the image's own health probe
# passes.
#
# To keep CI time low this builds the `runtime-prebuilt` target of
# deploy/container/Dockerfile, which packs the binaries already built in
# BUILD_DIR into the same runtime stage as the full multi-stage build (whose
# compile stage takes many minutes on 2 cores). The base image is made once
# with debootstrap --variant=minbase bookworm + podman import and cached in
# BUILD_DIR/container. Skips (exit 77) when podman or debootstrap is missing:
# bash deploy/install-deps.sh --ops installs them.
#
#   tests/container_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
src=$(cd "${1:?source dir}" && pwd)
build=$(cd "${2:?build dir}" && pwd)

for tool in podman debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    echo "skipped: $tool is not installed (bash deploy/install-deps.sh --ops)"
    exit 77
  fi
done

# What works on these Debian machines without a daemon or systemd.
podman_run_flags=(--runtime runc --cgroup-manager=cgroupfs)
# The root filesystem read-only and a tmpfs on /tmp (podman's --read-only
# default), as the Kubernetes manifest runs it (readOnlyRootFilesystem and an
# in-memory emptyDir at /tmp): the node writes only its volume and /tmp.
run_flags=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 --read-only)
cache=$build/container
base=localhost/fedshare-bookworm-base:latest
image=localhost/fedshare-node:test
mkdir -p "$cache"

if ! podman "${podman_run_flags[@]}" image exists "$base"; then
  if [ ! -s "$cache/bookworm-minbase.tar" ]; then
    echo "== debootstrap bookworm (once; cached in $cache)"
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase bookworm "$cache/rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log"; fail "debootstrap of the base image"; }
    tar -C "$cache/rootfs" -cf "$cache/bookworm-minbase.tar.tmp" .
    mv "$cache/bookworm-minbase.tar.tmp" "$cache/bookworm-minbase.tar"
    rm -rf "$cache/rootfs"
  fi
  podman "${podman_run_flags[@]}" import "$cache/bookworm-minbase.tar" "$base" >/dev/null
fi

echo "== image (runtime-prebuilt target)"
ctx=$(mktemp -d)
run=$(mktemp -d)
name=fedshare-test-$$
cleanup() {
  podman "${podman_run_flags[@]}" rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$ctx" "$run"
}
trap cleanup EXIT
mkdir -p "$ctx/deploy/container" "$ctx/bin"
cp "$src/deploy/container/Dockerfile" "$ctx/deploy/container/"
cp "$build/bin/fedshare-node" "$build/bin/fedshare" "$ctx/bin/"
podman "${podman_run_flags[@]}" build --network host \
  --build-arg BUILD_BASE="$base" --build-arg RUNTIME_BASE="$base" \
  --build-arg PREBUILT_DIR=bin --target runtime-prebuilt \
  -f "$ctx/deploy/container/Dockerfile" -t "$image" "$ctx" >"$cache/build.log" 2>&1 ||
  { tail -30 "$cache/build.log"; fail "podman build of the runtime-prebuilt image"; }

echo "== certificates, config and a node in the container"
fed=$build/bin/fedshare
td=container.fedshare.test
"$fed" certs ca --trust-domain "$td" --out "$run/ca" >/dev/null
"$fed" certs issue --ca "$run/ca" --org partner-a --role node --out "$run/node" >/dev/null
"$fed" certs issue --ca "$run/ca" --org partner-a --role operator --name olga \
  --out "$run/operator" >/dev/null
# A free port from the kernel for each listener (the container shares the
# host network).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
peer_port=$(free_port)
local_port=$(free_port)
cat >"$run/node.textproto" <<PB
org_id: "partner-a"
trust_domain: "$td"
data_dir: "/var/lib/fedshare/data"
peer_address: "127.0.0.1:$peer_port"
local_address: "127.0.0.1:$local_port"
tls {
  cert_file: "/etc/fedshare/certs/cert.pem"
  key_file: "/etc/fedshare/certs/key.pem"
  ca_file: "/etc/fedshare/certs/ca.pem"
}
purposes { id: "program-evaluation" }
PB
chmod -R a+rX "$run"
podman "${podman_run_flags[@]}" run -d --name "$name" "${run_flags[@]}" \
  -v "$run/node.textproto:/etc/fedshare/node.textproto:ro" \
  -v "$run/node:/etc/fedshare/certs:ro" \
  "$image" >/dev/null

# Wait (bounded) for the node's ready line in its output.
for _ in $(seq 1 300); do
  podman "${podman_run_flags[@]}" logs "$name" 2>/dev/null | grep -q '^ready ' && break
  if [ "$(podman "${podman_run_flags[@]}" inspect -f '{{.State.Running}}' "$name")" != true ]; then
    podman "${podman_run_flags[@]}" logs "$name" >&2
    fail "the node in the container exited"
  fi
  sleep 0.1
done
assert_line_starts "$(podman "${podman_run_flags[@]}" logs "$name" 2>/dev/null)" "ready " \
  "the container's output within 30 s"

echo "== host CLI over mTLS"
status=$("$fed" --node "127.0.0.1:$local_port" --identity "$run/operator" status) ||
  fail "fedshare status from the host over mTLS (exit $?)"
echo "$status"
assert_contains "$status" "partner-a" "fedshare status"

echo "== the image's health probe"
assert_ok "the image's health probe" \
  podman "${podman_run_flags[@]}" exec "$name" /usr/local/bin/fedshare-node --probe
uid=$(podman "${podman_run_flags[@]}" exec "$name" id -u)
assert_eq "$uid" 10001 "the uid the node runs as"
podman "${podman_run_flags[@]}" stop -t 20 "$name" >/dev/null
code=$(podman "${podman_run_flags[@]}" inspect -f '{{.State.ExitCode}}' "$name")
assert_eq "$code" 0 "the node's exit code on SIGTERM"
echo "ok: image built, node served mTLS to the host CLI from a read-only root, probe passed, clean stop"
