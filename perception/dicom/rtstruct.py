"""RTSTRUCT: rasterise each ROI's closed planar contours onto a CT grid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from ..errors import MaskError
from ..volume import CTVolume
from .geometry import _fmt


def _fill_polygon(poly: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Even-odd fill of a polygon given in continuous (u, v) pixel coordinates.

    Pixel (u, v) is inside when its centre (integer coordinates) is inside. Returns the filled
    bool array over the polygon's bounding box and the box origin, or None when it covers no centre.
    """
    u, v = poly[:, 0], poly[:, 1]
    v_lo = max(0, int(math.ceil(v.min())))
    v_hi = min(shape[1] - 1, int(math.floor(v.max())))
    u_lo = max(0, int(math.ceil(u.min())))
    u_hi = min(shape[0] - 1, int(math.floor(u.max())))
    if v_lo > v_hi or u_lo > u_hi:
        return None
    u0, v0 = u, v
    u1, v1 = np.roll(u, -1), np.roll(v, -1)
    ys = np.arange(v_lo, v_hi + 1, dtype=float)[:, None]  # scanlines through pixel centres
    # half-open rule: an edge crosses scanline y when exactly one endpoint is above it
    crosses = (v0[None, :] > ys) != (v1[None, :] > ys)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = u0[None, :] + (ys - v0[None, :]) * (u1 - u0)[None, :] / (v1 - v0)[None, :]
    r, e = np.nonzero(crosses)
    # a crossing at x toggles the parity of every centre with u > x
    start = np.floor(x[r, e]).astype(np.int64) + 1 - u_lo
    width = u_hi - u_lo + 1
    start = np.clip(start, 0, width)
    toggles = np.zeros((ys.shape[0], width + 1), dtype=np.int32)
    np.add.at(toggles, (r, start), 1)
    inside = (np.cumsum(toggles[:, :width], axis=1) & 1).astype(bool)
    return inside.T, (u_lo, v_lo)  # (u, v) order


def load_rtstruct(rtstruct_path: Path, ct: CTVolume) -> dict[str, np.ndarray]:
    """Rasterise each ROI's CLOSED_PLANAR contours onto the CT grid.

    Contour points (LPS mm) are mapped to voxel coordinates through the inverse of ``ct.affine``;
    each contour must lie in one voxel plane (within a quarter voxel). Polygons are filled at voxel
    centres with the even-odd rule, and several contours of one ROI on one plane combine by XOR
    (so an inner contour is a hole). Returns ROI name -> bool array of ``ct.shape``; an ROI
    without closed planar contours maps to an all-False mask. Errors raise MaskError.
    """
    rtstruct_path = Path(rtstruct_path)
    try:
        ds = pydicom.dcmread(rtstruct_path)
    except FileNotFoundError as exc:
        raise MaskError(f"{rtstruct_path}: expected an RTSTRUCT file, found nothing at this path") from exc
    except Exception as exc:
        raise MaskError(
            f"{rtstruct_path}: expected a readable RTSTRUCT file, found a corrupt or non-DICOM file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    modality = str(ds.get("Modality", "") or "")
    if modality != "RTSTRUCT":
        raise MaskError(f"{rtstruct_path}: expected modality RTSTRUCT, found {modality or '(missing Modality)'}")
    ct_for = ct.meta.get("frame_of_reference_uid")
    rt_fors = {str(it.get("FrameOfReferenceUID", "")) for it in ds.get("ReferencedFrameOfReferenceSequence", [])}
    rt_fors.discard("")
    if ct_for and rt_fors and ct_for not in rt_fors:
        raise MaskError(
            f"{rtstruct_path}: expected contours in the CT's frame of reference {ct_for}, "
            f"found {', '.join(sorted(rt_fors))}"
        )

    names = {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}
    inv = np.linalg.inv(ct.affine)
    shape = ct.shape
    out: dict[str, np.ndarray] = {}
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        name = names.get(number, f"ROI_{number}")
        mask = out.setdefault(name, np.zeros(shape, dtype=bool))
        for ci, c in enumerate(roi.get("ContourSequence", []) or []):
            if str(c.get("ContourGeometricType", "")).upper() != "CLOSED_PLANAR":
                continue
            pts = np.asarray([float(v) for v in c.ContourData], dtype=float)
            if pts.size < 9 or pts.size % 3:
                raise MaskError(
                    f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected >= 3 (x, y, z) points, "
                    f"found {pts.size} numbers"
                )
            lps = pts.reshape(-1, 3)
            ras = np.c_[-lps[:, 0], -lps[:, 1], lps[:, 2], np.ones(len(lps))]
            vox = (inv @ ras.T).T[:, :3]
            spread = vox.max(axis=0) - vox.min(axis=0)
            axis = int(np.argmin(spread))
            plane = float(np.mean(vox[:, axis]))
            k = int(round(plane))
            if spread[axis] > 0.25 or abs(plane - k) > 0.25:
                raise MaskError(
                    f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected points on one CT voxel plane, "
                    f"found voxel coordinate {_fmt(plane)} (spread {_fmt(spread[axis])}) along axis {axis}"
                )
            if not 0 <= k < shape[axis]:
                raise MaskError(
                    f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected a plane inside the CT "
                    f"(0..{shape[axis] - 1} along axis {axis}), found {k}; is this the RTSTRUCT of this CT?"
                )
            in_plane = [a for a in range(3) if a != axis]
            for a in in_plane:  # a contour leaving the image would be clipped silently: refuse it
                lo, hi = float(vox[:, a].min()), float(vox[:, a].max())
                if lo < -0.5 - 1e-6 or hi > shape[a] - 0.5 + 1e-6:
                    raise MaskError(
                        f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected points inside the CT grid "
                        f"(voxel -0.5..{shape[a] - 0.5} along axis {a}), found {_fmt(lo)}..{_fmt(hi)}: a contour off "
                        "the CT grid; is this the RTSTRUCT of this CT?"
                    )
            filled = _fill_polygon(vox[:, in_plane], (shape[in_plane[0]], shape[in_plane[1]]))
            if filled is None:
                continue
            arr, (u0, v0) = filled
            index: list[Any] = [slice(None)] * 3
            index[axis] = k
            index[in_plane[0]] = slice(u0, u0 + arr.shape[0])
            index[in_plane[1]] = slice(v0, v0 + arr.shape[1])
            mask[tuple(index)] ^= arr
    return out
