"""`radagent pacs` against a real Orthanc (Debian orthanc + orthanc-dicomweb) started here on 127.0.0.1: free port,
generated configuration (DICOMweb plugin, HTTP Basic authentication on, DICOM port off, storage in a temporary
folder). Studies uploaded with STOW-RS:

- ``ct3``: dcmqi's 3-slice CT with its liver DICOM SEG (``../shared/data/dicom_seg``): the truth is the SEG's own
  pixel count;
- ``example``: TotalSegmentator's 20-slice DICOM CT (its UIDs are blank: given fixed UIDs here) with a BINARY SEG
  made here with highdicom from ``example_seg_dicom.nii.gz`` (liver, spleen) plus a synthetic liver lesion
  (an ellipsoid of known voxels);
- ``lesion3``: the 3-slice CT under new UIDs with a SEG of dcmqi's liver plus a synthetic lesion (a fast study
  with a lesion);
- ``bare``: the 3-slice CT under new UIDs with no SEG (segmentation must be asked for, and is refused here).

What is checked: QIDO filters against the uploaded headers, WADO-RS retrieval read by our DICOM loader voxel for
voxel, the SR stored back with STOW-RS and queried from Orthanc whose TID 1500 measurements equal findings.json,
the watcher's state (second run processes nothing, a new study is processed, a failure kept with its message and
retried only on request), and the refusals: bad or missing credentials, a password on the command line or in the
URL, an unreachable server, a state file of another PACS or corrupt.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import CTImageStorage, generate_uid

from tests.conftest import data_path
from tests.require import require, require_module

ORTHANC = Path("/usr/sbin/Orthanc")
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "radagent", "s3cret-for-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def orthanc_server(folder: Path):
    """A real Orthanc on 127.0.0.1 with the DICOMweb plugin and Basic auth; yields its DICOMweb root URL."""
    if not ORTHANC.exists() or not PLUGIN.exists():
        require("orthanc", f"{ORTHANC} or {PLUGIN} not found (make orthanc: Debian orthanc + orthanc-dicomweb)")
    require_module("dicomweb_client", "orthanc")
    import requests

    port = _free_port()
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"Name": "radagent-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
           "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
           "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD}, "Plugins": [str(PLUGIN)],
           "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
           "OverwriteInstances": True, "HttpThreadsCount": 8}
    (folder / "orthanc.json").write_text(json.dumps(cfg))
    with open(folder / "orthanc.log", "w") as log:
        proc = subprocess.Popen([str(ORTHANC), str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {proc.returncode}: {(folder / 'orthanc.log').read_text()[-2000:]}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/system", auth=(USER, PASSWORD), timeout=2).ok:
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"Orthanc did not answer within 30 s: {(folder / 'orthanc.log').read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/dicom-web"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _env(url: str, **over) -> dict[str, str]:
    return {"RADAGENT_PACS_URL": url, "RADAGENT_PACS_USER": USER, "RADAGENT_PACS_PASSWORD": PASSWORD,
            "RADAGENT_PACS_TOKEN": "", **over}


def _client(url: str):
    from agent.pacs.client import PacsClient, PacsSettings

    return PacsClient(PacsSettings.from_env(environ=_env(url)))


def _cli(*args: str, env: dict[str, str]):
    from agent.cli import main

    return CliRunner().invoke(main, ["pacs", *args], env=env, catch_exceptions=False)


# --- the studies ------------------------------------------------------------------------------------------------
def _copy_with_uids(files: list[Path], out: Path, tag: str, patient: str, date: str) -> tuple[str, str]:
    """The CT files under fixed new UIDs (pixel data untouched, JPEG 2000 stays JPEG 2000)."""
    out.mkdir(parents=True)
    study = generate_uid(entropy_srcs=[f"radagent-test-pacs-{tag}-study"])
    series = generate_uid(entropy_srcs=[f"radagent-test-pacs-{tag}-series"])
    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPClassUID = study, series, CTImageStorage
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"radagent-test-pacs-{tag}", f.name])
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID, ds.PatientName, ds.StudyDate, ds.SeriesNumber = patient, f"TEST^{tag.upper()}", date, 1
        if ds.get("SpecificCharacterSet", None) == "":  # dcmqi's slices: highdicom (our test SEG) refuses it
            del ds.SpecificCharacterSet
        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return study, series


def _organ_masks_with_lesion(ct_dir: Path, organs_file: Path, names: tuple[str, ...], semi: tuple[float, float, float]):
    """Organ masks read from ``organs_file`` on the CT's grid, plus a synthetic liver lesion (an ellipsoid of
    ``semi`` mm at the liver's deepest point, cut to the liver)."""
    from eval.synthetic import ellipsoid, organ_center_mm
    from perception.io import load_ct
    from perception.masks import load_masks

    vol = load_ct(ct_dir)
    labels = load_masks(organs_file, vol)
    masks = {n: labels.masks[n].dense() for n in names}
    centre = organ_center_mm(masks["liver"], vol.affine, erode=1)
    masks["liver_lesion"] = ellipsoid(vol.shape, vol.affine, centre, semi) & masks["liver"]
    assert masks["liver_lesion"].sum() > 20
    return vol, masks


def _make_seg(vol, ct_dir: Path, masks: dict[str, np.ndarray], out: Path, tag: str) -> None:
    """A BINARY DICOM SEG (highdicom, another manufacturer than radagent) of ``masks`` on the uploaded CT."""
    hd = require_module("highdicom", "dicom")
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(f) for f in sorted(ct_dir.glob("*.dcm"))]
    order = [s["instance_number"] for s in vol.meta["slices"]]  # voxel (i, j, k) = pixel (row j, col i) of slice k
    frames = np.stack([np.stack([m[:, :, order.index(int(ds.InstanceNumber))].T for m in masks.values()], -1)
                       for ds in sources]).astype(np.uint8)
    types = {"liver": codes.SCT.Liver, "spleen": codes.SCT.Spleen, "liver_lesion": codes.SCT.Lesion}
    descs = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=name,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure if "lesion" in name else codes.SCT.Organ,
        segmented_property_type=types[name], algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i, name in enumerate(masks)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=generate_uid(entropy_srcs=[f"radagent-test-pacs-{tag}-seg-s"]),
        series_number=2, sop_instance_uid=generate_uid(entropy_srcs=[f"radagent-test-pacs-{tag}-seg"]), instance_number=1,
        manufacturer="Test Reader Site", manufacturer_model_name="manual", software_versions="1",
        device_serial_number="1")
    out.mkdir(parents=True)
    seg.save_as(out / "seg.dcm")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The three studies as folders of files to upload, with what is known about them."""
    root = tmp_path_factory.mktemp("pacs_studies")
    src = data_path("dicom_seg")
    from perception.io import load_ct

    ct3_files = sorted((src / "ct-3slice").glob("*.dcm"))
    ct3 = pydicom.dcmread(ct3_files[0], stop_before_pixels=True)
    liver = pydicom.dcmread(src / "liver.dcm")
    ex_study, ex_series = _copy_with_uids(sorted(data_path("totalseg", "example_ct_dicom").iterdir()),
                                          root / "example" / "ct", "example", "RADAGENT-PACS-2", "20221208")
    vol, ex_masks = _organ_masks_with_lesion(root / "example" / "ct", data_path("totalseg", "example_seg_dicom.nii.gz"),
                                             ("liver", "spleen"), (11.0, 8.0, 5.0))
    _make_seg(vol, root / "example" / "ct", ex_masks, root / "example" / "seg", "example")
    # ct3 under new UIDs with a SEG of dcmqi's liver plus a synthetic lesion: a second study with a lesion
    les_study, _ = _copy_with_uids(ct3_files, root / "lesion3" / "ct", "lesion3", "RADAGENT-PACS-4", "20250101")
    # dcmqi's liver SEG read on the original slices (same geometry as the copy), plus the lesion
    _, les_masks = _organ_masks_with_lesion(src / "ct-3slice", src / "liver.dcm", ("liver",), (20.0, 15.0, 2.0))
    vol3 = load_ct(root / "lesion3" / "ct")
    _make_seg(vol3, root / "lesion3" / "ct", les_masks, root / "lesion3" / "seg", "lesion3")
    bare_study, _ = _copy_with_uids(sorted((src / "ct-3slice").glob("*.dcm")), root / "bare" / "ct", "bare",
                                    "RADAGENT-PACS-3", "20240105")
    return {
        "ct3": {"study": str(ct3.StudyInstanceUID), "series": str(ct3.SeriesInstanceUID), "patient": str(ct3.PatientID),
                "date": str(ct3.StudyDate), "files": ct3_files + [src / "liver.dcm"],
                "liver_voxels": int(np.count_nonzero(liver.pixel_array))},
        "example": {"study": ex_study, "series": ex_series, "patient": "RADAGENT-PACS-2", "date": "20221208",
                    "files": sorted((root / "example" / "ct").glob("*.dcm")) + [root / "example" / "seg" / "seg.dcm"],
                    "ct_dir": root / "example" / "ct", "masks": ex_masks, "vol": vol},
        "lesion3": {"study": les_study, "files": sorted((root / "lesion3" / "ct").glob("*.dcm")) +
                    [root / "lesion3" / "seg" / "seg.dcm"], "masks": les_masks},
        "bare": {"study": bare_study, "patient": "RADAGENT-PACS-3", "date": "20240105",
                 "files": sorted((root / "bare" / "ct").glob("*.dcm"))},
    }


def _upload(url: str, study: dict) -> None:
    assert len(_client(url).store(study["files"], study["study"])) == len(study["files"])


@pytest.fixture(scope="module")
def pacs(studies, tmp_path_factory):
    """One Orthanc holding ct3, example and lesion3."""
    with orthanc_server(tmp_path_factory.mktemp("orthanc")) as url:
        for name in ("ct3", "example", "lesion3"):
            _upload(url, studies[name])
        yield url


# --- find / retrieve -------------------------------------------------------------------------------------------
def test_find_filters_match_the_uploaded_headers(pacs, studies):
    c = _client(pacs)
    ct3, ex, les = studies["ct3"], studies["example"], studies["lesion3"]
    every = c.find_studies()
    assert sorted(r["StudyInstanceUID"] for r in every) == sorted([ct3["study"], ex["study"], les["study"]])
    by_uid = {r["StudyInstanceUID"]: r for r in every}
    assert by_uid[ct3["study"]]["NumberOfStudyRelatedInstances"] == 4  # 3 CT + 1 SEG
    assert by_uid[ex["study"]]["NumberOfStudyRelatedInstances"] == 21  # 20 CT + 1 SEG
    assert sorted(by_uid[ex["study"]]["ModalitiesInStudy"]) == ["CT", "SEG"]
    assert [r["StudyInstanceUID"] for r in c.find_studies(patient_id=ex["patient"])] == [ex["study"]]
    assert [r["StudyInstanceUID"] for r in c.find_studies(study_uid=ct3["study"])] == [ct3["study"]]
    assert len(c.find_studies(modality="SEG")) == 3 and c.find_studies(modality="MR") == []
    assert [r["StudyInstanceUID"] for r in c.find_studies(date=f"{ex['date']}-")] == [ex["study"], les["study"]]
    assert [r["StudyInstanceUID"] for r in c.find_studies(date=f"{ex['date']}-20241231")] == [ex["study"]]
    assert [r["StudyInstanceUID"] for r in c.find_studies(date=f"-{ct3['date']}")] == [ct3["study"]]
    assert c.find_studies(date="19000101-19000102") == []
    res = _cli("find", "--modality", "CT", "--json", env=_env(pacs))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == c.find_studies(modality="CT")
    for bad, what in ((["--date", "2022-12-08"], "expected YYYYMMDD"), (["--modality", "ct;x"], "expected a DICOM "),
                      (["--study", "1.2.x"], "expected a DICOM UID")):
        res = _cli("find", *bad, env=_env(pacs))
        assert res.exit_code == 2 and what in res.stderr, res.output


def test_retrieve_gives_series_our_loader_reads_voxel_for_voxel(pacs, studies, tmp_path):
    from perception.io import load_ct

    ex = studies["example"]
    res = _cli("retrieve", ex["study"], "-o", str(tmp_path / "r"), env=_env(pacs))
    assert res.exit_code == 0, res.output
    folders = {Path(line).name: Path(line) for line in res.stdout.split()}
    assert set(folders) == {ex["series"], pydicom.dcmread(ex["files"][-1]).SeriesInstanceUID}
    assert len(list(folders[ex["series"]].glob("*.dcm"))) == 20
    got, want = load_ct(folders[ex["series"]]), ex["vol"]  # the uploaded files as loaded locally
    assert np.array_equal(got.hu, want.hu) and np.array_equal(got.affine, want.affine)
    assert pydicom.dcmread(next(folders[ex["series"]].glob("*.dcm"))).file_meta.TransferSyntaxUID == \
        "1.2.840.10008.1.2.4.90"  # stored transfer syntax kept (JPEG 2000 lossless), not transcoded
    # the folder appears complete or not at all: a second retrieval into it, or of an unknown study, writes nothing
    again = _cli("retrieve", ex["study"], "-o", str(tmp_path / "r"), env=_env(pacs))
    assert again.exit_code == 2 and "expected a new or empty folder" in again.stderr
    unknown = _cli("retrieve", "1.2.3.4", "-o", str(tmp_path / "u"), env=_env(pacs))
    assert unknown.exit_code == 2 and "WADO-RS retrieval of study 1.2.3.4 failed with HTTP 404" in unknown.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    # dcmqi's study: the retrieved SEG reads over the retrieved CT with its own pixel count of liver (107098)
    from perception.masks import load_masks

    ct3 = studies["ct3"]
    got3 = _client(pacs).retrieve_study(ct3["study"], tmp_path / "r3")
    (seg_file,) = [f for uid, d in got3.items() if uid != ct3["series"] for f in d.glob("*.dcm")]
    liver = load_masks(seg_file, load_ct(got3[ct3["series"]])).masks["liver"].dense()
    assert int(liver.sum()) == ct3["liver_voxels"] == 107098


# --- run: analyze with the stored SEG, store SEG + SR back, read the SR back from Orthanc -----------------------------
def _stored_sr(url: str, study: str, tmp: Path):
    """The radagent SR of the study, found by QIDO-RS and fetched by WADO-RS from Orthanc."""
    import highdicom as hd

    c = _client(url)
    series = c._web.search_for_series(study_instance_uid=study, search_filters={"Modality": "SR"})
    assert len(series) == 1, series
    folders = c.retrieve_study(study, tmp)
    (sr_file,) = folders[series[0]["0020000E"]["Value"][0]].glob("*.dcm")
    return hd.sr.srread(sr_file), folders


def _sr_values(sr) -> dict[str, dict[str, tuple[float, str]]]:
    """Tracking identifier -> {concept code: (value, UCUM unit)} of every measurement group of a TID 1500 SR,
    read from the content tree with pydicom (FloatingPointValue where present, else the DS NumericValue)."""
    out = {}
    (container,) = [it for it in sr.ContentSequence if it.ConceptNameCodeSequence[0].CodeValue == "126010"]
    for group in container.ContentSequence:  # Measurement Group (125007)
        items = group.ContentSequence
        (tid,) = [it.TextValue for it in items if it.ConceptNameCodeSequence[0].CodeValue == "112039"]
        out[tid] = {it.ConceptNameCodeSequence[0].CodeValue: (
            float(it.MeasuredValueSequence[0].get("FloatingPointValue", it.MeasuredValueSequence[0].NumericValue)),
            it.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
            for it in items if it.ValueType == "NUM"}
    return out


def _findings_values(f: dict) -> dict[str, dict[str, tuple[float, str]]]:
    """The same table from findings.json: lesions by id (long/short axis, volume, mean HU), organs by name
    (volume where measured, mean HU where known)."""
    out = {les["id"]: {"103339001": (les["long_axis_mm"], "mm"), "103340004": (les["short_axis_mm"], "mm"),
                       "118565006": (les["volume_ml"], "ml"), "112031": (les["mean_hu"], "[hnsf'U]")}
           for les in f["lesions"]}
    for o in f["organs"]:
        out[o["name"]] = {k: v for k, v in (("118565006", (o["volume_ml"], "ml")),
                                            ("112031", (o["mean_hu"], "[hnsf'U]"))) if v[0] is not None}
    return out


def test_run_stores_seg_and_sr_whose_values_equal_findings(pacs, studies, tmp_path):
    from perception.dicom_out import codes as C

    ex = studies["example"]
    res = _cli("run", ex["study"], "-o", str(tmp_path / "work"), env=_env(pacs))
    assert res.exit_code == 0, res.output
    assert "masks stored SEG" in res.stderr and "stored 2 instances" in res.stderr
    f = json.loads(Path(res.stdout.strip()).read_text())
    (les,) = f["lesions"]
    assert les["organ"] == "liver" and les["voxel_count"] == int(ex["masks"]["liver_lesion"].sum())
    assert {o["name"]: o["voxel_count"] for o in f["organs"]} == {
        n: int(ex["masks"][n].sum()) for n in ("liver", "spleen")}
    assert _client(pacs).find_studies(study_uid=ex["study"])[0]["NumberOfStudyRelatedInstances"] == 23  # + SEG + SR
    sr, folders = _stored_sr(pacs, ex["study"], tmp_path / "back")
    written = pydicom.dcmread(tmp_path / "work" / ex["study"] / "out" / "dicom" / "sr.dcm")
    assert sr.SOPInstanceUID == written.SOPInstanceUID and sr.ContentSequence == written.ContentSequence
    assert sr.StudyInstanceUID == ex["study"] and sr.Manufacturer == "radagent"
    groups = {g.tracking_identifier: g for g in sr.content.get_volumetric_roi_measurement_groups()}
    assert set(groups) == {les["id"], "liver", "spleen"}  # one group per lesion and per organ in the SEG
    g = groups[les["id"]]
    assert g.tracking_uid == C.tracking_uid(ex["study"], les["id"])
    assert _sr_values(sr) == _findings_values(f)
    # the SEG stored back holds the masks measured: organ and lesion voxel counts as findings.json says
    ours = [p for folder in folders.values() for p in folder.glob("*.dcm")
            if pydicom.dcmread(p, stop_before_pixels=True).get("Manufacturer") == "radagent"
            and pydicom.dcmread(p, stop_before_pixels=True).Modality == "SEG"]
    assert len(ours) == 1
    segments = {s.SegmentLabel: s for s in pydicom.dcmread(ours[0], stop_before_pixels=True).SegmentSequence}
    assert set(segments) == {"liver", "spleen", les["mask"]}
    assert segments[les["mask"]].TrackingID == les["id"] and segments[les["mask"]].TrackingUID == g.tracking_uid


def test_rerun_stores_the_same_objects(pacs, studies, tmp_path):
    """Deterministic UIDs: running a study twice leaves it with one SEG and one SR of ours; our SEG is not read
    back as input (the stored SEG made elsewhere is)."""
    les = studies["lesion3"]
    counts = []
    for _ in range(2):
        res = _cli("run", les["study"], "-o", str(tmp_path / "work"), env=_env(pacs))
        assert res.exit_code == 0 and "masks stored SEG" in res.stderr, res.output
        f = json.loads(Path(res.stdout.strip()).read_text())
        assert [x["voxel_count"] for x in f["lesions"]] == [int(les["masks"]["liver_lesion"].sum())]
        counts.append(_client(pacs).find_studies(study_uid=les["study"])[0]["NumberOfStudyRelatedInstances"])
    assert counts == [len(les["files"]) + 2] * 2


def test_run_with_dcmqi_seg_stores_an_sr_of_its_liver(pacs, studies, tmp_path):
    """dcmqi's 3-slice CT with its liver SEG, as stored: no lesion; the liver measured with the SEG's own pixel
    count, and the SR stored back (a TID 1500 report with the organ's group) equals findings.json."""
    ct3 = studies["ct3"]
    res = _cli("run", ct3["study"], "-o", str(tmp_path / "work"), env=_env(pacs))
    assert res.exit_code == 0 and "masks stored SEG" in res.stderr, res.output
    f = json.loads(Path(res.stdout.strip()).read_text())
    assert f["lesions"] == [] and [o["voxel_count"] for o in f["organs"]] == [ct3["liver_voxels"]] == [107098]
    sr, _ = _stored_sr(pacs, ct3["study"], tmp_path / "back")
    assert sr.StudyInstanceUID == ct3["study"] and sr.PatientID == ct3["patient"]
    assert _sr_values(sr) == _findings_values(f) and set(_sr_values(sr)) == {"liver"}


# --- refusals --------------------------------------------------------------------------------------------------------
def test_credentials_from_the_environment_only(pacs, studies):
    bad = _cli("find", env=_env(pacs, RADAGENT_PACS_PASSWORD="wrong"))
    assert bad.exit_code == 2 and "refused the credentials" in bad.stderr and "HTTP 401" in bad.stderr
    assert "wrong" not in bad.output  # the secret is never echoed
    none = _cli("find", env=_env(pacs, RADAGENT_PACS_USER="", RADAGENT_PACS_PASSWORD=""))
    assert none.exit_code == 2 and "HTTP 401" in none.stderr and "no credentials" in none.stderr
    half = _cli("find", env=_env(pacs, RADAGENT_PACS_PASSWORD=""))
    assert half.exit_code == 2 and "RADAGENT_PACS_PASSWORD is not set" in half.stderr
    for argv in (["--password", PASSWORD, "find"], ["find", "--token", "abc"], ["run", "1.2", "-o", "x", "--password=p"]):
        res = _cli(*argv, env=_env(pacs))
        assert res.exit_code == 2 and "is refused: a secret on the command line" in res.stderr, argv
    in_url = pacs.replace("http://", f"http://{USER}:{PASSWORD}@")
    res = _cli("--url", in_url, "find", env=_env(pacs))
    assert res.exit_code == 2 and "credentials in the URL are refused" in res.stderr and PASSWORD not in res.output
    res = _cli("find", env=_env(f"http://127.0.0.1:{_free_port()}/dicom-web"))
    assert res.exit_code == 2 and "cannot connect" in res.stderr


def test_run_without_seg_says_segmentation_could_not_run(studies, tmp_path):
    bare = studies["bare"]
    with orthanc_server(tmp_path / "orthanc") as url:
        _upload(url, bare)
        for argv, what in (([], "expected a STUDY_UID or study filters"), ([bare["study"], "--patient", "x"], "not both"),
                           (["--patient", "NOBODY"], "no CT study on")):
            res = _cli("run", *argv, "-o", str(tmp_path / "w"), env=_env(url))
            assert res.exit_code == 2 and what in res.stderr, res.output
        # found by patient (QIDO-RS), then retrieved and refused: no SEG stored, segmentation cannot run
        res = _cli("run", "--patient", bare["patient"], "-o", str(tmp_path / "w"), "--no-download", "--totalseg-home",
                   str(tmp_path / "no_weights"), env=_env(url))
        assert res.exit_code == 2, res.output
        assert f"study {bare['study']}: no DICOM SEG stored for CT series" in res.stderr
        assert "segmentation could not run" in res.stderr
        assert not (tmp_path / "w" / bare["study"] / "out").exists()
        assert _client(url).find_studies()[0]["NumberOfStudyRelatedInstances"] == 3  # nothing stored
        # by date, two studies: the one with a SEG is done and stored, the other listed as failed; exit 2
        _upload(url, studies["lesion3"])
        res = _cli("run", "--date", "20240101-20251231", "-o", str(tmp_path / "w2"), "--no-download",
                   "--totalseg-home", str(tmp_path / "no_weights"), env=_env(url))
        assert res.exit_code == 2 and "1 of 2 studies failed" in res.stderr and "segmentation could not run" in res.stderr
        assert res.stdout.split() == [str(tmp_path / "w2" / studies["lesion3"]["study"] / "out" / "findings.json")]
        counts = {r["StudyInstanceUID"]: r["NumberOfStudyRelatedInstances"] for r in _client(url).find_studies()}
        assert counts == {bare["study"]: 3, studies["lesion3"]["study"]: len(studies["lesion3"]["files"]) + 2}


# --- watch -------------------------------------------------------------------------------------------------------------
def _watch(url: str, state: Path, work: Path, *extra: str):
    res = _cli("watch", "--state", str(state), "-o", str(work), "--once", "--stable-age", "0.5", "--interval", "0.3",
               "--no-download", "--totalseg-home", str(work / "no_weights"), *extra, env=_env(url))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_watch_processes_each_stable_study_once(studies, tmp_path):
    first, ex, bare = studies["lesion3"], studies["example"], studies["bare"]
    state, work = tmp_path / "state" / "watch.json", tmp_path / "work"
    with orthanc_server(tmp_path / "orthanc") as url:
        _upload(url, first)
        assert _watch(url, state, work) == {"processed": [first["study"]], "failed": [], "skipped": []}
        # second run: nothing new (our SEG + SR changed the study's instance count; it is done, never redone)
        assert _watch(url, state, work) == {"processed": [], "failed": [], "skipped": [first["study"]]}
        _upload(url, ex)
        _upload(url, bare)
        r = _watch(url, state, work)
        assert r == {"processed": [ex["study"]], "failed": [bare["study"]], "skipped": [first["study"]]}
        f = json.loads((work / first["study"] / "out" / "findings.json").read_text())
        assert [les["voxel_count"] for les in f["lesions"]] == [int(first["masks"]["liver_lesion"].sum())]
        s = json.loads(state.read_text())
        assert s["studies"][first["study"]]["status"] == s["studies"][ex["study"]]["status"] == "done"
        assert len(s["studies"][ex["study"]]["stored"]) == 2
        failed = s["studies"][bare["study"]]
        assert failed["status"] == "failed" and failed["attempts"] == 1
        assert "no DICOM SEG stored" in failed["message"] and "segmentation could not run" in failed["message"]
        # a failure is not retried unless asked; asked, it is tried once more in that run
        assert _watch(url, state, work)["skipped"] == sorted([first["study"], ex["study"], bare["study"]])
        assert _watch(url, state, work, "--retry-failed")["failed"] == [bare["study"]]
        assert json.loads(state.read_text())["studies"][bare["study"]]["attempts"] == 2
        assert sorted(p.name for p in state.parent.iterdir()) == ["watch.json", "watch.json.lock"]  # no temp files
        # the state belongs to this PACS: another URL is refused, so is a corrupt file
        other = _cli("watch", "--state", str(state), "-o", str(work), "--once", env=_env(url.replace("127.0.0.1", "localhost")))
        assert other.exit_code == 2 and "records the PACS" in other.stderr
        state.write_text("{not json")
        res = _cli("watch", "--state", str(state), "-o", str(work), "--once", env=_env(url))
        assert res.exit_code == 2 and "expected a radagent watch state file" in res.stderr


def test_state_written_atomically(tmp_path, monkeypatch):
    from agent.pacs import watch

    path = tmp_path / "s.json"
    watch.save_state(path, {"version": 1, "url": "u", "studies": {"1.2": {"status": "done"}}})
    before = path.read_text()

    def crash(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(watch.json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        watch.save_state(path, {"version": 1, "url": "u", "studies": {}})
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_one_watcher_per_state_file(tmp_path):
    from agent.pacs.client import PacsError
    from agent.pacs.watch import state_lock

    with state_lock(tmp_path / "s.json"), pytest.raises(PacsError, match="another radagent pacs watch"), \
            state_lock(tmp_path / "s.json"):
        pass


def test_seg_of_another_series_or_several_ct_series_refused(tmp_path):
    from agent.pacs.client import PacsError
    from agent.pacs.loop import SeriesInfo, choose_ct, stored_seg

    a = SeriesInfo("1.1", "CT", tmp_path, 3)
    b = SeriesInfo("1.2", "CT", tmp_path, 5)
    with pytest.raises(PacsError, match="2 CT series .*--series"):
        choose_ct("9.9", {"1.1": a, "1.2": b})
    assert choose_ct("9.9", {"1.1": a, "1.2": b}, "1.2") is b
    with pytest.raises(PacsError, match="expected a CT series, found none"):
        choose_ct("9.9", {"1.3": SeriesInfo("1.3", "MR", tmp_path, 1)})
    seg_dir = tmp_path / "seg"
    seg_dir.mkdir()
    (seg_dir / "x.dcm").write_bytes(b"")
    other = SeriesInfo("1.4", "SEG", seg_dir, 1, "Site", {"1.2"})
    ours = SeriesInfo("1.5", "SEG", seg_dir, 1, "radagent", {"1.1"})
    assert stored_seg("9.9", {"1.1": a, "1.4": other, "1.5": ours}, a) is None  # another series' SEG; our own output


def test_bad_uids_from_the_server_never_name_files():
    from agent.pacs.client import PacsError, check_uid

    for bad in ("../../etc", "1.2/3", "", "1." * 40 + "1"):
        with pytest.raises(PacsError, match="expected a DICOM UID"):
            check_uid(bad)
    assert check_uid(" 1.2.840.10008 ") == "1.2.840.10008"


def test_watch_state_survives_a_restart_and_waits_for_stability(pacs, studies, tmp_path):
    """poll() twice as two processes would: the first sees both studies and waits (not stable yet), the second,
    100 s later by the clock, processes each once; what it was given to process is exactly the new studies."""
    from agent.pacs.watch import poll

    state, seen = tmp_path / "w.json", []
    client = _client(pacs)

    def process(uid):
        seen.append(uid)
        return [f"{uid}.99"]
    r1 = poll(client, state, process, stable_age_s=60, now=lambda: 1000.0)
    assert sorted(r1.pending) == sorted(studies[k]["study"] for k in ("ct3", "example", "lesion3")) and seen == []
    pending = json.loads(state.read_text())["studies"]
    assert {v["status"] for v in pending.values()} == {"pending"} and all(v["changed_at"] == 1000.0 for v in pending.values())
    r2 = poll(client, state, process, stable_age_s=60, now=lambda: 1100.0)
    assert sorted(r2.processed) == sorted(seen) == sorted(pending)
    r3 = poll(client, state, process, stable_age_s=60, now=lambda: 1200.0)
    assert r3.processed == [] and sorted(r3.skipped) == sorted(pending) and len(seen) == 3


def test_token_and_credential_settings():
    from agent.pacs.client import PacsError, PacsSettings

    s = PacsSettings.from_env(environ={"RADAGENT_PACS_URL": "http://h:1/dicom-web/", "RADAGENT_PACS_TOKEN": "t0k"})
    assert s.url == "http://h:1/dicom-web" and s.token == "t0k" and s.user is None
    assert "t0k" not in s.describe() and "RADAGENT_PACS_TOKEN" in s.describe()
    for env, what in (({"RADAGENT_PACS_TOKEN": "t", "RADAGENT_PACS_USER": "u", "RADAGENT_PACS_PASSWORD": "p"},
                       "expected one way"), ({}, "no PACS URL"), ({"RADAGENT_PACS_URL": "ftp://h/x"}, "expected http(s)")):
        if env and "RADAGENT_PACS_URL" not in env:
            env["RADAGENT_PACS_URL"] = "http://h:1/dicom-web"
        with pytest.raises(PacsError, match=re.escape(what)):
            PacsSettings.from_env(environ=env)


def test_bearer_token_refused_by_orthanc_basic_auth(pacs):
    res = _cli("find", env=_env(pacs, RADAGENT_PACS_USER="", RADAGENT_PACS_PASSWORD="", RADAGENT_PACS_TOKEN="tok"))
    assert res.exit_code == 2 and "HTTP 401" in res.stderr and "bearer token from RADAGENT_PACS_TOKEN" in res.stderr


def test_watch_records_a_crash_and_goes_on(pacs, studies, tmp_path):
    """A bug while processing one study (not a RadagentError) is recorded as that study's internal error with its
    message; the other studies of the poll are still processed; the failed one is not retried unprompted."""
    from agent.pacs.watch import poll

    state, bad = tmp_path / "w.json", studies["ct3"]["study"]

    def process(uid):
        if uid == bad:
            raise ZeroDivisionError("boom in the writer")
        return []
    r = poll(_client(pacs), state, process, stable_age_s=0)
    assert r.failed == [bad] and sorted(r.processed) == sorted(studies[k]["study"] for k in ("example", "lesion3"))
    rec = json.loads(state.read_text())["studies"][bad]
    assert rec["status"] == "failed" and rec["message"].startswith("internal error") and "boom in the writer" in rec["message"]
    assert poll(_client(pacs), state, process, stable_age_s=0).failed == []
