"""Follow-up resolution for the chat (one conversation about one study): :func:`resolve` reads one
message deterministically into a :class:`Question` and its :class:`Answer`, using
:class:`ChatState` (the last question, its organ, lesion, rank and vessel) for follow-ups.

What a message names beats what it points back to:

- a lesion id ("L3") beats everything;
- an organ named in the message ("the pancreas lesion ... is it resectable?") beats a pronoun: the
  question is about that organ's lesion, not the lesion of the previous turn;
- a vessel named in the message ("and the SMV?") replaces the vessel of the previous vessel question;
- an ordinal ("and the second largest?", "and the third?", "the smallest?", "the next one?") counts
  all lesions of the organ in context, largest volume first: the organ named, else the organ of the
  previous question (the organ a subtype is about counts: "Is there a liver tumor?" is about the
  liver), else all lesions of the study.

Nothing is guessed: a message that maps to no question type is answered "unmapped" with the list of
supported types; an ordinal past the last lesion says how many lesions there are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from perception.registry import organ_family
from perception.schema import Findings, Lesion
from reasoning import vqa
from reasoning.limitations import size_phrase, slice_phrase
from reasoning.vocabulary import organs_in, vessels_in
from reasoning.vqa import SUBTYPES, Answer, Question
from reasoning.vqa.parse import _norm


def find_lesion(f: Findings, lesion_id: str) -> Lesion | None:
    return next((l for l in f.lesions if l.id == lesion_id), None)


def ranked_lesions(f: Findings, organ: str | None) -> list[Lesion]:
    """Lesions of ``organ`` (an organ, an organ family, or None for all), largest volume first
    (vqa's "largest" = largest by volume)."""
    les = [l for l in f.lesions if organ is None or l.organ == organ or (l.organ and organ_family(l.organ) == organ)]
    order = {l.id: i for i, l in enumerate(f.lesions)}
    return sorted(les, key=lambda l: (-l.volume_ml, order[l.id]))


@dataclass
class ChatState:
    """What a follow-up may refer to: the last question, its organ, lesion, volume rank and vessel."""

    question: Question | None = None
    organ: str | None = None
    lesion_id: str | None = None
    rank: int | None = None  # 0-based index in ranked_lesions(organ), counted from the `direction` end
    direction: Literal["largest", "smallest"] = "largest"
    vessel: str | None = None


_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5,
             "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8, "next": 0}
_ORD = "|".join(_ORDINALS)
_RANK_RE = re.compile(r"\b(?:(" + _ORD + r")[\s-]+)?(largest|biggest|smallest)\b")
# a bare ordinal in a follow-up: "and the third?", "the second one", "the 2nd lesion"
_BARE_ORD_RE = re.compile(r"\b(?:the\s+)?(" + _ORD + r")\b(?:\s+(?:one|lesion|tumou?r|mass|cyst|nodule)s?)?\s*\??\s*$")
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
_VESSEL_FIELD = [  # vessel subtype by the word asked about (used when the previous question was about a vessel)
    ("vessel contact angle", r"\bangle\b|\bdegrees?\b|\bcircumferen\w*"),
    ("vessel contact length", r"\blength\b|\bhow long\b|\bextent\b"),
    ("vessel contact category", r"\bcategory\b|\babut\w*|\bencase\w*|\bkind of contact\b"),
    ("involved vessels", r"\bwhich vessels\b|\bwhat vessels\b|\binvolved vessels\b"),
    ("vessel involvement", r"\bcontact\w*\b|\binvolv\w*|\btouch\w*|\binvade\w*|\binvasion\b"),
]
_DESCRIBE_RE = re.compile(r"\b(describe|tell me about|details?|summar\w*|show)\b|^\s*L\d+\s*\??\s*$", re.IGNORECASE)
_CARRY = ("diameter", "aggregate", "lesion_kind", "vessel", "threshold_mm", "unit", "direction")  # kept by a follow-up


def _lesion_level(subtype: str | None) -> bool:
    return bool(subtype) and subtype in SUBTYPES and "lesion_id" in SUBTYPES[subtype].params


def _organ_of(f: Findings, lesion_id: str | None) -> str | None:
    les = find_lesion(f, lesion_id) if lesion_id else None
    return organ_family(les.organ) if les is not None and les.organ else None


def _ordinal_word(n: int) -> str:
    return {1: "", 2: "second ", 3: "third ", 4: "fourth ", 5: "fifth ", 6: "sixth ", 7: "seventh ", 8: "eighth "}.get(n, f"{n}th ")


def _canon(organ: str | None) -> str | None:
    try:
        return vqa.canonical_organ(organ) if organ else None
    except ValueError:
        return None


def context_organ(f: Findings, question: Question | None, answer: Answer | None) -> str | None:
    """The organ a question is about: its organ parameter, the organ its subtype names ("liver lesion
    existence", "pancreatic tumor staging"), else the one organ of the lesions its answer rests on."""
    if question is None:
        return None
    if question.organ:
        return question.organ
    named = organs_in(question.subtype.lower())
    if len(named) == 1:
        return _canon(named[0])
    if question.lesion_id:
        return _organ_of(f, question.lesion_id)
    fams = {_organ_of(f, i) for i in (answer.finding_ids if answer else []) if re.fullmatch(r"L\d+", i)}
    return fams.pop() if len(fams) == 1 and None not in fams else None


def _vessel_named(f: Findings, t: str) -> str | None:
    """The first vessel named in ``t``, as a Findings vessel name (of the candidates a phrase may
    denote, the one this study assessed)."""
    found = vessels_in(t)
    if not found:
        return None
    names = found[0][1]
    assessed = {v.vessel for les in f.lesions for v in les.vessel_contacts}
    return next((n for n in names if n in assessed), names[0])


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


class _Reader:
    """One message read against the state (the steps of :func:`resolve`)."""

    def __init__(self, f: Findings, message: str, state: ChatState, choices: list[str] | None, comparison=None):
        self.comparison = comparison  # a Comparison with the priors: change-over-time questions are answered from it
        text = message.strip()
        if not choices:
            text, opts = vqa.split_choices(text)
            choices = [f"{o.letter}) {o.text}" for o in opts] or None
        self.f, self.state, self.choices, self.text = f, state, choices, text
        self.t = t = _norm(text)  # the vqa parser's own normalisation
        self.organs = [o for o in (_canon(x) for x in organs_in(t)) if o]
        self.q = vqa.parse_question(text)
        lid_m = re.search(r"\b(L\d+)\b", text, re.IGNORECASE)
        self.lid = lid_m.group(1).upper() if lid_m else None
        self.vessel = _vessel_named(f, t)
        self.follow = bool(_FOLLOW_RE.search(t)) or len(t.split()) <= 4
        self.pronoun = _PRONOUN_RE.search(t)
        self.field_subtype = next((s for s, pat in _LESION_FIELD if re.search(pat, t)), None)
        vessel_q = state.question is not None and "vessel" in SUBTYPES.get(state.question.subtype, _NO).params
        self.vessel_subtype = next((s for s, pat in _VESSEL_FIELD if s in SUBTYPES and re.search(pat, t)), None) \
            if (vessel_q or self.vessel) else None

    # helpers ----------------------------------------------------------------------------------------
    def carried(self, subtype: str) -> dict:
        """Parameters of the previous question a follow-up keeps (diameter, vessel, threshold, ...)."""
        prev = self.state.question
        if prev is None:
            return {}
        return {k: getattr(prev, k, None) for k in _CARRY if k in SUBTYPES[subtype].params}

    def q_with(self, subtype: str, **kw) -> Question | None:
        spec = SUBTYPES[subtype]
        kw = {k: v for k, v in kw.items() if v is not None and (k in spec.params)}
        try:
            return Question(subtype=subtype, text=self.text, **kw)
        except (ValidationError, ValueError):
            return None

    def done(self, question: Question, subject: str | None = None, note: str | None = None, rank: int | None = None,
             direction: str = "largest", organ: str | None = None) -> Resolution:
        f = self.f
        a = vqa.answer(f, question, self.choices, comparison=self.comparison)
        organ = organ or context_organ(f, question, a)
        lesion = question.lesion_id or (next((i for i in a.finding_ids if re.fullmatch(r"L\d+", i)), None)
                                        if _lesion_level(question.subtype) else None)
        if rank is None and lesion is not None and _lesion_level(question.subtype):
            ids = [l.id for l in ranked_lesions(f, organ)]
            rank = ids.index(lesion) if lesion in ids else None
            direction = "largest"
        vessel = getattr(question, "vessel", None) or (self.state.vessel if "vessel" in SUBTYPES[question.subtype].params else None)
        st = ChatState(question, organ, lesion, rank, direction, vessel)  # type: ignore[arg-type]
        return Resolution(question, a, answer_text(a, subject), subject, note, st)

    # steps ------------------------------------------------------------------------------------------
    def rank_request(self) -> tuple[str, int] | None:
        """(direction, n) of an ordinal in the message, or None."""
        t, q, state = self.t, self.q, self.state
        rm = _RANK_RE.search(t)
        if rm and q is not None and not rm.group(1) and rm.group(2) != "smallest":
            rm = None  # plain "largest" in a templated question: vqa's own choice of lesion (e.g. the largest cyst)
        if rm:
            word, kind = rm.group(1), rm.group(2)
            direction = "smallest" if kind == "smallest" else "largest"
            if word == "next":
                n = (state.rank or 0) + 2 if state.rank is not None and state.direction == direction else 2
            else:
                n = _ORDINALS.get(word or "first", 1)
            return direction, n
        bare = _BARE_ORD_RE.search(t) if q is None and self.follow and self.lid is None else None
        if bare and (state.organ is not None or state.rank is not None or state.lesion_id is not None):
            word = bare.group(1)
            if word == "next":
                return state.direction, (state.rank or 0) + 2
            return state.direction, _ORDINALS[word]
        if _NEXT_RE.search(t) and state.rank is not None:
            return state.direction, (state.rank or 0) + 2
        return None

    def ranked(self) -> Resolution | None:
        req = self.rank_request()
        if req is None:
            return None
        direction, n = req
        q, state, f = self.q, self.state, self.f
        prev = state.question
        if q is not None and _lesion_level(q.subtype):
            subtype = q.subtype
        elif q is None and self.vessel_subtype and self.vessel_subtype in SUBTYPES:
            subtype = self.vessel_subtype
        elif q is None and self.field_subtype:
            subtype = self.field_subtype
        elif q is None and prev is not None and _lesion_level(prev.subtype) and self.follow and not (
                self.organs and organs_in(prev.subtype.lower()) and _canon(organs_in(prev.subtype.lower())[0]) not in self.organs):
            subtype = prev.subtype  # (not a question about another organ's lesions: "pancreatic tumor staging" of a liver lesion)
        elif q is None:
            subtype = "lesion volume measurement"
        else:
            return None
        organ = (q.organ if q is not None and q.organ else None) or (self.organs[0] if self.organs else None)
        if organ is None and self.follow:
            organ = state.organ
        organ = _canon(organ)
        ranking = ranked_lesions(f, organ)
        if direction == "smallest":
            ranking = ranking[::-1]
        where = f"{organ.replace('_', ' ')} " if organ else ""
        what = f"{_ordinal_word(n)}{direction} {where}lesion"
        if n > len(ranking):
            spec = SUBTYPES[subtype]
            a = Answer(status="cannot_be_determined", subtype=subtype, group=spec.group, answer_type=spec.answer_type,
                       finding_ids=[l.id for l in ranking], explanation="the findings cannot support an answer",
                       reason=f"there is no {what}: the study has {len(ranking)} {where}lesion(s)")
            return Resolution(None, a, answer_text(a), None, f"{what}: none", None)
        les = ranking[n - 1]
        keep = self.carried(subtype) if q is None else {}
        if self.vessel:
            keep["vessel"] = self.vessel
        question = (self.q_with(subtype, **{**keep, "organ": organ, "lesion_id": les.id})
                    or self.q_with(subtype, **{**keep, "lesion_id": les.id}))
        if question is None:
            return None
        return self.done(question, f"the {what} is {les.id}", f"{what} -> {les.id} ({subtype})", n - 1, direction, organ)

    def named_organ_lesion(self, subtype: str) -> Question | None:
        """A lesion-level question naming an organ but no lesion: that organ's largest lesion (the
        organ beats a pronoun)."""
        organ = self.organs[0]
        return self.q_with(subtype, organ=organ) or (
            self.q_with(subtype, lesion_id=ranked_lesions(self.f, organ)[0].id) if ranked_lesions(self.f, organ) else None)

    def templated(self) -> Resolution | None:
        q, state = self.q, self.state
        if q is None:
            return None
        if (_lesion_level(q.subtype) and q.lesion_id is None and q.organ is None and state.lesion_id and self.pronoun
                and not self.organs and not organs_in(q.subtype.lower())):
            q2 = self.q_with(q.subtype, lesion_id=state.lesion_id, **self.carried(q.subtype))
            if q2 is not None:
                return self.done(q2, None, f"'{self.pronoun.group(0)}' -> {state.lesion_id}")
        if (_lesion_level(q.subtype) and q.lesion_id is None and self.organs and self.pronoun and state.lesion_id
                and _organ_of(self.f, state.lesion_id) not in self.organs):
            note = f"the {self.organs[0].replace('_', ' ')} named, not '{self.pronoun.group(0)}' ({state.lesion_id})"
            return self.done(q.model_copy(update={"text": self.text}), None, note)
        return self.done(q.model_copy(update={"text": self.text}) if q.text != self.text else q)

    def vessel_follow_up(self) -> Resolution | None:
        """"and the SMV?", "and the contact angle?" after a vessel question: same lesion, the vessel named
        (or the same vessel) and the measure asked."""
        state, prev = self.state, self.state.question
        if prev is None or "vessel" not in SUBTYPES.get(prev.subtype, _NO).params or not (self.follow or self.pronoun):
            return None
        if self.vessel is None and self.vessel_subtype is None:
            return None
        if self.lid is None and self.organs and state.lesion_id and _organ_of(self.f, state.lesion_id) not in self.organs:
            return None  # another organ's lesion: not this follow-up
        subtype = self.vessel_subtype or prev.subtype
        if subtype == "involved vessels":
            vessel = None
        else:
            vessel = self.vessel or state.vessel or getattr(prev, "vessel", None)
        lesion = self.lid or state.lesion_id
        question = self.q_with(subtype, lesion_id=lesion, vessel=vessel)
        if question is None:
            return None
        bits = [subtype] + ([vessel] if vessel else []) + ([lesion] if lesion else [])
        return self.done(question, None, "vessel follow-up: " + ", ".join(bits))

    def lesion_by_reference(self) -> Resolution | None:
        f, state = self.f, self.state
        target = self.lid or (state.lesion_id if self.pronoun else None)
        if target is not None and self.lid is None and self.organs and _organ_of(f, target) not in self.organs:
            subtype = self.field_subtype or (state.question.subtype if state.question is not None
                                             and _lesion_level(state.question.subtype) else None)
            if subtype is None:
                return None
            question = self.named_organ_lesion(subtype)
            if question is None:
                return None
            note = f"the {self.organs[0].replace('_', ' ')} named, not '{self.pronoun.group(0)}' ({target})"
            return self.done(question, None, note)
        if target is None:
            return None
        if find_lesion(f, target) is None:
            a = Answer(status="cannot_be_determined", explanation="the findings cannot support an answer",
                       reason=f"there is no lesion {target} (lesions: {', '.join(l.id for l in f.lesions) or 'none'})")
            return Resolution(None, a, answer_text(a), None, None, None)
        describe = bool(self.lid and _DESCRIBE_RE.search(self.text))
        subtype = self.field_subtype or (state.question.subtype if state.question is not None and not describe
                                         and _lesion_level(state.question.subtype) and self.follow else None)
        if subtype is not None:
            question = self.q_with(subtype, lesion_id=target, **self.carried(subtype))
            if question is not None:
                return self.done(question, None, None if self.lid else f"'{self.pronoun.group(0)}' -> {target}")
        if self.lid and (describe or self.follow):
            les = find_lesion(f, target)
            organ = organ_family(les.organ) if les.organ else None
            ids = [l.id for l in ranked_lesions(f, organ)]
            st = ChatState(state.question, organ, les.id, ids.index(les.id), "largest", state.vessel)
            return Resolution(None, None, describe_lesion(f, les), None, f"describe {les.id}", st, [les.id])
        return None

    def other_organ(self) -> Resolution | None:
        """"what about the spleen?": the last question for another organ."""
        state = self.state
        if not (self.organs and self.follow and state.question is not None
                and "organ" in SUBTYPES[state.question.subtype].params):
            return None
        question = self.q_with(state.question.subtype, organ=self.organs[0], **self.carried(state.question.subtype))
        if question is None:
            return None
        return self.done(question, None, f"same question ({state.question.subtype}) for the {self.organs[0].replace('_', ' ')}")


class _No:
    params: tuple[str, ...] = ()


_NO = _No()


def resolve(f: Findings, message: str, state: ChatState, choices: list[str] | None = None, comparison=None
            ) -> Resolution:
    """Read ``message`` deterministically, using ``state`` for follow-ups; ``comparison`` (comparison.json of the
    study with its priors) answers the change-over-time questions."""
    r = _Reader(f, message, state, choices, comparison)
    for step in (r.ranked, r.vessel_follow_up if r.q is None else (lambda: None), r.templated, r.lesion_by_reference,
                 r.other_organ):
        res = step()
        if res is not None:
            return res
    a = vqa.answer(f, r.text, r.choices, comparison=comparison)  # unmapped (or mapped after all)
    if a.status != "unmapped_question":
        return r.done(a.question) if a.question is not None else Resolution(None, a, answer_text(a))
    return Resolution(None, a, _unmapped_text(r.text))
