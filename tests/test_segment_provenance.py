"""Lesion provenance in Findings 1.3.0 (issue 14), without torch: a lesion from a mask file names that
file and its SHA-256 (computed here independently with hashlib); a lesion from a model names the backend,
task, version and the checksums of the weights the run recorded; a file of 1.2.0 still loads with
provenance unknown (null), never invented. Runs in the light venv and the seg venv."""

from __future__ import annotations

import hashlib
import json

import pytest

from perception.coverage import lesion_provenance, segmentation_block
from perception.schema import Findings
from perception.segment.runs import (
    ModelRun,
    TaskProgress,
    WeightsRecord,
    eta_seconds,
    progress_to,
    sha256_file,
)
from tests.conftest import data_path


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def synthetic_case(tmp_path_factory):
    from eval.demo import build_synthetic_case

    folder = build_synthetic_case(data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz"),
                                  tmp_path_factory.mktemp("prov") / "case")
    return folder


def test_lesions_from_a_mask_file_name_the_file_and_its_sha256(synthetic_case):
    from agent.case import measure

    f = measure(synthetic_case / "ct.nii.gz", synthetic_case)
    assert len(f.lesions) == 3 and f.segmentation is None  # the user gave the masks: no model ran
    for les in f.lesions:
        p = les.provenance
        assert p is not None and p.kind == "mask" and p.backend is None and p.weights_sha256 == []
        assert p.mask_file.endswith(f"{les.mask}.nii.gz")
        assert p.mask_sha256 == _sha(p.mask_file)
        assert les.detection_score is None and les.type_probabilities is None  # a mask gives no score: none invented


def test_lesions_from_a_model_name_backend_task_version_and_weights(tmp_path):
    ck = tmp_path / "checkpoint_final.pth"
    ck.write_bytes(b"weights of a test model")
    crop = tmp_path / "crop.pth"
    crop.write_bytes(b"crop model")
    run = ModelRun("totalseg", "liver_lesions", "2.18.0", "ran", 12.5, mode="full", device="cpu",
                   weights=[WeightsRecord("Dataset591_x", "nnUNetTrainer", "3d_fullres_high", str(ck), sha256_file(ck)),
                            WeightsRecord("Dataset297_x", "nnUNetTrainer_4000epochs_NoMirroring", "3d_fullres", str(crop),
                                          sha256_file(crop))])
    skipped = ModelRun("totalseg", "lung_nodules", "2.18.0", "skipped", reason="task 'total' found no lung")
    p = lesion_provenance("totalseg:liver_lesions#1", [skipped, run])
    assert (p.kind, p.backend, p.task, p.model_version, p.label) == ("model", "totalseg", "liver_lesions", "2.18.0", 1)
    assert p.weights_sha256 == [_sha(ck), _sha(crop)]
    # a model mask whose run was not recorded: the model is named, its version and weights are unknown (not guessed)
    q = lesion_provenance("totalseg:kidney_cysts#2", [run])
    assert (q.kind, q.task, q.model_version, q.weights_sha256) == ("model", "kidney_cysts", None, [])
    block = segmentation_block([run, skipped])
    assert [r.status for r in block.runs] == ["ran", "skipped"] and block.seconds == 12.5
    assert block.runs[0].weights[0].sha256 == _sha(ck) and block.runs[1].reason.startswith("task 'total' found no")
    assert segmentation_block([]) is None  # no model ran: no block, not an empty one


def test_missing_mask_file_has_no_checksum(tmp_path):
    p = lesion_provenance(str(tmp_path / "gone.nii.gz") + "#3", None)
    assert p.kind == "mask" and p.label == 3 and p.mask_sha256 is None


def test_findings_1_2_0_load_with_provenance_unknown():
    import gzip

    from tests.test_findings_unchanged import GOLDEN

    d = json.loads(gzip.decompress((GOLDEN / "build_case.json.gz").read_bytes()))
    d["schema_version"] = "1.2.0"
    d.pop("segmentation")
    for les in d["lesions"]:
        for k in ("provenance", "detection_score", "type_probabilities"):
            les.pop(k)
    d["radagent_version"] = "0"
    f = Findings.model_validate(d)
    assert f.lesions and all(les.provenance is None for les in f.lesions) and f.segmentation is None
    d["schema_version"] = "1.4.0"
    with pytest.raises(ValueError, match="expected one of 1.0.0, 1.1.0, 1.2.0, 1.3.0"):
        Findings.model_validate(d)


def test_progress_is_weighted_and_eta_unknown_before_any_progress():
    seen = []
    with progress_to(lambda f, m: seen.append((round(f, 3), m))):
        p = TaskProgress([("total", 1.0), ("liver_lesions", 3.0)])
        p.start("total")
        p.finish("total")
        p.finish("liver_lesions", "skipped")
    assert seen == [(0.0, "total running"), (0.25, "total done"), (1.0, "liver_lesions skipped")]
    assert eta_seconds(0.0, 10.0) is None  # unknown, never 0
    assert eta_seconds(0.25, 10.0) == pytest.approx(30.0)
    TaskProgress([("total", 1.0)]).finish("total")  # outside progress_to: nothing reported, no error


def test_no_mask_analyze_without_the_segment_extra_says_the_one_command(tmp_path, monkeypatch):
    """Where TotalSegmentator is not installed (the core venv), a no-mask analyze exits 2, writes nothing and
    names the one command that adds the segmentation stack to this environment."""
    from click.testing import CliRunner

    import perception.segment.totalseg as ts
    from agent.cli import main
    from perception.segment.errors import SEGMENT_INSTALL

    monkeypatch.setattr(ts, "available", lambda: False)  # as in the core venv (no torch / TotalSegmentator)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", str(data_path("totalseg", "example_ct_sm.nii.gz")), "-o", str(out),
                                  "--device", "cpu"])
    assert r.exit_code == 2 and not out.exists()
    assert SEGMENT_INSTALL in " ".join(r.output.split()) and "pip install -e '.[segment]'" in SEGMENT_INSTALL
