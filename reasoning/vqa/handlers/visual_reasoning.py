"""Handlers of the visual reasoning subtypes: adjacency, kidney and segment comparisons, the
largest lesion's attenuation, diameter, location and slice, counts, outliers, clustering,
multi-organ burden, aggregation, enlargement and the tumour-organ HU difference."""

from __future__ import annotations

import math

from perception.registry import SUBSEGMENTS, organ_family
from perception.schema import Findings, Lesion
from reasoning.knowledge import knowledge
from reasoning.limitations import slice_phrase
from reasoning.vqa.lookup import (SIZE_FIELDS, _cut, _imaged, _size, _lesions, _measured_volume, _oid, _organ_name, _pick, _require_coverage,
                                  _volume_threshold, _which)
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result
from reasoning.vqa.vocabulary import segment_display


def _h_adjacent(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    adj = list(l.adjacent_organs)
    mm = f.settings.adjacency_mm
    if not adj:
        return _Result("none", None, [l.id], f"adjacent_organs (within {_fmt(mm)} mm)",
                       f"no other organ within {_fmt(mm)} mm of {l.id}", accept={"none"})
    acc = set(adj) | {organ_family(a) for a in adj}
    return _Result(adj[0], None, [l.id], f"adjacent_organs (within {_fmt(mm)} mm, nearest first)",
                   f"organs within {_fmt(mm)} mm of {l.id}, nearest first: {', '.join(adj)}", accept=acc)


def _kidney_lesion_volumes(f: Findings) -> tuple[dict[str, float], dict[str, bool], list[str]]:
    """Total lesion volume per kidney, whether it is a lower bound (a lesion cut by the scan edge), and the ids."""
    ids = []
    out, cut = {}, {}
    for side in ("kidney_left", "kidney_right"):
        _imaged(f, side)
        les = _lesions(f, side)
        if not les:
            _require_coverage(f, side, [_oid(side)])
        out[side] = sum(l.volume_ml for l in les)
        cut[side] = any(_cut(l) for l in les)
        ids += [_oid(side)] + [l.id for l in les]
    return out, cut, ids


def _h_asymmetry(f: Findings, q: Question) -> _Result:
    vols, cut, ids = _kidney_lesion_volumes(f)
    ratio = knowledge("bilateral_kidney_asymmetry").values[0]
    lv, rv = vols["kidney_left"], vols["kidney_right"]
    bound = {s: " (at least: a lesion is cut by the scan edge)" if cut[s] else "" for s in cut}
    desc = f"lesion volume left {_fmt(lv, 3)} mL{bound['kidney_left']}, right {_fmt(rv, 3)} mL{bound['kidney_right']}"
    if lv == 0 and rv == 0:
        return _Result("symmetric", None, ids, "bilateral_kidney_asymmetry", f"no lesion in either kidney ({desc})")
    (big_s, big), (small_s, _) = sorted((("kidney_left", "left kidney"), ("kidney_right", "right kidney")),
                                        key=lambda x: -vols[x[0]])
    hi, lo = vols[big_s], vols[small_s]
    if (lo == 0 or hi >= ratio * lo) and not cut[small_s]:  # a lower bound on the larger side only strengthens this
        return _Result(big, None, ids, "bilateral_kidney_asymmetry", f"{desc}: {big} more affected (>= {_fmt(ratio)}x)")
    if cut[big_s] or cut[small_s]:
        raise _Cannot(f"{desc}: with a lower bound the ratio may lie on either side of {_fmt(ratio)}", ids,
                      "bilateral_kidney_asymmetry")
    return _Result("symmetric", None, ids, "bilateral_kidney_asymmetry", f"{desc}: ratio {hi / lo:.2f} < {_fmt(ratio)}")


def _segment_stats(f: Findings, organ: str) -> tuple[dict[str, int], dict[str, float], list[Lesion]]:
    les = _lesions(f, organ)
    counts: dict[str, int] = {}
    vols: dict[str, float] = {}
    for l in les:
        for s in l.segments:
            counts[s] = counts.get(s, 0) + 1
        for sh in l.segment_shares:
            vols[sh.name] = vols.get(sh.name, 0.0) + sh.fraction * l.volume_ml
    return counts, vols, les


def _require_segments(les: list[Lesion], organ: str) -> None:
    if not any(l.segment_shares for l in les):
        need = "liver_segment_1..8" if organ == "liver" else "sub-segment"
        raise _Cannot(f"no {need} masks for the {_organ_name(organ)} lesions ({', '.join(l.id for l in les)}): location unknown",
                      [l.id for l in les])


def _h_inter_segment(f: Findings, q: Question) -> _Result:
    organ = q.organ or (SUBSEGMENTS.get(q.segments[0]) if q.segments else "liver")
    counts, vols, les = _segment_stats(f, organ)
    if not les:
        raise _Cannot(f"no lesion in the {_organ_name(organ)}", [_oid(organ)])
    _require_segments(les, organ)
    metric = q.metric or "count"
    table = counts if metric == "count" else vols
    segs = list(q.segments) or sorted(set(counts) | set(vols))
    vals = {s: table.get(s, 0) for s in segs}
    if len(vals) < 2:
        raise _Cannot(f"inter-segment comparison needs two segments; lesions lie only in {', '.join(vals) or 'no segment'}",
                      [l.id for l in les])
    order = sorted(vals, key=lambda s: (-vals[s], s)) if q.direction == "larger" else sorted(vals, key=lambda s: (vals[s], s))
    desc = ", ".join(f"{segment_display(s)} {_fmt(vals[s], 3) if metric == 'volume' else vals[s]}" for s in segs)
    what = "lesions (holding > 10 % of their volume there)" if metric == "count" else "lesion volume (mL)"
    if math.isclose(vals[order[0]], vals[order[1]], abs_tol=1e-9):
        return _Result("equal", None, [l.id for l in les], f"segment {metric}", f"{what}: {desc}: tie")
    return _Result(order[0], None, [l.id for l in les], f"segment {metric}",
                   f"{what}: {desc}: {'most' if q.direction == 'larger' else 'fewest'} in {segment_display(order[0])}")


def _h_kidney_volume_cmp(f: Findings, q: Question) -> _Result:
    lv, li = _measured_volume(f, "kidney_left")
    rv, ri = _measured_volume(f, "kidney_right")
    desc = f"left {_fmt(lv, 1)} mL, right {_fmt(rv, 1)} mL"
    if lv == rv:
        return _Result("equal", None, li + ri, "organ volume_ml", f"{desc}: equal")
    larger = "left kidney" if lv > rv else "right kidney"
    smaller = "right kidney" if lv > rv else "left kidney"
    ans = larger if q.direction == "larger" else smaller
    return _Result(ans, None, li + ri, "organ volume_ml", f"{desc}: {ans} is {q.direction}")


def _h_attenuation(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    if l.attenuation is None:
        raise _Cannot(f"{l.id}: no host organ HU to compare with", [l.id])
    return _Result(l.attenuation.value, None, [l.id], "attenuation_margin_hu",
                   f"{l.id} mean {_fmt(l.mean_hu)} HU vs {_organ_name(l.organ)} {_fmt(l.organ_mean_hu)} HU "
                   f"(difference {l.hu_difference:+.1f} HU, margin {_fmt(f.settings.attenuation_margin_hu)} HU): {l.attenuation.value}")


def _h_diameter(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    field_, name = SIZE_FIELDS[q.diameter]
    v, qual, text = _size(l, q.diameter)
    return _Result(v, "mm", [l.id], f"lesion {field_}",
                   f"{l.id} ({_which(q)}) {name} {text}" + (f" on {slice_phrase(l, f.study)}" if q.diameter != "3d" else ""),
                   qualifier=qual)


def _h_location(f: Findings, q: Question) -> _Result:
    organ = q.organ or "liver"
    l = _pick(f, q, organ)
    if l.organ and organ_family(l.organ) == "kidney":
        return _Result(l.organ, None, [l.id], "lesion host organ",
                       f"{l.id} lies in the {_organ_name(l.organ)}" + (f", {l.kidney_pole} pole" if l.kidney_pole else ""),
                       accept={l.organ, f"{l.organ.rsplit('_', 1)[1]} kidney"})
    if not l.segment_shares:
        raise _Cannot(f"{l.id}: no sub-segment masks ({'liver_segment_1..8' if organ == 'liver' else 'segments'}) to locate it",
                      [l.id])
    top = l.segment_shares[0]
    return _Result(top.name, None, [l.id], "segment_shares (largest share)",
                   f"{l.id} lies mostly in {segment_display(top.name)} ({100 * top.fraction:.0f} % of its volume"
                   + (f"; also {', '.join(f'{segment_display(s.name)} {100 * s.fraction:.0f} %' for s in l.segment_shares[1:])}"
                      if len(l.segment_shares) > 1 else "") + ")")


def _h_slice(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    ms = l.max_area_slice
    if ms is None:
        raise _Cannot(f"{l.id}: the slice of largest cross-sectional area is not recorded (findings older than schema 1.2.0); "
                      f"its long axis lies on {slice_phrase(l, f.study)}", [l.id], "lesion max_area_slice")
    return _Result(ms.index, "slice", [l.id], "lesion max_area_slice (axial slice of largest lesion area, 0-based index)",
                   f"{l.id} ({_which(q)}): largest cross-section on axial slice index {ms.index} (0-based along the axial "
                   f"voxel axis in file order, DeepTumorVQA's convention; image {ms.image_number} as a viewer numbers it, "
                   f"table position {ms.table_position_mm:.1f} mm)")


def _h_count_location(f: Findings, q: Question) -> _Result:
    loc = q.location or (q.segments[0] if q.segments else None) or q.organ
    if not loc:
        raise _Cannot("lesion count by location needs a location (a sub-segment or an organ)")
    if loc in SUBSEGMENTS:
        organ = SUBSEGMENTS[loc]
        les = _lesions(f, organ)
        if not les:
            present, note = _imaged(f, organ)
            _require_coverage(f, organ, [_oid(o.name) for o in present])
            return _Result(0, "lesions", [_oid(o.name) for o in present], "Lesion.segments (> 10 % share)",
                           f"no lesion in the {_organ_name(organ)}{note}, so none in {segment_display(loc)}")
        _require_segments(les, organ)
        hit = [l for l in les if loc in l.segments]
        return _Result(len(hit), "lesions", [l.id for l in les], "Lesion.segments (> 10 % share)",
                       f"{len(hit)} lesion(s) with > 10 % of their volume in {segment_display(loc)}"
                       + (f": {', '.join(l.id for l in hit)}" if hit else ""))
    return _count(f, loc, "lesion count by location")


def _count(f: Findings, organ: str | None, rule: str) -> _Result:
    if organ is None:
        return _Result(len(f.lesions), "lesions", [l.id for l in f.lesions], "lesion instances",
                       f"{len(f.lesions)} lesion(s) in the study")
    present, note = _imaged(f, organ)
    les = _lesions(f, organ)
    if not les:
        _require_coverage(f, organ, [_oid(o.name) for o in present])
    dropped = f"; {f.dropped_components} component(s) below the minimum size not counted (study-wide)" if f.dropped_components else ""
    return _Result(len(les), "lesions", [l.id for l in les] or [_oid(o.name) for o in present],
                   "lesion instances (26-connected components)",
                   f"{len(les)} lesion(s) in the {_organ_name(organ)}{note}" + (f": {', '.join(l.id for l in les)}" if les else "")
                   + dropped)


def _h_counting(f: Findings, q: Question) -> _Result:
    return _count(f, q.organ, "lesion counting")


def _h_outlier(f: Findings, q: Question) -> _Result:
    ratio, n_min = knowledge("lesion_outlier").values
    organ = q.organ
    les = sorted(_lesions(f, organ), key=lambda l: -l.volume_ml)
    where = f" in the {_organ_name(organ)}" if organ else ""
    if organ and not les:
        present, _ = _imaged(f, organ)
        _require_coverage(f, organ, [_oid(o.name) for o in present])
    if len(les) < n_min:
        return _Result("no", None, [l.id for l in les], "lesion_outlier",
                       f"{len(les)} lesion(s){where}: the outlier rule needs >= {int(n_min)}")
    if any(_cut(l) for l in les[1:]):
        raise _Cannot(f"{', '.join(l.id for l in les[1:] if _cut(l))} cut by the scan edge: its volume is a lower bound, so "
                      "which lesions are the largest two, and their ratio, are unknown", [l.id for l in les], "lesion_outlier")
    r = les[0].volume_ml / les[1].volume_ml
    pos = r >= ratio
    if _cut(les[0]) and not pos:
        raise _Cannot(f"largest {les[0].id} at least {_fmt(les[0].volume_ml, 3)} mL (cut by the scan edge) / second "
                      f"{les[1].id} {_fmt(les[1].volume_ml, 3)} mL = at least {r:.2f}: may lie on either side of {_fmt(ratio)}",
                      [l.id for l in les], "lesion_outlier")
    least = "at least " if _cut(les[0]) else ""
    return _Result("yes" if pos else "no", None, [l.id for l in les], "lesion_outlier",
                   f"largest {les[0].id} {least}{_fmt(les[0].volume_ml, 3)} mL / second {les[1].id} {_fmt(les[1].volume_ml, 3)} mL = "
                   f"{least}{r:.2f} {'>=' if pos else '<'} {_fmt(ratio)} ({len(les)} lesions{where})")


def _h_clustering(f: Findings, q: Question) -> _Result:
    hi, two = knowledge("liver_lesion_clustering").values
    les = _lesions(f, "liver")
    if not les:
        raise _Cannot("no liver lesion: clustering undefined", [_oid("liver")], "liver_lesion_clustering")
    _require_segments(les, "liver")
    lost = [l.id for l in les if not l.segment_shares]
    if lost:
        raise _Cannot(f"liver lesion(s) {', '.join(lost)} lie outside every liver segment mask: they cannot be counted in a "
                      "segment", [l.id for l in les], "liver_lesion_clustering")
    counts: dict[str, int] = {}
    for l in les:  # each lesion counts once, in the segment holding its largest share
        counts[l.segment_shares[0].name] = counts.get(l.segment_shares[0].name, 0) + 1
    n = len(les)
    shares = sorted(((c / n, s) for s, c in counts.items()), key=lambda x: (-x[0], x[1]))
    top1 = shares[0][0]
    top2 = top1 + (shares[1][0] if len(shares) > 1 else 0.0)
    desc = ", ".join(f"{segment_display(s)} {counts[s]} ({100 * sh:.0f} %)" for sh, s in shares)
    if top1 > hi:
        cat = "highly clustered"
    elif top2 >= two:
        cat = "somewhat clustered"
    else:
        cat = "widely distributed"
    return _Result(cat, None, [l.id for l in les], "liver_lesion_clustering",
                   f"liver lesions per segment (each in the segment holding most of it; {n} lesions): {desc}: {cat}")


def _h_multi_organ(f: Findings, q: Question) -> _Result:
    fams = [organ_family(o) for o in q.organs] or sorted({organ_family(l.organ) for l in f.lesions if l.organ})
    fams = list(dict.fromkeys(fams))
    if len(fams) < 2:
        raise _Cannot(f"multi-organ comparison needs two organs (got {', '.join(fams) or 'none'})")
    vols, cut, ids = {}, {}, []
    for fam in fams:
        present, _ = _imaged(f, fam)
        les = _lesions(f, fam)
        if not les:
            _require_coverage(f, fam, [_oid(o.name) for o in present])
        vols[fam] = sum(l.volume_ml for l in les)
        cut[fam] = any(_cut(l) for l in les)
        ids += [l.id for l in les] or [_oid(o.name) for o in present]
    order = sorted(fams, key=lambda x: -vols[x]) if q.direction == "larger" else sorted(fams, key=lambda x: vols[x])
    desc = ", ".join(f"{x} {'at least ' if cut[x] else ''}{_fmt(vols[x], 3)} mL" for x in fams)
    # a lower bound can only grow: the largest total is decided when the others are exact, the smallest when it is exact
    undecided = any(cut[x] for x in order[1:]) if q.direction == "larger" else cut[order[0]]
    if undecided or (math.isclose(vols[order[0]], vols[order[1]], abs_tol=1e-9) and any(cut.values())):
        raise _Cannot(f"lesion volume {desc}: lesions cut by the scan edge make the comparison undecided", ids,
                      "total lesion volume per organ")
    if math.isclose(vols[order[0]], vols[order[1]], abs_tol=1e-9):
        return _Result("equal", None, ids, "total lesion volume per organ", f"lesion volume {desc}: tie")
    return _Result(order[0], None, ids, "total lesion volume per organ",
                   f"lesion volume {desc}: {'greatest' if q.direction == 'larger' else 'least'} in the {order[0]}")


def _h_aggregation(f: Findings, q: Question) -> _Result:
    organs = list(q.organs) or ([q.organ] if q.organ else [])
    if not organs:
        raise _Cannot("organ aggregation needs the organs to aggregate")
    measure = q.measure or "volume"
    if measure == "volume":
        parts = [(o, *_measured_volume(f, o)) for o in organs]
        tot = round(sum(v for _, v, _ in parts), 4)
        return _Result(tot, "mL", [i for _, _, ids in parts for i in ids], "sum of organ volume_ml",
                       "combined volume " + " + ".join(f"{_organ_name(o)} {_fmt(v, 1)}" for o, v, _ in parts) + f" = {_fmt(tot, 1)} mL")
    parts = [(o, _count(f, o, "")) for o in organs]
    if measure == "lesion_count":
        tot = sum(int(r.value) for _, r in parts)
        return _Result(tot, "lesions", [i for _, r in parts for i in r.ids], "sum of lesion counts",
                       "lesions " + " + ".join(f"{_organ_name(o)} {r.value}" for o, r in parts) + f" = {tot}")
    les = [l for o in organs for l in _lesions(f, o)]
    tot = round(sum(l.volume_ml for l in les), 4)
    cut = [l.id for l in les if _cut(l)]
    return _Result(tot, "mL", [l.id for l in les] or [i for _, r in parts for i in r.ids], "sum of lesion volume_ml",
                   f"lesion volume in {', '.join(_organ_name(o) for o in organs)}: "
                   + (f"at least {_fmt(tot, 3)} mL ({', '.join(cut)} cut by the scan edge)" if cut else f"{_fmt(tot, 3)} mL"),
                   qualifier="lower_bound" if cut else "exact")


_ENLARGEMENT = {"spleen": ("splenomegaly_volume_ml", 0), "liver": ("liver_volume_reference_ml", 1),
                "kidney_left": ("kidney_volume_reference_ml", 1), "kidney_right": ("kidney_volume_reference_ml", 1),
                "kidney": ("kidney_volume_reference_ml", 1), "pancreas": ("pancreas_volume_reference_ml", 1)}


def _h_enlargement(f: Findings, q: Question) -> _Result:
    organ = q.organ
    if not organ:
        raise _Cannot("organ enlargement needs an organ")
    if organ not in _ENLARGEMENT:
        raise _Cannot(f"no reference volume for the {_organ_name(organ)} in the knowledge base "
                      f"(known: {', '.join(k for k in _ENLARGEMENT if k != 'kidney')})")
    key, i = _ENLARGEMENT[organ]
    return _volume_threshold(f, organ, knowledge(key).values[i], key, "enlarged")


def _h_hu_difference(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    if l.hu_difference is None:
        raise _Cannot(f"{l.id}: no host organ HU to compare with", [l.id])
    return _Result(l.hu_difference, "HU", [l.id], "lesion hu_difference (lesion mean - host mean)",
                   f"{l.id} mean {_fmt(l.mean_hu)} HU - {_organ_name(l.organ)} parenchyma {_fmt(l.organ_mean_hu)} HU "
                   f"= {l.hu_difference:+.2f} HU", accept=None)
