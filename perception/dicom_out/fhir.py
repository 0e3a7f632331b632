"""FHIR Bundle of a case's findings (fhir.resources, the R4B models: FHIR 4.3, the R4 family).

A ``collection`` Bundle: Patient (the DICOM Patient ID only), ImagingStudy (the CT study and series
UIDs), Device (radagent and its version), one BodyStructure per tracked lesion (identifier = its
tracking UID, morphology = lesion kind, location = host organ, SNOMED CT), one Observation per lesion
following mCODE TumorSize (LOINC 21889-1; components 33728-7 longest dimension = long axis and
33729-5 additional dimension = short axis, in UCUM mm; focus = the BodyStructure) and a
DiagnosticReport (status preliminary: an unverified machine draft) with the report text attached
and the Observations as results. Built from Findings and the SEG's headers (study, series, patient
id, tracking UIDs); nothing here reads voxels. Resource ids are derived from those UIDs, so the same
case gives the same Bundle.
"""

from __future__ import annotations

import base64
import uuid

from .. import __version__
from . import codes as C
from .seg import SegOutput

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
DICOM_UID = "urn:dicom:uid"
MCODE_TUMOR_SIZE = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-size"
TUMOR_SIZE = ("21889-1", "Size Tumor")
LONGEST_DIM = ("33728-7", "Size.maximum dimension in Tumor")
OTHER_DIM = ("33729-5", "Size additional dimension in Tumor")
REPORT_CODE = ("18748-4", "Diagnostic imaging study")
FHIR_VERSION = "4.3.0 (R4B)"


def _id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "\x1f".join(parts)))


def _coding(code) -> dict:
    system = {"SCT": SNOMED, "LN": LOINC, "UCUM": UCUM}.get(code.scheme_designator, code.scheme_designator)
    return {"system": system, "code": code.value, "display": code.meaning}


def _mm(value: float) -> dict:
    return {"value": value, "unit": "mm", "system": UCUM, "code": "mm"}


def _dicom_date(date: str | None) -> str | None:
    """The study date as a FHIR date (a DICOM StudyTime has no time zone, which a FHIR dateTime requires)."""
    if not date or len(date) < 8 or not date[:8].isdigit():
        return None
    return f"{date[:4]}-{date[4:6]}-{date[6:8]}"


def build_bundle(findings, seg: SegOutput, report_text: str | None = None) -> dict:
    """The FHIR Bundle (a dict of JSON) of ``findings``; every resource validated by fhir.resources."""
    from fhir.resources.R4B.bodystructure import BodyStructure
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.device import Device
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.imagingstudy import ImagingStudy
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient

    ds = seg.dataset
    study_uid = str(ds.StudyInstanceUID)
    series_uid = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    when = _dicom_date(str(ds.get("StudyDate", "") or ""))
    ids = {k: _id("radagent-fhir", study_uid, k) for k in ("patient", "study", "device", "report")}
    ref = {k: f"urn:uuid:{v}" for k, v in ids.items()}
    entries: list[tuple[str, object]] = []
    patient: dict = {"resourceType": "Patient", "id": ids["patient"]}
    pid = str(ds.get("PatientID", "") or "")
    if pid:
        patient["identifier"] = [{"value": pid, "system": "urn:dicom:patient-id"}]
    entries.append((ref["patient"], Patient.model_validate(patient)))
    entries.append((ref["device"], Device.model_validate({
        "resourceType": "Device", "id": ids["device"], "manufacturer": "radagent",
        "deviceName": [{"name": "radagent", "type": "manufacturer-name"}],
        "version": [{"value": __version__}]})))
    study = {"resourceType": "ImagingStudy", "id": ids["study"], "status": "available",
             "subject": {"reference": ref["patient"]},
             "identifier": [{"system": DICOM_UID, "value": f"urn:oid:{study_uid}"}],
             "series": [{"uid": series_uid, "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                                          "code": "CT"}}]}
    if when:
        study["started"] = when
    entries.append((ref["study"], ImagingStudy.model_validate(study)))
    obs_refs = []
    for les in findings.lesions:
        info = seg.segment_of_lesion(les.id)
        tuid = info.tracking_uid if info else C.tracking_uid(study_uid, les.id)
        bs_id, obs_id = _id("radagent-fhir-bodystructure", tuid), _id("radagent-fhir-observation", study_uid, les.id)
        bs: dict = {"resourceType": "BodyStructure", "id": bs_id, "patient": {"reference": ref["patient"]},
                    "identifier": [{"system": DICOM_UID, "value": f"urn:oid:{tuid}"},
                                   {"system": "urn:radagent:lesion-id", "value": les.id}],
                    "morphology": {"coding": [_coding(C.LESION_KIND_CODES.get(les.kind, C.codes.SCT.Lesion))],
                                   "text": les.kind},
                    "description": f"{les.id}: {les.kind}" + (f" in the {les.organ}" if les.organ else "")}
        if les.organ:
            code, side = C.structure_code(les.organ)
            bs["location"] = {"text": les.organ, **({"coding": [_coding(code)]} if code else {})}
            lat = C.LATERALITY.get(les.laterality) if les.laterality in C.LATERALITY else side
            if lat is not None:
                bs["locationQualifier"] = [{"coding": [_coding(lat)]}]
        entries.append((f"urn:uuid:{bs_id}", BodyStructure.model_validate(bs)))
        obs: dict = {
            "resourceType": "Observation", "id": obs_id, "meta": {"profile": [MCODE_TUMOR_SIZE]},
            "status": "preliminary",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "imaging"}]}],
            "code": {"coding": [{"system": LOINC, "code": TUMOR_SIZE[0], "display": TUMOR_SIZE[1]}]},
            "subject": {"reference": ref["patient"]}, "focus": [{"reference": f"urn:uuid:{bs_id}"}],
            "device": {"reference": ref["device"]}, "derivedFrom": [{"reference": ref["study"]}],
            "component": [
                {"code": {"coding": [{"system": LOINC, "code": LONGEST_DIM[0], "display": LONGEST_DIM[1]}]},
                 "valueQuantity": _mm(les.long_axis_mm)},
                {"code": {"coding": [{"system": LOINC, "code": OTHER_DIM[0], "display": OTHER_DIM[1]}]},
                 "valueQuantity": _mm(les.short_axis_mm)}],
            "method": {"text": les.recist_rule[:200] if les.recist_rule else "RECIST 1.1 axial diameters"}}
        if les.size_qualifier == "lower_bound":
            obs["note"] = [{"text": "the lesion reaches the scan edge: sizes are lower bounds"}]
        if when:
            obs["effectiveDateTime"] = when
        entries.append((f"urn:uuid:{obs_id}", Observation.model_validate(obs)))
        obs_refs.append({"reference": f"urn:uuid:{obs_id}"})
    rep: dict = {"resourceType": "DiagnosticReport", "id": ids["report"], "status": "preliminary",
                 "code": {"coding": [{"system": LOINC, "code": REPORT_CODE[0], "display": REPORT_CODE[1]}]},
                 "subject": {"reference": ref["patient"]}, "imagingStudy": [{"reference": ref["study"]}],
                 "result": obs_refs}
    if when:
        rep["effectiveDateTime"] = when
    if report_text:
        rep["presentedForm"] = [{"contentType": "text/markdown", "title": "radagent report",
                                 "data": base64.b64encode(report_text.encode()).decode()}]
    entries.append((ref["report"], DiagnosticReport.model_validate(rep)))
    bundle = Bundle.model_validate({
        "resourceType": "Bundle", "id": _id("radagent-fhir-bundle", study_uid, findings.to_json()), "type": "collection",
        "entry": [{"fullUrl": url, "resource": res.model_dump(mode="json", exclude_none=True)} for url, res in entries]})
    return bundle.model_dump(mode="json", exclude_none=True)
