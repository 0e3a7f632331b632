"""The chat agent: questions about one study answered from its Findings, with or without an LLM.

``ChatSession(findings, llm_url=None, model=None)`` keeps one conversation:

- ``session.ask(message) -> ChatTurn`` (``await session.aask(message)`` from async code);
- ``async for event in session.astream(message)``: ``{"type": "token", "text": ...}`` events, then
  one ``{"type": "final", "text": ..., "engine": ..., "finding_ids": [...], "turn": {...}}``.

Without an LLM URL every turn is deterministic: the message is resolved to a
:class:`reasoning.vqa.Question` (templated text via ``vqa.parse_question``, plus the follow-up
resolution below) and answered by ``vqa.answer``; a message nothing maps is answered with the list
of supported question types (never guessed).

With an LLM URL the turn runs a LangChain v1 agent (``langchain.agents.create_agent`` around
``langchain_openai.ChatOpenAI`` on the OpenAI-compatible server) whose tools are the deterministic
functions of :class:`FindingsTools` (they read the Findings object only, never voxels):
``answer_question`` (vqa.answer: subtype + parameters), ``list_lesions``, ``get_lesion``,
``get_organ``, ``compare`` and ``lookup_medical_knowledge``. The first model call of a turn is sent
with ``tool_choice="required"`` (small models never call a tool with "auto"); after
``max_tool_rounds`` rounds of tool calls the model is asked with ``tool_choice="none"``. Tools are
sent with ``"strict": true`` (``strict_tools``), so vLLM constrains the arguments to each tool's
schema (without it SmolLM2-135M's forced calls carried arguments like ``{"type": "string"}``).

The final text is accepted only if

1. every sentence passes ``reasoning.grounding.Validator.check_sentence`` (the report check),
   citing the finding ids the tools returned during the turn. Numbers a tool *derived* during the
   turn (an answer value such as a tumour burden %, a compare difference or ratio, a knowledge
   threshold) are not findings facts; each is accepted where it equals such a tool value under the
   validator's rounding rule and is then removed before the sentence is checked;
2. where the message resolves to a templated question, the text states the deterministic answer
   (the number with its unit under the same rounding rule, the yes/no, the category, the choice
   letter, or that it cannot be determined). A grounded text that answers something else is
   rejected.

A rejected text is sent back with the errors (``max_attempts`` replies in all); then the turn
falls back to the deterministic answer and says so (``engine="deterministic"``,
``fallback_reason``). An unreachable server falls back the same way.

Follow-ups: the session keeps a small state (:class:`ChatState`: the last question, its organ,
lesion and rank). "and the second largest?", "the smallest one?", "what about the spleen?",
"and its diameter?", "and L3?" resolve against it deterministically, so the expected answer is
known whether or not the LLM resolves them too; the LLM sees the conversation (previous questions
and accepted answers) and a bracketed hint with the resolved question.

Streaming: the grounding check needs the whole reply, so nothing unchecked is ever shown; the
token events carry the accepted text in word-sized chunks once the turn is decided.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perception.registry import COUINAUD, organ_family
from perception.schema import Findings, Lesion, Organ, Status
from reasoning import vqa
from reasoning.grounding import NUM, SLICE_RE, UNIT_RE, WORD_NUM, Validator, _matches, _unit
from reasoning.knowledge import lookup_medical_knowledge
from reasoning.vqa import SUBTYPES, Answer, Question

SubtypeName = Literal[tuple(SUBTYPES)]  # type: ignore[valid-type]
DERIVABLE_UNITS = ("mL", "mm", "HU", "%", "ratio")


# --- the tools: deterministic functions over Findings ---------------------------------------------
@dataclass
class ToolResult:
    """What a tool returns: ``data`` (JSON, what the model sees), the finding ids it rests on, the
    Answer (answer_question) and numbers it derived (value, unit) that are not findings facts."""

    data: Any
    finding_ids: list[str] = field(default_factory=list)
    answer: Answer | None = None
    values: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None

    def content(self) -> str:
        return json.dumps({"error": self.error} if self.error else self.data, separators=(",", ":"), default=str)


def _r(v: float | None, nd: int) -> float | None:
    return None if v is None else round(float(v), nd)


def _lesion_row(les: Lesion, rank: int | None = None) -> dict:
    row = {"id": les.id, "organ": les.organ, "kind": les.kind, "volume_ml": _r(les.volume_ml, 3),
           "long_axis_mm": _r(les.long_axis_mm, 1), "short_axis_mm": _r(les.short_axis_mm, 1),
           "mean_hu": _r(les.mean_hu, 1), "attenuation": les.attenuation.value if les.attenuation else None,
           "segments": les.segments}
    if rank is not None:
        row = {"rank": rank, **row}
    return row


def find_lesion(f: Findings, lesion_id: str) -> Lesion | None:
    return next((l for l in f.lesions if l.id == lesion_id), None)


def ranked_lesions(f: Findings, organ: str | None) -> list[Lesion]:
    """Lesions of ``organ`` (an organ, an organ family, or None for all), largest volume first
    (vqa's "largest" = largest by volume)."""
    les = [l for l in f.lesions if organ is None or l.organ == organ or (l.organ and organ_family(l.organ) == organ)]
    order = {l.id: i for i, l in enumerate(f.lesions)}
    return sorted(les, key=lambda l: (-l.volume_ml, order[l.id]))


_UNITS = {"volume_ml": "mL", "mean_hu": "HU", "long_axis_mm": "mm", "short_axis_mm": "mm", "max_diameter_3d_mm": "mm",
          "lesion_count": "lesions", "total_lesion_volume_ml": "mL"}
CompareField = Literal["volume_ml", "mean_hu", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "lesion_count",
                       "total_lesion_volume_ml"]


class FindingsTools:
    """The agent's tools as plain functions over one Findings object."""

    def __init__(self, findings: Findings):
        self.f = findings

    # answer_question ----------------------------------------------------------------------------
    def answer_question(self, subtype: str, organ: str | None = None, organs: list[str] | None = None,
                        lesion_id: str | None = None, segments: list[str] | None = None, location: str | None = None,
                        measure: str | None = None, metric: str | None = None, aggregate: str | None = None,
                        diameter: str | None = None, direction: str | None = None,
                        lesion_kind: str | None = None) -> ToolResult:
        kw = dict(organ=organ, organs=organs, lesion_id=lesion_id, segments=segments, location=location, measure=measure,
                  metric=metric, aggregate=aggregate, diameter=diameter, direction=direction, lesion_kind=lesion_kind)
        kw = {k: v for k, v in kw.items() if v not in (None, "", [])}
        try:
            q = Question(subtype=subtype, **kw)
        except (ValidationError, ValueError) as e:
            msg = "; ".join(d["msg"] for d in e.errors()) if isinstance(e, ValidationError) else str(e)
            return ToolResult(None, error=f"invalid question: {msg}")
        a = vqa.answer(self.f, q)
        values = []
        if a.status == "answered" and isinstance(a.value, (int, float)) and a.unit in DERIVABLE_UNITS:
            values.append((float(a.value), a.unit))
        data = {"status": a.status, "answer": a.answer, "unit": a.unit, "subtype": a.subtype,
                "explanation": a.explanation, "reason": a.reason, "finding_ids": a.finding_ids}
        return ToolResult({k: v for k, v in data.items() if v is not None}, list(a.finding_ids), a, values)

    # lookups ------------------------------------------------------------------------------------
    def list_lesions(self, organ: str | None = None) -> ToolResult:
        try:
            o = vqa.canonical_organ(organ) if organ else None
        except ValueError as e:
            return ToolResult(None, error=str(e))
        les = ranked_lesions(self.f, o)
        total = sum(l.volume_ml for l in les)
        data = {"organ": o or "all", "count": len(les), "total_volume_ml": round(total, 3),
                "lesions": [_lesion_row(l, i + 1) for i, l in enumerate(les)], "order": "largest volume first"}
        return ToolResult(data, [l.id for l in les], values=[(total, "mL")])

    def get_lesion(self, lesion_id: str) -> ToolResult:
        lid = (lesion_id or "").strip().upper()
        les = find_lesion(self.f, lid) if re.fullmatch(r"L\d+", lid) else None
        if les is None:
            return ToolResult(None, error=f"no lesion {lesion_id!r} (lesions: {', '.join(l.id for l in self.f.lesions) or 'none'})")
        fam = organ_family(les.organ) if les.organ else None
        rank = [l.id for l in ranked_lesions(self.f, fam)].index(les.id) + 1 if fam else None
        data = _lesion_row(les)
        data.update({
            "rank_in_organ_by_volume": rank, "max_diameter_3d_mm": _r(les.max_diameter_3d_mm, 1),
            "axial_slice": les.axial_slice, "organ_mean_hu": _r(les.organ_mean_hu, 1),
            "hu_difference": _r(les.hu_difference, 1), "laterality": les.laterality, "kidney_pole": les.kidney_pole,
            "adjacent_organs": les.adjacent_organs, "components": les.components,
            "vessel_contacts": [{"vessel": v.vessel, "category": v.category.value, "max_angle_deg": round(v.max_angle_deg),
                                 "contact_length_mm": _r(v.contact_length_mm, 1)} for v in les.vessel_contacts],
            "staging": [{"system": h.system, "category": h.category} for h in les.staging if h.category != "not assessed"],
            "touches_scan_edge": bool(les.touches_edges)})
        return ToolResult({k: v for k, v in data.items() if v not in (None, [])}, [les.id])

    def _organs(self, organ: str) -> tuple[str, list[Organ]]:
        name = vqa.canonical_organ(organ)
        o = self.f.organ(name)
        members = [o] if o is not None else [x for x in self.f.organs if organ_family(x.name) == name]
        return name, members

    def get_organ(self, organ: str) -> ToolResult:
        try:
            name, members = self._organs(organ)
        except ValueError as e:
            return ToolResult(None, error=str(e))
        if not members:
            return ToolResult(None, error=f"no {name} mask in this study (organs: {', '.join(o.name for o in self.f.organs)})")
        rows, values = [], []
        for o in members:
            les = ranked_lesions(self.f, o.name)
            tot = sum(l.volume_ml for l in les)
            values.append((tot, "mL"))
            row = {"name": o.name, "status": o.status.value, "volume_ml": _r(o.volume_ml, 3), "mean_hu": _r(o.mean_hu, 1),
                   "lesion_ids": [l.id for l in les], "lesion_count": len(les), "total_lesion_volume_ml": round(tot, 3),
                   "flags": [{"name": fl.name, "status": fl.status} for fl in o.flags]}
            if o.status == Status.truncated_by_fov:
                row["note"] = f"reaches the scan edge ({', '.join(o.touches_edges)}): incompletely imaged, volume not measured"
            rows.append({k: v for k, v in row.items() if v not in (None, [])})
        return ToolResult({"organ": name, "members": rows}, [f"organ:{o.name}" for o in members], values=values)

    def _value(self, ref: str, fld: str) -> tuple[str, float, list[str]]:
        r = ref.strip()
        if re.fullmatch(r"[Ll]\d+", r):
            les = find_lesion(self.f, r.upper())
            if les is None:
                raise ValueError(f"no lesion {r!r}")
            if fld == "lesion_count":
                raise ValueError("lesion_count compares organs, not lesions")
            if fld == "total_lesion_volume_ml":
                fld = "volume_ml"
            v = getattr(les, fld, None)
            if v is None:
                raise ValueError(f"{les.id}: {fld} not measured")
            return les.id, float(v), [les.id]
        name, members = self._organs(r)
        if not members:
            raise ValueError(f"no {name} mask in this study")
        ids = [f"organ:{o.name}" for o in members]
        les = ranked_lesions(self.f, name)
        if fld == "lesion_count":
            return name, float(len(les)), ids
        if fld == "total_lesion_volume_ml":
            return name, float(sum(l.volume_ml for l in les)), ids
        if fld not in ("volume_ml", "mean_hu"):
            raise ValueError(f"{fld} is a lesion field; organs compare on volume_ml, mean_hu, lesion_count, total_lesion_volume_ml")
        vals = [getattr(o, fld) for o in members]
        if any(v is None for v in vals):
            bad = [o.name for o, v in zip(members, vals) if v is None]
            raise ValueError(f"{fld} not available for {', '.join(bad)} (truncated by the scan edge or absent)")
        if fld == "mean_hu" and len(members) > 1:
            raise ValueError(f"mean_hu of {name}: name one side ({', '.join(o.name for o in members)})")
        return name, float(sum(vals)), ids

    def compare(self, a: str, b: str, field: str = "volume_ml") -> ToolResult:
        if field not in _UNITS:
            return ToolResult(None, error=f"unknown field {field!r} (one of {', '.join(_UNITS)})")
        try:
            na, va, ia = self._value(a, field)
            nb, vb, ib = self._value(b, field)
        except ValueError as e:
            return ToolResult(None, error=str(e))
        unit = _UNITS[field]
        larger = "equal" if va == vb else (na if va > vb else nb)
        data = {"field": field, "unit": unit, "a": {"id": na, "value": round(va, 3)}, "b": {"id": nb, "value": round(vb, 3)},
                "larger": larger, "difference": round(va - vb, 3)}
        values = [(va - vb, unit), (abs(va - vb), unit)]
        if vb:
            data["ratio"] = round(va / vb, 3)
            values.append((va / vb, "ratio"))
        if va:
            values.append((vb / va, "ratio"))
        return ToolResult(data, ia + ib, values=[(v, u) for v, u in values if u in DERIVABLE_UNITS])

    def lookup_medical_knowledge(self, topic: str) -> ToolResult:
        entries = lookup_medical_knowledge(topic or "")
        if not entries:
            return ToolResult(None, error=f"no knowledge entry matches {topic!r}")
        data = [{"key": e.key, "topic": e.topic, "rule": e.rule, "values": list(e.values), "unit": e.unit, "source": e.source,
                 **({"requires_phase": e.requires_phase} if e.requires_phase else {}), **({"note": e.note} if e.note else {})}
                for e in entries]
        values = [(v, e.unit) for e in entries for v in e.values if e.unit in DERIVABLE_UNITS]
        return ToolResult(data, [], values=values)

    def call(self, name: str, args: dict) -> ToolResult:
        fn = getattr(self, name, None)
        if name not in TOOL_NAMES or fn is None:
            return ToolResult(None, error=f"unknown tool {name!r}")
        try:
            return fn(**args)
        except TypeError as e:
            return ToolResult(None, error=f"bad arguments for {name}: {e}")


# tool argument schemas (what the model sees)
class AnswerQuestionArgs(BaseModel):
    subtype: SubtypeName = Field(description="question type")
    organ: str | None = Field(None, description="organ, e.g. liver, pancreas, spleen, kidney, kidney_left")
    organs: list[str] | None = Field(None, description="organs for ratios, comparisons, sums")
    lesion_id: str | None = Field(None, description="lesion id L1, L2, ...; default: the largest in the organ")
    segments: list[str] | None = Field(None, description="sub-segments to compare, e.g. liver_segment_7")
    location: str | None = Field(None, description="segment or organ for lesion count by location")
    measure: Literal["volume", "lesion_count", "lesion_volume"] | None = None
    metric: Literal["count", "volume"] | None = None
    aggregate: Literal["largest", "total"] | None = None
    diameter: Literal["long_axis", "short_axis", "3d"] | None = None
    direction: Literal["larger", "smaller"] | None = None
    lesion_kind: Literal["cyst", "tumor"] | None = None


class ListLesionsArgs(BaseModel):
    organ: str | None = Field(None, description="organ (e.g. liver); omit for all lesions")


class GetLesionArgs(BaseModel):
    lesion_id: str = Field(description="lesion id, e.g. L1")


class GetOrganArgs(BaseModel):
    organ: str = Field(description="organ, e.g. liver, spleen, kidney_left")


class CompareArgs(BaseModel):
    a: str = Field(description="lesion id (L1) or organ name")
    b: str = Field(description="lesion id (L2) or organ name")
    field: CompareField = Field("volume_ml", description="what to compare")


class KnowledgeArgs(BaseModel):
    topic: str = Field(description="topic, e.g. splenomegaly, steatosis, renal cyst")


TOOL_SPECS: dict[str, tuple[type[BaseModel], str]] = {
    "answer_question": (AnswerQuestionArgs, "Answer a standard question type about this study from its measurements "
                        "(returns the answer, unit, explanation and finding ids)."),
    "list_lesions": (ListLesionsArgs, "List lesions (of one organ or all), largest volume first, with size and HU."),
    "get_lesion": (GetLesionArgs, "All measurements of one lesion."),
    "get_organ": (GetOrganArgs, "Measurements of one organ: status, volume, mean HU, its lesions."),
    "compare": (CompareArgs, "Compare two lesions or two organs on one field (difference, ratio, which is larger)."),
    "lookup_medical_knowledge": (KnowledgeArgs, "Thresholds and rules of the knowledge base, with sources."),
}
TOOL_NAMES = tuple(TOOL_SPECS)


def langchain_tools(tools: FindingsTools) -> list:
    """The tools as LangChain StructuredTools; each returns (content for the model, ToolResult artifact)."""
    from langchain_core.tools import StructuredTool

    out = []
    for name, (schema, desc) in TOOL_SPECS.items():
        def run(_name=name, **kwargs):
            res = tools.call(_name, kwargs)
            return res.content(), res

        out.append(StructuredTool.from_function(run, name=name, description=desc, args_schema=schema,
                                                response_format="content_and_artifact"))
    return out


# --- the conversation state and follow-up resolution ---------------------------------------------
@dataclass
class ChatState:
    """What a follow-up may refer to: the last question, its organ, lesion and its volume rank."""

    question: Question | None = None
    organ: str | None = None
    lesion_id: str | None = None
    rank: int | None = None  # 0-based index in ranked_lesions(organ), counted from the `direction` end
    direction: Literal["largest", "smallest"] = "largest"


_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5,
             "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8, "next": 0}
_RANK_RE = re.compile(r"\b(?:(" + "|".join(_ORDINALS) + r")[\s-]+)?(largest|biggest|smallest)\b")
_NEXT_RE = re.compile(r"\bnext\b(?!\s+to\b)")
_FOLLOW_RE = re.compile(r"^\s*(?:and|what about|how about|same for|now|then|also)\b")
_PRONOUN_RE = re.compile(r"\b(?:it|its|this|that|the same)\b")
_LESION_FIELD = [  # lesion-level subtype by the measurement word asked about
    ("lesion volume measurement", r"\bvolume\b|\bhow much\b|\bml\b|\bcc\b"),
    ("largest lesion diameter", r"\bdiameter\b|\bsize\b|\bhow big\b|\blong axis\b|\blength\b|\bhow large\b|\bmeasure"),
    ("lesion HU measurement", r"\bhu\b|\battenuation value\b|\bdensity\b|\bmean attenuation\b"),
    ("largest lesion attenuation", r"\battenuat\w*\b|\bhypo\w*|\bhyper\w*|\biso\w*"),
    ("largest lesion slice", r"\bslice\b"),
    ("largest lesion location", r"\bsegment\b|\bwhere\b|\blocat\w*"),
    ("adjacent organ", r"\badjacent\b|\bnext to\b|\bnear\w*\b"),
]
_DESCRIBE_RE = re.compile(r"\b(describe|tell me about|details?|summar\w*|show)\b|^\s*L\d+\s*\??\s*$", re.I)


def _lesion_level(subtype: str | None) -> bool:
    return bool(subtype) and "lesion_id" in SUBTYPES[subtype].params


def _organ_of(f: Findings, lesion_id: str | None) -> str | None:
    les = find_lesion(f, lesion_id) if lesion_id else None
    return organ_family(les.organ) if les is not None and les.organ else None


def _ordinal_word(n: int) -> str:
    return {1: "", 2: "second ", 3: "third ", 4: "fourth ", 5: "fifth ", 6: "sixth ", 7: "seventh ", 8: "eighth "}.get(n, f"{n}th ")


@dataclass
class Resolution:
    """The deterministic reading of one message."""

    question: Question | None
    answer: Answer | None
    text: str
    subject: str | None = None  # e.g. "the second largest liver lesion is L2"
    note: str | None = None  # how the message was read (follow-ups)
    state: ChatState | None = None  # the state after this message (None: leave it)
    mention: list[str] = field(default_factory=list)  # lesion ids a reply must name (a lesion summary)


def _unmapped_text(message: str) -> str:
    return (f"I could not map {message.strip()!r} to a supported question type, so I do not guess. "
            f"Supported question types: {', '.join(SUBTYPES)}. "
            "For example: 'What is the volume of the largest liver lesion?', then 'and the second largest?'.")


def describe_lesion(f: Findings, les: Lesion) -> str:
    organ = "no organ"
    if les.organ:
        m = re.fullmatch(r"(.+)_(left|right)", les.organ)
        organ = "the " + (f"{m.group(2)} {m.group(1)}" if m else les.organ).replace("_", " ")
    bits = [f"{les.id}: {les.kind} in {organ}",
            f"{les.long_axis_mm:.1f} x {les.short_axis_mm:.1f} mm on axial slice {les.axial_slice}",
            f"volume {les.volume_ml:.3f} mL", f"mean {les.mean_hu:.1f} HU"]
    if les.attenuation:
        bits.append(les.attenuation_term or les.attenuation.value)
    if les.segments:
        bits.append("in " + ", ".join(vqa.segment_display(s) for s in les.segments))
    return "; ".join(bits) + "."


def answer_text(a: Answer, subject: str | None = None) -> str:
    if a.status == "unmapped_question":
        text = a.question.text if a.question and a.question.text else ""
        return _unmapped_text(text)
    line = a.line()
    return f"{subject[0].upper() + subject[1:]}: {line}" if subject else line


def resolve(f: Findings, message: str, state: ChatState, choices: list[str] | None = None) -> Resolution:
    """Read ``message`` deterministically, using ``state`` for follow-ups."""
    text = message.strip()
    if not choices:
        text, opts = vqa.split_choices(text)
        choices = [f"{o.letter}) {o.text}" for o in opts] or None
    t = vqa._norm(text)  # noqa: SLF001 - the vqa parser's own normalisation and organ vocabulary
    organs = vqa._organs_in(t)  # noqa: SLF001
    q = vqa.parse_question(text)
    lid_m = re.search(r"\b(L\d+)\b", text, re.I)
    lid = lid_m.group(1).upper() if lid_m else None
    follow = bool(_FOLLOW_RE.search(t)) or len(t.split()) <= 4
    note = None
    field_subtype = next((s for s, pat in _LESION_FIELD if re.search(pat, t)), None)

    def done(question: Question, subject: str | None = None, note: str | None = None, rank: int | None = None,
             direction: str = "largest", organ: str | None = None) -> Resolution:
        a = vqa.answer(f, question, choices)
        organ = organ or question.organ or _organ_of(f, question.lesion_id)
        lesion = question.lesion_id or (next((i for i in a.finding_ids if re.fullmatch(r"L\d+", i)), None)
                                        if _lesion_level(question.subtype) else None)
        if rank is None and lesion is not None and _lesion_level(question.subtype):
            ids = [l.id for l in ranked_lesions(f, organ)]
            rank = ids.index(lesion) if lesion in ids else None
            direction = "largest"
        st = ChatState(question, organ, lesion, rank, direction)  # type: ignore[arg-type]
        return Resolution(question, a, answer_text(a, subject), subject, note, st)

    def q_with(subtype: str, **kw) -> Question | None:
        spec = SUBTYPES[subtype]
        kw = {k: v for k, v in kw.items() if v is not None and (k in spec.params)}
        try:
            return Question(subtype=subtype, text=text, **kw)
        except (ValidationError, ValueError):
            return None

    # 1. a ranked lesion: "the second largest", "the smallest liver lesion", "the next one"
    rm = _RANK_RE.search(t)
    if rm and q is not None and not rm.group(1) and rm.group(2) != "smallest":
        rm = None  # plain "largest" in a templated question: vqa's own choice of lesion (e.g. the largest cyst)
    nxt = rm is None and _NEXT_RE.search(t) and state.rank is not None
    if rm or nxt:
        if rm:
            word, kind = rm.group(1), rm.group(2)
            direction = "smallest" if kind == "smallest" else "largest"
            if word == "next":
                n = (state.rank or 0) + 2 if state.rank is not None and state.direction == direction else 2
            else:
                n = _ORDINALS.get(word or "first", 1)
        else:
            direction, n = state.direction, (state.rank or 0) + 2
        if q is not None and _lesion_level(q.subtype):
            subtype = q.subtype
        elif q is None and field_subtype:
            subtype = field_subtype
        elif q is None and state.question is not None and _lesion_level(state.question.subtype) and follow:
            subtype = state.question.subtype
        elif q is None:
            subtype = "lesion volume measurement"
        else:
            subtype = None
        if subtype is not None:
            organ = (q.organ if q is not None and q.organ else None) or (organs[0] if organs else None)
            if organ is None and follow:
                organ = state.organ
            try:
                organ = vqa.canonical_organ(organ) if organ else None
            except ValueError:
                organ = None
            ranking = ranked_lesions(f, organ)
            if direction == "smallest":
                ranking = ranking[::-1]
            where = f"{organ.replace('_', ' ')} " if organ else ""
            what = f"{_ordinal_word(n)}{direction} {where}lesion"
            if n > len(ranking):
                a = Answer(status="cannot_be_determined", subtype=subtype, group=SUBTYPES[subtype].group,
                           answer_type=SUBTYPES[subtype].answer_type, finding_ids=[l.id for l in ranking],
                           explanation="the findings cannot support an answer",
                           reason=f"there is no {what}: the study has {len(ranking)} {where}lesion(s)")
                return Resolution(None, a, answer_text(a), None, f"{what}: none", None)
            les = ranking[n - 1]
            question = q_with(subtype, organ=organ, lesion_id=les.id) or q_with(subtype, lesion_id=les.id)
            if question is not None:
                return done(question, f"the {what} is {les.id}", f"{what} -> {les.id} ({subtype})", n - 1, direction, organ)

    # 2. a templated question; "that lesion" / "it" refers to the last lesion
    if q is not None:
        if (_lesion_level(q.subtype) and q.lesion_id is None and q.organ is None and state.lesion_id
                and _PRONOUN_RE.search(t)):
            q2 = q_with(q.subtype, lesion_id=state.lesion_id)
            if q2 is not None:
                return done(q2, None, f"'{_PRONOUN_RE.search(t).group(0)}' -> {state.lesion_id}")
        return done(q.model_copy(update={"text": text}) if q.text != text else q)

    # 3. a lesion by id or pronoun, with what is asked about it (or the last lesion-level question)
    target = lid or (state.lesion_id if _PRONOUN_RE.search(t) else None)
    if target is not None:
        if find_lesion(f, target) is None:
            a = Answer(status="cannot_be_determined", explanation="the findings cannot support an answer",
                       reason=f"there is no lesion {target} (lesions: {', '.join(l.id for l in f.lesions) or 'none'})")
            return Resolution(None, a, answer_text(a), None, None, None)
        describe = bool(lid and _DESCRIBE_RE.search(text))
        subtype = field_subtype or (state.question.subtype if state.question is not None and not describe
                                    and _lesion_level(state.question.subtype) and follow else None)
        if subtype is not None:
            question = q_with(subtype, lesion_id=target)
            if question is not None:
                return done(question, None, None if lid else f"'{_PRONOUN_RE.search(t).group(0)}' -> {target}")
        if lid and (describe or follow):
            les = find_lesion(f, target)
            organ = organ_family(les.organ) if les.organ else None
            ids = [l.id for l in ranked_lesions(f, organ)]
            st = ChatState(state.question, organ, les.id, ids.index(les.id), "largest")
            return Resolution(None, None, describe_lesion(f, les), None, f"describe {les.id}", st, [les.id])

    # 4. "what about the spleen?": the last question for another organ
    if organs and follow and state.question is not None and "organ" in SUBTYPES[state.question.subtype].params:
        question = q_with(state.question.subtype, organ=organs[0],
                          **{k: getattr(state.question, k) for k in ("diameter", "aggregate", "lesion_kind")
                             if getattr(state.question, k) is not None})
        if question is not None:
            return done(question, None, f"same question ({state.question.subtype}) for the {organs[0].replace('_', ' ')}")

    a = vqa.answer(f, text, choices)  # unmapped (or mapped after all)
    if a.status != "unmapped_question":
        return done(a.question) if a.question is not None else Resolution(None, a, answer_text(a))
    return Resolution(None, a, _unmapped_text(text), note=note)


# --- checking the LLM's reply ---------------------------------------------------------------------
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[\"'])|\n+")
_NEGATION = re.compile(r"\b(cannot|can ?not|can't|could not|not (?:be )?(?:determined|measured|assessable|assessed|possible|known)"
                       r"|undetermin\w*|unknown|unable|indeterminable|not available)\b", re.I)


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
        want = f"{vqa._fmt(v, 3)} {unit}" if unit not in ("slice", "lesions") else (  # noqa: SLF001
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
    errs = [str(e) for i, s in enumerate(split_sentences(text)) for e in validator.check_sentence(i, _blank_derived(s, derived), cited)]
    if expected is not None:
        miss = states_answer(text, expected)
        if miss:
            errs.append(f"answer: {miss}")
    for lid in mention or []:
        if not re.search(rf"\b{lid}\b", text):
            errs.append(f"answer: the question is about {lid}; describe {lid} (call get_lesion with lesion_id {lid!r})")
    return errs


# --- the turn record ------------------------------------------------------------------------------
class ToolCallRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    args: dict = {}
    finding_ids: list[str] = []
    error: str | None = None
    result: Any = Field(None, description="the JSON the model saw")


class ChatTurn(BaseModel):
    """One question and its answer, with the evidence."""

    model_config = ConfigDict(extra="forbid")

    message: str
    text: str = Field(description="the answer shown to the user")
    engine: Literal["llm", "deterministic"]
    answer: Answer | None = Field(None, description="the deterministic Answer of the question (None for a lesion summary)")
    answers: list[Answer] = Field([], description="every Answer used: the deterministic one and those of answer_question calls")
    tool_calls: list[ToolCallRecord] = []
    finding_ids: list[str] = []
    grounding_errors: list[list[str]] = Field([], description="errors of each rejected LLM reply")
    attempts: int = Field(0, description="LLM replies asked for")
    fallback_reason: str | None = None
    resolved_as: str | None = Field(None, description="how a follow-up was read")
    model: str | None = None
    seconds: float = 0.0


# --- the session ----------------------------------------------------------------------------------
SYSTEM_PROMPT = """You answer questions about one abdominal CT study. Your only source of facts is the tools, which read the study's measured findings. Never state a number, lesion id, location or stage that a tool did not return.
First call a tool: answer_question for standard question types (subtype + parameters), list_lesions, get_lesion, get_organ or compare for lookups, lookup_medical_knowledge for thresholds.
Then answer in 1-3 short sentences: the direct answer first (the number with its unit, yes or no, or the category), then the lesion ids it rests on. Copy numbers exactly as the tools give them, with units (mL, mm, HU, %); write counts with the organ (3 liver lesions). If a tool says the answer cannot be determined, say so and why."""


@dataclass
class _TurnContext:
    start: int  # index of this turn's user message in the message list
    force_tool: bool
    first_tool_choice: Any
    max_tool_rounds: int
    strict_tools: bool = True


def _tool_policy_middleware():
    """Middleware: tool_choice 'required' (or named) on the turn's first model call, 'none' after
    max_tool_rounds rounds of tool calls."""
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.messages import AIMessage

    class ToolPolicy(AgentMiddleware):
        def _adjust(self, request):
            ctx = request.runtime.context if request.runtime is not None else None
            if not isinstance(ctx, _TurnContext):
                return request
            change: dict = {}
            if ctx.strict_tools:  # 'strict': the server constrains tool arguments to each tool's schema
                change["model_settings"] = {**request.model_settings, "strict": True}
            rounds = sum(1 for m in request.messages[ctx.start:] if isinstance(m, AIMessage) and m.tool_calls)
            if rounds == 0 and ctx.force_tool:
                change["tool_choice"] = ctx.first_tool_choice
            elif rounds >= ctx.max_tool_rounds:
                change["tool_choice"] = "none"
            return request.override(**change) if change else request

        def wrap_model_call(self, request, handler):
            return handler(self._adjust(request))

        async def awrap_model_call(self, request, handler):
            return await handler(self._adjust(request))

    return ToolPolicy()


def _v1(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class ChatSession:
    """One conversation about one study. Its turns run one at a time (a turn started while another
    runs raises RuntimeError); use one session per conversation."""

    def __init__(self, findings: Findings, llm_url: str | None = None, model: str | None = None, *,
                 api_key: str | None = None, max_attempts: int = 3, max_tool_rounds: int = 3,
                 first_tool_choice: str | dict | None = "required", strict_tools: bool = True, max_tokens: int = 300,
                 timeout_s: float = 300.0, history_turns: int = 6):
        self.findings = findings
        self.llm_url = _v1(llm_url) if llm_url else None
        self.model = model
        self.api_key = api_key
        self.max_attempts = max(1, max_attempts)
        self.max_tool_rounds = max(1, max_tool_rounds)
        self.first_tool_choice = first_tool_choice
        self.strict_tools = strict_tools
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.history_turns = history_turns
        if self.llm_url is not None:
            import importlib.util

            missing = [m for m in ("langchain", "langchain_openai") if importlib.util.find_spec(m) is None]
            if missing:
                from reasoning.client import LLMError

                raise LLMError(f"the chat agent needs {', '.join(missing)}: pip install 'radagent[agent]'")
        self.tools = FindingsTools(findings)
        self.validator = Validator(findings)
        self.state = ChatState()
        self.turns: list[ChatTurn] = []
        self._agent = None
        self._lock = threading.Lock()

    # public API -----------------------------------------------------------------------------------
    def ask(self, message: str, choices: list[str] | None = None) -> ChatTurn:
        """Answer one message (``choices``: multiple-choice options 'A) ...'). Synchronous."""
        self._enter()
        try:
            return self._ask(message, choices)
        finally:
            self._lock.release()

    async def aask(self, message: str, choices: list[str] | None = None) -> ChatTurn:
        """Answer one message without blocking the event loop."""
        self._enter()
        try:
            return await self._aask(message, choices)
        finally:
            self._lock.release()

    def _enter(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this ChatSession is answering another message; the turns of one conversation run one at a time")

    def _ask(self, message: str, choices: list[str] | None) -> ChatTurn:
        t0 = time.perf_counter()
        res = resolve(self.findings, message, self.state, choices)
        if self.llm_url is None:
            return self._finish(self._deterministic(message, res), res, t0)
        try:
            agent = self._ensure_agent_sync()
            invoke = lambda msgs, ctx: agent.invoke({"messages": msgs}, context=ctx, config=self._config())  # noqa: E731
            turn = self._llm_turn(message, res, choices, invoke)
        except _LLMUnavailable as e:
            turn = self._fallback(message, res, [], [], 0, f"LLM unavailable: {e}")
        return self._finish(turn, res, t0)

    async def _aask(self, message: str, choices: list[str] | None) -> ChatTurn:
        t0 = time.perf_counter()
        res = resolve(self.findings, message, self.state, choices)
        if self.llm_url is None:
            return self._finish(self._deterministic(message, res), res, t0)
        try:
            agent = await self._ensure_agent_async()
            msgs0, start = self._messages(message, res, choices)
            msgs, errors_seen = msgs0, []
            for attempt in range(1, self.max_attempts + 1):
                try:
                    out = await agent.ainvoke({"messages": msgs}, context=self._ctx(start, attempt), config=self._config())
                except Exception as e:  # noqa: BLE001 - any server/client failure falls back
                    raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
                turn, msgs = self._after_attempt(message, res, out["messages"], start, attempt, errors_seen)
                if turn is not None:
                    return self._finish(turn, res, t0)
            turn = self._give_up(message, res, msgs, start, errors_seen)
        except _LLMUnavailable as e:
            turn = self._fallback(message, res, [], [], 0, f"LLM unavailable: {e}")
        return self._finish(turn, res, t0)

    async def astream(self, message: str, choices: list[str] | None = None) -> AsyncIterator[dict]:
        """Token events with the accepted text (released only after the grounding check), then the final event."""
        turn = await self.aask(message, choices)
        for chunk in re.findall(r"\S+\s*|\s+", turn.text):
            yield {"type": "token", "text": chunk}
            await asyncio.sleep(0)
        yield {"type": "final", "text": turn.text, "engine": turn.engine, "finding_ids": turn.finding_ids,
               "turn": turn.model_dump(mode="json")}

    def reset(self) -> None:
        self.state = ChatState()
        self.turns.clear()

    # deterministic ----------------------------------------------------------------------------------
    def _deterministic(self, message: str, res: Resolution) -> ChatTurn:
        a = res.answer
        return ChatTurn(message=message, text=res.text, engine="deterministic", answer=a, answers=[a] if a else [],
                        finding_ids=list(a.finding_ids) if a else self._ids_of_text(res), resolved_as=res.note)

    def _ids_of_text(self, res: Resolution) -> list[str]:
        return [res.state.lesion_id] if res.state is not None and res.state.lesion_id else []

    # LLM --------------------------------------------------------------------------------------------
    def _config(self) -> dict:
        return {"recursion_limit": 2 * self.max_tool_rounds + 6}

    def _ctx(self, start: int, attempt: int) -> _TurnContext:
        return _TurnContext(start, attempt == 1 and bool(self.first_tool_choice), self.first_tool_choice, self.max_tool_rounds,
                            self.strict_tools)

    def _build_agent(self):
        from langchain.agents import create_agent
        from langchain_openai import ChatOpenAI

        llm = ChatOpenAI(model=self.model, base_url=self.llm_url, api_key=self.api_key or "EMPTY", temperature=0.0,
                         max_tokens=self.max_tokens, timeout=self.timeout_s, max_retries=1)
        return create_agent(llm, langchain_tools(self.tools), system_prompt=SYSTEM_PROMPT,
                            middleware=[_tool_policy_middleware()], context_schema=_TurnContext)

    def _ensure_agent_sync(self):
        if self._agent is None:
            if not self.model:
                import httpx

                try:
                    r = httpx.get(f"{self.llm_url}/models", timeout=30, headers=self._headers())
                    r.raise_for_status()
                    self.model = r.json()["data"][0]["id"]
                except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                    raise _LLMUnavailable(f"{self.llm_url}/models: could not list the served models ({type(e).__name__}: {e})") from e
            self._agent = self._build_agent()
        return self._agent

    async def _ensure_agent_async(self):
        if self._agent is None:
            if not self.model:
                import httpx

                try:
                    async with httpx.AsyncClient(timeout=30) as c:
                        r = await c.get(f"{self.llm_url}/models", headers=self._headers())
                    r.raise_for_status()
                    self.model = r.json()["data"][0]["id"]
                except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                    raise _LLMUnavailable(f"{self.llm_url}/models: could not list the served models ({type(e).__name__}: {e})") from e
            self._agent = self._build_agent()
        return self._agent

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _messages(self, message: str, res: Resolution, choices: list[str] | None):
        from langchain_core.messages import AIMessage, HumanMessage

        hist = []
        for t in self.turns[-self.history_turns:]:
            hist += [HumanMessage(t.message), AIMessage(t.text)]
        content = message.strip()
        if choices:
            content += "\nOptions:\n" + "\n".join(choices) + "\nAnswer with the letter of the matching option."
        if res.question is not None:
            q = res.question
            params = {k: v for k, v in q.model_dump(exclude={"text", "subtype"}, exclude_defaults=True).items() if v}
            hint = f"subtype {q.subtype!r}" + "".join(f", {k} {v!r}" for k, v in params.items())
            content += f"\n[Parsed question: {hint}" + (f" ({res.subject})" if res.subject else "") + \
                       ". Call answer_question with these parameters.]"
        return hist + [HumanMessage(content)], len(hist)

    def _llm_turn(self, message, res, choices, invoke) -> ChatTurn:
        msgs, start = self._messages(message, res, choices)
        errors_seen: list[list[str]] = []
        for attempt in range(1, self.max_attempts + 1):
            try:
                out = invoke(msgs, self._ctx(start, attempt))
            except Exception as e:  # noqa: BLE001 - any server/client failure falls back
                raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
            turn, msgs = self._after_attempt(message, res, out["messages"], start, attempt, errors_seen)
            if turn is not None:
                return turn
        return self._give_up(message, res, msgs, start, errors_seen)

    def _records(self, msgs: list, start: int) -> tuple[list[ToolCallRecord], list[ToolResult]]:
        from langchain_core.messages import AIMessage, ToolMessage

        args = {}
        for m in msgs[start:]:
            if isinstance(m, AIMessage):
                for c in m.tool_calls:
                    args[c["id"]] = (c["name"], c.get("args") or {})
        records, results = [], []
        for m in msgs[start:]:
            if not isinstance(m, ToolMessage):
                continue
            name, a = args.get(m.tool_call_id, (m.name or "?", {}))
            r = m.artifact if isinstance(m.artifact, ToolResult) else None
            if r is None:  # argument validation failed before the tool ran
                r = ToolResult(None, error=str(m.content)[:500])
            results.append(r)
            records.append(ToolCallRecord(name=name, args=a, finding_ids=r.finding_ids, error=r.error, result=r.data))
        return records, results

    def _after_attempt(self, message, res, msgs, start, attempt, errors_seen):
        from langchain_core.messages import AIMessage, HumanMessage

        records, results = self._records(msgs, start)
        last = msgs[-1]
        text = last.text.strip() if isinstance(last, AIMessage) and not last.tool_calls else ""
        cited = sorted({i for r in results for i in r.finding_ids}, key=_id_key)
        derived = [v for r in results for v in r.values]
        expected = res.answer if res.answer is not None and res.answer.status in ("answered", "cannot_be_determined") else None
        errs = check_reply(self.validator, text, cited, derived, expected, res.mention)
        if not errs:
            answers = ([res.answer] if res.answer is not None else []) + [r.answer for r in results if r.answer is not None]
            primary = expected or next((r.answer for r in reversed(results) if r.answer is not None and r.answer.status == "answered"),
                                       res.answer)
            turn = ChatTurn(message=message, text=text, engine="llm", answer=primary, answers=answers, tool_calls=records,
                            finding_ids=cited, grounding_errors=errors_seen, attempts=attempt, resolved_as=res.note,
                            model=self.model)
            return turn, msgs
        errors_seen.append(errs)
        fix = ("Your answer has these problems:\n- " + "\n- ".join(errs[:20]) +
               "\nAnswer again in 1-3 sentences, using only numbers and lesion ids that the tools returned.")
        return None, list(msgs) + [HumanMessage(fix)]

    def _give_up(self, message, res, msgs, start, errors_seen) -> ChatTurn:
        records, results = self._records(msgs, start)
        return self._fallback(message, res, records, results, self.max_attempts,
                              f"the model's reply failed the grounding check {len(errors_seen)} time(s)", errors_seen)

    def _fallback(self, message, res, records, results, attempts, reason, errors_seen=None) -> ChatTurn:
        a, text = res.answer, res.text
        tool_answers = [r.answer for r in results if r.answer is not None]
        if (a is None or a.status == "unmapped_question") and any(x.status == "answered" for x in tool_answers):
            a = next(x for x in reversed(tool_answers) if x.status == "answered")
            q = a.question
            params = ", ".join(f"{k}={v}" for k, v in q.model_dump(exclude={"text", "subtype"}, exclude_defaults=True).items() if v)
            text = f"From answer_question({q.subtype}{', ' + params if params else ''}): {answer_text(a)}"
        answers = []
        for x in ([res.answer] if res.answer is not None else []) + tool_answers:
            if all(x is not y for y in answers):
                answers.append(x)
        return ChatTurn(message=message, text=f"{text}\n[Deterministic answer: {reason}.]", engine="deterministic", answer=a,
                        answers=answers, tool_calls=records,
                        finding_ids=list(a.finding_ids) if a else self._ids_of_text(res), grounding_errors=errors_seen or [],
                        attempts=attempts, fallback_reason=reason, resolved_as=res.note, model=self.model)

    # bookkeeping ------------------------------------------------------------------------------------
    def _finish(self, turn: ChatTurn, res: Resolution, t0: float) -> ChatTurn:
        if res.state is not None:
            self.state = res.state
        elif turn.engine == "llm":
            self._state_from_tools(turn)
        turn.seconds = round(time.perf_counter() - t0, 3)
        self.turns.append(turn)
        return turn

    def _state_from_tools(self, turn: ChatTurn) -> None:
        """An unmapped message the LLM answered: remember what its tools were about."""
        for rec in reversed(turn.tool_calls):
            if rec.error:
                continue
            if rec.name == "answer_question":
                a = next((x for x in reversed(turn.answers) if x.question is not None and x.question.subtype == rec.args.get("subtype")), None)
                if a is not None and a.question is not None:
                    lesion = a.question.lesion_id or next((i for i in a.finding_ids if re.fullmatch(r"L\d+", i)), None)
                    organ = a.question.organ or _organ_of(self.findings, lesion)
                    ids = [l.id for l in ranked_lesions(self.findings, organ)]
                    self.state = ChatState(a.question, organ, lesion, ids.index(lesion) if lesion in ids else None)
                    return
            if rec.name in ("list_lesions", "get_lesion"):
                lesion = rec.args.get("lesion_id") if rec.name == "get_lesion" else (rec.finding_ids[0] if rec.finding_ids else None)
                lesion = lesion.upper() if lesion else None
                organ = _organ_of(self.findings, lesion) if rec.name == "get_lesion" else (
                    (rec.result or {}).get("organ") if isinstance(rec.result, dict) and (rec.result or {}).get("organ") != "all" else None)
                ids = [l.id for l in ranked_lesions(self.findings, organ)]
                self.state = ChatState(self.state.question, organ, lesion, ids.index(lesion) if lesion in ids else None)
                return


class _LLMUnavailable(Exception):
    pass


def _id_key(i: str) -> tuple:
    m = re.fullmatch(r"L(\d+)", i)
    return (0, int(m.group(1)), "") if m else (1, 0, i)


def ask_with_llm(findings: Findings, question: str, llm_url: str | None, model: str | None = None,
                 choices: list[str] | None = None, **session_kw) -> tuple[str, Answer | None]:
    """One question through the chat agent (``radagent ask --llm``): the text shown and the
    deterministic Answer it rests on (None for a lesion summary). Deterministic without llm_url."""
    turn = ChatSession(findings, llm_url, model, **session_kw).ask(question, choices=choices)
    return turn.text, turn.answer
