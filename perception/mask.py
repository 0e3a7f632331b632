"""Mask: one binary structure stored as its bounding box and the cropped boolean array.

Keeping masks cropped makes every measurement cost proportional to the structure, not to the
512x512x300 grid. ``bbox`` is ``((start0, stop0), (start1, stop1), (start2, stop2))`` in voxel
indices of the CT grid, stop exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BBox = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def bbox_of(arr: np.ndarray) -> BBox | None:
    """Tight bounding box of the nonzero voxels of a 3D array, or None when empty.

    One pass over the whole array (collapsing its slowest-varying axis), then only the sub-box."""
    slow = 2 if arr.flags.f_contiguous and not arr.flags.c_contiguous else 0
    proj = arr.any(axis=slow)  # 2D over the two other axes
    others = [a for a in range(3) if a != slow]
    out: dict[int, tuple[int, int]] = {}
    for k, ax in enumerate(others):
        nz = np.flatnonzero(proj.any(axis=1 - k))
        if nz.size == 0:
            return None
        out[ax] = (int(nz[0]), int(nz[-1]) + 1)
    sub = arr[tuple(slice(*out[a]) if a != slow else slice(None) for a in range(3))]
    nz = np.flatnonzero(sub.any(axis=tuple(others)))
    out[slow] = (int(nz[0]), int(nz[-1]) + 1)
    return (out[0], out[1], out[2])


def to_slices(bbox: BBox) -> tuple[slice, slice, slice]:
    return tuple(slice(a, b) for a, b in bbox)  # type: ignore[return-value]


def expand(bbox: BBox, margin: tuple[int, int, int] | int, shape: tuple[int, int, int]) -> BBox:
    m = (margin,) * 3 if isinstance(margin, int) else margin
    return tuple((max(0, a - mm), min(s, b + mm)) for (a, b), mm, s in zip(bbox, m, shape))  # type: ignore[return-value]


def intersect(a: BBox, b: BBox) -> BBox | None:
    out = tuple((max(x0, y0), min(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b))
    return None if any(lo >= hi for lo, hi in out) else out  # type: ignore[return-value]


def union(a: BBox, b: BBox) -> BBox:
    return tuple((min(x0, y0), max(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b))  # type: ignore[return-value]


@dataclass(frozen=True)
class Mask:
    """A named binary mask on the CT grid (cropped storage).

    ``data`` is a bool array of the bbox's shape; an empty mask has ``bbox is None``.
    """

    name: str
    shape: tuple[int, int, int]  # full CT grid shape
    bbox: BBox | None
    data: np.ndarray | None
    source: str = ""

    @classmethod
    def from_dense(cls, name: str, dense: np.ndarray, source: str = "") -> "Mask":
        dense = np.asarray(dense)
        bb = bbox_of(dense)
        if bb is None:
            return cls(name, tuple(dense.shape), None, None, source)
        return cls(name, tuple(dense.shape), bb, np.ascontiguousarray(dense[to_slices(bb)] != 0), source)

    @property
    def empty(self) -> bool:
        return self.bbox is None

    @property
    def voxel_count(self) -> int:
        return 0 if self.data is None else int(np.count_nonzero(self.data))

    def crop(self, bbox: BBox) -> np.ndarray:
        """The mask inside ``bbox`` (any box on the grid), as a bool array of that box's shape."""
        out = np.zeros(tuple(b - a for a, b in bbox), dtype=bool)
        if self.bbox is None:
            return out
        inter = intersect(self.bbox, bbox)
        if inter is None:
            return out
        src = tuple(slice(lo - s0, hi - s0) for (lo, hi), (s0, _) in zip(inter, self.bbox))
        dst = tuple(slice(lo - d0, hi - d0) for (lo, hi), (d0, _) in zip(inter, bbox))
        out[dst] = self.data[src]
        return out

    def dense(self) -> np.ndarray:
        """Full-grid bool array (costly on big grids: tests and small data only)."""
        return self.crop(((0, self.shape[0]), (0, self.shape[1]), (0, self.shape[2])))

    def touches_edges(self) -> list[str]:
        """Scan edges this mask reaches, as 'axis{k}_min' / 'axis{k}_max'."""
        if self.bbox is None:
            return []
        out = []
        for k, ((a, b), n) in enumerate(zip(self.bbox, self.shape)):
            if a == 0:
                out.append(f"axis{k}_min")
            if b == n:
                out.append(f"axis{k}_max")
        return out

    def overlap_count(self, other: "Mask") -> int:
        if self.bbox is None or other.bbox is None:
            return 0
        inter = intersect(self.bbox, other.bbox)
        if inter is None:
            return 0
        return int(np.count_nonzero(self.crop(inter) & other.crop(inter)))
