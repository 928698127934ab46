"""The fedshare Python client (docs/analysts.md, "From Python").

    python3 -m venv --system-site-packages ~/fedshare-venv
    ~/fedshare-venv/bin/pip install --no-build-isolation ./client/python

Building generates the protobuf and gRPC modules from the repository's proto/
(or $FEDSHARE_PROTO_DIR) with protoc and grpc_python_plugin (Debian:
protobuf-compiler, protobuf-compiler-grpc); they are never committed. At run
time it needs Debian's python3-grpcio and python3-protobuf (pandas optional),
which are not declared as requirements so that pip never reaches for an index.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = [
    "fedshare/v1/types.proto",
    "fedshare/v1/config.proto",
    "fedshare/v1/query.proto",
    "fedshare/v1/audit.proto",
    "fedshare/v1/peer.proto",
    "fedshare/v1/admin.proto",
    "fedshare/v1/federation.proto",
    "fedshare/v1/saved_answer.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
]


class BuildWithStubs(build_py):
    """build_py, plus the generated modules written into the build directory."""

    def run(self):
        super().run()
        proto_dir = os.environ.get("FEDSHARE_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
        protoc = shutil.which("protoc")
        plugin = shutil.which("grpc_python_plugin")
        if protoc is None or plugin is None:
            raise SystemExit("building fedshare needs protoc and grpc_python_plugin: "
                             "apt-get install protobuf-compiler protobuf-compiler-grpc")
        if not os.path.isfile(os.path.join(proto_dir, PROTOS[0])):
            raise SystemExit(f"no {PROTOS[0]} under {proto_dir}: install from the fedshare "
                             "repository, or set FEDSHARE_PROTO_DIR to its proto/ directory")
        subprocess.check_call([
            protoc, f"--proto_path={proto_dir}", f"--python_out={self.build_lib}",
            f"--grpc_python_out={self.build_lib}", f"--plugin=protoc-gen-grpc_python={plugin}",
            *PROTOS
        ])


setup(
    name="fedshare",
    version="0.1.0",
    description="Ask a fedshare federation aggregate questions",
    packages=["fedshare"],
    python_requires=">=3.9",
    cmdclass={"build_py": BuildWithStubs},
)
