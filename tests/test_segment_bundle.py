"""Any MONAI bundle (issue 14): `radagent analyze CT --backend bundle --bundle DIR` reads a bundle written
here (configs/inference.json with network_def / preprocessing / inferer, configs/metadata.json with the
label channels, models/model.pt: a random-weight MONAI SegResNet whose output bias makes it predict its
pancreas and tumour channels) through monai.bundle.ConfigParser. The tumour channel becomes Findings
lesions that name the bundle (name, version, the SHA-256 of model.pt recomputed here); a label the
registry does not know and a folder that is not a bundle are refused with exit code 2.
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

for _m in ("torch", "monai"):
    require_module(_m, "seg")


from tests.segment_cases import write_liver_crop

ROOT = Path(__file__).resolve().parents[1]

INFERENCE = {
    "imports": ["$import torch"],
    "bundle_root": ".",
    "device": "$torch.device('cpu')",
    "network_def": {"_target_": "SegResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 3, "init_filters": 8,
                    "blocks_down": [1, 1], "blocks_up": [1]},
    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image", "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -200, "a_max": 250, "b_min": 0.0, "b_max": 1.0,
         "clip": True}]},
    "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 16], "sw_batch_size": 1, "overlap": 0.25},
}
METADATA = {"name": "radagent test pancreas bundle", "version": "0.1.0", "monai_version": "1.6.1",
            "network_data_format": {"inputs": {"image": {"type": "image", "num_channels": 1}},
                                    "outputs": {"pred": {"type": "image", "num_channels": 3, "channel_def": {
                                        "0": "background", "1": "pancreas", "2": "pancreatic tumor"}}}}}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    import torch
    from monai.networks.nets import SegResNet

    root = tmp_path_factory.mktemp("bundle") / "pancreas_test_bundle"
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(INFERENCE, indent=1))
    (root / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=1))
    torch.manual_seed(0)
    kw = {k: v for k, v in INFERENCE["network_def"].items() if k != "_target_"}
    net = SegResNet(**kw)
    with torch.no_grad():  # the last conv's bias: background and pancreas close, tumour a bit lower
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        last.bias.copy_(torch.tensor([0.3, 0.2, 0.0]))
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def ct_path(tmp_path_factory) -> Path:
    return write_liver_crop(tmp_path_factory.mktemp("bundle_ct") / "ct.nii.gz")


def _analyze(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "agent.cli", "analyze", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_analyze_with_a_monai_bundle_gives_lesions_that_name_it(bundle, ct_path, tmp_path):
    out = tmp_path / "out"
    r = _analyze([str(ct_path), "-o", str(out), "--backend", "bundle", "--bundle", str(bundle), "--device", "cpu",
                  "--no-key-images"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    f = json.loads((out / "findings.json").read_text())
    want = hashlib.sha256((bundle / "models" / "model.pt").read_bytes()).hexdigest()
    (run,) = f["segmentation"]["runs"]
    assert (run["backend"], run["task"], run["version"], run["status"]) == (
        "bundle", "radagent_test_pancreas_bundle", "0.1.0", "ran")
    assert [w["sha256"] for w in run["weights"]] == [want]
    masks = {m["name"]: m for m in f["masks"]}
    assert masks["pancreas"]["source"] == "bundle:radagent_test_pancreas_bundle#1"
    tumours = [les for les in f["lesions"] if les["mask"] == "pancreatic_tumor"]
    assert tumours, "the biased random network predicts its tumour channel"
    for les in tumours:
        p = les["provenance"]
        assert (p["kind"], p["backend"], p["task"], p["model_version"], p["label"], p["weights_sha256"]) == (
            "model", "bundle", "radagent_test_pancreas_bundle", "0.1.0", 2, [want])
    pancreas = next(s for s in f["lesion_search"] if s["organ"] == "pancreas")
    assert pancreas["searched"] and pancreas["by"] == ["model bundle:radagent_test_pancreas_bundle"]
    # the label map on the CT grid: every voxel of the masks lies on the CT (shape and count as measured)
    assert f["study"]["shape"] == [40, 40, 18] and masks["pancreas"]["voxel_count"] > 0


def test_bad_bundles_are_refused(bundle, ct_path, tmp_path):
    import shutil

    bad = tmp_path / "bad_bundle"
    shutil.copytree(bundle, bad)
    meta = json.loads((bad / "configs" / "metadata.json").read_text())
    meta["network_data_format"]["outputs"]["pred"]["channel_def"]["2"] = "pancreatic tumour thing"
    (bad / "configs" / "metadata.json").write_text(json.dumps(meta))
    r = _analyze([str(ct_path), "-o", str(tmp_path / "o1"), "--backend", "bundle", "--bundle", str(bad)], tmp_path)
    assert r.returncode == 2 and "metadata.json" in r.stderr and "is not a structure radagent knows" in r.stderr
    assert not (tmp_path / "o1").exists()
    (bad / "models" / "model.pt").unlink()
    r = _analyze([str(ct_path), "-o", str(tmp_path / "o2"), "--backend", "bundle", "--bundle", str(bad)], tmp_path)
    assert r.returncode == 2 and "not a MONAI bundle" in r.stderr and "models/model.pt" in r.stderr
