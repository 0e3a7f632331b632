"""Follow-up reading from a Comparison (comparison.json): the COMPARISON sentences of a report and the
answers to change-over-time questions. Nothing here reads voxels: only the Comparison (made by
``perception.followup.compare``) and the current study's Findings.

Questions (``answer``), each answered from comparison.json with the tracking ids (``T1``) and the
current lesion ids it rests on, or refused saying why:

- grown? shrunk? stable/unchanged? changed? -- by the long axis of one tracked lesion (a lesion id,
  a tracking id, an organ, else the largest tracked lesion), against the most recent prior (or the
  baseline when the question says "baseline" / "first"). A change no larger than the in-plane voxel
  size of the current study is within the measurement's resolution: neither grown nor shrunk
  ("stable"). A size that is a lower bound (the lesion reaches the scan edge) decides only when the
  bound does (a lower bound now above the prior size has grown);
- by how much? -- the change in mm (long axis), %, or mL (volume) as asked;
- new lesions? disappeared? -- the tracked lesions in those states; "no" says where it holds (the
  lesions not assessable are named); "how many" counts them (refused when some lesion is not assessable);
- the size at the prior (or baseline) study -- the tracked lesion's long axis, or volume when asked;
- RECIST 1.1 response category, nadir, doubling time -- from the Comparison's RECIST block and
  per-lesion doubling time; null there is "cannot be determined" with the Comparison's reason.

A lesion that is new has no prior size (grown? cannot be determined; it is new); one not assessable
answers nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perception.followup.schema import Comparison, TimePointMeasurement, TrackedLesion
from perception.registry import organ_family
from perception.schema import Findings
from radagent.errors import InputError
from reasoning.vqa.question import Answer, Question
from reasoning.vqa.result import _Cannot, _fmt, _Result

COMPARISON_FILE = "comparison.json"
SUBTYPE = "change over time"
RESPONSE_NAMES = {"CR": "complete response", "PR": "partial response", "SD": "stable disease", "PD": "progressive disease",
                  "non-CR/non-PD": "non-CR/non-PD", "NE": "not evaluable", "not_applicable": "not applicable"}


# --- loading ----------------------------------------------------------------------------------------
def load(path: str | Path) -> Comparison:
    """A comparison.json (or the folder holding one); a clear InputError naming the file otherwise."""
    p = Path(path)
    if p.is_dir():
        p = p / COMPARISON_FILE
    if not p.is_file():
        raise InputError(f"{p}: comparison.json not found (expected a comparison.json or a `radagent compare` output folder)")
    try:
        return Comparison.model_validate_json(p.read_bytes())
    except (ValidationError, ValueError) as e:
        first = str(e).splitlines()
        raise InputError(f"{p}: not a valid comparison.json ({'; '.join(first[:3])})") from e
    except OSError as e:
        raise InputError(f"{p}: cannot read comparison.json ({e.strerror or e})") from e


def beside(findings_or_out: str | Path) -> Comparison | None:
    """The comparison.json next to a findings.json (or in an analyze/compare output folder), None when absent."""
    p = Path(findings_or_out)
    folder = p if p.is_dir() else p.parent
    return load(folder) if (folder / COMPARISON_FILE).is_file() else None


# --- numbers ----------------------------------------------------------------------------------------
def _signed(v: float, nd: int = 1) -> str:
    return f"{v:+.{nd}f}"


def _pct(a: float, b: float) -> float | None:
    return (b - a) / a * 100.0 if a > 0 else None


def _tp_name(c: Comparison, tp: int) -> str:
    s = c.studies[tp]
    when = f", {s.study_date.isoformat()}" if s.study_date else ""
    if s.role == "current":
        return f"the current study (time point {tp}{when})"
    return f"the {'baseline' if tp == 0 else 'prior'} study (time point {tp}{when})"


def _org(t: TrackedLesion) -> str:
    return t.organ.replace("_", " ") if t.organ else "no host organ"


def _size(m: TimePointMeasurement | None, what: str = "long_axis_mm", unit: str = "mm") -> str:
    v = getattr(m, what) if m is not None else None
    if v is None:
        return "not measured"
    nd = 2 if unit == "mL" else 1
    bound = "at least " if m.size_qualifier == "lower_bound" else ""
    return f"{bound}{v:.{nd}f} {unit}"


def report_draft(report_json: str | bytes):
    """The ReportDraft of a report.json (its ``comparison`` section, written when the report has one, left out)."""
    import json

    from reasoning.report import ReportDraft

    raw = json.loads(report_json)
    if isinstance(raw, dict):
        raw.pop("comparison", None)
    return ReportDraft.model_validate(raw)


# --- report sentences -------------------------------------------------------------------------------
class ComparisonSentence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["study", "registration", "lesion", "recist", "rule", "warning"]
    text: str
    finding_ids: list[str] = Field(description="tracking ids (T1, ...) and current lesion ids (L1, ...) it rests on")


class ComparisonSection(BaseModel):
    """The COMPARISON part of a report: sentences, and per tracked lesion the key image of each time point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sentences: list[ComparisonSentence]
    images: dict[str, list[str | None]] = Field(
        description="tracking id -> per time point the key image path (relative to the report), null: none")


def _ids(c: Comparison, t: TrackedLesion) -> list[str]:
    cur = t.at(c.current.time_point)
    return [t.tracking_id] + ([cur.lesion_id] if cur is not None and cur.lesion_id else [])


def lesion_text(c: Comparison, t: TrackedLesion) -> str:
    """One sentence for a tracked lesion: its state, sizes then and now, and the change."""
    now = c.current.time_point
    cur = t.at(now)
    head = f"{t.tracking_id} ({_org(t)})"
    if t.state == "not_assessable":
        return f"{head}: not assessable ({t.state_reason})."
    if t.state == "new":
        return f"{head}: new since {_tp_name(c, now - 1)}; long axis {_size(cur)} now ({t.state_reason})."
    last = max((m for m in t.measurements if m.time_point < now and m.lesion_id), key=lambda m: m.time_point, default=None)
    if t.state == "disappeared":
        was = f"; long axis {_size(last)} at {_tp_name(c, last.time_point)}" if last is not None else ""
        return f"{head}: disappeared, not seen in the current study ({t.state_reason}){was}."
    ch = t.change_from_prior
    ref = t.at(ch.reference_time_point) if ch is not None else last
    bits = [f"long axis {_size(ref)} at {_tp_name(c, ref.time_point)}, {_size(cur)} now" if ref is not None
            else f"long axis {_size(cur)} now"]
    if ch is not None and ch.long_axis_abs_mm is not None:
        bits.append(f"change {_signed(ch.long_axis_abs_mm)} mm"
                    + (f" ({_signed(ch.long_axis_pct)} %)" if ch.long_axis_pct is not None else ""))
    if ch is not None and ch.volume_abs_ml is not None:
        bits.append(f"volume {_size(ref, 'volume_ml', 'mL')} -> {_size(cur, 'volume_ml', 'mL')} "
                    f"({_signed(ch.volume_abs_ml, 2)} mL" + (f", {_signed(ch.volume_pct)} %" if ch.volume_pct is not None else "")
                    + ")")
    if ch is not None and ch.reason:
        bits.append(ch.reason)
    base = t.change_from_baseline
    if base is not None and ch is not None and base.reference_time_point != ch.reference_time_point \
            and base.long_axis_abs_mm is not None:
        bits.append(f"from baseline {_signed(base.long_axis_abs_mm)} mm"
                    + (f" ({_signed(base.long_axis_pct)} %)" if base.long_axis_pct is not None else ""))
    if t.doubling_time is not None and t.doubling_time.days is not None:
        bits.append(f"volume doubling time {t.doubling_time.days:.0f} days")
    if t.match_confidence is not None:
        bits.append(f"match confidence {t.match_confidence:.2f}")
    return f"{head}: persisting; " + "; ".join(bits) + "."


def recist_texts(c: Comparison) -> list[ComparisonSentence]:
    r = c.recist
    if r is None:
        return [ComparisonSentence(kind="recist", text="RECIST 1.1 response not assessed: "
                                   + ("; ".join(c.warnings) or "no RECIST assessment in the comparison") + ".",
                                   finding_ids=[])]
    targets = [x.tracking_id for x in r.targets]
    sums = []
    if r.baseline_sum_mm is not None:
        sums.append(f"{r.baseline_sum_mm:.1f} mm at baseline")
    if r.nadir_sum_mm is not None and r.nadir_time_point is not None:
        sums.append(f"nadir {r.nadir_sum_mm:.1f} mm (time point {r.nadir_time_point})")
    if r.current_sum_mm is not None:
        sums.append(f"{r.current_sum_mm:.1f} mm now")
    changes = []
    if r.change_from_baseline_pct is not None:
        changes.append(f"{_signed(r.change_from_baseline_pct)} % from baseline")
    if r.change_from_nadir_pct is not None:
        changes.append(f"{_signed(r.change_from_nadir_pct)} % from nadir"
                       + (f" ({_signed(r.change_from_nadir_mm)} mm)" if r.change_from_nadir_mm is not None else ""))
    text = (f"RECIST 1.1 ({'targets chosen by the user' if r.targets_by == 'user' else 'targets chosen by the rules'}): "
            f"target lesions {', '.join(targets) or 'none'}; sum of diameters {', '.join(sums) or 'not measured'}"
            + (f" ({', '.join(changes)})" if changes else "")
            + f"; target response {r.target_response}, non-target response {r.non_target_response}"
            + (f", new lesions {', '.join(r.new_lesions)}" if r.new_lesions else ", no new lesion")
            + f"; overall response {r.overall_response} ({RESPONSE_NAMES[r.overall_response]})."
            + (f" Not assessable: {r.not_assessable_reason}." if r.not_assessable_reason else ""))
    out = [ComparisonSentence(kind="recist", text=text, finding_ids=targets + list(r.new_lesions))]
    out += [ComparisonSentence(kind="rule", text=f"{rule.rule}: {rule.text}", finding_ids=targets) for rule in r.rules_fired]
    return out


def image_name(tracking_id: str, time_point: int) -> str:
    """Where a tracked lesion's key image of one time point is written beside the report."""
    return f"comparison/{tracking_id}_tp{time_point}.png"


def section(c: Comparison, available: set[str] | None = None) -> ComparisonSection:
    """The COMPARISON section. ``available``: the image names (``image_name``) that exist; others are null."""
    out = []
    for s in c.studies:
        what = f"{s.analyze_dir} ({s.n_lesions} lesion{'s' if s.n_lesions != 1 else ''}"
        what += f"; date {s.study_date.isoformat()} from {s.study_date_source}" if s.study_date else "; date not known"
        out.append(ComparisonSentence(kind="study", text=f"Time point {s.time_point} ({s.role}): {what}).", finding_ids=[]))
    for g in c.registrations:
        if g.status == "refused":
            text = (f"Registration of the current study to time point {g.fixed_time_point} refused: {g.reason}; "
                    "lesions are not matched to that study.")
        else:
            q = "; ".join(f"{m.name} {_fmt(m.value, 3)}{(' ' + m.unit) if m.unit else ''}" for m in g.quality
                          if m.value is not None)
            text = f"Registration of the current study to time point {g.fixed_time_point}: {g.method}" + (
                f"; quality {q}" if q else "") + "."
        out.append(ComparisonSentence(kind="registration", text=text, finding_ids=[]))
    for t in c.lesions:
        out.append(ComparisonSentence(kind="lesion", text=lesion_text(c, t), finding_ids=_ids(c, t)))
    if not c.lesions:
        out.append(ComparisonSentence(kind="lesion", text="No lesion was measured at any time point.", finding_ids=[]))
    out += recist_texts(c)
    out += [ComparisonSentence(kind="warning", text=w, finding_ids=[]) for w in c.warnings]
    images = {t.tracking_id: [image_name(t.tracking_id, s.time_point)
                              if available is not None and image_name(t.tracking_id, s.time_point) in available else None
                              for s in c.studies] for t in c.lesions}
    return ComparisonSection(sentences=out, images=images)


# --- questions --------------------------------------------------------------------------------------
_NADIR = re.compile(r"\bnadir\b|\blowest\b|\bsmallest sum\b")
_RESPONSE = re.compile(r"\brecist\b|\brespon\w*|\bprogress\w*|\bpartial\b|\bcomplete (?:response|remission)\b|"
                       r"\bstable disease\b|\bcategory\b|\bworking\b|\bpd\b|\bsd\b|\bpr\b|\bcr\b")
_DOUBLING = re.compile(r"\bdoubl\w*")
_NEW = re.compile(r"\bnew(?:ly)?\b|\bappear(?:ed|ing)?\b(?!.*\bdis)|\bemerg\w*")
_GONE = re.compile(r"\bdisappear\w*|\bvanish\w*|\bgone\b|\bresolv\w*|\bno longer\b|\bwent away\b|\bgo away\b")
_HOW_MUCH = re.compile(r"\bhow much\b|\bby how\b|\bhow many (?:mm|millimet\w*|cm|centimet\w*|percent|ml)\b|%|\bpercent\w*|"
                       r"\bwhat (?:is|was) the (?:change|growth|increase|decrease|reduction)\b|\bchange in\b|\bamount\b")
_GROWN = re.compile(r"\bgr[eo]wn?\b|\bgrowing\b|\bgrowth\b|\blarger\b|\bbigger\b|\bincreas\w*|\benlarg\w*|\bworse\b")
_SHRUNK = re.compile(r"\bshr[iau]nk\w*|\bshrunken\b|\bsmaller\b|\bdecreas\w*|\bregress\w*|\breduc\w*|\bbetter\b")
_STABLE = re.compile(r"\bstable\b|\bunchanged\b|\bsame size\b|\bno change\b")
_BASELINE = re.compile(r"\bbaseline\b|\bfirst (?:scan|study|ct|exam)\b|\boldest\b|\boriginal\b")
_TRACK_ID = re.compile(r"\bT(\d+)\b")
_COUNT = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b")
_PRIOR_SIZE = re.compile(r"\b(?:size|diameter|long axis|how big|how large|measure\w*|volume)\b.*\b(?:prior|previous|"
                         r"baseline|before|earlier|first)\b|\b(?:prior|previous|baseline|earlier|first)\b.*\b(?:size|"
                         r"diameter|long axis|measurement|volume)\b")

Intent = Literal["nadir", "response", "doubling", "new", "disappeared", "how_much", "prior_size", "grown", "shrunk",
                 "stable", "changed"]


def intent(text: str | None) -> Intent:
    """What a change question asks (the first rule that matches, most specific first)."""
    t = (text or "").lower()
    for name, rx in (("nadir", _NADIR), ("doubling", _DOUBLING), ("response", _RESPONSE), ("disappeared", _GONE),
                     ("new", _NEW), ("how_much", _HOW_MUCH), ("stable", _STABLE), ("shrunk", _SHRUNK), ("grown", _GROWN),
                     ("prior_size", _PRIOR_SIZE)):
        if rx.search(t):
            return name  # type: ignore[return-value]
    return "changed"


def resolution_mm(f: Findings | None) -> float | None:
    """The in-plane voxel size of the current study (the long axis is measured on that grid)."""
    if f is None:
        return None
    sp = [s for i, s in enumerate(f.study.spacing_mm) if i != f.study.axial_axis]
    return max(sp)


def _family(organ: str | None) -> str | None:
    return organ_family(organ) if organ else None


def pick(c: Comparison, q: Question) -> TrackedLesion:
    """The tracked lesion a question is about: a lesion id of the current study, a tracking id, the
    organ's largest, else the study's largest (by current long axis; a disappeared lesion by its last size)."""
    now = c.current.time_point
    if q.lesion_id:
        hit = [t for t in c.lesions if (m := t.at(now)) is not None and m.lesion_id == q.lesion_id]
        if not hit:
            cur_ids = [m.lesion_id for t in c.lesions if (m := t.at(now)) is not None and m.lesion_id]
            raise _Cannot(f"{q.lesion_id} is not a lesion of the current study in this comparison (current lesions: "
                          f"{', '.join(cur_ids) or 'none'})", [q.lesion_id])
        return hit[0]
    tm = _TRACK_ID.search(q.text or "")
    if tm:
        tid = f"T{tm.group(1)}"
        try:
            return c.tracked(tid)
        except KeyError as e:
            raise _Cannot(str(e.args[0]), []) from None
    pool = [t for t in c.lesions if q.organ is None or t.organ == q.organ or _family(t.organ) == q.organ]
    if not pool:
        where = f"the {q.organ.replace('_', ' ')}" if q.organ else "any organ"
        raise _Cannot(f"no lesion is tracked in {where} at any time point of this comparison "
                      f"(tracked: {', '.join(f'{t.tracking_id} {_org(t)}' for t in c.lesions) or 'none'})", [])

    def size(t: TrackedLesion) -> float:
        ms = [m.long_axis_mm for m in sorted(t.measurements, key=lambda m: -m.time_point) if m.long_axis_mm is not None]
        return ms[0] if ms else -1.0
    ranked = sorted(pool, key=lambda t: (t.state in ("disappeared", "not_assessable"), -size(t)))
    k = q.rank if q.rank >= 1 else len(ranked)
    if k > len(ranked):
        raise _Cannot(f"asked for the lesion ranked {k} by size, but {len(ranked)} lesion(s) are tracked",
                      [t.tracking_id for t in ranked])
    return ranked[k - 1]


def _reference(c: Comparison, t: TrackedLesion, text: str | None) -> TimePointMeasurement:
    now = c.current.time_point
    want_base = bool(_BASELINE.search((text or "").lower()))
    seen = [m for m in t.measurements if m.time_point < now and m.lesion_id and m.long_axis_mm is not None]
    if not seen:
        raise _Cannot(f"{t.tracking_id} ({_org(t)}) has no measured prior size ({t.state}: {t.state_reason})",
                      _ids(c, t))
    return min(seen, key=lambda m: m.time_point) if want_base else max(seen, key=lambda m: m.time_point)


def _assessable(c: Comparison, t: TrackedLesion) -> None:
    if t.state == "not_assessable":
        raise _Cannot(f"{t.tracking_id} ({_org(t)}) is not assessable: {t.state_reason}", _ids(c, t))


def _direction(c: Comparison, t: TrackedLesion, f: Findings | None, text: str | None
               ) -> tuple[str, TimePointMeasurement, TimePointMeasurement | None, str]:
    """'grown' | 'shrunk' | 'stable' | 'new' | 'disappeared' of one lesion, the reference and current
    measurement, and the explanation with the numbers."""
    _assessable(c, t)
    now = c.current.time_point
    cur = t.at(now)
    if t.state == "new":
        raise _Cannot(f"{t.tracking_id} ({_org(t)}) is new: not seen at the prior study, so it has no prior size "
                      f"({t.state_reason})", _ids(c, t))
    ref = _reference(c, t, text)
    where = _tp_name(c, ref.time_point)
    if t.state == "disappeared" or cur is None or cur.long_axis_mm is None:
        return "disappeared", ref, cur, (f"{t.tracking_id} ({_org(t)}) is not seen in the current study "
                                         f"({t.state_reason}); long axis was {_size(ref)} at {where}")
    a, b = ref.long_axis_mm, cur.long_axis_mm
    d = b - a
    res = resolution_mm(f)
    tol = res if res is not None else 0.0
    pct = _pct(a, b)
    nums = (f"{t.tracking_id} ({_org(t)}) long axis {_size(ref)} at {where}, {_size(cur)} now: {_signed(d)} mm"
            + (f" ({_signed(pct)} %)" if pct is not None else ""))
    a_lb, b_lb = ref.size_qualifier == "lower_bound", cur.size_qualifier == "lower_bound"
    if a_lb or b_lb:
        if b_lb and not a_lb and d > tol:
            return "grown", ref, cur, nums + "; the current size is a lower bound (scan edge), so it has grown at least this much"
        if a_lb and not b_lb and d < -tol:
            return "shrunk", ref, cur, nums + "; the prior size is a lower bound (scan edge), so it has shrunk at least this much"
        raise _Cannot(nums + "; a size cut by the scan edge is a lower bound, so the direction of change cannot be "
                      "determined", _ids(c, t), "lower bound")
    rtxt = f"in-plane voxel size {res:.2f} mm" if res is not None else "no tolerance known"
    if abs(d) <= tol:
        return "stable", ref, cur, nums + f", within the measurement resolution ({rtxt})"
    return ("grown" if d > 0 else "shrunk"), ref, cur, nums + f" (beyond the measurement resolution, {rtxt})"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _states(c: Comparison, state: str) -> list[TrackedLesion]:
    return [t for t in c.lesions if t.state == state]


def _scope(c: Comparison, q: Question) -> tuple[list[TrackedLesion], str]:
    pool = [t for t in c.lesions if q.organ is None or t.organ == q.organ or _family(t.organ) == q.organ]
    return pool, (f"the {q.organ.replace('_', ' ')}" if q.organ else "the study")


def _h_state(c: Comparison, q: Question, state: str) -> _Result:
    pool, where = _scope(c, q)
    hit = [t for t in pool if t.state == state]
    na = [t for t in pool if t.state == "not_assessable"]
    ids = [i for t in hit for i in _ids(c, t)]
    word = "new" if state == "new" else "disappeared"
    if _COUNT.search((q.text or "").lower()):
        if na:
            raise _Cannot(f"{len(hit)} {word} lesion(s) in {where}, but {', '.join(t.tracking_id for t in na)} "
                          f"not assessable ({'; '.join(t.state_reason for t in na)}): the count may be higher",
                          ids + [t.tracking_id for t in na], f"comparison lesion state '{state}'")
        return _Result(len(hit), None, ids, f"comparison lesion state '{state}'",
                       f"{len(hit)} {word} lesion(s) in {where}"
                       + (": " + "; ".join(lesion_text(c, t) for t in hit) if hit else ""))
    if hit:
        return _Result("yes", None, ids, f"comparison lesion state '{state}'",
                       f"{len(hit)} {word} lesion(s) in {where}: " + "; ".join(lesion_text(c, t) for t in hit))
    if na:
        raise _Cannot(f"no tracked lesion in {where} is {word}, but {', '.join(t.tracking_id for t in na)} "
                      f"{'is' if len(na) == 1 else 'are'} not assessable ({'; '.join(t.state_reason for t in na)})",
                      [t.tracking_id for t in na], f"comparison lesion state '{state}'")
    refused = [g for g in c.registrations if g.status == "refused"]
    if refused:
        raise _Cannot(f"registration to time point {refused[0].fixed_time_point} was refused ({refused[0].reason}): "
                      f"lesions could not be matched, so {word} lesions cannot be ruled out", [], "registration refused")
    return _Result("no", None, [i for t in pool for i in _ids(c, t)], f"comparison lesion state '{state}'",
                   f"none of the {len(pool)} lesion(s) tracked in {where} is {word} "
                   f"(every current lesion was matched to a prior one and every prior one was found again)"
                   if pool else f"no lesion was measured in {where} at any time point of the comparison")


def _h_response(c: Comparison) -> _Result:
    r = c.recist
    if r is None:
        raise _Cannot("RECIST 1.1 was not assessed in this comparison: " + ("; ".join(c.warnings) or "no reason recorded"),
                      [], "RECIST 1.1")
    ids = [x.tracking_id for x in r.targets] + list(r.new_lesions)
    if r.overall_response in ("NE", "not_applicable"):
        raise _Cannot(f"RECIST 1.1 overall response {r.overall_response}: {r.not_assessable_reason or 'not evaluable'}",
                      ids, "RECIST 1.1")
    why = "; ".join(f"{x.rule}: {x.text}" for x in r.rules_fired)
    name = RESPONSE_NAMES[r.overall_response]
    acc = {r.overall_response, r.overall_response.lower(), name}
    if r.overall_response == "PD":
        acc |= {"progression", "progressive", "yes"}
    return _Result(r.overall_response, None, ids, "RECIST 1.1 (Eisenhauer et al. 2009)",
                   f"overall response {r.overall_response} ({name}); target {r.target_response}, non-target "
                   f"{r.non_target_response}" + (f", new lesions {', '.join(r.new_lesions)}" if r.new_lesions else "")
                   + (f" ({why})" if why else ""), accept=acc)


def _h_nadir(c: Comparison) -> _Result:
    r = c.recist
    if r is None or r.nadir_sum_mm is None or r.nadir_time_point is None:
        raise _Cannot("the nadir (smallest sum of target diameters before now) is not known: "
                      + ((r.not_assessable_reason if r is not None else None) or "; ".join(c.warnings)
                         or "RECIST not assessed"), [], "RECIST 1.1 nadir")
    return _Result(round(r.nadir_sum_mm, 1), "mm", [x.tracking_id for x in r.targets], "RECIST 1.1 nadir",
                   f"sum of target diameters {r.nadir_sum_mm:.1f} mm at {_tp_name(c, r.nadir_time_point)}, the smallest "
                   "before the current study (baseline included)")


def _h_doubling(c: Comparison, q: Question) -> _Result:
    t = pick(c, q)
    _assessable(c, t)
    dt = t.doubling_time
    if dt is None or dt.days is None:
        raise _Cannot(f"volume doubling time of {t.tracking_id} ({_org(t)}) not known: "
                      + ((dt.reason if dt is not None else None) or "study dates or volumes missing"), _ids(c, t), "VDT")
    return _Result(round(dt.days, 1), "days", _ids(c, t), dt.formula,
                   f"{t.tracking_id} ({_org(t)}) volume doubling time {dt.days:.1f} days between time points "
                   f"{dt.from_time_point} and {dt.to_time_point}")


def _h_how_much(c: Comparison, q: Question, f: Findings | None) -> _Result:
    t = pick(c, q)
    kind, ref, cur, why = _direction(c, t, f, q.text)
    if kind == "disappeared":
        raise _Cannot(why + ": no current size", _ids(c, t))
    text = (q.text or "").lower()
    volume = bool(re.search(r"\bvolume\b|\bml\b|\bcc\b|\bcm3\b", text)) or q.unit in ("mL", "cm3")
    percent = "%" in text or "percent" in text or q.unit == "%"
    if volume:
        if ref.volume_ml is None or cur.volume_ml is None:
            raise _Cannot(f"{t.tracking_id}: volume not measured at both time points", _ids(c, t))
        if ref.size_qualifier == "lower_bound" or cur.size_qualifier == "lower_bound":
            raise _Cannot(why + "; a volume cut by the scan edge is a lower bound, so its change cannot be given", _ids(c, t))
        dv = cur.volume_ml - ref.volume_ml
        pv = _pct(ref.volume_ml, cur.volume_ml)
        expl = (f"{t.tracking_id} ({_org(t)}) volume {ref.volume_ml:.2f} mL at {_tp_name(c, ref.time_point)}, "
                f"{cur.volume_ml:.2f} mL now: {_signed(dv, 2)} mL" + (f" ({_signed(pv)} %)" if pv is not None else ""))
        if percent:
            if pv is None:
                raise _Cannot(expl + "; no percentage of a zero volume", _ids(c, t))
            return _Result(round(pv, 1), "%", _ids(c, t), "volume change = (V_now - V_ref) / V_ref", expl)
        return _Result(round(dv, 2), "mL", _ids(c, t), "volume change = V_now - V_ref", expl)
    if ref.size_qualifier == "lower_bound" or cur.size_qualifier == "lower_bound":
        raise _Cannot(why + "; the amount of change of a size cut by the scan edge cannot be given", _ids(c, t))
    d = cur.long_axis_mm - ref.long_axis_mm
    if percent:
        p = _pct(ref.long_axis_mm, cur.long_axis_mm)
        if p is None:
            raise _Cannot(why + "; no percentage of a zero size", _ids(c, t))
        return _Result(round(p, 1), "%", _ids(c, t), "long-axis change = (D_now - D_ref) / D_ref", why)
    return _Result(round(d, 1), "mm", _ids(c, t), "long-axis change = D_now - D_ref", why)


def _h_direction(c: Comparison, q: Question, f: Findings | None, asked: Intent) -> _Result:
    t = pick(c, q)
    kind, _, _, why = _direction(c, t, f, q.text)
    if asked == "grown":
        value = kind == "grown"
    elif asked == "shrunk":
        value = kind in ("shrunk", "disappeared")
    elif asked == "stable":
        value = kind == "stable"
    else:  # changed
        value = kind != "stable"
    return _Result(_yes(value), None, _ids(c, t), "long-axis change beyond the in-plane voxel size", f"{kind}: {why}")


def check_matches(c: Comparison, f: Findings) -> None:
    """_Cannot unless ``f`` is the current study the comparison was made from: the same number of lesions, and each
    tracked lesion's current id with the long axis the comparison recorded for it."""
    why = None
    if len(f.lesions) != c.current.n_lesions:
        why = f"the comparison's current study has {c.current.n_lesions} lesion(s), these findings {len(f.lesions)}"
    else:
        sizes = {les.id: les.long_axis_mm for les in f.lesions}
        for t in c.lesions:
            m = t.at(c.current.time_point)
            if m is not None and m.lesion_id and (m.lesion_id not in sizes or (
                    m.long_axis_mm is not None and abs(sizes[m.lesion_id] - m.long_axis_mm) > 1e-6)):
                why = (f"{t.tracking_id} is {m.lesion_id} of {m.long_axis_mm} mm in the comparison, but these findings "
                       + (f"measure {m.lesion_id} {sizes[m.lesion_id]} mm" if m.lesion_id in sizes else f"have no {m.lesion_id}"))
                break
    if why:
        raise _Cannot(why + ": the comparison was not made from these findings", [], "comparison")


def _h_prior_size(c: Comparison, q: Question) -> _Result:
    """The long axis (or volume, when asked) of a tracked lesion at the prior (or baseline) study."""
    t = pick(c, q)
    _assessable(c, t)
    ref = _reference(c, t, q.text)
    volume = bool(re.search(r"\bvolume\b|\bml\b", (q.text or "").lower()))
    value, unit = (ref.volume_ml, "mL") if volume else (ref.long_axis_mm, "mm")
    if value is None:
        raise _Cannot(f"{t.tracking_id}: {'volume' if volume else 'long axis'} not measured at time point {ref.time_point}",
                      _ids(c, t))
    what = f"{t.tracking_id} ({_org(t)}) {'volume' if volume else 'long axis'} at {_tp_name(c, ref.time_point)}: " \
           f"{_size(ref, 'volume_ml' if volume else 'long_axis_mm', unit)} (lesion {ref.lesion_id} of that study)"
    if ref.size_qualifier == "lower_bound":
        raise _Cannot(what + "; a size cut by the scan edge is a lower bound", _ids(c, t), "lower bound")
    return _Result(round(value, 2 if volume else 1), unit, _ids(c, t), "tracked lesion measurement at the prior study",
                   what)


def handle(c: Comparison, f: Findings | None, q: Question) -> _Result:
    """A change-over-time question answered from the comparison (or _Cannot with the reason)."""
    if f is not None:
        check_matches(c, f)
    asked = intent(q.text)
    if asked == "nadir":
        return _h_nadir(c)
    if asked == "response":
        return _h_response(c)
    if asked == "doubling":
        return _h_doubling(c, q)
    if asked in ("new", "disappeared"):
        return _h_state(c, q, asked)
    if asked == "how_much":
        return _h_how_much(c, q, f)
    if asked == "prior_size":
        return _h_prior_size(c, q)
    return _h_direction(c, q, f, asked)


def answer(c: Comparison, f: Findings | None, q: Question, options: list | None = None) -> Answer:
    """The typed Answer of a change-over-time question (answer type by what was asked); ``options``
    (parsed multiple-choice options): the letter of the one that matches."""
    from reasoning.vqa.choices import _match
    from reasoning.vqa.subtypes import SUBTYPES

    spec = SUBTYPES[SUBTYPE]
    base = {"subtype": spec.name, "group": spec.group, "question": q}
    try:
        r = handle(c, f, q)
    except _Cannot as e:
        return Answer(status="cannot_be_determined", answer_type=spec.answer_type, finding_ids=e.ids, rule=e.rule,
                      value=e.value, explanation="the comparison cannot support an answer", reason=e.reason, **base)
    atype = "binary" if r.value in ("yes", "no") else "numeric" if isinstance(r.value, (int, float)) else "categorical"
    if options:
        if atype == "categorical":  # a RECIST category: the option naming it (code or name)
            acc = {a.lower() for a in (r.accept or {str(r.value)})}
            hit = [o for o in options if re.sub(r"[\s.]+$", "", o.text.strip().lower()) in acc]
            opt, why = (hit[0], "") if len(hit) == 1 else (None, f"{len(hit)} options name {r.value!r}")
        else:
            opt, why = _match(spec.name, atype, r, options)
        common = dict(finding_ids=r.ids, rule=r.rule, explanation=r.explanation, unit=r.unit, value=r.value, **base)
        if opt is None:
            return Answer(status="cannot_be_determined", answer_type="choice", reason=f"computed {r.value}, but {why}",
                          **common)
        return Answer(status="answered", answer=opt.letter, answer_type="choice", matched_option=opt.text, **common)
    return Answer(status="answered", answer=r.value, unit=r.unit, answer_type=atype, value=r.value, finding_ids=r.ids,
                  rule=r.rule, explanation=r.explanation, **base)
