"""Handlers of the per-lesion facts Findings records: short axis, 3D diameter, size thresholds
(decided from a lower bound when the lesion is cut by the scan edge and the bound decides),
RECIST measurability, composition, kidney T stage, completeness and the key slice."""

from __future__ import annotations

from perception.registry import organ_family
from perception.schema import Findings
from reasoning.limitations import slice_number, slice_phrase
from reasoning.vqa.lookup import (
    SIZE_FIELDS,
    _pick,
    _require_whole_for_size_stage,
    _size,
    _which,
)
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result


def _h_size(which: str):
    field_, name = SIZE_FIELDS[which]

    def h(f: Findings, q: Question) -> _Result:
        l = _pick(f, q, q.organ)
        v, qual, text = _size(l, which)
        where = f" on {slice_phrase(l, f.study)}" if which in ("long_axis", "short_axis") else ""
        return _Result(v, "mm", [l.id], f"lesion {field_}", f"{l.id} ({_which(q)}) {name} {text}{where}", qualifier=qual)
    return h


def _h_size_threshold(f: Findings, q: Question) -> _Result:
    if q.threshold_mm is None:
        raise _Cannot("lesion size threshold needs the size to compare with (threshold_mm)")
    l = _pick(f, q, q.organ)
    field_, name = SIZE_FIELDS[q.diameter]
    v, qual, text = _size(l, q.diameter)
    t = q.threshold_mm
    rule = f"lesion {field_} {'>' if q.direction == 'larger' else '<'} {_fmt(t, 1)} mm"
    head = f"{l.id} ({_which(q)}) {name} {text}"
    if qual == "exact":
        pos = v > t if q.direction == "larger" else v < t
        rel = ">" if v > t else "<" if v < t else "="
        return _Result("yes" if pos else "no", None, [l.id], rule, f"{head} {rel} {_fmt(t, 1)} mm", qualifier=qual)
    # a lower bound: the true size is >= v
    if q.direction == "larger" and v > t:
        return _Result("yes", None, [l.id], rule, f"{head}: already the imaged part exceeds {_fmt(t, 1)} mm", qualifier=qual)
    if q.direction == "smaller" and v >= t:
        return _Result("no", None, [l.id], rule, f"{head}: already the imaged part reaches {_fmt(t, 1)} mm, so it is not smaller",
                       qualifier=qual)
    raise _Cannot(f"{head}: the complete size may lie on either side of {_fmt(t, 1)} mm", [l.id], rule)


def _h_recist(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    return _Result("yes" if l.recist_measurable else "no", None, [l.id], "recist_measurable",
                   f"{l.id} ({_which(q)}): {l.recist_rule}: {'measurable' if l.recist_measurable else 'not measurable'} "
                   "(RECIST 1.1)")


_COMPOSITION = {"fat": "fat-containing", "cystic": "cystic", "calcified": "calcified"}


def _h_composition(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    flags = [(c.split(":", 1)[0].strip(), c) for c in l.components]
    found = [(_COMPOSITION[k], c) for k, c in flags if k in _COMPOSITION]
    if l.kind == "cyst" and not any(n == "cystic" for n, _ in found):
        found.insert(0, ("cystic", f"mask {l.mask} typed cyst"))
    rule = l.composition_rule or "composition rules not recorded"
    if found:
        value = ", ".join(n for n, _ in found)
        return _Result(value, None, [l.id], "lesion components (composition rules)",
                       f"{l.id} ({_which(q)}): {'; '.join(c for _, c in found)} ({rule})", accept={n for n, _ in found})
    if l.composition_rule is None or "not assessed" in l.composition_rule:
        raise _Cannot(f"{l.id}: no composition flag, but not every composition rule ran ({rule}): solid cannot be stated",
                      [l.id], "lesion components (composition rules)")
    return _Result("solid", None, [l.id], "lesion components (composition rules)",
                   f"{l.id} ({_which(q)}) mean {_fmt(l.mean_hu)} HU (SD {_fmt(l.sd_hu)}): no fat, cystic or calcified flag "
                   f"({rule}): solid", accept={"solid"})


def _h_kidney_t(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ or "kidney")
    if not (l.organ and organ_family(l.organ) == "kidney"):
        raise _Cannot(f"{l.id} is not a kidney lesion (host {l.organ or 'none'}): the kidney T stage does not apply", [l.id])
    h = next((h for h in l.staging if h.system == "AJCC8 kidney T"), None)
    if h is None:
        raise _Cannot(f"{l.id}: no AJCC8 kidney T hint ({'; '.join(f'{x.system}: {x.rule}' for x in l.staging) or 'none'}); "
                      "kidney T is staged for kidney tumours, not cysts", [l.id], "kidney_t_stage_mm")
    if h.category == "not assessed":
        raise _Cannot(f"{l.id}: AJCC8 kidney T not assessed: {h.rule}", [l.id], "kidney_t_stage_mm")
    _require_whole_for_size_stage(l, h.category, ("T1a", "T1b", "T2a"), "kidney_t_stage_mm")
    return _Result(h.category, None, [l.id], "kidney_t_stage_mm", f"{l.id} ({_which(q)}): {h.rule}")


def _h_completeness(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    cut = l.size_qualifier == "lower_bound" or bool(l.touches_edges)
    yes = cut if q.negated else not cut  # negated: 'is it cut off by the scan edge?'
    if cut:
        return _Result("yes" if yes else "no", None, [l.id], "lesion size_qualifier",
                       f"{l.id} ({_which(q)}) reaches the scan edge ({', '.join(l.touches_edges)}): cut by the scan edge, its "
                       "sizes are lower bounds")
    return _Result("yes" if yes else "no", None, [l.id], "lesion size_qualifier",
                   f"{l.id} ({_which(q)}) does not reach the scan edge: completely imaged")


def _h_key_slice(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    n = slice_number(l)
    how = ("DICOM InstanceNumber" if l.key_slice is not None and l.key_slice.instance_number is not None else
           "volume slice in position order, InstanceNumber not recorded" if f.study.source_format == "dicom" and l.key_slice is None
           else "1-based image number along the axial axis in file order")
    return _Result(n, "slice", [l.id], "lesion key_slice (image of the RECIST long axis)",
                   f"{l.id} ({_which(q)}): long axis {_fmt(l.long_axis_mm, 1)} mm on {slice_phrase(l, f.study)} ({how})")
