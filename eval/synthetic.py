"""Synthetic lesions of known geometry inserted into real CT ("label-free" tumour synthesis).

Used by the tests (truth is the analytic geometry), the demo and the benchmarks. Shapes are
defined in world coordinates (RAS mm) through the CT affine, so the truth does not depend on
the file's axis order.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def world_grid(shape, affine, box=None):
    """World coordinates (3, *box_shape) of voxel centres inside box ((a,b),...) or the full grid."""
    box = box or tuple((0, s) for s in shape)
    ii = np.meshgrid(*[np.arange(a, b, dtype=np.float64) for a, b in box], indexing="ij")
    ijk = np.stack(ii, 0).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    return xyz.reshape((3,) + tuple(b - a for a, b in box))


def _box_around(shape, affine, center_mm, radius_mm):
    inv = np.linalg.inv(affine)
    corners = np.array([[center_mm[0] + sx * radius_mm, center_mm[1] + sy * radius_mm, center_mm[2] + sz * radius_mm, 1.0]
                        for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    ijk = (inv @ corners.T)[:3]
    lo = np.clip(np.floor(ijk.min(1)).astype(int) - 1, 0, np.array(shape))
    hi = np.clip(np.ceil(ijk.max(1)).astype(int) + 2, 0, np.array(shape))
    return tuple((int(a), int(b)) for a, b in zip(lo, hi))


def ellipsoid(shape, affine, center_mm, semi_axes_mm, rotation: np.ndarray | None = None) -> np.ndarray:
    """Bool mask of voxels whose centre lies inside the ellipsoid (world mm; rotation maps body->world)."""
    out = np.zeros(shape, dtype=bool)
    box = _box_around(shape, affine, center_mm, max(semi_axes_mm))
    xyz = world_grid(shape, affine, box) - np.asarray(center_mm, dtype=np.float64).reshape(3, 1, 1, 1)
    if rotation is not None:
        xyz = np.tensordot(np.asarray(rotation).T, xyz, axes=1)
    a = np.asarray(semi_axes_mm, dtype=np.float64).reshape(3, 1, 1, 1)
    out[tuple(slice(lo, hi) for lo, hi in box)] = ((xyz / a) ** 2).sum(0) <= 1.0
    return out


def blob(shape, affine, center_mm, radius_mm, n_lobes: int = 5, seed: int = 0) -> np.ndarray:
    """Irregular lesion: a sphere plus smaller spheres on its surface (union)."""
    rng = np.random.default_rng(seed)
    m = ellipsoid(shape, affine, center_mm, (radius_mm,) * 3)
    for _ in range(n_lobes):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        c = np.asarray(center_mm) + d * radius_mm * 0.8
        m |= ellipsoid(shape, affine, c, (radius_mm * rng.uniform(0.35, 0.6),) * 3)
    return m


def paint(hu: np.ndarray, mask: np.ndarray, mean_hu: float, sd_hu: float = 0.0, seed: int = 0) -> np.ndarray:
    """Copy of hu with the lesion voxels set to mean_hu (+ Gaussian noise of sd_hu), same dtype."""
    out = hu.copy()
    vals = np.full(int(mask.sum()), float(mean_hu))
    if sd_hu:
        vals += np.random.default_rng(seed).normal(0.0, sd_hu, size=vals.size)
    if np.issubdtype(out.dtype, np.integer):
        vals = np.rint(vals)
    out[mask] = vals.astype(out.dtype)
    return out


def organ_center_mm(mask: np.ndarray, affine: np.ndarray, erode: int = 0) -> np.ndarray:
    """World centre of the deepest point of a mask (max distance to its border)."""
    from scipy import ndimage

    sp = np.linalg.norm(affine[:3, :3], axis=0)
    # pad so that the scan edge counts as border: the centre stays inside the field of view
    dist = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
    ijk = np.array(np.unravel_index(int(np.argmax(dist)), mask.shape), dtype=np.float64)
    return affine[:3, :3] @ ijk + affine[:3, 3]


def save_nifti(arr: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path


def write_case(folder: Path, hu: np.ndarray, affine: np.ndarray, masks: dict[str, np.ndarray]) -> Path:
    """AbdomenAtlas-style case folder: ct.nii.gz + segmentations/<name>.nii.gz."""
    save_nifti(hu, affine, folder / "ct.nii.gz")
    for name, m in masks.items():
        save_nifti(m.astype(np.uint8), affine, folder / "segmentations" / f"{name}.nii.gz")
    return folder
