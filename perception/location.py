"""Where a lesion is: host organ, sub-segments (Couinaud, pancreas head/body/tail, lung lobe),
kidney side and pole, adjacent organs. Pure functions on masks and the affine."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .mask import BBox, Mask, expand, intersect
from .measure import world, section
from .schema import SliceRef

SEGMENT_FILL_MARGIN_MM = 10.0


def margin_voxels(mm: float, spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(int(np.ceil(mm / s)) + 1 for s in spacing)  # type: ignore[return-value]


def near(a: BBox, b: BBox, margin: tuple[int, int, int]) -> bool:
    return all(a0 - m < b1 and b0 < a1 + m for (a0, a1), (b0, b1), m in zip(a, b, margin))


def segment_shares(lesion: Mask, segments: dict[str, Mask], spacing, fill_margin_mm: float = SEGMENT_FILL_MARGIN_MM
                   ) -> list[tuple[str, float, str]]:
    """Fraction of the lesion in each sub-segment mask, largest first: (name, fraction, source).

    Sub-segment masks often leave the tumour out (the model segments parenchyma). Lesion voxels
    outside every sub-segment are assigned to the nearest sub-segment within ``fill_margin_mm``
    (source "computed"); voxels with no sub-segment in reach stay unassigned.
    """
    names = [n for n, m in segments.items() if not m.empty]
    if not names or lesion.empty:
        return []
    box = expand(lesion.bbox, margin_voxels(fill_margin_mm, spacing), lesion.shape)
    lab = np.zeros(tuple(b - a for a, b in box), dtype=np.int16)
    for idx, n in enumerate(names, start=1):
        lab[segments[n].crop(box)] = idx
    les = lesion.crop(box)
    total = int(les.sum())
    direct = np.bincount(lab[les], minlength=len(names) + 1)
    counts = direct.astype(np.float64)
    filled = np.zeros_like(counts)
    uncovered = les & (lab == 0)
    if uncovered.any() and (lab > 0).any():
        dist, ind = ndimage.distance_transform_edt(lab == 0, sampling=spacing, return_indices=True)
        ok = uncovered & (dist <= fill_margin_mm)
        near_lab = lab[tuple(i[ok] for i in ind)]
        filled = np.bincount(near_lab, minlength=len(names) + 1).astype(np.float64)
        counts = counts + filled
    out = []
    for idx, n in enumerate(names, start=1):
        if counts[idx] > 0:
            src = "computed" if (segments[n].source.startswith("computed") or filled[idx] > direct[idx]) else "mask"
            out.append((n, float(counts[idx] / total), src))
    out.sort(key=lambda t: -t[1])
    return out


def derive_pancreas_segments(pancreas: Mask, smv: Mask | None, sma: Mask | None, aorta: Mask | None,
                             affine: np.ndarray, axial: int) -> dict[str, Mask]:
    """Pancreas head/body/tail from the vessels when no sub-segment masks are given.

    Head: right of the left border of the SMV (SMA when no SMV mask); body: between that border
    and the left border of the aorta; tail: left of the aortic left border. Borders are the median
    over axial slices (within the pancreas' axial range) of the vessel's leftmost world x (RAS:
    smaller x = more to the patient's left).
    """
    ref = smv if smv is not None and not smv.empty else sma
    if pancreas.empty or ref is None or ref.empty or aorta is None or aorta.empty:
        return {}
    ref_name = "SMV" if ref is smv else "SMA"
    lo, hi = pancreas.bbox[axial]

    def left_border(v: Mask) -> float | None:
        xs = []
        for k in range(max(lo, v.bbox[axial][0]), min(hi, v.bbox[axial][1])):
            sl = section(v.data, k - v.bbox[axial][0], axial)
            if not sl.any():
                continue
            idx = np.argwhere(sl).astype(np.float64)
            ijk = np.zeros((len(idx), 3))
            inplane = [a for a in range(3) if a != axial]
            ijk[:, inplane[0]] = idx[:, 0] + v.bbox[inplane[0]][0]
            ijk[:, inplane[1]] = idx[:, 1] + v.bbox[inplane[1]][0]
            ijk[:, axial] = k
            xs.append(world(ijk, affine)[:, 0].min())
        return float(np.median(xs)) if xs else None

    x_ref, x_ao = left_border(ref), left_border(aorta)
    if x_ref is None or x_ao is None:
        return {}
    idx = np.argwhere(pancreas.data).astype(np.float64) + np.array([a for a, _ in pancreas.bbox])
    x = world(idx, affine)[:, 0]
    parts = {"pancreas_head": x > x_ref, "pancreas_body": (x <= x_ref) & (x > x_ao), "pancreas_tail": x <= min(x_ao, x_ref)}
    out = {}
    src = f"computed from {ref_name} left border (x={x_ref:.1f} mm) and aortic left border (x={x_ao:.1f} mm)"
    for name, sel in parts.items():
        dense = np.zeros(pancreas.data.shape, dtype=bool)
        pi = (idx[sel] - np.array([a for a, _ in pancreas.bbox])).astype(np.int64)
        dense[tuple(pi.T)] = True
        m = Mask.from_dense(name, dense, "computed")
        if not m.empty:
            bb = tuple((a + o, b + o) for (a, b), (o, _) in zip(m.bbox, pancreas.bbox))
            m = Mask(name, pancreas.shape, bb, m.data, "computed: " + src)
        out[name] = m
    return out


def kidney_pole(lesion_centroid_vox: np.ndarray, kidney: Mask, affine: np.ndarray) -> str:
    """Upper / interpolar / lower third of the kidney's superior-inferior extent (world S)."""
    off = np.array([a for a, _ in kidney.bbox], dtype=np.float64)
    srow = affine[2, :3]
    if np.count_nonzero(np.abs(srow) > 1e-9) == 1:  # S depends on one voxel axis: its occupied range suffices
        ax = int(np.flatnonzero(np.abs(srow) > 1e-9)[0])
        occ = np.flatnonzero(kidney.data.any(axis=tuple(a for a in range(3) if a != ax))) + off[ax]
        s = srow[ax] * occ + affine[2, 3]
    else:
        s = world(np.argwhere(kidney.data).astype(np.float64) + off, affine)[:, 2]
    lo, hi = float(s.min()), float(s.max())
    c = float(world(lesion_centroid_vox[None], affine)[0, 2])
    frac = (c - lo) / (hi - lo) if hi > lo else 0.5
    return "upper" if frac > 2 / 3 else ("lower" if frac < 1 / 3 else "interpolar")


def adjacent_structures(lesion: Mask, candidates: dict[str, Mask], spacing, adjacency_mm: float) -> list[str]:
    """Structures with any voxel within adjacency_mm of the lesion, nearest first."""
    box = expand(lesion.bbox, margin_voxels(adjacency_mm, spacing), lesion.shape)
    todo = {n: m for n, m in candidates.items() if not m.empty and intersect(m.bbox, box) is not None}
    if not todo:
        return []
    dist = ndimage.distance_transform_edt(~lesion.crop(box), sampling=spacing)
    out = []
    for n, m in todo.items():
        c = m.crop(box)
        if c.any():
            d = float(dist[c].min())
            if d <= adjacency_mm:
                out.append((d, n))
    return [n for _, n in sorted(out)]


def slice_ref(index: int, affine: np.ndarray, shape: tuple[int, int, int], axial: int, source_format: str,
              slices: list[dict] | None = None, with_uid: bool = True) -> SliceRef:
    """The axial slice ``index`` (0-based along ``axial``) as a radiologist opens it.

    ``table_position_mm``: world S (RAS z, mm; equal to DICOM LPS z) of the slice centre through the affine.
    NIfTI: ``image_number`` = index + 1 (file order). DICOM, when the axial axis is the stacking axis of the
    series: ``instance_number`` and ``sop_instance_uid`` of that slice (``ct.meta["slices"]``, sorted order);
    ``image_number`` = its InstanceNumber (an enhanced multi-frame file: the 1-based frame number), else
    index + 1. A reformatted axial plane of a non-axial series has no DICOM image: index + 1 only.
    """
    centre = np.array([(n - 1) / 2.0 for n in shape], dtype=np.float64)
    centre[axial] = index
    z = float(world(centre[None], affine)[0, 2])
    image_number, inst, uid = index + 1, None, None
    if source_format == "dicom" and slices and axial == 2 and len(slices) == shape[2]:
        s = slices[index]
        inst = s.get("instance_number")
        uid = s.get("sop_instance_uid") if with_uid else None
        if s.get("frame") is not None:
            image_number = int(s["frame"])
        elif inst is not None and inst >= 1:
            image_number = int(inst)
    return SliceRef(index=int(index), image_number=int(image_number), table_position_mm=round(z, 3),
                    sop_instance_uid=uid, instance_number=inst)
