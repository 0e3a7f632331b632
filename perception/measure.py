"""Pure measurement kernels on cropped binary masks and an affine.

All distances are physical (mm) and go through the full affine, so oblique and sheared (gantry
tilt) grids are measured correctly. A binary mask's outline is taken as its 0.5 iso-contour: the
midpoints of the faces between inside and outside voxels. Along a voxel axis this makes a
rasterised segment of n voxels measure exactly n x spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from .mask import BBox


def section(arr: np.ndarray, k: int, axis: int) -> np.ndarray:
    """arr[..., k, ...] along ``axis`` as a view (np.take would copy the whole array first)."""
    return arr[(slice(None),) * axis + (int(k),)]


def world(points_ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Voxel coordinates (N, 3) -> RAS+ world mm (N, 3)."""
    return points_ijk @ affine[:3, :3].T + affine[:3, 3]


def boundary_points(mask: np.ndarray) -> np.ndarray:
    """Face midpoints between inside and outside voxels of a 2D or 3D bool array (index units)."""
    pad = np.pad(mask, 1)
    pts = []
    for ax in range(mask.ndim):
        a = np.moveaxis(pad, ax, 0)
        inside = a[1:-1]
        for step, off in ((2, 0.5), (0, -0.5)):  # neighbour after / before along ax
            face = inside & ~a[step:step + inside.shape[0]]
            idx = np.argwhere(face).astype(np.float64)
            if idx.size:
                # restore the original axis order, then undo the padding on the other axes
                idx = idx[:, _inverse_move(ax, mask.ndim)]
                idx -= np.array([0.0 if c == ax else 1.0 for c in range(mask.ndim)])
                idx[:, ax] += off
                pts.append(idx)
    return np.concatenate(pts) if pts else np.zeros((0, mask.ndim))


def _inverse_move(ax: int, ndim: int) -> list[int]:
    """Column order that maps moveaxis(ax, 0) coordinates back to the original axis order."""
    moved = [ax] + [c for c in range(ndim) if c != ax]
    return [moved.index(c) for c in range(ndim)]


def _max_pair(points: np.ndarray) -> tuple[float, int, int]:
    """Largest pairwise distance among points: (distance, i, j)."""
    n = len(points)
    if n < 2:
        return 0.0, 0, 0
    cand = np.arange(n)
    if n > 64:
        try:
            cand = ConvexHull(points).vertices
        except (QhullError, ValueError):  # degenerate (collinear / coplanar): keep all points
            cand = np.arange(n)
    p = points[cand]
    if len(p) <= 2048:  # one distance matrix serves both the maximum and its ties
        d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        best = float(d2.max())
        ties = list(zip(*np.nonzero(d2 >= best - 1e-6 * max(best, 1.0))))
    else:
        best = -1.0
        for start in range(0, len(p), 512):
            blk = p[start:start + 512]
            best = max(best, float((((blk[:, None, :] - p[None, :, :]) ** 2).sum(-1)).max()))
        ties = []
        for start in range(0, len(p), 512):
            blk = p[start:start + 512]
            d2 = ((blk[:, None, :] - p[None, :, :]) ** 2).sum(-1)
            ties += [(start + int(r), int(c)) for r, c in zip(*np.nonzero(d2 >= best - 1e-6 * max(best, 1.0)))]
    # ties (symmetric shapes have many equally long diameters): take the pair whose endpoints sort
    # first in world coordinates, so the answer does not depend on the file's axis order
    def key(rc):
        a, b = p[rc[0]], p[rc[1]]
        lo, hi = (a, b) if tuple(np.round(a, 4)) <= tuple(np.round(b, 4)) else (b, a)
        return tuple(np.round(lo, 4)) + tuple(np.round(hi, 4))
    r, c = min(ties, key=key)
    a, b = p[r], p[c]
    if tuple(np.round(a, 4)) > tuple(np.round(b, 4)):
        r, c = c, r
    return float(np.sqrt(best)), int(cand[r]), int(cand[c])


@dataclass(frozen=True)
class AxialDiameters:
    long_axis_mm: float
    short_axis_mm: float
    slice_index: int  # along the axial axis, full-grid index
    long_endpoints: tuple[tuple[float, float, float], tuple[float, float, float]]  # voxel coords, full grid
    short_endpoints: tuple[tuple[float, float, float], tuple[float, float, float]]


def max_area_index(comp: np.ndarray, bbox: BBox, axial: int) -> int:
    """0-based index (on the full grid) along ``axial`` of the slice where the lesion's cross-section is largest.

    ``comp`` is the lesion's bool array cropped to ``bbox``. Every axial slice of a grid has the same pixel area,
    so the largest area is the largest voxel count; of equal counts the first (lowest index) is taken.
    """
    inplane = tuple(a for a in range(3) if a != axial)
    return int(np.argmax(comp.sum(axis=inplane))) + int(bbox[axial][0])


def axial_diameters(comp: np.ndarray, bbox: BBox, affine: np.ndarray, axial: int) -> AxialDiameters:
    """RECIST long axis over all axial slices, and the longest perpendicular diameter on that slice.

    ``comp`` is the lesion's bool array cropped to ``bbox`` on the CT grid.
    """
    offset = np.array([a for a, _ in bbox], dtype=np.float64)
    inplane = [a for a in range(3) if a != axial]
    best = None
    areas = comp.sum(axis=tuple(inplane))
    ks = np.flatnonzero(areas)
    # world S of each slice centre, and of the lesion's centre slice (for tie-breaks)
    s_of = lambda k: float(affine[2, axial] * (k + offset[axial]) + affine[2, 3])
    s_mid = float(np.average([s_of(k) for k in ks], weights=areas[ks]))
    M = affine[:3, inplane]  # in-plane voxel steps in world mm
    # largest slices first; a slice whose outline box cannot reach the best diameter is skipped
    for k in ks[np.argsort(-areas[ks], kind="stable")]:
        sl = section(comp, k, axial)
        if best is not None:
            r = np.flatnonzero(sl.any(axis=1))
            c = np.flatnonzero(sl.any(axis=0))
            span = np.array([r[-1] - r[0] + 1.0, c[-1] - c[0] + 1.0])
            corners = np.array([[0, 0], [span[0], 0], [0, span[1]], span]) @ M.T
            bound = max(np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1]))
            if bound < best[1] - 1e-6:
                continue
        pts2 = boundary_points(sl)
        ijk = np.zeros((len(pts2), 3))
        ijk[:, inplane[0]] = pts2[:, 0]
        ijk[:, inplane[1]] = pts2[:, 1]
        ijk[:, axial] = k
        ijk += offset
        w = world(ijk, affine)
        d, i, j = _max_pair(w)
        # ties: larger area, then nearer the lesion centre, then more superior (orientation-free)
        key = (round(d, 6), int(areas[k]), -round(abs(s_of(k) - s_mid), 6), round(s_of(k), 6))
        if best is None or key > best[0]:
            best = (key, d, k, ijk, w, i, j)
    assert best is not None, "axial_diameters called on an empty mask"
    _, d, k, ijk, w, i, j = best
    short, s0, s1 = _perpendicular_extent(w, w[i], w[j], affine, inplane)
    if tuple(np.round(w[s0], 4)) > tuple(np.round(w[s1], 4)):  # endpoint order independent of axis order
        s0, s1 = s1, s0
    return AxialDiameters(
        long_axis_mm=d,
        short_axis_mm=short,
        slice_index=int(k + offset[axial]),
        long_endpoints=(tuple(ijk[i]), tuple(ijk[j])),
        short_endpoints=(tuple(ijk[s0]), tuple(ijk[s1])) if short > 0 else (tuple(ijk[i]), tuple(ijk[i])),
    )


def _perpendicular_extent(w: np.ndarray, a: np.ndarray, b: np.ndarray, affine: np.ndarray,
                          inplane: list[int]) -> tuple[float, int, int]:
    """Longest extent of the outline perpendicular to a->b, measured across bins along a->b."""
    u = b - a
    n = np.linalg.norm(u)
    if n == 0:
        return 0.0, 0, 0
    u /= n
    normal = np.cross(affine[:3, inplane[0]], affine[:3, inplane[1]])
    v = np.cross(normal, u)
    v /= np.linalg.norm(v)
    s = (w - a) @ u
    t = (w - a) @ v
    step = 0.5 * min(np.linalg.norm(affine[:3, inplane[0]]), np.linalg.norm(affine[:3, inplane[1]]))
    bins = np.floor(s / step).astype(np.int64)
    order = np.lexsort((t, bins))
    bs, ts = bins[order], t[order]
    first = np.r_[0, np.flatnonzero(np.diff(bs)) + 1]
    last = np.r_[first[1:] - 1, len(bs) - 1]
    ext = ts[last] - ts[first]
    m = int(np.argmax(ext))
    return float(ext[m]), int(order[first[m]]), int(order[last[m]])


def feret_3d(comp: np.ndarray, bbox: BBox, affine: np.ndarray) -> float:
    """Maximum 3D diameter (Feret) of the outline, mm."""
    pts = boundary_points(comp) + np.array([a for a, _ in bbox], dtype=np.float64)
    d, _, _ = _max_pair(world(pts, affine))
    return d


@dataclass(frozen=True)
class HUStats:
    mean: float
    median: float
    sd: float
    n: int


_HIST_MAX_BINS = 1 << 22  # integer values spanning more levels than this go the float way (no giant histogram)


def hu_stats(values: np.ndarray) -> HUStats | None:
    """Mean, median, population SD. Integer HU go through a histogram (exact, no sort, no float copy)."""
    n = int(values.size)
    if n == 0:
        return None
    lo, hi = (int(values.min()), int(values.max())) if values.dtype.kind in "iu" else (0, 0)
    if values.dtype.kind in "iu" and hi - lo < _HIST_MAX_BINS:
        # offsets computed in intp in one pass (values - lo in the input dtype would wrap: int16 -32768..32767)
        counts = np.bincount(np.subtract(values, lo, dtype=np.intp))
        levels = np.arange(counts.size, dtype=np.float64) + lo
        mean = float(counts @ levels) / n
        var = float(counts @ (levels - mean) ** 2) / n
        cum = np.cumsum(counts)
        lo_mid = int(np.searchsorted(cum, (n - 1) // 2 + 1)) + lo  # value at sorted index (n-1)//2
        hi_mid = int(np.searchsorted(cum, n // 2 + 1)) + lo  # value at sorted index n//2
        return HUStats(mean, (lo_mid + hi_mid) / 2.0, float(np.sqrt(var)), n)
    v = values.astype(np.float64, copy=False)
    return HUStats(float(v.mean()), float(np.median(v)), float(v.std()), n)
