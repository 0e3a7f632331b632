"""DICOM SEG + SR (TID 1500) + FHIR outputs of an analyzed DICOM case.

    case = agent.case.analyze(ct_dicom_folder, masks, dicom_out=True)   # the SEG is built here, from the masks
    write_dicom_outputs(case, out_dir, report_text=...)   # out/dicom/seg.dcm, out/dicom/sr.dcm, out/fhir_bundle.json

Data flow stays one way: the SEG's voxels are the masks perception measured (``seg.build_seg``, called
by ``agent.case.analyze`` while the masks are in memory); the SR (``sr.build_sr``) and the FHIR Bundle
(``fhir.build_bundle``) are built from Findings and the SEG's headers only. A NIfTI CT has no DICOM
UIDs to reference and is refused (``DicomOutputError``, an InputError: CLI exit 2).

Needs the ``dicom-out`` extra (highdicom, fhir.resources): ``pip install 'radagent[dicom-out]'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .seg import DicomOutputError, SegOutput

SEG_FILE = "dicom/seg.dcm"
SR_FILE = "dicom/sr.dcm"
FHIR_FILE = "fhir_bundle.json"

__all__ = [
    "FHIR_FILE",
    "SEG_FILE",
    "SR_FILE",
    "DicomOutputError",
    "SegOutput",
    "dicom_output_files",
    "require_extra",
    "write_dicom_outputs",
]


def require_extra() -> None:
    """DicomOutputError naming the extra when highdicom or fhir.resources is not installed."""
    import importlib.util

    missing = [m for m in ("highdicom", "fhir.resources") if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise DicomOutputError(f"DICOM output needs {', '.join(missing)} (expected the dicom-out extra: "
                               "pip install 'radagent[dicom-out]'), found it missing")


def dicom_output_files(case, report_text: str | None = None) -> dict[str, bytes]:
    """{relative path: bytes} of the SEG, the SR and the FHIR Bundle of ``case`` (an AnalyzedCase
    analyzed with ``dicom_out=True``)."""
    seg = getattr(case, "dicom_seg", None)
    if seg is None:
        raise DicomOutputError("DICOM output: the case carries no SEG (expected a DICOM CT analyzed with "
                               "dicom_out=True / --dicom-out; a case loaded from findings.json has no masks left "
                               "to write)")
    from io import BytesIO

    from .fhir import build_bundle
    from .sr import build_sr

    sr = build_sr(case.findings, seg)
    buf = BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    bundle = build_bundle(case.findings, seg, report_text)
    return {SEG_FILE: seg.to_bytes(), SR_FILE: buf.getvalue(),
            FHIR_FILE: (json.dumps(bundle, indent=1) + "\n").encode()}


def write_dicom_outputs(case, out_dir: Path, *, report_text: str | None = None) -> dict[str, Path]:
    """Write out_dir/dicom/seg.dcm, out_dir/dicom/sr.dcm and out_dir/fhir_bundle.json (each file
    whole: written to a temporary name, then renamed); returns {"seg": .., "sr": .., "fhir": ..}."""
    files = dicom_output_files(case, report_text)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    tmps = []
    for key, rel in (("seg", SEG_FILE), ("sr", SR_FILE), ("fhir", FHIR_FILE)):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(files[rel])
        tmps.append((tmp, target))
        written[key] = target
    for tmp, target in tmps:
        os.replace(tmp, target)
    return written
