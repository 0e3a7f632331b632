"""Handlers of the measurement subtypes: lesion and organ volume, organ and lesion HU, HU ratio,
tumour burden."""

from __future__ import annotations

from perception.schema import Findings, Status
from reasoning.vqa.lookup import (_hu_ratio, _lesions, _mean_hu, _measured_volume, _organ_name, _pick, _require_coverage, _size,
                                  _which, _whole)
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result


def _h_lesion_volume(f: Findings, q: Question) -> _Result:
    if q.aggregate == "total" and not q.lesion_id:
        organ = q.organ
        les = _lesions(f, organ)
        if not les:
            raise _Cannot(f"no lesion{' in the ' + _organ_name(organ) if organ else ''}")
        tot = round(sum(l.volume_ml for l in les), 4)
        cut = [l for l in les if _size(l, "volume")[1] == "lower_bound"]
        head = f"at least {_fmt(tot, 3)} mL ({', '.join(l.id for l in cut)} cut by the scan edge)" if cut else f"{_fmt(tot, 3)} mL"
        return _Result(tot, "mL", [l.id for l in les], "sum of lesion volume_ml",
                       f"total volume of {len(les)} lesion(s){' in the ' + _organ_name(organ) if organ else ''}: "
                       + " + ".join(f"{l.id} {_fmt(l.volume_ml, 3)}" for l in les) + f" = {head}",
                       qualifier="lower_bound" if cut else "exact")
    l = _pick(f, q, None)
    v, qual, text = _size(l, "volume")
    return _Result(v, "mL", [l.id], "lesion volume_ml (voxel count x voxel volume)",
                   f"{l.id} ({_organ_name(l.organ) if l.organ else 'no host organ'}, {_which(q)}): {text}", qualifier=qual)


def _h_organ_hu(f: Findings, q: Question) -> _Result:
    if not q.organ:
        raise _Cannot("organ HU measurement needs an organ")
    v, ids = _mean_hu(f, q.organ)
    o = f.organ(ids[0].split(":", 1)[1])
    trunc = " (organ truncated by the scan edge: imaged part)" if o and o.status == Status.truncated_by_fov else ""
    return _Result(v, "HU", ids, "organ mean_hu (organ mask minus all lesions)",
                   f"mean attenuation of the {_organ_name(o.name)} parenchyma {_fmt(v)} HU{trunc}")


def _h_hu_ratio(f: Findings, q: Question) -> _Result:
    a, b = q.organs[:2] if len(q.organs) >= 2 else ((q.organs[0], "spleen") if q.organs else ("liver", "spleen"))
    va, vb, r, ids = _hu_ratio(f, a, b)
    r = round(r, 4)
    return _Result(r, "ratio", ids, f"organ mean_hu ratio ({_organ_name(a)}/{_organ_name(b)})",
                   f"{_organ_name(a)}-to-{_organ_name(b)} HU ratio: {_organ_name(a)} {_fmt(va)} HU / "
                   f"{_organ_name(b)} {_fmt(vb)} HU = {r:.4f}")


def _h_organ_volume(f: Findings, q: Question) -> _Result:
    if not q.organ:
        raise _Cannot("organ volume measurement needs an organ")
    v, ids = _measured_volume(f, q.organ)
    both = " (both kidneys)" if q.organ == "kidney" else ""
    return _Result(v, "mL", ids, "organ volume_ml (organ mask with its lesions)",
                   f"{_organ_name(q.organ)} volume{both} {_fmt(v, 1)} mL")


def _h_burden(f: Findings, q: Question) -> _Result:
    organ = q.organ or "liver"
    vol, ids = _measured_volume(f, organ)
    les = _lesions(f, organ)
    if not les:
        _require_coverage(f, organ, ids)
    for l in les:
        _whole(l)
    tot = sum(l.volume_ml for l in les)
    pct = round(100.0 * tot / vol, 3)
    return _Result(pct, "%", ids + [l.id for l in les], "tumor_burden_percentage",
                   f"lesion volume {_fmt(tot, 3)} mL ({', '.join(l.id for l in les) or 'no lesion'}) / "
                   f"{_organ_name(organ)} volume {_fmt(vol, 1)} mL x 100 = {pct:.3f} %")


def _h_lesion_hu(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    return _Result(l.mean_hu, "HU", [l.id], "lesion mean_hu", f"{l.id} mean attenuation {_fmt(l.mean_hu)} HU (SD {_fmt(l.sd_hu)})")
