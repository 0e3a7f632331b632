"""The typed question (subtype + parameters, the API form) and its answer."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from perception.registry import ALIASES, VESSELS
from reasoning.vqa.subtypes import canonical_subtype
from reasoning.vqa.vocabulary import canonical_organ, canonical_segment

UNITS = ("mm", "cm", "mL", "cm3", "mm3", "L", "HU", "deg", "%")
UNIT_SPELLINGS = {"ml": "mL", "cc": "mL", "cm³": "cm3", "mm³": "mm3", "l": "L", "hu": "HU", "degrees": "deg", "degree": "deg",
                  "°": "deg", "percent": "%", "cm^3": "cm3", "mm^3": "mm3"}
NEGATABLE = frozenset({"lesion completeness"})  # yes/no types whose handler answers the opposite question too


def canonical_vessel(name: str) -> str:
    """Vessel mask name as Findings spells it ('IVC', 'inferior vena cava' -> 'inferior_vena_cava')."""
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    n = ALIASES.get(n, n)
    if n in VESSELS:
        return n
    import difflib

    close = difflib.get_close_matches(n, sorted(VESSELS), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown vessel {name!r}{hint} (expected one of: {', '.join(sorted(VESSELS))})")


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
    vessel: str | None = Field(None, description="vessel mask name (aorta, inferior_vena_cava, superior_mesenteric_artery, ...)")
    threshold_mm: float | None = Field(None, description="lesion size threshold: the size compared against, mm")
    unit: str | None = Field(None, description="the unit the question asks for: mm, cm, mL, cm3, L, HU, deg, %")
    diagnosis: str | None = Field(None, description="the diagnosis asked about (metastasis, hcc, benign, malignant, ...)")
    negated: bool = Field(False, description="lesion completeness only: the question asks the opposite ('is it cut off by "
                                             "the scan edge?'), so yes and no swap")
    text: str | None = Field(None, description="the question text this was parsed from")

    @model_validator(mode="after")
    def _negatable(self) -> Question:
        if self.negated and self.subtype not in NEGATABLE:
            raise ValueError(f"negated applies to {', '.join(sorted(NEGATABLE))} only, not to {self.subtype!r}")
        return self

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

    @field_validator("vessel")
    @classmethod
    def _vessel(cls, v: str | None) -> str | None:
        return canonical_vessel(v) if v else None

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str | None) -> str | None:
        if not v:
            return None
        u = UNIT_SPELLINGS.get(v.strip().lower(), v.strip())
        if u not in UNITS:
            raise ValueError(f"unit {v!r}: expected one of {', '.join(UNITS)}")
        return u

    @field_validator("diagnosis")
    @classmethod
    def _diagnosis(cls, v: str | None) -> str | None:
        return " ".join(v.strip().lower().split()) or None if v else None

    @field_validator("threshold_mm")
    @classmethod
    def _threshold(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"threshold_mm {v!r}: expected a finite size > 0 mm")
        return v

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
    qualifier: Literal["exact", "lower_bound"] | None = Field(
        None, description="sizes: exact, or lower_bound when the lesion/organ is cut by the scan edge (the value is at least this)")

    @model_validator(mode="after")
    def _consistent(self) -> Answer:
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
        if self.unit == "slice" and self.answer_type != "choice" and self.subtype == "largest lesion slice":
            a = f"axial slice index {self.answer} (0-based)"  # the benchmark's index, never shown as an image number
        elif self.unit == "slice" and self.answer_type != "choice":
            a = f"slice {self.answer}"
        else:
            a = f"{self.answer}" + (f" {self.unit}" if self.unit and self.answer_type != "choice" else "")
        if self.answer_type == "choice":
            a += f" ({self.matched_option})"
        return f"{a} -- {self.explanation}"
