"""Bad input is refused with a clear message naming the file, exit code 2, and no partial output."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from agent.cli import main
from tests.conftest import data_path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A real CT crop (10 slices of the TotalSegmentator example) and its multilabel mask."""
    d = tmp_path_factory.mktemp("small")
    ct = nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = nib.load(data_path("totalseg", "example_seg.nii.gz"))
    a = np.asanyarray(ct.dataobj)[:, :, 10:20]
    s = np.asanyarray(seg.dataobj)[:, :, 10:20]
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ [0, 0, 10] + ct.affine[:3, 3]
    nib.save(nib.Nifti1Image(a, aff), str(d / "ct.nii.gz"))
    nib.save(nib.Nifti1Image(s, aff), str(d / "seg.nii.gz"))
    return dict(dir=d, ct=d / "ct.nii.gz", seg=d / "seg.nii.gz", arr=a, segarr=s, aff=aff)


def run(args):
    r = CliRunner().invoke(main, ["analyze"] + [str(a) for a in args])
    return r.exit_code, r.output


def refused(args, out, *needles):
    code, text = run(args + ["-o", out])
    assert code == 2, text
    assert not out.exists(), f"partial output left at {out}"
    assert not list(out.parent.glob(f".{out.name}.tmp-*")), "temporary folder left behind"
    flat = " ".join(text.split())
    for n in needles:
        assert n in flat, f"{n!r} not in message:\n{text}"
    return text


def test_good_case_writes_outputs(small, tmp_path):
    out = tmp_path / "out"
    code, text = run([small["ct"], "--masks", small["seg"], "-o", out])
    assert code == 0, text
    assert (out / "findings.json").exists() and (out / "findings.md").exists()
    # existing non-empty output folder is not overwritten without --force
    code2, text2 = run([small["ct"], "--masks", small["seg"], "-o", out])
    assert code2 == 2 and "--force" in text2
    assert run([small["ct"], "--masks", small["seg"], "-o", out, "--force"])[0] == 0


def test_missing_ct(small, tmp_path):
    refused([tmp_path / "nope.nii.gz", "--masks", small["seg"]], tmp_path / "out", "nope.nii.gz", "not found")


def test_corrupt_and_truncated_ct(small, tmp_path):
    bad = tmp_path / "garbage.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 10)
    refused([bad, "--masks", small["seg"]], tmp_path / "o1", "garbage.nii.gz", "corrupt or truncated")
    raw = small["ct"].read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    refused([cut, "--masks", small["seg"]], tmp_path / "o2", "cut.nii.gz", "truncated")
    unz = tmp_path / "cut.nii"
    full = gzip.decompress(raw)
    unz.write_bytes(full[: len(full) - 1000])
    refused([unz, "--masks", small["seg"]], tmp_path / "o3", "cut.nii", "truncated", "expected at least")
    notnii = tmp_path / "ct.txt"
    notnii.write_text("hello")
    refused([notnii, "--masks", small["seg"]], tmp_path / "o4", "ct.txt", "unsupported CT file type")


def test_mr_volume_refused(small, tmp_path):
    mr = data_path("totalseg", "example_mr_sm.nii.gz")
    refused([mr, "--masks", small["seg"]], tmp_path / "out", "example_mr_sm.nii.gz", "does not look like a CT", "MR")


@pytest.mark.parametrize("kind", ["2d", "single_slice", "4d", "nan"])
def test_not_3d_or_not_finite(small, tmp_path, kind):
    a = small["arr"]
    if kind == "2d":
        arr, msg = a[:, :, 0], "2D image"
    elif kind == "single_slice":
        arr, msg = a[:, :, :1], "2D image"
    elif kind == "4d":
        arr, msg = np.stack([a, a], axis=-1), "4D image"
    else:
        arr = a.astype(np.float32)
        arr[5, 5, 5] = np.nan
        arr[6, 6, 6] = np.inf
        msg = "found 2 NaN/inf voxels"
    p = tmp_path / f"{kind}.nii.gz"
    nib.save(nib.Nifti1Image(arr, small["aff"]), str(p))
    refused([p, "--masks", small["seg"]], tmp_path / "out", f"{kind}.nii.gz", msg)


def test_mask_shape_and_affine_mismatch(small, tmp_path):
    s = small["segarr"]
    p = tmp_path / "seg_short.nii.gz"
    nib.save(nib.Nifti1Image(s[:, :, :8], small["aff"]), str(p))
    refused([small["ct"], "--masks", p], tmp_path / "o1", "mask geometry differs", "shape (122, 101, 10)", "shape (122, 101, 8)")
    aff = small["aff"].copy()
    aff[0, 3] += 1.5
    p2 = tmp_path / "seg_shift.nii.gz"
    nib.save(nib.Nifti1Image(s, aff), str(p2))
    text = refused([small["ct"], "--masks", p2], tmp_path / "o2", "mask geometry differs", "seg_shift.nii.gz")
    assert f"{small['aff'][0, 3]:.4f}" in text.replace("\n", "") and f"{aff[0, 3]:.4f}" in text.replace("\n", "")


def test_mask_in_other_axis_order_is_reoriented(small, tmp_path):
    """Same grid stored LAS instead of RAS: reoriented losslessly, same findings as the original."""
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    img = nib.load(str(small["seg"]))
    tr = ornt_transform(io_orientation(img.affine), axcodes2ornt("LAS"))
    las = img.as_reoriented(tr)
    p = tmp_path / "seg_las.nii.gz"
    nib.save(las, str(p))
    code, text = run([small["ct"], "--masks", p, "-o", tmp_path / "out"])
    assert code == 0, text
    assert "reoriented losslessly" in text
    import json

    a = json.loads((tmp_path / "out" / "findings.json").read_text())
    code, _ = run([small["ct"], "--masks", small["seg"], "-o", tmp_path / "ref"])
    b = json.loads((tmp_path / "ref" / "findings.json").read_text())
    strip = lambda f: [{k: v for k, v in o.items() if k != "mask"} for o in f["organs"]]
    assert strip(a) == strip(b)


def test_empty_folders(small, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    refused([small["ct"], "--masks", empty], tmp_path / "o1", "empty", "found none")
    refused([empty, "--masks", small["seg"]], tmp_path / "o2", "empty")


def test_unknown_mask_names_did_you_mean(small, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    liver = (small["segarr"] == 5).astype(np.uint8)
    nib.save(nib.Nifti1Image(liver, small["aff"]), str(folder / "livr.nii.gz"))
    nib.save(nib.Nifti1Image(liver, small["aff"]), str(folder / "liver.nii.gz"))
    code, text = run([small["ct"], "--masks", folder, "-o", tmp_path / "out"])
    assert code == 0
    flat = " ".join(text.split())
    assert "unknown mask name 'livr'" in flat and "did you mean 'liver'" in flat
    refused([small["ct"], "--masks", folder, "--strict-masks"], tmp_path / "o2", "livr", "did you mean 'liver'")


def test_missing_masks_and_bad_class_map(small, tmp_path):
    refused([small["ct"], "--masks", tmp_path / "nomasks"], tmp_path / "o1", "nomasks", "masks not found")
    cm = tmp_path / "cm.json"
    cm.write_text("{not json")
    refused([small["ct"], "--masks", small["seg"], "--class-map", cm], tmp_path / "o2", "cm.json", "not valid JSON")
