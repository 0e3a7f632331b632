"""Follow-up through the HTTP API: POST /cases/{id}/compare with prior case ids (perception.followup.compare
on the real-CT pair of tests/followup_cases.py), GET /cases/{id}/comparison, change questions on /ask and the
COMPARISON section on /report; refusals (the case itself or a repeated prior, unknown or unfinished cases, no
comparison yet). Truth: the painted lesions (2 persisting, 1 new, 1 disappeared; the liver lesion A grows
from radius 9 to 13 mm) and the per-time-point findings each case's analysis wrote."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from agent.api import ServerSettings, create_app
from tests.followup_cases import build_pair, nearest

TOKEN = "test-token-followup-16b"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("followup_api_root")
    pair = build_pair(root)
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN))) as client:
        ids = []
        for t in (0, 1):
            r = client.post("/cases/from-path?wait=true", json={"ct": f"ct{t}/ct.nii.gz", "masks": f"ct{t}"}, headers=AUTH)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        yield client, ids, pair, root


def test_compare_ask_report(setup):
    client, (prior, cur), pair, root = setup
    q = {"question": "Are there new lesions since the prior?", "mode": "deterministic"}
    before = client.post(f"/cases/{cur}/ask", json=q, headers=AUTH).json()["answer"]
    assert before["status"] == "cannot_be_determined" and "no prior study" in before["reason"]
    assert client.get(f"/cases/{cur}/comparison", headers=AUTH).status_code == 404

    r = client.post(f"/cases/{cur}/compare", json={"priors": [prior]}, headers=AUTH)
    assert r.status_code == 200, r.text
    c = r.json()
    assert str(root) not in r.text  # no server path is shown
    assert [s["analyze_dir"] for s in c["studies"]] == [f"<case {prior}>/out", f"<case {cur}>/out"]
    states = sorted(t["state"] for t in c["lesions"])
    assert states == ["disappeared", "new", "persisting", "persisting"]
    assert c["recist"]["overall_response"] == "PD" and len(c["recist"]["new_lesions"]) == 1
    assert client.get(f"/cases/{cur}/comparison", headers=AUTH).json() == c

    f0, f1 = (x.findings for x in pair["cases"])
    a1 = nearest(f1, pair["centres"]["A"])
    a = client.post(f"/cases/{cur}/ask", json=q, headers=AUTH).json()["answer"]
    new = next(t for t in c["lesions"] if t["state"] == "new")
    assert a["answer"] == "yes" and new["tracking_id"] in a["finding_ids"]
    grow = client.post(f"/cases/{cur}/ask", json={"question": f"By how much has {a1} grown since the prior, in mm?"},
                       headers=AUTH).json()["answer"]
    a0 = nearest(f0, pair["centres"]["A"])
    la = {les.id: les.long_axis_mm for les in f1.lesions}[a1] - {les.id: les.long_axis_mm for les in f0.lesions}[a0]
    assert grow["unit"] == "mm" and grow["answer"] == pytest.approx(round(la, 1))

    md = client.get(f"/cases/{cur}/report?format=md", headers=AUTH).text
    assert "## COMPARISON" in md and "overall response PD" in md
    tid = next(t["tracking_id"] for t in c["lesions"] if t["measurements"][1]["lesion_id"] == a1)
    assert f"![{tid}, time point 0](comparison/{tid}_tp0.png)" in md
    html = client.get(f"/cases/{cur}/report?format=html", headers=AUTH).text
    assert f'id="cmp-{tid}"' in html and html.count("data:image/png;base64,") >= len(f1.lesions) + 2
    rj = json.loads(client.get(f"/cases/{cur}/report?format=json", headers=AUTH).text)
    assert rj["comparison"]["images"][tid] == [f"comparison/{tid}_tp0.png", f"comparison/{tid}_tp1.png"]


def test_compare_refusals(setup):
    client, (prior, cur), _, _ = setup
    assert client.post(f"/cases/{cur}/compare", json={"priors": [cur]}, headers=AUTH).status_code == 422
    assert client.post(f"/cases/{cur}/compare", json={"priors": [prior, prior]}, headers=AUTH).status_code == 422
    assert client.post(f"/cases/{cur}/compare", json={"priors": []}, headers=AUTH).status_code == 422
    assert client.post(f"/cases/{cur}/compare", json={"priors": ["0" * 32]}, headers=AUTH).status_code == 404
    assert client.post(f"/cases/{cur}/compare", json={"priors": [prior], "extra": 1}, headers=AUTH).status_code == 422
    assert client.post(f"/cases/{cur}/compare", json={"priors": [prior]}).status_code == 401
    assert client.get(f"/cases/{prior}/comparison", headers=AUTH).status_code == 404
