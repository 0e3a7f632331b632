"""Sentences about the real-CT test case (tests/cases.py::build_case), true and unsupported, written the way a
radiologist or an LLM writes them, for the claim-checker suite (tests/test_claim_suite.py, issue 13).

Written independently of the checker (reasoning/claims.py, reasoning/grounding.py were not read): every
sentence's truth comes from the case's own construction, i.e. its masks, its painted HU values and the
analytic geometry in ``build_case``'s ``truth`` dict, computed here with numpy/scipy. Nothing is read from
findings.json. Where a value is only known to an interval (a voxelised sphere measures between its
voxel-centre diameter and one voxel more), the sentence says it at the coarsest rounding on which the whole
interval agrees, or is left out. Wrong values in the unsupported sentences are checked to lie far from the
truth, so each sentence is clearly true or clearly unsupported.

The checker was tuned while this suite grew, so the later batches were first run on it before it had seen
them (held-out figures, 2 December 2026): report shorthand (``_shorthand_*``, checker at 7edcd16) true 18/20,
unsupported 23/25; LLM prose and bullets (``_prose_*``, checker at 84648ae) true 11/13, unsupported 15/16;
impression lines (``_impression_*``, checker at 80b3b79) true 10/10, unsupported 11/12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reasoning.knowledge import knowledge

# claim types of issue 13 (the suite must cover them)
KINDS = ("measurement", "location", "attenuation", "vessel", "stage", "count", "comparison", "diagnosis",
         "recommendation", "negative", "phase", "invented", "organ")

# the attenuation rule (reasoning/knowledge.py 'attenuation_margin_hu': +-10 HU); a sentence is written only
# when the truth is far from that margin (iso within 5 HU, hypo/hyper beyond 20 HU)
CLEAR_ISO_HU, CLEAR_OFF_HU = 5.0, 20.0
# 'no contact' is written only for masks at least this far apart (voxel centres; the contact tolerance of the
# measurement settings is 2 mm, one voxel is 3 mm)
CLEAR_GAP_MM = 6.0
NUMBER_WORDS = {8: "Eight"}
LESIONS = ("hypo", "hyper", "iso", "kidney_tumor", "kidney_cyst", "pancreas", "aorta", "ivc")


@dataclass(frozen=True)
class Sentence:
    kind: str  # one of KINDS: what the sentence claims
    text: str
    why: str  # the truth that decides it (shown in failure messages)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"sentence kind {self.kind!r}: expected one of {KINDS}")


@dataclass(frozen=True)
class Facts:
    """What the case is, computed from its masks and construction (not from Findings)."""

    spacing_mm: tuple[float, float, float]
    slice_mm: float
    axial_mm: dict  # lesion -> (voxel-centre axial Feret, that + one voxel): the diameter's interval, mm
    volume_ml: dict  # lesion -> voxel count x voxel volume
    mean_hu: dict
    sd_hu: dict
    host_diff_hu: dict  # lesion mean minus host organ (organ minus every lesion) mean, where the host is one organ
    gap_mm: dict  # (lesion, vessel mask) -> smallest voxel-centre distance, mm
    seg_share: dict  # lesion -> {segment mask: fraction of the lesion}
    components: dict  # lesion -> 26-connected components of its truth mask
    aorta_median_hu: float
    hypo_axes_mm: tuple[float, float]  # analytic RECIST axes of the hypoattenuating liver ellipsoid
    hypo_d3_mm: float
    hypo_analytic_ml: float
    aorta_angle_deg: float
    ivc_angle_deg: float
    kidney_tumor_inside: bool  # the tumour mask lies inside the left kidney mask
    cut_organs: frozenset  # organ masks that reach the scan edge (only partly imaged)
    imaged_ml: dict  # organ -> volume of its imaged part (voxels), mL
    n_slices: int  # axial slices in the CT
    mask_names: frozenset


def _axial_axis(aff) -> int:
    return int(np.argmax(np.abs(np.asarray(aff)[2, :3])))


def _axial_feret_mm(mask, aff) -> float:
    """Longest in-plane distance between voxel centres of one axial slice, over all slices."""
    ax = _axial_axis(aff)
    ijk = np.argwhere(mask)
    xyz = ijk @ np.asarray(aff)[:3, :3].T
    best = 0.0
    for k in np.unique(ijk[:, ax]):
        p = xyz[ijk[:, ax] == k]
        p = p - p.mean(0)
        d = p[:, None, :] - p[None, :, :]
        d[..., 2] = 0.0  # in-plane only (RAS z is the axial direction)
        best = max(best, float(np.sqrt((d ** 2).sum(-1)).max()))
    return best


def _gap_mm(a, b, spacing) -> float:
    return float(ndimage.distance_transform_edt(~b, sampling=spacing)[a].min())


def case_facts(case: dict) -> Facts:
    hu, aff, masks, truth = case["hu"], np.asarray(case["aff"]), case["masks"], case["truth"]
    spacing = tuple(float(s) for s in np.linalg.norm(aff[:3, :3], axis=0))
    inplane = max(s for i, s in enumerate(spacing) if i != _axial_axis(aff))
    vox_ml = float(np.prod(spacing)) / 1000.0
    m = {name: truth[name]["mask"] for name in LESIONS}
    every_lesion = np.logical_or.reduce([m[n] for n in LESIONS]) | masks["liver_lesion"]
    hosts = {"hypo": "liver", "hyper": "liver", "iso": "spleen", "kidney_tumor": "kidney_left",
             "kidney_cyst": "kidney_right", "pancreas": "pancreas"}
    axial, vol, mean, sd, diff = {}, {}, {}, {}, {}
    for n in LESIONS:
        f = _axial_feret_mm(m[n], aff)
        axial[n] = (f, f + inplane)
        vol[n] = float(m[n].sum()) * vox_ml
        mean[n], sd[n] = float(hu[m[n]].mean()), float(hu[m[n]].std())
        if n in hosts:
            diff[n] = mean[n] - float(hu[masks[hosts[n]] & ~every_lesion].mean())
    gap = {(n, v): _gap_mm(m[n], masks[v], spacing) for n in LESIONS
           for v in ("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein")}
    seg = {n: {s: float((m[n] & masks[s]).sum() / m[n].sum()) for s in ("liver_segment_7", "liver_segment_8")}
           for n in ("hypo", "hyper")}
    seg["pancreas"] = {s: float((m["pancreas"] & masks[s]).sum() / m["pancreas"].sum())
                       for s in ("pancreas_head", "pancreas_body", "pancreas_tail")}
    comps = {n: int(ndimage.label(m[n], np.ones((3, 3, 3)))[1]) for n in LESIONS}
    aorta_core = ndimage.binary_erosion(masks["aorta"])
    organs = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas")
    cut = frozenset(o for o in organs for ax in range(3)
                    if np.take(masks[o], 0, axis=ax).any() or np.take(masks[o], -1, axis=ax).any())
    return Facts(
        spacing_mm=spacing, slice_mm=spacing[_axial_axis(aff)], axial_mm=axial, volume_ml=vol, mean_hu=mean,
        sd_hu=sd, host_diff_hu=diff, gap_mm=gap, seg_share=seg, components=comps,
        aorta_median_hu=float(np.median(hu[aorta_core])),
        hypo_axes_mm=(float(truth["hypo"]["long"]), float(truth["hypo"]["short"])),
        hypo_d3_mm=float(truth["hypo"]["d3"]), hypo_analytic_ml=float(truth["hypo"]["analytic_ml"]),
        aorta_angle_deg=float(truth["aorta"]["angle"]), ivc_angle_deg=float(truth["ivc"]["angle"]),
        kidney_tumor_inside=bool(not (m["kidney_tumor"] & ~masks["kidney_left"]).any()),
        cut_organs=cut, imaged_ml={o: float(masks[o].sum()) * vox_ml for o in organs},
        n_slices=int(hu.shape[_axial_axis(aff)]), mask_names=frozenset(masks))


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def about(lo: float, hi: float, steps: tuple[float, ...]) -> float | None:
    """The value at the finest step on which both ends of [lo, hi] round alike; None if no step agrees."""
    for step in steps:
        a, b = _half_up(lo / step), _half_up(hi / step)
        if a == b:
            return a * step
    return None


def cm(lo_mm: float, hi_mm: float) -> str | None:
    v = about(lo_mm / 10.0, hi_mm / 10.0, (0.5, 1.0))
    return None if v is None else (f"{v:.0f}" if v == int(v) else f"{v:.1f}")


def _far(wrong: float, lo: float, hi: float, factor: float = 1.5) -> float:
    """A wrong value for an unsupported sentence: refuse one that is not clearly outside [lo, hi]."""
    if lo / factor <= wrong <= hi * factor:
        raise AssertionError(f"wrong value {wrong} is not clearly outside the truth [{lo:.1f}, {hi:.1f}]")
    return wrong


def _attenuation(diff: float) -> str | None:
    if abs(diff) < CLEAR_ISO_HU:
        return "isoattenuating"
    if diff < -CLEAR_OFF_HU:
        return "hypoattenuating"
    if diff > CLEAR_OFF_HU:
        return "hyperattenuating"
    return None  # too near the 10 HU margin to be said either way


def _segments(shares: dict) -> list[int]:
    """Segment numbers holding > 10 % of the lesion, largest share first."""
    return [int(s.rsplit("_", 1)[1]) for s, f in sorted(shares.items(), key=lambda kv: -kv[1]) if f > 0.10]


def _check_case(f: Facts) -> None:
    """What every sentence below relies on; a failure here is a change of the case, not of the checker."""
    bad = {n: c for n, c in f.components.items() if c != 1}
    assert not bad, f"each synthetic lesion is one 26-connected component; got {bad}"
    assert f.aorta_angle_deg < 180 < f.ivc_angle_deg, (f.aorta_angle_deg, f.ivc_angle_deg)
    assert f.aorta_median_hu < 80, f"non-contrast study expected (aorta median {f.aorta_median_hu:.0f} HU)"
    assert f.seg_share["pancreas"]["pancreas_head"] == 1.0, f.seg_share["pancreas"]
    assert f.kidney_tumor_inside
    # the liver and spleen are cut by the scan, and their imaged parts alone do not reach the enlargement
    # thresholds of reasoning/knowledge.py: their size cannot be assessed
    assert {"liver", "spleen"} <= f.cut_organs, f.cut_organs
    assert f.imaged_ml["spleen"] <= knowledge("splenomegaly_volume_ml").values[0], f.imaged_ml
    assert f.imaged_ml["liver"] <= knowledge("liver_volume_reference_ml").values[1], f.imaged_ml


def _start(f: Facts):
    """Check the case, then an empty sentence list and its ``add(kind, text, why)``."""
    _check_case(f)
    out: list[Sentence] = []
    return out, lambda kind, text, why: out.append(Sentence(kind, text, why))


def true_sentences(f: Facts) -> list[Sentence]:
    out, add = _start(f)
    L, S = f.hypo_axes_mm
    # --- measurement
    add("measurement", f"A hypoattenuating lesion in the liver measures {L / 10:.1f} x {S / 10:.1f} cm.",
        f"analytic RECIST axes {L:.0f} x {S:.0f} mm")
    add("measurement", f"The hypoattenuating liver lesion measures {L:.0f} x {S:.0f} mm in the axial plane.",
        f"analytic RECIST axes {L:.0f} x {S:.0f} mm")
    add("measurement", f"The hypoattenuating liver lesion is {f.hypo_d3_mm / 10:.0f} cm in greatest dimension.",
        f"analytic 3D diameter {f.hypo_d3_mm:.0f} mm")
    ml = about(min(f.hypo_analytic_ml, f.volume_ml["hypo"]), max(f.hypo_analytic_ml, f.volume_ml["hypo"]), (1.0,))
    if ml is not None:
        add("measurement", f"The hypoattenuating liver lesion has a volume of about {ml:.0f} mL.",
            f"analytic {f.hypo_analytic_ml:.2f} mL, {f.volume_ml['hypo']:.2f} mL of voxels")
    for name, text in (("kidney_tumor", "The left renal lesion measures about {} cm."),
                       ("iso", "The splenic lesion measures about {} cm."),
                       ("kidney_cyst", "The right renal cyst measures about {} cm."),
                       ("hyper", "The hyperattenuating liver lesion measures about {} cm.")):
        size = cm(*f.axial_mm[name])
        if size is not None:
            add("measurement", text.format(size), "axial diameter in [{:.1f}, {:.1f}] mm".format(*f.axial_mm[name]))
    for name, text in (("ivc", "The tumor encasing the inferior vena cava measures about {} cm."),
                       ("aorta", "The tumor abutting the aorta measures about {} cm.")):
        size = cm(*f.axial_mm[name])
        if size is not None:
            add("measurement", text.format(size), "axial diameter in [{:.1f}, {:.1f}] mm".format(*f.axial_mm[name]))
    for name, text in (("kidney_tumor", "The left kidney lesion has a volume of about {:.1f} mL."),
                       ("iso", "The splenic lesion has a volume of about {:.1f} mL.")):
        add("measurement", text.format(f.volume_ml[name]), f"{f.volume_ml[name]:.3f} mL of voxels")
    add("measurement", f"The slice thickness is {f.slice_mm:.0f} mm.", f"voxel spacing {f.spacing_mm}")
    add("measurement", "The hypoattenuating liver lesion is measurable by RECIST 1.1.",
        f"long axis {L:.0f} mm >= 10 mm")

    # --- location
    segs = _segments(f.seg_share["hypo"])
    assert segs == [7, 8], f"the hypoattenuating lesion is built across segments 7 and 8; shares {f.seg_share['hypo']}"
    add("location", "The hypoattenuating liver lesion spans segments 7 and 8.", f"shares {f.seg_share['hypo']}")
    if f.seg_share["hypo"]["liver_segment_7"] > 0.6:
        add("location", "The hypoattenuating liver lesion lies mainly in segment 7.", f"shares {f.seg_share['hypo']}")
    if _segments(f.seg_share["hyper"]) == [8]:
        add("location", "The hyperattenuating liver lesion is in segment 8.", f"shares {f.seg_share['hyper']}")
    add("location", "There is a lesion in the spleen.", "spleen_lesion mask")
    add("location", "There is a cyst in the right kidney.", "kidney_cyst_right mask, 5 HU")
    add("location", "The left kidney contains a lesion.", "kidney_lesion mask inside the left kidney")
    add("location", "The pancreatic lesion is located in the head of the pancreas.", "whole lesion in pancreas_head")
    add("location", "A lesion is present in the pancreatic head.", "whole lesion in pancreas_head")

    # --- attenuation (lesion minus host organ, the 10 HU rule, only far from the margin)
    words = {n: _attenuation(d) for n, d in f.host_diff_hu.items()}
    why = {n: f"lesion minus host {d:+.1f} HU" for n, d in f.host_diff_hu.items()}
    if words["iso"] == "isoattenuating":
        add("attenuation", "The splenic lesion is isoattenuating to the spleen.", why["iso"])
    if words["iso"] == "isoattenuating":
        add("attenuation", "An isoattenuating lesion is present in the spleen.", why["iso"])
    if words["hyper"] == "hyperattenuating":
        add("attenuation", "A hyperattenuating lesion is seen in the liver.", why["hyper"])
    if words["hypo"] == "hypoattenuating":
        add("attenuation", "The liver lesion spanning segments 7 and 8 is hypoattenuating.", why["hypo"])
    if words["kidney_tumor"] == "hyperattenuating":
        add("attenuation", "The left renal lesion is hyperattenuating relative to the kidney.", why["kidney_tumor"])
    for name, text in (("hyper", "The hyperattenuating liver lesion has a mean attenuation of about {} HU."),
                       ("kidney_tumor", "The left renal lesion has a mean density of about {} HU."),
                       ("kidney_cyst", "The right renal cyst has a mean attenuation of about {} HU.")):
        add("attenuation", text.format(5 * _half_up(f.mean_hu[name] / 5)), f"mean {f.mean_hu[name]:.1f} HU in the mask")
    for name, text in (("kidney_cyst", "The right renal cyst is of fluid attenuation."),
                       ("hypo", "The hypoattenuating liver lesion has cystic attenuation.")):
        if f.mean_hu[name] < 15 and f.sd_hu[name] <= 15:  # the cystic rule: < 20 HU and SD <= 20
            add("attenuation", text, f"mean {f.mean_hu[name]:.1f} HU, SD {f.sd_hu[name]:.1f} HU")

    # --- vessels (the tumours are built as sectors around the vessel: the angle is exact)
    add("vessel", f"The tumor encases the inferior vena cava (about {f.ivc_angle_deg:.0f} degrees).",
        f"sector of {f.ivc_angle_deg:.0f} deg around the IVC")
    add("vessel", "Tumor contact with the inferior vena cava exceeds 180 degrees.", f"{f.ivc_angle_deg:.0f} deg")
    add("vessel", "A tumor abuts the aorta.", f"sector of {f.aorta_angle_deg:.0f} deg around the aorta")
    add("vessel", "Tumor contact with the aorta is less than 180 degrees.", f"{f.aorta_angle_deg:.0f} deg")
    g = f.gap_mm
    if g[("aorta", "inferior_vena_cava")] >= CLEAR_GAP_MM:
        add("vessel", "One tumor abuts the aorta but has no contact with the IVC.",
            f"{f.aorta_angle_deg:.0f} deg around the aorta; {g[('aorta', 'inferior_vena_cava')]:.1f} mm from the IVC")
    if g[("ivc", "aorta")] >= CLEAR_GAP_MM:
        add("vessel", "The tumor encasing the IVC does not contact the aorta.",
            f"{g[('ivc', 'aorta')]:.1f} mm from the aorta")
    if g[("pancreas", "aorta")] >= CLEAR_GAP_MM:
        add("vessel", "The pancreatic lesion has no contact with the aorta.", f"{g[('pancreas', 'aorta')]:.1f} mm")
    if g[("pancreas", "portal_vein_and_splenic_vein")] >= CLEAR_GAP_MM:
        add("vessel", "The pancreatic lesion does not contact the portal vein.",
            f"{g[('pancreas', 'portal_vein_and_splenic_vein')]:.1f} mm")
    if g[("pancreas", "inferior_vena_cava")] >= CLEAR_GAP_MM:
        add("vessel", "The pancreatic lesion does not touch the inferior vena cava.",
            f"{g[('pancreas', 'inferior_vena_cava')]:.1f} mm")

    # --- stage (AJCC 8 kidney: T1a <= 40 mm confined to the kidney; knowledge 'kidney_t_stage_mm')
    if f.axial_mm["kidney_tumor"][1] <= 40 and f.kidney_tumor_inside:
        add("stage", "The left renal lesion is T1a by size.", "at most {:.0f} mm, inside the kidney mask".format(
            f.axial_mm["kidney_tumor"][1]))

    # --- count
    add("count", "There is one lesion in the spleen.", "one component in spleen_lesion")
    add("count", "A single lesion is present in the pancreas.", "one component in pancreatic_lesion")
    add("count", "The left kidney contains one lesion.", "one component in kidney_lesion")
    add("count", "The right kidney contains a single lesion.", "one component in kidney_cyst_right")
    add("count", f"{NUMBER_WORDS[len(LESIONS)]} lesions are identified in total.",
        f"{len(LESIONS)} synthetic lesions, one component each")

    # --- several claims in one sentence, each true of its own lesion
    add("count", "Both kidneys contain a lesion.", "kidney_lesion (left) and kidney_cyst_right")
    add("count", "There are two renal lesions.", "one in each kidney")
    size = cm(*f.axial_mm["iso"])
    if size is not None and words["iso"] == "isoattenuating":
        add("attenuation", f"The splenic lesion, measuring about {size} cm, is isoattenuating.", why["iso"])
    if words["kidney_tumor"] == "hyperattenuating":
        add("location", "The left kidney holds a hyperattenuating lesion and the right kidney a cyst.",
            why["kidney_tumor"])

    # --- spelled-out numbers, symbols, negations
    words_cm = {2: "two", 3: "three"}
    if L / 10 in words_cm and S / 10 in words_cm:
        add("measurement", f"The hypoattenuating liver lesion measures {words_cm[L / 10]} by {words_cm[S / 10]} "
            "centimetres.", f"analytic RECIST axes {L:.0f} x {S:.0f} mm")
    add("vessel", f"The tumor encases the IVC over about {f.ivc_angle_deg:.0f}\u00b0.", f"{f.ivc_angle_deg:.0f} deg")
    if words["iso"] == "isoattenuating":
        add("attenuation", "The splenic lesion is not hypoattenuating.", why["iso"])
    add("location", "The pancreatic lesion is not in the pancreatic tail.", "whole lesion in pancreas_head")

    # --- what was not assessed (no mask for it)
    assert not any("lymph" in n or "node" in n for n in f.mask_names), sorted(f.mask_names)
    add("stage", "Nodal stage (N) was not assessed.", "no lymph node mask")
    add("negative", "Lymph nodes were not evaluated.", "no lymph node mask")
    gall = sorted(n for n in f.mask_names if n.startswith("gallbladder_"))
    assert not gall, gall
    add("negative", "The gallbladder was not searched for lesions.", "no gallbladder lesion mask")

    # --- organs cut by the scan edge
    add("organ", "The spleen is only partly imaged.", "spleen mask reaches the scan edge")
    add("organ", "The liver extends beyond the scanned field of view.", "liver mask reaches the scan edge")

    # --- phase (aorta median < 80 HU)
    why_phase = f"aorta median {f.aorta_median_hu:.0f} HU"
    add("phase", "The study is non-contrast.", why_phase)
    add("phase", "This is an unenhanced CT.", why_phase)
    return out + _shorthand_true(f) + _prose_true(f) + _impression_true(f)


def unsupported_sentences(f: Facts) -> list[Sentence]:
    out, add = _start(f)
    L, S = f.hypo_axes_mm
    ax = f.axial_mm
    # --- measurement: wrong sizes, also glued to letters
    add("measurement", f"A hypoattenuating lesion in the liver measures {_far(50, L, L) / 10:.1f} x "
        f"{_far(40, S, S) / 10:.1f} cm.", f"truth {L:.0f} x {S:.0f} mm")
    add("measurement", f"A hypoattenuating liver lesion measures {L:.1f}x{_far(99.9, S, L):.1f}mm.",
        f"truth {L:.0f} x {S:.0f} mm; the glued 99.9 is wrong")
    add("measurement", f"Hypoattenuating liver lesion: {L:.1f} x{_far(99.9, S, L):.1f}mm.", f"truth {L:.0f} x {S:.0f} mm")
    add("measurement", f"The splenic lesion measures {_far(45, *ax['iso']) / 10:.1f} cm.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("measurement", f"The left kidney lesion measures {_far(60, *ax['kidney_tumor']) / 10:.1f} x 5.5 cm.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["kidney_tumor"]))
    add("measurement", f"The right renal cyst measures {_far(35, *ax['kidney_cyst']):.0f} mm.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["kidney_cyst"]))
    add("measurement", f"The pancreatic head lesion measures {_far(32, *ax['pancreas']) / 10:.1f} cm.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["pancreas"]))
    add("measurement", f"The hypoattenuating liver lesion has a volume of "
        f"{_far(25, f.hypo_analytic_ml, f.volume_ml['hypo']):.0f} mL.", f"truth {f.volume_ml['hypo']:.1f} mL")
    add("measurement", f"Axial images at slice-t{_far(2.0, f.slice_mm, f.slice_mm, 1.2):.1f}mm were reviewed.",
        f"slice thickness {f.slice_mm:.0f} mm")
    add("measurement", f"The slice thickness is {_far(5.0, f.slice_mm, f.slice_mm, 1.2):.0f} mm.",
        f"slice thickness {f.slice_mm:.0f} mm")
    add("measurement", f"The hyperattenuating liver lesion has a mean attenuation of about "
        f"{_far(20, f.mean_hu['hyper'], f.mean_hu['hyper'], 2):.0f} HU.", f"truth {f.mean_hu['hyper']:.0f} HU")

    add("measurement", f"The hypoattenuating liver lesion measures {L / 10:.1f} x {S / 10:.1f} mm.",
        f"truth {L:.0f} x {S:.0f} mm: a unit error")
    add("measurement", f"The left kidney lesion has a volume of "
        f"{_far(24, f.volume_ml['kidney_tumor'], f.volume_ml['kidney_tumor'], 3):.0f} cm3.",
        f"truth {f.volume_ml['kidney_tumor']:.1f} mL")

    # --- spelled-out numbers, other unit spellings, symbols, ranges, negations, slices
    iso_hi = ax["iso"][1]
    assert 50 > 1.5 * iso_hi, ax["iso"]
    add("measurement", "The splenic lesion measures five centimetres.", "truth [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("measurement", f"The splenic lesion measures {_far(45, *ax['iso']) / 10:.1f} centimeters.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("measurement", f"The splenic lesion measures {_far(40, *ax['iso']) / 10:.0f}-5 cm.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("measurement", f"The right renal cyst has a density of "
        f"{_far(60, f.mean_hu['kidney_cyst'], f.mean_hu['kidney_cyst'], 3):.0f} Hounsfield units.",
        f"truth {f.mean_hu['kidney_cyst']:.0f} HU")
    add("vessel", f"The tumor contacts the IVC over {_far(90, f.ivc_angle_deg, f.ivc_angle_deg):.0f}\u00b0.",
        f"{f.ivc_angle_deg:.0f} deg")
    add("attenuation", "The liver lesion spanning segments 7 and 8 is not hypoattenuating.",
        "hypoattenuating ({:+.1f} HU)".format(f.host_diff_hu["hypo"]))
    add("location", f"The hypoattenuating liver lesion is best seen on image {_far(99, 1, f.n_slices, 1.2)}.",
        f"the CT has {f.n_slices} slices")

    # --- organ size where the organ is cut by the scan (not assessable)
    add("organ", "There is splenomegaly.", "spleen cut by the scan; imaged part {:.0f} mL".format(f.imaged_ml["spleen"]))
    add("organ", "The liver is enlarged.", "liver cut by the scan; imaged part {:.0f} mL".format(f.imaged_ml["liver"]))
    add("organ", "The spleen is completely imaged.", "spleen mask reaches the scan edge")
    add("organ", "The whole liver is included in the field of view.", "liver mask reaches the scan edge")

    # --- another lesion's property said of this one
    add("measurement", f"The splenic lesion measures {_far(30, *ax['iso']) / 10:.1f} x 2.0 cm.",
        "that is the hypoattenuating liver lesion; truth [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("measurement", f"The hyperattenuating liver lesion has a volume of about "
        f"{_far(5, f.volume_ml['hyper'], f.volume_ml['hyper']):.0f} mL.",
        f"that is the hypoattenuating one; truth {f.volume_ml['hyper']:.2f} mL")
    add("measurement", f"The left renal lesion has a mean density of about "
        f"{_far(5, f.mean_hu['kidney_tumor'], f.mean_hu['kidney_tumor'], 3):.0f} HU.",
        f"that is the right cyst; truth {f.mean_hu['kidney_tumor']:.0f} HU")
    add("vessel", "The pancreatic lesion encases the inferior vena cava.",
        "the IVC tumour does; the pancreatic lesion is {:.0f} mm away".format(
            f.gap_mm[("pancreas", "inferior_vena_cava")]))
    add("attenuation", "The left renal lesion is cystic.", "mean {:.0f} HU, not < 20 HU".format(
        f.mean_hu["kidney_tumor"]))
    assert f.seg_share["hyper"]["liver_segment_7"] < 0.05, f.seg_share["hyper"]
    add("location", "The hyperattenuating liver lesion spans segments 7 and 8.", f"shares {f.seg_share['hyper']}")
    add("stage", "The right renal cyst is T1a.", "a 5 HU cyst is given no T stage")

    # --- location: wrong segment, side, organ, part
    add("location", "The hypoattenuating liver lesion is in segment 4.", "segments 7 and 8 only")
    add("location", "The hyperattenuating liver lesion is located in segment 2.", "segment 8")
    add("location", "There is a cyst in the left kidney.", "the left kidney holds a 60 HU lesion; the cyst is right")
    add("location", "The hyperattenuating renal lesion is in the right kidney.", "it is in the left kidney")
    add("location", "The pancreatic lesion is in the tail of the pancreas.", "head")
    add("location", "The pancreatic lesion is located in the pancreatic body.", "head")
    add("location", f"A hypoattenuating lesion in the spleen measures {L / 10:.1f} x {S / 10:.1f} cm.",
        "that lesion is in the liver; the splenic lesion is isoattenuating and smaller")

    # --- attenuation
    add("attenuation", "The splenic lesion is hypoattenuating.", "isoattenuating ({:+.1f} HU)".format(
        f.host_diff_hu["iso"]))
    add("attenuation", "The left kidney lesion is hypoattenuating.", "hyperattenuating ({:+.1f} HU)".format(
        f.host_diff_hu["kidney_tumor"]))
    add("attenuation", "The liver lesion spanning segments 7 and 8 is hyperattenuating.", "hypoattenuating ({:+.1f} HU)".format(
        f.host_diff_hu["hypo"]))
    add("attenuation", "A hyperattenuating lesion is present in the spleen.", "the splenic lesion is isoattenuating")

    # --- vessels: wrong category, wrong vessel, wrong angle
    add("vessel", "The tumor encases the aorta.", f"{f.aorta_angle_deg:.0f} deg: abutment")
    add("vessel", "The tumor merely abuts the inferior vena cava, with less than 180 degrees of contact.",
        f"{f.ivc_angle_deg:.0f} deg: encasement")
    add("vessel", f"The tumor contacts the IVC over about {_far(90, f.ivc_angle_deg, f.ivc_angle_deg):.0f} degrees.",
        f"{f.ivc_angle_deg:.0f} deg")
    add("vessel", "The pancreatic lesion encases the portal vein.",
        "{:.0f} mm away".format(f.gap_mm[("pancreas", "portal_vein_and_splenic_vein")]))
    add("vessel", "The pancreatic lesion abuts the aorta.", "{:.0f} mm away".format(f.gap_mm[("pancreas", "aorta")]))
    add("vessel", "The liver lesion spanning segments 7 and 8 abuts the inferior vena cava.",
        "{:.0f} mm away".format(f.gap_mm[("hypo", "inferior_vena_cava")]))
    add("vessel", "The pancreatic lesion involves the superior mesenteric artery.", "no SMA mask: not established")
    add("vessel", "The left renal lesion invades the left renal vein.", "no renal vein mask: not established")

    # --- stage (N and M are never inferred; T by size)
    add("stage", "The patient is staged T2 N0 M0.", "N and M not assessed; kidney T1a by size")
    add("stage", "There is N1 nodal disease.", "lymph nodes not segmented")
    add("stage", "Findings indicate M1 disease.", "metastases not assessed")
    add("stage", "The left renal tumor is T1b.", "at most {:.0f} mm: T1a".format(ax["kidney_tumor"][1]))
    add("stage", "The pancreatic lesion is T3.", "at most {:.0f} mm (T3 is > 40 mm)".format(ax["pancreas"][1]))
    add("stage", "The pancreatic lesion is resectable.", "NCCN resectability not assessed: no SMA or celiac mask")

    # --- count
    add("count", "There are two lesions in the spleen.", "one")
    add("count", "Three lesions are seen in the pancreas.", "one")
    add("count", "There are five lesions in the liver.", "two in the liver lesion mask (three with the IVC tumour)")
    add("count", "A single lesion is present in the liver.", "at least two")
    add("count", "Twelve lesions are identified in total.", "eight")
    add("count", "The left kidney contains two lesions.", "one")

    # --- comparison with a prior (there is none)
    add("comparison", "The hypoattenuating liver lesion has grown since the prior study.", "no prior study")
    add("comparison", "The splenic lesion is unchanged compared with the previous CT.", "no prior study")
    add("comparison", "The left renal lesion is new since the last examination.", "no prior study")
    add("comparison", "The pancreatic lesion has decreased in size from 2.5 cm.", "no prior study")

    # --- diagnosis
    add("diagnosis", "The hyperattenuating liver lesion is consistent with a benign hemangioma; no follow-up needed.",
        "no diagnosis is established by measurements")
    add("diagnosis", "The hypoattenuating liver lesion is most likely HCC.", "not established")
    add("diagnosis", "The splenic lesion is consistent with lymphoma.", "not established")
    add("diagnosis", "The liver lesions represent metastases.", "not established")
    add("diagnosis", "The pancreatic lesion is a pancreatic adenocarcinoma.", "not established (and isoattenuating)")

    # --- recommendation
    add("recommendation", "We recommend biopsy of the left renal lesion.", "no recommendation rule")
    add("recommendation", "MRI is recommended for further characterization of the liver lesions.", "no rule")
    add("recommendation", "Follow-up CT in 3 months is advised.", "no rule")
    add("recommendation", "Surgical resection of the pancreatic lesion should be considered.", "no rule")

    # --- negative findings that are false or not established
    add("negative", "No distant metastases.", "M not assessed")
    add("negative", "No lymphadenopathy.", "lymph nodes not segmented")
    add("negative", "There is no lesion in the pancreas.", "pancreatic head lesion")
    add("negative", "No focal splenic lesion is seen.", "splenic lesion")
    add("negative", "The kidneys are free of lesions.", "a lesion in each kidney")
    add("negative", "There is no vascular involvement.", f"IVC encased over {f.ivc_angle_deg:.0f} deg")
    add("negative", "No liver lesions are identified.", "two liver lesions")
    add("negative", "There is no lesion in the gallbladder.", "the gallbladder was not searched for lesions")

    # --- contrast phase (non-contrast study)
    add("phase", "The hyperattenuating liver lesion shows arterial enhancement with washout.", "non-contrast study")
    add("phase", "This is a contrast-enhanced CT in the portal venous phase.", "non-contrast study")
    add("phase", "The left renal lesion enhances avidly after contrast.", "non-contrast study")

    # --- invented lesions
    add("invented", "A 2 cm lesion is present in the gallbladder.", "no gallbladder lesion")
    add("invented", "There is a 12 mm nodule in the right lower lobe of the lung.", "no lung lesion")
    add("invented", "A 3 cm mass arises from the stomach.", "no gastric lesion")
    add("invented", "An isoattenuating lesion is present in the liver.", "liver lesions are hypo- or hyperattenuating")
    return out + _shorthand_unsupported(f) + _prose_unsupported(f) + _impression_unsupported(f)


def _shorthand_true(f: Facts) -> list[Sentence]:
    """Report shorthand and synonyms (hypodense, Roman segments, symbols, passive voice): true."""
    out, add = _start(f)
    L, S = f.hypo_axes_mm
    ax, g = f.axial_mm, f.gap_mm
    add("measurement", f"Segment 7/8 hypodense liver lesion, {L / 10:.1f} x {S / 10:.1f} cm.",
        f"analytic {L:.0f} x {S:.0f} mm; shares {f.seg_share['hypo']}")
    add("measurement", f"In the liver there is a hypodense lesion measuring {L:.0f} mm.", f"analytic long axis {L:.0f} mm")
    size_iso, size_hyper, size_kt = cm(*ax["iso"]), cm(*ax["hyper"]), cm(*ax["kidney_tumor"])
    if size_iso is not None:
        add("measurement", f"The spleen contains an approximately {size_iso} cm isodense lesion.",
            "axial diameter in [{:.1f}, {:.1f}] mm; {:+.1f} HU".format(*ax["iso"], f.host_diff_hu["iso"]))
    if size_hyper is not None and _segments(f.seg_share["hyper"]) == [8]:
        add("location", f"A hyperdense focus in hepatic segment VIII measures approximately {size_hyper} cm.",
            "axial diameter in [{:.1f}, {:.1f}] mm; segment 8".format(*ax["hyper"]))
    if cm(*ax["kidney_cyst"]) is not None:
        add("measurement", f"Right renal cyst (approximately {cm(*ax['kidney_cyst'])} cm, about "
            f"{5 * _half_up(f.mean_hu['kidney_cyst'] / 5)} HU).", f"mean {f.mean_hu['kidney_cyst']:.1f} HU")
    if size_kt is not None and _attenuation(f.host_diff_hu["kidney_tumor"]) == "hyperattenuating":
        add("attenuation", f"The left kidney harbors a hyperdense lesion of approximately {size_kt} cm.",
            "{:+.1f} HU".format(f.host_diff_hu["kidney_tumor"]))
    add("vessel", "Tumor encasement of the IVC (>180\u00b0).", f"{f.ivc_angle_deg:.0f} deg")
    add("vessel", "Aortic abutment by tumor (<180\u00b0).", f"{f.aorta_angle_deg:.0f} deg")
    add("vessel", "The IVC is encased by tumor.", f"{f.ivc_angle_deg:.0f} deg")
    add("vessel", "The aorta is abutted by a tumor.", f"{f.aorta_angle_deg:.0f} deg")
    if g[("pancreas", "portal_vein_and_splenic_vein")] >= CLEAR_GAP_MM:
        add("vessel", "No contact between the pancreatic lesion and the portal vein.",
            f"{g[('pancreas', 'portal_vein_and_splenic_vein')]:.1f} mm")
    add("count", "There is a solitary splenic lesion.", "one component in spleen_lesion")
    add("count", f"A total of {len(LESIONS)} lesions are seen.", f"{len(LESIONS)} synthetic lesions")
    add("count", "The pancreas harbors one lesion, located in the head.", "one component, all in pancreas_head")
    add("phase", "Unenhanced CT.", f"aorta median {f.aorta_median_hu:.0f} HU")
    add("measurement", f"Axial {f.slice_mm:.0f} mm slices.", f"voxel spacing {f.spacing_mm}")
    ml = about(min(f.hypo_analytic_ml, f.volume_ml["hypo"]), max(f.hypo_analytic_ml, f.volume_ml["hypo"]), (1.0,))
    if ml is not None:
        add("measurement", f"The hypodense hepatic lesion has a volume of approximately {ml:.0f} cm3.",
            f"analytic {f.hypo_analytic_ml:.2f} mL, {f.volume_ml['hypo']:.2f} mL of voxels")
    add("location", "Renal lesions: a left-sided hyperdense lesion and a right-sided cyst.",
        "kidney_lesion left ({:+.1f} HU), kidney_cyst_right".format(f.host_diff_hu["kidney_tumor"]))
    if ax["kidney_tumor"][1] <= 40 and f.kidney_tumor_inside:
        add("stage", "The left renal mass is staged T1a.", "at most {:.0f} mm, inside the kidney".format(
            ax["kidney_tumor"][1]))
    if f.mean_hu["hypo"] < 15 and f.sd_hu["hypo"] <= 15:
        add("attenuation", "The hypodense liver lesion is of water density.",
            f"mean {f.mean_hu['hypo']:.1f} HU, SD {f.sd_hu['hypo']:.1f} HU")
    return out


def _shorthand_unsupported(f: Facts) -> list[Sentence]:
    """Report shorthand and synonyms: unsupported."""
    out, add = _start(f)
    L, S = f.hypo_axes_mm
    ax = f.axial_mm
    add("location", f"Segment 2/3 hypodense liver lesion, {L / 10:.1f} x {S / 10:.1f} cm.", "segments 7 and 8")
    add("location", "A hyperdense focus in hepatic segment VI measures approximately 2 cm.", "segment 8")
    add("measurement", f"The spleen contains a {_far(40, *ax['iso']) / 10:.0f} cm lesion.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("location", "Left renal cyst measuring 1.5 cm.", "the cyst is right; the left lesion is {:.0f} HU".format(
        f.mean_hu["kidney_tumor"]))
    add("vessel", "Tumor encasement of the aorta (>180\u00b0).", f"{f.aorta_angle_deg:.0f} deg: abutment")
    add("vessel", "The IVC is abutted by tumor (<180\u00b0).", f"{f.ivc_angle_deg:.0f} deg: encasement")
    add("count", "Multiple splenic lesions.", "one")
    add("count", "A total of 3 lesions are seen.", f"{len(LESIONS)}")
    add("phase", "Contrast-enhanced CT in arterial phase.", f"aorta median {f.aorta_median_hu:.0f} HU: non-contrast")
    add("measurement", f"Axial {_far(1, f.slice_mm, f.slice_mm, 1.5):.0f} mm slices.", f"{f.slice_mm:.0f} mm")
    add("measurement", f"The hypodense hepatic lesion has a volume of approximately "
        f"{_far(50, f.hypo_analytic_ml, f.volume_ml['hypo']):.0f} cm3.", f"{f.volume_ml['hypo']:.1f} mL")
    add("comparison", "Stable appearance of the renal lesions.", "no prior study")
    add("comparison", "Interval development of a pancreatic head lesion.", "no prior study")
    add("diagnosis", "Findings suggestive of renal cell carcinoma in the right kidney.",
        "the right renal lesion is a {:.0f} HU cyst".format(f.mean_hu["kidney_cyst"]))
    add("diagnosis", "Suspicious for hepatic metastatic disease.", "not established")
    add("recommendation", "Clinical correlation and PET-CT are recommended.", "no rule")
    add("negative", "No evidence of malignancy.", "not established")
    add("negative", "The pancreas is normal.", "pancreatic head lesion")
    add("invented", "Peritoneal carcinomatosis.", "not assessed")
    add("invented", "Ascites is present.", "not assessed")
    add("measurement", f"The pancreatic lesion measures {_far(150, *ax['pancreas']) / 10:.0f} cm.",
        "truth [{:.0f}, {:.0f}] mm".format(*ax["pancreas"]))
    add("measurement", f"Left renal lesion: {5 * _half_up(f.mean_hu['kidney_tumor'] / 5)} HU, "
        f"{_far(60, *ax['kidney_tumor']) / 10:.0f} cm.", "truth [{:.0f}, {:.0f}] mm".format(*ax["kidney_tumor"]))
    add("stage", "The splenic lesion is T1.", "no T stage for a splenic lesion")
    add("negative", "Segment 7 contains no lesion.", f"shares {f.seg_share['hypo']}")
    add("vessel", "The IVC is patent without tumor contact.", f"encased over {f.ivc_angle_deg:.0f} deg")
    return out


def _prose_true(f: Facts) -> list[Sentence]:
    """LLM-style prose and report bullets: true."""
    out, add = _start(f)
    L = f.hypo_axes_mm[0]
    ax, g = f.axial_mm, f.gap_mm
    size = {n: cm(*ax[n]) for n in ("iso", "hyper", "kidney_tumor", "kidney_cyst")}
    att = {n: _attenuation(d) for n, d in f.host_diff_hu.items()}
    add("location", "Notably, the liver demonstrates a hypoattenuating lesion spanning segments 7 and 8, measuring "
        f"approximately {L / 10:.1f} cm in long axis.", f"analytic long axis {L:.0f} mm; {f.seg_share['hypo']}")
    if size["iso"] and att["iso"] == "isoattenuating":
        add("count", f"Within the spleen, a single isoattenuating lesion of approximately {size['iso']} cm is "
            "identified.", "one component, {:+.1f} HU".format(f.host_diff_hu["iso"]))
        add("measurement", f"- Spleen: one isoattenuating lesion, about {size['iso']} cm.",
            "axial diameter in [{:.1f}, {:.1f}] mm".format(*ax["iso"]))
    if att["kidney_tumor"] == "hyperattenuating":
        add("attenuation", "The left kidney demonstrates a hyperattenuating lesion with a mean attenuation of "
            f"approximately {5 * _half_up(f.mean_hu['kidney_tumor'] / 5)} HU.", f"mean {f.mean_hu['kidney_tumor']:.1f}")
        if size["kidney_tumor"] and size["kidney_cyst"]:
            add("measurement", f"- Kidneys: left hyperattenuating lesion about {size['kidney_tumor']} cm; right cyst "
                f"about {size['kidney_cyst']} cm.", "left [{:.0f}, {:.0f}] mm, right [{:.0f}, {:.0f}] mm".format(
                    *ax["kidney_tumor"], *ax["kidney_cyst"]))
    add("vessel", f"A tumor is seen encircling the inferior vena cava over approximately {f.ivc_angle_deg:.0f} "
        "degrees, consistent with encasement.", f"{f.ivc_angle_deg:.0f} deg")
    add("vessel", "Additionally, a tumor contacts the aorta over less than half of its circumference.",
        f"{f.aorta_angle_deg:.0f} deg")
    if min(g[("pancreas", "aorta")], g[("pancreas", "portal_vein_and_splenic_vein")]) >= CLEAR_GAP_MM:
        add("vessel", "The pancreatic head harbors a lesion without contact with the aorta or the portal vein.",
            "{:.0f} and {:.0f} mm".format(g[("pancreas", "aorta")], g[("pancreas", "portal_vein_and_splenic_vein")]))
    if size["kidney_cyst"] and f.mean_hu["kidney_cyst"] < 15:
        add("attenuation", f"The right kidney contains a cyst of fluid attenuation, about {size['kidney_cyst']} cm.",
            f"mean {f.mean_hu['kidney_cyst']:.1f} HU")
    add("vessel", f"- Vessels: IVC encasement (about {f.ivc_angle_deg:.0f} degrees); aortic abutment.",
        f"{f.ivc_angle_deg:.0f} and {f.aorta_angle_deg:.0f} deg")
    add("count", f"Overall, {NUMBER_WORDS[len(LESIONS)].lower()} lesions are present.", f"{len(LESIONS)} lesions")
    if size["hyper"] and _segments(f.seg_share["hyper"]) == [8]:
        add("measurement", f"The hyperattenuating lesion in hepatic segment 8 measures about {size['hyper']} cm and has "
            f"a mean attenuation of about {5 * _half_up(f.mean_hu['hyper'] / 5)} HU.",
            "[{:.0f}, {:.0f}] mm, mean {:.1f} HU".format(*ax["hyper"], f.mean_hu["hyper"]))
    add("measurement", f"The hypoattenuating liver lesion is RECIST-measurable, with a long axis of {L:.0f} mm.",
        f"analytic {L:.0f} mm >= 10 mm")
    return out


def _prose_unsupported(f: Facts) -> list[Sentence]:
    """LLM-style prose and report bullets: unsupported."""
    out, add = _start(f)
    L = f.hypo_axes_mm[0]
    ax = f.axial_mm
    add("location", "Notably, the liver demonstrates a hypoattenuating lesion spanning segments 5 and 6, measuring "
        f"approximately {L / 10:.1f} cm.", f"segments 7 and 8: {f.seg_share['hypo']}")
    add("count", "Within the spleen, two isoattenuating lesions are identified.", "one")
    add("attenuation", "The left kidney demonstrates a hypoattenuating lesion with a mean attenuation of approximately "
        f"{_far(5, f.mean_hu['kidney_tumor'], f.mean_hu['kidney_tumor'], 3):.0f} HU.",
        "{:+.1f} HU, mean {:.0f}".format(f.host_diff_hu["kidney_tumor"], f.mean_hu["kidney_tumor"]))
    add("vessel", "A tumor is seen encircling the aorta over approximately "
        f"{_far(270, f.aorta_angle_deg, f.aorta_angle_deg, 2):.0f} degrees.", f"{f.aorta_angle_deg:.0f} deg")
    add("vessel", "The pancreatic head lesion abuts the portal vein.",
        "{:.0f} mm away".format(f.gap_mm[("pancreas", "portal_vein_and_splenic_vein")]))
    add("measurement", f"- Spleen: one hypoattenuating lesion, about {_far(40, *ax['iso']) / 10:.0f} cm.",
        "isoattenuating, [{:.0f}, {:.0f}] mm".format(*ax["iso"]))
    add("location", "- Kidneys: right hyperattenuating lesion about 2 cm; left cyst about 1.5 cm.", "sides swapped")
    add("vessel", "- Vessels: aortic encasement; IVC abutment.", "categories swapped")
    add("count", "Overall, fifteen lesions are present.", f"{len(LESIONS)}")
    add("diagnosis", "The hepatic lesions are likely abscesses.", "not established")
    add("comparison", "Compared to the prior examination, the IVC encasement has progressed.", "no prior study")
    add("recommendation", "Short-interval follow-up MRI of the pancreas in 6 months is suggested.", "no rule")
    add("negative", "There is no evidence of vascular encasement.", f"IVC encased over {f.ivc_angle_deg:.0f} deg")
    add("invented", "Free fluid is seen in the pelvis.", "not assessed")
    add("measurement", "The hyperattenuating lesion in hepatic segment 8 measures about "
        f"{_far(40, *ax['hyper']) / 10:.0f} cm.", "[{:.0f}, {:.0f}] mm".format(*ax["hyper"]))
    add("invented", "The right kidney demonstrates hydronephrosis.", "not assessed")
    return out


def _impression_true(f: Facts) -> list[Sentence]:
    """Terse impression lines (~, approx., ranges, bounds, comparisons between lesions): true."""
    out, add = _start(f)
    L = f.hypo_axes_mm[0]
    ax, g = f.axial_mm, f.gap_mm
    size = {n: cm(*ax[n]) for n in ("iso", "kidney_tumor")}
    att = {n: _attenuation(d) for n, d in f.host_diff_hu.items()}
    add("location", f"IMPRESSION: Hypoattenuating hepatic lesion in segments 7-8, {L / 10:.1f} cm.",
        f"analytic long axis {L:.0f} mm; {f.seg_share['hypo']}")
    if size["iso"] and att["iso"] == "isoattenuating":
        add("attenuation", f"Isoattenuating splenic lesion, approx. {size['iso']} cm.",
            "[{:.0f}, {:.0f}] mm, {:+.1f} HU".format(*ax["iso"], f.host_diff_hu["iso"]))
    if size["kidney_tumor"] and att["kidney_tumor"] == "hyperattenuating":
        add("attenuation", f"Left renal lesion, hyperattenuating, ~{size['kidney_tumor']} cm.",
            "[{:.0f}, {:.0f}] mm, {:+.1f} HU".format(*ax["kidney_tumor"], f.host_diff_hu["kidney_tumor"]))
    add("measurement", f"Right renal cyst, ~{5 * _half_up(f.mean_hu['kidney_cyst'] / 5)} HU.",
        f"mean {f.mean_hu['kidney_cyst']:.1f} HU")
    add("vessel", f"IVC: encased (~{f.ivc_angle_deg:.0f}\u00b0).", f"{f.ivc_angle_deg:.0f} deg")
    add("vessel", "Aorta: abutted, without encasement.", f"{f.aorta_angle_deg:.0f} deg")
    if g[("pancreas", "aorta")] >= CLEAR_GAP_MM:
        add("vessel", "Pancreas: one lesion in the head; no contact with the aorta.",
            "one component in pancreas_head, {:.0f} mm from the aorta".format(g[("pancreas", "aorta")]))
    if ax["kidney_tumor"][1] < 40:
        add("measurement", "The left renal lesion measures less than 4 cm.", "at most {:.0f} mm".format(
            ax["kidney_tumor"][1]))
    if ax["hypo"][0] > 1.5 * ax["iso"][1] and L > 1.5 * ax["iso"][1]:
        add("measurement", "The hypoattenuating liver lesion is larger than the splenic lesion.",
            "{:.0f} mm vs at most {:.0f} mm".format(L, ax["iso"][1]))
    if ax["iso"] == ax["kidney_cyst"] and f.volume_ml["iso"] == f.volume_ml["kidney_cyst"]:
        add("measurement", "The splenic lesion and the right renal cyst are of similar size.",
            "identical voxelised spheres: {:.2f} mL each".format(f.volume_ml["iso"]))
    return out


def _impression_unsupported(f: Facts) -> list[Sentence]:
    """Terse impression lines: unsupported."""
    out, add = _start(f)
    L = f.hypo_axes_mm[0]
    ax = f.axial_mm
    add("location", f"IMPRESSION: Hypoattenuating hepatic lesion in segments 2-3, {L / 10:.1f} cm.",
        f"segments 7 and 8: {f.seg_share['hypo']}")
    add("attenuation", "Hyperattenuating splenic lesion, approx. 1.5 cm.", "{:+.1f} HU: isoattenuating".format(
        f.host_diff_hu["iso"]))
    add("location", "Left renal cyst, ~5 HU.", "the cyst is right; the left lesion is {:.0f} HU".format(
        f.mean_hu["kidney_tumor"]))
    add("vessel", f"IVC: abutted (~{_far(90, f.ivc_angle_deg, f.ivc_angle_deg):.0f}\u00b0).",
        f"{f.ivc_angle_deg:.0f} deg: encasement")
    add("vessel", "Aorta: encased.", f"{f.aorta_angle_deg:.0f} deg: abutment")
    add("count", "Pancreas: two lesions in the tail.", "one lesion, in the head")
    add("measurement", f"The left renal lesion measures more than {_far(70, *ax['kidney_tumor']) / 10:.0f} cm.",
        "at most {:.0f} mm".format(ax["kidney_tumor"][1]))
    add("measurement", "The splenic lesion is larger than the hypoattenuating liver lesion.",
        "at most {:.0f} mm vs {:.0f} mm".format(ax["iso"][1], L))
    add("diagnosis", "LI-RADS 5 observation in segment 7.", "not established")
    add("comparison", "Findings are unchanged from 01/2025.", "no prior study")
    add("negative", "No significant abnormality.", f"{len(LESIONS)} lesions")
    add("recommendation", "Biopsy recommended.", "no rule")
    return out
