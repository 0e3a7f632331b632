"""build_findings: CT + LabelSet -> Findings. The one place that orchestrates the measurements."""

from __future__ import annotations

from dataclasses import dataclass, asdict

import cc3d
import numpy as np
from scipy import ndimage

from . import __version__, registry
from .characterize import (HostRegion, composition, fatty_reason, host_region, implausible_reason, lung_side_from_midline,
                           nodule_type, plausibility, ratio_reason)
from .coverage import ignored_masks, lesion_provenance, lesion_search, segmentation_block
from .location import (adjacent_structures, derive_pancreas_segments, kidney_pole, margin_voxels, near, segment_shares,
                       slice_ref)
from .mask import Mask, intersect
from .masks import LabelSet, merge
from .measure import axial_diameters, feret_3d, hu_stats, max_area_index, world, section
from .schema import (Attenuation, Check, ContrastPhase, Findings, Flag, Lesion, MaskInfo, MeasurementSettings,
                     Organ, SegmentShare, Status, Study)
from .staging import lesion_hints, study_hints
from .vessels import vessel_contact
from .volume import CTVolume


@dataclass(frozen=True)
class Settings:
    """Choices the measurement definitions leave open (documented in README 'Measurement definitions')."""

    min_lesion_volume_mm3: float = 10.0  # components smaller than this are dropped (counted, not reported)
    min_lesion_voxels: int = 2
    attenuation_margin_hu: float = 10.0  # |lesion - host| <= margin -> iso
    contact_tolerance_mm: float = 2.0  # vessel wall within this distance of tumour = contact
    adjacency_mm: float = 3.0  # organ within this distance of the lesion = adjacent
    segment_min_fraction: float = 0.10  # sub-segments holding > 10 % are listed
    geometry_tolerance_mm: float = 0.01  # mask vs CT affine tolerance
    vessel_search_mm: float = 20.0  # vessels whose box is within this distance are assessed
    sop_instance_uids: bool = True  # DICOM input: key slices carry the SOP Instance UID (an instance identifier)

    def schema(self) -> MeasurementSettings:
        d = asdict(self)
        d.pop("vessel_search_mm")
        d.pop("sop_instance_uids")
        return MeasurementSettings(**d)


ORGAN_ORDER = ["liver", "gallbladder", "pancreas", "spleen", "adrenal_gland_right", "adrenal_gland_left",
               "kidney_right", "kidney_left", "stomach", "duodenum", "small_bowel", "colon", "rectum",
               "esophagus", "urinary_bladder", "prostate", "lung_right", "lung_left", "lung", "heart"]


CORE_ORGANS = {"liver", "gallbladder", "pancreas", "spleen", "kidney_right", "kidney_left",
               "adrenal_gland_right", "adrenal_gland_left", "stomach"}


def _order(name: str) -> tuple[int, str]:
    return (ORGAN_ORDER.index(name) if name in ORGAN_ORDER else len(ORGAN_ORDER), name)


PHASE_SAMPLE_MM = 5.0  # vessel HU for the phase: axial sections every 5 mm


def _eroded_median(ct: CTVolume, m: Mask | None) -> float | None:
    """Median HU of the vessel lumen: each sampled axial section eroded by one pixel in-plane
    (partial volume at the wall excluded); the whole mask when erosion leaves < 10 voxels."""
    if m is None:
        return None
    ax = ct.axial_axis
    step = max(1, int(round(PHASE_SAMPLE_MM / ct.spacing[ax])))
    hu = ct.hu[tuple(slice(a, b) for a, b in m.bbox)]
    vals = []
    for k in range(0, m.data.shape[ax], step):
        sec = section(m.data, k, ax)
        core = ndimage.binary_erosion(sec)
        if core.any():
            vals.append(section(hu, k, ax)[core])
    v = np.concatenate(vals) if vals else np.zeros(0)
    if v.size < 10:
        v = hu[m.data]
    return float(np.median(v)) if v.size else None


def estimate_phase(ct: CTVolume, ls: LabelSet) -> ContrastPhase:
    """Contrast phase from the header when it says, else from aorta and portal-vein HU.

    Rules (HU = median in the eroded mask): aorta < 80 -> non_contrast; aorta >= 150 and
    aorta - PV > 50 -> arterial; PV >= 130 and aorta - PV <= 50 -> portal_venous;
    80 <= aorta < 150 and |aorta - PV| <= 30 -> delayed; else contrast given, phase indeterminate.
    """
    aorta = _eroded_median(ct, ls.get("aorta"))
    pv_mask = ls.get("portal_vein") or ls.get("portal_vein_and_splenic_vein")
    pv = _eroded_median(ct, pv_mask)
    desc = (ct.meta.get("series_description") or "").lower()
    for word, phase in (("arterial", "arterial"), ("portal", "portal_venous"), ("venous", "portal_venous"),
                        ("delay", "delayed"), ("non-contrast", "non_contrast"), ("noncontrast", "non_contrast"),
                        ("native", "non_contrast"), ("unenhanced", "non_contrast")):
        if word in desc:
            return ContrastPhase(phase=phase, source="header", aorta_hu=aorta, portal_vein_hu=pv,
                                 rule=f"SeriesDescription {ct.meta.get('series_description')!r} contains {word!r}")
    if aorta is None:
        if ct.meta.get("contrast_agent"):
            return ContrastPhase(phase="contrast_unspecified", source="header", aorta_hu=None, portal_vein_hu=pv,
                                 rule=f"ContrastBolusAgent {ct.meta['contrast_agent']!r}; no aorta mask to estimate the phase")
        return ContrastPhase(phase="unknown", source="unknown", aorta_hu=None, portal_vein_hu=pv,
                             rule="no aorta mask and no phase in the header")
    if aorta < 80 and (pv is None or pv < 80):
        return ContrastPhase(phase="non_contrast", source="estimated", aorta_hu=aorta, portal_vein_hu=pv, rule=f"aorta {aorta:.0f} HU < 80")
    if pv is None:
        if aorta >= 250:
            return ContrastPhase(phase="arterial", source="estimated", aorta_hu=aorta, portal_vein_hu=None, rule=f"aorta {aorta:.0f} HU >= 250, no portal vein mask")
        return ContrastPhase(phase="contrast_unspecified", source="estimated", aorta_hu=aorta, portal_vein_hu=None,
                             rule=f"aorta {aorta:.0f} HU >= 80 (contrast given); no portal vein mask to tell the phase")
    if aorta >= 150 and aorta - pv > 50:
        return ContrastPhase(phase="arterial", source="estimated", aorta_hu=aorta, portal_vein_hu=pv, rule=f"aorta {aorta:.0f} HU >= 150 and aorta - PV {aorta - pv:.0f} > 50")
    if pv >= 130 and aorta - pv <= 50:
        return ContrastPhase(phase="portal_venous", source="estimated", aorta_hu=aorta, portal_vein_hu=pv, rule=f"PV {pv:.0f} HU >= 130 and aorta - PV {aorta - pv:.0f} <= 50")
    if 80 <= aorta < 150 and abs(aorta - pv) <= 30:
        return ContrastPhase(phase="delayed", source="estimated", aorta_hu=aorta, portal_vein_hu=pv, rule=f"aorta {aorta:.0f} HU in 80-150 and |aorta - PV| {abs(aorta - pv):.0f} <= 30")
    return ContrastPhase(phase="contrast_unspecified", source="estimated", aorta_hu=aorta, portal_vein_hu=pv,
                         rule=f"aorta {aorta:.0f} HU, PV {pv:.0f} HU: enhanced, no phase rule matched")


@dataclass
class _Component:
    mask: Mask
    source_mask: str
    label: int
    kind: str
    family: str | None


def _components(name: str, m: Mask, kind: str, family: str | None, s: Settings, voxel_mm3: float) -> tuple[list[_Component], int]:
    labels = cc3d.connected_components(m.data, connectivity=26)
    stats = cc3d.statistics(labels)
    out, dropped = [], 0
    min_vox = max(s.min_lesion_voxels, int(np.ceil(s.min_lesion_volume_mm3 / voxel_mm3)))
    for lab in range(1, len(stats["voxel_counts"])):
        n = int(stats["voxel_counts"][lab])
        if n == 0:
            continue
        if n < min_vox:
            dropped += 1
            continue
        sl = stats["bounding_boxes"][lab]
        data = labels[sl] == lab
        bb = tuple((s0.start + o, s0.stop + o) for s0, (o, _) in zip(sl, m.bbox))
        out.append(_Component(Mask(name, m.shape, bb, data, m.source), name, lab, kind, family))
    return out, dropped


def _without_lesions(data: np.ndarray, box, lesions: list[Mask]) -> np.ndarray:
    """``data`` (a bool array over ``box``, modified in place) minus every lesion, box by box."""
    for les in lesions:
        inter = intersect(les.bbox, box)
        if inter is not None:
            data[tuple(slice(a - o, b - o) for (a, b), (o, _) in zip(inter, box))] &= ~les.crop(inter)
    return data


def _host_mask(ls: LabelSet, organ: str) -> Mask | None:
    m = ls.get(organ)
    if m is not None:
        return m
    parts = [sm for n, sm in ls.masks.items() if not sm.empty and registry.SUBSEGMENTS.get(n) == registry.organ_family(organ)
             and (organ not in ("lung_left", "lung_right") or n.endswith(organ.split("_")[1]))]
    return merge(organ, parts) if parts else None


def _assign_organ(comp: _Component, organs: dict[str, Mask]) -> str | None:
    fam = comp.family
    if fam in organs:
        return fam
    cands = {n: m for n, m in organs.items() if fam is None or registry.organ_family(n) == fam}
    best, best_n = None, 0
    for n, m in cands.items():
        k = comp.mask.overlap_count(m)
        if k > best_n:
            best, best_n = n, k
    if best is None and fam is not None and cands:
        # no overlap: the nearest candidate of the family (e.g. exophytic kidney lesion)
        c = np.array([(a + b) / 2 for a, b in comp.mask.bbox])
        best = min(cands, key=lambda n: np.linalg.norm(c - np.array([(a + b) / 2 for a, b in cands[n].bbox])))
    if best is None and fam is not None and fam in registry.ORGANS:
        return fam
    return best


def _flag(name, value, key, positive, reason=None) -> Flag:
    t = registry.THRESHOLDS[key]
    thr = t["value"] if not isinstance(t["value"], list) else t["value"][0]
    if value is None or reason:
        return Flag(name=name, status="not_assessed", value=value, unit=t["unit"], threshold=thr, rule=t["rule"],
                    source=t["source"], reason=reason or "value not measured")
    return Flag(name=name, status="positive" if positive(value, thr) else "negative", value=round(value, 3), unit=t["unit"],
                threshold=thr, rule=t["rule"], source=t["source"])


def _detection(m: Mask, detections) -> dict:
    """A model lesion's detection score and type probabilities: those of the model instance covering most of its
    voxels (``LabelSet.detections`` from backends that give them, e.g. UniT); {} when none does."""
    for inst, info in detections or ():
        sub = inst[tuple(slice(a, b) for a, b in m.bbox)][m.data]
        ids = np.bincount(sub[sub > 0].astype(np.int64)) if sub.size else np.zeros(0, np.int64)
        if ids.size and ids.max() > 0 and int(ids.argmax()) in info:
            d = info[int(ids.argmax())]
            return {"detection_score": d["score"], "type_probabilities": d["type_probs"]}
    return {}


def build_findings(ct: CTVolume, ls: LabelSet, settings: Settings | None = None) -> Findings:
    """Measure every organ and lesion of ``ls`` on ``ct``."""
    return build_findings_with_masks(ct, ls, settings)[0]


def build_findings_with_masks(ct: CTVolume, ls: LabelSet, settings: Settings | None = None
                              ) -> tuple[Findings, dict[str, Mask]]:
    """Findings plus each lesion's component mask by lesion id (for key images)."""
    s = settings or Settings()
    affine, axial, spacing = ct.affine, ct.axial_axis, ct.spacing
    vox_mm3 = ct.voxel_volume_mm3
    hu = ct.hu
    warnings = list(ct.warnings) + list(ls.warnings)
    for raw, sugg in ls.unknown.items():
        warnings.append(f"unknown mask name {raw!r}" + (f"; did you mean {', '.join(repr(x) for x in sugg)}?" if sugg else "") + " (kept, not interpreted)")

    organs = {n: m for n, m in ls.by_category("organ").items()}
    vessels = {n: m for n, m in ls.by_category("vessel").items() if not m.empty}
    subsegs = {n: m for n, m in ls.by_category("subsegment").items() if not m.empty}
    present_organs = {n: m for n, m in organs.items() if not m.empty}

    # pancreas sub-segments from vessels when no masks were given
    if "pancreas" in present_organs and not any(n.startswith("pancreas_") for n in subsegs):
        derived = derive_pancreas_segments(present_organs["pancreas"], vessels.get("superior_mesenteric_vein"),
                                           vessels.get("superior_mesenteric_artery"), vessels.get("aorta"), affine, axial)
        subsegs.update({n: m for n, m in derived.items() if not m.empty})

    # lesion components
    comps: list[_Component] = []
    dropped = 0
    for name, m in ls.by_category("lesion").items():
        if m.empty:
            continue
        st = registry.classify(name)
        cs, d = _components(name, m, st.lesion_kind or "lesion", st.family, s, vox_mm3)
        comps += cs
        dropped += d
    hosts_for_lesions = dict(present_organs)
    for fam in ("lung",):  # lung lesions live in the lobes: merge them only when a lung lesion exists
        if fam not in hosts_for_lesions and any(c.family in (fam, None) for c in comps):
            h = _host_mask(ls, fam)
            if h is not None:
                hosts_for_lesions[fam] = h
    comp_organ = [_assign_organ(c, hosts_for_lesions) for c in comps]
    lesion_masks_all = [c.mask for c in comps]

    phase = estimate_phase(ct, ls)
    contrast = phase.phase not in ("non_contrast", "unknown")

    # organs
    organ_stats: dict[str, tuple] = {}
    host_info: dict[str, tuple[HostRegion, str | None]] = {}  # organ -> (HU region, implausible reason)
    organ_out: list[Organ] = []
    lesion_union_by_organ: dict[str, list[Mask]] = {}
    for c, o in zip(comps, comp_organ):
        if o:
            lesion_union_by_organ.setdefault(o, []).append(c.mask)
    for name in sorted(organs, key=_order):
        m = organs[name]
        if m.empty:
            if name not in CORE_ORGANS:
                continue  # an empty label of a whole-body model is not news for an organ outside the abdomen
            organ_out.append(Organ(name=name, status=Status.absent, mask=m.source, voxel_count=0, volume_ml=None, mean_hu=None,
                                   median_hu=None, sd_hu=None, touches_edges=[], note="mask present but empty: structure not found"))
            continue
        # organ volume counts its lesions; only lesion parts outside the organ mask need a merge
        outside = [l for l in lesion_union_by_organ.get(name, []) if l.voxel_count > l.overlap_count(m)]
        full = merge(name, [m] + outside) if outside else m
        box = full.bbox
        sl = tuple(slice(a, b) for a, b in box)
        touching = [l for l in lesion_masks_all if intersect(l.bbox, box) is not None]
        host = full.data.copy() if touching else full.data  # box is full.bbox; copied only when lesions are cut out in place
        host = _without_lesions(host, box, touching)
        region = host_region(hu[sl], host, spacing, lesions_removed=bool(touching))
        st = region.stats
        edges = full.touches_edges()
        status = Status.truncated_by_fov if edges else Status.measured
        n_full = full.voxel_count
        vol = n_full * vox_mm3 / 1000.0
        plaus = plausibility(name, st, vol if status == Status.measured else None, vol)
        organ_stats[name] = (st, vol if status == Status.measured else None)
        host_info[name] = (region, implausible_reason(name, plaus))
        organ_out.append(Organ(
            name=name, status=status, mask=m.source, voxel_count=n_full,
            volume_ml=round(vol, 3) if status == Status.measured else None,
            mean_hu=round(st.mean, 2) if st else None, median_hu=round(st.median, 2) if st else None,
            sd_hu=round(st.sd, 2) if st else None, touches_edges=edges, imaged_volume_ml=round(vol, 3),
            hu_region=region.region, plausibility=plaus,
            note=(f"mask reaches the scan edge ({', '.join(edges)}): organ incompletely imaged, volume not measured" if edges else None)))

    # lesions
    vessels_present = set(vessels)
    midline = {}
    for n, mm in ls.masks.items():
        if not mm.empty and (n in registry.LATERALITY_MIDLINE_STRUCTURES or n.startswith("vertebrae_")):
            midline[n] = np.argwhere(mm.data)[::50].astype(np.float64) + np.array([a for a, _ in mm.bbox])
    lesion_rows = []
    for c, organ in zip(comps, comp_organ):
        m = c.mask
        sl = tuple(slice(a, b) for a, b in m.bbox)
        vals = hu[sl][m.data]
        st = hu_stats(vals)
        diam = axial_diameters(m.data, m.bbox, affine, axial)
        feret = feret_3d(m.data, m.bbox, affine)
        idx = np.argwhere(m.data).astype(np.float64) + np.array([a for a, _ in m.bbox])
        cvox = idx.mean(axis=0)
        cmm = world(cvox[None], affine)[0]
        fam = registry.organ_family(organ) if organ else None
        if organ and organ not in host_info and organ in hosts_for_lesions:
            hm = hosts_for_lesions[organ]
            hs = tuple(slice(a, b) for a, b in hm.bbox)
            hv = _without_lesions(hm.data.copy(), hm.bbox, lesion_masks_all)
            host_info[organ] = (host_region(hu[hs], hv, spacing, lesions_removed=True), None)
        region, implausible = host_info.get(organ, (None, None)) if organ else (None, None)
        host_st = region.stats if region else None
        att_reason = None
        if organ is None:
            att_reason = "no host organ: nothing to compare with"
        elif fam == "lung":
            att_reason = "lung lesions are typed by their own attenuation (nodule_type), not compared with aerated lung"
        elif host_st is None:
            att_reason = f"no {organ} HU (no host voxels)"
        else:
            att_reason = implausible or fatty_reason(organ, region)
        if att_reason:
            host_st = None
        diff = st.mean - host_st.mean if host_st else None
        if diff is None:
            att = None
        elif diff < -s.attenuation_margin_hu:
            att = Attenuation.hypo
        elif diff > s.attenuation_margin_hu:
            att = Attenuation.hyper
        else:
            att = Attenuation.iso
        term = None
        if att is not None:
            stem = {"hypoattenuating": "hypo", "isoattenuating": "iso", "hyperattenuating": "hyper"}[att.value]
            term = stem + ("enhancing" if contrast else "attenuating")
        components, comp_rule = composition(fam, vals, st)
        ntype = ntype_rule = None
        if fam == "lung":
            ntype, ntype_rule = nodule_type(hu[sl], m.data, axial, diam.long_axis_mm, ct.slice_thickness_mm)

        fam_segs = {n: sm for n, sm in subsegs.items() if registry.SUBSEGMENTS.get(n) == fam}
        shares = segment_shares(m, fam_segs, spacing) if fam_segs else []
        laterality = pole = lat_rule = None
        if organ and organ.endswith(("_left", "_right")):
            laterality = organ.rsplit("_", 1)[1]
            lat_rule = f"{laterality}: host organ mask {organ}"
        elif fam == "lung" and shares:
            laterality = shares[0][0].rsplit("_", 1)[1]
            lat_rule = f"{laterality}: lobe mask {shares[0][0]} holds {100 * shares[0][1]:.0f} % of the lesion"
        elif fam == "lung":
            laterality, lat_rule = lung_side_from_midline(cvox, midline, affine)
            lat_rule = lat_rule or "side not determined: no lung, lobe or midline-structure mask"
        if fam == "kidney" and organ in present_organs:
            pole = kidney_pole(cvox, present_organs[organ], affine)

        # vessels
        contacts = []
        reach = margin_voxels(s.vessel_search_mm, spacing)
        for vn, vm in sorted(vessels.items()):
            if near(m.bbox, vm.bbox, reach):
                vc = vessel_contact(m, vm, affine, tolerance_mm=s.contact_tolerance_mm)
                if vc is not None:
                    contacts.append(vc)
        renal_overlap = any(m.overlap_count(vm) > 0 for vn, vm in vessels.items() if vn.startswith("renal_vein"))
        adj_cands = {n: om for n, om in present_organs.items() if n != organ and registry.organ_family(n) != fam}
        adjacent = adjacent_structures(m, adj_cands, spacing, s.adjacency_mm)
        thick = ct.slice_thickness_mm
        min_long = max(registry.THRESHOLDS["recist_min_long_axis_mm"]["value"], 2 * thick if thick > 5 else 0)
        measurable = diam.long_axis_mm >= min_long
        rule = f"long axis {diam.long_axis_mm:.1f} mm {'>=' if measurable else '<'} {min_long:.0f} mm" + (
            f" (2x slice thickness {thick:.1f} mm)" if thick > 5 else "")
        size_for_t = feret
        edges = m.touches_edges()
        lesion_rows.append(dict(
            _mask=m, organ=organ, kind=c.kind, mask=c.source_mask, component_label=c.label,
            status=Status.truncated_by_fov if edges else Status.measured, voxel_count=int(m.voxel_count),
            centroid_mm=tuple(round(float(v), 2) for v in cmm), centroid_voxel=tuple(round(float(v), 2) for v in cvox),
            bbox_voxel=m.bbox, volume_ml=round(m.voxel_count * vox_mm3 / 1000.0, 4),
            long_axis_mm=round(diam.long_axis_mm, 2), short_axis_mm=round(diam.short_axis_mm, 2), axial_slice=diam.slice_index,
            long_axis_endpoints_voxel=tuple(tuple(round(v, 2) for v in p) for p in diam.long_endpoints),
            short_axis_endpoints_voxel=tuple(tuple(round(v, 2) for v in p) for p in diam.short_endpoints),
            max_diameter_3d_mm=round(feret, 2), mean_hu=round(st.mean, 2), median_hu=round(st.median, 2), sd_hu=round(st.sd, 2),
            organ_mean_hu=round(host_st.mean, 2) if host_st else None, hu_difference=round(diff, 2) if diff is not None else None,
            attenuation=att, attenuation_term=term, components=components, attenuation_reason=att_reason,
            composition_rule=comp_rule, nodule_type=ntype, nodule_type_rule=ntype_rule, laterality_rule=lat_rule,
            key_slice=slice_ref(diam.slice_index, affine, ct.shape, axial, ct.source_format, ct.meta.get("slices"),
                                with_uid=s.sop_instance_uids),
            max_area_slice=slice_ref(max_area_index(m.data, m.bbox, axial), affine, ct.shape, axial, ct.source_format,
                                     ct.meta.get("slices"), with_uid=s.sop_instance_uids),
            segments=[n for n, f, _ in shares if f > s.segment_min_fraction],
            segment_shares=[SegmentShare(name=n, fraction=round(f, 4), source=src) for n, f, src in shares],
            laterality=laterality, kidney_pole=pole, vessel_contacts=contacts, adjacent_organs=adjacent, touches_edges=edges,
            size_qualifier="lower_bound" if edges else "complete", recist_measurable=measurable, recist_rule=rule,
            staging=lesion_hints(fam, c.kind, size_for_t, contacts, vessels_present, renal_overlap),
        ))
    # where each lesion came from: the model runs a segmentation backend recorded (perception.segment.runs), else the file
    runs = getattr(ls, "model_runs", None)
    sha_cache: dict[str, str | None] = {}
    for r in lesion_rows:
        r["provenance"] = lesion_provenance(r["_mask"].source, runs, sha_cache)
        if r["provenance"].kind == "model":
            r.update(_detection(r["_mask"], getattr(ls, "detections", None)))
    lesion_rows.sort(key=lambda r: (-r["volume_ml"], r["mask"], r["component_label"]))
    lesion_masks = {f"L{i}": r.pop("_mask") for i, r in enumerate(lesion_rows, start=1)}
    lesions = [Lesion(id=f"L{i}", **r) for i, r in enumerate(lesion_rows, start=1)]
    by_organ: dict[str, list[str]] = {}
    for les in lesions:
        if les.organ:
            by_organ.setdefault(les.organ, []).append(les.id)

    # organ flags (need lesions and phase)
    ph = phase.phase
    noncon_reason = None if ph == "non_contrast" else f"requires non-contrast CT (phase: {ph})"
    def mean(n):
        o = next((o for o in organ_out if o.name == n), None)
        return o.mean_hu if o and o.mean_hu is not None else None
    def implausible(n):
        return host_info.get(n, (None, None))[1]

    def ratio(n, d):
        """(value, reason): an HU ratio only from plausible organs whose means lie where a ratio means something."""
        why = implausible(n) or implausible(d) or ratio_reason(n, mean(n), d, mean(d))
        return (None, why) if why else (mean(n) / mean(d), None)

    final_organs = []
    for o in organ_out:
        flags = []
        trunc_reason = "organ incompletely imaged (truncated by the scan edge)" if o.status == Status.truncated_by_fov else None
        bad = implausible(o.name)  # nothing is derived from an implausible organ
        if o.name == "spleen" and o.status != Status.absent:
            flags.append(_flag("splenomegaly", o.volume_ml, "splenomegaly_volume_ml", lambda v, t: v > t, bad or trunc_reason))
        if o.name == "liver" and o.status != Status.absent:
            flags.append(_flag("hepatomegaly", o.volume_ml, "hepatomegaly_volume_ml", lambda v, t: v > t, bad or trunc_reason))
            flags.append(_flag("hepatic_steatosis", o.mean_hu, "liver_steatosis_hu", lambda v, t: v < t, bad or noncon_reason))
            ls_ratio, why = ratio("liver", "spleen")
            flags.append(_flag("liver_spleen_ratio_low", ls_ratio, "liver_spleen_ratio", lambda v, t: v < t,
                               noncon_reason or why))
        if o.name == "pancreas" and o.status != Status.absent:
            ps, why = ratio("pancreas", "spleen")
            flags.append(_flag("pancreatic_steatosis", ps, "pancreatic_steatosis_ps_ratio", lambda v, t: v < t,
                               noncon_reason or why))
        final_organs.append(o.model_copy(update={"flags": flags, "lesion_ids": by_organ.get(o.name, [])}))

    study = Study(
        source=ct.source, source_format=ct.source_format, shape=ct.shape, spacing_mm=tuple(round(v, 5) for v in spacing),
        orientation=ct.orientation, affine=[[round(float(v), 6) for v in row] for row in affine],
        axial_axis=axial, slice_thickness_mm=round(ct.slice_thickness_mm, 4), modality=ct.meta.get("modality") or "CT",
        modality_checks=[Check(**c) for c in ct.meta.get("modality_checks", [])], contrast_phase=phase, warnings=warnings)
    masks = []
    for n, m in sorted(ls.masks.items()):
        st = registry.classify(n)
        masks.append(MaskInfo(name=n, source=m.source, category=st.category if st else "unknown", voxel_count=m.voxel_count))
    findings = Findings(radagent_version=__version__, study=study, organs=final_organs, lesions=lesions,
                        staging=study_hints(), masks=masks, dropped_components=dropped, settings=s.schema(),
                        lesion_search=lesion_search(ls.masks), ignored_masks=ignored_masks(ls),
                        segmentation=segmentation_block(runs))
    return findings, lesion_masks
