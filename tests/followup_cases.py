"""Follow-up pairs on real CT: TotalSegmentator's example CT with spherical lesions of known radius painted
at a baseline and a current time point (no patient motion), each analyzed by the real pipeline into an
analyze output folder; and a Comparison of the two built through the model's constructor from the
measured findings, with lesions matched by the painted centres and RECIST 1.1 computed here from the
rules (the test's own computation, independent of perception.followup).

Lesions (radius mm at baseline -> now):
- A liver, 9 -> 13 (grown: analytic long axis 18 -> 26 mm, +8 mm);
- B liver, 10 -> 5 (shrunk: 20 -> 10 mm);
- K left kidney, 7 -> absent (disappeared);
- S spleen, absent -> 6 (new).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from agent import case
from eval.synthetic import ellipsoid, organ_center_mm, paint, world_grid, write_case
from perception.followup.schema import (
    Change,
    Comparison,
    Recist,
    RecistLesion,
    RecistRule,
    Registration,
    StudyRef,
    TimePointMeasurement,
    TrackedLesion,
)
from perception.registry import totalseg_class_maps
from tests.conftest import data_path

RADII = {"A": (9.0, 13.0), "B": (10.0, 5.0), "K": (7.0, None), "S": (None, 6.0)}
ORGAN = {"A": "liver", "B": "liver", "K": "kidney_left", "S": "spleen"}
MASK = {"liver": "liver_lesion", "kidney_left": "kidney_lesion", "spleen": "spleen_lesion"}


def _base():
    ct = nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = np.asanyarray(nib.load(data_path("totalseg", "example_seg.nii.gz")).dataobj)
    names = totalseg_class_maps()["total"]
    keep = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas", "aorta")
    masks = {names[int(v)]: seg == v for v in np.unique(seg) if v and names[int(v)] in keep}
    return np.asanyarray(ct.dataobj).copy(), ct.affine, masks


def centres(aff, masks) -> dict[str, np.ndarray]:
    liver = masks["liver"]
    ca = organ_center_mm(liver, aff)
    xyz = world_grid(liver.shape, aff)
    far = liver & (np.sqrt(((xyz - ca.reshape(3, 1, 1, 1)) ** 2).sum(0)) > 32)
    from scipy import ndimage

    cb = organ_center_mm(ndimage.binary_erosion(far, iterations=2), aff)
    return {"A": ca, "B": cb, "K": organ_center_mm(masks["kidney_left"], aff), "S": organ_center_mm(masks["spleen"], aff)}


def _time_point(folder: Path, t: int, hu0, aff, masks0, cs) -> case.AnalyzedCase:
    hu, masks = hu0.copy(), {k: v.copy() for k, v in masks0.items()}
    for name in MASK.values():
        masks[name] = np.zeros_like(masks["liver"])
    for key, radii in RADII.items():
        r = radii[t]
        if r is None:
            continue
        organ = ORGAN[key]
        m = ellipsoid(hu.shape, aff, cs[key], (r, r, r)) & masks[organ]
        hu = paint(hu, m, float(hu[masks[organ]].mean()) - 50, 4, seed=t * 10 + len(key))
        masks[MASK[organ]] |= m
    src = write_case(folder / f"ct{t}", hu, aff, masks)
    c = case.analyze(src / "ct.nii.gz", src)
    case.write(c, None, folder / f"out{t}")
    return c


def build_pair(folder: Path) -> dict:
    """Analyze the baseline (out0) and the current study (out1) under ``folder``."""
    hu, aff, masks = _base()
    cs = centres(aff, masks)
    cases = [_time_point(folder, t, hu, aff, masks, cs) for t in (0, 1)]
    return {"folder": folder, "dirs": [folder / "out0", folder / "out1"], "cases": cases, "centres": cs, "affine": aff,
                "spacing": np.linalg.norm(aff[:3, :3], axis=0)}


def nearest(findings, point) -> str:
    return min(findings.lesions, key=lambda les: np.linalg.norm(np.subtract(les.centroid_mm, point))).id


def _m(findings, lid: str | None, tp: int) -> TimePointMeasurement:
    if lid is None:
        return TimePointMeasurement(time_point=tp, lesion_id=None)
    les = next(x for x in findings.lesions if x.id == lid)
    return TimePointMeasurement(time_point=tp, lesion_id=lid, long_axis_mm=les.long_axis_mm, short_axis_mm=les.short_axis_mm,
                                volume_ml=les.volume_ml, size_qualifier=les.size_qualifier, centroid_mm=les.centroid_mm,
                                match_confidence=1.0 if tp == 0 else None)


def _pct(a, b):
    return (b - a) / a * 100.0


def constructed(pair: dict, registration_refused: str | None = None) -> Comparison:
    """The Comparison of ``pair`` through the model's constructor (values computed here)."""
    f0, f1 = pair["cases"][0].findings, pair["cases"][1].findings
    studies = []
    for tp, (d, c) in enumerate(zip(pair["dirs"], pair["cases"])):
        sha = hashlib.sha256((Path(d) / "findings.json").read_bytes()).hexdigest()
        studies.append(StudyRef(time_point=tp, role="prior" if tp == 0 else "current", analyze_dir=str(d),
                                findings_sha256=sha, ct=c.findings.study.source, n_lesions=len(c.findings.lesions)))
    lesions = []
    for i, key in enumerate(("A", "B", "K", "S"), 1):
        ids = [nearest(f, pair["centres"][key]) if RADII[key][tp] is not None else None for tp, f in enumerate((f0, f1))]
        m0, m1 = _m(f0, ids[0], 0), _m(f1, ids[1], 1)
        state = "persisting" if all(ids) else "new" if ids[1] else "disappeared"
        ch = None
        if state == "persisting":
            ch = Change(reference_time_point=0, long_axis_abs_mm=m1.long_axis_mm - m0.long_axis_mm,
                        long_axis_pct=_pct(m0.long_axis_mm, m1.long_axis_mm), volume_abs_ml=m1.volume_ml - m0.volume_ml,
                        volume_pct=_pct(m0.volume_ml, m1.volume_ml))
        lesions.append(TrackedLesion(tracking_id=f"T{i}", tracking_uid=f"2.25.{1000 + i}", organ=ORGAN[key], state=state,
                                     state_reason={"persisting": "matched by registered centroid",
                                                   "new": "no prior lesion within the matching distance",
                                                   "disappeared": "no current lesion in the searched left kidney"}[state],
                                     match_confidence=1.0 if state == "persisting" else None, measurements=[m0, m1],
                                     change_from_prior=ch, change_from_baseline=ch))
    # RECIST 1.1 by the rules: measurable (>= 10 mm) at baseline, largest first, <= 2 per organ, <= 5
    base = sorted((t for t in lesions if t.measurements[0].long_axis_mm and t.measurements[0].long_axis_mm >= 10.0),
                  key=lambda t: -t.measurements[0].long_axis_mm)
    per: dict[str, int] = {}
    targets = []
    for t in base:
        if per.get(t.organ, 0) < 2 and len(targets) < 5:
            per[t.organ] = per.get(t.organ, 0) + 1
            targets.append(t)
    sums = [sum(t.measurements[tp].long_axis_mm or 0.0 for t in targets) for tp in (0, 1)]
    new = [t.tracking_id for t in lesions if t.state == "new"]
    pct = _pct(sums[0], sums[1])
    target = ("CR" if sums[1] == 0 else "PR" if pct <= -30.0 else
              "PD" if pct >= 20.0 and sums[1] - sums[0] >= 5.0 else "SD")
    fired = [RecistRule(rule="PD: new lesion", text=f"new lesion(s) {', '.join(new)}")] if new else []
    if target == "PR":
        fired.append(RecistRule(rule="PR: -30 % from baseline", text=f"sum {sums[0]:.1f} -> {sums[1]:.1f} mm ({pct:+.1f} %)"))
    recist = Recist(
        baseline_time_point=0, targets_by="rules",
        targets=[RecistLesion(tracking_id=t.tracking_id, organ=t.organ, role="target", why="measurable, largest first",
                              diameters_mm=[m.long_axis_mm for m in t.measurements]) for t in targets],
        non_targets=[RecistLesion(tracking_id=t.tracking_id, organ=t.organ, role="non_target", why="not a target",
                                  diameters_mm=[m.long_axis_mm for m in t.measurements]) for t in lesions
                     if t not in targets and t.state != "new"],
        sum_of_diameters_mm=sums, baseline_sum_mm=sums[0], nadir_sum_mm=sums[0], nadir_time_point=0, current_sum_mm=sums[1],
        change_from_baseline_pct=_pct(sums[0], sums[1]), change_from_nadir_pct=_pct(sums[0], sums[1]),
        change_from_nadir_mm=sums[1] - sums[0], target_response=target, non_target_response="non-CR/non-PD",
        new_lesions=new, overall_response="PD" if new else target, rules_fired=fired)
    reg = Registration(fixed_time_point=0, moving_time_point=1, method="identity (same patient position, test)",
                       status="ok", transform_current_to_prior=np.eye(4).tolist(), seconds=0.0) \
        if registration_refused is None else Registration(fixed_time_point=0, moving_time_point=1, method="test",
                                                          status="refused", reason=registration_refused, seconds=0.0)
    return Comparison(radagent_version="test", studies=studies, registrations=[reg], lesions=lesions, recist=recist)


def pair_fixture(name: str):
    """A module-scoped pytest fixture: the analyzed pair (build_pair) with its constructed Comparison."""
    @pytest.fixture(scope="module")
    def pair(tmp_path_factory):
        p = build_pair(tmp_path_factory.mktemp(name))
        p["comparison"] = constructed(p)
        return p
    return pair
