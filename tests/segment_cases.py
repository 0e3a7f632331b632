"""Inputs shared by the segmentation backend tests (issue 14)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from perception.io import load_ct
from tests.conftest import data_path

# TotalSegmentator's example CT (3 mm) cropped around the liver, air included so it reads as a CT in HU
CROP_LO, CROP_HI = (44, 28, 6), (84, 68, 24)


def write_liver_crop(path: Path) -> Path:
    """A real CT cropped to 40 x 40 x 18 voxels of 3 mm (world position kept), written as NIfTI at ``path``."""
    ct = load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))
    lo = np.array(CROP_LO)
    aff = ct.affine.copy()
    aff[:3, 3] = ct.affine[:3, :3] @ lo + ct.affine[:3, 3]
    sl = tuple(slice(a, b) for a, b in zip(CROP_LO, CROP_HI))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ct.hu[sl]), aff), str(path))
    return path
