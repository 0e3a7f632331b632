"""Handlers of the medical reasoning subtypes: PDAC vs PNET, steatosis (liver, pancreas), kidney
lesion type and renal mass characterization, pancreatic cysts and tumours (resectability, T stage,
pseudocyst), portal hypertension and splenomegaly grading."""

from __future__ import annotations

from perception.registry import organ_family
from perception.schema import Findings, Lesion, Status
from reasoning.knowledge import knowledge
from reasoning.vqa.handlers.recognition import _h_splenomegaly
from reasoning.vqa.lookup import (_cut, _hu_ratio, _is_cystic, _lesion_class, _oid, _pick, _require_noncontrast,
                                  _require_whole_for_size_stage)
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result


def _pancreatic_solid(l: Lesion) -> bool:
    return not _is_cystic(l)


def _h_pdac_vs_pnet(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, "pancreas", "solid pancreatic lesion", keep=None if q.lesion_id else _pancreatic_solid)
    if l.kind in ("pdac", "pnet"):
        return _Result(l.kind.upper(), None, [l.id], "lesion mask type", f"{l.id} from mask {l.mask} (typed {l.kind.upper()})")
    if l.attenuation is None:
        raise _Cannot(f"{l.id}: untyped mask and no pancreas HU to compare with", [l.id], "pdac_vs_pnet_attenuation")
    cat = "PDAC" if l.attenuation.value == "hypoattenuating" else "PNET"
    return _Result(cat, None, [l.id], "pdac_vs_pnet_attenuation",
                   f"{l.id} untyped ({l.mask}); {l.attenuation.value} ({l.hu_difference:+.1f} HU vs pancreas): "
                   f"imaging pattern of {cat} (heuristic, not histology)")


def liver_fat(f: Findings) -> tuple[str, bool, float, float, float, list[str], str]:
    """The one liver-fat decision every answer reads (fatty liver, steatosis grade; the L/S ratio comes
    from the same ``_hu_ratio``): (Kodama grade, fatty, liver HU, spleen HU, L/S, ids, why).
    Fatty liver = grade G1 or worse, so 'fatty liver: no' and a steatosis grade above G0 cannot both be said."""
    _require_noncontrast(f, "kodama_steatosis_grade")
    hu0, hu1, hu2, r0, r1, r2 = knowledge("kodama_steatosis_grade").values  # 58 51 39 / 1.0 0.8 0.5
    lv, sv, r, ids = _hu_ratio(f, "liver", "spleen")
    for g, hu, rr in (("G3 (severe)", hu2, r2), ("G2 (moderate)", hu1, r1), ("G1 (mild)", hu0, r0)):
        hits = ([f"liver {_fmt(lv)} HU < {_fmt(hu)} HU"] if lv < hu else []) + ([f"L/S {r:.3f} < {_fmt(rr)}"] if r < rr else [])
        if hits:
            return g, True, lv, sv, r, ids, " and ".join(hits)
    return ("G0 (normal)", False, lv, sv, r, ids,
            f"liver {_fmt(lv)} HU >= {_fmt(hu0)} HU and L/S {r:.3f} >= {_fmt(r0)}")


def _h_fatty_liver(f: Findings, q: Question) -> _Result:
    g, fatty, lv, sv, r, ids, why = liver_fat(f)
    return _Result("yes" if fatty else "no", None, ids, "kodama_steatosis_grade",
                   f"liver {_fmt(lv)} HU, spleen {_fmt(sv)} HU, L/S {r:.3f} on non-contrast CT: {why}: steatosis grade {g}, "
                   f"{'fatty liver' if fatty else 'no fatty liver'} (fatty liver = Kodama grade G1 or worse)")


def _h_steatosis_grade(f: Findings, q: Question) -> _Result:
    g, fatty, lv, sv, r, ids, why = liver_fat(f)
    return _Result(g, None, ids, "kodama_steatosis_grade",
                   f"liver {_fmt(lv)} HU, L/S {r:.3f} (spleen {_fmt(sv)} HU): {why}: {g}, the most severe grade whose HU or "
                   f"L/S criterion holds ({'fatty liver' if fatty else 'no fatty liver'})")


def _h_lesion_type(f: Findings, q: Question) -> _Result:
    organ = q.organ or "kidney"
    l = _pick(f, q, organ)
    if not (l.organ and organ_family(l.organ) == "kidney"):
        raise _Cannot(f"{l.id} is not a kidney lesion: the cyst/tumour rule (34.8 HU) is for kidney lesions", [l.id])
    cls, why = _lesion_class(l)
    return _Result(cls, None, [l.id], "kidney_lesion_tumor_hu" if "HU" in why else "lesion mask type", f"{why}: {cls}")


def _pancreatic_cyst(f: Findings, q: Question) -> Lesion:
    l = _pick(f, q, "pancreas", "pancreatic cyst (typed cyst or cystic by attenuation)", keep=None if q.lesion_id else _is_cystic)
    if not _is_cystic(l):
        raise _Cannot(f"{l.id} is not a cyst (mask {l.mask}, mean {_fmt(l.mean_hu)} HU, SD {_fmt(l.sd_hu)})", [l.id])
    return l


def _h_cyst_resect(f: Findings, q: Question) -> _Result:
    l = _pancreatic_cyst(f, q)
    vthr, dthr = knowledge("pancreatic_cyst_resection").values
    pos = l.volume_ml > vthr or l.long_axis_mm > dthr
    if _cut(l):  # sizes are lower bounds: only a bound above a threshold decides
        if not pos:
            raise _Cannot(f"{l.id} reaches the scan edge ({', '.join(l.touches_edges)}): at least {_fmt(l.volume_ml, 3)} mL and "
                          f"{_fmt(l.long_axis_mm, 1)} mm, which may lie on either side of {_fmt(vthr)} mL / {_fmt(dthr)} mm",
                          [l.id], "pancreatic_cyst_resection")
        return _Result("yes", None, [l.id], "pancreatic_cyst_resection",
                       f"{l.id} cut by the scan edge: at least {_fmt(l.volume_ml, 3)} mL and {_fmt(l.long_axis_mm, 1)} mm, "
                       f"already above {_fmt(vthr)} mL or {_fmt(dthr)} mm: resection recommended", qualifier="lower_bound")
    return _Result("yes" if pos else "no", None, [l.id], "pancreatic_cyst_resection",
                   f"{l.id} volume {_fmt(l.volume_ml, 3)} mL ({'>' if l.volume_ml > vthr else '<='} {_fmt(vthr)}), diameter "
                   f"{_fmt(l.long_axis_mm, 1)} mm ({'>' if l.long_axis_mm > dthr else '<='} {_fmt(dthr)}): "
                   f"{'resection recommended' if pos else 'surveillance'}")


def _hint(f: Findings, q: Question, system: str) -> tuple[Lesion, object]:
    l = _pick(f, q, "pancreas", "solid pancreatic lesion", keep=None if q.lesion_id else _pancreatic_solid)
    h = next((h for h in l.staging if h.system == system), None)
    if h is None:
        raise _Cannot(f"{l.id}: no {system} hint ({'; '.join(f'{x.system}: {x.rule}' for x in l.staging)})", [l.id])
    if h.category == "not assessed":
        raise _Cannot(f"{l.id}: {system} not assessed: {h.rule}", [l.id])
    return l, h


def _h_resectability(f: Findings, q: Question) -> _Result:
    l, h = _hint(f, q, "NCCN pancreas resectability")
    return _Result(h.category, None, [l.id], "nccn_pancreas_resectability", f"{l.id}: {h.category} ({h.rule})")


def _h_t_stage(f: Findings, q: Question) -> _Result:
    l, h = _hint(f, q, "AJCC8 pancreas T")
    _require_whole_for_size_stage(l, h.category, ("T1", "T2"), "pancreas_t_stage_mm")
    if "not excluded" in h.rule:
        raise _Cannot(f"{l.id}: size alone gives {h.category}, but {h.rule.split('; ', 1)[-1]}", [l.id], "pancreas_t_stage_mm")
    return _Result(h.category, None, [l.id], "pancreas_t_stage_mm", f"{l.id}: {h.rule}")


def _h_pancreatic_steatosis(f: Findings, q: Question) -> _Result:
    _require_noncontrast(f, "pancreatic_steatosis_ps_ratio")
    thr = knowledge("pancreatic_steatosis_ps_ratio").values[0]
    pv, sv, r, ids = _hu_ratio(f, "pancreas", "spleen")
    pos = r < thr
    return _Result("yes" if pos else "no", None, ids, "pancreatic_steatosis_ps_ratio",
                   f"P/S = {_fmt(pv)} / {_fmt(sv)} HU = {r:.3f} {'<' if pos else '>='} {_fmt(thr)} on non-contrast CT")


def _h_portal_htn(f: Findings, q: Question) -> _Result:
    key = "portal_hypertension_signs"
    try:
        s = _h_splenomegaly(f, q)
    except _Cannot as e:
        raise _Cannot(f"splenomegaly, the one sign assessable from findings, is undetermined ({e.reason}); caudate/right-lobe "
                      "ratio, portal vein diameter, collaterals and ascites are not in findings", e.ids, key) from None
    if s.value == "yes":
        return _Result("yes", None, s.ids, key, f"sign present: {s.explanation} (other signs not assessed)")
    raise _Cannot(f"no splenomegaly ({s.explanation}), but portal hypertension is not excluded: caudate/right-lobe ratio, "
                  "portal vein diameter, collaterals and ascites are not in findings", s.ids, key)


def _h_pseudocyst(f: Findings, q: Question) -> _Result:
    l = _pancreatic_cyst(f, q)
    thr = knowledge("pancreatic_pseudocyst_hu").values[0]
    pos = l.mean_hu > thr
    return _Result("yes" if pos else "no", None, [l.id], "pancreatic_pseudocyst_hu",
                   f"{l.id} mean {_fmt(l.mean_hu)} HU {'>' if pos else '<='} {_fmt(thr)} HU: "
                   f"{'pseudocyst' if pos else 'mucinous cyst, not a pseudocyst'}")


def _h_renal_mass(f: Findings, q: Question) -> _Result:
    organ = q.organ or "kidney"
    l = _pick(f, q, organ)
    if not (l.organ and organ_family(l.organ) == "kidney"):
        raise _Cannot(f"{l.id} is not a kidney lesion", [l.id])
    fat, cyst, hyper = knowledge("renal_mass_hu_ranges").values
    v = l.mean_hu
    if v < fat:
        cat = "fat-containing"
    elif v <= cyst:
        cat = "simple cyst"
    elif v <= hyper:
        cat = "indeterminate"
    else:
        if f.study.contrast_phase.phase != "non_contrast":
            raise _Cannot(f"{l.id} mean {_fmt(v)} HU > {_fmt(hyper)} HU on a {f.study.contrast_phase.phase} study: "
                          "a hyperdense cyst is defined on non-contrast CT (this may be enhancement)", [l.id], "renal_mass_hu_ranges")
        cat = "hyperdense cyst"
    return _Result(cat, None, [l.id], "renal_mass_hu_ranges", f"{l.id} mean {_fmt(v)} HU: {cat}")


def _h_spleno_grade(f: Findings, q: Question) -> _Result:
    key = "splenomegaly_grades_ml"
    mild, moderate, severe = knowledge(key).values
    o = f.organ("spleen")
    if o is None:
        raise _Cannot("no spleen mask in this study", rule=key)
    ids = [_oid("spleen")]
    if o.status == Status.absent:
        raise _Cannot("the spleen mask is empty: organ not found", ids, key)

    def grade(v: float) -> str:
        return ("normal (no splenomegaly)" if v <= mild else "mild" if v <= moderate else "moderate" if v <= severe else "severe")
    if o.status == Status.measured and o.volume_ml is not None:
        g = grade(o.volume_ml)
        return _Result(g, None, ids, key, f"spleen volume {_fmt(o.volume_ml, 1)} mL: {g} ({knowledge(key).rule})")
    lb = o.imaged_volume_ml or 0.0  # the imaged part, as Findings records it
    if lb > severe:
        return _Result("severe", None, ids, key, f"spleen truncated, imaged part alone {lb:.1f} mL > {_fmt(severe)} mL: severe")
    raise _Cannot(f"the spleen reaches the scan edge ({', '.join(o.touches_edges)}): volume unknown (imaged part {lb:.1f} mL, "
                  "a lower bound)", ids, key)
