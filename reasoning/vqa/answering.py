"""The entry point: :func:`answer` a question (typed, free text, or multiple choice) from Findings."""

from __future__ import annotations

from perception.schema import Findings
from reasoning.vqa.choices import Option, _match, parse_choices, split_choices
from reasoning.vqa.handlers import _HANDLERS
from reasoning.vqa.parse import parse_question
from reasoning.vqa.question import Answer, Question
from reasoning.vqa.result import _Cannot
from reasoning.vqa.subtypes import SUBTYPES


def answer(findings: Findings, question: Question | str, choices: list[str] | None = None) -> Answer:
    """Answer ``question`` from ``findings`` alone. ``choices`` (or options inside the text) make it
    multiple choice: the answer is then the letter of the option that matches the computed value."""
    opts: list[Option] = []
    if choices:
        opts = parse_choices(list(choices))
    if isinstance(question, str):
        text = question
        if not opts:
            text, opts = split_choices(question)
        q = parse_question(text)
        if q is None:
            return Answer(status="unmapped_question", explanation="no template matches this question",
                          reason=f"question not recognised: {text!r}. Supported question types: {', '.join(SUBTYPES)} "
                                 "(or pass the subtype and parameters explicitly)")
    else:
        q = question
    spec = SUBTYPES[q.subtype]
    base = dict(subtype=spec.name, group=spec.group, question=q)
    try:
        r = _HANDLERS[q.subtype](findings, q)
    except _Cannot as e:
        return Answer(status="cannot_be_determined", answer_type=spec.answer_type, finding_ids=e.ids, rule=e.rule,
                      value=e.value, explanation="the findings cannot support an answer", reason=e.reason, **base)
    common = dict(finding_ids=r.ids, rule=r.rule, explanation=r.explanation, **base)
    if not opts:
        return Answer(status="answered", answer=r.value, unit=r.unit, answer_type=spec.answer_type, value=r.value, **common)
    opt, why = _match(spec.name, spec.answer_type, r, opts)
    if opt is None:
        return Answer(status="cannot_be_determined", answer_type="choice", unit=r.unit, value=r.value,
                      reason=f"computed {r.value}{' ' + r.unit if r.unit else ''}, but {why}", **common)
    return Answer(status="answered", answer=opt.letter, unit=r.unit, answer_type="choice", value=r.value,
                  matched_option=opt.text, **common)
