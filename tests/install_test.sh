#!/usr/bin/env bash
# Issue 12: deploy/install.sh installs fedshare on a clean Debian 12 root (the
# debootstrapped base image tests/container_test.sh caches) and the node then
# starts without systemctl, as the `fedshare` user, and passes its probe.
# Skips (exit 77) without podman or before the base image exists.
#
#   tests/install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"
src=$(cd "${1:?source dir}" && pwd)
build=$(cd "${2:?build dir}" && pwd)
podman_flags=(--runtime runc --cgroup-manager=cgroupfs)
run_flags=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1000:1000)
base=localhost/fedshare-bookworm-base:latest
if ! command -v podman >/dev/null; then
  echo "skipped: podman is not installed (bash deploy/install-deps.sh --ops)"
  exit 77
fi
if ! podman "${podman_flags[@]}" image exists "$base"; then
  if [ -s "$build/container/bookworm-minbase.tar" ]; then
    podman "${podman_flags[@]}" import "$build/container/bookworm-minbase.tar" "$base" >/dev/null
  else
    echo "skipped: no Debian 12 base image yet (tests/container_test.sh makes it)"
    exit 77
  fi
fi

# Inside the clean root: install, make a dev PKI and config, start the node
# as the fedshare user without systemd (setpriv execs it, so $! is the node),
# probe it, stop it with SIGTERM and expect a clean exit. The source tree is
# mounted at /src, so the script uses the same assertions.
cat >"$build/container/install-smoke.sh" <<'INNER'
set -euo pipefail
. /src/tests/lib_assert.sh
assert_ok "install.sh on a clean root" bash /src/deploy/install.sh /bin-in
assert_ok "install.sh installs the systemd unit" test -f /etc/systemd/system/fedshare-node.service
assert_ok "install.sh creates the fedshare user" id fedshare
fedshare certs ca --trust-domain install.test --out /tmp/ca >/dev/null
fedshare certs issue --ca /tmp/ca --org acme --role node --out /etc/fedshare/certs >/dev/null
chgrp -R fedshare /etc/fedshare/certs && chmod -R g+rX /etc/fedshare/certs
cat >/etc/fedshare/node.textproto <<PB
org_id: "acme"
trust_domain: "install.test"
data_dir: "/var/lib/fedshare/data"
peer_address: "127.0.0.1:0"
local_address: "127.0.0.1:0"
tls { cert_file: "certs/cert.pem" key_file: "certs/key.pem" ca_file: "certs/ca.pem" }
PB
setpriv --reuid fedshare --regid fedshare --init-groups fedshare-node --config /etc/fedshare/node.textproto \
  --ready-file /var/lib/fedshare/ready >/var/lib/fedshare/out 2>/var/lib/fedshare/err &
pid=$!
for _ in $(seq 1 300); do [ -s /var/lib/fedshare/ready ] && break; sleep 0.1; done
ready=$(cat /var/lib/fedshare/ready) || fail "the node wrote no ready file within 30 s"
echo "$ready"
assert_contains "$ready" "peer=" "the node's ready file"
peer=$(tr ' ' '\n' <<<"$ready" | sed -n 's/^peer=//p')
assert_ok "the node's probe as the fedshare user" \
  runuser -u fedshare -- fedshare-node --config /etc/fedshare/node.textproto --probe \
  --peer-address "$peer"
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
assert_eq "$code" 0 "the node's exit code on SIGTERM"
assert_ok "the node made its data folder" test -d /var/lib/fedshare/data
echo "install smoke ok"
INNER
assert_ok "install smoke in a clean Debian 12 root" \
  podman "${podman_flags[@]}" run --rm "${run_flags[@]}" \
  -v "$src:/src:ro" -v "$build/bin:/bin-in:ro" \
  -v "$build/container/install-smoke.sh:/smoke.sh:ro" \
  "$base" bash /smoke.sh
echo "ok: install.sh on a clean Debian 12 root; the node started without systemctl and passed its probe"
