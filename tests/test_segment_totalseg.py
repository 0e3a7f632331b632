"""TotalSegmentator's real inference path, offline: tiny random-weight nnU-Net model folders made here
(perception.segment.totalseg_fake) stand in for the downloaded weights. Predictions are meaningless;
the code path (TotalSegmentator python_api -> nnU-Net preprocessing, sliding window, export,
resampling back to the CT grid), the label ids and names, geometry, and radagent reading the result
are real.

Needs the seg venv: .cache/seg-venv/bin/pytest tests/test_segment_totalseg.py
The chained tasks (6 mm crop model first, then liver_segments / liver_vessels / kidney_cysts /
lung_nodules: ~50 s each on CPU) are marked slow: they run with RADAGENT_SLOW_TESTS=1 and in CI.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.require import require_module

for _m in ("torch", "totalsegmentator", "nnunetv2"):
    require_module(_m, "seg")

from perception.findings import build_findings  # noqa: E402
from perception.io import load_ct  # noqa: E402
from perception.registry import canonical_name, totalseg_class_maps  # noqa: E402
from perception.segment import SegmentError, WeightsMissingError  # noqa: E402
from perception.segment.totalseg import DATASETS, TotalSegSegmenter  # noqa: E402
from perception.segment.totalseg_fake import ensure_fake_weights, make_fake_weights  # noqa: E402
from perception.volume import CTVolume  # noqa: E402
from tests.conftest import data_path  # noqa: E402


@pytest.fixture(scope="module")
def ct():
    return load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))


@pytest.fixture(scope="module")
def ts_home(tmp_path_factory):
    # one folder per test session: nnU-Net reads its results path once per process
    home = tmp_path_factory.getbasetemp() / "totalseg_home"
    ensure_fake_weights(home / "nnunet" / "results", [297])
    return home


@pytest.fixture(scope="module")
def total_fast(ts_home, ct):
    seg = TotalSegSegmenter(tasks=["total"], fast=True, device="cpu", home_dir=ts_home, allow_download=False)
    return seg, seg.segment(ct)


def test_fake_model_folder_has_what_nnunet_loads(ts_home):
    import torch

    d = DATASETS[297]
    folder = ts_home / "nnunet" / "results" / d.folder / f"{d.trainer}__nnUNetPlans__3d_fullres"
    assert (folder / "plans.json").is_file() and (folder / "dataset.json").is_file()
    ck = torch.load(folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ck["trainer_name"] == "nnUNetTrainer_4000epochs_NoMirroring"
    assert ck["init_args"]["configuration"] == "3d_fullres"
    assert ck["init_args"]["plans"]["configurations"]["3d_fullres"]["spacing"] == [3.0, 3.0, 3.0]
    assert ck["network_weights"]["decoder.seg_layers.2.weight"].shape[0] == 118  # background + 117 classes


def test_total_fast_runs_for_real_and_radagent_reads_it(total_fast, ct):
    seg, ls = total_fast
    assert ls.shape == ct.shape
    cmap = totalseg_class_maps()["total"]
    assert set(ls.masks) == {canonical_name(n) for n in cmap.values()}
    assert len(ls.masks) == 117 and not ls.unknown
    inv = {canonical_name(v): k for k, v in cmap.items()}
    for name, m in ls.masks.items():
        assert m.source == f"totalseg:total/fast#{inv[name]}", (name, m.source)
    liver = ls.masks["liver"]  # the random model is biased towards background and liver
    assert not liver.empty and liver.shape == ct.shape
    assert sum(not m.empty for m in ls.masks.values()) >= 2
    # TotalSegmentator's own class map (installed 2.12.0) is the data radagent ships
    from totalsegmentator.map_to_binary import class_map

    assert class_map["total"] == cmap
    assert seg.outputs == tuple(canonical_name(n) for n in cmap.values())


def test_findings_on_totalseg_output(total_fast, ct):
    _, ls = total_fast
    f = build_findings(ct, ls)
    liver = next(o for o in f.organs if o.name == "liver")
    assert liver.voxel_count == ls.masks["liver"].voxel_count
    assert any(m.source.startswith("totalseg:total/fast#") for m in f.masks)


def test_missing_weights_say_which_folder_and_how(tmp_path, ct):
    seg = TotalSegSegmenter(tasks=["total", "liver_segments"], fast=True, device="cpu", home_dir=tmp_path, allow_download=False)
    with pytest.raises(WeightsMissingError) as e:
        seg.segment(ct)
    msg = str(e.value)
    for needed in ("Dataset297_TotalSegmentator_total_3mm_1559subj", "Dataset570_ct_liver_segments",
                   "Dataset298_TotalSegmentator_total_6mm_1559subj", "totalseg_download_weights", "total_fast",
                   str(tmp_path / "nnunet" / "results"), "v2.5.0-weights/Dataset570_ct_liver_segments.zip"):
        assert needed in msg, needed


def test_failed_download_becomes_weights_missing(ts_home, ct, monkeypatch):
    import requests
    import totalsegmentator.libs as libs

    def offline(url, config_dir):
        raise requests.ConnectionError(f"no network for {url}")

    monkeypatch.setattr(libs, "download_url_and_unpack", offline)
    seg = TotalSegSegmenter(tasks=["liver_vessels"], device="cpu", home_dir=ts_home, allow_download=True)
    with pytest.raises(WeightsMissingError, match=r"download failed: ConnectionError.*\n.*Dataset008_HepaticVessel"):
        seg.segment(ct)


def test_second_weights_folder_in_one_process_is_refused(total_fast, tmp_path, ct):
    # nnU-Net read its results path at import (in total_fast); another folder cannot take effect silently
    (tmp_path / "nnunet" / "results" / DATASETS[297].folder).mkdir(parents=True)
    seg = TotalSegSegmenter(tasks=["total"], fast=True, device="cpu", home_dir=tmp_path, allow_download=False)
    with pytest.raises(SegmentError, match="fresh process"):
        seg.segment(ct)


@pytest.mark.slow(reason="chained tasks take ~50 s each on CPU")
def test_chained_tasks_on_a_crop(ts_home, ct):
    make_fake_weights(ts_home / "nnunet" / "results", [298, 570, 8, 789, 913], patch_size=(32, 48, 48))
    lo = np.array([44, 28, 6])
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ lo + ct.affine[:3, 3]
    crop = CTVolume(ct.hu[44:84, 28:68, 6:24].copy(), aff, "crop", "nifti")
    tasks = ["liver_segments", "liver_vessels", "kidney_cysts", "lung_nodules"]
    seg = TotalSegSegmenter(tasks=tasks, device="cpu", home_dir=ts_home, allow_download=False)
    ls = seg.segment(crop)
    maps = totalseg_class_maps()
    for t in tasks:
        for lab, name in maps[t].items():
            assert canonical_name(name) in ls.masks
    assert any(not ls.masks[f"liver_segment_{i}"].empty for i in range(1, 9))


def test_dataset_build_segments_cases_without_masks(ts_home, tmp_path):
    """`radagent dataset build --segment totalseg`: a CT with no masks is segmented in the worker
    (TotalSegmentator's real code path on the fake weights) and measured like any other case."""
    import json
    import shutil

    from click.testing import CliRunner

    from agent.cli import main

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_path("totalseg", "example_ct_sm.nii.gz"), src / "ct_only_01.nii.gz")
    out = tmp_path / "out"
    args = ["dataset", "build", str(src), "-o", str(out), "--workers", "1", "--no-progress", "--no-key-images"]
    r = CliRunner().invoke(main, args)  # without --segment: recorded as an error, the build goes on
    assert r.exit_code == 0, r.output
    err = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines() if x.strip()]
    assert [e["error_type"] for e in err] == ["SegmentationUnavailableError"]
    r = CliRunner().invoke(main, args + ["--segment", "totalseg", "--task", "total", "--fast", "--totalseg-home",
                                         str(ts_home), "--no-download", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    f = json.loads((out / "cases" / "ct_only_01" / "findings.json").read_text())
    assert f["masks"] and all(m["source"].startswith("totalseg:") for m in f["masks"])
    assert (out / "errors.jsonl").read_text().strip() == ""
