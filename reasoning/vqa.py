"""Deterministic question answering over Findings: every DeepTumorVQA question subtype (42, in
four groups) answered from findings.json alone, with the finding ids and the rule used.

Questions arrive as (a) a :class:`Question` (subtype + parameters), (b) multiple-choice text
whose options are ``A) ...`` / ``A: ...`` / ``A. ...`` up to D (in the text or as ``choices``),
or (c) free text matched against templated patterns modelled on DeepTumorVQA's phrasing. No LLM
is involved. A question no template maps is answered ``unmapped_question`` (never guessed); a
question the findings cannot support is ``cannot_be_determined`` with the reason.

Subtype names are DeepTumorVQA's own (``deeptumorvqa/_data/subtype_schema.csv``); group names are
its ``question_type`` values; answer types follow its ``SUBTYPE_ANSWER_TYPE``. :data:`SUBTYPES`
is the mapping table (name, group, answer type, parameters, definition, example phrasing);
two radagent extensions (``lesion existence`` for organs DeepTumorVQA has no subtype for,
``lesion HU measurement``) are marked ``source="radagent"``.

Choices this module makes where the issue leaves them open (thresholds themselves live in
``reasoning.knowledge``, cited by key in ``Answer.rule``):

- "Largest lesion" = largest by volume (Findings orders lesions by volume, so L1 of an organ);
  "diameter" = RECIST long axis (``long_axis_mm``) unless the question says 3D/maximal 3D
  (``max_diameter_3d_mm``) or short axis. Unit mm; multiple-choice options in cm are converted.
- Organ volume includes the organ's lesions (perception's definition); organ mean HU is the host
  parenchyma (organ minus all lesions). A volume is never given for an organ truncated by the
  scan edge. For threshold questions (splenomegaly, organ enlargement) the imaged part
  (voxel_count x voxel volume) is a lower bound: above the threshold it answers "yes", otherwise
  the answer cannot be determined.
- "kidney" without a side: volumes add both kidneys (both must be measured); a mean HU needs a side.
- Lesion presence ("no") needs a lesion mask that covers the organ (an organ-specific lesion mask
  or a generic ``lesion``/``tumor`` mask, listed in Findings.masks) and the organ imaged; an
  organ truncated by the scan edge answers for its imaged part, and says so.
- Lesion class (existence of kidney cyst/tumour, lesion type classification): the mask type first
  (``kidney_cyst*`` -> cyst, ``*_tumor`` -> tumour); an untyped kidney lesion by the HU rule
  (mean > 34.8 HU -> tumour). Outside the kidney an untyped lesion is a cyst when perception
  flagged it cystic (mean < 20 HU, SD <= 20), else solid.
- PDAC / PNET existence uses typed masks only (``pancreatic_pdac`` / ``pancreatic_pnet``): an
  untyped pancreatic lesion makes "no" undeterminable. PDAC vs PNET classification of an untyped
  lesion uses the attenuation heuristic (hypo -> PDAC; iso/hyper -> PNET), flagged as such.
- Tumour burden % = total lesion volume in the organ / organ volume x 100; with no lesion in a
  covered, measured organ it is 0 %.
- Liver lesion clustering: per-segment lesion volume = sum over liver lesions of
  segment share x lesion volume; shares are taken over the volume assigned to some segment (the
  part of a lesion outside every segment mask is left out of numerator and denominator).
- Inter-segment comparison counts, per segment, the lesions holding > 10 % of their volume there
  (Lesion.segments, so a lesion may count in two segments); metric=volume compares the
  per-segment lesion volume instead. Lesion count by location uses the same membership rule.
  Ties answer "equal".
- Lesion outlier with fewer than 3 lesions answers "no" (the rule needs >= 3).
- Bilateral kidney asymmetry compares total lesion volume per kidney (ratio >= 2 or one side
  without lesions -> the more affected side; else "symmetric", also when neither has a lesion).
- Multi-organ lesion burden comparison compares total lesion volume (mL) per organ family, not
  the percentage (organ volumes are often truncated).
- Organ aggregation sums organ volumes (default), lesion counts or lesion volumes over the organs.
- Tumour-organ HU difference is signed (lesion minus host); a multiple-choice option list with
  only non-negative values is matched with the absolute value.
- Largest lesion slice: the axial slice of the RECIST long axis (``Lesion.axial_slice``, 0-based
  index along the voxel axis closest to S-I). DeepTumorVQA may use the slice of largest area.
- Fatty liver: L/S < 1.0; steatosis grade: Kodama, most severe grade whose HU or L/S criterion
  holds; both, and pancreatic steatosis, require a non-contrast study (else cannot be determined).
- Renal mass characterization: simple cyst -10..20 HU (inclusive), indeterminate > 20..70,
  hyperdense cyst > 70 (non-contrast only), fat-containing < -10 HU.
- Pancreatic cyst questions (resectability, pseudocyst) apply to the largest pancreatic lesion
  that is a cyst (typed cyst or flagged cystic); none -> cannot be determined. Resectability of a
  pancreatic lesion and T stage read perception's staging hints of the largest non-cystic
  pancreatic lesion; "not assessed" or "T4 not excluded" -> cannot be determined.
- Portal hypertension: only splenomegaly is assessable from Findings; present -> "yes", otherwise
  cannot be determined (caudate/right-lobe ratio, portal vein diameter, collaterals, ascites are
  not in Findings).
- Multiple choice: numeric options are parsed with their unit and converted; the nearest option
  is chosen when within tolerance (counts exact, slices +-2, else 15 % relative or a small
  absolute margin per unit) and clearly nearer than the next one (less than half its distance);
  categories are matched by normalised synonyms. No unique match -> cannot be determined, with
  the computed value kept in ``Answer.value``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from perception.registry import COUINAUD, ORGANS, SUBSEGMENTS, classify, organ_family
from perception.schema import Findings, Lesion, Organ, Status
from reasoning.knowledge import knowledge

Group = Literal["recognition", "measurement", "visual reasoning", "medical reasoning"]
AnswerType = Literal["numeric", "binary", "categorical"]
GROUPS: tuple[str, ...] = ("recognition", "measurement", "visual reasoning", "medical reasoning")


@dataclass(frozen=True)
class Subtype:
    """One row of the mapping table."""

    name: str
    group: str
    answer_type: str
    params: tuple[str, ...]
    definition: str
    example: str
    source: Literal["DeepTumorVQA", "radagent"] = "DeepTumorVQA"


def _s(name, group, atype, params, definition, example, source="DeepTumorVQA") -> Subtype:
    return Subtype(name, group, atype, tuple(params.split()) if params else (), definition, example, source)


_R, _M, _V, _MR = GROUPS
SUBTYPES: dict[str, Subtype] = {s.name: s for s in (
    # recognition
    _s("PDAC existence", _R, "binary", "", "a pancreatic lesion typed PDAC (pancreatic_pdac mask)", "Is there a PDAC in the pancreas?"),
    _s("PNET existence", _R, "binary", "", "a pancreatic lesion typed PNET (pancreatic_pnet mask)", "Is there a pancreatic neuroendocrine tumor (PNET)?"),
    _s("colon lesion existence", _R, "binary", "", "any lesion in the colon/rectum", "Is there a lesion in the colon?"),
    _s("kidney cyst existence", _R, "binary", "organ", "a kidney lesion classed cyst (mask type, else HU <= 34.8)", "Is there a cyst in the kidneys?"),
    _s("kidney lesion existence", _R, "binary", "organ", "any kidney lesion (organ = kidney, kidney_left, kidney_right)", "Is there evidence of a lesion in the right kidney?"),
    _s("kidney tumor existence", _R, "binary", "organ", "a kidney lesion classed tumour (mask type, else HU > 34.8)", "Is there a tumor in the left kidney?"),
    _s("liver lesion existence", _R, "binary", "", "any liver lesion", "Is there a lesion in the liver?"),
    _s("pancreatic lesion existence", _R, "binary", "", "any pancreatic lesion", "Is there a lesion in the pancreas?"),
    _s("splenomegaly detection", _R, "binary", "", "spleen volume > 314.5 mL", "Does the patient have splenomegaly?"),
    # measurement
    _s("lesion volume measurement", _M, "numeric", "organ lesion_id aggregate", "volume of the largest lesion (aggregate=total: all lesions) in the organ, mL", "What is the volume of the largest liver lesion?"),
    _s("organ HU measurement", _M, "numeric", "organ", "mean HU of the organ parenchyma (organ minus lesions)", "What is the mean HU of the spleen?"),
    _s("organ HU ratio", _M, "numeric", "organs", "mean HU of organs[0] / mean HU of organs[1] (default liver/spleen)", "What is the liver-to-spleen HU ratio?"),
    _s("organ volume measurement", _M, "numeric", "organ", "organ volume including its lesions, mL (not for truncated organs)", "What is the volume of the liver?"),
    _s("tumor burden percentage", _M, "numeric", "organ", "total lesion volume / organ volume x 100", "What percentage of the pancreas is occupied by tumor?"),
    # visual reasoning
    _s("adjacent organ", _V, "categorical", "organ lesion_id", "nearest other organ within 3 mm of the (largest) lesion", "Which organ is adjacent to the largest liver lesion?"),
    _s("bilateral kidney asymmetry", _V, "categorical", "", "kidney with >= 2x the lesion volume of the other, else symmetric", "Which kidney has the greater lesion burden?"),
    _s("inter-segment comparison", _V, "categorical", "organ segments metric direction", "segment with more lesions (metric=volume: more lesion volume)", "Which liver segment has more lesions, segment 7 or segment 8?"),
    _s("kidney volume comparison", _V, "categorical", "direction", "the larger (direction=smaller: smaller) kidney by volume", "Which kidney is larger?"),
    _s("largest lesion attenuation", _V, "categorical", "organ lesion_id", "hypo/iso/hyperattenuating vs the host organ (margin 10 HU)", "Is the largest liver lesion hypoattenuating, isoattenuating or hyperattenuating?"),
    _s("largest lesion diameter", _V, "numeric", "organ lesion_id diameter", "RECIST long axis of the largest lesion, mm", "What is the diameter of the largest liver lesion?"),
    _s("largest lesion location", _V, "categorical", "organ lesion_id", "sub-segment holding the largest share of the largest lesion", "Which Couinaud segment contains the largest liver lesion?"),
    _s("largest lesion slice", _V, "numeric", "organ lesion_id", "axial slice index of the long axis of the largest lesion", "On which axial slice is the largest liver lesion biggest?"),
    _s("lesion count by location", _V, "numeric", "organ location", "lesions holding > 10 % of their volume in the location (segment or organ)", "How many lesions are in liver segment 8?"),
    _s("lesion counting", _V, "numeric", "organ", "number of lesions in the organ", "How many lesions are in the liver?"),
    _s("lesion outlier", _V, "binary", "organ", ">= 3 lesions and largest >= 3x second largest", "Is the largest liver lesion an outlier in size?"),
    _s("liver lesion clustering", _V, "categorical", "", "highly clustered / somewhat clustered / widely distributed", "Are the liver lesions clustered or widely distributed?"),
    _s("multi-organ lesion burden comparison", _V, "categorical", "organs direction", "organ family with the most lesion volume", "Which organ has the greater lesion burden, the liver or the kidneys?"),
    _s("organ aggregation", _V, "numeric", "organs measure", "sum of organ volumes (measure=lesion_count / lesion_volume)", "What is the combined volume of both kidneys?"),
    _s("organ enlargement", _V, "binary", "organ", "organ volume above its reference", "Is the liver enlarged?"),
    _s("tumor organ HU difference", _V, "numeric", "organ lesion_id", "lesion mean HU minus host organ mean HU", "What is the HU difference between the largest liver lesion and the liver?"),
    # medical reasoning
    _s("PDAC vs PNET classification", _MR, "categorical", "lesion_id", "mask type, else attenuation heuristic", "Is the pancreatic lesion more likely PDAC or PNET?"),
    _s("fatty liver", _MR, "binary", "", "L/S HU ratio < 1.0 on non-contrast CT", "Does the patient have fatty liver?"),
    _s("hepatic steatosis grading", _MR, "categorical", "", "Kodama grade G0-G3 on non-contrast CT", "What is the grade of hepatic steatosis?"),
    _s("lesion type classification", _MR, "categorical", "organ lesion_id", "kidney lesion: cyst or tumour (mask type, else 34.8 HU)", "Is the kidney lesion a cyst or a tumor?"),
    _s("pancreatic cyst resectability", _MR, "binary", "lesion_id", "cyst volume > 3.0 mL or diameter > 30 mm", "Should the pancreatic cyst be resected?"),
    _s("pancreatic lesion resectability", _MR, "categorical", "lesion_id", "NCCN category from the staging hint", "Is the pancreatic tumor resectable?"),
    _s("pancreatic steatosis", _MR, "binary", "", "P/S HU ratio < 0.70 on non-contrast CT", "Is there pancreatic steatosis?"),
    _s("pancreatic tumor staging", _MR, "categorical", "lesion_id", "AJCC 8 T from the staging hint", "What is the T stage of the pancreatic tumor?"),
    _s("portal hypertension assessment", _MR, "binary", "", "splenomegaly as the assessable sign", "Are there signs of portal hypertension?"),
    _s("pseudocyst determination", _MR, "binary", "lesion_id", "pancreatic cyst mean > 14.5 HU", "Is the pancreatic cyst a pseudocyst?"),
    _s("renal mass characterization", _MR, "categorical", "organ lesion_id", "simple cyst / indeterminate / hyperdense cyst / fat-containing by HU", "How would you characterize the renal mass?"),
    _s("splenomegaly grading", _MR, "categorical", "", "normal / mild / moderate / severe by spleen volume", "How would you classify the splenic enlargement based on volume?"),
    # radagent extensions (not DeepTumorVQA subtypes)
    _s("lesion existence", _R, "binary", "organ lesion_kind", "any lesion in an organ without a DeepTumorVQA subtype", "Is there a lesion in the spleen?", "radagent"),
    _s("lesion HU measurement", _M, "numeric", "organ lesion_id", "mean HU of the (largest) lesion", "What is the mean HU of the largest liver lesion?", "radagent"),
)}
DEEPTUMORVQA_SUBTYPES: tuple[str, ...] = tuple(n for n, s in SUBTYPES.items() if s.source == "DeepTumorVQA")

_KEY = re.compile(r"[^a-z0-9]")


def _subtype_key(name: str) -> str:
    return _KEY.sub("", name.lower())


_SUBTYPE_BY_KEY = {_subtype_key(n): n for n in SUBTYPES}


def canonical_subtype(name: str) -> str:
    """DeepTumorVQA spelling of a subtype name ('lesion_counting' -> 'lesion counting')."""
    k = _subtype_key(name)
    if k in _SUBTYPE_BY_KEY:
        return _SUBTYPE_BY_KEY[k]
    import difflib

    close = difflib.get_close_matches(name.lower().replace("_", " "), [n.lower() for n in SUBTYPES], n=3, cutoff=0.5)
    close = [next(n for n in SUBTYPES if n.lower() == c) for c in close]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown question subtype {name!r}{hint} (expected one of: {', '.join(SUBTYPES)})")


# --- organ / segment vocabulary ---------------------------------------------------------------
_FAMILIES = set(ORGANS.values())
_ORGAN_ALIASES = {
    "left_kidney": "kidney_left", "right_kidney": "kidney_right", "kidneys": "kidney", "renal": "kidney",
    "hepatic": "liver", "pancreatic": "pancreas", "splenic": "spleen", "gall_bladder": "gallbladder",
    "colonic": "colon", "bladder": "urinary_bladder", "adrenal_gland": "adrenal", "adrenals": "adrenal",
    "left_adrenal": "adrenal_gland_left", "right_adrenal": "adrenal_gland_right", "lungs": "lung",
}


def canonical_organ(name: str) -> str:
    """Organ or organ-family name as Findings spells it ('left kidney' -> 'kidney_left')."""
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    n = _ORGAN_ALIASES.get(n, n)
    if n in ORGANS or n in _FAMILIES:
        return n
    import difflib

    close = difflib.get_close_matches(n, sorted(set(ORGANS) | _FAMILIES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown organ {name!r}{hint}")


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "iva": 4, "ivb": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
_PANCREAS_PARTS = {"head": "pancreas_head", "uncinate": "pancreas_head", "body": "pancreas_body", "tail": "pancreas_tail"}


def canonical_segment(name: str) -> str:
    """Sub-segment name as Findings spells it ('segment VIII', 'S8', '8' -> 'liver_segment_8';
    'head' -> 'pancreas_head')."""
    n = name.strip().lower().replace("-", "_")
    if n in SUBSEGMENTS:
        return n
    n = re.sub(r"^(couinaud\s+)?(liver\s+)?(segment\s*|s(?=\d))", "", n).strip()
    n = re.sub(r"^(pancreas|pancreatic)[\s_]+", "", n)
    n = re.sub(r"\s+of\s+the\s+pancreas$", "", n)
    if n.isdigit() and 1 <= int(n) <= 8:
        return f"liver_segment_{int(n)}"
    if n in _ROMAN:
        return f"liver_segment_{_ROMAN[n]}"
    if n in _PANCREAS_PARTS:
        return _PANCREAS_PARTS[n]
    raise ValueError(f"unknown sub-segment {name!r} (expected liver_segment_1..8, Couinaud I-VIII, pancreas_head/body/tail, "
                     f"or one of {', '.join(sorted(SUBSEGMENTS))})")


def segment_display(seg: str) -> str:
    if seg.startswith("liver_segment_"):
        n = seg.rsplit("_", 1)[1]
        return f"liver segment {n} ({COUINAUD.get(seg, n)})"
    return seg.replace("_", " ")


# --- the typed question and answer ------------------------------------------------------------
class Question(BaseModel):
    """A question as subtype + parameters (the API form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subtype: str = Field(description="DeepTumorVQA subtype name (see SUBTYPES)")
    organ: str | None = Field(None, description="organ or organ family, e.g. liver, kidney, kidney_left")
    organs: tuple[str, ...] = Field((), description="organ pair / list for ratios, comparisons, aggregation")
    lesion_id: str | None = Field(None, description="a lesion id (L1, L2, ...); default: the largest in the organ")
    lesion_kind: Literal["cyst", "tumor"] | None = Field(None, description="lesion existence: only this class")
    segments: tuple[str, ...] = Field((), description="sub-segments to compare")
    location: str | None = Field(None, description="lesion count by location: a sub-segment or an organ")
    measure: Literal["volume", "lesion_count", "lesion_volume"] | None = None
    metric: Literal["count", "volume"] | None = None
    aggregate: Literal["largest", "total"] = "largest"
    rank: int = Field(1, description="which lesion by volume when no lesion_id: 1 largest, 2 second largest, ..., -1 smallest")
    diameter: Literal["long_axis", "short_axis", "3d"] = "long_axis"
    direction: Literal["larger", "smaller"] = "larger"
    text: str | None = Field(None, description="the question text this was parsed from")

    @field_validator("subtype")
    @classmethod
    def _subtype(cls, v: str) -> str:
        return canonical_subtype(v)

    @field_validator("organ")
    @classmethod
    def _organ(cls, v: str | None) -> str | None:
        return canonical_organ(v) if v else None

    @field_validator("organs", "segments", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v

    @field_validator("organs")
    @classmethod
    def _organs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(canonical_organ(x) for x in v)

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(canonical_segment(x) for x in v)

    @field_validator("location")
    @classmethod
    def _location(cls, v: str | None) -> str | None:
        if not v:
            return None
        try:
            return canonical_segment(v)
        except ValueError:
            try:
                return canonical_organ(v)
            except ValueError:
                raise ValueError(f"unknown location {v!r}: expected a sub-segment (liver_segment_1..8, pancreas_head/body/tail) "
                                 "or an organ") from None

    @field_validator("lesion_id")
    @classmethod
    def _lid(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().upper()
        if not re.fullmatch(r"L\d+", v):
            raise ValueError(f"lesion id {v!r}: expected L<number> (L1, L2, ...)")
        return v


Status_ = Literal["answered", "cannot_be_determined", "unmapped_question"]
Scalar = int | float | str


class Answer(BaseModel):
    """The answer, with the evidence (finding ids) and the rule used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status_
    answer: Scalar | None = Field(None, description="number, 'yes'/'no', a category or segment name, or a choice letter")
    unit: str | None = None
    answer_type: Literal["numeric", "binary", "categorical", "choice"] | None = None
    subtype: str | None = None
    group: str | None = None
    value: Scalar | None = Field(None, description="the computed answer (for multiple choice: before option matching)")
    matched_option: str | None = Field(None, description="multiple choice: the text of the chosen option")
    finding_ids: list[str] = []
    rule: str | None = Field(None, description="knowledge key or computation")
    explanation: str = ""
    reason: str | None = Field(None, description="why not answered")
    question: Question | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Answer":
        if self.status == "answered":
            if self.answer is None or self.reason is not None:
                raise ValueError("an answered Answer needs an answer and no reason")
        elif self.answer is not None or not self.reason:
            raise ValueError(f"status {self.status}: answer must be empty and a reason given")
        return self

    def line(self) -> str:
        """One line for people: the answer (or the status and reason) and the explanation."""
        if self.status != "answered":
            return f"{self.status.replace('_', ' ')}: {self.reason}"
        if self.unit == "slice" and self.answer_type != "choice":
            a = f"slice {self.answer}"
        else:
            a = f"{self.answer}" + (f" {self.unit}" if self.unit and self.answer_type != "choice" else "")
        if self.answer_type == "choice":
            a += f" ({self.matched_option})"
        return f"{a} -- {self.explanation}"


# --- internals ---------------------------------------------------------------------------------
@dataclass
class _Result:
    value: Scalar
    unit: str | None
    ids: list[str]
    rule: str
    explanation: str
    accept: set[str] | None = None  # categorical labels an option may carry to be correct


class _Cannot(Exception):
    def __init__(self, reason: str, ids: list[str] | None = None, rule: str | None = None, value: Scalar | None = None):
        super().__init__(reason)
        self.reason, self.ids, self.rule, self.value = reason, ids or [], rule, value


def _oid(name: str) -> str:
    return f"organ:{name}"


def _fmt(v: float, nd: int = 2) -> str:
    return f"{v:.{nd}f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def _voxel_ml(f: Findings) -> float:
    a = f.study.affine
    m = [[a[i][j] for j in range(3)] for i in range(3)]
    det = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
           + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    return abs(det) / 1000.0


def _is_family(name: str) -> bool:
    return name in _FAMILIES and not name.endswith(("_left", "_right"))


def _members(f: Findings, organ: str) -> list[Organ]:
    """Organs of Findings that make up ``organ`` (itself, or the members of a family)."""
    o = f.organ(organ)
    if o is not None:
        return [o]
    return [o for o in f.organs if organ_family(o.name) == organ]


def _lesions(f: Findings, organ: str | None) -> list[Lesion]:
    if organ is None:
        return list(f.lesions)
    if _is_family(organ):
        return [l for l in f.lesions if l.organ and organ_family(l.organ) == organ]
    return [l for l in f.lesions if l.organ == organ]


def _covering_masks(f: Findings, organ: str) -> list[str]:
    """Lesion masks that could hold lesions of ``organ`` (organ-specific or generic)."""
    fam = organ_family(organ)
    out = []
    for m in f.masks:
        if m.category != "lesion":
            continue
        st = classify(m.name)
        mf = st.family if st else None
        if mf is None or (organ_family(mf) == organ if _is_family(organ) else mf in (organ, fam)):
            out.append(m.name)
    return out


def _organ_name(organ: str) -> str:
    return organ.replace("_", " ") if not organ.endswith(("_left", "_right")) else \
        f"{organ.rsplit('_', 1)[1]} {organ.rsplit('_', 1)[0].replace('_', ' ')}"


def _imaged(f: Findings, organ: str) -> tuple[list[Organ], str]:
    """Members of the organ that are imaged, and a note on truncation; _Cannot when none is."""
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study: the organ was not segmented")
    present = [o for o in mem if o.status != Status.absent]
    if not present:
        raise _Cannot(f"the {_organ_name(organ)} mask is empty: organ not found", [_oid(o.name) for o in mem])
    trunc = [o.name for o in present if o.status == Status.truncated_by_fov]
    note = f" (in the imaged part: {', '.join(trunc)} truncated by the scan edge)" if trunc else ""
    return present, note


def _require_coverage(f: Findings, organ: str, ids: list[str]) -> list[str]:
    cov = _covering_masks(f, organ)
    if not cov:
        raise _Cannot(f"no lesion mask covers the {_organ_name(organ)} (lesion masks: "
                      f"{', '.join(m.name for m in f.masks if m.category == 'lesion') or 'none'}): absence cannot be stated", ids)
    return cov


def _is_cystic(l: Lesion) -> bool:
    return l.kind == "cyst" or any(c.startswith("cystic") for c in l.components)


def _lesion_class(l: Lesion) -> tuple[str, str]:
    """('cyst' | 'tumor', why). Mask type first; kidney by the HU rule; elsewhere by the cystic flag."""
    if l.kind == "cyst":
        return "cyst", f"{l.id} mask {l.mask} typed cyst"
    if l.kind in ("tumor", "pdac", "pnet"):
        return "tumor", f"{l.id} mask {l.mask} typed {l.kind}"
    if l.organ and organ_family(l.organ) == "kidney":
        thr = knowledge("kidney_lesion_tumor_hu").values[0]
        cls = "tumor" if l.mean_hu > thr else "cyst"
        return cls, f"{l.id} untyped, mean {l.mean_hu:.1f} HU {'>' if cls == 'tumor' else '<='} {thr} HU"
    if _is_cystic(l):
        return "cyst", f"{l.id} untyped, flagged cystic ({next(c for c in l.components if c.startswith('cystic'))})"
    return "tumor", f"{l.id} untyped, not cystic by attenuation (mean {l.mean_hu:.1f} HU, SD {l.sd_hu:.1f})"


def _pick(f: Findings, q: Question, default_organ: str | None, what: str = "lesion",
          keep: Callable[[Lesion], bool] | None = None) -> Lesion:
    if q.lesion_id:
        try:
            return f.lesion(q.lesion_id)
        except KeyError as e:
            raise _Cannot(str(e).strip("'\"")) from None
    organ = q.organ or default_organ
    les = [l for l in _lesions(f, organ) if keep is None or keep(l)]
    if not les:
        where = f" in the {_organ_name(organ)}" if organ else ""
        cov = "" if organ is None or _covering_masks(f, organ) else f" (no lesion mask covers the {_organ_name(organ)})"
        raise _Cannot(f"no {what}{where}{cov}", [_oid(o.name) for o in _members(f, organ)] if organ else [])
    ranked = sorted(les, key=lambda l: -l.volume_ml)  # stable: lowest id first among equal volumes
    if q.rank == 1:
        return ranked[0]
    if q.rank == -1:
        return ranked[-1]
    if q.rank < 1 or q.rank > len(ranked):
        where = f" in the {_organ_name(organ)}" if organ else ""
        raise _Cannot(f"asked for lesion number {q.rank} by size, but there are {len(ranked)} {what}(s){where}",
                      [l.id for l in ranked])
    return ranked[q.rank - 1]


def _which(q: Question) -> str:
    if q.lesion_id:
        return "as asked"
    return {1: "largest by volume", -1: "smallest by volume"}.get(q.rank, f"number {q.rank} by volume")


def _whole(l: Lesion) -> None:
    if l.status == Status.truncated_by_fov or l.touches_edges:
        raise _Cannot(f"{l.id} reaches the scan edge ({', '.join(l.touches_edges)}): its size is a lower bound", [l.id])


def _measured_volume(f: Findings, organ: str) -> tuple[float, list[str]]:
    """Volume of an organ (a family adds its members); _Cannot unless every part is measured."""
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study: volume not measurable")
    ids = [_oid(o.name) for o in mem]
    for o in mem:
        if o.status == Status.absent:
            raise _Cannot(f"the {_organ_name(o.name)} mask is empty: organ not found", ids)
        if o.status != Status.measured or o.volume_ml is None:
            edges = ", ".join(o.touches_edges)
            raise _Cannot(f"the {_organ_name(o.name)} reaches the scan edge ({edges}): incompletely imaged, volume not measured "
                          f"(imaged part {o.voxel_count * _voxel_ml(f):.1f} mL, a lower bound)", ids)
    return round(sum(o.volume_ml for o in mem), 4), ids


def _mean_hu(f: Findings, organ: str) -> tuple[float, list[str]]:
    if _is_family(organ) and f.organ(organ) is None and len(_members(f, organ)) > 1:
        raise _Cannot(f"'{organ}' names {len(_members(f, organ))} organs ({', '.join(o.name for o in _members(f, organ))}): "
                      "ask about one side")
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study")
    o = mem[0]
    if o.mean_hu is None:
        raise _Cannot(f"no {_organ_name(o.name)} HU measured (status {o.status.value})", [_oid(o.name)])
    return o.mean_hu, [_oid(o.name)]


def _require_noncontrast(f: Findings, key: str) -> None:
    cp = f.study.contrast_phase
    if cp.phase != "non_contrast":
        raise _Cannot(f"{key} requires non-contrast CT; this study's phase is {cp.phase} ({cp.rule})", ["study"], key)


def _volume_threshold(f: Findings, organ: str, thr: float, key: str, what: str) -> _Result:
    """yes/no: organ volume > thr; a truncated organ answers 'yes' from its lower bound only."""
    mem = _members(f, organ)
    if not mem:
        raise _Cannot(f"no {_organ_name(organ)} mask in this study", rule=key)
    ids = [_oid(o.name) for o in mem]
    o = mem[0]
    if len(mem) > 1:
        results = [_volume_threshold(f, m.name, thr, key, what) for m in mem]
        yes = [r for r in results if r.value == "yes"]
        if yes:
            return _Result("yes", None, ids, key, "; ".join(r.explanation for r in yes))
        return _Result("no", None, ids, key, "; ".join(r.explanation for r in results))
    if o.status == Status.absent:
        raise _Cannot(f"the {_organ_name(o.name)} mask is empty: organ not found", ids, key)
    if o.status == Status.measured and o.volume_ml is not None:
        pos = o.volume_ml > thr
        return _Result("yes" if pos else "no", None, ids, key,
                       f"{_organ_name(o.name)} volume {_fmt(o.volume_ml, 1)} mL {'>' if pos else '<='} {_fmt(thr, 1)} mL: "
                       f"{what if pos else 'not ' + what}")
    lb = o.voxel_count * _voxel_ml(f)
    if lb > thr:
        return _Result("yes", None, ids, key, f"{_organ_name(o.name)} truncated by the scan edge, but its imaged part alone is "
                                              f"{lb:.1f} mL > {_fmt(thr, 1)} mL: {what}")
    raise _Cannot(f"the {_organ_name(o.name)} reaches the scan edge ({', '.join(o.touches_edges)}): volume unknown; the imaged "
                  f"part ({lb:.1f} mL) does not exceed {_fmt(thr, 1)} mL, so {what} can be neither shown nor excluded", ids, key)


# --- handlers: one per subtype ----------------------------------------------------------------
def _existence(f: Findings, organ: str, kind: str | None = None) -> _Result:
    present, note = _imaged(f, organ)
    ids = [_oid(o.name) for o in present]
    les = _lesions(f, organ)
    what = f"{kind} " if kind else ""
    if kind:
        classed = [(l, *_lesion_class(l)) for l in les]
        hit = [(l, why) for l, c, why in classed if c == kind]
        if hit:
            return _Result("yes", None, [l.id for l, _ in hit], "lesion class (mask type, else attenuation rule)",
                           f"{len(hit)} {kind}(s) in the {_organ_name(organ)}: " + "; ".join(w for _, w in hit))
        _require_coverage(f, organ, ids)
        why = "; ".join(w for _, _, w in classed)
        return _Result("no", None, ids + [l.id for l in les], "lesion class (mask type, else attenuation rule)",
                       f"no {kind} in the {_organ_name(organ)}{note}" + (f": {why}" if why else ": no lesion"))
    if les:
        return _Result("yes", None, [l.id for l in les], "lesion masks",
                       f"{len(les)} lesion(s) in the {_organ_name(organ)}: {', '.join(l.id for l in les)}")
    cov = _require_coverage(f, organ, ids)
    dropped = f" ({f.dropped_components} component(s) below the minimum size dropped study-wide)" if f.dropped_components else ""
    return _Result("no", None, ids, "lesion masks",
                   f"no {what}lesion component in the {_organ_name(organ)}{note}; lesion masks {', '.join(cov)}{dropped}")


def _h_exist_fixed(organ: str, kind: str | None = None):
    def h(f: Findings, q: Question) -> _Result:
        return _existence(f, organ, kind)
    return h


def _h_kidney_exist(kind: str | None):
    def h(f: Findings, q: Question) -> _Result:
        organ = q.organ or "kidney"
        if organ_family(organ) != "kidney":
            raise _Cannot(f"this subtype is about the kidneys, not the {_organ_name(organ)}")
        return _existence(f, organ, kind)
    return h


def _h_lesion_existence(f: Findings, q: Question) -> _Result:
    if not q.organ:
        raise _Cannot("lesion existence needs an organ")
    return _existence(f, q.organ, q.lesion_kind)


def _typed_existence(kind: str):
    def h(f: Findings, q: Question) -> _Result:
        present, note = _imaged(f, "pancreas")
        ids = [_oid(o.name) for o in present]
        les = _lesions(f, "pancreas")
        hit = [l for l in les if l.kind == kind]
        if hit:
            return _Result("yes", None, [l.id for l in hit], "lesion mask type",
                           f"{', '.join(l.id for l in hit)} from mask {hit[0].mask} (typed {kind.upper()})")
        untyped = [l for l in les if l.kind not in ("pdac", "pnet", "cyst") and not _is_cystic(l)]
        if untyped:
            raise _Cannot(f"pancreatic lesion(s) {', '.join(l.id for l in untyped)} come from an untyped mask "
                          f"({', '.join(sorted({l.mask for l in untyped}))}): {kind.upper()} can be neither shown nor excluded "
                          "without a pancreatic_pdac / pancreatic_pnet mask", ids + [l.id for l in untyped], "lesion mask type")
        if not les:
            _require_coverage(f, "pancreas", ids)
        listing = ", ".join(f"{l.id} ({l.kind if l.kind != 'lesion' else 'cystic'})" for l in les)
        return _Result("no", None, ids + [l.id for l in les], "lesion mask type",
                       f"no {kind.upper()} in the pancreas{note}" + (f": lesions {listing}" if les else ": no lesion"))
    return h


def _h_splenomegaly(f: Findings, q: Question) -> _Result:
    thr = knowledge("splenomegaly_volume_ml").values[0]
    return _volume_threshold(f, "spleen", thr, "splenomegaly_volume_ml", "splenomegaly")


def _h_lesion_volume(f: Findings, q: Question) -> _Result:
    if q.aggregate == "total" and not q.lesion_id:
        organ = q.organ
        les = _lesions(f, organ)
        if not les:
            raise _Cannot(f"no lesion{' in the ' + _organ_name(organ) if organ else ''}")
        for l in les:
            _whole(l)
        tot = round(sum(l.volume_ml for l in les), 4)
        return _Result(tot, "mL", [l.id for l in les], "sum of lesion volume_ml",
                       f"total volume of {len(les)} lesion(s){' in the ' + _organ_name(organ) if organ else ''}: "
                       + " + ".join(f"{l.id} {_fmt(l.volume_ml, 3)}" for l in les) + f" = {_fmt(tot, 3)} mL")
    l = _pick(f, q, None)
    _whole(l)
    return _Result(l.volume_ml, "mL", [l.id], "lesion volume_ml (voxel count x voxel volume)",
                   f"{l.id} ({_organ_name(l.organ) if l.organ else 'no host organ'}, "
                   f"{_which(q)}): {_fmt(l.volume_ml, 3)} mL")


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
    va, ia = _mean_hu(f, a)
    vb, ib = _mean_hu(f, b)
    if vb == 0:
        raise _Cannot(f"{_organ_name(b)} mean HU is 0: ratio undefined", ia + ib)
    r = round(va / vb, 4)
    return _Result(r, "ratio", ia + ib, "organ mean_hu ratio",
                   f"{_organ_name(a)} {_fmt(va)} HU / {_organ_name(b)} {_fmt(vb)} HU = {r:.4f}")


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


def _kidney_lesion_volumes(f: Findings) -> tuple[dict[str, float], list[str]]:
    ids = []
    out = {}
    for side in ("kidney_left", "kidney_right"):
        _imaged(f, side)
        les = _lesions(f, side)
        if not les:
            _require_coverage(f, side, [_oid(side)])
        for l in les:
            _whole(l)
        out[side] = sum(l.volume_ml for l in les)
        ids += [_oid(side)] + [l.id for l in les]
    return out, ids


def _h_asymmetry(f: Findings, q: Question) -> _Result:
    vols, ids = _kidney_lesion_volumes(f)
    ratio = knowledge("bilateral_kidney_asymmetry").values[0]
    lv, rv = vols["kidney_left"], vols["kidney_right"]
    desc = f"lesion volume left {_fmt(lv, 3)} mL, right {_fmt(rv, 3)} mL"
    if lv == 0 and rv == 0:
        return _Result("symmetric", None, ids, "bilateral_kidney_asymmetry", f"no lesion in either kidney ({desc})")
    big, small = ("left kidney", "right kidney") if lv >= rv else ("right kidney", "left kidney")
    hi, lo = max(lv, rv), min(lv, rv)
    if lo == 0 or hi >= ratio * lo:
        return _Result(big, None, ids, "bilateral_kidney_asymmetry", f"{desc}: {big} more affected (>= {_fmt(ratio)}x)")
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
    _whole(l)
    field_, name = {"long_axis": ("long_axis_mm", "RECIST long axis"), "short_axis": ("short_axis_mm", "short axis"),
                    "3d": ("max_diameter_3d_mm", "maximal 3D diameter")}[q.diameter]
    v = getattr(l, field_)
    return _Result(v, "mm", [l.id], f"lesion {field_}",
                   f"{l.id} ({_which(q)}) {name} {_fmt(v, 1)} mm"
                   + (f" on axial slice {l.axial_slice}" if q.diameter != "3d" else ""))


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
    return _Result(l.axial_slice, "slice", [l.id], "lesion axial_slice (slice of the RECIST long axis)",
                   f"{l.id}: long axis {_fmt(l.long_axis_mm, 1)} mm on axial slice {l.axial_slice} "
                   f"(0-based index along voxel axis {f.study.axial_axis})")


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
    _whole(les[0])
    _whole(les[1])
    r = les[0].volume_ml / les[1].volume_ml
    pos = r >= ratio
    return _Result("yes" if pos else "no", None, [l.id for l in les], "lesion_outlier",
                   f"largest {les[0].id} {_fmt(les[0].volume_ml, 3)} mL / second {les[1].id} {_fmt(les[1].volume_ml, 3)} mL = "
                   f"{r:.2f} {'>=' if pos else '<'} {_fmt(ratio)} ({len(les)} lesions{where})")


def _h_clustering(f: Findings, q: Question) -> _Result:
    hi, two = knowledge("liver_lesion_clustering").values
    _, vols, les = _segment_stats(f, "liver")
    if not les:
        raise _Cannot("no liver lesion: clustering undefined", [_oid("liver")], "liver_lesion_clustering")
    _require_segments(les, "liver")
    tot = sum(vols.values())
    shares = sorted(((v / tot, s) for s, v in vols.items()), reverse=True)
    top1 = shares[0][0]
    top2 = top1 + (shares[1][0] if len(shares) > 1 else 0.0)
    desc = ", ".join(f"{segment_display(s)} {100 * sh:.1f} %" for sh, s in shares)
    if top1 > hi:
        cat = "highly clustered"
    elif top2 >= two:
        cat = "somewhat clustered"
    else:
        cat = "widely distributed"
    return _Result(cat, None, [l.id for l in les], "liver_lesion_clustering",
                   f"share of liver lesion volume per segment ({len(les)} lesions): {desc}: {cat}")


def _h_multi_organ(f: Findings, q: Question) -> _Result:
    fams = [organ_family(o) for o in q.organs] or sorted({organ_family(l.organ) for l in f.lesions if l.organ})
    fams = list(dict.fromkeys(fams))
    if len(fams) < 2:
        raise _Cannot(f"multi-organ comparison needs two organs (got {', '.join(fams) or 'none'})")
    vols, ids = {}, []
    for fam in fams:
        present, _ = _imaged(f, fam)
        les = _lesions(f, fam)
        if not les:
            _require_coverage(f, fam, [_oid(o.name) for o in present])
        for l in les:
            _whole(l)
        vols[fam] = sum(l.volume_ml for l in les)
        ids += [l.id for l in les] or [_oid(o.name) for o in present]
    order = sorted(fams, key=lambda x: -vols[x]) if q.direction == "larger" else sorted(fams, key=lambda x: vols[x])
    desc = ", ".join(f"{x} {_fmt(vols[x], 3)} mL" for x in fams)
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
    for l in les:
        _whole(l)
    tot = round(sum(l.volume_ml for l in les), 4)
    return _Result(tot, "mL", [l.id for l in les] or [i for _, r in parts for i in r.ids], "sum of lesion volume_ml",
                   f"lesion volume in {', '.join(_organ_name(o) for o in organs)}: {_fmt(tot, 3)} mL")


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


def _h_lesion_hu(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    return _Result(l.mean_hu, "HU", [l.id], "lesion mean_hu", f"{l.id} mean attenuation {_fmt(l.mean_hu)} HU (SD {_fmt(l.sd_hu)})")


def _pancreatic_solid(l: Lesion) -> bool:
    return not _is_cystic(l)


def _h_pdac_vs_pnet(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, "pancreas", "solid pancreatic lesion", keep=None if q.lesion_id else _pancreatic_solid)
    if l.kind in ("pdac", "pnet"):
        return _Result(l.kind.upper(), None, [l.id], "lesion mask type", f"{l.id} from mask {l.mask} (typed {l.kind.upper()})")
    if l.attenuation is None:
        raise _Cannot(f"{l.id}: untyped mask and no pancreas HU to compare with", [l.id], "pdac_vs_pnet_attenuation")
    cat = "PDAC" if l.attenuation.value == "hypoattenuating" else "PNET"
    return _Result(cat, None, [l.id], "pdac_vs_pnet_attenuation",
                   f"{l.id} untyped ({l.mask}); {l.attenuation.value} ({l.hu_difference:+.1f} HU vs pancreas): "
                   f"imaging pattern of {cat} (heuristic, not histology)")


def _ls_ratio(f: Findings) -> tuple[float, float, float, list[str]]:
    lv, li = _mean_hu(f, "liver")
    sv, si = _mean_hu(f, "spleen")
    if sv == 0:
        raise _Cannot("spleen mean HU is 0: L/S ratio undefined", li + si)
    return lv, sv, lv / sv, li + si


def _h_fatty_liver(f: Findings, q: Question) -> _Result:
    _require_noncontrast(f, "liver_spleen_ratio")
    thr = knowledge("liver_spleen_ratio").values[0]
    lv, sv, r, ids = _ls_ratio(f)
    pos = r < thr
    return _Result("yes" if pos else "no", None, ids, "liver_spleen_ratio",
                   f"L/S = {_fmt(lv)} / {_fmt(sv)} HU = {r:.3f} {'<' if pos else '>='} {_fmt(thr)} on non-contrast CT: "
                   f"{'fatty liver' if pos else 'no fatty liver'}")


def _h_steatosis_grade(f: Findings, q: Question) -> _Result:
    _require_noncontrast(f, "kodama_steatosis_grade")
    hu0, hu1, hu2, r0, r1, r2 = knowledge("kodama_steatosis_grade").values  # 58 51 39 / 1.0 0.8 0.5
    lv, sv, r, ids = _ls_ratio(f)
    if lv < hu2 or r < r2:
        g = "G3 (severe)"
    elif lv < hu1 or r < r1:
        g = "G2 (moderate)"
    elif lv < hu0 or r < r0:
        g = "G1 (mild)"
    else:
        g = "G0 (normal)"
    return _Result(g, None, ids, "kodama_steatosis_grade",
                   f"liver {_fmt(lv)} HU, L/S {r:.3f} (spleen {_fmt(sv)} HU): {g}, the most severe grade whose HU or L/S criterion holds")


def _h_lesion_type(f: Findings, q: Question) -> _Result:
    organ = q.organ or "kidney"
    l = _pick(f, q, organ)
    if not (l.organ and organ_family(l.organ) == "kidney"):
        raise _Cannot(f"{l.id} is not a kidney lesion: the cyst/tumour rule (34.8 HU) is for kidney lesions", [l.id])
    cls, why = _lesion_class(l)
    return _Result(cls, None, [l.id], "kidney_lesion_tumor_hu" if "HU" in why else "lesion mask type", f"{why}: {cls}")


def _pancreatic_cyst(f: Findings, q: Question) -> Lesion:
    l = _pick(f, q, "pancreas", "pancreatic cyst (typed cyst or cystic by attenuation)", keep=None if q.lesion_id else _is_cystic)
    if not _is_cystic(l):
        raise _Cannot(f"{l.id} is not a cyst (mask {l.mask}, mean {_fmt(l.mean_hu)} HU, SD {_fmt(l.sd_hu)})", [l.id])
    return l


def _h_cyst_resect(f: Findings, q: Question) -> _Result:
    l = _pancreatic_cyst(f, q)
    _whole(l)
    vthr, dthr = knowledge("pancreatic_cyst_resection").values
    pos = l.volume_ml > vthr or l.long_axis_mm > dthr
    return _Result("yes" if pos else "no", None, [l.id], "pancreatic_cyst_resection",
                   f"{l.id} volume {_fmt(l.volume_ml, 3)} mL ({'>' if l.volume_ml > vthr else '<='} {_fmt(vthr)}), diameter "
                   f"{_fmt(l.long_axis_mm, 1)} mm ({'>' if l.long_axis_mm > dthr else '<='} {_fmt(dthr)}): "
                   f"{'resection recommended' if pos else 'surveillance'}")


def _hint(f: Findings, q: Question, system: str) -> tuple[Lesion, object]:
    l = _pick(f, q, "pancreas", "solid pancreatic lesion", keep=None if q.lesion_id else _pancreatic_solid)
    h = next((h for h in l.staging if h.system == system), None)
    if h is None:
        raise _Cannot(f"{l.id}: no {system} hint ({'; '.join(f'{x.system}: {x.rule}' for x in l.staging)})", [l.id])
    if h.category == "not assessed":
        raise _Cannot(f"{l.id}: {system} not assessed: {h.rule}", [l.id])
    return l, h


def _h_resectability(f: Findings, q: Question) -> _Result:
    l, h = _hint(f, q, "NCCN pancreas resectability")
    return _Result(h.category, None, [l.id], "nccn_pancreas_resectability", f"{l.id}: {h.category} ({h.rule})")


def _h_t_stage(f: Findings, q: Question) -> _Result:
    l, h = _hint(f, q, "AJCC8 pancreas T")
    if "not excluded" in h.rule:
        raise _Cannot(f"{l.id}: size alone gives {h.category}, but {h.rule.split('; ', 1)[-1]}", [l.id], "pancreas_t_stage_mm")
    return _Result(h.category, None, [l.id], "pancreas_t_stage_mm", f"{l.id}: {h.rule}")


def _h_pancreatic_steatosis(f: Findings, q: Question) -> _Result:
    _require_noncontrast(f, "pancreatic_steatosis_ps_ratio")
    thr = knowledge("pancreatic_steatosis_ps_ratio").values[0]
    pv, pi = _mean_hu(f, "pancreas")
    sv, si = _mean_hu(f, "spleen")
    if sv == 0:
        raise _Cannot("spleen mean HU is 0: P/S ratio undefined", pi + si)
    r = pv / sv
    pos = r < thr
    return _Result("yes" if pos else "no", None, pi + si, "pancreatic_steatosis_ps_ratio",
                   f"P/S = {_fmt(pv)} / {_fmt(sv)} HU = {r:.3f} {'<' if pos else '>='} {_fmt(thr)} on non-contrast CT")


def _h_portal_htn(f: Findings, q: Question) -> _Result:
    key = "portal_hypertension_signs"
    try:
        s = _h_splenomegaly(f, q)
    except _Cannot as e:
        raise _Cannot(f"splenomegaly, the one sign assessable from findings, is undetermined ({e.reason}); caudate/right-lobe "
                      "ratio, portal vein diameter, collaterals and ascites are not in findings", e.ids, key) from None
    if s.value == "yes":
        return _Result("yes", None, s.ids, key, f"sign present: {s.explanation} (other signs not assessed)")
    raise _Cannot(f"no splenomegaly ({s.explanation}), but portal hypertension is not excluded: caudate/right-lobe ratio, "
                  "portal vein diameter, collaterals and ascites are not in findings", s.ids, key)


def _h_pseudocyst(f: Findings, q: Question) -> _Result:
    l = _pancreatic_cyst(f, q)
    thr = knowledge("pancreatic_pseudocyst_hu").values[0]
    pos = l.mean_hu > thr
    return _Result("yes" if pos else "no", None, [l.id], "pancreatic_pseudocyst_hu",
                   f"{l.id} mean {_fmt(l.mean_hu)} HU {'>' if pos else '<='} {_fmt(thr)} HU: "
                   f"{'pseudocyst' if pos else 'mucinous cyst, not a pseudocyst'}")


def _h_renal_mass(f: Findings, q: Question) -> _Result:
    organ = q.organ or "kidney"
    l = _pick(f, q, organ)
    if not (l.organ and organ_family(l.organ) == "kidney"):
        raise _Cannot(f"{l.id} is not a kidney lesion", [l.id])
    fat, cyst, hyper = knowledge("renal_mass_hu_ranges").values
    v = l.mean_hu
    if v < fat:
        cat = "fat-containing"
    elif v <= cyst:
        cat = "simple cyst"
    elif v <= hyper:
        cat = "indeterminate"
    else:
        if f.study.contrast_phase.phase != "non_contrast":
            raise _Cannot(f"{l.id} mean {_fmt(v)} HU > {_fmt(hyper)} HU on a {f.study.contrast_phase.phase} study: "
                          "a hyperdense cyst is defined on non-contrast CT (this may be enhancement)", [l.id], "renal_mass_hu_ranges")
        cat = "hyperdense cyst"
    return _Result(cat, None, [l.id], "renal_mass_hu_ranges", f"{l.id} mean {_fmt(v)} HU: {cat}")


def _h_spleno_grade(f: Findings, q: Question) -> _Result:
    key = "splenomegaly_grades_ml"
    mild, moderate, severe = knowledge(key).values
    o = f.organ("spleen")
    if o is None:
        raise _Cannot("no spleen mask in this study", rule=key)
    ids = [_oid("spleen")]
    if o.status == Status.absent:
        raise _Cannot("the spleen mask is empty: organ not found", ids, key)

    def grade(v: float) -> str:
        return ("normal (no splenomegaly)" if v <= mild else "mild" if v <= moderate else "moderate" if v <= severe else "severe")
    if o.status == Status.measured and o.volume_ml is not None:
        g = grade(o.volume_ml)
        return _Result(g, None, ids, key, f"spleen volume {_fmt(o.volume_ml, 1)} mL: {g} ({knowledge(key).rule})")
    lb = o.voxel_count * _voxel_ml(f)
    if lb > severe:
        return _Result("severe", None, ids, key, f"spleen truncated, imaged part alone {lb:.1f} mL > {_fmt(severe)} mL: severe")
    raise _Cannot(f"the spleen reaches the scan edge ({', '.join(o.touches_edges)}): volume unknown (imaged part {lb:.1f} mL, "
                  "a lower bound)", ids, key)


_HANDLERS: dict[str, Callable[[Findings, Question], _Result]] = {
    "PDAC existence": _typed_existence("pdac"),
    "PNET existence": _typed_existence("pnet"),
    "colon lesion existence": _h_exist_fixed("colon"),
    "kidney cyst existence": _h_kidney_exist("cyst"),
    "kidney lesion existence": _h_kidney_exist(None),
    "kidney tumor existence": _h_kidney_exist("tumor"),
    "liver lesion existence": _h_exist_fixed("liver"),
    "pancreatic lesion existence": _h_exist_fixed("pancreas"),
    "splenomegaly detection": _h_splenomegaly,
    "lesion volume measurement": _h_lesion_volume,
    "organ HU measurement": _h_organ_hu,
    "organ HU ratio": _h_hu_ratio,
    "organ volume measurement": _h_organ_volume,
    "tumor burden percentage": _h_burden,
    "adjacent organ": _h_adjacent,
    "bilateral kidney asymmetry": _h_asymmetry,
    "inter-segment comparison": _h_inter_segment,
    "kidney volume comparison": _h_kidney_volume_cmp,
    "largest lesion attenuation": _h_attenuation,
    "largest lesion diameter": _h_diameter,
    "largest lesion location": _h_location,
    "largest lesion slice": _h_slice,
    "lesion count by location": _h_count_location,
    "lesion counting": _h_counting,
    "lesion outlier": _h_outlier,
    "liver lesion clustering": _h_clustering,
    "multi-organ lesion burden comparison": _h_multi_organ,
    "organ aggregation": _h_aggregation,
    "organ enlargement": _h_enlargement,
    "tumor organ HU difference": _h_hu_difference,
    "PDAC vs PNET classification": _h_pdac_vs_pnet,
    "fatty liver": _h_fatty_liver,
    "hepatic steatosis grading": _h_steatosis_grade,
    "lesion type classification": _h_lesion_type,
    "pancreatic cyst resectability": _h_cyst_resect,
    "pancreatic lesion resectability": _h_resectability,
    "pancreatic steatosis": _h_pancreatic_steatosis,
    "pancreatic tumor staging": _h_t_stage,
    "portal hypertension assessment": _h_portal_htn,
    "pseudocyst determination": _h_pseudocyst,
    "renal mass characterization": _h_renal_mass,
    "splenomegaly grading": _h_spleno_grade,
    "lesion existence": _h_lesion_existence,
    "lesion HU measurement": _h_lesion_hu,
}
if set(_HANDLERS) != set(SUBTYPES):  # pragma: no cover - programming error
    raise RuntimeError(f"handlers and subtypes differ: {set(_HANDLERS) ^ set(SUBTYPES)}")


# --- free text -> Question ---------------------------------------------------------------------
_ORGAN_PATTERNS: list[tuple[str, str]] = [
    ("kidney_left", r"\bleft[\s-]+(?:kidney|renal)\b|\bkidney_left\b|\bleft-sided kidney\b"),
    ("kidney_right", r"\bright[\s-]+(?:kidney|renal)\b|\bkidney_right\b|\bright-sided kidney\b"),
    ("adrenal_gland_left", r"\bleft adrenal(?: gland)?\b"),
    ("adrenal_gland_right", r"\bright adrenal(?: gland)?\b"),
    ("gallbladder", r"\bgall[\s-]?bladder\b"),
    ("kidney", r"\bkidneys?\b|\brenal\b|\bnephr\w*"),
    ("liver", r"\bliver\b|\bhepat\w*|\bcouinaud\b"),
    ("pancreas", r"\bpancrea\w*|\bpdac\b|\bpnet\b"),
    ("spleen", r"\bspleen\b|\bsplen\w*"),
    ("colon", r"\bcolon\b|\bcolonic\b|\bcolorectal\b|\brect(?:um|al)\b"),
    ("stomach", r"\bstomach\b|\bgastric\b"),
    ("duodenum", r"\bduoden\w*"),
    ("adrenal", r"\badrenals?(?: glands?)?\b"),
    ("small_bowel", r"\bsmall (?:bowel|intestine)\b"),
    ("esophagus", r"\b(?:o)?esophag\w*"),
    ("urinary_bladder", r"\b(?:urinary )?bladder\b"),
    ("lung", r"\blungs?\b|\bpulmonary\b"),
]
_LESION_WORDS = r"\b(?:lesions?|tumou?rs?|masse?s?|cysts?|nodules?|neoplasms?|cancers?|carcinomas?|metasta\w*|pdac|pnet|malignan\w*)\b"


def _organs_in(t: str) -> list[str]:
    found: list[tuple[int, str]] = []
    taken = [False] * len(t)
    for name, pat in _ORGAN_PATTERNS:
        for m in re.finditer(pat, t):
            if any(taken[m.start():m.end()]):
                continue
            for i in range(m.start(), m.end()):
                taken[i] = True
            found.append((m.start(), name))
    out: list[str] = []
    for _, n in sorted(found):
        if n not in out:
            out.append(n)
    return out


_SEG_LIST = re.compile(r"\bsegments?\s+((?:[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i)\b"
                       r"(?:\s*(?:,|and|or|vs\.?|versus|&)\s*(?:segment\s+)?(?:[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i)\b)*)")
_SEG_SHORT = re.compile(r"\bs([1-8])\b|\bliver_segment_([1-8])\b")
_PANC_PART = re.compile(r"\b(?:pancreatic\s+|pancreas\s+)?(head|body|tail|uncinate)\b(?:\s+of\s+the\s+pancreas)?|\bpancreas_(head|body|tail)\b")


def _segments_in(t: str, pancreas_context: bool) -> list[str]:
    found: list[tuple[int, str]] = []
    for m in _SEG_LIST.finditer(t):
        for tok in re.finditer(r"[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i", m.group(1)):
            x = tok.group(0)
            found.append((m.start(1) + tok.start(), f"liver_segment_{int(x) if x.isdigit() else _ROMAN[x]}"))
    for m in _SEG_SHORT.finditer(t):
        found.append((m.start(), f"liver_segment_{m.group(1) or m.group(2)}"))
    if pancreas_context:
        for m in _PANC_PART.finditer(t):
            found.append((m.start(), _PANCREAS_PARTS[m.group(1) or m.group(2)]))
    out: list[str] = []
    for _, s in sorted(found):
        if s not in out:
            out.append(s)
    return out


def _norm(text: str) -> str:
    t = text.lower().replace("\u2212", "-").replace("\u2013", "-").replace("hounsfield units", "hu").replace("hounsfield unit", "hu")
    t = t.replace("tumour", "tumor").replace("characterise", "characterize")
    return re.sub(r"\s+", " ", t).strip()


def _has(t: str, pat: str) -> bool:
    return re.search(pat, t) is not None


def parse_question(text: str) -> Question | None:
    """Map templated free text to a Question; None when no template matches (never a guess)."""
    t = _norm(text)
    organs = _organs_in(t)
    segs = _segments_in(t, "pancrea" in t)
    lid = re.search(r"\b(L\d+)\b", text)
    lesion = _has(t, _LESION_WORDS)
    organ = organs[0] if organs else None
    kw: dict = {"text": text}
    if lid:
        kw["lesion_id"] = lid.group(1)
    ordinal = re.search(r"\b(second|third|fourth|fifth|2nd|3rd|4th|5th)[- ](largest|biggest)\b", t)
    if ordinal:
        kw["rank"] = {"second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5}[ordinal.group(1)]
    elif re.search(r"\bsmallest (\w+ )?(lesion|tumou?r|mass|cyst|nodule)", t):
        kw["rank"] = -1

    def q(subtype: str, **extra) -> Question:
        return Question(subtype=subtype, **{**kw, **extra})

    smaller = _has(t, r"\b(smaller|smallest|fewer|fewest|less|least|lower)\b")
    direction = "smaller" if smaller else "larger"

    # --- medical reasoning first (most specific wording) ---
    if _has(t, r"\bpdac\b|ductal adenocarcinoma|\badenocarcinoma\b") and _has(t, r"\bpnet\b|neuroendocrine"):
        return q("PDAC vs PNET classification")
    if _has(t, r"pseudo-?cyst|mucinous"):
        return q("pseudocyst determination")
    if _has(t, r"portal (venous )?hypertension"):
        return q("portal hypertension assessment")
    if _has(t, r"steatosis|fatty|fat (content|infiltration|deposition)"):
        if "pancreas" in organs and "liver" not in organs:
            return q("pancreatic steatosis")
        if _has(t, r"\bgrad|severity|how severe|kodama|what degree|\bdegree\b|\bstage\b|classify"):
            return q("hepatic steatosis grading")
        return q("fatty liver")
    if _has(t, r"splenomegaly|splenic enlargement|enlarge\w* (of the )?spleen|spleen (is )?enlarged"):
        if _has(t, r"\bgrad|classify|classification|severity|how severe|\bdegree\b|\bmild\b|\bmoderate\b|\bsevere\b|categor"):
            return q("splenomegaly grading")
        return q("splenomegaly detection")
    if "kidney" in [organ_family(o) for o in organs] and _has(t, r"bosniak|characteri[sz]"):
        return q("renal mass characterization", organ=organ if organ != "kidney" else None)
    if "kidney" in [organ_family(o) for o in organs] and lesion and _has(
            t, r"\b(cyst|tumor) or (a |an )?(cyst|tumor|solid)\b|\btype of\b|\bclassif|cystic or solid|solid or cystic|benign cyst or"):
        return q("lesion type classification", organ=organ if organ != "kidney" else None)
    if "pancreas" in organs and _has(t, r"\bcyst") and _has(t, r"resect|surg|remov|excis|operat"):
        return q("pancreatic cyst resectability")
    if "pancreas" in organs and _has(t, r"resectab|\bresect|nccn|surgical candidate|operable|surgically"):
        return q("pancreatic lesion resectability")
    if "pancreas" in organs and _has(t, r"\bt[\s-]?stag|\bt[\s-]?categor|\bstag(e|ing)\b|\bajcc\b"):
        return q("pancreatic tumor staging")
    if _has(t, r"\bpdac\b|ductal adenocarcinoma"):
        return q("PDAC existence")
    if _has(t, r"\bpnet\b|neuroendocrine"):
        return q("PNET existence")

    # --- comparisons and ratios ---
    if _has(t, r"\bratio\b|-to-|\bl/s\b|\bp/s\b") and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)|\bl/s\b|\bp/s\b|-to-"):
        if _has(t, r"\bl/s\b"):
            return q("organ HU ratio", organs=("liver", "spleen"))
        if _has(t, r"\bp/s\b"):
            return q("organ HU ratio", organs=("pancreas", "spleen"))
        if len(organs) >= 2:
            return q("organ HU ratio", organs=tuple(organs[:2]))
        return None
    kidney_only = organs and all(organ_family(o) == "kidney" for o in organs)
    if _has(t, r"asymmetr|\bbilateral\b") or (kidney_only and _has(t, r"which kidney|which side") and (
            lesion or _has(t, r"\bburden\b"))):
        return q("bilateral kidney asymmetry")
    if lesion and _has(t, r"\bburden\b|lesion volume|tumor volume|more (lesions?|tumors?)") and (
            len({organ_family(o) for o in organs}) >= 2 or _has(t, r"which organ")):
        if not (len(organs) == 1 and organ_family(organs[0]) == "kidney"):
            return q("multi-organ lesion burden comparison", organs=tuple(dict.fromkeys(organ_family(o) for o in organs)),
                     direction=direction)
    if _has(t, r"(tumor|lesion) burden|percent|proportion|fraction of the") and organ and (
            _has(t, r"\bburden\b") or lesion):
        return q("tumor burden percentage", organ=organ)
    if _has(t, r"\bdifference\b|\bdiffer\b") and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)"):
        return q("tumor organ HU difference", organ=organ)

    # --- lesion-level visual reasoning ---
    if kidney_only and _has(t, r"which kidney|which side|(left|right) kidney (is )?(larger|bigger|smaller)|compare.*kidney") and \
            _has(t, r"larger|bigger|smaller|volume|\bsize\b"):
        return q("kidney volume comparison", direction=direction)
    if _has(t, r"\badjacent\b|\babut|\bin contact\b|\bcontact with\b|\bneighbo|\bnext to\b|\bborder(s|ing)?\b|\btouch"):
        return q("adjacent organ", organ=organ)
    if _has(t, r"outlier|disproportionate|(much|significantly|substantially|markedly|far) larger than (the )?(other|rest|remaining)|dominant lesion"):
        return q("lesion outlier", organ=organ)
    if _has(t, r"cluster|distribut|scatter|dispers|\bspread\b|concentrated|diffuse"):
        return q("liver lesion clustering")
    largest = _has(t, r"\b(largest|biggest|dominant|main|primary|index)\b")
    if lesion and _has(t, r"\bslice\b"):
        return q("largest lesion slice", organ=organ)
    if lesion and (largest or lid) and _has(t, r"\bsegment|\bwhere\b|locat|\bwhich (part|portion|region|lobe|side)\b|\blobe\b"):
        return q("largest lesion location", organ=organ)
    if _has(t, r"which (couinaud |liver |hepatic |pancreatic )?(segment|part|portion|region)s?\b") or \
            (len(segs) >= 2 and _has(t, r"\bor\b|\bvs\.?\b|versus|compare|more|fewer")):
        metric = "volume" if _has(t, r"volume|burden|larger|bigger") else "count"
        return q("inter-segment comparison", organ=(SUBSEGMENTS[segs[0]] if segs else organ), segments=tuple(segs),
                 metric=metric, direction="smaller" if _has(t, r"\b(fewer|fewest|less|least)\b") else "larger")
    if lesion and _has(t, r"hypo|hyper|\biso|attenuat|dense\b|density|enhanc|darker|brighter") and not _has(t, r"\bmean\b|\baverage\b"):
        return q("largest lesion attenuation", organ=organ)
    if lesion and _has(t, r"diameter|long(est)? axis|short axis|\bsize\b|how (large|big|long|wide)|\bextent\b|\bmeasure") and \
            not _has(t, r"\bvolume\b"):
        d = "3d" if _has(t, r"\b3d\b|three-dimensional|3-dimensional|feret") else ("short_axis" if _has(t, r"short axis") else "long_axis")
        return q("largest lesion diameter", organ=organ, diameter=d)
    count = _has(t, r"how many|number of|\bcount\b")
    if count and lesion and segs:
        return q("lesion count by location", location=segs[0])
    if _has(t, r"\b(total|combined|sum|together|aggregate|overall|all)\b") and (
            len(organs) >= 2 or _has(t, r"\bkidneys\b|both kidneys|\bboth\b")):
        orgs = tuple(organs) if len(organs) >= 2 else ("kidney_left", "kidney_right") if "kidney" in organs else tuple(organs)
        if lesion and count:
            return q("organ aggregation", organs=orgs, measure="lesion_count")
        if lesion:
            return q("organ aggregation", organs=orgs, measure="lesion_volume")
        if _has(t, r"\bvolume\b|\bsize\b"):
            return q("organ aggregation", organs=orgs, measure="volume")
    if count and lesion:
        return q("lesion counting", organ=organ)
    if lesion and _has(t, r"\bvolume\b"):
        agg = "total" if _has(t, r"\b(total|combined|sum|all|overall)\b") else "largest"
        return q("lesion volume measurement", organ=organ, aggregate=agg)
    if lesion and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)"):
        return q("lesion HU measurement", organ=organ)

    # --- organ-level ---
    if organ and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)"):
        return q("organ HU measurement", organ=organ)
    if organ and _has(t, r"enlarg|megaly|larger than normal|increased (in )?size|abnormally large|normal (in )?size"):
        return q("organ enlargement", organ=organ)
    if organ and _has(t, r"\bvolume\b|how (large|big) is the"):
        return q("organ volume measurement", organ=organ)

    # --- recognition ---
    if lesion and organ and _has(t, r"\b(is|are) there\b|\bany\b|evidence|presen|\bcontain|\bhave\b|\bhas\b|\bshow|detect|identif|visible|\bexist|\bsee\b|\bsign"):
        kind = "cyst" if _has(t, r"\bcysts?\b") else ("tumor" if _has(t, r"tumor|\bmass|cancer|carcinoma|neoplasm|malignan") else None)
        fam = organ_family(organ)
        if fam == "kidney":
            st = {"cyst": "kidney cyst existence", "tumor": "kidney tumor existence"}.get(kind or "", "kidney lesion existence")
            return q(st, organ=organ)
        if fam == "liver":
            return q("liver lesion existence")
        if fam == "pancreas":
            return q("pancreatic lesion existence")
        if fam == "colon":
            return q("colon lesion existence")
        return q("lesion existence", organ=organ, lesion_kind=kind)
    return None


def supported_questions() -> str:
    """The question types and an example of each (for 'unmapped question' messages and help)."""
    return "; ".join(f"{s.name} (e.g. '{s.example}')" for s in SUBTYPES.values())


# --- multiple choice ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    letter: str
    text: str


_OPT_IN_TEXT = re.compile(r"(?:(?<=\s)|^|(?<=\())\(?([A-D])\s*[\):\.\]]\s*")


def split_choices(text: str) -> tuple[str, list[Option]]:
    """Question text and its options when it ends with 'A) ... B) ...' (or 'A: ...', 'A. ...')."""
    marks = list(_OPT_IN_TEXT.finditer(text))
    seq: list[re.Match] = []
    want = "A"
    for m in marks:
        if m.group(1) == want:
            seq.append(m)
            want = chr(ord(want) + 1)
    if len(seq) < 2:
        return text, []
    opts = []
    for i, m in enumerate(seq):
        end = seq[i + 1].start() if i + 1 < len(seq) else len(text)
        opts.append(Option(m.group(1), text[m.end():end].strip(" \n\t;,")))
    return text[:seq[0].start()].strip(), opts


def parse_choices(choices: list[str]) -> list[Option]:
    out = []
    for i, c in enumerate(choices):
        m = re.match(r"^\s*\(?([A-Da-d])\s*[\):\.\]]\s*(.*)$", c, re.S)
        out.append(Option(m.group(1).upper(), m.group(2).strip()) if m else Option(chr(ord("A") + i), c.strip()))
    letters = [o.letter for o in out]
    if len(set(letters)) != len(letters):
        raise ValueError(f"duplicate option letters in {choices!r}")
    return out


_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_UNIT_FACTORS = {  # option unit -> (answer unit, factor)
    "ml": ("mL", 1.0), "cc": ("mL", 1.0), "cm3": ("mL", 1.0), "l": ("mL", 1000.0),
    "mm": ("mm", 1.0), "cm": ("mm", 10.0), "%": ("%", 1.0), "hu": ("HU", 1.0),
}


def _option_number(text: str, unit: str | None) -> float | None:
    t = _norm(text).replace("cm³", "cm3").replace("mm³", "mm3")
    m = _NUM.search(t)
    if not m:
        return None
    v = float(m.group(0).replace(",", "."))
    rest = t[m.end():].strip()
    um = re.match(r"(ml|cc|cm3|mm3|l\b|liters?|litres?|mm|cm|%|percent|hu)", rest)
    if um:
        u = {"liter": "l", "liters": "l", "litre": "l", "litres": "l", "percent": "%"}.get(um.group(1), um.group(1))
        if u == "mm3":
            return v / 1000.0 if unit == "mL" else None
        target, fac = _UNIT_FACTORS.get(u, (None, 1.0))
        if unit and target and target == unit:
            return v * fac
        if unit and target and target != unit:
            return None
    return v


_TOL = {"mL": (0.15, 0.01), "mm": (0.15, 0.5), "HU": (0.15, 2.0), "ratio": (0.15, 0.02), "%": (0.15, 0.05)}


def _match_numeric(sub: str, value: float, unit: str | None, opts: list[Option]) -> tuple[Option | None, str]:
    vals = [(o, _option_number(o.text, unit)) for o in opts]
    vals = [(o, v) for o, v in vals if v is not None]
    if not vals:
        return None, "no option holds a number"
    if sub == "tumor organ HU difference" and value < 0 and all(v >= 0 for _, v in vals):
        value = abs(value)
    if unit in ("lesions", None) and sub in ("lesion counting", "lesion count by location", "organ aggregation"):
        hit = [o for o, v in vals if v == value]
        return (hit[0], "") if len(hit) == 1 else (None, f"no option equals {value}")
    if unit == "slice":
        rel, ab = 0.0, 2.0
    else:
        rel, ab = _TOL.get(unit or "", (0.15, 0.0))
    tol = max(rel * abs(value), ab)
    ranked = sorted(vals, key=lambda ov: abs(ov[1] - value))
    best, d0 = ranked[0][0], abs(ranked[0][1] - value)
    if d0 > tol:
        return None, f"nearest option {best.letter}) {best.text} is {d0:.3g} away (tolerance {tol:.3g})"
    if len(ranked) > 1 and abs(ranked[1][1] - value) <= tol and d0 >= 0.5 * abs(ranked[1][1] - value):
        return None, f"options {best.letter} and {ranked[1][0].letter} are both within tolerance"
    return best, ""


_YES = r"^(yes|true|present|positive)\b"
_NO = r"^(no|false|absent|negative|none)\b"
_NEG = r"\b(no|not|without|absent|negative|normal|none|neither)\b"
_BIN_YES_WORDS = {
    "splenomegaly detection": r"splenomegaly|enlarged",
    "organ enlargement": r"enlarg|megaly|larger than normal",
    "fatty liver": r"fatty|steatosis",
    "pancreatic steatosis": r"fatty|steatosis",
    "pseudocyst determination": r"pseudo-?cyst",
    "pancreatic cyst resectability": r"resect|surg|remov|excis|operat",
    "portal hypertension assessment": r"portal hypertension|present",
    "lesion outlier": r"outlier",
}
_BIN_NO_WORDS = {"pseudocyst determination": r"mucinous", "pancreatic cyst resectability": r"surveillance|follow|observ|monitor"}


def _binary_label(sub: str, text: str) -> str | None:
    t = _norm(text)
    if re.match(_YES, t):
        return "yes"
    if re.match(_NO, t):
        return "no"
    if sub in _BIN_NO_WORDS and re.search(_BIN_NO_WORDS[sub], t):
        return "no"
    if re.search(_NEG, t):
        return "no"
    if sub in _BIN_YES_WORDS and re.search(_BIN_YES_WORDS[sub], t):
        return "yes"
    return None


_CATEGORY_PATTERNS: dict[str, list[tuple[str, str]]] = {
    "largest lesion attenuation": [("hypoattenuating", r"hypo|lower|darker|less dense"), ("hyperattenuating", r"hyper|higher|brighter|more dense"),
                                   ("isoattenuating", r"\biso|similar|same|equal")],
    "liver lesion clustering": [("somewhat clustered", r"somewhat|moderately|partially|partly"),
                                ("highly clustered", r"highly|tightly|strongly|very|clustered|concentrated|focal"),
                                ("widely distributed", r"wide|diffuse|scatter|distribut|spread|dispers")],
    "hepatic steatosis grading": [("G3 (severe)", r"\bg(?:rade)?\s*3\b|severe"), ("G2 (moderate)", r"\bg(?:rade)?\s*2\b|moderate"),
                                  ("G1 (mild)", r"\bg(?:rade)?\s*1\b|mild"), ("G0 (normal)", r"\bg(?:rade)?\s*0\b|normal|\bnone\b|\bno\b")],
    "splenomegaly grading": [("normal (no splenomegaly)", r"normal|\bno splenomegaly|\bnone\b"), ("severe", r"severe|massive"),
                             ("moderate", r"moderate"), ("mild", r"mild")],
    "pancreatic tumor staging": [("T4", r"\bt\s*4|\bstage iv\b"), ("T3", r"\bt\s*3|\bstage iii\b"), ("T2", r"\bt\s*2|\bstage ii\b"),
                                 ("T1", r"\bt\s*1|\bstage i\b")],
    "pancreatic lesion resectability": [("borderline resectable", r"borderline"),
                                        ("locally advanced", r"locally advanced|unresectable|not resectable|irresectable|non-?resectable"),
                                        ("resectable", r"resectable")],
    "PDAC vs PNET classification": [("PDAC", r"pdac|adenocarcinoma|ductal"), ("PNET", r"pnet|neuroendocrine")],
    "lesion type classification": [("cyst", r"\bcyst|cystic"), ("tumor", r"tumor|solid|rcc|carcinoma|\bmass|neoplasm|malignan")],
    "renal mass characterization": [("fat-containing", r"\bfat|angiomyolipoma"),
                                    ("hyperdense cyst", r"hyperdense|hyperattenuating|high[\s-]density|hemorrhagic|proteinaceous"),
                                    ("indeterminate", r"indeterminate|complex|solid|enhancing"), ("simple cyst", r"simple|benign cyst")],
    "kidney volume comparison": [("equal", r"equal|same|similar|symmetric|no (significant )?difference"),
                                 ("left kidney", r"\bleft\b"), ("right kidney", r"\bright\b")],
    "bilateral kidney asymmetry": [("symmetric", r"symmetric(?!al)|equal|same|similar|no (significant )?(difference|asymmetry)|neither|balanced"),
                                   ("left kidney", r"\bleft\b"), ("right kidney", r"\bright\b")],
}


def _category_label(sub: str, text: str) -> str | None:
    t = _norm(text)
    if sub in ("largest lesion location", "inter-segment comparison"):
        if _has(t, r"\bequal|\bsame\b|\btie\b|\bboth\b"):
            return "equal"
        segs = _segments_in(t, True) or _segments_in("segment " + t, True)
        if segs:
            return segs[0]
        orgs = _organs_in(t)
        return orgs[0] if orgs else None
    if sub in ("adjacent organ", "multi-organ lesion burden comparison"):
        if _has(t, r"\bnone\b|\bno organ\b|\bnothing\b"):
            return "none"
        if _has(t, r"\bequal\b|\bsame\b|\btie\b"):
            return "equal"
        orgs = _organs_in(t)
        if not orgs:
            return None
        return organ_family(orgs[0]) if sub == "multi-organ lesion burden comparison" else orgs[0]
    for label, pat in _CATEGORY_PATTERNS.get(sub, []):
        if _has(t, pat):
            return label
    return None


def _match(sub: str, atype: str, r: _Result, opts: list[Option]) -> tuple[Option | None, str]:
    if atype == "numeric":
        return _match_numeric(sub, float(r.value), r.unit, opts)
    if atype == "binary":
        labels = [(o, _binary_label(sub, o.text)) for o in opts]
        accept = {str(r.value)}
    else:
        labels = [(o, _category_label(sub, o.text)) for o in opts]
        accept = set(r.accept) if r.accept is not None else {str(r.value)}
    hit = [o for o, l in labels if l is not None and l in accept]
    if len(hit) == 1:
        return hit[0], ""
    if not hit:
        return None, f"no option means {r.value!r} (options read as {', '.join(f'{o.letter}={l}' for o, l in labels)})"
    return None, f"several options mean {r.value!r}: {', '.join(o.letter for o in hit)}"


# --- entry point -------------------------------------------------------------------------------
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


# --- QA pairs for datasets ---------------------------------------------------------------------
_ORGAN_WORDS = {"liver": "liver", "pancreas": "pancreas", "kidney": "kidneys", "kidney_left": "left kidney",
                "kidney_right": "right kidney", "spleen": "spleen", "gallbladder": "gallbladder", "colon": "colon",
                "stomach": "stomach", "lung": "lungs"}


def _qa_text(spec: Subtype, q: Question) -> str:
    """The subtype's template question with its organ word swapped for the one asked about."""
    text = spec.example
    organ = q.organ
    if organ and organ != "liver" and re.search(r"\bliver\b", text):
        word = "kidney" if organ == "kidney" else ("lung" if organ == "lung" else _ORGAN_WORDS.get(organ, organ.replace("_", " ")))
        text = re.sub(r"\bliver\b", word, text, count=1)
    elif organ and re.search(r"\b(left|right) kidney\b|\bkidneys\b", text) and organ.startswith("kidney"):
        text = re.sub(r"\b(left|right) kidney\b|\bkidneys\b", _ORGAN_WORDS.get(organ, organ), text, count=1)
    elif organ and re.search(r"\bspleen\b", text) and organ != "spleen" and spec.name in ("organ HU measurement", "lesion existence"):
        text = re.sub(r"\bspleen\b", _ORGAN_WORDS.get(organ, organ.replace("_", " ")), text, count=1)
    elif organ and re.search(r"\bliver\b", text) is None and spec.name in ("organ volume measurement", "organ enlargement"):
        text = f"{text} ({_ORGAN_WORDS.get(organ, organ)})"
    if q.organs:
        text = f"{text} [{', '.join(_ORGAN_WORDS.get(o, o) for o in q.organs)}]"
    if q.segments:
        text = f"{text} [{' vs '.join(segment_display(s) for s in q.segments)}]"
    if q.location:
        text = f"{text} [{segment_display(q.location)}]"
    return text


def _fam_of(organ: str | None) -> str | None:
    if not organ:
        return None
    return "kidney" if organ.startswith("kidney") else ("lung" if organ.startswith("lung") else organ)


def generate_qa(findings: Findings) -> list[dict]:
    """QA pairs of every subtype these findings can pose, each answered by ``answer`` (status kept:
    'cannot_be_determined' rows say why, so a dataset can filter or keep them). Each row holds the
    structured question (subtype + parameters) next to its text, so the pair is unambiguous."""
    fams = []
    for les in findings.lesions:
        fam = _fam_of(les.organ)
        if fam and fam not in fams:
            fams.append(fam)
    present = [o.name for o in findings.organs if o.status != Status.absent]
    core = [o for o in ("liver", "spleen", "pancreas", "kidney_left", "kidney_right", "gallbladder") if o in present]
    segs: list[str] = []
    for les in findings.lesions:
        for s in les.segments:
            if s.startswith("liver_segment_") and s not in segs:
                segs.append(s)
    lesion_organs = fams or ["liver"]
    plan: list[Question] = []
    for name, spec in SUBTYPES.items():
        p = set(spec.params)
        if name in ("organ HU measurement", "organ volume measurement", "organ enlargement", "tumor burden percentage"):
            plan += [Question(subtype=name, organ=o) for o in core]
        elif name in ("kidney cyst existence", "kidney lesion existence", "kidney tumor existence"):
            plan.append(Question(subtype=name, organ="kidney"))
        elif name == "lesion existence":
            plan += [Question(subtype=name, organ=o) for o in lesion_organs if o not in ("liver", "pancreas", "kidney", "colon")]
        elif name == "organ HU ratio":
            plan += [Question(subtype=name, organs=pair) for pair in (("liver", "spleen"), ("pancreas", "spleen"))]
        elif name == "multi-organ lesion burden comparison":
            pair = tuple(lesion_organs[:2]) if len(lesion_organs) >= 2 else ("liver", "kidney")
            plan.append(Question(subtype=name, organs=pair))
        elif name == "organ aggregation":
            plan.append(Question(subtype=name, organs=("kidney_left", "kidney_right"), measure="volume"))
        elif name == "inter-segment comparison":
            if len(segs) >= 2:
                plan.append(Question(subtype=name, organ="liver", segments=tuple(segs[:2])))
        elif name == "lesion count by location":
            plan += [Question(subtype=name, organ="liver", location=s) for s in segs[:2]]
        elif "organ" in p:
            plan += [Question(subtype=name, organ=o) for o in lesion_organs]
        else:
            plan.append(Question(subtype=name))
    rows = []
    for i, q in enumerate(plan, start=1):
        spec = SUBTYPES[q.subtype]
        a = answer(findings, q)
        rows.append({
            "qid": f"q{i:03d}", "subtype": spec.name, "group": spec.group, "question": _qa_text(spec, q),
            "params": q.model_dump(exclude_defaults=True, exclude={"text"}), "status": a.status,
            "answer": None if a.answer is None else a.answer, "unit": a.unit, "answer_type": a.answer_type,
            "finding_ids": list(a.finding_ids), "rule": a.rule, "explanation": a.explanation, "reason": a.reason,
        })
    return rows
