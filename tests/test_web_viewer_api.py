"""The viewer's volumes over HTTP (GET /cases/{id}/viewer, /cases/{id}/viewer/{ct,organs,lesions}.nii.gz):
the label volumes hold exactly the masks the test painted (truth from tests/cases.build_case, not from
perception), the CT is the case's own file or an exact copy, and what cannot be served is refused."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from agent.api import ServerSettings, create_app
from tests.cases import build_case

TOKEN = "viewer-token-3b1d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _nifti(body: bytes) -> nib.Nifti1Image:
    assert body[:2] == b"\x1f\x8b", "expected a gzip stream"
    return nib.Nifti1Image.from_bytes(gzip.decompress(body))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer_root")
    case = build_case(root / "case1")
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN))) as c:
        r = c.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"}, headers=AUTH)
        assert r.status_code == 201, r.text
        yield {"client": c, "root": root, "case": case, "cid": r.json()["id"]}


def test_label_volumes_hold_the_painted_masks(setup):
    c, cid, case = setup["client"], setup["cid"], setup["case"]
    info = c.get(f"/cases/{cid}/viewer", headers=AUTH).json()
    f = c.get(f"/cases/{cid}/findings", headers=AUTH).json()
    assert [x["id"] for x in info["lesions"]] == [x["id"] for x in f["lesions"]]
    assert info["windows"]["lung"] == [1500.0, -600.0] and info["axial_axis"] == f["study"]["axial_axis"]

    les = _nifti(c.get(info["volumes"]["lesions"], headers=AUTH).content)
    assert np.allclose(les.affine, case["aff"]) and les.shape == case["hu"].shape
    lab = np.asanyarray(les.dataobj)
    assert lab.dtype == np.uint8
    # each painted lesion is exactly one label, and that label is nothing else
    for key in ("hypo", "iso", "kidney_tumor", "kidney_cyst", "pancreas"):
        truth = case["truth"][key]["mask"]
        values = np.unique(lab[truth])
        assert len(values) == 1 and values[0] > 0, (key, values)
        assert np.array_equal(lab == values[0], truth), key
        assert info["lesions"][values[0] - 1]["id"] == f["lesions"][values[0] - 1]["id"]
    # the 1-voxel speck below the minimum size is no lesion, so it is not in the volume
    assert int(lab[case["masks"]["liver_lesion"] & ~case["truth"]["hypo"]["mask"] & ~case["truth"]["hyper"]["mask"]]
               .max()) == 0
    assert {int(v) for v in np.unique(lab)} == set(range(len(f["lesions"]) + 1))

    org = np.asanyarray(_nifti(c.get(info["volumes"]["organs"], headers=AUTH).content).dataobj)
    by_name = {o["name"]: o["label"] for o in info["organs"]}
    for name in ("liver", "spleen", "kidney_left", "aorta"):
        if name in by_name:
            assert np.array_equal(org == by_name[name], case["masks"][name]), name
    assert "liver" in by_name and "spleen" in by_name


def test_gzip_ct_is_the_case_file_itself(setup):
    c, cid, root = setup["client"], setup["cid"], setup["root"]
    info = c.get(f"/cases/{cid}/viewer", headers=AUTH).json()
    body = c.get(info["volumes"]["ct"], headers=AUTH).content
    assert body == (root / "case1" / "ct.nii.gz").read_bytes()
    assert info["sizes_bytes"]["ct"] == len(body)


def test_uncompressed_ct_is_sent_as_an_exact_gzip_copy(setup):
    c, root, case = setup["client"], setup["root"], setup["case"]
    folder = root / "case_nii"
    shutil.copytree(root / "case1", folder)
    nib.save(nib.load(folder / "ct.nii.gz"), folder / "plain.nii")
    (folder / "ct.nii.gz").unlink()
    r = c.post("/cases/from-path?wait=true", json={"ct": "case_nii/plain.nii", "masks": "case_nii"}, headers=AUTH)
    assert r.status_code == 201, r.text
    img = _nifti(c.get(f"/cases/{r.json()['id']}/viewer/ct.nii.gz", headers=AUTH).content)
    assert np.array_equal(np.asanyarray(img.dataobj), np.asanyarray(nib.load(folder / "plain.nii").dataobj))
    assert np.allclose(img.affine, case["aff"])


def test_refusals(setup):
    c, cid, root = setup["client"], setup["cid"], setup["root"]
    assert c.get(f"/cases/{cid}/viewer/ct.nii.gz").status_code == 401
    assert c.get(f"/cases/{cid}/viewer/hu.nii.gz", headers=AUTH).status_code == 422
    assert c.get(f"/cases/{'0' * 32}/viewer", headers=AUTH).status_code == 404
    # a CT removed from the data root after the analysis: refused naming it, no viewer folder left behind
    folder = root / "case_gone"
    shutil.copytree(root / "case1", folder)
    r = c.post("/cases/from-path?wait=true", json={"ct": "case_gone/ct.nii.gz", "masks": "case_gone"}, headers=AUTH)
    assert r.status_code == 201
    gone = r.json()["id"]
    (folder / "ct.nii.gz").unlink()
    r = c.get(f"/cases/{gone}/viewer", headers=AUTH)
    assert r.status_code == 422 and "ct.nii.gz" in r.json()["detail"], r.text
    out = next(root.glob(f"*/{gone}/out"))
    assert sorted(p.name for p in out.iterdir() if "viewer" in p.name) == []
    # a CT replaced by another image after the analysis: the findings do not belong to it
    folder2 = root / "case_swap"
    shutil.copytree(root / "case1", folder2)
    r = c.post("/cases/from-path?wait=true", json={"ct": "case_swap/ct.nii.gz", "masks": "case_swap"}, headers=AUTH)
    swap = r.json()["id"]
    img = nib.load(folder2 / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:, :, :-1], img.affine), folder2 / "ct.nii.gz")
    r = c.get(f"/cases/{swap}/viewer", headers=AUTH)
    assert r.status_code == 422 and "not the one these findings were measured on" in r.json()["detail"], r.text
