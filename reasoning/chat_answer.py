"""Chat answers grounded by construction (issue 13): the LLM's final answer is structured output.

After its tool calls the model does not write the answer's facts. Code renders every fact-bearing
phrase from the turn's tool results (:func:`build_facts`: the deterministic answer of the message,
answer_question answers, lesions, organs, comparisons, knowledge rules, each with its unit and
context) and offers them by reference (``F1``, ``F2``, ...). The model replies with JSON
(:func:`answer_schema`, sent as ``response_format`` ``json_schema``):

- ``facts``: the references of the facts to state, most important first (an enum of the offered
  references, so an invented fact cannot even be written);
- ``intro`` and ``closing``: connective words only, one of a few stock phrases each (an enum:
  :data:`INTROS`, :data:`CLOSINGS`). Measured on vLLM + xgrammar: a free string under a digit-free
  ``pattern`` cannot carry ``maxLength`` (HTTP 400 "features not supported by xgrammar"), a bounded
  ``{0,160}`` repetition crashes the grammar compiler (HTTP 500), and an unbounded one lets the
  135M test model write letter garbage until ``max_tokens``; the enum keeps the reply short,
  schema-valid and free of claims. The phrases are also checked in code like free text would be
  (:func:`connective_errors`: no digit, number word, yes/no, negation, markup or unsupported claim).

:func:`render` checks the reply again in code (the server may not enforce the schema) and builds
the text: intro, the deterministic answer (always first, whether or not the model chose it), the
chosen facts, closing. It refuses connective text that carries a number word, a yes/no or a
negation (each could contradict a fact), tool-call markup, or a sentence the grounding validator
rejects (a clinical claim the findings do not support); the caller re-asks with the errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from perception.schema import Findings
from reasoning.chat_tools import ToolResult
from reasoning.grounding import WORD_NUM, Validator
from reasoning.vqa import Answer
from reasoning.vqa.followup import answer_text, describe_lesion, find_lesion

# connective text: letters, spaces and light punctuation; no digits, brackets, braces, angle brackets,
# quotes, slashes or underscores (no number, id, JSON or markup can be written)
CONNECTIVE_PATTERN = r"^[A-Za-z ,.;:'!?-]*$"
INTROS = ("", "Here is the answer.", "From the measured findings:", "According to the measurements:", "In this study:",
          "Based on the tool results:", "The findings show:")
CLOSINGS = ("", "These values come from the measured findings.", "Values are measured on this CT only.",
            "Ask a follow-up question for more detail.")
CONNECTIVE_MAX = 160
MAX_FACTS = 4
MARKUP_RE = re.compile(r"</?\s*tool_(?:call|response)\b|<\|im_(?:start|end)\|>|<\|?(?:function|tool)[_ ]?call|"
                       r"\{\s*\"(?:name|arguments|tool_call_id|function)\"\s*:|\[TOOL_CALLS\]|<\|python_tag\|>", re.IGNORECASE)
_FLIP_RE = re.compile(r"\b(?:yes|no|not|none|never|without|absent|negative|positive|cannot|can't|isn't|doesn't|no one)\b",
                      re.IGNORECASE)
_NUMBER_WORD_RE = re.compile(r"\b(?:" + "|".join(sorted((w for w in WORD_NUM if w != "no"), key=len, reverse=True)) +
                             r"|first|second|third|fourth|fifth|half|double|twice|dozen|hundred|thousand|percent)\b",
                             re.IGNORECASE)


@dataclass
class Fact:
    """One fact-bearing phrase rendered by code, with the finding ids it rests on."""

    ref: str
    text: str
    finding_ids: list[str] = field(default_factory=list)


def _sentence(s: str) -> str:
    s = s.strip()
    return s if s.endswith((".", "!", "?")) else s + "."


def answer_phrase(a: Answer, subject: str | None = None) -> str:
    """The deterministic Answer as one sentence, as every other surface words it (value with its
    unit -- how it was obtained), or why it cannot be determined."""
    if a.status == "cannot_be_determined":
        return _sentence(f"This cannot be determined from the findings: {a.reason}")
    return _sentence(answer_text(a, subject))


def _organ_phrase(row: dict) -> str:
    bits = [f"{row['name'].replace('_', ' ')}: {row['status'].replace('_', ' ')}"]
    if row.get("volume_ml") is not None:
        bits.append(f"volume {row['volume_ml']} mL")
    if row.get("mean_hu") is not None:
        bits.append(f"mean {row['mean_hu']} HU")
    n = row.get("lesion_count", 0)
    bits.append(f"{n} lesion(s)" + (f" ({', '.join(row['lesion_ids'])})" if row.get("lesion_ids") else ""))
    if row.get("note"):
        bits.append(row["note"])
    return "; ".join(bits)


def _phrases(f: Findings, r: ToolResult) -> list[tuple[str, list[str]]]:
    """Fact phrases of one tool result (an error gives none)."""
    if r.error or r.data is None:
        return []
    if r.answer is not None:
        return [(answer_phrase(r.answer), list(r.answer.finding_ids))] if r.answer.status != "unmapped_question" else []
    d = r.data
    if isinstance(d, dict) and "lesions" in d and "count" in d:  # list_lesions
        where = "" if d["organ"] == "all" else f"{d['organ'].replace('_', ' ')} "
        out = [(f"The study has {d['count']} {where}lesion(s)" + (": " + ", ".join(
            f"{x['id']} {x['volume_ml']} mL" for x in d["lesions"]) if d["lesions"] else "") + " (largest volume first).",
            [x["id"] for x in d["lesions"]])]
        for x in d["lesions"][:6]:
            les = find_lesion(f, x["id"])
            if les is not None:
                out.append((describe_lesion(f, les), [les.id]))
        return out
    if isinstance(d, dict) and "members" in d:  # get_organ
        return [(_sentence(_organ_phrase(m)), [f"organ:{m['name']}"]) for m in d["members"]]
    if isinstance(d, dict) and "larger" in d:  # compare
        u = d["unit"]
        txt = (f"{d['field'].replace('_', ' ')}: {d['a']['id']} {d['a']['value']} {u} vs {d['b']['id']} {d['b']['value']} {u}; "
               + ("they are equal" if d["larger"] == "equal" else f"{d['larger']} is larger (difference {abs(d['difference'])} {u}"
                  + (f", ratio {d['ratio']}" if "ratio" in d else "") + ")"))
        return [(_sentence(txt), list(r.finding_ids))]
    if isinstance(d, dict) and "id" in d and re.fullmatch(r"L\d+", str(d["id"])):  # get_lesion
        les = find_lesion(f, d["id"])
        return [(describe_lesion(f, les), [les.id])] if les is not None else []
    if isinstance(d, list):  # knowledge entries
        return [(_sentence(f"{e['topic']}: {e['rule']} (source: {e['source']})"), []) for e in d if isinstance(e, dict)]
    return []


def build_facts(f: Findings, expected: Answer | None, subject: str | None, results: list[ToolResult],
                mention: list[str] | None = None) -> list[Fact]:
    """The facts offered to the model: the message's deterministic answer first (F1), then each
    distinct phrase of the tool results; where the message has an answer, only phrases about its
    findings (measured on SmolLM2: a kidney question was answered with the liver lesion the model had
    looked up)."""
    out: list[Fact] = []
    seen: set[str] = set()

    def add(text: str, ids: list[str]) -> None:
        if text and text not in seen:
            seen.add(text)
            out.append(Fact(f"F{len(out) + 1}", text, ids))

    if expected is not None and expected.status in ("answered", "cannot_be_determined"):
        add(answer_phrase(expected, subject), list(expected.finding_ids))
    for lid in mention or []:
        les = find_lesion(f, lid)
        if les is not None:
            add(describe_lesion(f, les), [les.id])
    about = set(expected.finding_ids) if expected is not None and expected.status == "answered" else set()
    for r in results:
        for text, ids in _phrases(f, r):
            if about and ids and not about & set(ids):
                continue  # a fact about other findings than the answer's: not offered (off-topic)
            add(text, ids)
    return out


def answer_schema(facts: list[Fact]) -> dict:
    """The JSON schema of the final answer for these facts (response_format json_schema)."""
    refs = [x.ref for x in facts]
    return {"type": "object", "additionalProperties": False, "required": ["facts", "intro", "closing"],
            "properties": {"facts": {"type": "array", "items": {"type": "string", "enum": refs}, "minItems": 1,
                                     "maxItems": min(MAX_FACTS, len(refs))},
                           "intro": {"type": "string", "enum": list(INTROS)},
                           "closing": {"type": "string", "enum": list(CLOSINGS)}}}


def response_format(facts: list[Fact]) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "chat_answer", "strict": True, "schema": answer_schema(facts)}}


def max_tokens_for(facts: list[Fact]) -> int:
    """Tokens the schema allows at most: the longest intro and closing phrases (at most a token per
    character), the fact references and the JSON punctuation."""
    return max(map(len, INTROS)) + max(map(len, CLOSINGS)) + MAX_FACTS * 6 + 40


def instruction(facts: list[Fact], errors: list[str] | None = None) -> str:
    lines = ["Write the final answer to the question as JSON with three fields.",
             "facts: the references of the facts below that answer the question, most important first.",
             "intro and closing: one of the allowed connecting phrases (or empty).",
             "The facts are written out for you with their values and units; do not restate them.", "Facts:"]
    lines += [f"{x.ref}: {x.text}" for x in facts]
    if errors:
        lines += ["Your previous answer was refused:"] + [f"- {e}" for e in errors[:10]]
    return "\n".join(lines)


def connective_errors(validator: Validator, part: str, text: str, cited: list[str]) -> list[str]:
    """Why the model's connective ``text`` (intro or closing) cannot be shown; [] when it can."""
    errs = []
    if not isinstance(text, str):
        return [f"{part}: not a string"]
    if len(text) > CONNECTIVE_MAX:
        errs.append(f"{part}: longer than {CONNECTIVE_MAX} characters")
    if MARKUP_RE.search(text):
        errs.append(f"{part}: tool-call markup is never shown")
    if not re.fullmatch(CONNECTIVE_PATTERN, text):
        errs.append(f"{part}: only words and light punctuation are allowed (no digits, ids, brackets or markup)")
    m = _NUMBER_WORD_RE.search(text)
    if m:
        errs.append(f"{part}: the number word {m.group(0)!r} is not allowed; the facts carry every number")
    m = _FLIP_RE.search(text)
    if m:
        errs.append(f"{part}: {m.group(0)!r} could contradict the facts; connective words only")
    if not errs and text.strip():
        errs += [f"{part}: {e}" for e in validator.check_sentence(0, text, cited)]
    return [str(e) for e in errs]


@dataclass
class Rendered:
    text: str
    chosen: list[str]
    finding_ids: list[str]
    errors: list[str]


def render(validator: Validator, raw: str, facts: list[Fact], forced: list[str] | None = None) -> Rendered:
    """The shown text from the model's JSON ``raw`` reply, or the errors that refuse it.
    ``forced``: the references always stated first (the deterministic answer, a lesion asked about)."""
    if MARKUP_RE.search(raw or ""):
        return Rendered("", [], [], ["the reply contains tool-call markup; reply with the JSON answer only"])
    try:
        obj = json.loads(raw)
    except (TypeError, ValueError) as e:
        return Rendered("", [], [], [f"the reply is not the JSON answer ({type(e).__name__}); reply with JSON only"])
    if not isinstance(obj, dict) or not isinstance(obj.get("facts"), list):
        return Rendered("", [], [], ["the JSON answer needs intro, facts (a list of references) and closing"])
    by_ref = {x.ref: x for x in facts}
    bad = [r for r in obj["facts"] if r not in by_ref]
    errs = [f"facts: {', '.join(map(str, bad))} is not an offered reference ({', '.join(by_ref)})"] if bad else []
    forced = [r for r in forced or [] if r in by_ref]
    chosen = forced + [r for r in dict.fromkeys(obj["facts"]) if r in by_ref and r not in forced][:MAX_FACTS]
    if not chosen:
        errs.append("facts: choose at least one fact")
    cited = sorted({i for x in facts for i in x.finding_ids})
    intro, closing = obj.get("intro", ""), obj.get("closing", "")
    errs += connective_errors(validator, "intro", intro, cited) + connective_errors(validator, "closing", closing, cited)
    for part, text, allowed in (("intro", intro, INTROS), ("closing", closing, CLOSINGS)):
        if not errs and text not in allowed:
            errs.append(f"{part}: {text!r} is not one of the allowed phrases")
    if errs:
        return Rendered("", chosen, [], errs)
    parts = ([intro.strip() if intro.strip().endswith(":") else _sentence(intro)] if intro.strip(" .,;:") else []) + [by_ref[r].text for r in chosen] + \
            ([_sentence(closing)] if closing.strip(" .,;:") else [])
    ids = list(dict.fromkeys(i for r in chosen for i in by_ref[r].finding_ids))
    return Rendered(" ".join(parts), chosen, ids, [])
