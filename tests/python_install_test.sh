#!/usr/bin/env bash
# The Python client installs with pip from the repository, offline, into a
# virtual environment that sees Debian's python3-grpcio and python3-protobuf
# (docs/analysts.md, "From Python"): the install generates the protobuf
# modules, and the installed package imports from outside the source tree.
#   tests/python_install_test.sh SOURCE_DIR
set -euo pipefail
src=$1
# shellcheck source=tests/lib_assert.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_assert.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy, so the in-tree build leaves nothing in the source tree.
cp -r "$src/client/python" "$work/python"
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
FEDSHARE_PROTO_DIR="$src/proto" "$work/venv/bin/pip" install --quiet --no-index \
  --no-build-isolation "$work/python" || fail "pip install ./client/python failed"

out=$(cd "$work" && PYTHONDONTWRITEBYTECODE=1 "$work/venv/bin/python" -c '
import fedshare, fedshare.v1.federation_pb2 as f, google.rpc.error_details_pb2 as e
print(fedshare.__file__)
print(f.FederatedAggregateRequest(sql="SELECT").sql)
print(fedshare.InvalidQuestion.__mro__[1].__name__)
')
assert_contains "$out" "$work/venv/lib/" "the installed package's path"
assert_line_starts "$out" "SELECT" "the generated request"
assert_line_starts "$out" "FedshareError" "the exception classes"
echo "python install: ok"
