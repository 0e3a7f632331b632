"""DICOM SR, TID 1500 Measurement Report of the lesions (highdicom), from Findings and the SEG's headers.

One TID 1411 volumetric measurement group per lesion, then one per organ in the SEG (volume when
measured, mean attenuation, scan edge, status): tracking identifier (the lesion id) and tracking
UID (the SEG segment's), the referenced SEG segment and source CT series, finding type (lesion kind),
finding site (host organ, laterality), long axis (SCT 103339001), short axis (SCT 103340004),
volume (SCT 118565006) in mm / ml, and mean attenuation (DCM 112031 Attenuation Coefficient with
derivation SCT 373098007 Mean) in UCUM [hnsf'U]. "Reaches the scan edge" is coded (SCT Yes/No); the
qualitative evaluations with no standard code (attenuation relative to the host, vessel contact, staging
hint, size qualifier, liver/pancreas segment) are TEXT items named by radagent's private scheme
99RADAGENT. Nothing here reads voxels: every value is a Findings value.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from .. import __version__
from . import codes as C
from .seg import MANUFACTURER, DicomOutputError, SegOutput

SR_SERIES_NUMBER = 9702


def _algorithm(findings):
    import highdicom as hd

    models = sorted({b for s in findings.lesion_search for b in s.by if b.startswith("model ")})
    return hd.sr.AlgorithmIdentification(name="radagent", version=__version__, parameters=models or None)


def _text(name, value: str):
    import highdicom as hd

    return hd.sr.TextContentItem(name=name, value=value[:1024],
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def lesion_text_evaluations(les) -> list[tuple[object, str]]:
    """(concept, text) of each qualitative evaluation of a lesion that has no standard code."""
    out: list[tuple[object, str]] = []
    if les.attenuation is not None:
        out.append((C.ATTENUATION_CLASS, les.attenuation.value))
    for vc in les.vessel_contacts:
        text = (f"{vc.vessel}: {vc.category.value}, maximum angle {vc.max_angle_deg:g} deg, "
                f"contact length {vc.contact_length_mm:g} mm")
        out.append((C.VESSEL_CONTACT, text))
    for st in les.staging:
        out.append((C.STAGING_HINT, f"{st.system}: {st.category} ({st.rule})"))
    out.append((C.SIZE_QUALIFIER, les.size_qualifier))
    return out


def finding_sites(les) -> list:
    import highdicom as hd

    if not les.organ:
        return []
    code, side = C.structure_code(les.organ)
    if code is None:
        return []
    lat = C.LATERALITY.get(les.laterality) if les.laterality in C.LATERALITY else side
    return [hd.sr.FindingSite(anatomic_location=code, laterality=lat)]


def _group(les, seg: SegOutput, findings):
    import highdicom as hd

    info = seg.segment_of_lesion(les.id)
    if info is None:
        raise DicomOutputError(f"lesion {les.id}: no segment in the SEG to reference (the SEG and the findings "
                               "come from different analyses)")
    ref = _segment_ref(seg, info.number)
    measurements = [
        hd.sr.Measurement(name=C.LONG_AXIS, value=les.long_axis_mm, unit=C.MM),
        hd.sr.Measurement(name=C.SHORT_AXIS, value=les.short_axis_mm, unit=C.MM),
        hd.sr.Measurement(name=C.VOLUME, value=les.volume_ml, unit=C.ML),
        hd.sr.Measurement(name=C.ATTENUATION, value=les.mean_hu, unit=C.HU, derivation=C.MEAN),
    ]
    qual = [hd.sr.QualitativeEvaluation(C.AT_SCAN_EDGE, C.YES if les.touches_edges else C.NO)]
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=info.tracking_uid, identifier=les.id),
        referenced_segment=ref, finding_type=C.LESION_KIND_CODES.get(les.kind, C.codes.SCT.Lesion),
        finding_category=C.codes.SCT.MorphologicallyAbnormalStructure, algorithm_id=_algorithm(findings),
        finding_sites=finding_sites(les) or None, measurements=measurements, qualitative_evaluations=qual)
    items = group[0].ContentSequence
    for concept, text in lesion_text_evaluations(les):
        items.append(_text(concept, text))
    if les.organ:
        items.append(_text(C.private("host-organ", "Host organ (radagent structure name)"), les.organ))
    for s in les.segments:
        items.append(_text(C.private("organ-segment", "Organ segment"), s))
    return group


def _segment_ref(seg: SegOutput, number: int):
    import highdicom as hd

    ds = seg.dataset
    return hd.sr.ReferencedSegment(
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID, segment_number=number,
        source_series=hd.sr.SourceSeriesForSegmentation(str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)))


def organ_tracking_uid(study_uid: str, organ: str) -> str:
    return C.deterministic_uid("radagent-organ-tracking", study_uid, organ)


def _organ_group(organ, seg: SegOutput, findings):
    """One TID 1411 group per organ in the SEG: volume (only when measured: a volume cut by the scan edge is
    not written) and mean attenuation where known; its status as text."""
    import highdicom as hd

    info = seg.segments.get(f"organ:{organ.name}")
    if info is None:
        return None
    code, side = C.structure_code(organ.name)
    measurements = []
    if organ.volume_ml is not None:
        measurements.append(hd.sr.Measurement(name=C.VOLUME, value=organ.volume_ml, unit=C.ML))
    if organ.mean_hu is not None:
        measurements.append(hd.sr.Measurement(name=C.ATTENUATION, value=organ.mean_hu, unit=C.HU, derivation=C.MEAN))
    common = {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=organ_tracking_uid(seg.study_uid, organ.name),
                                                        identifier=organ.name),
        "finding_type": code or C.codes.SCT.AnatomicalStructure,
        "finding_category": C.codes.SCT.AnatomicalStructure, "algorithm_id": _algorithm(findings),
        "finding_sites": [hd.sr.FindingSite(anatomic_location=code, laterality=side)] if code else None,
        "measurements": measurements or None,
        "qualitative_evaluations": [hd.sr.QualitativeEvaluation(C.AT_SCAN_EDGE,
                                                                C.YES if organ.touches_edges else C.NO)]}
    if seg.dataset.SegmentationType == "BINARY":  # TID 1411, referencing the organ's segment
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=_segment_ref(seg, info.number), **common)
    else:  # a Labelmap SEG: dciodvfy refuses a Referenced Segment Number into it, so TID 1501 (no ROI reference)
        group = hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    group[0].ContentSequence.append(_text(C.private("organ-status", "Measurement status"), organ.status.value))
    return group


def build_sr(findings, seg: SegOutput) -> Dataset:
    """The TID 1500 Measurement Report of ``findings``' lesions (then organs), referencing ``seg`` (same study)."""
    import highdicom as hd

    groups = [_group(les, seg, findings) for les in findings.lesions]
    groups += [g for o in findings.organs if (g := _organ_group(o, seg, findings)) is not None]
    if not groups:
        raise DicomOutputError("DICOM SR: no lesion and no organ in the SEG to report (TID 1500 needs one "
                               "measurement group at least)")
    observer = hd.sr.ObserverContext(
        observer_type=C.codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=C.deterministic_uid("radagent-device", __version__), name="radagent", manufacturer_name=MANUFACTURER,
            model_name="radagent"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=C.codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=groups,
        title=C.codes.DCM.ImagingMeasurementReport)
    ds = seg.dataset
    key = C.deterministic_uid("radagent-sr", str(ds.SOPInstanceUID), findings.to_json())
    sr = hd.sr.Comprehensive3DSR(
        evidence=[ds], content=report[0],
        series_instance_uid=C.deterministic_uid("radagent-sr-series", str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID),
                                                __version__),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=key, instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=False, series_description="radagent measurement report")
    scheme = Dataset()  # the private coding scheme used for concepts with no standard code (PS3.3 C.12.1.1.2)
    scheme.CodingSchemeDesignator = C.PRIVATE_SCHEME
    scheme.CodingSchemeName = "radagent concepts"
    scheme.CodingSchemeResponsibleOrganization = "radagent"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
