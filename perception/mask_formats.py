"""Mask files that are not NIfTI: NRRD / 3D Slicer ``.seg.nrrd``, DICOM SEG and DICOM RTSTRUCT.

Each is read onto the CT grid and checked like a NIfTI mask (perception.masks):

- **NRRD** (pynrrd): the affine comes from ``space``, ``space directions`` and ``space origin``
  (LPS or RAS); the array then goes through the same checks as a NIfTI label mask (integers,
  geometry against the CT, lossless reorientation). A 3D Slicer segmentation names its labels in
  ``SegmentN_Name`` / ``SegmentN_LabelValue`` (layer 0; several layers are refused); a plain NRRD is
  named like a NIfTI file (``--mask-label``, ``--class-map``, or its file name).
- **DICOM SEG** (pydicom): BINARY or LABELMAP; FRACTIONAL is refused (a soft mask: no threshold is
  chosen for the user). A SEG referencing another series or frame of reference than a DICOM CT is
  refused, naming both. Every frame is placed on the CT grid by its Image Position / Orientation and
  Pixel Spacing (a frame off the grid is refused); two frames of one segment on one plane are
  refused, and so are two organ segments sharing voxels (organs are disjoint; a lesion or vessel
  inside an organ is read as given). Segment names: SegmentLabel, else the segmented property type's
  meaning (with its laterality modifier), through the registry with "did you mean".
- **RTSTRUCT** (perception.dicom.rtstruct): closed planar contours rasterised on the CT grid; an
  RTSTRUCT referencing another series is refused, contours off the grid are refused. ROI names:
  ROIName, else its RT ROI Interpreted Type (GTV, CTV, ...) when the registry knows it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import registry
from .errors import CTLoadError, GeometryMismatchError, MaskError
from .volume import CTVolume

NRRD_SUFFIXES = (".seg.nrrd", ".nrrd", ".nhdr")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nrrd(path: Path) -> bool:
    return path.name.lower().endswith(NRRD_SUFFIXES)


def is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file (the 'DICM' marker after the 128-byte preamble); only regular files are opened."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def mask_stem(path: Path) -> str:
    name = path.name
    for suf in (".nii.gz", ".seg.nrrd", ".nrrd", ".nhdr", ".nii"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return path.stem


# --- NRRD --------------------------------------------------------------------------------------------
def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(array, RAS affine, header) of a 3D NRRD label map; MaskError naming the field otherwise."""
    import nrrd

    from .io import check_regular, max_voxel_bytes

    try:
        check_regular(path, "mask")
        header = nrrd.read_header(str(path))
        sizes = [int(v) for v in header.get("sizes", [])]
        need = int(np.prod(sizes, dtype=np.int64)) * nrrd.reader._determine_datatype(header).itemsize
        if need > max_voxel_bytes():  # before anything is inflated (as for NIfTI)
            raise MaskError(f"{path}: expected voxel data of at most {max_voxel_bytes()} bytes, found a header "
                            f"declaring {need} bytes (sizes {sizes}; RADAGENT_MAX_VOXEL_BYTES changes the limit)")
        data, header = nrrd.read(str(path))
    except CTLoadError as e:
        raise MaskError(str(e)) from e
    except (nrrd.NRRDError, OSError, ValueError, EOFError) as e:
        raise MaskError(f"{path}: expected a readable NRRD file, found a corrupt or unreadable one ({e})") from e
    space = str(header.get("space", "") or "").lower()
    dirs = header.get("space directions")
    origin = header.get("space origin")
    if data.ndim == 4 and header.get("kinds", [""])[0] in ("list", "vector", "complex"):
        if data.shape[0] != 1:
            raise MaskError(f"{path}: expected one label layer, found {data.shape[0]} layers (overlapping segments "
                            "in a 3D Slicer segmentation); export a labelmap, or one file per segment")
        data = data[0]
        dirs = [d for d in dirs if d is not None and not np.all(np.isnan(np.asarray(d, dtype=float)))]
    if data.ndim != 3:
        raise MaskError(f"{path}: expected a 3D label map, found {data.ndim} dimensions (shape {data.shape})")
    if dirs is None or origin is None or space not in ("left-posterior-superior", "lps", "right-anterior-superior",
                                                       "ras"):
        raise MaskError(f"{path}: expected 'space' (LPS or RAS), 'space directions' and 'space origin', found space "
                        f"{space or '(none)'}, directions {'present' if dirs is not None else 'missing'}, origin "
                        f"{'present' if origin is not None else 'missing'}: without them the mask cannot be placed "
                        "on the CT")
    d = np.asarray(dirs, dtype=float)
    o = np.asarray(origin, dtype=float)
    if d.shape != (3, 3) or o.shape != (3,) or not (np.isfinite(d).all() and np.isfinite(o).all()):
        raise MaskError(f"{path}: expected 3x3 finite 'space directions' and a 3-vector origin, found {d.tolist()} "
                        f"and {o.tolist()}")
    aff = np.eye(4)
    aff[:3, :3] = d.T  # row n of "space directions" is the step of data axis n
    aff[:3, 3] = o
    if space in ("left-posterior-superior", "lps"):
        aff = LPS_TO_RAS @ aff
    if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        raise MaskError(f"{path}: 'space directions' are singular ({d.tolist()})")
    return data, aff, header


def nrrd_segment_map(header: dict, path: Path) -> dict[int, str] | None:
    """{label value: segment name} of a 3D Slicer .seg.nrrd (layer 0), or None for a plain NRRD."""
    names = {k[: -len("_Name")]: v for k, v in header.items() if k.startswith("Segment") and k.endswith("_Name")}
    if not names:
        return None
    out: dict[int, str] = {}
    for seg, name in names.items():
        layer = int(header.get(f"{seg}_Layer", 0) or 0)
        if layer != 0:
            raise MaskError(f"{path}: segment {name!r} is on layer {layer}: expected one layer")
        try:
            out[int(header.get(f"{seg}_LabelValue", 1))] = str(name)
        except (TypeError, ValueError) as e:
            raise MaskError(f"{path}: {seg}_LabelValue is not an integer ({header.get(f'{seg}_LabelValue')!r})") from e
    return out


# --- DICOM -------------------------------------------------------------------------------------------
def _read_dicom(path: Path):
    import pydicom

    from .io import check_regular

    try:
        check_regular(path, "mask")
        return pydicom.dcmread(path)
    except CTLoadError as e:
        raise MaskError(str(e)) from e
    except Exception as e:
        raise MaskError(f"{path}: expected a readable DICOM SEG or RTSTRUCT file, found a corrupt one "
                        f"({type(e).__name__}: {e})") from e


def _check_references(path: Path, ct: CTVolume, what: str, series: set[str], fors: set[str]) -> None:
    ct_series, ct_for = ct.meta.get("series_uid"), ct.meta.get("frame_of_reference_uid")
    series.discard("")
    fors.discard("")
    if ct.source_format == "dicom" and ct_series and series and ct_series not in series:
        raise MaskError(f"{path}: expected a {what} of the CT series {ct_series} ({ct.source}), found one referencing "
                        f"series {', '.join(sorted(series))}: this {what} belongs to another series")
    if ct.source_format == "dicom" and ct_for and fors and ct_for not in fors:
        raise MaskError(f"{path}: expected the CT's frame of reference {ct_for}, found {', '.join(sorted(fors))}: this "
                        f"{what} belongs to another scan")


def _frame_attr(ds, i: int, seq: str, attr: str):
    per = ds.get("PerFrameFunctionalGroupsSequence")
    for groups in ([per[i]] if per is not None and len(per) > i else []) + list(ds.get("SharedFunctionalGroupsSequence", [])):
        if seq in groups and len(groups[seq].value):
            item = groups[seq][0]
            if attr in item:
                return item[attr].value
    return None


def _frame_to_grid(ds, i: int, ct: CTVolume, path: Path, tol_mm: float, rows: int, cols: int):
    """(index expression on the CT array, transpose flag) placing frame ``i`` (rows x cols) on the grid."""
    iop = _frame_attr(ds, i, "PlaneOrientationSequence", "ImageOrientationPatient")
    ipp = _frame_attr(ds, i, "PlanePositionSequence", "ImagePositionPatient")
    sp = _frame_attr(ds, i, "PixelMeasuresSequence", "PixelSpacing")
    if iop is None or ipp is None or sp is None:
        raise MaskError(f"{path}: frame {i + 1}: expected Image Orientation, Image Position and Pixel Spacing, found "
                        f"{', '.join(n for n, v in (('orientation', iop), ('position', ipp), ('spacing', sp)) if v is None)}"
                        " missing: the frame cannot be placed on the CT")
    iop = np.asarray([float(v) for v in iop])
    rc, cc = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    lps = np.eye(4)
    lps[:3, 0] = rc * float(sp[1])
    lps[:3, 1] = cc * float(sp[0])
    lps[:3, 2] = np.cross(rc, cc)
    lps[:3, 3] = [float(v) for v in ipp]
    m = np.linalg.inv(ct.affine) @ LPS_TO_RAS @ lps  # (col, row, 0) of the frame -> CT voxel (i, j, k)
    axes = []
    for a in range(2):
        v = m[:3, a]
        ax = int(np.argmax(np.abs(v)))
        if abs(abs(v[ax]) - 1) > 1e-3 or np.abs(np.delete(v, ax)).max() > 1e-3:
            raise GeometryMismatchError(
                f"{path}: frame {i + 1}: expected pixels on the CT voxel grid ({ct.source}: spacing "
                f"{', '.join(f'{s:.4f}' for s in ct.spacing)} mm, orientation {ct.orientation}), found a frame whose "
                f"{'column' if a == 0 else 'row'} step is {np.round(v, 4).tolist()} CT voxels")
        axes.append((ax, int(np.sign(v[ax]))))
    origin = m[:3, 3]
    k_axis = ({0, 1, 2} - {axes[0][0], axes[1][0]}).pop()
    near = np.rint(origin)
    off_mm = np.linalg.norm(ct.affine[:3, :3] @ (origin - near))
    if off_mm > max(tol_mm, 1e-3):
        raise GeometryMismatchError(f"{path}: frame {i + 1}: expected its first pixel on a CT voxel centre, found it "
                                    f"{off_mm:.4f} mm away (tolerance {tol_mm} mm)")
    idx: list = [None, None, None]
    start = near.astype(int)
    shape = ct.shape
    for (ax, sgn), n in zip(axes, (cols, rows)):
        lo = start[ax]
        hi = lo + sgn * (n - 1)
        if min(lo, hi) < 0 or max(lo, hi) >= shape[ax]:
            raise GeometryMismatchError(f"{path}: frame {i + 1}: expected inside the CT grid {shape}, found pixels "
                                        f"from voxel {lo} to {hi} along axis {ax}: off the CT grid")
        idx[ax] = slice(lo, hi + 1) if sgn > 0 else slice(lo, (hi - 1) if hi > 0 else None, -1)
    k = int(start[k_axis])
    if not 0 <= k < shape[k_axis]:
        raise GeometryMismatchError(f"{path}: frame {i + 1}: expected a plane inside the CT (0..{shape[k_axis] - 1} "
                                    f"along axis {k_axis}), found {k}: off the CT grid")
    idx[k_axis] = k
    # the frame array is (rows, cols); the target sub-array's axes are in CT order: transpose when cols come first
    transpose = axes[0][0] < axes[1][0]
    return tuple(idx), transpose


def _segment_name(item) -> str:
    label = str(item.get("SegmentLabel", "") or "")
    name = registry.canonical_name(label) if label else ""
    if name and registry.classify(name) is not None:
        return name
    for seq in item.get("SegmentedPropertyTypeCodeSequence", []) or []:
        base = registry.canonical_name(str(seq.get("CodeMeaning", "")))
        mods = [str(x.get("CodeMeaning", "")).lower() for x in seq.get("SegmentedPropertyTypeModifierCodeSequence", []) or []]
        mods += [str(x.get("CodeMeaning", "")).lower() for x in item.get("SegmentedPropertyTypeModifierCodeSequence", []) or []]
        for cand in [f"{base}_{m}" for m in mods if m in ("left", "right")] + [base]:
            if registry.classify(cand) is not None:
                return cand
    return label or f"segment {int(item.SegmentNumber)}"


def load_dicom_seg(path: Path, ct: CTVolume, tol_mm: float = 0.01, mask_label: str | None = None):
    """A LabelSet of a DICOM SEG's segments on the CT grid (see the module docstring for the checks)."""
    from .mask import Mask
    from .masks import LabelSet, _register

    ds = _read_dicom(path)
    stype = str(ds.get("SegmentationType", "") or "")
    if stype not in ("BINARY", "LABELMAP"):
        raise MaskError(f"{path}: expected a BINARY or LABELMAP segmentation, found SegmentationType {stype or '(missing)'}"
                        + (" (a soft / probability mask: threshold it first; radagent does not choose a threshold)"
                           if stype == "FRACTIONAL" else ""))
    series = {str(s.get("SeriesInstanceUID", "")) for s in ds.get("ReferencedSeriesSequence", []) or []}
    _check_references(path, ct, "DICOM SEG", series, {str(ds.get("FrameOfReferenceUID", "") or "")})
    items = {int(s.SegmentNumber): s for s in ds.get("SegmentSequence", []) or []}
    if stype == "LABELMAP":
        items.pop(0, None)  # the background segment of a labelmap
    if not items:
        raise MaskError(f"{path}: expected at least one segment in SegmentSequence, found none")
    from .io import max_voxel_bytes

    n = int(ds.get("NumberOfFrames", 1) or 1)
    need = n * int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * max(1, int(ds.get("BitsAllocated", 1)) // 8)
    if need > max_voxel_bytes():  # decoded pixels (1-bit frames unpack to one byte a pixel), before decoding
        raise MaskError(f"{path}: expected decoded pixel data of at most {max_voxel_bytes()} bytes, found {n} frames of "
                        f"{ds.get('Rows')}x{ds.get('Columns')} ({need} bytes; RADAGENT_MAX_VOXEL_BYTES changes the limit)")
    try:
        pix = ds.pixel_array
    except Exception as e:
        raise MaskError(f"{path}: cannot decode the SEG pixel data ({type(e).__name__}: {e})") from e
    pix = pix.reshape(n, int(ds.Rows), int(ds.Columns))
    names = {num: _segment_name(it) for num, it in items.items()}
    if mask_label is not None:
        if len(items) != 1:
            raise MaskError(f"{path}: --mask-label names one structure, but the SEG holds {len(items)} segments "
                            f"({', '.join(names.values())}); they are named by the SEG itself")
        names = {num: mask_label for num in items}
    frames: dict[int, list[tuple[tuple, np.ndarray]]] = {}  # segment number -> [(index on the CT, frame)]
    seen: dict[tuple, int] = {}
    for i in range(n):
        idx, transpose = _frame_to_grid(ds, i, ct, path, tol_mm, int(ds.Rows), int(ds.Columns))
        frame = pix[i].T if transpose else pix[i]
        plane = tuple((s.start, s.stop, s.step) if isinstance(s, slice) else s for s in idx)
        if stype == "BINARY":
            num = _frame_attr(ds, i, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
            num = int(num) if num is not None else None
            if num not in items:
                raise MaskError(f"{path}: frame {i + 1}: expected a segment number of SegmentSequence "
                                f"({sorted(items)}), found {num}")
            if (num, plane) in seen:
                raise MaskError(f"{path}: segment {num} ({names[num]}) has two frames on one plane (frames "
                                f"{seen[(num, plane)] + 1} and {i + 1}): overlapping frames where one binary frame per "
                                "segment and plane is expected")
            seen[(num, plane)] = i
            frames.setdefault(num, []).append((idx, frame != 0))
        else:
            if plane in seen:
                raise MaskError(f"{path}: two labelmap frames on one plane (frames {seen[plane] + 1} and {i + 1})")
            seen[plane] = i
            bad = set(np.unique(frame).tolist()) - set(items) - {0}
            if bad:
                raise MaskError(f"{path}: frame {i + 1}: expected values of SegmentSequence ({sorted(items)}), found "
                                f"{sorted(bad)}")
            for num in items:
                hit = frame == num
                if hit.any():
                    frames.setdefault(num, []).append((idx, hit))
    masks: dict[int, Mask] = {}
    for num, parts in frames.items():  # one dense volume at a time, kept cropped
        dense = np.zeros(ct.shape, dtype=bool)
        for idx, fr in parts:
            dense[idx] |= fr
        masks[num] = Mask.from_dense(registry.canonical_name(names[num]), dense, f"{path}#{num}")
    del frames
    _refuse_organ_overlap(path, {names[k]: m for k, m in masks.items()})
    ls = LabelSet(ct.shape)
    for num in sorted(items):
        src = f"{path}#{num}"
        if num in masks and not masks[num].empty:
            _register(ls, names[num], masks[num], src)
        else:  # a segment described with no voxel: the segmenter looked and found none
            name = registry.canonical_name(names[num])
            if registry.classify(name) is not None and name not in ls.masks:
                ls.masks[name] = Mask(name, ct.shape, None, None, src)
            elif registry.classify(name) is None:
                ls.ignore(names[num], src, "unknown structure name (kept, not interpreted)", registry.did_you_mean(name))
    return ls


def _refuse_organ_overlap(path: Path, masks: dict) -> None:
    organs = [(n, m) for n, m in masks.items() if not m.empty
              and (s := registry.classify(registry.canonical_name(n))) is not None and s.category == "organ"]
    for x in range(len(organs)):
        for y in range(x + 1, len(organs)):
            both = organs[x][1].overlap_count(organs[y][1])
            if both:
                raise MaskError(f"{path}: segments {organs[x][0]!r} and {organs[y][0]!r} overlap in {both} voxels: "
                                "expected disjoint organ segments (binary masks of distinct organs); a lesion or vessel "
                                "inside an organ is the only overlap read")


def load_rtstruct_masks(path: Path, ct: CTVolume, mask_label: str | None = None):
    """A LabelSet of an RTSTRUCT's ROIs rasterised on the CT grid."""
    from .dicom.rtstruct import load_rtstruct
    from .masks import LabelSet, _register

    ds = _read_dicom(path)
    series, fors = set(), set()
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        fors.add(str(fr.get("FrameOfReferenceUID", "")))
        for st in fr.get("RTReferencedStudySequence", []) or []:
            for se in st.get("RTReferencedSeriesSequence", []) or []:
                series.add(str(se.get("SeriesInstanceUID", "")))
    _check_references(path, ct, "RTSTRUCT", series, fors)
    rois = load_rtstruct(path, ct)
    types = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "")
             for o in ds.get("RTROIObservationsSequence", []) or []}
    numbers = {str(r.ROIName): int(r.ROINumber) for r in ds.get("StructureSetROISequence", [])}
    if mask_label is not None and len(rois) != 1:
        raise MaskError(f"{path}: --mask-label names one structure, but the RTSTRUCT holds {len(rois)} ROIs "
                        f"({', '.join(rois)})")
    ls = LabelSet(ct.shape)
    for roi, arr in rois.items():
        name = mask_label or roi
        if mask_label is None and registry.classify(registry.canonical_name(roi)) is None:
            t = registry.canonical_name(types.get(numbers.get(roi, -1), ""))
            if t and registry.classify(t) is not None:
                name = t
                ls.warnings.append(f"{path.name}: ROI {roi!r} read as {t!r} (its RT ROI Interpreted Type)")
        _register(ls, name, arr, f"{path}#{roi}")
    return ls


def load_dicom_masks(path: Path, ct: CTVolume, tol_mm: float = 0.01, mask_label: str | None = None):
    """A DICOM SEG or RTSTRUCT mask file, by its Modality."""
    import pydicom

    try:
        modality = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality", ""))
    except Exception as e:
        raise MaskError(f"{path}: expected a readable DICOM SEG or RTSTRUCT file, found a corrupt one ({e})") from e
    if modality == "SEG":
        return load_dicom_seg(path, ct, tol_mm, mask_label)
    if modality == "RTSTRUCT":
        return load_rtstruct_masks(path, ct, mask_label)
    raise MaskError(f"{path}: expected a DICOM SEG or RTSTRUCT mask, found modality {modality or '(missing Modality)'}")
