"""The entry point: :func:`answer` a question (typed, free text, or multiple choice) from Findings.

Free text is understood first (``parse.understand``: prompt wrappers removed, entities, a type that
uses them all, else "unmapped"). The unit asked is the unit answered (27.36 mm asked in cm is
2.74 cm; mL, cm3 and L convert). A size that is a lower bound (cut by the scan edge) is answered
"at least X"; with options, only when the bound leaves exactly one option possible.
"""

from __future__ import annotations

import re

from perception.registry import organ_family
from perception.schema import Findings
from reasoning.vocabulary import VESSEL_PHRASES
from reasoning.vqa.choices import (
    Option,
    _match,
    _option_number,
    parse_choices,
    split_choices,
)
from reasoning.vqa.entities import strip_prompt
from reasoning.vqa.handlers import _HANDLERS
from reasoning.vqa.lookup import _lesion_class, _lesions
from reasoning.vqa.parse import understand
from reasoning.vqa.question import Answer, Question
from reasoning.vqa.result import _Cannot, _fmt, _Result
from reasoning.vqa.subtypes import SUBTYPES

# asked unit -> (the handler's unit it converts from, factor: asked = value * factor)
_CONVERT = {"cm": ("mm", 0.1), "mm": ("mm", 1.0), "mL": ("mL", 1.0), "cm3": ("mL", 1.0), "L": ("mL", 0.001), "mm3": ("mL", 1000.0),
            "HU": ("HU", 1.0), "deg": ("deg", 1.0), "%": ("%", 1.0)}


def _in_unit(r: _Result, unit: str | None) -> tuple[_Result, str | None]:
    """``r`` in the asked ``unit`` (value and explanation); the second item says why not when the units differ
    in kind (a volume asked in cm)."""
    if not unit or r.unit == unit or not isinstance(r.value, (int, float)) or isinstance(r.value, bool):
        return r, None
    src, fac = _CONVERT.get(unit, (None, 1.0))
    if src != r.unit:
        return r, f"asked in {unit}, but the answer is measured in {r.unit or 'no unit'}"
    v = float(r.value) if fac == 1.0 else round(float(r.value) * fac, 5 if unit == "L" else 2)
    expl = f"{r.explanation}; {_fmt(float(r.value))} {r.unit} = {_fmt(v, 4)} {unit}"
    return _Result(v, unit, r.ids, r.rule, expl, r.accept, getattr(r, "qualifier", None)), None


def _bound_option(value: float, unit: str | None, opts: list[Option]) -> tuple[Option | None, str]:
    """A lower bound picks an option only when exactly one option is at least the bound (within 2 %)."""
    vals = [(o, _option_number(o.text, unit)) for o in opts]
    vals = [(o, v) for o, v in vals if v is not None]
    if not vals:
        return None, "no option holds a number"
    possible = [o for o, v in vals if v >= value * 0.98]
    if len(possible) == 1:
        return possible[0], ""
    if not possible:
        return None, f"every option is below the lower bound {_fmt(value)}"
    return None, f"the lower bound {_fmt(value)} leaves options {', '.join(o.letter for o in possible)} possible"


def _asks_absence(t: str) -> bool:
    """An existence question asked as absence ('Is the liver free / clear of lesions?': yes = no lesion)."""
    return re.search(r"\b(?:free|clear) of\b|\bwithout any\b|\bno (?:lesions?|tumou?rs?|masses|cysts?|spots?) (?:in|at all)\b", t) is not None


# types that read the lesion kind themselves (or ask it): a kind word there is not a lesion choice
_KIND_AWARE = {"pancreatic cyst resectability", "pseudocyst determination", "lesion type classification", "renal mass characterization",
               "PDAC vs PNET classification", "pancreatic lesion resectability", "pancreatic tumor staging", "kidney tumor staging",
               "lesion composition"}


def _lesion_of_kind(findings: Findings, q: Question, e) -> tuple[Question, str | None]:
    """'the liver cyst', 'the second largest kidney tumour': the lesion is chosen among those of that class
    (mask type, else the kidney HU rule or the cystic flag, as the existence questions class them), by size.
    'tumour' chooses only in the kidney, where cyst and tumour are told apart; elsewhere it means any lesion."""
    kind = e.kind_named
    if kind is None or q.lesion_id or "lesion_id" not in SUBTYPES[q.subtype].params or q.subtype in _KIND_AWARE:
        return q, None
    if kind == "tumor" and not any(organ_family(o) == "kidney" for o in e.organs):
        return q, None
    organ = q.organ or (e.organs[0] if e.organs else None)
    cands = sorted((l for l in _lesions(findings, organ) if _lesion_class(l)[0] == kind), key=lambda l: -l.volume_ml)
    where = f"the {organ.replace('_', ' ')}" if organ else "this study"
    if not cands:
        return q, f"no lesion in {where} is classed {kind} (mask type, else attenuation), so 'the {kind}' names none"
    rank = q.rank
    if rank == -1:
        return q.model_copy(update={"lesion_id": cands[-1].id, "rank": 1}), None
    if rank < 1 or rank > len(cands):
        return q, f"asked for {kind} number {rank} by size, but {where} has {len(cands)} {kind}(s)"
    return q.model_copy(update={"lesion_id": cands[rank - 1].id, "rank": 1}), None


def _assessed_vessel(findings: Findings, q: Question, e) -> Question:
    """A vessel phrase may name several masks ('portal vein': portal_vein or portal_vein_and_splenic_vein): the one
    this study has (a lesion's vessel contacts or a mask), else the first."""
    if not getattr(q, "vessel", None) or len(e.vessel_phrases) != 1:
        return q
    names = dict(VESSEL_PHRASES)[e.vessel_phrases[0]]
    have = {c.vessel for l in findings.lesions for c in l.vessel_contacts} | {m.name for m in findings.masks}
    pick = next((n for n in names if n in have), None)
    return q.model_copy(update={"vessel": pick}) if pick and pick != q.vessel else q


def answer(findings: Findings, question: Question | str, choices: list[str] | None = None, subtype: str | None = None,
           comparison=None) -> Answer:
    """Answer ``question`` from ``findings`` alone. ``choices`` (or options inside the text) make it
    multiple choice: the answer is then the letter of the option that matches the computed value.
    ``subtype`` (free text only): the question type given by the caller; only its parameters are read from the text.
    ``comparison`` (a perception.followup Comparison of this study with its priors): change-over-time questions
    are answered from it (reasoning.comparison); without it they are refused (one time point)."""
    opts: list[Option] = []
    if choices:
        opts = parse_choices(list(choices))
    asked_unit, ents = None, None
    if isinstance(question, str):
        text = strip_prompt(question)
        if not opts:
            text, opts = split_choices(text)
        u = understand(text, subtype)
        if u.question is None:
            return Answer(status="unmapped_question", explanation="no question type uses everything this question names",
                          reason=u.reason())
        q = _assessed_vessel(findings, u.question, u.entities)
        q, why = _lesion_of_kind(findings, q, u.entities)
        if why:
            spec = SUBTYPES[q.subtype]
            return Answer(status="cannot_be_determined", answer_type=spec.answer_type, subtype=spec.name, group=spec.group,
                          question=q, explanation="the findings cannot support an answer", reason=why)
        asked_unit, ents = u.entities.unit, u.entities
    else:
        q = question
    asked_unit = getattr(q, "unit", None) or asked_unit
    if comparison is not None and q.subtype == "change over time":
        from reasoning.comparison import answer as comparison_answer

        return comparison_answer(comparison, findings, q if q.text or not isinstance(question, str)
                                 else q.model_copy(update={"text": question}), opts)
    spec = SUBTYPES[q.subtype]
    base = {"subtype": spec.name, "group": spec.group, "question": q}
    try:
        r = _HANDLERS[q.subtype](findings, q)
    except _Cannot as e:
        return Answer(status="cannot_be_determined", answer_type=spec.answer_type, finding_ids=e.ids, rule=e.rule,
                      value=e.value, explanation="the findings cannot support an answer", reason=e.reason, **base)
    if ents is not None and r.value in ("yes", "no") and spec.name.endswith("existence") and _asks_absence(ents.norm):
        r = _Result("no" if r.value == "yes" else "yes", r.unit, r.ids, r.rule, f"asked whether free of lesions: {r.explanation}",
                    r.accept, r.qualifier)
    r0 = r
    if spec.answer_type == "numeric" and not opts:  # options carry their own units (converted when matched)
        r, why = _in_unit(r, asked_unit)
        if why:
            return Answer(status="cannot_be_determined", answer_type=spec.answer_type, finding_ids=r.ids, rule=r.rule,
                          value=r.value, unit=r.unit, explanation="the findings cannot support an answer", reason=why, **base)
    qual = getattr(r, "qualifier", None)
    lower = qual == "lower_bound" and spec.answer_type == "numeric"
    expl = r.explanation
    if lower and ("at least" not in expl or r.unit != r0.unit):
        expl = f"at least {_fmt(float(r.value))}{' ' + r.unit if r.unit else ''}, cut by the scan edge: {expl}"
    extra = {"qualifier": qual} if "qualifier" in Answer.model_fields and qual else {}
    common = dict(finding_ids=r.ids, rule=r.rule, explanation=expl, **base, **extra)
    if not opts:
        return Answer(status="answered", answer=r.value, unit=r.unit, answer_type=spec.answer_type, value=r.value, **common)
    if lower:
        opt, why = _bound_option(float(r.value), r.unit, opts)
    else:
        opt, why = _match(spec.name, spec.answer_type, r, opts)
    if opt is None:
        return Answer(status="cannot_be_determined", answer_type="choice", unit=r.unit, value=r.value,
                      reason=f"computed {'at least ' if lower else ''}{r.value}{' ' + r.unit if r.unit else ''}, but {why}", **common)
    return Answer(status="answered", answer=opt.letter, unit=r.unit, answer_type="choice", value=r.value,
                  matched_option=opt.text, **common)
