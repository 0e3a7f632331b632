"""Masks in as DICOM SEG, NRRD / 3D Slicer .seg.nrrd and RTSTRUCT (perception/mask_formats.py), and the
bad DICOM objects refused.

Truths are computed independently of the reader under test: the dcmqi liver SEG over the 3-slice CT
is compared voxel for voxel with the same labelmap stored as NRRD, read here with pynrrd and placed by
its own header (LPS origin and directions == the CT's, checked); the STS_019 RTSTRUCT through
``--masks`` is compared with the expert NIfTI mask (nibabel, reoriented), measured earlier at Dice
1.000, 5564 voxels.
"""

from __future__ import annotations

import copy
import json

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from perception.errors import GeometryMismatchError, MaskError
from tests.conftest import data_path

VOX_MM3 = 0.810547 * 0.810547 * 1.0


@pytest.fixture(scope="module")
def three():
    from perception.io import load_ct

    d = data_path("dicom_seg")
    return {"ct": load_ct(d / "ct-3slice"), "dir": d}


def nrrd_truth(path, ct) -> np.ndarray:
    """The NRRD labelmap on the CT grid, placed by its own header (no radagent code)."""
    data, h = nrrd.read(str(path))
    assert h["space"] == "left-posterior-superior"
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(h["space directions"]).T
    lps[:3, 3] = h["space origin"]
    np.testing.assert_allclose(np.diag([-1, -1, 1, 1]) @ lps, ct.affine, atol=1e-4)
    return data


def test_dicom_seg_liver_equals_nrrd_labelmap(three):
    from perception.masks import load_masks

    ct, d = three["ct"], three["dir"]
    truth = nrrd_truth(d / "liver_seg.nrrd", ct) == 1
    ls = load_masks(d / "liver.dcm", ct)
    assert list(ls.masks) == ["liver"] and not ls.ignored  # SegmentLabel 'Liver' through the registry
    got = ls.masks["liver"].dense()
    assert int(got.sum()) == int(truth.sum()) == 107098
    assert np.array_equal(got, truth)
    # the same labelmap as NRRD, named by --mask-label
    n = load_masks(d / "liver_seg.nrrd", ct, mask_label="liver")
    assert np.array_equal(n.masks["liver"].dense(), truth)


def test_nrrd_naming_rules(three, tmp_path):
    from perception.masks import load_masks

    ct, d = three["ct"], three["dir"]
    with pytest.raises(MaskError, match="found the name 'liver_seg'.*--mask-label"):
        load_masks(d / "liver_seg.nrrd", ct)  # NRRD is not TotalSegmentator output: its name says nothing
    with pytest.raises(MaskError, match="expected a binary mask.*found 2 label values"):
        load_masks(d / "liver_spine_seg.nrrd", ct, mask_label="liver")
    cm = tmp_path / "cm.json"
    cm.write_text(json.dumps({"1": "liver", "2": "vertebrae_L1"}))
    truth = nrrd_truth(d / "liver_spine_seg.nrrd", ct)
    ls = load_masks(d / "liver_spine_seg.nrrd", ct, class_map=cm)
    assert ls.masks["liver"].voxel_count == int((truth == 1).sum()) == 107098
    assert ls.masks["vertebrae_L1"].voxel_count == int((truth == 2).sum()) == 12439
    # a 3D Slicer segmentation: names from SegmentN_Name / SegmentN_LabelValue
    data, h = nrrd.read(str(d / "liver_spine_seg.nrrd"))
    h.update({"Segment0_Name": "Liver", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
              "Segment1_Name": "spine", "Segment1_LabelValue": "2", "Segment1_Layer": "0"})
    nrrd.write(str(tmp_path / "case.seg.nrrd"), data, h)
    ls = load_masks(tmp_path / "case.seg.nrrd", ct)
    assert ls.masks["liver"].voxel_count == 107098
    assert [x["name"] for x in ls.ignored] == ["spine"]  # an unknown name: kept, recorded as not interpreted
    with pytest.raises(MaskError, match="not interpreted.*'spine'"):
        load_masks(tmp_path / "case.seg.nrrd", ct, strict=True)


def test_analyze_cli_with_seg_nrrd_and_rtstruct(three, tmp_path):
    from agent.cli import main

    d = three["dir"]
    r = CliRunner().invoke(main, ["analyze", str(d / "ct-3slice"), "--masks", str(d / "liver.dcm"), "-o",
                                  str(tmp_path / "seg")])
    assert r.exit_code == 0, r.output
    f = json.loads((tmp_path / "seg" / "findings.json").read_text())
    (liver,) = [o for o in f["organs"] if o["name"] == "liver"]
    assert liver["voxel_count"] == 107098
    assert liver["imaged_volume_ml"] == pytest.approx(107098 * VOX_MM3 / 1000, rel=1e-4)
    # RTSTRUCT: the STS_019 GTV (ROI 'GTV_Mass_CT', RT ROI Interpreted Type GTV) against the expert NIfTI mask
    sts = data_path("ibsi_sts", "STS_019")
    r = CliRunner().invoke(main, ["analyze", str(sts / "dicom" / "image"), "--masks", str(sts / "dicom" / "RTSTRUCT.dcm"),
                                  "-o", str(tmp_path / "rt"), "--no-key-images"])
    assert r.exit_code == 0, r.output
    f = json.loads((tmp_path / "rt" / "findings.json").read_text())
    expert = int(np.count_nonzero(np.asarray(nib.load(sts / "CT_mask.nii.gz").dataobj) > 0))
    (les,) = f["lesions"]
    assert les["mask"] == "gtv" and les["voxel_count"] == expert == 5564
    assert any("RT ROI Interpreted Type" in w for w in f["study"]["warnings"])
    # the same RTSTRUCT over the NIfTI export of that CT: no UIDs to check, the contours placed by the affine
    from perception.io import load_ct
    from perception.masks import load_masks

    ls = load_masks(sts / "dicom" / "RTSTRUCT.dcm", load_ct(sts / "CT_image.nii.gz"))
    assert ls.masks["gtv"].voxel_count == expert


# --- bad DICOM objects ------------------------------------------------------------------------------
def _seg(d):
    return pydicom.dcmread(d / "liver.dcm")


def _save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return path


def test_seg_for_another_series_refused(three, tmp_path):
    from agent.cli import main
    from perception.masks import load_masks

    ct, d = three["ct"], three["dir"]
    ds = _seg(d)
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.1"
    p = _save(ds, tmp_path / "other.dcm")
    with pytest.raises(MaskError, match=r"expected a DICOM SEG of the CT series 1\.2\.392.*referencing series "
                                        r"1\.2\.826\.0\.1\.3680043\.10\.999\.1: this DICOM SEG belongs to another series"):
        load_masks(p, ct)
    r = CliRunner().invoke(main, ["analyze", str(d / "ct-3slice"), "--masks", str(p), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "belongs to another series" in r.output and not (tmp_path / "o").exists()


def _six_frames(ds, second_segment: int):
    """liver.dcm with its 3 frames repeated as frames 4-6, those naming ``second_segment``."""
    out = copy.deepcopy(ds)
    per = list(out.PerFrameFunctionalGroupsSequence)
    extra = [copy.deepcopy(x) for x in per]
    for x in extra:
        x.SegmentIdentificationSequence[0].ReferencedSegmentNumber = second_segment
    out.PerFrameFunctionalGroupsSequence = per + extra
    out.NumberOfFrames = 6
    assert (ds.Rows * ds.Columns) % 8 == 0  # bit-packed frames are whole bytes: they concatenate
    out.PixelData = ds.PixelData[: 3 * ds.Rows * ds.Columns // 8] * 2
    return out


def test_overlapping_segments_refused(three, tmp_path):
    from perception.masks import load_masks

    ct, d = three["ct"], three["dir"]
    ds = _seg(d)
    # two frames of one segment on one plane
    with pytest.raises(MaskError, match=r"segment 1 \(liver\) has two frames on one plane \(frames 1 and 4\)"):
        load_masks(_save(_six_frames(ds, 1), tmp_path / "dup.dcm"), ct)
    # two organ segments sharing voxels
    two = _six_frames(ds, 2)
    item = copy.deepcopy(two.SegmentSequence[0])
    item.SegmentNumber, item.SegmentLabel = 2, "Spleen"
    two.SegmentSequence.append(item)
    with pytest.raises(MaskError, match=r"segments 'liver' and 'spleen' overlap in 107098 voxels: expected disjoint"):
        load_masks(_save(two, tmp_path / "overlap.dcm"), ct)
    # a lesion inside the organ is read as given
    item.SegmentLabel = "liver_lesion"
    ls = load_masks(_save(two, tmp_path / "lesion.dcm"), ct)
    assert ls.masks["liver_lesion"].voxel_count == ls.masks["liver"].voxel_count == 107098
    # a fractional (soft) SEG
    soft = _seg(d)
    soft.SegmentationType = "FRACTIONAL"
    with pytest.raises(MaskError, match="found SegmentationType FRACTIONAL .*threshold"):
        load_masks(_save(soft, tmp_path / "soft.dcm"), ct)


def test_seg_frame_off_grid_refused(three, tmp_path):
    from perception.masks import load_masks

    ct, d = three["ct"], three["dir"]
    ds = _seg(d)
    pos = ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0]
    pos.ImagePositionPatient = [float(pos.ImagePositionPatient[0]) + 100.0 * 0.810547, *pos.ImagePositionPatient[1:]]
    with pytest.raises(GeometryMismatchError, match=r"frame 2: expected inside the CT grid .* off the CT grid"):
        load_masks(_save(ds, tmp_path / "shift.dcm"), ct)
    ds = _seg(d)
    pos = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    pos.ImagePositionPatient = [float(pos.ImagePositionPatient[0]) + 0.4, *pos.ImagePositionPatient[1:]]
    with pytest.raises(GeometryMismatchError, match=r"frame 1: expected its first pixel on a CT voxel centre, found it "
                                                    r"0\.4000 mm away"):
        load_masks(_save(ds, tmp_path / "half.dcm"), ct)


def test_rtstruct_off_grid_and_other_series_refused(tmp_path):
    from perception.io import load_ct
    from perception.masks import load_masks

    sts = data_path("ibsi_sts", "STS_019", "dicom")
    ct = load_ct(sts / "image")
    ds = pydicom.dcmread(sts / "RTSTRUCT.dcm")
    moved = copy.deepcopy(ds)
    c = moved.ROIContourSequence[0].ContourSequence[0]
    pts = [float(v) for v in c.ContourData]
    pts[0::3] = [x + 200.0 for x in pts[0::3]]  # 200 mm to the patient's left: beyond the 137 mm wide crop
    c.ContourData = [f"{v:.4f}" for v in pts]
    with pytest.raises(MaskError, match=r"ROI 'GTV_Mass_CT' contour 1: expected points inside the CT grid .* off the "
                                        r"CT grid"):
        load_masks(_save(moved, tmp_path / "moved.dcm"), ct)
    other = copy.deepcopy(ds)
    ser = other.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    ser.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.2"
    with pytest.raises(MaskError, match=r"referencing series 1\.2\.826\.0\.1\.3680043\.10\.999\.2: this RTSTRUCT "
                                        r"belongs to another series"):
        load_masks(_save(other, tmp_path / "other.dcm"), ct)


def test_not_a_mask_dicom_refused(three, tmp_path):
    from perception.masks import load_masks

    ct, d = three["ct"], three["dir"]
    with pytest.raises(MaskError, match="expected a DICOM SEG or RTSTRUCT mask, found modality CT"):
        load_masks(d / "ct-3slice" / "01.dcm", ct)
    with pytest.raises(MaskError, match="a class map was given, but a DICOM SEG"):
        load_masks(d / "liver.dcm", ct, class_map=tmp_path / "x.json")


def test_fifo_named_like_dicom_refused_without_blocking(three, tmp_path):
    import os

    from perception.masks import load_masks

    fifo = tmp_path / "seg.dcm"
    os.mkfifo(fifo)
    with pytest.raises(MaskError, match="expected a regular mask file, found a FIFO"):
        load_masks(fifo, three["ct"])


def test_nrrd_over_the_size_limit_refused_before_reading(three, monkeypatch):
    from perception.masks import load_masks

    # liver_seg.nrrd: 512 x 512 x 3 int16 = 1,572,864 bytes declared
    monkeypatch.setenv("RADAGENT_MAX_VOXEL_BYTES", str(512 * 512 * 3 * 2 - 1))
    with pytest.raises(MaskError, match="expected voxel data of at most 1572863 bytes, found a header declaring "
                                        "1572864 bytes"):
        load_masks(three["dir"] / "liver_seg.nrrd", three["ct"], mask_label="liver")


def test_dicom_seg_over_the_size_limit_refused_before_decoding(three, monkeypatch):
    from perception.masks import load_masks

    monkeypatch.setenv("RADAGENT_MAX_VOXEL_BYTES", str(3 * 512 * 512 - 1))  # liver.dcm: 3 frames of 512x512
    with pytest.raises(MaskError, match="expected decoded pixel data of at most 786431 bytes, found 3 frames of 512x512"):
        load_masks(three["dir"] / "liver.dcm", three["ct"])
