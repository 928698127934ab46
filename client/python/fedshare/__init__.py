"""fedshare: ask a fedshare federation aggregate questions from Python.

    import fedshare

    client = fedshare.Client(node="127.0.0.1:7444", identity="~/fedshare/analyst")
    result = client.query(
        "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes "
        "GROUP BY program PURPOSE 'program-evaluation'")
    result.cells          # one dict per cell: keys, figures, withheld, partial, partners
    result.coverage       # who answered, who refused and why
    result.to_pandas()    # a DataFrame, when pandas is installed

The question is SQL text, parsed by the node with the CLI's grammar; a bad
question raises InvalidQuestion with the line and column. Refusals raise
Refused (ResourceExhausted for budgets and limits) with the rule and agreement.
"""

# The generated protobuf modules (fedshare.v1.*_pb2) may live in another
# directory of the same package: the build tree during tests.
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

from fedshare.client import Client  # noqa: E402
from fedshare.errors import (  # noqa: E402
    FedshareError,
    IncompleteCoverage,
    InvalidQuestion,
    Refused,
    ResourceExhausted,
    Unavailable,
)
from fedshare.result import Coverage, Receipt, Result, Withholding  # noqa: E402

__all__ = [
    "Client",
    "Coverage",
    "FedshareError",
    "IncompleteCoverage",
    "InvalidQuestion",
    "Receipt",
    "Refused",
    "ResourceExhausted",
    "Result",
    "Unavailable",
    "Withholding",
]
