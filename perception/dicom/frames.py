"""Geometry of every frame of an image file: classic single-frame CT and enhanced multi-frame CT.

A classic file holds one slice whose position, orientation, spacing and rescale sit in the top-level
dataset. An enhanced (multi-frame) file holds ``NumberOfFrames`` slices whose attributes sit in the
per-frame functional groups, falling back to the shared functional groups. Either way each slice
becomes a :class:`_Frame` (LPS mm positions, DICOM-order pixel spacing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ..errors import CTLoadError, DicomSeriesError
from .headers import _corrupt, _Header


@dataclass
class _Frame:
    header: _Header
    index: int | None  # frame number (0-based) in a multi-frame file; None for a single-frame file
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient: row cosine (3), column cosine (3)
    pixel_spacing: tuple[float, float]  # DICOM order: (between rows, between columns)
    rows: int
    cols: int
    slope: float
    intercept: float
    thickness: float | None

    @property
    def label(self) -> str:
        return str(self.header.path) if self.index is None else f"{self.header.path} [frame {self.index + 1}]"



def _floats(value: Any, n: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except Exception as exc:
        raise DicomSeriesError(f"{where}: expected {n} numbers in {what}, found {value!r}") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DicomSeriesError(f"{where}: expected {n} finite numbers in {what}, found {value!r}")
    return arr


def _first_item(ds: Dataset | None, seq: str) -> Dataset | None:
    if ds is None:
        return None
    s = ds.get(seq)
    return s[0] if s else None


def _fg_attr(per_frame: Dataset | None, shared: Dataset | None, seq: str, attr: str) -> Any:
    """An attribute from a functional group: per-frame first, then shared."""
    for group in (per_frame, shared):
        item = _first_item(group, seq)
        if item is not None and attr in item and item.get(attr) not in (None, ""):
            return item.get(attr)
    return None


def _opt_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rescale(value: Any, default: float, what: str, where: str) -> float:
    if value is None or value == "":
        return default
    f = _opt_float(value)
    if f is None or (what == "RescaleSlope" and f == 0):
        raise DicomSeriesError(f"{where}: expected a finite {what}, found {value!r}")
    return f


def _frames_of(h: _Header) -> list[_Frame]:
    """Geometry of every frame of one image file (one frame for a classic single-frame file)."""
    ds = h.ds
    where = str(h.path)
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence")
        if n_frames > 1 or per_frame_seq:
            shared = _first_item(ds, "SharedFunctionalGroupsSequence")
            if not per_frame_seq or len(per_frame_seq) != n_frames:
                found = len(per_frame_seq) if per_frame_seq else 0
                raise DicomSeriesError(
                    f"{where}: multi-frame file with NumberOfFrames={n_frames}; expected one "
                    f"PerFrameFunctionalGroupsSequence item per frame (enhanced CT), found {found}"
                )
            frames = []
            for idx, pf in enumerate(per_frame_seq):
                fwhere = f"{where} [frame {idx + 1}]"
                pos = _fg_attr(pf, shared, "PlanePositionSequence", "ImagePositionPatient")
                ori = _fg_attr(pf, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
                sp = _fg_attr(pf, shared, "PixelMeasuresSequence", "PixelSpacing")
                for name, val, seq in (
                    ("ImagePositionPatient", pos, "PlanePositionSequence"),
                    ("ImageOrientationPatient", ori, "PlaneOrientationSequence"),
                    ("PixelSpacing", sp, "PixelMeasuresSequence"),
                ):
                    if val is None:
                        raise DicomSeriesError(
                            f"{fwhere}: expected {name} in the per-frame or shared {seq}, found none"
                        )
                slope = _fg_attr(pf, shared, "PixelValueTransformationSequence", "RescaleSlope")
                icpt = _fg_attr(pf, shared, "PixelValueTransformationSequence", "RescaleIntercept")
                thick = _fg_attr(pf, shared, "PixelMeasuresSequence", "SliceThickness")
                spacing = _floats(sp, 2, "PixelSpacing", fwhere)
                frames.append(
                    _Frame(
                        h,
                        idx,
                        _floats(pos, 3, "ImagePositionPatient", fwhere),
                        _floats(ori, 6, "ImageOrientationPatient", fwhere),
                        (float(spacing[0]), float(spacing[1])),
                        rows,
                        cols,
                        _rescale(slope, 1.0, "RescaleSlope", fwhere),
                        _rescale(icpt, 0.0, "RescaleIntercept", fwhere),
                        _opt_float(thick),
                    )
                )
            return frames
        for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if ds.get(name) is None:
                raise DicomSeriesError(f"{where}: expected {name} in a CT slice, found none")
        spacing = _floats(ds.PixelSpacing, 2, "PixelSpacing", where)
        return [
            _Frame(
                h,
                None,
                _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", where),
                _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", where),
                (float(spacing[0]), float(spacing[1])),
                rows,
                cols,
                _rescale(ds.get("RescaleSlope"), 1.0, "RescaleSlope", where),
                _rescale(ds.get("RescaleIntercept"), 0.0, "RescaleIntercept", where),
                _opt_float(ds.get("SliceThickness")),
            )
        ]
    except (DicomSeriesError, CTLoadError):
        raise
    except Exception as exc:  # lazily converted elements (e.g. VR UN, malformed sequences) fail here
        raise _corrupt(h.path, exc, "a DICOM header with valid image attributes") from exc
