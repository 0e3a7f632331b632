"""`radagent compare` and `radagent analyze --prior` on a real-CT pair of known truth (eval/bench_followup.py):
the prior and a follow-up moved by a known rigid motion with every target shrunk by 40 % and the non-target
removed (RECIST 1.1: PR). Bad input exits 2 naming the file, with no output folder left behind."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent.cli import main
from eval.bench_followup import LesionSpec, make_series, rigid
from perception.followup.schema import Comparison
from tests.conftest import data_path

PRIOR = {"L1": LesionSpec("L1", "liver", (15, 12, 7.5)), "L2": LesionSpec("L2", "spleen", (9, 8, 6)),
         "L3": LesionSpec("L3", "kidney_left", (3.5, 3.5, 3.5))}
FOLLOW = {"L1": LesionSpec("L1", "liver", (9, 7, 5)), "L2": LesionSpec("L2", "spleen", (5.5, 5, 4))}  # 48 -> 29 mm


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    data_path("totalseg", "example_ct_sm.nii.gz")
    root = tmp_path_factory.mktemp("followup_cli")
    studies = make_series(root, PRIOR, [(rigid((90.0, 170.0, 140.0), (2, 0, 4), (5, -3, 3)), FOLLOW)])
    prior_out = root / "prior_out"
    r = run("analyze", studies[0].folder / "ct.nii.gz", "--masks", studies[0].folder / "masks", "-o", prior_out,
            "--no-key-images")
    assert r.exit_code == 0, r.output
    return root, studies, prior_out


def test_analyze_with_prior_writes_comparison(pair):
    root, studies, prior_out = pair
    out = root / "current_out"
    r = run("analyze", studies[1].folder / "ct.nii.gz", "--masks", studies[1].folder / "masks", "-o", out,
            "--prior", prior_out, "--date", "2025-01-01", "--date", "2025-03-01", "--no-key-images")
    assert r.exit_code == 0, r.output
    assert {"findings.json", "findings.md", "inputs.json", "comparison.json"} <= {p.name for p in out.iterdir()}
    comp = Comparison.from_file(out / "comparison.json")
    assert comp.recist.overall_response == "PR" and comp.recist.non_target_response == "CR"
    assert [s.role for s in comp.studies] == ["prior", "current"]
    assert str(comp.studies[0].study_date) == "2025-01-01"
    inputs = json.loads((out / "inputs.json").read_text())
    assert inputs["ct"].endswith("ct.nii.gz") and len(inputs["ct_sha256"]) == 64 and inputs["segmented"] is False
    # the findings comparison.json names are the ones written
    import hashlib

    assert comp.studies[1].findings_sha256 == hashlib.sha256((out / "findings.json").read_bytes()).hexdigest()

    # `radagent compare` on the two folders says the same
    out2 = root / "cmp_out"
    r = run("compare", prior_out, out, "-o", out2)
    assert r.exit_code == 0, r.output
    again = Comparison.from_file(out2 / "comparison.json")
    assert again.recist.overall_response == "PR" and len(again.lesions) == len(comp.lesions)
    # an existing comparison.json is not replaced without --force
    r = run("compare", prior_out, out, "-o", out2)
    assert r.exit_code == 2 and "--force" in r.output


def test_bad_input_exits_2_without_output(pair, tmp_path):
    _, studies, prior_out = pair
    r = run("compare", prior_out, "-o", tmp_path / "x")
    assert r.exit_code == 2 and "at least one prior" in r.output
    r = run("compare", prior_out, tmp_path / "nothing", "-o", tmp_path / "y")
    assert r.exit_code == 2 and "nothing" in r.output and not (tmp_path / "y").exists()
    bad = tmp_path / "no_inputs"
    bad.mkdir()
    (bad / "findings.json").write_text((prior_out / "findings.json").read_text())
    r = run("compare", bad, prior_out, "-o", tmp_path / "z")
    assert r.exit_code == 2 and "inputs.json" in r.output and not (tmp_path / "z").exists()
    # analyze --prior with a bad prior: nothing written
    out = tmp_path / "cur"
    r = run("analyze", studies[1].folder / "ct.nii.gz", "--masks", studies[1].folder / "masks", "-o", out,
            "--prior", bad, "--no-key-images")
    assert r.exit_code == 2 and "inputs.json" in r.output and not out.exists()
    r = run("analyze", studies[1].folder / "ct.nii.gz", "--masks", studies[1].folder / "masks", "-o", out,
            "--prior", prior_out, "--date", "2025-01-01", "--no-key-images")
    assert r.exit_code == 2 and "expected 2" in r.output and not out.exists()
