#!/usr/bin/env bash
# Installs fedshare on a Debian 12 machine in one step, from binaries built
# with `make build` (docs/operators.md#debian-12-vm-with-systemd):
#
#   sudo bash deploy/install.sh build/bin
#
# Installs the runtime library packages (the same list as the container's
# runtime stage), /usr/bin/fedshare-node and /usr/bin/fedshare, a system user
# `fedshare`, /etc/fedshare (config and certs, group fedshare) and
# /var/lib/fedshare (data), and the systemd unit. It enables nothing: put
# node.textproto and the certificates in place, then
# `systemctl enable --now fedshare-node`. Idempotent.
set -euo pipefail
bin_dir=${1:?usage: install.sh BIN_DIR (holding fedshare-node and fedshare)}
here=$(cd "$(dirname "$0")" && pwd)

runtime_packages=(
  libgrpc++1.51 libgrpc29 libprotobuf32 librocksdb7.8 libssl3 libabsl20220623
  libspdlog1.10 libfmt9 libre2-9 libc-ares2 libsnappy1v5 liblz4-1 libzstd1 libbz2-1.0
  libgflags2.2 zlib1g coinor-libclp1 libsodium23
)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${runtime_packages[@]}" >/dev/null

install -m 0755 "$bin_dir/fedshare-node" "$bin_dir/fedshare" /usr/bin/
if ! getent passwd fedshare >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/fedshare --shell /usr/sbin/nologin fedshare
fi
install -d -m 0750 -o fedshare -g fedshare /var/lib/fedshare
install -d -m 0750 -o root -g fedshare /etc/fedshare /etc/fedshare/certs
install -d /etc/systemd/system
install -m 0644 "$here/systemd/fedshare-node.service" /etc/systemd/system/
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
/usr/bin/fedshare-node --help >/dev/null
echo "fedshare installed: put /etc/fedshare/node.textproto and certs/ in place (group fedshare),"
echo "then: systemctl enable --now fedshare-node"
