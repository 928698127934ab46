"""A federated answer as Python values."""

import dataclasses
import json
from typing import Dict, List, Optional

from google.protobuf import json_format

from fedshare.v1 import federation_pb2

_STATES = {
    federation_pb2.PartnerCoverage.ANSWERED: "answered",
    federation_pb2.PartnerCoverage.REFUSED: "refused",
    federation_pb2.PartnerCoverage.TIMED_OUT: "timed out",
    federation_pb2.PartnerCoverage.UNREACHABLE: "unreachable",
    federation_pb2.PartnerCoverage.FAILED: "failed",
    federation_pb2.PartnerCoverage.AUDIT_FAILED: "audit failed",
}


@dataclasses.dataclass(frozen=True)
class Coverage:
    """One partner asked: state is "answered", "refused", "timed out",
    "unreachable" or "failed"; rule and agreement say why a refusal happened
    (None when the partner gave no ErrorInfo)."""

    org_id: str
    state: str
    reason: str
    released_cells: int
    withheld_cells: int
    applied_where: str
    rule: Optional[str]
    agreement: Optional[str]
    refusal: object = dataclasses.field(repr=False, compare=False, default=None)

    @property
    def refusal_metadata(self) -> Dict[str, str]:
        return dict(self.refusal.metadata) if self.refusal is not None else {}


@dataclasses.dataclass(frozen=True)
class Withholding:
    """Cells withheld by one rule (never their sizes)."""

    rule: str
    reason: str
    cells: int


@dataclasses.dataclass(frozen=True)
class Receipt:
    """Proof an answer was written to org_id's audit log (entry_hash in hex)."""

    org_id: str
    audit_index: int
    entry_hash: str


def _value(v):
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else None


def _receipt(r) -> Optional[Receipt]:
    if not r.entry_hash:
        return None
    return Receipt(r.org_id, r.audit_index, r.entry_hash.hex())


class Result:
    """The answer to one federated question.

    cells: one dict per combined cell, in the answer's order. Its keys are the
    answer's columns (group-by fields, then one per aggregate, named as the
    node names them: "count", "avg(outcome_score)", ...) plus "withheld" (the
    rule, or None), "partial" (some answering partner is not in the figure)
    and "partners" (how many are). A HISTOGRAM figure is a list of bin counts
    with None for a withheld bin; a withheld cell's figures are None.
    """

    def __init__(self, response: federation_pb2.FederatedAggregateResponse):
        self.response = response
        combined = response.combined
        self.columns: List[str] = list(combined.columns)
        self.cells: List[dict] = [self._cell(c) for c in combined.cells]
        self.coverage: List[Coverage] = [self._coverage(c) for c in response.coverage]
        self.withheld: List[Withholding] = [
            Withholding(w.rule, w.reason, w.cells) for w in combined.withholdings]
        self.unlisted_withheld_cells: int = combined.unlisted_withheld_cells
        self.receipt: Optional[Receipt] = _receipt(combined.receipt)
        self.receipts: Dict[str, Receipt] = {}
        if self.receipt is not None:
            self.receipts[self.receipt.org_id] = self.receipt
        for partner in response.partners:
            receipt = _receipt(partner.receipt)
            if receipt is not None:
                self.receipts[receipt.org_id] = receipt

    @property
    def answered(self) -> int:
        return sum(1 for c in self.coverage if c.state == "answered")

    def _cell(self, cell) -> dict:
        keys = [_value(k) for k in cell.key]
        n_keys = len(keys)
        row = {}
        for name, key in zip(self.columns, keys):
            row[name] = key
        for a, name in enumerate(self.columns[n_keys:]):
            if cell.withheld or a >= len(cell.values):
                row[name] = None
                continue
            v = cell.values[a]
            if len(v.bins) > 0:
                withheld = set(v.withheld_bins)
                row[name] = [None if b in withheld else v.bins[b] for b in range(len(v.bins))]
            else:
                row[name] = v.value
        row["withheld"] = (cell.withheld_rule or "withheld") if cell.withheld else None
        row["partial"] = cell.partial
        row["partners"] = cell.partners
        return row

    @staticmethod
    def _coverage(c) -> Coverage:
        has_refusal = c.HasField("refusal")
        return Coverage(
            org_id=c.org_id,
            state=_STATES.get(c.state, "unknown"),
            reason=c.reason,
            released_cells=c.released_cells,
            withheld_cells=c.withheld_cells,
            applied_where=c.applied_where_text,
            rule=c.refusal.reason if has_refusal else None,
            agreement=c.refusal.metadata.get("agreement") if has_refusal else None,
            refusal=c.refusal if has_refusal else None,
        )

    def to_dict(self) -> dict:
        """The answer as `fedshare query --output json` prints it, parsed."""
        return json.loads(json_format.MessageToJson(
            self.response, preserving_proto_field_name=True,
            including_default_value_fields=True))

    def to_pandas(self):
        """The cells as a pandas DataFrame (one row per cell, columns as in cells)."""
        try:
            import pandas
        except ImportError as e:
            raise ImportError(
                "Result.to_pandas() needs pandas, which is not installed: "
                "apt-get install python3-pandas (or use Result.cells)") from e
        columns = self.columns + ["withheld", "partial", "partners"]
        return pandas.DataFrame(self.cells, columns=columns)

    def __repr__(self):
        return (f"Result({len(self.cells)} cells, {self.answered} of {len(self.coverage)} "
                f"partners answered)")
