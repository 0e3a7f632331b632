"""Key images: radiological convention whatever the file orientation."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from PIL import Image

from agent.case import analyze
from eval.synthetic import ellipsoid, paint, save_nifti
from tests.conftest import data_path


def _green(png: bytes) -> np.ndarray:
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return (a[..., 1] > 200) & (a[..., 0] < 30) & (a[..., 2] < 30)


def test_key_image_patient_right_on_image_left_in_any_orientation(tmp_path):
    img = nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = np.asanyarray(nib.load(data_path("totalseg", "example_seg.nii.gz")).dataobj)
    aff = img.affine
    hu = np.asanyarray(img.dataobj).copy()
    liver = seg == 5
    # lesion in the patient's right liver lobe: world x well to the right (+x in RAS) of the body centre
    xs = np.argwhere(liver)
    right = xs[np.argsort(-(xs @ aff[:3, :3].T)[:, 0])][len(xs) // 10]
    centre = aff[:3, :3] @ right + aff[:3, 3]
    les = ellipsoid(hu.shape, aff, centre, (9.0, 9.0, 6.0)) & liver
    hu = paint(hu, les, 0)
    outs = {}
    for codes in ("RAS", "LPS", "PIL"):
        d = tmp_path / codes
        ct_img = nib.Nifti1Image(hu, aff)
        tr = ornt_transform(io_orientation(aff), axcodes2ornt(codes))
        ct_o = ct_img.as_reoriented(tr)
        m_o = nib.Nifti1Image(les.astype(np.uint8), aff).as_reoriented(tr)
        save_nifti(np.asanyarray(ct_o.dataobj), ct_o.affine, d / "ct.nii.gz")
        save_nifti(np.asanyarray(m_o.dataobj), m_o.affine, d / "masks" / "liver_lesion.nii.gz")
        save_nifti(np.asanyarray(nib.Nifti1Image(liver.astype(np.uint8), aff).as_reoriented(tr).dataobj), ct_o.affine,
                   d / "masks" / "liver.nii.gz")
        case = analyze(d / "ct.nii.gz", d / "masks")
        f, files = case.findings, case.image_files()
        assert f.lesions[0].key_image == "key_images/L1.png"
        outs[codes] = _green(files["key_images/L1.png"])
    g = outs["RAS"]
    assert g.any()
    cols = np.nonzero(g.any(axis=0))[0]
    assert cols.mean() < g.shape[1] / 2  # patient right = image left
    # same contour whatever the axis order on disk (the drawn axes may pick another of several
    # equally long diameters of this symmetric lesion and cover a few contour pixels)
    for codes in ("LPS", "PIL"):
        diff = np.count_nonzero(outs["RAS"] ^ outs[codes])
        assert diff == 0, (codes, diff, int(g.sum()))
