"""Handlers of the recognition subtypes: lesion existence (any, by class, by mask type) and
splenomegaly detection."""

from __future__ import annotations

from perception.registry import organ_family
from perception.schema import Findings
from reasoning.knowledge import knowledge
from reasoning.vqa.lookup import (_imaged, _is_cystic, _lesion_class, _lesions, _oid, _organ_name, _require_coverage,
                                  _volume_threshold)
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _Result


def _existence(f: Findings, organ: str, kind: str | None = None) -> _Result:
    present, note = _imaged(f, organ)
    ids = [_oid(o.name) for o in present]
    les = _lesions(f, organ)
    what = f"{kind} " if kind else ""
    if kind:
        classed = [(l, *_lesion_class(l)) for l in les]
        hit = [(l, why) for l, c, why in classed if c == kind]
        if hit:
            return _Result("yes", None, [l.id for l, _ in hit], "lesion class (mask type, else attenuation rule)",
                           f"{len(hit)} {kind}(s) in the {_organ_name(organ)}: " + "; ".join(w for _, w in hit))
        _require_coverage(f, organ, ids, kind)
        why = "; ".join(w for _, _, w in classed)
        return _Result("no", None, ids + [l.id for l in les], "lesion class (mask type, else attenuation rule)",
                       f"no {kind} in the {_organ_name(organ)}{note}" + (f": {why}" if why else ": no lesion"))
    if les:
        return _Result("yes", None, [l.id for l in les], "lesion masks",
                       f"{len(les)} lesion(s) in the {_organ_name(organ)}: {', '.join(l.id for l in les)}")
    cov = _require_coverage(f, organ, ids)
    dropped = f" ({f.dropped_components} component(s) below the minimum size dropped study-wide)" if f.dropped_components else ""
    return _Result("no", None, ids, "lesion masks",
                   f"no {what}lesion component in the {_organ_name(organ)}{note}; searched by {', '.join(cov)}{dropped}")


def _h_exist_fixed(organ: str, kind: str | None = None):
    def h(f: Findings, q: Question) -> _Result:
        return _existence(f, organ, kind)
    return h


def _h_kidney_exist(kind: str | None):
    def h(f: Findings, q: Question) -> _Result:
        organ = q.organ or "kidney"
        if organ_family(organ) != "kidney":
            raise _Cannot(f"this subtype is about the kidneys, not the {_organ_name(organ)}")
        return _existence(f, organ, kind)
    return h


def _h_lesion_existence(f: Findings, q: Question) -> _Result:
    if not q.organ:
        raise _Cannot("lesion existence needs an organ")
    return _existence(f, q.organ, q.lesion_kind)


def _typed_existence(kind: str):
    def h(f: Findings, q: Question) -> _Result:
        present, note = _imaged(f, "pancreas")
        ids = [_oid(o.name) for o in present]
        les = _lesions(f, "pancreas")
        hit = [l for l in les if l.kind == kind]
        if hit:
            return _Result("yes", None, [l.id for l in hit], "lesion mask type",
                           f"{', '.join(l.id for l in hit)} from mask {hit[0].mask} (typed {kind.upper()})")
        untyped = [l for l in les if l.kind not in ("pdac", "pnet", "cyst") and not _is_cystic(l)]
        if untyped:
            raise _Cannot(f"pancreatic lesion(s) {', '.join(l.id for l in untyped)} come from an untyped mask "
                          f"({', '.join(sorted({l.mask for l in untyped}))}): {kind.upper()} can be neither shown nor excluded "
                          "without a pancreatic_pdac / pancreatic_pnet mask", ids + [l.id for l in untyped], "lesion mask type")
        if not les:
            _require_coverage(f, "pancreas", ids)
        listing = ", ".join(f"{l.id} ({l.kind if l.kind != 'lesion' else 'cystic'})" for l in les)
        return _Result("no", None, ids + [l.id for l in les], "lesion mask type",
                       f"no {kind.upper()} in the pancreas{note}" + (f": lesions {listing}" if les else ": no lesion"))
    return h


def _h_splenomegaly(f: Findings, q: Question) -> _Result:
    thr = knowledge("splenomegaly_volume_ml").values[0]
    return _volume_threshold(f, "spleen", thr, "splenomegaly_volume_ml", "splenomegaly")
