"""`radagent verify`, agent.case.verify and POST /cases/{id}/verify on the real-CT case with synthetic lesions
(tests/cases.py): exit codes (0 all supported, 1 an unsupported claim, 2 bad input naming the file), the listing
and --json output, markdown and stdin input, and the HTTP route (token, unknown case, empty text).

The true sentences state the case's construction (sector angles, a cyst in the right kidney, a non-contrast
study measured here from the CT's aorta), never values read from findings.json.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from scipy import ndimage

from agent.api import ServerSettings, create_app
from agent.case import verify
from agent.cli import main
from tests.cases import build_case

TOKEN = "verify-token-5b1e0c77"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("verify_root")


@pytest.fixture(scope="module")
def case(root):
    return build_case(root / "case1")


@pytest.fixture(scope="module")
def true_text(case) -> str:
    tr = case["truth"]
    assert tr["ivc"]["angle"] > 180 > tr["aorta"]["angle"]  # encasement vs abutment by construction
    core = ndimage.binary_erosion(case["masks"]["aorta"])
    assert float(np.median(case["hu"][core])) < 80  # no arterial contrast
    return ("# Report\n\n## Findings\n"
            "- The study is a non-contrast CT.\n"
            f"- A tumour encases the inferior vena cava (about {tr['ivc']['angle']:.0f} degrees).\n"
            "- Another tumour abuts the aorta.\n"
            "- There is a cyst in the right kidney.\n")


BAD = "We recommend biopsy of the left renal lesion. No distant metastases."


@pytest.fixture(scope="module")
def out_dir(case, tmp_path_factory):
    d = tmp_path_factory.mktemp("verify_out") / "analysis"
    d.mkdir()
    (d / "findings.json").write_text(case["findings"].to_json())
    return d


# --- Python ---------------------------------------------------------------------------------------
def test_python_api(case, true_text):
    v = verify(case["findings"], true_text)
    assert v.ok and len(v.sentences) == 4, v
    assert all(c.verdict == "supported" for s in v.sentences for c in s.claims)
    v = verify(case["findings"], true_text + BAD)
    assert not v.ok
    bad = [s for s in v.sentences if not s.ok]
    assert [s.text for s in bad] == ["We recommend biopsy of the left renal lesion.", "No distant metastases."]
    assert {c.type for s in bad for c in s.claims if c.verdict == "unsupported"} == {"recommendation", "negative"}
    assert all(c.reason for s in v.sentences for c in s.claims)


# --- CLI ------------------------------------------------------------------------------------------
def test_cli_exit_codes_and_listing(out_dir, true_text, tmp_path):
    good = tmp_path / "good.md"
    good.write_text(true_text)
    r = CliRunner().invoke(main, ["verify", str(out_dir), str(good)])  # an analyze output folder
    assert r.exit_code == 0, r.output
    assert "encases the inferior vena cava" in r.output and "UNSUPPORTED" not in r.output
    bad = tmp_path / "bad.txt"
    bad.write_text(true_text + BAD)
    r = CliRunner().invoke(main, ["verify", str(out_dir / "findings.json"), str(bad)])
    assert r.exit_code == 1, r.output
    assert "UNSUPPORTED" in r.output and "biopsy" in r.output and "metasta" in r.output


def test_cli_json_and_stdin(out_dir, true_text):
    r = CliRunner().invoke(main, ["verify", str(out_dir), "-", "--json"], input=true_text + BAD)
    assert r.exit_code == 1, r.output
    data = json.loads(r.output)
    assert data["ok"] is False and data["counts"]["unsupported"] >= 2
    claims = [c for s in data["sentences"] for c in s["claims"]]
    assert {"type", "text", "verdict", "reason", "finding_ids"} <= set(claims[0])
    assert {c["verdict"] for c in claims} <= {"supported", "unsupported", "not_checkable"}


@pytest.mark.parametrize("what", ["no_findings", "bad_findings", "no_text", "empty_text", "binary_text", "text_dir"])
def test_cli_bad_input_exits_2_naming_the_file(out_dir, tmp_path, what):
    findings, text = out_dir, tmp_path / "r.txt"
    text.write_text("The study is a non-contrast CT.")
    if what == "no_findings":
        findings = tmp_path / "missing"
    elif what == "bad_findings":
        findings = tmp_path / "findings.json"
        findings.write_text("{not json")
    elif what == "no_text":
        text = tmp_path / "absent.md"
    elif what == "empty_text":
        text.write_text("  \n")
    elif what == "binary_text":
        text.write_bytes(b"\x89PNG\x00\x00\xff\xfe")
    elif what == "text_dir":
        text = tmp_path
    r = CliRunner().invoke(main, ["verify", str(findings), str(text)])
    assert r.exit_code == 2, r.output
    named = findings if what in ("no_findings", "bad_findings") else text
    assert str(named) in r.output, r.output


# --- HTTP -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(root, case):
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN))) as c:
        yield c


@pytest.fixture(scope="module")
def case_id(client):
    r = client.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"}, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_http_verify(client, case_id, true_text):
    r = client.post(f"/cases/{case_id}/verify", json={"text": true_text}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and len(r.json()["sentences"]) == 4
    r = client.post(f"/cases/{case_id}/verify", json={"text": true_text + BAD}, headers=AUTH)
    assert r.status_code == 200 and r.json()["ok"] is False
    bad = [s["text"] for s in r.json()["sentences"] if any(c["verdict"] == "unsupported" for c in s["claims"])]
    assert bad == ["We recommend biopsy of the left renal lesion.", "No distant metastases."]


def test_http_verify_refuses(client, case_id):
    assert client.post(f"/cases/{case_id}/verify", json={"text": "x"}).status_code == 401
    assert client.post(f"/cases/{case_id}/verify", json={"text": "x"},
                       headers={"Authorization": "Bearer wrong-token-000"}).status_code == 401
    assert client.post(f"/cases/{case_id}/verify", json={"text": ""}, headers=AUTH).status_code == 422
    assert client.post(f"/cases/{case_id}/verify", json={"text": "   "}, headers=AUTH).status_code == 422
    assert client.post(f"/cases/{case_id}/verify", json={"txt": "a"}, headers=AUTH).status_code == 422
    assert client.post("/cases/0123456789abcdef/verify", json={"text": "a"}, headers=AUTH).status_code in (404, 422)
    spec = client.get("/openapi.json", headers=AUTH).json()
    assert "post" in spec["paths"]["/cases/{case_id}/verify"]
