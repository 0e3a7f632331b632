"""The HTTP API's request and response models (what the OpenAPI schema shows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .settings import SESSION_ID_RE

CaseStatus = Literal["queued", "running", "done", "failed"]


class CaseInfo(BaseModel):
    """A case as the API shows it (no server paths)."""

    id: str
    status: CaseStatus
    source: Literal["upload", "path"]
    inputs: dict[str, str] = Field(description="role (ct, masks, class_map) -> upload file name or path in the data "
                                               "root; mask_label -> the structure named for a single mask file")
    created: str = Field(description="UTC, ISO 8601")
    error: str | None = None
    error_kind: Literal["input", "internal", "timeout"] | None = None
    n_lesions: int | None = None
    n_organs: int | None = None
    warnings: list[str] = []
    timings_s: dict[str, float] = {}


class CaseRecord(BaseModel):
    """case.json: the CaseInfo plus the server-side paths the analysis reads (never sent)."""

    model_config = ConfigDict(extra="forbid")

    info: CaseInfo
    paths: dict[str, str]
    display: dict[str, str] = Field(description="server path -> the name shown for it")
    mask_label: str | None = Field(None, description="what a single mask file holds (as radagent analyze --mask-label)")
    dicom_out: bool = Field(False, description="also write DICOM SEG + SR and the FHIR Bundle (as --dicom-out)")


class PathCaseRequest(BaseModel):
    """A case from files already on the server, inside its data root."""

    model_config = ConfigDict(extra="forbid")

    ct: str = Field(description="CT .nii/.nii.gz file or DICOM folder, relative to the data root (or absolute inside it)")
    masks: str = Field(description="folder of binary NIfTI masks, or a multilabel NIfTI")
    class_map: str | None = Field(None, description="JSON {label id: name} for a multilabel mask")
    mask_label: str | None = Field(None, description="what a single binary mask file holds, when its file name does not "
                                                     "say it (a registry name such as liver_lesion, lung_nodule, gtv; "
                                                     "as radagent analyze --mask-label)")
    dicom_out: bool = Field(False, description="also write out/dicom/seg.dcm (DICOM SEG of the masks), out/dicom/sr.dcm "
                                               "(TID 1500 measurement report) and out/fhir_bundle.json, served at "
                                               "GET /cases/{id}/dicom/{seg|sr|fhir}; needs a DICOM CT series "
                                               "(as radagent analyze --dicom-out)")

    @field_validator("mask_label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        return None if v is None else validate_mask_label(v)


def validate_mask_label(v: str) -> str:
    """The label as given, when the registry knows it (ValueError with "did you mean" otherwise)."""
    from perception.errors import MaskError
    from perception.masks import check_mask_label

    try:
        check_mask_label(v)
    except MaskError as e:
        raise ValueError(str(e)) from None
    return v


class LesionSummary(BaseModel):
    id: str
    organ: str | None
    kind: str
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    mean_hu: float
    segments: list[str]
    key_image_url: str | None


class AskRequest(BaseModel):
    """A question as text (free or multiple choice) or as a subtype with parameters."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(None, max_length=4000)
    choices: list[str] | None = Field(None, max_length=10, description="multiple-choice options 'A) ...'")
    subtype: str | None = Field(None, description="DeepTumorVQA subtype name instead of question text")
    params: dict[str, str | list[str]] = Field({}, description="parameters of the subtype (organ, lesion_id, organs, ...)")
    mode: Literal["auto", "deterministic", "agent"] = Field(
        "auto", description="auto: the agent when the server has --llm, else deterministic")

    @model_validator(mode="after")
    def _one(self) -> "AskRequest":
        if (self.question is None) == (self.subtype is None):
            raise ValueError("give either 'question' or 'subtype' (with 'params'), not both and not neither")
        if self.params and self.subtype is None:
            raise ValueError("'params' needs 'subtype'")
        return self


class VerifyRequest(BaseModel):
    """A report text (plain or markdown) whose claims are checked against the case's findings."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000, description="the report text, dictated or LLM-written")


class AskResponse(BaseModel):
    mode: Literal["deterministic", "agent"]
    text: str = Field(description="the answer in one line for people")
    answer: dict[str, Any] | None = Field(None, description="deterministic mode: the reasoning.vqa Answer object")
    note: str | None = Field(None, description="why the deterministic path answered although an agent was configured")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4000)
    session_id: str | None = Field(None, description="continue this conversation (from the 'session' event)")

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str | None) -> str | None:
        if v is not None and not SESSION_ID_RE.fullmatch(v):
            raise ValueError("expected 32 lowercase hex characters")
        return v



class ViewerInfo(BaseModel):
    """What the web page's viewer loads for a case (GET /cases/{id}/viewer)."""

    volumes: dict[str, str] = Field(description="ct, organs, lesions: URLs of gzip NIfTI volumes on the CT's grid")
    sizes_bytes: dict[str, int] = Field(description="size of each volume as sent")
    organs: list[dict[str, Any]] = Field(description="organ label volume legend: label, name, status")
    lesions: list[dict[str, Any]] = Field(description="lesion label volume legend: label, id (findings order)")
    windows: dict[str, tuple[float, float]] = Field(description="window presets: name -> (width, level) in HU")
    affine: list[list[float]] = Field(description="voxel index -> RAS+ mm of the CT (Findings.study.affine)")
    shape: tuple[int, int, int]
    axial_axis: int


class CompareRequest(BaseModel):
    """POST /cases/{id}/compare: the prior studies of the same patient, as case ids of this server."""

    model_config = ConfigDict(extra="forbid")

    priors: list[str] = Field(min_length=1, max_length=8,
                              description="case ids of the prior studies, oldest first (each analyzed, status done)")
