"""Mask intake, one rule for the CLI, the HTTP API and the dataset builder (issue 10, observation 1).

Before: a single mask file whose name is no structure name was read as a TotalSegmentator `total`
multilabel, so its label 1 became the spleen: the LIDC-IDRI-0001 nodule VOI with its nodule mask gave
"spleen 8.09 mL" and no lesion; the IBSI STS_019 sarcoma mask uploaded as ``masks.nii.gz`` gave
"spleen 17.4 mL"; ``--strict-masks`` caught neither. Now such a file is refused (exit 2 / HTTP 422 / a
failed dataset case, naming the file and how to name it) unless the user says what it holds
(``--mask-label``, API ``mask_label``, manifest ``mask_label``), and the three surfaces then give the
same findings. Truth (voxel count x voxel volume) is computed here from nibabel's arrays alone.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent import case as case_service
from agent.api import ServerSettings, create_app
from agent.cli import main
from agent.dataset import BuildOptions, DatasetError, build_dataset, discover_cases
from perception.errors import MaskError
from perception.io import load_ct
from perception.masks import load_masks, multilabel_task
from tests.conftest import data_path

TOKEN = "mask-intake-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _truth_ml(mask_file: Path) -> tuple[int, float]:
    img = nib.load(str(mask_file))
    n = int(np.count_nonzero(np.asanyarray(img.dataobj)))
    return n, n * abs(float(np.linalg.det(img.affine[:3, :3]))) / 1000.0


def _cli(args: list) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["analyze"] + [str(a) for a in args])
    return r.exit_code, " ".join(r.output.split())


def _sources_out(obj):
    """Findings with every 'source' and provenance 'mask_file' value (a path each surface names its own way)
    blanked."""
    if isinstance(obj, dict):
        return {k: ("<source>" if k in ("source", "mask_file") and isinstance(v, str) else _sources_out(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_sources_out(v) for v in obj]
    return obj


# --- the observations, reproduced -------------------------------------------------------------------

def test_lidc_nodule_mask_with_unknown_name_is_refused_not_a_spleen(tmp_path):
    ct = data_path("lidc_nodules", "VOIs", "image", "LIDC-IDRI-0001_R_1.nii.gz")
    mask = data_path("lidc_nodules", "VOIs", "nodule_mask", "LIDC-IDRI-0001_R_1.nii.gz")
    code, text = _cli([ct, "--masks", mask, "-o", tmp_path / "out"])
    assert code == 2 and not (tmp_path / "out").exists(), text
    assert "LIDC-IDRI-0001_R_1.nii.gz" in text and "no structure name" in text and "--mask-label" in text
    with pytest.raises(MaskError, match="no structure name"):
        case_service.measure(ct, mask)
    f = case_service.measure(ct, mask, mask_label="lung_nodule")
    n, ml = _truth_ml(mask)
    assert f.organ("spleen") is None and len(f.lesions) == 1
    assert f.lesions[0].mask == "lung_nodule" and [m.voxel_count for m in f.masks] == [n]
    assert f.lesions[0].volume_ml == pytest.approx(ml, abs=1e-3)


def test_mask_label_is_validated_with_did_you_mean(tmp_path):
    ct = data_path("lidc_nodules", "VOIs", "image", "LIDC-IDRI-0001_R_1.nii.gz")
    mask = data_path("lidc_nodules", "VOIs", "nodule_mask", "LIDC-IDRI-0001_R_1.nii.gz")
    code, text = _cli([ct, "--masks", mask, "--mask-label", "lung_nodle", "-o", tmp_path / "out"])
    assert code == 2 and "lung_nodle" in text and "did you mean 'lung_nodule'" in text
    code, text = _cli([ct, "--mask-label", "gtv", "-o", tmp_path / "o2"])
    assert code == 2 and "no masks were given" in text


# --- one path under CLI, API and dataset build ------------------------------------------------------

@pytest.fixture(scope="module")
def sts(tmp_path_factory) -> dict:
    """STS_019 in a data root, its expert GTV mask stored as the web upload used to store it (masks.nii.gz)."""
    root = tmp_path_factory.mktemp("intake")
    (root / "sts").mkdir()
    shutil.copyfile(data_path("ibsi_sts", "STS_019", "CT_image.nii.gz"), root / "sts" / "CT_image.nii.gz")
    shutil.copyfile(data_path("ibsi_sts", "STS_019", "CT_mask.nii.gz"), root / "sts" / "masks.nii.gz")
    return dict(root=root, ct=root / "sts" / "CT_image.nii.gz", mask=root / "sts" / "masks.nii.gz")


def _api(sts, work: Path, label: str | None) -> dict:
    out = {}
    with TestClient(create_app(ServerSettings(data_root=sts["root"], token=TOKEN, cases_dir=work / "api"))) as c:
        body = {"ct": "sts/CT_image.nii.gz", "masks": "sts/masks.nii.gz"} | ({"mask_label": label} if label else {})
        r = c.post("/cases/from-path?wait=true", json=body, headers=AUTH)
        out["path_status"], out["path_detail"] = r.status_code, r.json()
        if r.status_code == 201:
            out["path"] = c.get(f"/cases/{r.json()['id']}/findings", headers=AUTH).json()
            assert r.json()["inputs"].get("mask_label") == label
        with open(sts["ct"], "rb") as fct, open(sts["mask"], "rb") as fm:
            r = c.post("/cases?wait=true", files={"ct": ("CT_image.nii.gz", fct), "masks": ("masks.nii.gz", fm)},
                       data={"mask_label": label} if label else None, headers=AUTH)
        out["upload_status"], out["upload_detail"] = r.status_code, r.json()
        if r.status_code == 201:
            out["upload"] = c.get(f"/cases/{r.json()['id']}/findings", headers=AUTH).json()
    return out


def _dataset(sts, work: Path, label: str | None):
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "ct", "masks", "mask_label"])
        w.writerow(["sts019", str(sts["ct"]), str(sts["mask"]), label or ""])
    s = build_dataset(manifest, work / "ds", BuildOptions(workers=1))
    return s, work / "ds"


def test_same_files_same_findings_through_cli_api_and_dataset(sts, tmp_path):
    n, ml = _truth_ml(sts["mask"])
    code, text = _cli([sts["ct"], "--masks", sts["mask"], "--mask-label", "gtv", "-o", tmp_path / "cli"])
    assert code == 0, text
    cli = json.loads((tmp_path / "cli" / "findings.json").read_text())
    assert [(x["mask"], x["kind"]) for x in cli["lesions"]] == [("gtv", "tumor")]
    assert cli["lesions"][0]["volume_ml"] == pytest.approx(ml, abs=1e-3)
    assert [(m["name"], m["voxel_count"]) for m in cli["masks"]] == [("gtv", n)]
    assert not any(o["name"] == "spleen" for o in cli["organs"])

    api = _api(sts, tmp_path, "gtv")
    assert api["path_status"] == 201 and api["upload_status"] == 201, api
    s, ds = _dataset(sts, tmp_path, "gtv")
    assert (s.done, s.failed) == (1, 0)
    dset = json.loads((ds / "cases" / "sts019" / "findings.json").read_text())
    want = _sources_out(cli)
    for name, got in (("api from-path", api["path"]), ("api upload", api["upload"]), ("dataset", dset)):
        assert _sources_out(got) == want, name
    rec = json.loads((ds / "cases" / "sts019" / "case.json").read_text())
    assert rec["inputs"]["mask_label"] == "gtv"


def test_same_files_refused_through_cli_api_and_dataset_without_mask_label(sts, tmp_path):
    code, text = _cli([sts["ct"], "--masks", sts["mask"], "-o", tmp_path / "cli"])
    assert code == 2 and not (tmp_path / "cli").exists()
    assert "masks.nii.gz" in text and "no structure name" in text and "--mask-label" in text
    api = _api(sts, tmp_path, None)
    for k in ("path", "upload"):
        assert api[f"{k}_status"] == 422, api
        detail = api[f"{k}_detail"]["detail"]
        assert "masks.nii.gz" in detail and "no structure name" in detail and "mask_label" in detail
    s, ds = _dataset(sts, tmp_path, None)
    assert (s.done, s.failed) == (0, 1)
    err = json.loads((ds / "errors.jsonl").read_text().splitlines()[0])
    assert (err["stage"], err["error_type"]) == ("load_masks", "MaskError") and "masks.nii.gz" in err["message"]


def test_api_refuses_unknown_mask_label(sts, tmp_path):
    with TestClient(create_app(ServerSettings(data_root=sts["root"], token=TOKEN, cases_dir=tmp_path / "api"))) as c:
        r = c.post("/cases/from-path?wait=true", json={"ct": "sts/CT_image.nii.gz", "masks": "sts/masks.nii.gz",
                                                       "mask_label": "gvt"}, headers=AUTH)
        assert r.status_code == 422 and "did you mean 'gtv'" in r.text
        with open(sts["ct"], "rb") as fct, open(sts["mask"], "rb") as fm:
            r = c.post("/cases?wait=true", files={"ct": ("CT_image.nii.gz", fct), "masks": ("masks.nii.gz", fm)},
                       data={"mask_label": "gvt"}, headers=AUTH)
        assert r.status_code == 422 and "did you mean 'gtv'" in r.text
        assert not [p for p in (tmp_path / "api").iterdir() if not p.name.startswith(".")]


def test_manifest_mask_label_validated_and_hashed(sts, tmp_path):
    m = tmp_path / "m.csv"
    m.write_text(f"case_id,ct,masks,mask_label\na,{sts['ct']},{sts['mask']},gvt\n")
    with pytest.raises(DatasetError, match="did you mean 'gtv'"):
        discover_cases(m)
    from agent.dataset.hashing import HashCache, input_hash

    m.write_text(f"case_id,ct,masks,mask_label\na,{sts['ct']},{sts['mask']},gtv\nb,{sts['ct']},{sts['mask']},lesion\n")
    a, b = discover_cases(m)
    assert (a.mask_label, b.mask_label) == ("gtv", "lesion")
    assert input_hash(a, HashCache()) != input_hash(b, HashCache())


# --- the rules, file by file ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """TotalSegmentator's example crop and its `total` multilabel output (41 labels)."""
    d = tmp_path_factory.mktemp("rules")
    ct = load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = nib.load(str(data_path("totalseg", "example_seg.nii.gz")))
    return dict(dir=d, ct=ct, seg=np.asanyarray(seg.dataobj).astype(np.int16), aff=seg.affine)


def _save(small, arr, name) -> Path:
    p = small["dir"] / name
    p.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, small["aff"]), str(p))
    return p


@pytest.mark.parametrize("name", ["segmentations.nii.gz", "total.nii.gz", "example_seg.nii.gz", "ct_seg.nii.gz"])
def test_totalseg_named_multilabel_is_read_with_the_total_map(small, name):
    ls = load_masks(_save(small, small["seg"], name), small["ct"])
    labels = set(np.unique(small["seg"]).tolist()) - {0}
    assert len(labels) == 41 and multilabel_task(Path(name)) == "total"
    assert ls.masks["liver"].voxel_count == int(np.count_nonzero(small["seg"] == 5)) > 0  # total id 5: liver
    assert ls.ignored == []


def test_multilabel_values_and_names_must_agree(small):
    # the same multilabel under a name that is no multilabel name: a class map is needed
    p = _save(small, small["seg"], "masks.nii.gz")
    with pytest.raises(MaskError, match=r"masks.nii.gz.*no structure name.*41 label values.*--class-map"):
        load_masks(p, small["ct"])
    # named like TotalSegmentator output but holding an id `total` does not have
    bad = small["seg"].copy()
    bad[bad == 5] = 200
    with pytest.raises(MaskError, match=r"labels 200 are not ids of that task"):
        load_masks(_save(small, bad, "segmentations_bad.nii.gz"), small["ct"])
    # named like multilabel output but one label only: a binary mask, whose name says nothing
    with pytest.raises(MaskError, match="single label"):
        load_masks(_save(small, (small["seg"] == 5).astype(np.uint8), "seg.nii.gz"), small["ct"])


def test_explicit_class_map_records_labels_it_does_not_name(small, tmp_path):
    cm = tmp_path / "cm.json"
    cm.write_text(json.dumps({"5": "liver", "1": "spleen"}))
    p = _save(small, small["seg"], "anything.nii.gz")
    ls = load_masks(p, small["ct"], cm)
    assert set(ls.masks) == {"liver", "spleen"}
    assert ls.masks["liver"].voxel_count == int(np.count_nonzero(small["seg"] == 5))
    present = sorted(set(np.unique(small["seg"]).tolist()) - {0, 1, 5})
    assert [d["name"] for d in ls.ignored] == [f"label {v}" for v in present]
    assert all(d["reason"] == "label id not in the class map" and d["source"].startswith(str(p)) for d in ls.ignored)
    with pytest.raises(MaskError, match="--strict-masks"):
        load_masks(p, small["ct"], cm, strict=True)
    with pytest.raises(MaskError, match="both --mask-label"):
        load_masks(p, small["ct"], cm, mask_label="liver")


def test_soft_and_non_binary_masks_refused(small):
    soft = (small["seg"] == 5).astype(np.float32) * 0.37
    with pytest.raises(MaskError, match=r"liver_soft.nii.gz.*non-integer.*0.37.*soft"):
        load_masks(_save(small, soft, "liver_soft.nii.gz"), small["ct"], mask_label="liver")
    two = np.where(small["seg"] == 5, 1, np.where(small["seg"] == 1, 2, 0)).astype(np.uint8)
    with pytest.raises(MaskError, match=r"liver.nii.gz: expected a binary mask.*2 label values \(1, 2\)"):
        load_masks(_save(small, two, "liver.nii.gz"), small["ct"])
    folder = small["dir"] / "folder_two"
    _save(small, two, "folder_two/liver.nii.gz")
    with pytest.raises(MaskError, match="folder of masks"):
        load_masks(folder, small["ct"])
    # 0/255 is one label: accepted as binary
    ls = load_masks(_save(small, ((small["seg"] == 5) * 255).astype(np.uint8), "liver255/liver.nii.gz"), small["ct"])
    assert ls.masks["liver"].voxel_count == int(np.count_nonzero(small["seg"] == 5))


def test_folder_unknown_names_recorded_and_strict(small, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    liver = (small["seg"] == 5).astype(np.uint8)
    for name in ("liver", "livr", "pancreas_mass"):
        nib.save(nib.Nifti1Image(liver, small["aff"]), str(folder / f"{name}.nii.gz"))
    ls = load_masks(folder, small["ct"])
    got = {d["name"]: d for d in ls.ignored}
    assert set(got) == {"livr", "pancreas_mass"}
    assert got["livr"]["did_you_mean"][0] == "liver" and got["livr"]["source"] == str(folder / "livr.nii.gz")
    assert all(d["reason"].startswith("unknown structure name") for d in ls.ignored)
    with pytest.raises(MaskError, match=r"--strict-masks: 2 mask\(s\).*'livr'.*did you mean 'liver'"):
        load_masks(folder, small["ct"], strict=True)
    with pytest.raises(MaskError, match="names the structure of one mask file"):
        load_masks(folder, small["ct"], mask_label="liver")
    f = case_service.measure(small["ct"].source, folder)
    assert {m.name for m in f.ignored_masks} >= {"livr", "pancreas_mass"}
