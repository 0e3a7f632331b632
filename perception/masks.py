"""LabelSet: the named masks of one CT, from a folder of binary masks or a multilabel NIfTI.

Mask intake, one rule for the CLI, the HTTP API and the dataset builder (``load_masks``):

- A file is a multilabel map only when its values and a class map agree: an explicit class map
  (``--class-map``), or a file named like TotalSegmentator's multilabel output (``<task>.nii.gz`` for
  a TotalSegmentator task such as ``total.nii.gz``, or a name holding the word ``seg`` /
  ``segmentation(s)`` / ``multilabel``: ``segmentations.nii.gz``, ``example_seg.nii.gz``) that holds
  several labels, all of them ids of that task. With an explicit class map, labels present in the
  file but absent from the map are recorded as ignored.
- Otherwise the file is one binary mask (values 0 and one other integer). Its structure is the
  ``mask_label`` the user gives (``--mask-label``, API ``mask_label``, manifest column ``mask_label``)
  or its file name, which must be a registry name; an unknown name is refused (MaskError) with
  "did you mean" and how to name it. Non-integer (soft / probability) values are always refused, and
  several values without a class map are refused.
- In a folder of binary masks, files with unknown names are kept as warnings (refused with
  ``strict``); every mask given but not interpreted is recorded in ``LabelSet.ignored``.

Other formats (perception/mask_formats.py): NRRD is read like NIfTI (a 3D Slicer .seg.nrrd names its
labels in its header; TotalSegmentator's file-name rule applies to NIfTI only); a DICOM SEG or RTSTRUCT
names its own segments / ROIs and is checked against the CT series it references.

Mask geometry is checked against the CT before anything is measured. A mask stored on the
same voxel grid in another axis order (e.g. LAS vs LPS) is reoriented losslessly; anything
else that differs in shape or affine is refused, printing both geometries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel import orientations as ornt
from scipy import ndimage

from . import registry
from .errors import CTLoadError, GeometryMismatchError, MaskError
from .io import check_regular, is_nifti, raw_data, read_nifti
from .mask import Mask, bbox_of, to_slices
from .volume import CTVolume, axcodes

# Words in a file name that mark TotalSegmentator-style multilabel output (its docs write
# `-o segmentations --ml` -> segmentations.nii.gz; its reference files are example_seg*.nii.gz).
MULTILABEL_NAME_WORDS = frozenset({"seg", "segs", "segmentation", "segmentations", "multilabel"})

HOW_TO_NAME = ("rename the file to the structure it holds (a TotalSegmentator / AbdomenAtlas name such as "
               "liver_lesion.nii.gz, pancreas.nii.gz), or say what it is with --mask-label NAME (HTTP API: "
               "mask_label; dataset manifest: a mask_label column)")


@dataclass
class LabelSet:
    """Named masks on one CT grid, with their provenance."""

    shape: tuple[int, int, int]
    masks: dict[str, Mask] = field(default_factory=dict)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # raw name -> did-you-mean
    warnings: list[str] = field(default_factory=list)
    # every mask given but not interpreted: {name, source, reason, did_you_mean} (Findings.ignored_masks)
    ignored: list[dict] = field(default_factory=list)

    def ignore(self, name: str, source: str, reason: str, did_you_mean: list[str] | None = None) -> None:
        self.ignored.append({"name": name, "source": source, "reason": reason,
                             "did_you_mean": list(did_you_mean or [])})

    def add(self, mask: Mask) -> None:
        if mask.name in self.masks and not self.masks[mask.name].empty:
            if not mask.empty:
                self.warnings.append(f"mask {mask.name!r} given twice ({self.masks[mask.name].source}, {mask.source}): merged")
                self.masks[mask.name] = merge(mask.name, [self.masks[mask.name], mask])
            return
        self.masks[mask.name] = mask

    def get(self, name: str) -> Mask | None:
        m = self.masks.get(name)
        return None if m is None or m.empty else m

    def by_category(self, category: str) -> dict[str, Mask]:
        out = {}
        for name, m in self.masks.items():
            s = registry.classify(name)
            if s is not None and s.category == category:
                out[name] = m
        return out


def merge(name: str, masks: list[Mask]) -> Mask:
    present = [m for m in masks if not m.empty]
    if not present:
        return masks[0]
    bb = present[0].bbox
    for m in present[1:]:
        bb = tuple((min(a0, b0), max(a1, b1)) for (a0, a1), (b0, b1) in zip(bb, m.bbox))
    data = np.zeros(tuple(b - a for a, b in bb), dtype=bool)
    for m in present:  # each box lies inside the union: OR its data into its place (no union-box copy per mask)
        data[tuple(slice(a - o, b - o) for (a, b), (o, _) in zip(m.bbox, bb))] |= m.data
    return Mask(name, present[0].shape, bb, data, "+".join(m.source for m in present))


def _geometry(shape, affine) -> str:
    rows = "; ".join("[" + ", ".join(f"{v:.4f}" for v in r) + "]" for r in np.asarray(affine)[:3])
    return f"shape {tuple(int(s) for s in shape)}, orientation {axcodes(affine)}, affine [{rows}]"


def align_to_ct(arr: np.ndarray, affine: np.ndarray, ct: CTVolume, path: Path, tol_mm: float) -> tuple[np.ndarray, str | None]:
    """Return the mask array on the CT grid, or raise GeometryMismatchError with both geometries."""
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.shape == ct.shape and np.allclose(affine, ct.affine, atol=tol_mm, rtol=0):
        return arr, None
    if arr.ndim == 3:
        tr = ornt.ornt_transform(ornt.io_orientation(affine), ornt.io_orientation(ct.affine))
        moved = ornt.apply_orientation(arr, tr)
        new_aff = affine @ ornt.inv_ornt_aff(tr, arr.shape)
        if moved.shape == ct.shape and np.allclose(new_aff, ct.affine, atol=tol_mm, rtol=0):
            return moved, (f"mask {path.name} is stored as {axcodes(affine)}; reoriented losslessly to the CT grid ({axcodes(ct.affine)})")
    raise GeometryMismatchError(
        f"{path}: mask geometry differs from the CT (tolerance {tol_mm} mm).\n"
        f"  CT   ({ct.source}): {_geometry(ct.shape, ct.affine)}\n"
        f"  mask ({path}): {_geometry(arr.shape, affine)}")


def nifti_stem(p: Path) -> str:
    """The file name without .nii.gz / .nii / .seg.nrrd / .nrrd."""
    from .mask_formats import mask_stem

    return mask_stem(p)


MAX_LABEL_ID = 65535  # larger ids would make find_objects / bincount allocate per id


def _load_mask_array(path: Path, ct: CTVolume, tol_mm: float) -> tuple[np.ndarray, str | None]:
    """The mask's integer label array on the CT grid. Non-finite, non-integer (soft) and negative
    values are refused: no threshold is chosen for the user. NIfTI or NRRD (perception.mask_formats)."""
    from .mask_formats import is_nrrd, read_nrrd

    if is_nrrd(path):
        arr, affine, _ = read_nrrd(path)
    else:
        try:
            img = read_nifti(path, "mask")
        except CTLoadError as e:
            raise MaskError(str(e)) from e
        arr, affine = raw_data(img), img.affine
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise MaskError(f"{path}: expected a label mask, found NaN/inf values")
        frac = arr != np.rint(arr)
        if frac.any():
            ex = float(arr[frac].flat[0])
            raise MaskError(f"{path}: expected a label mask with integer values, found {int(np.count_nonzero(frac))} "
                            f"non-integer voxels (e.g. {ex:.4g}): a soft or probability mask. Threshold it first; "
                            "radagent does not choose a threshold")
        arr = arr.astype(np.int32)
    elif arr.dtype.kind not in "iu":
        raise MaskError(f"{path}: expected a label mask of integers, found data type {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise MaskError(f"{path}: expected non-negative label ids, found minimum {int(arr.min())}")
    if arr.size and arr.dtype.itemsize > 2 and int(arr.max()) > MAX_LABEL_ID:
        raise MaskError(f"{path}: expected label ids up to {MAX_LABEL_ID}, found {int(arr.max())} "
                        "(a label map, not an image?)")
    return align_to_ct(arr, affine, ct, path, tol_mm)


def label_values(arr: np.ndarray) -> list[int]:
    """The non-zero values present (sorted)."""
    mx = int(arr.max()) if arr.size else 0
    if mx == 0:
        return []
    if mx == 1:  # a binary mask (callers refuse negative ids): the only non-zero value is its maximum
        return [1]
    if mx <= 1 << 16:
        # memory order (NIfTI arrays are Fortran-ordered: a C-order ravel would copy), counted in chunks so
        # bincount's cast to intp never allocates 8 bytes per voxel of the whole volume
        flat = np.asarray(arr).ravel(order="K")
        counts = np.zeros(mx + 1, np.int64)
        for i in range(0, flat.size, 1 << 22):
            counts += np.bincount(flat[i:i + (1 << 22)], minlength=mx + 1)
        return [int(v) for v in np.flatnonzero(counts[1:]) + 1]
    return [int(v) for v in np.unique(arr) if v != 0]


def label_bboxes(arr: np.ndarray) -> list[tuple[slice, ...] | None]:
    """``ndimage.find_objects(arr)``: the bounding box (a tuple of slices) of each label 1..max, None
    for a label with no voxels. find_objects walks the array in C order, so it runs on the
    memory-order view (a NIfTI array is Fortran-ordered: 5-7x faster) and the slices are put back in
    the array's axis order; the boxes are the same, only the walk differs."""
    perm = sorted(range(arr.ndim), key=lambda a: -abs(arr.strides[a]))
    mx = int(arr.max()) if arr.size else 0
    if mx <= 1 << 16:
        objs = ndimage.find_objects(arr.transpose(perm))
    else:  # a few large ids: one pass per present id, not one list entry per possible id
        objs = [None] * mx
        for lab in label_values(arr):
            objs[lab - 1] = ndimage.find_objects((arr == lab).astype(np.uint8).transpose(perm))[0]
    inv = np.argsort(perm)
    return [None if sl is None else tuple(sl[j] for j in inv) for sl in objs]


def _fmt_values(vals: list[int], n: int = 12) -> str:
    return ", ".join(map(str, vals[:n])) + (f", ... ({len(vals)} values)" if len(vals) > n else "")


def multilabel_task(path: Path) -> str | None:
    """The TotalSegmentator task whose class map reads a file of this name as a multilabel map
    (``<task>.nii.gz``; ``total`` for names holding the word seg / segmentation(s) / multilabel), or None."""
    if not is_nifti(path):  # TotalSegmentator writes NIfTI: its names say nothing of other formats
        return None
    stem = nifti_stem(path).lower()
    maps = registry.totalseg_class_maps()
    if stem in maps:
        return stem
    if MULTILABEL_NAME_WORDS & set(re.split(r"[^a-z0-9]+", stem)):
        return "total"
    return None


def check_mask_label(label: str) -> str:
    """The canonical structure name of a user's ``mask_label``; MaskError with "did you mean" when
    the registry does not know it."""
    if not isinstance(label, str) or not label.strip():
        raise MaskError(f"mask label {label!r}: expected a structure name (e.g. liver_lesion, gtv)")
    name = registry.canonical_name(label)
    if registry.classify(name) is None:
        sugg = registry.did_you_mean(name)
        raise MaskError(f"mask label {label!r} (--mask-label / mask_label): not a structure name radagent knows"
                        + (f"; did you mean {', '.join(repr(x) for x in sugg)}?" if sugg else "")
                        + " Names are TotalSegmentator / AbdomenAtlas names and their aliases (perception/registry.py),"
                          " e.g. liver, pancreas, liver_lesion, pancreatic_lesion, lung_nodule, gtv")
    return name


def read_class_map(path: str | Path | None) -> dict[int, str]:
    """Class map JSON: {"1": "liver", ...} or {"liver": 1, ...}. None -> TotalSegmentator `total`."""
    if path is None:
        return registry.totalseg_class_maps()["total"]
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError as e:
        raise MaskError(f"{p}: class map not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MaskError(f"{p}: class map is not valid JSON ({e})") from e
    if isinstance(data, dict) and data and all(isinstance(v, int) for v in data.values()):
        data = {str(v): k for k, v in data.items()}
    if isinstance(data, dict) and set(data) >= {"total"} and isinstance(data["total"], dict):
        data = data["total"]
    try:
        out = {int(k): str(v) for k, v in data.items()}
    except (ValueError, AttributeError) as e:
        raise MaskError(f"{p}: expected a class map {{label id: structure name}}, found {str(data)[:200]}") from e
    out.pop(0, None)
    return out


def _register(ls: LabelSet, raw_name: str, mask_arr_or_mask, source: str) -> None:
    name = registry.canonical_name(raw_name)
    if registry.classify(name) is None:
        sugg = registry.did_you_mean(name)
        ls.unknown[raw_name] = sugg
        ls.ignore(raw_name, source, "unknown structure name (kept, not interpreted)", sugg)
    mask = mask_arr_or_mask if isinstance(mask_arr_or_mask, Mask) else Mask.from_dense(name, mask_arr_or_mask, source)
    if mask.name != name:
        mask = Mask(name, mask.shape, mask.bbox, mask.data, source)
    ls.add(mask)


def _binary_or_refuse(arr: np.ndarray, path: Path, what: str) -> None:
    vals = label_values(arr)
    if len(vals) > 1:
        raise MaskError(f"{path}: expected a binary mask ({what}: values 0 and one label), found {len(vals)} label "
                        f"values ({_fmt_values(vals)}). A multilabel map needs a class map (--class-map JSON "
                        "{\"1\": \"liver\", ...}; API and manifest: class_map) or a TotalSegmentator multilabel file "
                        "name (segmentations.nii.gz, <task>.nii.gz such as total.nii.gz, *_seg.nii.gz)")


def load_mask_folder(folder: Path, ct: CTVolume, tol_mm: float = 0.01) -> LabelSet:
    if (folder / "segmentations").is_dir():  # AbdomenAtlas case folder
        folder = folder / "segmentations"
    from .mask_formats import is_nrrd

    files = sorted(p for p in folder.iterdir() if (is_nifti(p) or is_nrrd(p)) and not p.is_dir())
    for p in files:  # a FIFO, device or dangling link named like a mask is refused, never skipped
        try:
            check_regular(p, "mask")
        except CTLoadError as e:
            raise MaskError(str(e)) from e
    if not files:
        raise MaskError(f"{folder}: expected binary NIfTI or NRRD masks (*.nii.gz / *.nii / *.nrrd), found none")
    ls = LabelSet(ct.shape)
    for p in files:
        arr, note = _load_mask_array(p, ct, tol_mm)
        # values are counted inside the structure's box only (zeros outside): one pass less over the grid
        bb = bbox_of(arr)
        sub = arr[to_slices(bb)] if bb is not None else arr[:0, :0, :0]
        _binary_or_refuse(sub, p, "one file per structure in a folder of masks")
        if note:
            ls.warnings.append(note)
        name = nifti_stem(p)
        mask = Mask(name, tuple(arr.shape), None, None, str(p)) if bb is None else \
            Mask(name, tuple(arr.shape), bb, np.ascontiguousarray(sub != 0), str(p))  # = Mask.from_dense(name, arr)
        _register(ls, name, mask, str(p))
    return ls


def load_multilabel(path: Path, ct: CTVolume, class_map: dict[int, str], tol_mm: float = 0.01,
                    arr: np.ndarray | None = None, note: str | None = None) -> LabelSet:
    """A multilabel map read with ``class_map``; labels present but absent from the map are recorded
    in ``ignored`` (and warned), labels of the map with no voxels are "absent" masks."""
    if arr is None:
        arr, note = _load_mask_array(path, ct, tol_mm)
    ls = LabelSet(ct.shape)
    if note:
        ls.warnings.append(note)
    for lab, sl in enumerate(label_bboxes(arr), start=1):
        if sl is None:
            continue
        if lab not in class_map:
            ls.warnings.append(f"{path.name}: label {lab} is not in the class map; ignored")
            ls.ignore(f"label {lab}", f"{path}#{lab}", "label id not in the class map")
            continue
        data = arr[sl] == lab
        bb = tuple((s.start, s.stop) for s in sl)
        _register(ls, class_map[lab], Mask(class_map[lab], ct.shape, bb, data, f"{path}#{lab}"), f"{path}#{lab}")
    # labels of the class map with no voxels are "absent" (the segmenter looked and found none)
    for lab, raw in class_map.items():
        name = registry.canonical_name(raw)
        if name not in ls.masks:
            ls.masks[name] = Mask(name, ct.shape, None, None, f"{path}#{lab}")
    return ls


def _refuse_ignored(ls: LabelSet, where: Path) -> None:
    if ls.ignored:
        items = []
        for x in ls.ignored:
            dym = x.get("did_you_mean") or []
            items.append(f"{x['reason'].split(' (')[0]} {x['name']!r} ({x['source']})"
                         + (f"; did you mean {', '.join(repr(v) for v in dym)}?" if dym else ""))
        raise MaskError(f"{where}: --strict-masks: {len(items)} mask(s) given but not interpreted: " + "; ".join(items)
                        + f". To use a mask, {HOW_TO_NAME}")


def load_masks(path: str | Path, ct: CTVolume, class_map: str | Path | None = None, tol_mm: float = 0.01,
               *, mask_label: str | None = None, strict: bool = False) -> LabelSet:
    """Masks from a folder of per-structure NIfTI files, or one NIfTI file: a multilabel map (with
    ``class_map``, or named like TotalSegmentator's multilabel output and holding several labels) or
    one binary mask named by ``mask_label`` or by its file name. See the module docstring for the
    rules; ``strict`` refuses any mask that would be ignored (unknown name, label not in the map)."""
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: masks not found (expected a folder of NIfTI masks or a multilabel NIfTI)")
    label = check_mask_label(mask_label) if mask_label is not None else None
    if p.is_dir():
        if label is not None:
            raise MaskError(f"{p}: --mask-label {mask_label!r} names the structure of one mask file, but the masks are "
                            "a folder (its files are named by structure)")
        ls = load_mask_folder(p, ct, tol_mm)
    else:
        ls = _load_mask_file(p, ct, class_map, tol_mm, label, mask_label)
    if strict:
        _refuse_ignored(ls, p)
    return ls


def _load_mask_file(p: Path, ct: CTVolume, class_map: str | Path | None, tol_mm: float, label: str | None,
                    given_label: str | None) -> LabelSet:
    from .mask_formats import is_dicom_file, is_nrrd, load_dicom_masks, nrrd_segment_map

    if not is_nifti(p) and not is_nrrd(p):
        try:
            check_regular(p, "mask")  # a FIFO or device is refused before it is opened (it could block)
        except CTLoadError as e:
            raise MaskError(str(e)) from e
        if is_dicom_file(p):
            if class_map is not None:
                raise MaskError(f"{p}: a class map was given, but a DICOM SEG / RTSTRUCT names its own segments")
            return load_dicom_masks(p, ct, tol_mm, label)
        raise MaskError(f"{p}: expected a mask file (.nii/.nii.gz, .nrrd/.seg.nrrd, a DICOM SEG or RTSTRUCT) or a folder "
                        f"of them, found {p.suffix!r}")
    if label is not None and class_map is not None:
        raise MaskError(f"{p}: both --mask-label {given_label!r} (one binary structure) and a class map (a multilabel "
                        "map) were given; give one")
    cmap = read_class_map(class_map) if class_map is not None else None  # a bad class map fails before the mask is read
    if cmap is None and label is None and is_nrrd(p):  # a 3D Slicer segmentation names its labels in its header
        import nrrd

        try:
            cmap = nrrd_segment_map(nrrd.read_header(str(p)), p)
        except (nrrd.NRRDError, OSError, ValueError) as e:
            raise MaskError(f"{p}: expected a readable NRRD header, found {e}") from e
    arr, note = _load_mask_array(p, ct, tol_mm)
    if cmap is not None:  # the boxes of load_multilabel say which labels are present: no separate count
        return load_multilabel(p, ct, cmap, tol_mm, arr, note)
    vals = label_values(arr)
    stem = nifti_stem(p)
    task = multilabel_task(p) if label is None else None
    if task is not None and len(vals) > 1:
        tmap = registry.totalseg_class_maps()[task]
        foreign = [v for v in vals if v not in tmap]
        if foreign:
            raise MaskError(f"{p}: named like TotalSegmentator's {task!r} multilabel output, but labels "
                            f"{_fmt_values(foreign)} are not ids of that task (1-{max(tmap)}): its values and the class "
                            "map do not agree. Pass the class map that wrote it (--class-map JSON {\"1\": \"liver\", ...})")
        return load_multilabel(p, ct, tmap, tol_mm, arr, note)
    name = label if label is not None else registry.canonical_name(stem)
    if label is None and registry.classify(name) is None:
        sugg = registry.did_you_mean(name)
        multi = (f"; it holds {len(vals)} label values ({_fmt_values(vals)}): for a multilabel map pass --class-map"
                 if len(vals) > 1 else "")
        one = " (a file named like a multilabel map that holds a single label is read as one binary mask)" \
            if task is not None and len(vals) <= 1 else ""
        raise MaskError(f"{p}: expected a mask named after the structure it holds, found the name {stem!r}, which is "
                        "no structure name radagent knows" + (f" (did you mean {', '.join(repr(x) for x in sugg)}?)"
                                                               if sugg else "") + one + multi + f". To use it, {HOW_TO_NAME}")
    _binary_or_refuse(arr, p, f"one structure, {name!r}")
    ls = LabelSet(ct.shape)
    if note:
        ls.warnings.append(note)
    mask = Mask.from_dense(name, arr, str(p))
    ls.add(mask)
    return ls
