"""One CT series from a folder (or one enhanced multi-frame file) to a CTVolume.

Headers are read (:mod:`.headers`), non-image objects set aside, the images grouped by series (more
than one is refused, each listed), the modality checked, every frame's geometry taken (:mod:`.frames`),
sorted and checked (:mod:`.geometry`), and only then are pixels read (:mod:`.pixels`). The affine is
built from the sorted frames: a gantry-tilted series gets an exact sheared affine, with a warning.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CTLoadError, DicomSeriesError, ModalityError
from ..volume import CTVolume
from .frames import _fg_attr, _first_item, _frames_of, _opt_float
from .geometry import _fmt, _sort_and_check
from .headers import _Header, _list_files, _read_header, _truncated
from .pixels import _load_pixels

_TILT_REPORT_DEG = 0.01


def _slice_refs(frames) -> list[dict[str, Any]]:
    """Per slice, in the sorted order of the voxel array's slice axis: the image a radiologist opens.

    ``instance_number`` (InstanceNumber, None when absent), ``frame`` (1-based frame number in an enhanced
    multi-frame file, else None) and ``sop_instance_uid`` (an instance identifier, no patient identifier)."""
    out = []
    for fr in frames:
        ds = fr.header.ds
        try:
            inst = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
        except (TypeError, ValueError):
            inst = None
        out.append({"sop_instance_uid": str(ds.get("SOPInstanceUID", "") or "").strip() or None,
                    "instance_number": inst, "frame": None if fr.index is None else fr.index + 1})
    return out


def load_dicom_series(path: Path) -> CTVolume:
    """Load one CT series from a folder (searched recursively) or one enhanced multi-frame CT file.

    Raises CTLoadError (missing/empty/corrupt input, missing decoder), ModalityError (not CT),
    DicomSeriesError (several series, 2D, duplicate positions, non-uniform steps, inconsistent
    orientation/size/spacing).
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise CTLoadError(f"{path}: expected a DICOM folder or file, found nothing at this path")
    if path.is_dir():
        files = _list_files(path)
        if not files:
            raise CTLoadError(f"{path}: expected a folder holding one DICOM CT series, found an empty folder")
    else:
        from ..io import check_regular

        check_regular(path, "DICOM")
        files = [path]

    headers: list[_Header] = []
    n_not_dicom = 0
    for f in files:
        h = _read_header(f)
        if h is None:
            n_not_dicom += 1
            continue
        if h.looks_truncated:
            raise _truncated(h)
        headers.append(h)
    images = [h for h in headers if h.is_image]
    if not images:
        kinds = sorted({h.modality or "?" for h in headers})
        raise CTLoadError(
            f"{path}: expected DICOM CT images, found {len(files)} file(s): {len(headers)} DICOM "
            f"object(s) without image data{(' (' + ', '.join(kinds) + ')') if kinds else ''} and "
            f"{n_not_dicom} non-DICOM file(s)"
        )

    groups: dict[str, list[_Header]] = {}
    for h in images:
        groups.setdefault(h.series_uid, []).append(h)
    if len(groups) > 1:
        lines = []
        for uid, hs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            desc = str(hs[0].ds.get("SeriesDescription", "") or "").strip()
            mods = "/".join(sorted({x.modality or "?" for x in hs}))
            n_slices = sum(int(x.ds.get("NumberOfFrames", 1) or 1) for x in hs)
            lines.append(
                f"  {uid or '(no SeriesInstanceUID)'}: {n_slices} slice(s) in {len(hs)} file(s), {mods}, "
                f"description {desc!r}"
            )
        raise DicomSeriesError(
            f"{path}: expected one DICOM series, found {len(groups)} series:\n" + "\n".join(lines)
        )
    (series_uid, hs), = groups.items()

    modalities = sorted({h.modality for h in hs})
    if modalities != ["CT"]:
        raise ModalityError(
            f"{path}: expected modality CT, found {', '.join(m or '(missing Modality)' for m in modalities)}"
        )

    frames = [fr for h in hs for fr in _frames_of(h)]
    frames, normal, step = _sort_and_check(frames, where)

    stack = _load_pixels(frames)
    hu = stack.transpose(2, 1, 0)  # (n, rows, cols) -> hu[i=col, j=row, k=slice]; F-contiguous view

    ref = frames[0]
    row_sp, col_sp = ref.pixel_spacing
    row_c = ref.orientation[:3] / np.linalg.norm(ref.orientation[:3])
    col_c = ref.orientation[3:] / np.linalg.norm(ref.orientation[3:])
    lps = np.eye(4)
    lps[:3, 0] = row_c * col_sp  # i: along a row, one column step
    lps[:3, 1] = col_c * row_sp  # j: down a column, one row step
    lps[:3, 2] = step
    lps[:3, 3] = ref.position
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps

    warnings: list[str] = []
    step_len = float(np.linalg.norm(step))
    cos_t = min(1.0, abs(float(step @ normal)) / step_len)
    tilt = math.degrees(math.acos(cos_t))
    if tilt > _TILT_REPORT_DEG:
        warnings.append(
            f"gantry tilt {tilt:.2f} deg: slices step {_fmt(step_len)} mm at {tilt:.2f} deg from the slice "
            f"normal ({_fmt(step_len * cos_t)} mm between planes); the affine is sheared, not resampled"
        )
    ds0 = hs[0].ds
    if not series_uid:
        warnings.append("SeriesInstanceUID missing: all image files in the folder were taken as one series")
    rescale_types = set()
    for h in hs:
        shared = _first_item(h.ds, "SharedFunctionalGroupsSequence")
        rt = _fg_attr(None, shared, "PixelValueTransformationSequence", "RescaleType") or h.ds.get("RescaleType")
        rescale_types.add(str(rt or "").strip())
    rescale_types.discard("")
    if rescale_types and rescale_types != {"HU"}:
        warnings.append(
            f"RescaleType is {', '.join(sorted(rescale_types))}, not HU: values may not be Hounsfield units "
            f"(ImageType {list(ds0.get('ImageType', []))})"
        )

    thickness = ref.thickness
    contrast = str(ds0.get("ContrastBolusAgent", "") or "").strip() or None
    if contrast is None and ds0.get("ContrastBolusAgentSequence"):
        item = ds0.ContrastBolusAgentSequence[0]
        contrast = str(item.get("CodeMeaning", "") or "").strip() or None
    kvp = _opt_float(ds0.get("KVP"))
    if kvp is None:
        per = ds0.get("PerFrameFunctionalGroupsSequence")
        kvp = _opt_float(
            _fg_attr(per[0] if per else None, _first_item(ds0, "SharedFunctionalGroupsSequence"),
                     "CTXRayDetailsSequence", "KVP")
        )
    meta: dict[str, Any] = {
        "slice_thickness_mm": thickness,
        "series_description": str(ds0.get("SeriesDescription", "") or "").strip() or None,
        "contrast_agent": contrast,
        "modality": "CT",
        "manufacturer": str(ds0.get("Manufacturer", "") or "").strip() or None,
        "kvp": kvp,
        "series_uid": series_uid or None,
        "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", "") or "").strip() or None,
        "n_files": len(hs),
        "n_slices": len(frames),
        "multiframe": any(fr.index is not None for fr in frames),
        "transfer_syntax": sorted({h.ts.name for h in hs}),
        "slice_step_mm": step_len,
        "gantry_tilt_deg": tilt if tilt > _TILT_REPORT_DEG else 0.0,
        "slices": _slice_refs(frames),
    }
    return CTVolume(hu=hu, affine=affine, source=where, source_format="dicom", meta=meta, warnings=tuple(warnings))
