"""Any nnU-Net v2 model (issue 14): `radagent analyze CT --backend nnunet --nnunet-model DIR --labels JSON`
loads a results folder with nnU-Net's own predictor. The folder is built here through nnU-Net's own
trainer class (nnUNetTrainer.build_network_architecture from a plans.json) with random weights whose final
layer is biased so liver and lesion labels are predicted; the model's lesion label becomes Findings
lesions that name the model (backend, dataset folder, nnunetv2 version, the checkpoint's SHA-256
recomputed here). Runs in child processes (the real CLI): nnU-Net reads its paths once per process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.require import require_module

for _m in ("torch", "nnunetv2"):
    require_module(_m, "seg")


from tests.segment_cases import write_liver_crop

ROOT = Path(__file__).resolve().parents[1]
TRAINER = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """Dataset901_radagent_test/nnUNetTrainer__nnUNetPlans__3d_fullres: labels 1 'organ', 2 'tumour' (names the
    --labels JSON maps to radagent's), 3 mm spacing, random weights."""
    out = tmp_path_factory.mktemp("nnunet_results") / "Dataset901_radagent_test" / TRAINER
    code = ("import sys; from pathlib import Path; from perception.segment.totalseg_fake import nnunet_plans, "
            "write_results_folder; plans, ds = nnunet_plans('Dataset901_radagent_test', {1: 'organ', 2: 'tumour'}, "
            "[3.0, 3.0, 3.0], '3d_fullres', [16, 32, 32], [4, 8, 16]); "
            "write_results_folder(Path(sys.argv[1]), plans, ds, 'nnUNetTrainer', '3d_fullres', {0: 1.0, 1: 1.0, 2: 0.7})")
    r = _run(["-c", code, str(out)], ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def ct_path(tmp_path_factory) -> Path:
    return write_liver_crop(tmp_path_factory.mktemp("nnunet_ct") / "ct.nii.gz")


def test_results_folder_is_built_by_nnunets_trainer(model):
    import torch

    ck = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ck["trainer_name"] == "nnUNetTrainer" and ck["init_args"]["configuration"] == "3d_fullres"
    assert ck["network_weights"]["decoder.seg_layers.1.weight"].shape[0] == 3  # 3 stages; background + 2 labels
    assert json.loads((model / "dataset.json").read_text())["labels"] == {"background": 0, "organ": 1, "tumour": 2}


def test_analyze_with_an_nnunet_model_gives_lesions_that_name_it(model, ct_path, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"1": "liver", "2": "liver_tumor"}))
    out = tmp_path / "out"
    r = _run(["-m", "agent.cli", "analyze", str(ct_path), "-o", str(out), "--backend", "nnunet", "--nnunet-model",
              str(model), "--labels", str(labels), "--device", "cpu", "--no-key-images"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    f = json.loads((out / "findings.json").read_text())
    want = hashlib.sha256((model / "fold_0" / "checkpoint_final.pth").read_bytes()).hexdigest()
    (run,) = f["segmentation"]["runs"]
    assert (run["backend"], run["task"], run["status"]) == ("nnunet", "Dataset901_radagent_test", "ran")
    assert [w["sha256"] for w in run["weights"]] == [want]
    import importlib.metadata as md

    assert run["version"] == md.version("nnunetv2")
    tumours = [les for les in f["lesions"] if les["mask"] == "liver_tumor"]
    assert tumours, "the biased random model predicts its lesion label"
    for les in tumours:
        p = les["provenance"]
        assert (p["kind"], p["backend"], p["task"], p["label"], p["weights_sha256"]) == (
            "model", "nnunet", "Dataset901_radagent_test", 2, [want])
        assert les["organ"] in ("liver", None)
    liver = next(s for s in f["lesion_search"] if s["organ"] == "liver")
    assert liver["searched"] and liver["by"] == ["model nnunet:Dataset901_radagent_test"]


def test_bad_label_map_and_bad_folder_are_refused(model, ct_path, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"1": "livr", "2": "liver_tumor"}))
    r = _run(["-m", "agent.cli", "analyze", str(ct_path), "-o", str(tmp_path / "o1"), "--backend", "nnunet",
              "--nnunet-model", str(model), "--labels", str(labels), "--device", "cpu"], tmp_path)
    assert r.returncode == 2 and str(labels) in r.stderr and "'livr' is not a structure" in r.stderr
    assert "did you mean" in r.stderr and not (tmp_path / "o1").exists()
    r = _run(["-m", "agent.cli", "analyze", str(ct_path), "-o", str(tmp_path / "o2"), "--backend", "nnunet",
              "--nnunet-model", str(tmp_path), "--device", "cpu"], tmp_path)
    assert r.returncode == 2 and "not an nnU-Net results folder (expected plans.json" in r.stderr
    r = _run(["-m", "agent.cli", "analyze", str(ct_path), "-o", str(tmp_path / "o3"), "--backend", "nnunet"], tmp_path)
    assert r.returncode == 2 and "--nnunet-model: backend 'nnunet' needs --nnunet-model DIR" in r.stderr
