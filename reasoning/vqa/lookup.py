"""Reading organs and lesions out of Findings for the handlers: an organ's members, its lesions,
the lesion masks that cover it, the lesion a question means, measured volumes and mean HU. Each
raises ``_Cannot`` with the reason when the findings cannot support the read."""

from __future__ import annotations

from typing import Callable

from perception.registry import ORGANS, organ_family
from perception.schema import Findings, Lesion, Organ, Status
from reasoning.knowledge import knowledge
from reasoning.limitations import search_of
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result

_FAMILIES = set(ORGANS.values())


def _oid(name: str) -> str:
    return f"organ:{name}"


def _is_family(name: str) -> bool:
    return name in _FAMILIES and not name.endswith(("_left", "_right"))


def _members(f: Findings, organ: str) -> list[Organ]:
    """Organs of Findings that make up ``organ`` (itself, or the members of a family)."""
    o = f.organ(organ)
    if o is not None:
        return [o]
    return [o for o in f.organs if organ_family(o.name) == organ]


def _lesions(f: Findings, organ: str | None) -> list[Lesion]:
    if organ is None:
        return list(f.lesions)
    if _is_family(organ):
        return [l for l in f.lesions if l.organ and organ_family(l.organ) == organ]
    return [l for l in f.lesions if l.organ == organ]


def _organ_name(organ: str) -> str:
    return organ.replace("_", " ") if not organ.endswith(("_left", "_right")) else \
        f"{organ.rsplit('_', 1)[1]} {organ.rsplit('_', 1)[0].replace('_', ' ')}"


def _imaged(f: Findings, organ: str) -> tuple[list[Organ], str]:
    """Members of the organ that are imaged, and a note on truncation; _Cannot when none is."""
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study: the organ was not segmented")
    present = [o for o in mem if o.status != Status.absent]
    if not present:
        raise _Cannot(f"the {_organ_name(organ)} mask is empty: organ not found", [_oid(o.name) for o in mem])
    trunc = [o.name for o in present if o.status == Status.truncated_by_fov]
    note = f" (in the imaged part: {', '.join(trunc)} truncated by the scan edge)" if trunc else ""
    return present, note


def _require_coverage(f: Findings, organ: str, ids: list[str], kind: str | None = None) -> list[str]:
    """What searched ``organ`` for lesions (of ``kind``; None: of every kind) (Findings.lesion_search, the
    one field reports read too); _Cannot when it was not so searched, or when coverage is not recorded:
    absence cannot be stated."""
    searched, why, _ = search_of(f, organ, kind)
    if not searched:
        raise _Cannot(f"lesions were not searched for in the {_organ_name(organ)} ({why}): absence cannot be stated", ids)
    return [why.removeprefix("searched by ")]


def _is_cystic(l: Lesion) -> bool:
    return l.kind == "cyst" or any(c.startswith("cystic") for c in l.components)


def _lesion_class(l: Lesion) -> tuple[str, str]:
    """('cyst' | 'tumor', why). Mask type first; kidney by the HU rule; elsewhere by the cystic flag."""
    if l.kind == "cyst":
        return "cyst", f"{l.id} mask {l.mask} typed cyst"
    if l.kind in ("tumor", "pdac", "pnet"):
        return "tumor", f"{l.id} mask {l.mask} typed {l.kind}"
    if l.organ and organ_family(l.organ) == "kidney":
        thr = knowledge("kidney_lesion_tumor_hu").values[0]
        cls = "tumor" if l.mean_hu > thr else "cyst"
        return cls, f"{l.id} untyped, mean {l.mean_hu:.1f} HU {'>' if cls == 'tumor' else '<='} {thr} HU"
    if _is_cystic(l):
        return "cyst", f"{l.id} untyped, flagged cystic ({next(c for c in l.components if c.startswith('cystic'))})"
    return "tumor", f"{l.id} untyped, not cystic by attenuation (mean {l.mean_hu:.1f} HU, SD {l.sd_hu:.1f})"


def _pick(f: Findings, q: Question, default_organ: str | None, what: str = "lesion",
          keep: Callable[[Lesion], bool] | None = None) -> Lesion:
    if q.lesion_id:
        try:
            return f.lesion(q.lesion_id)
        except KeyError as e:
            raise _Cannot(str(e).strip("'\"")) from None
    organ = q.organ or default_organ
    les = [l for l in _lesions(f, organ) if keep is None or keep(l)]
    if not les:
        where = f" in the {_organ_name(organ)}" if organ else ""
        cov = "" if organ is None or search_of(f, organ)[0] else f" (lesions were not searched for in the {_organ_name(organ)})"
        raise _Cannot(f"no {what}{where}{cov}", [_oid(o.name) for o in _members(f, organ)] if organ else [])
    ranked = sorted(les, key=lambda l: -l.volume_ml)  # stable: lowest id first among equal volumes
    if q.rank == 1:
        return ranked[0]
    if q.rank == -1:
        return ranked[-1]
    if q.rank < 1 or q.rank > len(ranked):
        where = f" in the {_organ_name(organ)}" if organ else ""
        raise _Cannot(f"asked for lesion number {q.rank} by size, but there are {len(ranked)} {what}(s){where}",
                      [l.id for l in ranked])
    return ranked[q.rank - 1]


def _which(q: Question) -> str:
    if q.lesion_id:
        return "as asked"
    return {1: "largest by volume", -1: "smallest by volume"}.get(q.rank, f"number {q.rank} by volume")


def _whole(l: Lesion) -> None:
    if l.status == Status.truncated_by_fov or l.touches_edges:
        raise _Cannot(f"{l.id} reaches the scan edge ({', '.join(l.touches_edges)}): its size is a lower bound", [l.id])


SIZE_FIELDS = {"long_axis": ("long_axis_mm", "RECIST long axis"), "short_axis": ("short_axis_mm", "short axis"),
               "3d": ("max_diameter_3d_mm", "maximal 3D diameter"), "volume": ("volume_ml", "volume")}


def _cut(l: Lesion) -> bool:
    return l.size_qualifier == "lower_bound" or l.status == Status.truncated_by_fov or bool(l.touches_edges)


def _size(l: Lesion, which: str) -> tuple[float, str, str]:
    """(value, qualifier, text) of one size of a lesion; a lesion cut by the scan edge gives a lower bound
    ('at least 25.0 mm, cut by the scan edge (axis2_max)')."""
    field_, _ = SIZE_FIELDS[which]
    v = getattr(l, field_)
    unit, nd = ("mL", 3) if which == "volume" else ("mm", 1)
    if _cut(l):
        return v, "lower_bound", f"at least {_fmt(v, nd)} {unit}, cut by the scan edge ({', '.join(l.touches_edges)})"
    return v, "exact", f"{_fmt(v, nd)} {unit}"


def _require_whole_for_size_stage(l: Lesion, category: str, size_categories: tuple[str, ...], key: str) -> None:
    """A size-based T category below the largest one, from a lesion cut by the scan edge, is only a lower bound."""
    if _cut(l) and category in size_categories:
        raise _Cannot(f"{l.id} reaches the scan edge ({', '.join(l.touches_edges)}): its size is a lower bound, so the "
                      f"size-based T category is at least {category}, not known exactly", [l.id], key)


def _measured_volume(f: Findings, organ: str) -> tuple[float, list[str]]:
    """Volume of an organ (a family adds its members); _Cannot unless every part is measured."""
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study: volume not measurable")
    ids = [_oid(o.name) for o in mem]
    for o in mem:
        if o.status == Status.absent:
            raise _Cannot(f"the {_organ_name(o.name)} mask is empty: organ not found", ids)
        if o.status != Status.measured or o.volume_ml is None:
            edges = ", ".join(o.touches_edges)
            raise _Cannot(f"the {_organ_name(o.name)} reaches the scan edge ({edges}): incompletely imaged, volume not measured "
                          f"(imaged part {o.imaged_volume_ml or 0.0:.1f} mL, a lower bound)", ids)
    return round(sum(o.volume_ml for o in mem), 4), ids


def _mean_hu(f: Findings, organ: str) -> tuple[float, list[str]]:
    if _is_family(organ) and f.organ(organ) is None and len(_members(f, organ)) > 1:
        raise _Cannot(f"'{organ}' names {len(_members(f, organ))} organs ({', '.join(o.name for o in _members(f, organ))}): "
                      "ask about one side")
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study")
    o = mem[0]
    if o.plausibility is not None and not o.plausibility.plausible:
        failed = "; ".join(c.detail for c in o.plausibility.checks if not c.passed)
        raise _Cannot(f"the {_organ_name(o.name)} mask is implausible ({failed}): nothing is derived from it", [_oid(o.name)])
    if o.mean_hu is None:
        raise _Cannot(f"no {_organ_name(o.name)} HU measured (status {o.status.value})", [_oid(o.name)])
    return o.mean_hu, [_oid(o.name)]


def _hu_ratio(f: Findings, a: str, b: str) -> tuple[float, float, float, list[str]]:
    """(mean a, mean b, a/b, ids): the one place an organ HU ratio is computed. A ratio of mean HU is
    only defined when both means are above 0 HU (water); otherwise _Cannot, naming both organs."""
    va, ia = _mean_hu(f, a)
    vb, ib = _mean_hu(f, b)
    if va <= 0 or vb <= 0:
        low = ", ".join(f"{_organ_name(o)} {_fmt(v)} HU" for o, v in ((a, va), (b, vb)) if v <= 0)
        raise _Cannot(f"{_organ_name(a)}-to-{_organ_name(b)} HU ratio not defined: a mean at or below 0 HU ({low}) means "
                      "fat, air or a mask outside the organ, where the ratio rules do not apply", ia + ib)
    return va, vb, va / vb, ia + ib


def _require_noncontrast(f: Findings, key: str) -> None:
    cp = f.study.contrast_phase
    if cp.phase != "non_contrast":
        raise _Cannot(f"{key} requires non-contrast CT; this study's phase is {cp.phase} ({cp.rule})", ["study"], key)


def _volume_threshold(f: Findings, organ: str, thr: float, key: str, what: str) -> _Result:
    """yes/no: organ volume > thr; a truncated organ answers 'yes' from its lower bound only."""
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study", rule=key)
    ids = [_oid(o.name) for o in mem]
    o = mem[0]
    if len(mem) > 1:
        results = [_volume_threshold(f, m.name, thr, key, what) for m in mem]
        yes = [r for r in results if r.value == "yes"]
        if yes:
            return _Result("yes", None, ids, key, "; ".join(r.explanation for r in yes))
        return _Result("no", None, ids, key, "; ".join(r.explanation for r in results))
    if o.status == Status.absent:
        raise _Cannot(f"the {_organ_name(o.name)} mask is empty: organ not found", ids, key)
    if o.status == Status.measured and o.volume_ml is not None:
        pos = o.volume_ml > thr
        return _Result("yes" if pos else "no", None, ids, key,
                       f"{_organ_name(o.name)} volume {_fmt(o.volume_ml, 1)} mL {'>' if pos else '<='} {_fmt(thr, 1)} mL: "
                       f"{what if pos else 'not ' + what}")
    lb = o.imaged_volume_ml or 0.0  # the imaged part (Findings records it; readers never re-derive geometry)
    if lb > thr:
        return _Result("yes", None, ids, key, f"{_organ_name(o.name)} truncated by the scan edge, but its imaged part alone is "
                                              f"{lb:.1f} mL > {_fmt(thr, 1)} mL: {what}")
    raise _Cannot(f"the {_organ_name(o.name)} reaches the scan edge ({', '.join(o.touches_edges)}): volume unknown; the imaged "
                  f"part ({lb:.1f} mL) does not exceed {_fmt(thr, 1)} mL, so {what} can be neither shown nor excluded", ids, key)
