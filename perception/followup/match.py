"""Lesion matching across two time points: registered centroid distance and voxel overlap, optimal
assignment per organ (scipy's linear_sum_assignment), with a match confidence.

A pair is admissible when the registered centroids are within the gate ``GATE_MM + GATE_FRACTION * the larger
long axis`` (a lesion that grows keeps its centre within about half its size) or when the registered lesions
overlap. Confidence = 0.5 * (1 - distance / gate) + 0.5 * overlap, where overlap is the intersection volume
over the smaller lesion's volume; without voxel masks (a segmented study) it is 1 - distance / gate alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATE_MM = 10.0
GATE_FRACTION = 0.5


@dataclass(frozen=True)
class LesionGeometry:
    """One lesion at one time point, in that study's world (RAS+ mm)."""

    id: str
    organ: str | None
    centroid_mm: np.ndarray
    long_axis_mm: float
    volume_ml: float
    # voxel index -> world: the lesion's voxel indices (N, 3) and the study affine; None without masks
    voxels: np.ndarray | None = None
    affine: np.ndarray | None = None

    def world_points(self) -> np.ndarray | None:
        if self.voxels is None or self.affine is None:
            return None
        return (self.affine[:3, :3] @ self.voxels.T).T + self.affine[:3, 3]

    @property
    def voxel_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) if self.affine is not None else float("nan")


@dataclass(frozen=True)
class Match:
    a: str  # lesion id at the reference (prior) time point
    b: str  # lesion id at the other (current) time point
    confidence: float
    distance_mm: float
    overlap: float | None  # intersection / smaller volume
    dice: float | None


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
    return (matrix[:3, :3] @ pts.T).T + matrix[:3, 3]  # (3x3 @ 3xN: BLAS; N x 3 @ 3x3 is ~50x slower)


def overlap(a: LesionGeometry, b: LesionGeometry, b_to_a: np.ndarray) -> tuple[float, float] | None:
    """(intersection / smaller volume, Dice) of b's voxels mapped into a's grid (nearest voxel); None without masks."""
    pb = b.world_points()
    if pb is None or a.voxels is None:
        return None
    ijk = np.rint(apply(np.linalg.inv(a.affine) @ b_to_a, pb)).astype(np.int64)
    va = a.voxels.astype(np.int64)
    lo, hi = va.min(0), va.max(0) + 1
    box = np.zeros(hi - lo, dtype=bool)
    box[tuple((va - lo).T)] = True
    inside = np.all((ijk >= lo) & (ijk < hi), axis=1)
    hits = int(box[tuple((ijk[inside] - lo).T)].sum())
    inter = hits * b.voxel_mm3
    vol_a, vol_b = len(a.voxels) * a.voxel_mm3, len(b.voxels) * b.voxel_mm3
    return min(1.0, inter / min(vol_a, vol_b)), min(1.0, 2 * inter / (vol_a + vol_b))


def gate_mm(a: LesionGeometry, b: LesionGeometry) -> float:
    return GATE_MM + GATE_FRACTION * max(a.long_axis_mm, b.long_axis_mm)


def match(a_list: list[LesionGeometry], b_list: list[LesionGeometry], b_to_a: np.ndarray,
          use_overlap: bool = True) -> list[Match]:
    """Optimal one-to-one matches of b (e.g. current) to a (e.g. prior) within each organ."""
    from scipy.optimize import linear_sum_assignment

    out: list[Match] = []
    organs = sorted({x.organ or "" for x in a_list} | {x.organ or "" for x in b_list})
    for organ in organs:
        aa = [x for x in a_list if (x.organ or "") == organ]
        bb = [x for x in b_list if (x.organ or "") == organ]
        if not aa or not bb:
            continue
        cost = np.full((len(aa), len(bb)), 1e6)
        info: dict[tuple[int, int], Match] = {}
        for i, a in enumerate(aa):
            for j, b in enumerate(bb):
                d = float(np.linalg.norm(apply(b_to_a, b.centroid_mm)[0] - a.centroid_mm))
                g = gate_mm(a, b)
                ov = overlap(a, b, b_to_a) if use_overlap else None
                d_score = max(0.0, 1.0 - d / g)
                if d_score == 0.0 and not (ov and ov[0] > 0):
                    continue
                conf = d_score if ov is None else 0.5 * d_score + 0.5 * ov[0]
                info[i, j] = Match(a.id, b.id, round(conf, 4), round(d, 3), None if ov is None else round(ov[0], 4),
                                   None if ov is None else round(ov[1], 4))
                cost[i, j] = 1.0 - conf
        rows, cols = linear_sum_assignment(cost)
        out += [info[i, j] for i, j in zip(rows, cols) if (i, j) in info]
    return out
