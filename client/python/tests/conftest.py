"""A real local federation for the Python client's tests.

A foundation node and three partner nodes run as fedshare-node processes on
127.0.0.1 with ports chosen by the kernel, certificates from `fedshare certs`,
and synthetic data from fedshare-gen (as deploy/local/federation.sh does).
partner-1 and partner-2 agree to program-evaluation (partner-2's data is
small, so it withholds cells partner-1 releases); partner-3 agrees only to
marketing, so it refuses program-evaluation questions.
"""

import os
import selectors
import subprocess

import pytest

TRUST_DOMAIN = "fedshare.test"
PARTNERS = [("partner-1", "program-evaluation", 900),
            ("partner-2", "program-evaluation", 240),
            ("partner-3", "marketing", 300)]

SCHEMA = """
datasets {
  name: "program_outcomes"
  consent_basis: OPT_IN
  fields { name: "participant_id" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION public_values: true
           categories: ["literacy", "numeracy", "mentoring", "employment"] }
  fields { name: "region" type: CATEGORY role: DIMENSION
           categories: ["north", "south", "east", "west", "central"] }
  fields { name: "cohort_year" type: INT64 role: DIMENSION }
  fields { name: "age" type: INT64 role: DIMENSION granularity: 5 }
  fields { name: "completed" type: BOOL role: DIMENSION }
  fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "sessions_attended" type: INT64 role: MEASURE lower: 0 upper: 200 }
  fields { name: "income" type: DOUBLE role: PRIVATE }
}
purposes { id: "research" }
purposes { id: "program-evaluation" parent: "research" }
purposes { id: "marketing" }
"""

AGREEMENT = """
agreements {
  id: "foundation-%(purpose)s"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "%(purpose)s"
  aggregates: [COUNT, COUNT_SUBJECTS, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM]
  filter_fields: ["program", "region", "cohort_year", "age", "completed"]
  group_fields: ["program", "region", "cohort_year", "completed"]
  measure_fields: ["outcome_score", "sessions_attended"]
}
"""


def _bin(name):
    return os.path.join(os.environ["FEDSHARE_BIN_DIR"], name)


def _run(*args):
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


class Node:
    """A fedshare-node child process, with the addresses from its ready line."""

    def __init__(self, config_path, log_path):
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen([_bin("fedshare-node"), "--config", config_path],
                                        stdout=subprocess.PIPE, stderr=self.log)
        line = self._ready_line(timeout=30)
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.peer = fields["peer"]
        self.local = fields["local"]

    def _ready_line(self, timeout):
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise RuntimeError(f"no ready line in {timeout} s; see {self.log.name}")
        line = self.process.stdout.readline().decode()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"node did not start ({line!r}); see {self.log.name}")
        return line

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


class Federation:
    def __init__(self, run):
        fed = _bin("fedshare")
        self.fedshare = fed
        ca = os.path.join(run, "pki", "ca")
        _run(fed, "certs", "ca", "--trust-domain", TRUST_DOMAIN, "--out", ca)
        self.nodes = {}
        try:
            self._start(run, fed, ca)
        except Exception:
            self.stop()
            raise

    def _start(self, run, fed, ca):
        for seed, (org, purpose, rows) in enumerate(PARTNERS, start=1):
            d = os.path.join(run, org)
            _run(fed, "certs", "issue", "--ca", ca, "--org", org, "--role", "node",
                 "--out", os.path.join(d, "node"))
            operator = os.path.join(d, "operator")
            _run(fed, "certs", "issue", "--ca", ca, "--org", org, "--role", "operator",
                 "--name", "op", "--out", operator)
            _run(_bin("fedshare-gen"), "--seed", str(seed), "--rows", str(rows),
                 "--out-dir", os.path.join(d, "input"))
            config = os.path.join(d, "node.textproto")
            with open(config, "w") as f:
                f.write(self._node_config(org, d) + AGREEMENT % {"purpose": purpose})
            node = self.nodes[org] = Node(config, os.path.join(d, "node.log"))
            _run(fed, "--node", node.local, "--identity", operator, "ingest", "--dataset",
                 "program_outcomes", os.path.join(d, "input", "records.csv"))
            _run(fed, "--node", node.local, "--identity", operator, "consent", "import",
                 os.path.join(d, "input", "consent.csv"))
        d = os.path.join(run, "foundation")
        _run(fed, "certs", "issue", "--ca", ca, "--org", "foundation", "--role", "node",
             "--out", os.path.join(d, "node"))
        self.analyst = os.path.join(d, "analyst")
        _run(fed, "certs", "issue", "--ca", ca, "--org", "foundation", "--role", "analyst",
             "--name", "ana", "--out", self.analyst)
        config = os.path.join(d, "node.textproto")
        with open(config, "w") as f:
            f.write(self._node_config("foundation", d) + "peer_deadline_ms: 5000\n")
            for org, _, _ in PARTNERS:
                f.write(f'peers {{ org_id: "{org}" address: "{self.nodes[org].peer}" }}\n')
        self.foundation = self.nodes["foundation"] = Node(config, os.path.join(d, "node.log"))

    @staticmethod
    def _node_config(org, d):
        return (f'org_id: "{org}"\ntrust_domain: "{TRUST_DOMAIN}"\n'
                f'data_dir: "{os.path.join(d, "data")}"\n'
                'peer_address: "127.0.0.1:0"\nlocal_address: "127.0.0.1:0"\n'
                f'tls {{ cert_file: "{d}/node/cert.pem" key_file: "{d}/node/key.pem" '
                f'ca_file: "{d}/node/ca.pem" }}\n' + SCHEMA)

    def cli(self, *args):
        """Runs `fedshare --node FOUNDATION --identity ANALYST ARGS...` (any exit code)."""
        return subprocess.run([self.fedshare, "--node", self.foundation.local, "--identity",
                               self.analyst, *args], capture_output=True, text=True, timeout=120)

    def stop(self):
        for node in self.nodes.values():
            node.stop()


@pytest.fixture(scope="session")
def federation(tmp_path_factory):
    f = Federation(str(tmp_path_factory.mktemp("federation")))
    yield f
    f.stop()
