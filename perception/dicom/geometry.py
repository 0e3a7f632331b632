"""Sorting a CT series along the slice normal and checking that it is a regular grid.

Slices are sorted by their position along the normal of the image plane (never by InstanceNumber);
the stack is refused, with expected vs found, when orientations, sizes or pixel spacings differ, when
two slices share a position, or when the steps between slices are not uniform (a missing slice).
"""

from __future__ import annotations

import numpy as np

from ..errors import DicomSeriesError
from .frames import _Frame

_ORIENT_TOL = 1e-4  # direction cosines
_DUP_TOL_MM = 0.01  # two slices closer than this along the normal share a position


def _fmt(x: float) -> str:
    return f"{round(float(x), 3):g}"


def _fmt_list(values: list[float], limit: int = 12) -> str:
    s = [_fmt(v) for v in values]
    if len(s) > limit:
        s = s[: limit // 2] + ["..."] + s[-limit // 2 :]
    return ", ".join(s)


def _sort_and_check(frames: list[_Frame], where: str) -> tuple[list[_Frame], np.ndarray, np.ndarray]:
    """Sort frames along the slice normal and check the stack is a regular grid.

    Returns (sorted frames, normal, step vector in LPS mm).
    """
    if len(frames) < 2:
        f = frames[0]
        raise DicomSeriesError(
            f"{where}: expected a 3D CT series (at least 2 slices), found a 2D image "
            f"(1 slice of {f.cols}x{f.rows} pixels in {f.label})"
        )
    ref = frames[0]
    row_c, col_c = ref.orientation[:3], ref.orientation[3:]
    if (
        abs(np.linalg.norm(row_c) - 1) > 1e-3
        or abs(np.linalg.norm(col_c) - 1) > 1e-3
        or abs(float(row_c @ col_c)) > 1e-3
    ):
        raise DicomSeriesError(
            f"{ref.label}: expected orthonormal ImageOrientationPatient cosines, found {ref.orientation.tolist()}"
        )
    for f in frames[1:]:
        if f.rows != ref.rows or f.cols != ref.cols:
            raise DicomSeriesError(
                f"{where}: expected every slice to have {ref.rows} rows x {ref.cols} columns "
                f"(as {ref.label}), found {f.rows} x {f.cols} in {f.label}"
            )
        if not np.allclose(f.orientation, ref.orientation, atol=_ORIENT_TOL):
            raise DicomSeriesError(
                f"{where}: expected one ImageOrientationPatient for the series, found "
                f"{ref.orientation.tolist()} in {ref.label} and {f.orientation.tolist()} in {f.label}"
            )
        if not np.allclose(f.pixel_spacing, ref.pixel_spacing, rtol=1e-4, atol=1e-5):
            raise DicomSeriesError(
                f"{where}: expected one PixelSpacing for the series, found "
                f"{list(ref.pixel_spacing)} in {ref.label} and {list(f.pixel_spacing)} in {f.label}"
            )
    row_c = row_c / np.linalg.norm(row_c)
    col_c = col_c / np.linalg.norm(col_c)
    normal = np.cross(row_c, col_c)
    d = np.array([float(f.position @ normal) for f in frames])
    order = np.argsort(d, kind="stable")
    frames = [frames[i] for i in order]
    d = d[order]
    pos = np.array([f.position for f in frames])

    dd = np.diff(d)
    dup = np.flatnonzero(dd < _DUP_TOL_MM)
    if dup.size:
        a, b = frames[dup[0]], frames[dup[0] + 1]
        raise DicomSeriesError(
            f"{where}: expected one slice per position, found a duplicate position: {a.label} and {b.label} "
            f"both at {_fmt_list(list(a.position))} mm (LPS), {_fmt(d[dup[0]])} mm along the slice normal; "
            f"{dup.size} duplicate pair(s) in {len(frames)} slices"
        )
    steps = np.diff(pos, axis=0)  # LPS step vectors
    typical = np.median(steps, axis=0)  # robust reference: names the odd step, not every step
    tol = max(0.01, 0.01 * float(np.linalg.norm(typical)))
    bad = np.flatnonzero(np.linalg.norm(steps - typical, axis=1) > tol)
    if bad.size:
        lens = np.linalg.norm(steps, axis=1)
        uniq, counts = np.unique(np.round(dd, 3), return_counts=True)
        summary = ", ".join(f"{_fmt(u)} mm x{c}" for u, c in zip(uniq, counts))
        first = bad[0]
        raise DicomSeriesError(
            f"{where}: expected uniform slice steps (within {_fmt(tol)} mm), found steps along the slice normal "
            f"of {_fmt_list(list(dd))} mm ({summary}); positions along the normal {_fmt_list(list(d))} mm; "
            f"first irregular step {_fmt(lens[first])} mm between {frames[first].label} and "
            f"{frames[first + 1].label} (missing slice or gap?)"
        )
    step = (pos[-1] - pos[0]) / (len(frames) - 1)  # mean step: exact for a regular stack
    return frames, normal, step
