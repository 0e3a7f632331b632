"""Follow-up in the dataset builder: a manifest with patient_id and time_point columns has each patient's
cases compared in time order (comparison.json + the COMPARISON section in each later case, followup.parquet);
manifests without time_point build as before; bad follow-up columns are refused before anything runs.
Real-CT pair of tests/followup_cases.py (2 persisting, 1 new, 1 disappeared lesion; overall response PD)."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from agent.dataset import BuildOptions, DatasetError, build_dataset
from agent.dataset.followup import FOLLOWUP_FILE
from tests.followup_cases import build_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return build_pair(tmp_path_factory.mktemp("followup_dataset"))


def _manifest(path, rows, cols=("case_id", "ct", "masks", "patient_id", "time_point")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    return path


def test_patient_cases_compared_in_time_order(pair, tmp_path):
    root = pair["folder"]
    # listed out of order: the builder orders by time_point (dates: the study dates)
    m = _manifest(tmp_path / "m.csv", [["p1_b", f"{root}/ct1/ct.nii.gz", f"{root}/ct1", "P1", "2024-04-01"],
                                       ["p1_a", f"{root}/ct0/ct.nii.gz", f"{root}/ct0", "P1", "2024-01-01"],
                                       ["solo", f"{root}/ct0/ct.nii.gz", f"{root}/ct0", "P2", ""]])
    out = tmp_path / "out"
    s = build_dataset(m, out, BuildOptions(workers=1))
    assert s.done == 3
    rows = pq.read_table(out / FOLLOWUP_FILE).to_pylist()
    assert len(rows) == 1
    r = rows[0]
    assert (r["patient_id"], r["case_id"], r["priors"], r["status"]) == ("P1", "p1_b", ["p1_a"], "done")
    assert (r["n_persisting"], r["n_new"], r["n_disappeared"], r["overall_response"]) == (2, 1, 1, "PD")
    c = json.loads((out / "cases" / "p1_b" / "comparison.json").read_text())
    assert [x["study_date"] for x in c["studies"]] == ["2024-01-01", "2024-04-01"]
    assert "## COMPARISON" in (out / "cases" / "p1_b" / "report.md").read_text()
    assert not (out / "cases" / "p1_a" / "comparison.json").exists() and not (out / "cases" / "solo" / "comparison.json").exists()
    dataset = {x["case_id"]: x for x in pq.read_table(out / "dataset.parquet").to_pylist()}
    assert dataset["p1_b"]["meta_time_point"] == "2024-04-01"
    # resumed: nothing changed, the comparison is kept as it is (same bytes)
    before = (out / "cases" / "p1_b" / "comparison.json").read_bytes()
    build_dataset(m, out, BuildOptions(workers=1))
    assert (out / "cases" / "p1_b" / "comparison.json").read_bytes() == before


@pytest.mark.parametrize("rows, message", [
    ([["a", "x.nii.gz", "", "P1", "0"], ["b", "y.nii.gz", "", "P1", "0"]], "repeats case a"),
    ([["a", "x.nii.gz", "", "P1", "0"], ["b", "y.nii.gz", "", "P1", "2024-01-01"]], "mix visit numbers and dates"),
    ([["a", "x.nii.gz", "", "", "1"]], "without a patient_id"),
    ([["a", "x.nii.gz", "", "P1", "first"]], "expected a visit number"),
])
def test_bad_followup_columns_refused(tmp_path, rows, message):
    m = _manifest(tmp_path / "m.csv", rows)
    with pytest.raises(DatasetError, match=message):
        build_dataset(m, tmp_path / "out", BuildOptions(workers=1))
    assert not (tmp_path / "out").exists()
