"""LabelSet: the named masks of one CT, from a folder of binary masks or a multilabel NIfTI.

Mask geometry is checked against the CT before anything is measured. A mask stored on the
same voxel grid in another axis order (e.g. LAS vs LPS) is reoriented losslessly; anything
else that differs in shape or affine is refused, printing both geometries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt
from scipy import ndimage

from . import registry
from .errors import GeometryMismatchError, MaskError, CTLoadError
from .io import is_nifti, raw_data, read_nifti
from .mask import Mask, bbox_of, to_slices
from .volume import CTVolume, axcodes


@dataclass
class LabelSet:
    """Named masks on one CT grid, with their provenance."""

    shape: tuple[int, int, int]
    masks: dict[str, Mask] = field(default_factory=dict)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # raw name -> did-you-mean
    warnings: list[str] = field(default_factory=list)

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
    for m in present:
        data |= m.crop(bb)
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


def _load_mask_array(path: Path, ct: CTVolume, tol_mm: float) -> tuple[np.ndarray, str | None]:
    try:
        img = read_nifti(path, "mask")
    except CTLoadError as e:
        raise MaskError(str(e)) from e
    arr = raw_data(img)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise MaskError(f"{path}: expected a label mask, found NaN/inf values")
        arr = np.rint(arr).astype(np.int32)
    return align_to_ct(arr, img.affine, ct, path, tol_mm)


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
    if 0 in out:
        del out[0]
    return out


def _register(ls: LabelSet, raw_name: str, mask_arr_or_mask, source: str) -> None:
    name = registry.canonical_name(raw_name)
    if registry.classify(name) is None:
        ls.unknown[raw_name] = registry.did_you_mean(name)
    mask = mask_arr_or_mask if isinstance(mask_arr_or_mask, Mask) else Mask.from_dense(name, mask_arr_or_mask, source)
    if mask.name != name:
        mask = Mask(name, mask.shape, mask.bbox, mask.data, source)
    ls.add(mask)


def load_mask_folder(folder: Path, ct: CTVolume, tol_mm: float = 0.01) -> LabelSet:
    if (folder / "segmentations").is_dir():  # AbdomenAtlas case folder
        folder = folder / "segmentations"
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_nifti(p))
    if not files:
        raise MaskError(f"{folder}: expected binary NIfTI masks (*.nii.gz / *.nii), found none")
    ls = LabelSet(ct.shape)
    for p in files:
        stem = p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem
        arr, note = _load_mask_array(p, ct, tol_mm)
        if note:
            ls.warnings.append(note)
        _register(ls, stem, arr, str(p))
    return ls


def load_multilabel(path: Path, ct: CTVolume, class_map: dict[int, str], tol_mm: float = 0.01) -> LabelSet:
    arr, note = _load_mask_array(path, ct, tol_mm)
    ls = LabelSet(ct.shape)
    if note:
        ls.warnings.append(note)
    if arr.dtype.kind not in "iu":
        arr = arr.astype(np.int32)
    if arr.min() < 0:
        raise MaskError(f"{path}: expected non-negative label ids, found minimum {int(arr.min())}")
    objs = ndimage.find_objects(arr)
    for lab, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        if lab not in class_map:
            ls.warnings.append(f"{path.name}: label {lab} is not in the class map; ignored")
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


def load_masks(path: str | Path, ct: CTVolume, class_map: str | Path | None = None, tol_mm: float = 0.01) -> LabelSet:
    """Masks from a folder of per-structure NIfTI files, or one multilabel / single-structure NIfTI."""
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: masks not found (expected a folder of NIfTI masks or a multilabel NIfTI)")
    if p.is_dir():
        return load_mask_folder(p, ct, tol_mm)
    if not is_nifti(p):
        raise MaskError(f"{p}: expected a .nii/.nii.gz mask file or a folder of them, found {p.suffix!r}")
    stem = registry.canonical_name(p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem)
    if class_map is None and registry.classify(stem) is not None:
        # a single binary structure file named after its structure (e.g. liver_lesion.nii.gz)
        arr, note = _load_mask_array(p, ct, tol_mm)
        if set(np.unique(arr[::2, ::2, ::2]).tolist()) <= {0, 1}:
            ls = LabelSet(ct.shape)
            if note:
                ls.warnings.append(note)
            _register(ls, stem, arr, str(p))
            return ls
    return load_multilabel(p, ct, read_class_map(class_map), tol_mm)
