"""The chat agent's conversation state and follow-up resolution (see :mod:`reasoning.agent`):
:func:`resolve` reads one message deterministically, using :class:`ChatState` (the last question,
its organ, lesion and rank) for follow-ups such as "and the second largest?"."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from perception.registry import organ_family
from perception.schema import Findings, Lesion
from reasoning import vqa
from reasoning.chat_tools import find_lesion, ranked_lesions
from reasoning.limitations import size_phrase, slice_phrase
from reasoning.vqa import SUBTYPES, Answer, Question
from reasoning.vqa.parse import _norm, _organs_in


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
            f"{size_phrase(les)} on {slice_phrase(les, f.study)}",
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
    t = _norm(text)  # the vqa parser's own normalisation and organ vocabulary
    organs = _organs_in(t)
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
