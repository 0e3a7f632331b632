"""Checking the LLM's reply (see :mod:`reasoning.agent`): every sentence grounded in the findings
(tool-derived numbers aside), and the deterministic answer stated."""

from __future__ import annotations

import re

from perception.registry import COUINAUD
from reasoning.chat_answer import MARKUP_RE
from reasoning.grounding import (
    NUM,
    SLICE_RE,
    UNIT_RE,
    WORD_NUM,
    Validator,
    _matches,
    _unit,
)
from reasoning.vqa import Answer
from reasoning.vqa.result import _fmt

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[\"'])|\n+")
_NEGATION = re.compile(r"\b(cannot|can ?not|can't|could not|not (?:be )?(?:determined|measured|assessable|assessed|possible|known)"
                       r"|undetermin\w*|unknown|unable|indeterminable|not available)\b", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text.strip()) if s and s.strip()]


def _blank_derived(sentence: str, values: list[tuple[float, str]]) -> str:
    """Remove numbers (with unit; bare decimals for ratios) equal to a tool-derived value."""
    if not values:
        return sentence
    out = list(sentence)
    for m in UNIT_RE.finditer(sentence):
        unit, scale = _unit(m.group(2))
        if any(u == unit and _matches(m.group(1), v, scale) for v, u in values):
            out[m.start():m.end()] = " " * (m.end() - m.start())
    s = "".join(out)
    ratios = [v for v, u in values if u == "ratio"]
    if ratios:
        out = list(s)
        for m in re.finditer(NUM + r"(?![\w.])", s):
            if "." in m.group(1) and any(_matches(m.group(1), v) for v in ratios):
                out[m.start():m.end()] = " " * (m.end() - m.start())
        s = "".join(out)
    return s


def _labels(value: str) -> list[str]:
    v = str(value).strip().lower()
    out = {v, v.replace("_", " "), v.split(" (")[0].strip()}
    m = re.fullmatch(r"liver_segment_(\d)", v)
    if m:
        n = m.group(1)
        out |= {f"segment {n}", f"segment {COUINAUD.get(v, n).lower()}", f"s{n}"}
    m = re.fullmatch(r"(kidney|adrenal_gland)_(left|right)", v)
    if m:
        out |= {f"{m.group(2)} {m.group(1).replace('_', ' ')}", f"{m.group(2)}-sided"}
    m = re.fullmatch(r"pancreas_(head|body|tail)", v)
    if m:
        out |= {f"pancreatic {m.group(1)}", f"{m.group(1)} of the pancreas", f"pancreas {m.group(1)}"}
    return sorted(o for o in out if o)


_CHOICE_RE = re.compile(r"\b(?:option|answer|choice)(?:\s+is)?:?\s*\(?([A-D])\b|^\s*\(?([A-D])[\).:]|\(([A-D])\)"
                        r"|(?<![\w(])([A-D])\)")


def states_answer(text: str, a: Answer) -> str | None:
    """None when ``text`` states the deterministic answer ``a``; else what is missing."""
    low = text.lower()
    if a.status == "cannot_be_determined":
        return None if _NEGATION.search(text) else f"the question cannot be answered from the findings ({a.reason}); say so"
    if a.status != "answered":
        return None
    if a.answer_type == "choice":
        letters = {x for m in _CHOICE_RE.finditer(text) for x in m.groups() if x}
        return None if letters == {a.answer} else f"the answer is option {a.answer} ({a.matched_option}); state that letter"
    if a.answer_type == "numeric" and isinstance(a.answer, (int, float)):
        v, unit = float(a.answer), a.unit
        want = f"{_fmt(v, 3)} {unit}" if unit not in ("slice", "lesions") else (
            f"slice {int(v)}" if unit == "slice" else f"{int(v)}")
        if unit == "slice":
            ok = any(int(m.group(1)) == int(v) for m in SLICE_RE.finditer(text))
        elif unit == "lesions":
            ok = any((int(w) if w.isdigit() else WORD_NUM[w]) == int(v)
                     for w in re.findall(r"\b(\d+|" + "|".join(WORD_NUM) + r")\b", low))
        elif unit == "ratio":
            ok = any(_matches(m.group(1), v) for m in re.finditer(NUM, text))
        else:
            ok = any(_unit(m.group(2))[0] == unit and _matches(m.group(1), v, _unit(m.group(2))[1])
                     for m in UNIT_RE.finditer(text))
        return None if ok else f"the reply does not state the measured answer {want}"
    if a.answer_type == "binary":
        m = re.search(r"\b(yes|no)\b", low)
        return None if m and m.group(1) == str(a.answer) else f"the answer is {a.answer!r}; start the reply with {a.answer!r}"
    labels = _labels(str(a.answer))
    if any(re.search(r"(?<![\w-])" + re.escape(lab) + r"(?![\w-])", low) for lab in labels):
        return None
    return f"the reply does not state the answer {a.answer!r}"


def check_reply(validator: Validator, text: str, cited: list[str], derived: list[tuple[float, str]],
                expected: Answer | None, mention: list[str] | None = None) -> list[str]:
    """Grounding errors of each sentence (citing ``cited``) plus the agreement with ``expected``
    (and the lesion ids in ``mention`` named)."""
    if not text.strip():
        return ["the reply was empty; answer the question in 1-3 sentences"]
    if MARKUP_RE.search(text):  # never shown, whatever else the text says
        return [("the reply contains tool-call markup (<tool_call>, <tool_response> or a JSON tool call); "
                 "answer in plain sentences")]
    errs = [str(e) for i, s in enumerate(split_sentences(text)) for e in validator.check_sentence(i, _blank_derived(s, derived), cited)]
    if expected is not None:
        miss = states_answer(text, expected)
        if miss:
            errs.append(f"answer: {miss}")
    for lid in mention or []:
        if not re.search(rf"\b{lid}\b", text):
            errs.append(f"answer: the question is about {lid}; describe {lid} (call get_lesion with lesion_id {lid!r})")
    return errs
