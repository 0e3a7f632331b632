"""Tumours found on a raw CT (issue 14): `radagent analyze CT` without masks runs TotalSegmentator 2.18.0's
`total`, then the lesion tasks of the organs it found, through TotalSegmentator's real code path (crop
model first, then the task's nnU-Net on the crop) on random-weight model folders made here
(perception.segment.totalseg_fake); every lesion in findings.json names its model (task, version, the
SHA-256 of each checkpoint it loaded, recomputed here with hashlib), the study-level `segmentation`
block lists what ran and what was skipped and why. Predictions are meaningless; the path is real.

Needs the seg venv. The whole no-mask analyze (4 TotalSegmentator calls) is marked slow.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from tests.require import require_module

for _m in ("torch", "totalsegmentator", "nnunetv2"):
    require_module(_m, "seg")


from perception.io import load_ct
from perception.segment import WeightsMissingError
from perception.segment.totalseg import (
    DATASETS,
    TASKS,
    TOTALSEG_VERSION,
    TotalSegSegmenter,
)
from perception.segment.totalseg_fake import ensure_fake_weights
from tests.conftest import data_path
from tests.segment_cases import write_liver_crop

DATASETS_USED = [297, 298, 570, 591, 789, 913]


@pytest.fixture(scope="module")
def ts_home(tmp_path_factory):
    # the folder test_segment_totalseg uses: nnU-Net reads its results path once per process
    home = tmp_path_factory.getbasetemp() / "totalseg_home"
    ensure_fake_weights(home / "nnunet" / "results", DATASETS_USED, patch_size=(32, 48, 48))
    return home


@pytest.fixture(scope="module")
def crop_ct(tmp_path_factory):
    return write_liver_crop(tmp_path_factory.mktemp("raw_ct") / "ct.nii.gz")


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_liver_lesions_weights_missing_name_folder_configuration_and_steps(tmp_path):
    ct = load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = TotalSegSegmenter(tasks=["liver_lesions"], device="cpu", home_dir=tmp_path, allow_download=False)
    with pytest.raises(WeightsMissingError) as e:
        seg.segment(ct)
    msg = str(e.value)
    for needed in ("task 'liver_lesions'", "Dataset591_ct_liver_lesions_842subj", "Dataset297_TotalSegmentator_total_3mm",
                   "v2.5.0-weights/Dataset591_ct_liver_lesions_842subj.zip", "totalseg_download_weights -t",
                   str(tmp_path / "nnunet" / "results")):
        assert needed in msg, needed


def test_fake_liver_lesions_model_is_what_totalsegmentator_2_18_loads(ts_home):
    import importlib.metadata as md

    import torch
    from totalsegmentator.map_tasks_config import TASK_CONFIGS

    assert md.version("TotalSegmentator") == TOTALSEG_VERSION
    cfg = TASK_CONFIGS["liver_lesions"]  # the installed package's own facts, against radagent's table
    d = DATASETS[591]
    assert cfg["task_id"] == 591 and cfg["trainer"] == d.trainer and cfg["model"] == d.configuration
    assert tuple(cfg["resample"]) == d.spacing_mm and cfg["crop"] == ["liver"] and cfg["robust_crop"]
    assert TASKS["liver_lesions"].crop_dataset == 297  # robust crop: the 3 mm model
    ck = torch.load(d.checkpoint(ts_home / "nnunet" / "results"), map_location="cpu", weights_only=False)
    assert ck["init_args"]["configuration"] == "3d_fullres_high"
    assert ck["init_args"]["plans"]["configurations"]["3d_fullres_high"]["spacing"] == [1.0, 0.75, 0.75]


@pytest.mark.slow(reason="four TotalSegmentator calls (total, liver segments, liver lesions, kidney cysts): ~2-4 min on CPU")
def test_analyze_without_masks_finds_lesions_that_name_their_model(ts_home, crop_ct, tmp_path):
    from click.testing import CliRunner

    from agent.cli import main

    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", str(crop_ct), "-o", str(out), "--totalseg-home", str(ts_home),
                                  "--no-download", "--device", "cpu", "--no-key-images"])
    assert r.exit_code == 0, r.output
    assert "%" in r.output and "ETA" in r.output  # one progress display over the tasks
    assert "timm" not in sys.modules and "torchvision" not in sys.modules  # the trainers were registered, never searched
    f = json.loads((out / "findings.json").read_text())
    assert f["schema_version"] == "1.3.0"
    runs = {run["task"]: run for run in f["segmentation"]["runs"]}
    assert list(runs) == ["total", "liver_segments", "liver_lesions", "kidney_cysts", "lung_nodules"]
    assert all(run["version"] == TOTALSEG_VERSION == "2.18.0" for run in runs.values())
    # a follow-up task ran exactly when `total` found one of its host organs; else it is skipped, saying why
    found = {o["name"] for o in f["organs"] if o["status"] != "absent"}
    for task, run in runs.items():
        hosts = set(TASKS[task].hosts)
        if task == "total":
            assert run["status"] == "ran"
        elif hosts & found or (task == "lung_nodules" and found & {"lung_left", "lung_right"}):
            assert run["status"] == "ran", (task, run)
        else:
            assert run["status"] == "skipped" and "found no" in run["reason"], (task, run)
    assert runs["liver_lesions"]["status"] == "ran"  # the random 3 mm model is biased to find the liver
    root = ts_home / "nnunet" / "results"
    want = [_sha(DATASETS[591].checkpoint(root)), _sha(DATASETS[297].checkpoint(root))]
    assert [w["sha256"] for w in runs["liver_lesions"]["weights"]] == want
    assert runs["liver_lesions"]["seconds"] > 0 and f["segmentation"]["seconds"] >= runs["liver_lesions"]["seconds"]
    # lesions from the liver_lesions model become Findings lesions that name it
    ll = [les for les in f["lesions"] if les["mask"] == "liver_lesions"]
    assert ll, "the biased random liver_lesions model predicts lesions"
    for les in ll:
        p = les["provenance"]
        assert (p["kind"], p["backend"], p["task"], p["model_version"], p["label"]) == (
            "model", "totalseg", "liver_lesions", "2.18.0", 1)
        assert p["weights_sha256"] == want and p["mask_file"] is None
        assert les["detection_score"] is None  # TotalSegmentator gives no detection score: none invented
    liver = next(s for s in f["lesion_search"] if s["organ"] == "liver")
    assert liver["searched"] and "model totalseg:liver_lesions" in liver["by"]
