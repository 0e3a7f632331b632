"""HTTP API (agent.api) through FastAPI's TestClient: auth, upload limits, path confinement,
per-case isolation, and real cases end to end (tests/cases.build_case placed in the data root;
the TotalSegmentator example CT + multilabel segmentation uploaded as multipart).

Truth (lesion count, the left-kidney lesion volume) is computed here from the case's masks with
scipy connected components, independently of perception and reasoning.vqa.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scipy import ndimage

from agent.api import ServerSettings, create_app
from tests.cases import VOX, build_case
from tests.conftest import data_path

TOKEN = "test-token-7f3a9c2e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VOX_ML = VOX**3 / 1000.0
# the recognised lesion masks of build_case (retroperitoneal_tumor_aorta is an unknown name, not a lesion)
LESION_MASKS = ["liver_lesion", "spleen_lesion", "kidney_lesion", "kidney_cyst_right", "pancreatic_lesion", "tumor"]
ORGANS = ["liver", "spleen", "pancreas", "kidney_left", "kidney_right", "stomach", "duodenum", "gallbladder", "colon",
          "small_bowel", "aorta", "inferior_vena_cava"]
KIDNEY_Q = "What is the volume of the largest lesion in the left kidney?"


def components(masks: dict, names: list[str], min_vox: int, min_mm3: float) -> list[np.ndarray]:
    out = []
    for name in names:
        lab, n = ndimage.label(masks[name], structure=np.ones((3, 3, 3)))
        for k in range(1, n + 1):
            c = lab == k
            if c.sum() >= min_vox and c.sum() * VOX**3 >= min_mm3:
                out.append(c)
    return out


def host(comp: np.ndarray, masks: dict) -> str:
    return max(ORGANS, key=lambda o: (comp & masks[o]).sum() if o in masks else -1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_root")


@pytest.fixture(scope="module")
def case(root) -> dict:
    return build_case(root / "case1")


@pytest.fixture(scope="module")
def client(root, case):
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN))) as c:
        yield c


@pytest.fixture(scope="module")
def done_case(client) -> str:
    r = client.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"}, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def cases_dir(root: Path) -> Path:
    return root / ".radagent-cases"


def case_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def upload(client, files: dict, wait=True, headers=AUTH):
    return client.post("/cases" + ("?wait=true" if wait else ""), files=files, headers=headers)


def totalseg_files() -> dict:
    ct, seg = data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz")
    return {"ct": (ct.name, ct.read_bytes(), "application/gzip"), "masks": (seg.name, seg.read_bytes(), "application/gzip")}


# --- auth -----------------------------------------------------------------------------------------------
def test_public_routes_need_no_token(client):
    assert client.get("/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    for other in ("/static/../api.py", "/static/index.html", "/static/x.js", "/docs"):  # only the listed assets
        assert client.get(other).status_code in (401, 404), other


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-123"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"}])
def test_auth_refuses_missing_and_bad_tokens(client, done_case, headers):
    cid = done_case
    calls = [("GET", "/cases"), ("GET", "/openapi.json"), ("GET", f"/cases/{cid}"), ("GET", f"/cases/{cid}/findings"),
             ("GET", f"/cases/{cid}/lesions/L1/key-image"), ("GET", f"/cases/{cid}/report"),
             ("POST", f"/cases/{cid}/ask"), ("POST", f"/cases/{cid}/chat"), ("POST", "/cases/from-path"),
             ("POST", "/cases"), ("DELETE", f"/cases/{cid}")]
    for method, url in calls:
        r = client.request(method, url, headers=headers, json={"message": "x"} if method == "POST" else None)
        assert r.status_code == 401, (method, url, r.status_code)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get(f"/cases/{cid}", headers=AUTH).status_code == 200  # still there


def test_bodies_not_read_without_token_and_capped_with_it(client, done_case):
    big = {"message": "x" * (2 << 20)}
    r = client.post(f"/cases/{done_case}/chat", json=big, headers={"Authorization": "Bearer wrong-token-123"})
    assert r.status_code == 401
    r = client.post(f"/cases/{done_case}/chat", json=big, headers=AUTH)
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"message": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = client.post(f"/cases/{done_case}/ask", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_upload_with_bad_token_writes_nothing(client, root):
    before = case_folders(cases_dir(root))
    r = upload(client, totalseg_files(), headers={"Authorization": "Bearer nope-nope-nope"})
    assert r.status_code == 401
    assert case_folders(cases_dir(root)) == before


# --- upload limits ---------------------------------------------------------------------------------------
def test_oversize_upload_refused_with_nothing_on_disk(root, case, tmp_path):
    store = tmp_path / "cases"
    app = create_app(ServerSettings(data_root=root, token=TOKEN, cases_dir=store, max_upload_mb=0.1))
    with TestClient(app) as c:
        files = totalseg_files()  # the CT alone is ~470 KiB > 100 KiB
        r = upload(c, files)
        assert r.status_code == 413, r.text
        assert "0.1 MiB" in r.json()["detail"]
        assert case_folders(store) == []
        # no Content-Length (chunked): refused while streaming, the partial files removed
        boundary = "radagentboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"ct\"; filename=\"big.nii.gz\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()

        def body():
            yield head
            for _ in range(40):
                yield b"\0" * 8192
            yield f"\r\n--{boundary}--\r\n".encode()

        r = c.post("/cases", content=body(), headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413, r.text
        assert case_folders(store) == []
        # a zip that unpacks past the limit (4 x 0.1 MiB): 413 too
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("liver.nii.gz", b"\0" * (1 << 20))
        tiny_ct = ("ct.nii.gz", b"\x1f\x8b" + b"\0" * 100)
        r = upload(c, {"ct": tiny_ct, "masks": ("masks.zip", buf.getvalue())})
        assert r.status_code == 413, r.text
        assert case_folders(store) == []


# --- server-side paths ------------------------------------------------------------------------------------
def test_paths_outside_the_root_refused(client, root, case, tmp_path):
    outside = tmp_path / "outside"
    (outside / "segmentations").mkdir(parents=True)
    (outside / "ct.nii.gz").write_bytes((case["folder"] / "ct.nii.gz").read_bytes())
    (root / "evil").mkdir(exist_ok=True)
    (root / "evil" / "ct_link.nii.gz").symlink_to(outside / "ct.nii.gz")
    (root / "evil" / "masks_link").symlink_to(outside, target_is_directory=True)
    # a folder inside the root holding one symlink that leads out
    sneaky = root / "sneaky"
    (sneaky / "segmentations").mkdir(parents=True, exist_ok=True)
    (sneaky / "segmentations" / "liver.nii.gz").symlink_to(outside / "ct.nii.gz")
    rel_up = os.path.relpath(outside / "ct.nii.gz", root)  # ../../outside/ct.nii.gz
    before = case_folders(cases_dir(root))
    bad = [
        {"ct": rel_up, "masks": "case1"},
        {"ct": "case1/../../" + rel_up, "masks": "case1"},
        {"ct": str(outside / "ct.nii.gz"), "masks": "case1"},
        {"ct": "/etc/passwd", "masks": "case1"},
        {"ct": "evil/ct_link.nii.gz", "masks": "case1"},
        {"ct": "case1/ct.nii.gz", "masks": "evil/masks_link"},
        {"ct": "case1/ct.nii.gz", "masks": "sneaky"},
        {"ct": "case1/ct.nii.gz", "masks": ".."},
        {"ct": "case1/ct.nii.gz", "masks": "case1", "class_map": "../x.json"},
        {"ct": "case1/ct.nii.gz", "masks": ".radagent-cases"},  # the case storage is not referenceable
    ]
    for body in bad:
        r = client.post("/cases/from-path?wait=true", json=body, headers=AUTH)
        assert r.status_code == 403, (body, r.status_code, r.text)
        given = " ".join(body.values())
        for secret in (str(root), str(outside)):  # nothing the client did not send itself is revealed
            assert secret not in r.text or secret in given, r.text
    r = client.post("/cases/from-path", json={"ct": "case1/ct\x00.nii.gz", "masks": "case1"}, headers=AUTH)
    assert r.status_code == 400
    assert case_folders(cases_dir(root)) == before
    # an absolute path inside the root is fine; a missing one is an input error
    r = client.post("/cases/from-path", json={"ct": str(case["folder"] / "nope.nii.gz"), "masks": "case1"}, headers=AUTH)
    assert r.status_code == 422 and "case1/nope.nii.gz" in r.json()["detail"]
    assert str(root) not in r.text


# --- a real case end to end --------------------------------------------------------------------------------
def test_case_from_path_findings_answer_report_image(client, case, done_case):
    cid = done_case
    info = client.get(f"/cases/{cid}", headers=AUTH).json()
    assert info["status"] == "done" and info["source"] == "path" and info["inputs"]["ct"] == "case1/ct.nii.gz"

    f = client.get(f"/cases/{cid}/findings", headers=AUTH)
    assert f.status_code == 200 and f.headers["content-type"] == "application/json"
    assert f.headers["cache-control"] == "no-store" and f.headers["x-content-type-options"] == "nosniff"
    fj = f.json()
    s = fj["settings"]
    truth = components(case["masks"], LESION_MASKS, s["min_lesion_voxels"], s["min_lesion_volume_mm3"])
    assert len(fj["lesions"]) == len(truth) == info["n_lesions"]
    assert str(case["folder"]) not in f.text  # server paths replaced by names relative to the data root
    assert fj["study"]["source"] == "case1/ct.nii.gz"
    assert client.get(f"/cases/{cid}/findings?format=md", headers=AUTH).text.startswith("#")

    # the question, against truth from the masks
    kidney = [c for c in truth if host(c, case["masks"]) == "kidney_left"]
    want = max(c.sum() for c in kidney) * VOX_ML
    r = client.post(f"/cases/{cid}/ask", json={"question": KIDNEY_Q}, headers=AUTH)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["mode"] == "deterministic" and a["answer"]["status"] == "answered"
    assert a["answer"]["answer"] == pytest.approx(want, rel=1e-3) and a["answer"]["unit"] == "mL"
    # the same as subtype + parameters, and as multiple choice
    r = client.post(f"/cases/{cid}/ask", json={"subtype": "lesion volume measurement", "params": {"organ": "kidney_left"}},
                    headers=AUTH)
    assert r.json()["answer"]["answer"] == pytest.approx(want, rel=1e-3)
    choices = [f"A) {want * 3:.2f} mL", f"B) {want:.2f} mL", f"C) {want * 6:.2f} mL", f"D) {want * 10:.2f} mL"]
    r = client.post(f"/cases/{cid}/ask", json={"question": KIDNEY_Q, "choices": choices}, headers=AUTH)
    assert r.json()["answer"]["answer"] == "B"
    # malformed questions: 422 with the reason; no LLM configured: agent mode refused
    r = client.post(f"/cases/{cid}/ask", json={"subtype": "lesion volumes", "params": {}}, headers=AUTH)
    assert r.status_code == 422 and "lesion volume" in r.json()["detail"]
    assert client.post(f"/cases/{cid}/ask", json={}, headers=AUTH).status_code == 422
    r = client.post(f"/cases/{cid}/ask", json={"question": KIDNEY_Q, "mode": "agent"}, headers=AUTH)
    assert r.status_code == 400 and "--llm" in r.json()["detail"]

    # report
    r = client.get(f"/cases/{cid}/report", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text.lower() and "data:image/png;base64" in r.text
    assert r.headers["x-radagent-report-engine"] == "template"
    md = client.get(f"/cases/{cid}/report?format=md", headers=AUTH)
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert client.get(f"/cases/{cid}/report?format=json", headers=AUTH).json()["engine"] == "template"
    assert client.get(f"/cases/{cid}/report?engine=llm", headers=AUTH).status_code == 400

    # key images: one PNG per lesion, listed in /lesions
    lesions = client.get(f"/cases/{cid}/lesions", headers=AUTH).json()
    assert [x["id"] for x in lesions] == [x["id"] for x in fj["lesions"]]
    img = client.get(lesions[0]["key_image_url"], headers=AUTH)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(img.content))
    assert im.format == "PNG" and im.size[0] > 0 and im.size[1] > 0
    assert client.get(f"/cases/{cid}/lesions/L99/key-image", headers=AUTH).status_code == 404
    assert client.get(f"/cases/{cid}/lesions/..%2Fx/key-image", headers=AUTH).status_code in (404, 422)


def test_case_without_wait_is_polled(client):
    r = client.post("/cases/from-path", json={"ct": "case1/ct.nii.gz", "masks": "case1/segmentations"}, headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "done")
    cid = r.json()["id"]
    deadline = time.time() + 60
    while (st := client.get(f"/cases/{cid}", headers=AUTH).json()["status"]) in ("queued", "running"):
        assert time.time() < deadline
        r = client.get(f"/cases/{cid}/findings", headers=AUTH)
        assert r.status_code in (200, 409)
        time.sleep(0.1)
    assert st == "done"
    assert client.delete(f"/cases/{cid}", headers=AUTH).status_code == 204


# --- isolation ------------------------------------------------------------------------------------------------
def test_case_isolation_and_ids(client, root, done_case):
    cid = done_case
    for bad in ["x", cid.upper(), cid[:-1], cid + "0", "..", f"..%2F{cid}", "%2e%2e"]:
        assert client.get(f"/cases/{bad}/findings", headers=AUTH).status_code == 404, bad
    assert client.get("/cases/" + "0" * 32, headers=AUTH).status_code == 404
    # a second case whose findings.json were tampered to point at the first case's image: refused
    r = client.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"}, headers=AUTH)
    other = r.json()["id"]
    fpath = cases_dir(root) / other / "out" / "findings.json"
    fj = json.loads(fpath.read_text())
    fj["lesions"][0]["key_image"] = f"../../{cid}/out/key_images/L1.png"
    fpath.write_text(json.dumps(fj))
    r = client.get(f"/cases/{other}/lesions/{fj['lesions'][0]['id']}/key-image", headers=AUTH)
    assert r.status_code == 404
    # a case folder replaced by a symlink is not served
    assert client.delete(f"/cases/{other}", headers=AUTH).status_code == 204
    (cases_dir(root) / other).symlink_to(cases_dir(root) / cid, target_is_directory=True)
    assert client.get(f"/cases/{other}", headers=AUTH).status_code == 404
    (cases_dir(root) / other).unlink()
    assert client.get(f"/cases/{other}", headers=AUTH).status_code == 404


# --- uploads ---------------------------------------------------------------------------------------------------
def test_multipart_upload_totalsegmentator_example(client, root):
    r = upload(client, totalseg_files())
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["status"] == "done" and info["source"] == "upload"
    assert info["inputs"] == {"ct": "example_ct_sm.nii.gz", "masks": "example_seg.nii.gz"}
    assert info["n_organs"] > 5 and info["n_lesions"] == 0
    fj = client.get(f"/cases/{info['id']}/findings", headers=AUTH).json()
    assert {"liver", "spleen", "pancreas"} <= {o["name"] for o in fj["organs"]}
    assert str(root) not in json.dumps(fj)
    assert client.delete(f"/cases/{info['id']}", headers=AUTH).status_code == 204
    assert not (cases_dir(root) / info["id"]).exists()
    assert client.get(f"/cases/{info['id']}", headers=AUTH).status_code == 404
    assert client.delete(f"/cases/{info['id']}", headers=AUTH).status_code == 404


def test_zip_of_masks_upload(client, case):
    seg = case["folder"] / "segmentations"
    names = ["liver", "liver_lesion", "kidney_left", "kidney_lesion", "spleen"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in names:
            z.write(seg / f"{n}.nii.gz", f"segmentations/{n}.nii.gz")
        z.writestr("README.txt", "ignored")
    files = {"ct": ("ct.nii.gz", (case["folder"] / "ct.nii.gz").read_bytes()), "masks": ("masks.zip", buf.getvalue())}
    r = upload(client, files)
    assert r.status_code == 201, r.text
    truth = components(case["masks"], ["liver_lesion", "kidney_lesion"], 2, 10.0)
    assert r.json()["n_lesions"] == len(truth)
    client.delete(f"/cases/{r.json()['id']}", headers=AUTH)


def test_corrupt_uploads_refused_with_the_file_named(client, root, case, tmp_path):
    before = case_folders(cases_dir(root))
    good_masks = totalseg_files()["masks"]
    ct_bytes = data_path("totalseg", "example_ct_sm.nii.gz").read_bytes()
    # not a NIfTI at all / truncated gzip
    for name, blob in [("broken_ct.nii.gz", b"this is not a nifti file" * 50), ("cut_ct.nii.gz", ct_bytes[: len(ct_bytes) // 3])]:
        r = upload(client, {"ct": (name, blob), "masks": good_masks})
        assert r.status_code == 422, r.text
        assert name in r.json()["detail"] and "(ct)" in r.json()["detail"]
        assert str(root) not in r.text
    # a corrupt mask, a non-zip .zip, a wrong suffix, an empty file
    r = upload(client, {"ct": ("ct.nii.gz", ct_bytes), "masks": ("bad_seg.nii.gz", b"\x1f\x8b\x08garbage")})
    assert r.status_code == 422 and "bad_seg.nii.gz" in r.json()["detail"]
    r = upload(client, {"ct": ("ct.nii.gz", ct_bytes), "masks": ("masks.zip", b"PK not really")})
    assert r.status_code == 422 and "masks.zip" in r.json()["detail"]
    r = upload(client, {"ct": ("scan.mha", ct_bytes), "masks": good_masks})
    assert r.status_code == 422 and "scan.mha" in r.json()["detail"]
    r = upload(client, {"ct": ("ct.nii.gz", b""), "masks": good_masks})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    # a corrupt member inside a zip: named with the archive
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("liver.nii.gz", b"\x1f\x8b\x08 broken")
    r = upload(client, {"ct": ("ct.nii.gz", ct_bytes), "masks": ("m.zip", buf.getvalue())})
    assert r.status_code == 422 and "m.zip" in r.json()["detail"] and "liver.nii.gz" in r.json()["detail"]
    # zip slip: a member pointing outside the archive
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../escape.nii.gz", b"x")
    r = upload(client, {"ct": ("ct.nii.gz", ct_bytes), "masks": ("slip.zip", buf.getvalue())})
    assert r.status_code == 422 and "outside the archive" in r.json()["detail"]
    assert not any(p.name == "escape.nii.gz" for p in root.parent.rglob("escape.nii.gz"))
    # missing field, unexpected field, a non-multipart body
    assert upload(client, {"ct": ("ct.nii.gz", ct_bytes)}).status_code == 400
    assert upload(client, {"ct": ("ct.nii.gz", ct_bytes), "masks": good_masks, "x": ("x", b"1")}).status_code == 400
    assert client.post("/cases", json={"ct": "x"}, headers=AUTH).status_code == 415
    assert case_folders(cases_dir(root)) == before
    # without wait: accepted, then failed with the message; the uploaded files are removed
    r = upload(client, {"ct": ("broken_ct.nii.gz", b"nope" * 100), "masks": good_masks}, wait=False)
    assert r.status_code == 202
    cid = r.json()["id"]
    deadline = time.time() + 30
    while (info := client.get(f"/cases/{cid}", headers=AUTH).json())["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert info["status"] == "failed" and info["error_kind"] == "input" and "broken_ct.nii.gz" in info["error"]
    r = client.get(f"/cases/{cid}/findings", headers=AUTH)
    assert r.status_code == 422 and "broken_ct.nii.gz" in r.json()["detail"]
    assert not (cases_dir(root) / cid / "input").exists()
    client.delete(f"/cases/{cid}", headers=AUTH)


# --- schema and chat -------------------------------------------------------------------------------------------
def test_openapi_lists_the_endpoints(client):
    r = client.get("/openapi.json", headers=AUTH)
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    want = {"/health": {"get"}, "/cases": {"get", "post"}, "/cases/from-path": {"post"},
            "/cases/{case_id}": {"get", "delete"}, "/cases/{case_id}/findings": {"get"},
            "/cases/{case_id}/lesions": {"get"}, "/cases/{case_id}/lesions/{lesion_id}/key-image": {"get"},
            "/cases/{case_id}/report": {"get"}, "/cases/{case_id}/ask": {"post"}, "/cases/{case_id}/chat": {"post"}}
    for p, methods in want.items():
        assert p in paths, p
        assert methods <= set(paths[p]), (p, set(paths[p]))
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "multipart/form-data" in paths["/cases"]["post"]["requestBody"]["content"]
    assert "text/event-stream" in paths["/cases/{case_id}/chat"]["post"]["responses"]["200"]["content"]
    assert paths["/cases/{case_id}"]["get"]["security"] == [{"bearerAuth": []}]


def read_sse(client, cid: str, body: dict) -> list[tuple[str, dict]]:
    events = []
    with client.stream("POST", f"/cases/{cid}/chat", json=body, headers=AUTH) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_sse_chat_stream_yields_tokens_and_final(client, case, done_case):
    events = read_sse(client, done_case, {"message": KIDNEY_Q})
    kinds = [k for k, _ in events]
    assert kinds[0] == "session" and kinds[-1] == "final" and kinds.count("token") >= 2
    assert set(kinds[1:-1]) == {"token"}
    session = events[0][1]
    assert session["mode"] == "deterministic" and len(session["session_id"]) == 32
    final = events[-1][1]
    assert final["answer"]["answer"] == pytest.approx(case["truth"]["kidney_tumor"]["mask"].sum() * VOX_ML, rel=1e-3)
    assert "".join(d["text"] for k, d in events if k == "token") == final["text"]
    # the session continues; an unmapped question is answered as such, never guessed
    again = read_sse(client, done_case, {"message": "what's the weather?", "session_id": session["session_id"]})
    assert again[0][1]["session_id"] == session["session_id"]
    assert again[-1][1]["answer"]["status"] == "unmapped_question"
    r = client.post(f"/cases/{done_case}/chat", json={"message": ""}, headers=AUTH)
    assert r.status_code == 422


class _ScriptedAgent:
    """Stands in for reasoning.agent.ChatSession (same interface) to check the agent path of the API."""

    def __init__(self, findings, fail=False):
        self.findings, self.fail, self.turns = findings, fail, []

    def ask(self, msg):
        self.turns.append(msg)
        return type("Turn", (), {"text": f"{len(self.findings.lesions)} lesions (turn {len(self.turns)})"})()

    async def astream(self, msg):
        text = self.ask(msg).text
        for w in text.split(" "):
            yield {"type": "token", "text": w + " "}
        if self.fail:
            raise RuntimeError("LLM server went away")
        yield {"type": "final", "text": text, "tool_calls": ["list_lesions"]}


def test_agent_chat_path(root, case, tmp_path):
    settings = ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "c", llm_url="http://127.0.0.1:9/v1")
    for fail in (False, True):
        app = create_app(settings, chat_factory=lambda f, s, fail=fail: _ScriptedAgent(f, fail))
        with TestClient(app) as c:
            cid = c.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"},
                         headers=AUTH).json()["id"]
            events = read_sse(c, cid, {"message": "how many lesions?"})
            assert events[0][1]["mode"] == "agent"
            if fail:
                assert events[-1][0] == "error" and "LLM server went away" in events[-1][1]["detail"]
                continue
            assert events[-1] == ("final", {"type": "final", "text": "8 lesions (turn 1)", "tool_calls": ["list_lesions"]})
            sid = events[0][1]["session_id"]
            events = read_sse(c, cid, {"message": "and the largest?", "session_id": sid})
            assert events[-1][1]["text"].endswith("(turn 2)")  # same session object: multi-turn
            r = c.post(f"/cases/{cid}/ask", json={"question": "how many lesions?"}, headers=AUTH).json()
            assert r["mode"] == "agent" and r["text"].startswith("8 lesions")
            # structured questions stay deterministic
            r = c.post(f"/cases/{cid}/ask", json={"subtype": "lesion counting", "params": {}}, headers=AUTH).json()
            assert r["mode"] == "deterministic"


def test_settings_are_checked(root, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 8 characters"):
        ServerSettings(data_root=root, token="short")
    with pytest.raises(ValidationError, match="expected an existing folder"):
        ServerSettings(data_root=tmp_path / "missing", token=TOKEN)
    with pytest.raises(ValidationError, match="must not be the data root"):
        ServerSettings(data_root=root, token=TOKEN, cases_dir=root)
    assert TOKEN not in repr(ServerSettings(data_root=root, token=TOKEN))
