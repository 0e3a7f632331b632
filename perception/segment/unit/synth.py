"""Synthetic tumours inserted into healthy organs: how label-free tumour training works.

The ideas of eval/synthetic.py (ellipsoids and lobulated blobs of known geometry, painted with a
chosen mean HU and noise), done in voxel space on a resampled training patch and made random:
size (radius in mm), shape (random ellipsoid axes and rotation, smooth boundary noise), position
(deep enough in the host organ), type and HU (relative to the host organ's mean, or absolute for
cysts), texture (smoothed noise) and a soft boundary. Everything is computed in the lesion's bounding
box, so the cost does not depend on the patch size. Pure numpy/scipy: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .config import SynthConfig


@dataclass(frozen=True)
class SyntheticLesion:
    mask: np.ndarray  # bool, patch shape
    organ: int  # index into model.organs
    type: int  # index into model.tumor_types
    radius_mm: float
    mean_hu: float
    center_vox: tuple[int, int, int]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def lesion_shape(box_shape: tuple[int, int, int], center: np.ndarray, semi_axes_vox: np.ndarray,
                 rng: np.random.Generator, irregularity: float) -> np.ndarray:
    """Bool mask in a box: a randomly rotated ellipsoid whose boundary is perturbed by smooth noise."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in box_shape], indexing="ij"), 0)
    d = grid - center.reshape(3, 1, 1, 1).astype(np.float32)
    rot = _random_rotation(rng).astype(np.float32)
    body = np.tensordot(rot.T, d, axes=1) / semi_axes_vox.reshape(3, 1, 1, 1).astype(np.float32)
    rho = np.sqrt((body ** 2).sum(0))
    if irregularity > 0:
        noise = ndimage.gaussian_filter(rng.normal(size=box_shape).astype(np.float32), sigma=max(1.0, float(semi_axes_vox.mean()) / 2))
        noise /= max(float(np.abs(noise).max()), 1e-6)
        rho = rho + irregularity * noise
    return rho <= 1.0


def insert_lesion(hu: np.ndarray, organ_map: np.ndarray, organ_index: int, spacing: tuple[float, float, float],
                  cfg: SynthConfig, tumor_types: tuple[str, ...], rng: np.random.Generator,
                  occupied: np.ndarray | None = None, type_name: str | None = None) -> tuple[np.ndarray, SyntheticLesion | None]:
    """Paint one lesion into organ ``organ_index`` (label organ_index + 1 in organ_map) of ``hu`` (float32, HU).

    Returns (new hu, lesion) or (hu unchanged, None) when the organ has no room for the smallest size.
    ``occupied``: voxels a new lesion must not touch (other tumours).
    """
    organ = organ_map == organ_index + 1
    if organ.sum() < 8:
        return hu, None
    sp = np.asarray(spacing, dtype=np.float64)
    sl = ndimage.find_objects(organ.astype(np.uint8))[0]
    sub = organ[sl]
    depth = ndimage.distance_transform_edt(np.pad(sub, 1), sampling=sp)[1:-1, 1:-1, 1:-1]  # mm to the organ border
    r_lo, r_hi = cfg.radius_mm
    r_hi = min(r_hi, float(depth.max()) * 1.3)
    if r_hi < r_lo * 0.5:
        return hu, None
    radius = float(rng.uniform(min(r_lo, r_hi), r_hi))
    ok = depth >= min(0.7 * radius, float(depth.max()) * 0.9)
    if occupied is not None:
        ok &= ~ndimage.binary_dilation(occupied[sl], iterations=2)
    cand = np.argwhere(ok)
    if len(cand) == 0:
        return hu, None
    c_sub = cand[rng.integers(len(cand))]
    center = np.array([s.start for s in sl]) + c_sub
    semi = radius * rng.uniform(0.75, 1.25, size=3) / sp
    half = np.ceil(semi.max() * (1 + cfg.irregularity) + 2).astype(int)
    lo = np.maximum(center - half, 0)
    hi = np.minimum(center + half + 1, hu.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    shape = lesion_shape(tuple(int(b - a) for a, b in zip(lo, hi)), (center - lo).astype(np.float64), semi, rng, cfg.irregularity)
    shape &= organ[box]
    if occupied is not None:
        shape &= ~occupied[box]
    if shape.sum() < 4:
        return hu, None
    if type_name is None:
        names = [t for t, w in cfg.type_weights.items() if w > 0]
        w = np.array([cfg.type_weights[t] for t in names], dtype=np.float64)
        type_name = names[int(rng.choice(len(names), p=w / w.sum()))]
    lo_hu, hi_hu = cfg.hu[type_name]
    host = hu[box][organ[box] & ~shape]
    host_mean = float(host.mean()) if host.size else float(hu[organ].mean())
    mean = float(rng.uniform(lo_hu, hi_hu)) + (0.0 if type_name in cfg.absolute_types else host_mean)
    sd = float(rng.uniform(*cfg.texture_sd_hu))
    tex = ndimage.gaussian_filter(rng.normal(size=shape.shape).astype(np.float32), 0.8)
    tex *= sd / max(float(tex.std()), 1e-6)
    alpha = ndimage.gaussian_filter(shape.astype(np.float32), cfg.edge_sigma_vox) if cfg.edge_sigma_vox > 0 else shape.astype(np.float32)
    alpha = np.where(shape, np.maximum(alpha, 0.85), alpha) * organ[box]
    out = hu.copy()
    out[box] = hu[box] * (1 - alpha) + (mean + tex) * alpha
    mask = np.zeros(hu.shape, dtype=bool)
    mask[box] = shape
    return out, SyntheticLesion(mask, organ_index, tumor_types.index(type_name), radius, mean,
                                tuple(int(v) for v in center))
