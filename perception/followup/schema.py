"""Comparison: the typed, versioned artifact of a follow-up reading (comparison.json).

Made by ``perception.followup.compare.compare`` from ``radagent analyze`` output folders (priors and the
current study); read by reasoning/templates (questions over time, the COMPARISON report section) without
touching voxels. Time points are numbered 0..n-1 in time order: the priors as given (oldest first), the
current study last. Every value that could not be established is ``None`` with a reason, never 0.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1.0.0"
KNOWN_VERSIONS = ("1.0.0",)

LesionState = Literal["persisting", "new", "disappeared", "not_assessable"]
Response = Literal["CR", "PR", "SD", "PD", "non-CR/non-PD", "NE", "not_applicable"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyRef(_Model):
    """One time point: the analyze output folder and what it was made from."""

    time_point: int = Field(ge=0, description="0 = the oldest prior; the current study is the last")
    role: Literal["prior", "current"]
    analyze_dir: str = Field(description="the `radagent analyze` output folder")
    findings_sha256: str = Field(description="SHA-256 of its findings.json")
    ct: str = Field(description="the CT the findings were measured on (path as recorded by analyze)")
    masks: str | None = Field(None, description="the masks given to analyze (null: segmented by a model)")
    study_date: date | None = Field(None, description="null when not known (NIfTI carries no date; none was given)")
    study_date_source: str | None = Field(None, description="where the date comes from (user, DICOM StudyDate)")
    n_lesions: int = Field(ge=0)


class RegistrationMetric(_Model):
    """One quality measure of a registration, with the threshold it is held to (if any)."""

    name: str = Field(description="e.g. 'dice liver', 'mean surface distance liver', 'fov overlap', 'ncc'")
    value: float | None = Field(description="null when it could not be measured (reason says why)")
    unit: str = Field(description="'' for ratios, 'mm' for distances")
    threshold: float | None = None
    comparison: Literal[">=", "<="] | None = None
    passed: bool | None = Field(None, description="null when not held to a threshold or not measured")
    reason: str | None = None


class Registration(_Model):
    """Current CT registered to one prior CT (moving = current, fixed = prior)."""

    fixed_time_point: int
    moving_time_point: int
    method: str = Field(description="library, transform stages, metric, optimizer, pyramid")
    status: Literal["ok", "refused"]
    reason: str | None = Field(None, description="why refused (null when ok)")
    transform_current_to_prior: list[list[float]] | None = Field(
        None, description="4x4 matrix mapping current RAS+ world mm to prior RAS+ world mm (rigid then affine); "
                          "null when refused")
    rigid_rotation_deg: float | None = Field(None, description="rotation angle of the rigid stage")
    rigid_translation_mm: tuple[float, float, float] | None = None
    quality: list[RegistrationMetric] = []
    seconds: float = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Registration:
        if self.status == "refused" and not self.reason:
            raise ValueError("a refused registration needs a reason")
        if self.status == "ok" and self.transform_current_to_prior is None:
            raise ValueError("an ok registration needs its transform")
        return self


class TimePointMeasurement(_Model):
    """A tracked lesion at one time point (lesion_id null: not seen there, see the state)."""

    time_point: int
    lesion_id: str | None
    status: Literal["seen", "absent", "not_assessable"] = Field(
        "seen", description="absent: not seen where its organ was searched and the location imaged (an established "
                            "absence, 0 mm for RECIST); not_assessable: see reason")
    reason: str | None = Field(None, description="why absent / not assessable")
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    volume_ml: float | None = None
    size_qualifier: Literal["complete", "lower_bound"] | None = Field(
        None, description="lower_bound: the lesion reaches the scan edge, sizes are at least these")
    centroid_mm: tuple[float, float, float] | None = Field(None, description="RAS+ world mm of that study")
    match_confidence: float | None = Field(None, ge=0.0, le=1.0, description="of the match to the current lesion")
    match_distance_mm: float | None = Field(None, description="registered centroid distance to the current lesion")
    match_overlap: float | None = Field(None, ge=0.0, le=1.0,
                                        description="Dice of the registered current lesion with this one")


class Change(_Model):
    """Current minus a reference time point."""

    reference_time_point: int
    long_axis_abs_mm: float | None = None
    long_axis_pct: float | None = None
    volume_abs_ml: float | None = None
    volume_pct: float | None = None
    reason: str | None = Field(None, description="why some value is null, or why it is a bound")


class DoublingTime(_Model):
    days: float | None = Field(description="volume doubling time, ln 2 * dt / ln(V2/V1); null with reason")
    from_time_point: int | None = None
    to_time_point: int | None = None
    formula: str = "VDT = ln(2) * (t2 - t1) / ln(V2 / V1)"
    reason: str | None = None


class TrackedLesion(_Model):
    tracking_id: str = Field(description="stable within this comparison, e.g. 'T1'")
    tracking_uid: str = Field(description="DICOM-style UID (2.25.<int>): the one an earlier comparison.json in a "
                                          "prior's folder gave this lesion, else derived from the first sighting "
                                          "(findings SHA-256 + lesion id); stays the same across time points")
    organ: str | None
    state: LesionState
    state_reason: str
    match_confidence: float | None = Field(None, ge=0.0, le=1.0,
                                           description="confidence of the match to the most recent prior")
    measurements: list[TimePointMeasurement] = Field(description="one per time point, oldest first")
    change_from_prior: Change | None = Field(None, description="current vs the most recent prior")
    change_from_baseline: Change | None = Field(None, description="current vs the oldest time point")
    doubling_time: DoublingTime | None = None

    def at(self, time_point: int) -> TimePointMeasurement | None:
        return next((m for m in self.measurements if m.time_point == time_point), None)


class RecistLesion(_Model):
    tracking_id: str
    organ: str | None
    role: Literal["target", "non_target"]
    why: str = Field(description="the rule that made it a target / non-target")
    diameters_mm: list[float | None] = Field(description="long axis per time point (null: not seen / not assessable)")


class RecistRule(_Model):
    rule: str = Field(description="short name, e.g. 'PD: +20 % and +5 mm from nadir'")
    text: str = Field(description="the rule with the numbers it fired on")


class Recist(_Model):
    """RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247) from the tracked lesions."""

    version: str = "RECIST 1.1"
    baseline_time_point: int
    targets_by: Literal["rules", "user"]
    targets: list[RecistLesion]
    non_targets: list[RecistLesion]
    sum_of_diameters_mm: list[float | None] = Field(description="sum of target diameters per time point")
    baseline_sum_mm: float | None
    nadir_sum_mm: float | None = Field(description="smallest sum before the current time point (baseline included)")
    nadir_time_point: int | None
    current_sum_mm: float | None
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    change_from_nadir_mm: float | None
    target_response: Response
    non_target_response: Response
    new_lesions: list[str] = Field([], description="tracking ids of new lesions")
    overall_response: Response
    rules_fired: list[RecistRule]
    not_assessable_reason: str | None = None


class Comparison(_Model):
    schema_version: str = SCHEMA_VERSION
    radagent_version: str
    studies: list[StudyRef] = Field(description="time points, oldest first; the current study is the last")
    registrations: list[Registration] = Field(description="current to each prior")
    lesions: list[TrackedLesion]
    recist: Recist | None = Field(description="null when it cannot be assessed (reason in warnings)")
    warnings: list[str] = []
    matching: dict[str, float] = Field(
        default_factory=dict, description="matching settings: max centroid distance mm, confidence scale mm")

    @model_validator(mode="before")
    @classmethod
    def _version(cls, data):
        if isinstance(data, dict):
            v = data.get("schema_version", SCHEMA_VERSION)
            if v not in KNOWN_VERSIONS:
                raise ValueError(f"comparison schema_version {v!r}: expected one of {', '.join(KNOWN_VERSIONS)}")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Comparison:
        tps = [s.time_point for s in self.studies]
        if tps != list(range(len(tps))) or len(tps) < 2:
            raise ValueError(f"studies: time points 0..n-1 (n >= 2) in order expected, found {tps}")
        if self.studies[-1].role != "current" or any(s.role != "prior" for s in self.studies[:-1]):
            raise ValueError("studies: the priors first, the current study last")
        ids = [t.tracking_id for t in self.lesions]
        if len(ids) != len(set(ids)):
            raise ValueError("tracking ids must be unique")
        return self

    @property
    def current(self) -> StudyRef:
        return self.studies[-1]

    @property
    def priors(self) -> list[StudyRef]:
        return self.studies[:-1]

    def tracked(self, tracking_id: str) -> TrackedLesion:
        for t in self.lesions:
            if t.tracking_id == tracking_id:
                return t
        raise KeyError(f"no tracked lesion {tracking_id!r}; tracked are {[t.tracking_id for t in self.lesions]}")

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_file(cls, path: str | Path) -> Comparison:
        return cls.model_validate_json(Path(path).read_text())


def json_schema() -> dict:
    return Comparison.model_json_schema()
