"""Label provenance in dataset.parquet (issue 10): the source of every mask (`mask_sources`: user file,
model task and version, synthetic), paths relative to the source root, `mask_label`, and the
patient-level `split` carried from the manifest (train / val / test; one split per patient_id).

Before: dataset.parquet had absolute `ct` / `masks` paths, no mask provenance and no split column.
The expected `mask_sources` are built here from the files written (names and paths), not from
radagent's findings.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest

from agent.dataset import BuildOptions, DatasetError, build_dataset, discover_cases
from agent.dataset.outputs import mask_source
from perception.segment.totalseg import TOTALSEG_VERSION
from tests.conftest import data_path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    src = tmp_path_factory.mktemp("prov") / "source"
    ct_img = nib.load(str(data_path("totalseg", "example_ct_sm.nii.gz")))
    seg_img = nib.load(str(data_path("totalseg", "example_seg.nii.gz")))
    seg = np.asanyarray(seg_img.dataobj)
    # case a: a folder of binary masks named by structure (total ids 5 liver, 1 spleen)
    (src / "a" / "masks").mkdir(parents=True)
    shutil.copyfile(data_path("totalseg", "example_ct_sm.nii.gz"), src / "a" / "ct.nii.gz")
    for name, lab in (("liver", 5), ("spleen", 1)):
        nib.save(nib.Nifti1Image((seg == lab).astype(np.uint8), seg_img.affine), str(src / "a" / "masks" / f"{name}.nii.gz"))
    # case b: a multilabel map with an explicit class map
    (src / "b").mkdir()
    shutil.copyfile(data_path("totalseg", "example_ct_sm.nii.gz"), src / "b" / "ct.nii.gz")
    shutil.copyfile(data_path("totalseg", "example_seg.nii.gz"), src / "b" / "labels.nii.gz")
    (src / "b" / "cm.json").write_text(json.dumps({"5": "liver", "1": "spleen"}))
    # case c: CT outside the source root (path kept absolute), one mask file named by mask_label
    (src / "c").mkdir()
    shutil.copyfile(data_path("ibsi_sts", "STS_019", "CT_mask.nii.gz"), src / "c" / "roi.nii.gz")
    sts_ct = data_path("ibsi_sts", "STS_019", "CT_image.nii.gz").absolute()
    manifest = src / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "ct", "masks", "class_map", "mask_label", "split", "patient_id"])
        w.writerow(["a", "a/ct.nii.gz", "a/masks", "", "", "train", "p1"])
        w.writerow(["b", "b/ct.nii.gz", "b/labels.nii.gz", "b/cm.json", "", "Train", "p1"])
        w.writerow(["c", str(sts_ct), "c/roi.nii.gz", "", "gtv", "test", "p2"])
    out = src.parent / "out"
    s = build_dataset(manifest, out, BuildOptions(workers=1))
    assert (s.done, s.failed) == (3, 0)
    rows = {r["case_id"]: r for r in pq.read_table(out / "dataset.parquet").to_pylist()}
    del ct_img
    return dict(src=src, out=out, rows=rows, sts_ct=sts_ct, seg=seg)


def test_paths_relative_to_the_source_root(built):
    r = built["rows"]
    assert (r["a"]["ct"], r["a"]["masks"], r["a"]["class_map"]) == ("a/ct.nii.gz", "a/masks", None)
    assert (r["b"]["masks"], r["b"]["class_map"]) == ("b/labels.nii.gz", "b/cm.json")
    assert r["c"]["ct"] == str(built["sts_ct"])  # outside the source folder: absolute
    assert r["c"]["masks"] == "c/roi.nii.gz" and r["c"]["mask_label"] == "gtv" and r["a"]["mask_label"] is None


def test_mask_sources_name_each_file(built):
    r = built["rows"]
    assert sorted(r["a"]["mask_sources"]) == ["liver=file:a/masks/liver.nii.gz", "spleen=file:a/masks/spleen.nii.gz"]
    assert sorted(r["b"]["mask_sources"]) == ["liver=file:b/labels.nii.gz#5", "spleen=file:b/labels.nii.gz#1"]
    assert r["c"]["mask_sources"] == ["gtv=file:c/roi.nii.gz"]
    # the labels of b's map that the class map does not name are in findings.json as ignored masks
    present = sorted(set(np.unique(built["seg"]).tolist()) - {0, 1, 5})
    f = json.loads((built["out"] / "cases" / "b" / "findings.json").read_text())
    assert len(present) == 39 and "ignored_masks" in f
    assert sorted(m["name"] for m in f["ignored_masks"]) == sorted(f"label {v}" for v in present)


def test_split_column_and_card(built):
    r = built["rows"]
    assert (r["a"]["split"], r["b"]["split"], r["c"]["split"]) == ("train", "train", "test")
    assert r["a"]["meta_patient_id"] == "p1"
    card = (built["out"] / "dataset_card.md").read_text()
    assert "## Label provenance" in card and "| file | 5 | 3 |" in card
    assert "## Splits" in card and "| train | 2 | 2 |" in card and "| test | 1 | 1 |" in card


def test_model_and_synthetic_sources():
    root = Path("/data/src")
    assert mask_source("liver", "totalseg:total/fast#5", root) == \
        f"liver=model:totalseg:total/fast (TotalSegmentator {TOTALSEG_VERSION})"
    assert mask_source("liver_lesion", "unit:best.ckpt#2", root).startswith("liver_lesion=model:unit:best.ckpt (radagent UniT ")
    assert mask_source("liver_lesion", "synthetic:ellipsoid seed 3", root) == "liver_lesion=synthetic:ellipsoid seed 3"
    assert mask_source("liver", "/elsewhere/liver.nii.gz", root) == "liver=file:/elsewhere/liver.nii.gz"


def test_bad_split_and_split_leak_refused(tmp_path):
    ct = data_path("totalseg", "example_ct_sm.nii.gz")
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,ct,split\na,{ct},tset\n")
    with pytest.raises(DatasetError, match=r"split 'tset': expected one of train, val, test"):
        discover_cases(m)
    m.write_text(f"case_id,ct,split,patient_id\na,{ct},train,p1\nb,{ct},test,p1\nc,{ct},,p1\n")
    with pytest.raises(DatasetError, match=r"one split per patient.*patient 'p1' in test, train"):
        discover_cases(m)
    m.write_text(f"case_id,ct,split\na,{ct},\n")
    assert discover_cases(m)[0].split is None
