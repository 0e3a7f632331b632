"""Synthetic lesions written into the real DICOM series (TotalSegmentator example, JPEG 2000,
0.98 x 0.98 x 2 mm) and measured with its `total` segmentation stored LAS (the loader gives LPS):
the same geometry truth as the NIfTI case, through real DICOM files."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from agent.case import measure
from eval.synthetic import ellipsoid, organ_center_mm, save_nifti, world_grid
from perception.registry import totalseg_class_maps
from tests.conftest import data_path


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    src = data_path("totalseg", "example_ct_dicom")
    seg_img = nib.load(data_path("totalseg", "example_seg_dicom.nii.gz"))
    seg = np.asanyarray(seg_img.dataobj)
    aff = seg_img.affine  # LAS: the truth is defined on this grid, in world mm
    names = totalseg_class_maps()["total"]
    liver = seg == 5
    centre = organ_center_mm(liver, aff)
    semi = (14.0, 10.0, 6.0)
    lesion = ellipsoid(seg.shape, aff, centre, semi) & liver
    lesion_hu = 20.0
    # write the series: lesion voxels set to lesion_hu in every slice (decompressed, explicit VR LE)
    out = tmp_path_factory.mktemp("dcm") / "series"
    out.mkdir()
    inv = np.linalg.inv(aff)
    xyz = world_grid(seg.shape, aff)
    n_painted = 0
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.decompress()
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])  # LPS
        ras = np.array([-ipp[0], -ipp[1], ipp[2], 1.0])
        k = int(round((inv @ ras)[2]))
        arr = ds.pixel_array.copy()  # (rows, cols)
        # pixel (row r, col c) is at LPS ipp + c*dx*rowdir + r*dy*coldir; map to the LAS grid index
        sl = lesion[:, :, k]
        rows, cols = arr.shape
        cc, rr = np.meshgrid(np.arange(cols), np.arange(rows))
        px = float(ds.PixelSpacing[1]) * cc
        py = float(ds.PixelSpacing[0]) * rr
        wx, wy = -(ipp[0] + px), -(ipp[1] + py)  # RAS
        ij = inv[:2, :2] @ np.stack([wx.ravel(), wy.ravel()]) + (inv[:2, 2] * ipp[2] + inv[:2, 3])[:, None]
        ii, jj = np.rint(ij).astype(int)
        hit = sl[ii.clip(0, seg.shape[0] - 1), jj.clip(0, seg.shape[1] - 1)].reshape(rows, cols)
        stored = int(round((lesion_hu - float(ds.RescaleIntercept)) / float(ds.RescaleSlope)))
        arr[hit] = stored
        n_painted += int(hit.sum())
        ds.PixelData = arr.astype(arr.dtype).tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / f.name, enforce_file_format=True)
    assert n_painted == int(lesion.sum())
    masks = out.parent / "masks"
    for lab in np.unique(seg):
        if lab:
            save_nifti((seg == lab).astype(np.uint8), aff, masks / f"{names[int(lab)]}.nii.gz")
    save_nifti(lesion.astype(np.uint8), aff, masks / "liver_lesion.nii.gz")
    f = measure(out, masks)
    return dict(findings=f, lesion=lesion, semi=semi, lesion_hu=lesion_hu, liver=liver, xyz=xyz, aff=aff)


def test_dicom_series_lesion_measurements(dicom_case):
    f, lesion = dicom_case["findings"], dicom_case["lesion"]
    assert f.study.source_format == "dicom" and f.study.orientation == "LPS"
    assert any("reoriented losslessly" in w for w in f.study.warnings)
    (les,) = f.lesions
    vox = abs(np.linalg.det(dicom_case["aff"][:3, :3]))
    assert les.voxel_count == int(lesion.sum())
    assert les.volume_ml == pytest.approx(lesion.sum() * vox / 1000, abs=1e-4)
    a, b, c = dicom_case["semi"]
    assert les.long_axis_mm == pytest.approx(2 * a, abs=1.5)
    assert les.short_axis_mm == pytest.approx(2 * b, abs=1.5)
    assert les.max_diameter_3d_mm == pytest.approx(2 * a, abs=1.5)
    assert les.mean_hu == pytest.approx(dicom_case["lesion_hu"], abs=1e-6) and les.sd_hu == pytest.approx(0.0, abs=1e-6)
    # centroid in world RAS equals the mask's centroid through the LAS affine
    ijk = np.argwhere(lesion).mean(0)
    c_w = dicom_case["aff"][:3, :3] @ ijk + dicom_case["aff"][:3, 3]
    assert np.allclose(les.centroid_mm, c_w, atol=0.01)
    assert les.organ == "liver" and les.attenuation.value == "hypoattenuating"
    # contrast-enhanced series: the phase is estimated from the aorta and the words say "enhancing"
    assert f.study.contrast_phase.phase != "non_contrast"
    assert les.attenuation_term == "hypoenhancing"
    assert f.study.slice_thickness_mm == pytest.approx(3.0)  # header SliceThickness, not the 2 mm step
