"""The Python client against a real local federation (conftest.py)."""

import json
import sys

import pytest
from google.protobuf import json_format

import fedshare
from fedshare.v1 import federation_pb2

BY_PROGRAM_AND_YEAR = (
    "SELECT program, cohort_year, COUNT(*), AVG(outcome_score) FROM program_outcomes "
    "WHERE cohort_year >= 2020 GROUP BY program, cohort_year PURPOSE 'program-evaluation'")
HISTOGRAM = ("SELECT program, HISTOGRAM(outcome_score, 0, 100, 5) FROM program_outcomes "
             "GROUP BY program")


@pytest.fixture(scope="module")
def client(federation):
    with fedshare.Client(node=federation.foundation.local, identity=federation.analyst) as c:
        yield c


@pytest.fixture(scope="module")
def answer(client):
    return client.query(BY_PROGRAM_AND_YEAR)


def test_a_query_returns_the_same_figures_as_the_cli(federation, client, answer):
    cli = federation.cli("query", "--sql", BY_PROGRAM_AND_YEAR, "--all-peers",
                         "--min-coverage", "2", "--output", "json")
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)
    # Figure for figure: the cells as the CLI prints them, and as Python values.
    assert answer.to_dict()["combined"]["cells"] == printed["combined"]["cells"]
    from_cli = fedshare.Result(json_format.Parse(cli.stdout,
                                                 federation_pb2.FederatedAggregateResponse()))
    assert answer.cells == from_cli.cells
    assert answer.columns == ["program", "cohort_year", "count", "avg(outcome_score)"]
    released = [c for c in answer.cells if c["withheld"] is None]
    assert len(released) >= 10
    assert all(isinstance(c["count"], float) and c["count"] >= 10 for c in released)


def test_histogram_bins_are_lists(client):
    result = client.query(HISTOGRAM, purpose="program-evaluation")
    bins = [c["histogram(outcome_score)"] for c in result.cells if c["withheld"] is None]
    assert bins and all(len(b) == 5 for b in bins)


def test_coverage_is_exposed(answer):
    by_org = {c.org_id: c for c in answer.coverage}
    assert sorted(by_org) == ["partner-1", "partner-2", "partner-3"]
    assert by_org["partner-1"].state == "answered"
    assert by_org["partner-1"].released_cells > 0
    assert by_org["partner-2"].withheld_cells > 0
    assert by_org["partner-1"].applied_where == "cohort_year >= 2020"
    refused = by_org["partner-3"]
    assert refused.state == "refused"
    assert refused.rule == "purpose"
    assert refused.agreement == "foundation-marketing"
    assert "program-evaluation" in refused.reason
    assert answer.answered == 2
    # Partial cells say how many partners are in them.
    assert any(c["partial"] and c["partners"] == 1 for c in answer.cells)


def test_withheld_and_receipts_are_exposed(answer):
    assert any(w.rule == "min-subjects" and w.cells > 0 for w in answer.withheld)
    assert answer.unlisted_withheld_cells > 0  # cohort_year values are not public
    assert answer.receipt.org_id == "foundation"
    assert len(answer.receipt.entry_hash) == 64
    assert set(answer.receipts) == {"foundation", "partner-1", "partner-2"}


def test_a_refusal_raises_the_typed_exception_with_rule_and_agreement(client):
    with pytest.raises(fedshare.Refused) as refused:
        client.query(BY_PROGRAM_AND_YEAR, peers=["partner-3"])
    assert refused.value.rule == "purpose"
    assert refused.value.agreement == "foundation-marketing"
    assert refused.value.org == "partner-3"
    assert not isinstance(refused.value, fedshare.ResourceExhausted)


def test_fewer_partners_than_min_coverage_raises_with_the_result(client):
    with pytest.raises(fedshare.IncompleteCoverage) as incomplete:
        client.query(BY_PROGRAM_AND_YEAR, peers=["partner-1", "partner-3"], min_coverage=2)
    assert incomplete.value.result.answered == 1


def test_a_syntax_error_raises_invalid_question_at_the_clis_position(federation, client):
    sql = "SELECT COUNT(*) FROM program_outcomes WHERE age = 1 OR age = 2 PURPOSE 'p'"
    with pytest.raises(fedshare.InvalidQuestion) as invalid:
        client.query(sql)
    assert (invalid.value.line, invalid.value.column) == (1, 53)
    assert invalid.value.rule == "sql-syntax"
    cli = federation.cli("query", "--sql", sql, "--all-peers")
    assert cli.returncode == 2
    assert cli.stderr.startswith("fedshare: INVALID_ARGUMENT: " + invalid.value.message + "\n")


def test_a_purpose_argument_after_a_purpose_clause_is_a_positioned_error(client):
    with pytest.raises(fedshare.InvalidQuestion) as invalid:
        client.query(BY_PROGRAM_AND_YEAR, purpose="research")
    assert invalid.value.message.startswith(f"at 1:{len(BY_PROGRAM_AND_YEAR) + 2}: expected end")


def test_to_pandas_without_pandas_says_how_to_get_it(answer, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas"):
        answer.to_pandas()


def test_to_pandas_gives_one_row_per_cell(answer):
    pandas = pytest.importorskip("pandas")
    frame = answer.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == len(answer.cells)
    assert list(frame.columns)[-3:] == ["withheld", "partial", "partners"]


def test_a_missing_identity_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ca.pem"):
        fedshare.Client(node="127.0.0.1:1", identity=str(tmp_path))
