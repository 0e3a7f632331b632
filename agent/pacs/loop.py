"""One study through the loop: retrieve (WADO-RS) -> analyze -> write findings + DICOM SEG + SR -> store (STOW-RS).

Which series is analyzed: the study's one CT image series (several are refused, listed, unless one is named).
Its masks: a DICOM SEG stored with the study that references that CT series and was not written by radagent
(Manufacturer ``radagent``: our own earlier output is never read back as input). Without one the CT is segmented
with the analyze defaults; where segmentation is not installed that is said, naming the study and the series.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agent.pacs.client import PacsClient, PacsError, check_uid

OURS = "radagent"  # the Manufacturer radagent writes into its SEG and SR (perception.dicom_out)


@dataclass
class SeriesInfo:
    uid: str
    modality: str
    folder: Path
    n_instances: int
    manufacturer: str = ""
    referenced_series: set[str] = field(default_factory=set)  # SEG: the image series it segments


@dataclass
class StudyResult:
    study_uid: str
    ct_series: str
    masks: str               # "stored SEG <uid>" or "segmented (<backends>)"
    out_dir: Path            # findings.json, findings.md, key images, and the DICOM outputs
    stored: list[str]        # SOP Instance UIDs stored back with STOW-RS
    n_lesions: int
    n_organs: int


def describe_series(folders: dict[str, Path]) -> dict[str, SeriesInfo]:
    """Modality, manufacturer and (for SEG) the referenced series of each retrieved series (headers only)."""
    import pydicom

    out: dict[str, SeriesInfo] = {}
    for uid, folder in folders.items():
        files = sorted(folder.glob("*.dcm"))
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        refs: set[str] = set()
        for f in files if ds.get("Modality") == "SEG" else []:
            seg = pydicom.dcmread(f, stop_before_pixels=True)
            refs |= {str(it.get("SeriesInstanceUID", "")) for it in seg.get("ReferencedSeriesSequence", []) or []}
        out[uid] = SeriesInfo(uid, str(ds.get("Modality", "")), folder, len(files), str(ds.get("Manufacturer", "")),
                              refs)
    return out


def choose_ct(study_uid: str, series: dict[str, SeriesInfo], ct_series: str | None = None) -> SeriesInfo:
    cts = [s for s in series.values() if s.modality == "CT"]
    if ct_series is not None:
        uid = check_uid(ct_series, "CT series UID")
        if uid not in series:
            raise PacsError(f"study {study_uid}: series {uid} not found; it holds {sorted(series)}")
        if series[uid].modality != "CT":
            raise PacsError(f"study {study_uid}: series {uid} is {series[uid].modality or 'no modality'}, expected CT")
        return series[uid]
    if not cts:
        found = ", ".join(f"{s.uid} ({s.modality})" for s in series.values())
        raise PacsError(f"study {study_uid}: expected a CT series, found none ({found})")
    if len(cts) > 1:
        raise PacsError(f"study {study_uid}: {len(cts)} CT series ({', '.join(f'{s.uid}: {s.n_instances} images' for s in cts)}); "
                        "name the one to analyze with --series")
    return cts[0]


def stored_seg(study_uid: str, series: dict[str, SeriesInfo], ct: SeriesInfo) -> Path | None:
    """The one DICOM SEG file of the study that segments ``ct`` (not written by radagent); None when there is none."""
    segs = [s for s in series.values()
            if s.modality == "SEG" and ct.uid in s.referenced_series and OURS not in s.manufacturer.lower()]
    files = [f for s in segs for f in sorted(s.folder.glob("*.dcm"))]
    if len(files) > 1:
        raise PacsError(f"study {study_uid}: {len(files)} DICOM SEG objects reference CT series {ct.uid} "
                        f"({', '.join(f.name for f in files)}); expected at most one")
    return files[0] if files else None


def analyze_study(client: PacsClient, study_uid: str, work: Path, *, ct_series: str | None = None,
                  segment=None, store: bool = True) -> StudyResult:
    """Retrieve the study into ``work/<study>/dicom``, analyze its CT, write ``work/<study>/out`` (findings and the
    DICOM SEG + SR), store SEG + SR back into the study. ``segment`` is the SegmentRequest used when no SEG is
    stored (None: the analyze defaults)."""
    from agent import case as case_service
    from radagent.errors import RadagentError

    uid = check_uid(study_uid, "study UID")
    base = work / uid
    dicom_dir, out_dir = base / "dicom", base / "out"
    shutil.rmtree(dicom_dir, ignore_errors=True)  # a retried study starts from what the PACS holds now
    folders = client.retrieve_study(uid, dicom_dir)
    series = describe_series(folders)
    ct = choose_ct(uid, series, ct_series)
    seg = stored_seg(uid, series, ct)
    if seg is not None:
        masks = f"stored SEG {seg.stem}"
        analyzed = case_service.analyze(ct.folder, seg, dicom_out=True)
    else:
        from perception.segment.request import SegmentRequest

        request = segment or SegmentRequest.build()
        masks = f"segmented ({', '.join(request.backends)})"
        try:
            analyzed = case_service.analyze(ct.folder, None, segment=request, dicom_out=True)
        except RadagentError as e:
            raise PacsError(f"study {uid}: no DICOM SEG stored for CT series {ct.uid}, so the CT must be segmented, "
                            f"and segmentation could not run: {e}") from None
    files = write_outputs(analyzed, out_dir)
    stored = client.store(files, uid) if store else []
    return StudyResult(uid, ct.uid, masks, out_dir, stored, len(analyzed.findings.lesions),
                       len(analyzed.findings.organs))


def write_outputs(analyzed, out_dir: Path) -> list[Path]:
    """findings.json/.md, key images, dicom/seg.dcm, dicom/sr.dcm and fhir_bundle.json (written atomically, a
    previous run's folder replaced); the DICOM files to store back."""
    from agent import case as case_service
    from perception.dicom_out import SEG_FILE, SR_FILE

    case_service.write(analyzed, None, out_dir, force=True, dicom_out=True)
    return [out_dir / SEG_FILE, out_dir / SR_FILE]
