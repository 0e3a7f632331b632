"""Findings: the typed, versioned artifact perception hands downstream (findings.json).

This is the only perception module that reasoning/, templates/ and agent/ import. Every
measurement carries its unit in the field name (``_mm``, ``_ml``, ``_hu``, ``_deg``); a value
that could not be measured is ``None`` together with a status saying why, never 0.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1.3.0"
# every version this reader accepts; older files are upgraded on reading (see Findings._upgrade)
KNOWN_VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.3.0")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Status(str, Enum):
    measured = "measured"
    truncated_by_fov = "truncated_by_fov"
    absent = "absent"
    not_found = "not_found"
    failed = "failed"


class Attenuation(str, Enum):
    hypo = "hypoattenuating"
    iso = "isoattenuating"
    hyper = "hyperattenuating"


class ContactCategory(str, Enum):
    none = "none"
    abutment = "abutment"
    encasement = "encasement"


class Check(_Model):
    name: str
    passed: bool
    detail: str


class SliceRef(_Model):
    """An axial slice as a radiologist opens it (never a bare 0-based index in any text)."""

    index: int = Field(ge=0, description="0-based voxel index along the axial axis (for programs, not for text)")
    image_number: int = Field(ge=1, description="DICOM: InstanceNumber of the slice; NIfTI: 1-based slice number "
                                               "along the axial axis in file order")
    table_position_mm: float = Field(description="position of the slice centre along world S-I (RAS z, mm)")
    sop_instance_uid: str | None = Field(None, description="DICOM input: SOP Instance UID of the slice")
    instance_number: int | None = Field(None, description="DICOM input: InstanceNumber of the slice")


# lesion kinds whose search covers lesions of every kind ("tumor" or "cyst" masks are annotated for that kind only)
GENERAL_LESION_KINDS = ("lesion", "nodule")


class LesionSearch(_Model):
    """Whether lesions were searched for in one organ, and by what. 'No lesion' is only ever said of
    a searched organ, naming what searched it."""

    organ: str
    searched: bool
    by: list[str] = Field([], description="what searched it: 'mask <file or label>' or 'model <backend>:<task>'")
    reason: str | None = Field(None, description="why not searched (no lesion mask or model covers this organ)")
    kinds: list[str] = Field([], description="lesion kinds the searches looked for, from the mask names (lesion, tumor, "
                                             "cyst, nodule, ...): a search for cysts alone does not exclude a tumour")

    def covers(self, kind: str | None = None) -> bool:
        """Whether this search can ground an absence: of any lesion (``kind`` None: only a search for lesions
        of every kind, i.e. kinds holding 'lesion' or, for the lungs, 'nodule'), or of one ``kind`` (a
        search for that kind, or for lesions of every kind). Empty kinds: recorded before kinds existed,
        read as a search for lesions of every kind."""
        if not self.searched:
            return False
        if not self.kinds or any(k in GENERAL_LESION_KINDS for k in self.kinds):
            return True
        return kind is not None and kind in self.kinds


class IgnoredMask(_Model):
    """A mask the user gave that radagent did not interpret (unknown name, label not in the class map)."""

    name: str = Field(description="the name as given (file stem or class-map entry)")
    source: str
    reason: str
    did_you_mean: list[str] = []


class Plausibility(_Model):
    """Whether an organ mask's measurements are plausible for that organ (ranges are data, with sources);
    nothing is derived from an implausible organ."""

    plausible: bool
    checks: list[Check]


class ContrastPhase(_Model):
    phase: Literal["non_contrast", "arterial", "portal_venous", "delayed", "contrast_unspecified", "unknown"]
    source: Literal["header", "estimated", "unknown"]
    aorta_hu: float | None = Field(None, description="median HU in the eroded aorta mask")
    portal_vein_hu: float | None = Field(None, description="median HU in the eroded portal/splenic vein mask")
    rule: str = Field(description="the rule or header field that decided the phase")


class Study(_Model):
    source: str
    source_format: Literal["nifti", "dicom"]
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str = Field(description="axis codes of the voxel axes (nibabel convention, e.g. RAS, LPS)")
    affine: list[list[float]] = Field(description="voxel index -> RAS+ world mm")
    axial_axis: int = Field(description="voxel axis closest to world superior-inferior")
    slice_thickness_mm: float
    modality: str
    modality_checks: list[Check]
    contrast_phase: ContrastPhase
    warnings: list[str] = []


class Flag(_Model):
    name: str = Field(description="e.g. splenomegaly, hepatic_steatosis")
    status: Literal["positive", "negative", "not_assessed"]
    value: float | None
    unit: str
    threshold: float
    rule: str
    source: str
    reason: str | None = None


class Organ(_Model):
    name: str
    status: Status
    mask: str = Field(description="mask (file or label) the organ was measured from")
    voxel_count: int
    volume_ml: float | None = Field(description="null unless status is measured")
    mean_hu: float | None
    median_hu: float | None
    sd_hu: float | None
    touches_edges: list[str] = Field(description="scan edges the mask touches, e.g. 'axis2_max'")
    lesion_ids: list[str] = []
    flags: list[Flag] = []
    note: str | None = None
    imaged_volume_ml: float | None = Field(None, description="volume of the imaged part (the mask's voxels), always set "
                                                             "for a non-empty mask; volume_ml is the complete organ")
    hu_region: str | None = Field(None, description="the voxels the HU statistics come from (e.g. the mask eroded by "
                                                    "1 voxel, minus lesions)")
    plausibility: Plausibility | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Organ":
        if self.status == Status.measured and self.volume_ml is None:
            raise ValueError(f"organ {self.name}: status measured but no volume_ml")
        if self.status != Status.measured and self.volume_ml is not None:
            raise ValueError(f"organ {self.name}: volume_ml given but status is {self.status.value} (only a completely "
                             "imaged, measured organ has a volume)")
        return self


class SegmentShare(_Model):
    name: str
    fraction: float = Field(ge=0.0, le=1.0)
    source: Literal["mask", "computed"] = "mask"


class VesselContact(_Model):
    vessel: str
    max_angle_deg: float = Field(ge=0.0, le=360.0)
    contact_length_mm: float = Field(ge=0.0)
    category: ContactCategory
    slice_of_max: int | None = Field(None, description="axial slice index of the maximum angle")
    method: str = Field(description="cross-section method (axial or vessel-perpendicular) and tolerance")


class StagingHint(_Model):
    system: str = Field(description="e.g. 'AJCC8 pancreas T', 'NCCN pancreas resectability'")
    category: str = Field(description="the stage/category, or 'not assessed'")
    rule: str = Field(description="the rule that fired, or why it was not assessed")


class LesionProvenance(_Model):
    """Where a lesion's mask came from: a mask file the user gave (path and SHA-256), or a model (backend, task,
    version, checksums of the weights it loaded)."""

    kind: Literal["mask", "model"]
    mask_file: str | None = Field(None, description="mask file path as given (kind 'mask')")
    mask_sha256: str | None = Field(None, description="SHA-256 of that file; null when it could not be read")
    label: int | None = Field(None, description="label id in a multilabel file or model output")
    backend: str | None = Field(None, description="segmentation backend (kind 'model'): totalseg, unit, ...")
    task: str | None = Field(None, description="the backend's task or model name")
    model_version: str | None = Field(None, description="version of the backend package or model")
    weights_sha256: list[str] = Field([], description="SHA-256 of each checkpoint the task loaded (crop model included)")


class ModelWeights(_Model):
    folder: str
    trainer: str | None = None
    configuration: str | None = None
    sha256: str | None = Field(None, description="checkpoint SHA-256; null when the file was not there to hash")


class SegmentationRun(_Model):
    """One task of one segmentation backend in this study: ran (seconds) or skipped (why)."""

    backend: str
    task: str
    version: str
    status: Literal["ran", "skipped"]
    seconds: float
    mode: str | None = None
    device: str | None = None
    weights: list[ModelWeights] = []
    reason: str | None = Field(None, description="why the task was skipped")


class Segmentation(_Model):
    """Models that segmented this CT (absent when the user gave the masks)."""

    runs: list[SegmentationRun]
    seconds: float = Field(description="sum of the runs' seconds")


class Lesion(_Model):
    id: str
    organ: str | None = Field(description="host organ (mask name), null if no organ overlaps")
    kind: str = Field(description="lesion kind from the mask name: lesion, tumor, cyst, pdac, pnet, nodule")
    mask: str = Field(description="source lesion mask name")
    component_label: int = Field(description="26-connected component label within that mask")
    status: Status
    voxel_count: int
    centroid_mm: tuple[float, float, float] = Field(description="RAS+ world coordinates")
    centroid_voxel: tuple[float, float, float]
    bbox_voxel: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] = Field(description="[start, stop) per axis")
    volume_ml: float
    long_axis_mm: float = Field(description="RECIST 1.1 longest axial diameter")
    short_axis_mm: float = Field(description="longest diameter perpendicular to the long axis on its slice")
    axial_slice: int = Field(description="index along the axial axis of the long-axis slice")
    long_axis_endpoints_voxel: tuple[tuple[float, float, float], tuple[float, float, float]]
    short_axis_endpoints_voxel: tuple[tuple[float, float, float], tuple[float, float, float]]
    max_diameter_3d_mm: float = Field(description="3D Feret diameter (not RECIST)")
    mean_hu: float
    median_hu: float
    sd_hu: float
    organ_mean_hu: float | None = Field(description="host parenchyma: organ mask minus all lesions")
    hu_difference: float | None = Field(description="lesion mean minus host mean, HU")
    attenuation: Attenuation | None
    attenuation_term: str | None = Field(description="'enhancing' words when contrast was given, else 'attenuating'")
    components: list[str] = Field(description="cystic / fat / calcified flags with their rule")
    segments: list[str] = Field(description="sub-segments holding > 10 % of the lesion, largest first")
    segment_shares: list[SegmentShare]
    laterality: Literal["left", "right", "midline"] | None = None
    kidney_pole: Literal["upper", "interpolar", "lower"] | None = None
    vessel_contacts: list[VesselContact]
    adjacent_organs: list[str]
    touches_edges: list[str] = []
    recist_measurable: bool
    recist_rule: str
    staging: list[StagingHint]
    key_image: str | None = Field(None, description="PNG (relative to findings.json): axial slice through the long axis, "
                                                    "contour and axes drawn, patient right on image left")
    size_qualifier: Literal["complete", "lower_bound"] = Field(
        "complete", description="lower_bound when the lesion reaches the scan edge: its sizes are at least these")
    key_slice: SliceRef | None = Field(None, description="the long-axis slice as a radiologist opens it")
    max_area_slice: SliceRef | None = Field(
        None, description="the axial slice where the lesion's cross-sectional area is largest (first of equal areas); "
                          "null in files older than 1.2.0")
    nodule_type: Literal["solid", "part_solid", "ground_glass"] | None = Field(
        None, description="lung nodules only: by attenuation (rule in the registry)")
    nodule_type_rule: str | None = Field(None, description="lung nodules: the typing rule that fired, or why not typed")
    laterality_rule: str | None = Field(None, description="how laterality was decided (organ mask, lobe mask, midline "
                                                          "geometry), or why it was not")
    attenuation_reason: str | None = Field(None, description="why attenuation was not called (no host, host implausible "
                                                             "or fatty), null when it was")
    composition_rule: str | None = Field(None, description="which composition rules (fat, cystic, calcified) applied to "
                                                           "this lesion's host and why the others did not")
    provenance: LesionProvenance | None = Field(None, description="mask file or model this lesion came from; null in "
                                                                  "files older than 1.3.0")
    detection_score: float | None = Field(None, description="the model's detection probability, when it gives one")
    type_probabilities: dict[str, float] | None = Field(None, description="the model's lesion type probabilities, "
                                                                          "when it gives them")

    @model_validator(mode="after")
    def _consistent(self) -> "Lesion":
        if (self.size_qualifier == "lower_bound") != bool(self.touches_edges):
            raise ValueError(f"lesion {self.id}: size_qualifier {self.size_qualifier!r} but touches_edges "
                             f"{self.touches_edges} (lower_bound exactly when the lesion reaches the scan edge)")
        if self.key_slice is not None and self.key_slice.index != self.axial_slice:
            raise ValueError(f"lesion {self.id}: key_slice.index {self.key_slice.index} differs from axial_slice "
                             f"{self.axial_slice}")
        return self


class MeasurementSettings(_Model):
    min_lesion_volume_mm3: float
    min_lesion_voxels: int
    attenuation_margin_hu: float
    contact_tolerance_mm: float
    adjacency_mm: float
    segment_min_fraction: float
    geometry_tolerance_mm: float


class MaskInfo(_Model):
    name: str
    source: str
    category: str
    voxel_count: int


class Findings(_Model):
    schema_version: str = SCHEMA_VERSION
    radagent_version: str
    study: Study
    organs: list[Organ]
    lesions: list[Lesion]
    staging: list[StagingHint] = Field(description="study-level hints (N, M: never invented)")
    masks: list[MaskInfo]
    dropped_components: int = Field(description="lesion components below the minimum size, not reported as lesions")
    settings: MeasurementSettings
    lesion_search: list[LesionSearch] = Field([], description="per organ: searched for lesions (by which mask or "
                                                              "model) or not; empty in files older than 1.1.0")
    ignored_masks: list[IgnoredMask] = []
    segmentation: Segmentation | None = Field(None, description="models run on this CT, versions, timings (null: the "
                                                                "masks were given, or a file older than 1.3.0)")

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data):
        """Files of an older known version load: fields they lack get what they implied."""
        if not isinstance(data, dict):
            return data
        version = data.get("schema_version", SCHEMA_VERSION)
        if version not in KNOWN_VERSIONS:
            raise ValueError(f"findings schema_version {version!r}: expected one of {', '.join(KNOWN_VERSIONS)} "
                             "(a newer radagent wrote this file?)")
        if version == "1.0.0":
            # the imaged volume of each organ, which 1.1.0 records so that readers never re-derive geometry
            a = (data.get("study") or {}).get("affine")
            if a:
                det = abs(a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                          + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
                data = {**data, "organs": [
                    {**o, "imaged_volume_ml": round(o.get("voxel_count", 0) * det / 1000.0, 3) if o.get("voxel_count") else None}
                    if isinstance(o, dict) and "imaged_volume_ml" not in o else o for o in data.get("organs", [])]}
            lesions = []
            for les in data.get("lesions", []):
                if isinstance(les, dict) and "size_qualifier" not in les:
                    les = {**les, "size_qualifier": "lower_bound" if les.get("touches_edges") else "complete"}
                lesions.append(les)
            data = {**data, "lesions": lesions}
        # 1.0.0 and 1.1.0 lack Lesion.max_area_slice: it stays None (the slice of largest area is unknown for them)
        # before 1.3.0: Lesion.provenance / detection_score / type_probabilities and Findings.segmentation stay None
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Findings":
        ids = [les.id for les in self.lesions]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"lesion ids must be unique; repeated: {dup}")
        known = set(ids)
        for o in self.organs:
            missing = [i for i in o.lesion_ids if i not in known]
            if missing:
                raise ValueError(f"organ {o.name}: lesion_ids {missing} name no lesion")
        ax = self.study.axial_axis
        for les in self.lesions:
            lo, hi = les.bbox_voxel[ax]
            if les.max_area_slice is not None and not lo <= les.max_area_slice.index < hi:
                raise ValueError(f"lesion {les.id}: max_area_slice.index {les.max_area_slice.index} outside the lesion's "
                                 f"axial extent [{lo}, {hi})")
        organs = [s.organ for s in self.lesion_search]
        if len(organs) != len(set(organs)):
            raise ValueError("lesion_search: one entry per organ expected")
        return self

    def search_of(self, organ: str) -> LesionSearch | None:
        """How lesions were searched for in ``organ`` (None: nothing recorded, absence cannot be stated)."""
        return next((s for s in self.lesion_search if s.organ == organ), None)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_file(cls, path: str | Path) -> "Findings":
        return cls.model_validate_json(Path(path).read_text())

    def lesion(self, lesion_id: str) -> Lesion:
        for les in self.lesions:
            if les.id == lesion_id:
                return les
        raise KeyError(f"no lesion {lesion_id!r}; lesions are {[l.id for l in self.lesions]}")

    def organ(self, name: str) -> Organ | None:
        return next((o for o in self.organs if o.name == name), None)


def json_schema() -> dict:
    return Findings.model_json_schema()
