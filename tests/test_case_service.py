"""One case service under every surface: the same inputs through `radagent analyze`, the HTTP API
and `radagent dataset build` give the same findings.json, key images and report (paths aside).

Also the two surface bugs the shared path fixed: an uploaded single mask file was stored as
``masks.nii.gz`` and read as a TotalSegmentator multilabel (a tumour became the spleen), and the
HTTP chat had its own engine without follow-ups.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent import case as case_service
from agent.api import ServerSettings, create_app
from agent.cli import main
from agent.dataset import BuildOptions, build_dataset
from tests.cases import build_case

TOKEN = "case-service-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("case_service")


@pytest.fixture(scope="module")
def case(root) -> dict:
    return build_case(root / "case1")


def _strip(obj, prefixes: list[str]):
    """Server/host paths removed: every surface names the inputs its own way."""
    if isinstance(obj, str):
        for p in prefixes:
            obj = obj.replace(p, "")
        return obj
    if isinstance(obj, dict):
        return {k: _strip(v, prefixes) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip(v, prefixes) for v in obj]
    return obj


def _sse(client, cid: str, body: dict) -> list[tuple[str, dict]]:
    with client.stream("POST", f"/cases/{cid}/chat", json=body, headers=AUTH) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture(scope="module")
def surfaces(root, case, tmp_path_factory) -> dict:
    """The case through each surface: findings (paths stripped), report.md, key images by lesion id."""
    work = tmp_path_factory.mktemp("surfaces")
    ct, masks = root / "case1" / "ct.nii.gz", root / "case1" / "segmentations"
    prefixes = [str(root) + "/", str(root)]
    got: dict[str, dict] = {}

    r = CliRunner().invoke(main, ["analyze", str(ct), "--masks", str(masks), "-o", str(work / "cli"), "--report"])
    assert r.exit_code == 0, r.output
    cli = case_service.load(work / "cli")
    got["cli"] = dict(findings=_strip(json.loads((work / "cli" / "findings.json").read_text()), prefixes),
                      report=(work / "cli" / "report.md").read_text(), images=cli.key_images)

    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN, cases_dir=work / "api"))) as c:
        r = c.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1/segmentations"},
                   headers=AUTH)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        f = c.get(f"/cases/{cid}/findings", headers=AUTH).json()
        rep = c.get(f"/cases/{cid}/report?format=md&engine=template", headers=AUTH).text
        images = {les["id"]: c.get(les["key_image_url"], headers=AUTH).content
                  for les in c.get(f"/cases/{cid}/lesions", headers=AUTH).json()}
    got["api"] = dict(findings=_strip(f, prefixes), report=rep, images=images)

    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "ct", "masks"])
        w.writerow(["case1", str(ct), str(masks)])
    s = build_dataset(manifest, work / "ds", BuildOptions(workers=1))
    assert (s.done, s.failed) == (1, 0)
    ds = case_service.load(work / "ds" / "cases" / "case1")
    got["dataset"] = dict(findings=_strip(json.loads((work / "ds" / "cases" / "case1" / "findings.json").read_text()),
                                          prefixes),
                          report=(work / "ds" / "cases" / "case1" / "report.md").read_text(), images=ds.key_images)
    return got


def test_same_inputs_same_outputs_through_every_surface(surfaces, case):
    cli = surfaces["cli"]
    assert len(cli["findings"]["lesions"]) == len(case["findings"].lesions) > 0
    assert cli["findings"]["study"]["source"] == "case1/ct.nii.gz"
    for name in ("api", "dataset"):
        other = surfaces[name]
        assert other["findings"] == cli["findings"], name
        assert other["report"] == cli["report"], name
        assert other["images"].keys() == cli["images"].keys() == {x.id for x in case["findings"].lesions}, name
        assert other["images"] == cli["images"], name


def test_uploaded_single_mask_is_read_by_its_name_as_on_the_command_line(root, case, tmp_path):
    """A binary ``kidney_lesion.nii.gz`` uploaded alone is a kidney lesion through the API, exactly as
    `radagent analyze --masks kidney_lesion.nii.gz`; it used to be stored as masks.nii.gz and read as a
    TotalSegmentator multilabel (label 1: spleen)."""
    ct = root / "case1" / "ct.nii.gz"
    mask = root / "case1" / "segmentations" / "kidney_lesion.nii.gz"
    cli = case_service.measure(ct, mask)
    assert [x.mask for x in cli.lesions] == ["kidney_lesion"]  # one lesion (no kidney mask: side not known)
    assert cli.organ("spleen") is None
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "api"))) as c:
        with open(ct, "rb") as fct, open(mask, "rb") as fm:
            r = c.post("/cases?wait=true", files={"ct": ("ct.nii.gz", fct), "masks": ("kidney_lesion.nii.gz", fm)},
                       headers=AUTH)
        assert r.status_code == 201, r.text
        f = c.get(f"/cases/{r.json()['id']}/findings", headers=AUTH).json()
    assert [(x["organ"], x["mask"]) for x in f["lesions"]] == [(x.organ, x.mask) for x in cli.lesions]
    assert not any(o["name"] == "spleen" for o in f["organs"])
    assert [x["volume_ml"] for x in f["lesions"]] == [x.volume_ml for x in cli.lesions]


def test_http_chat_is_the_case_service_chat_with_follow_ups(root, case, tmp_path):
    """Without an LLM the HTTP chat is the same engine as `radagent chat`: follow-ups resolve."""
    turns = ["What is the volume of the largest lesion in the liver?", "and the second largest?"]
    session = case_service.chat(case["findings"])
    local = [session.ask(t).text for t in turns]
    liver = sorted((x for x in case["findings"].lesions if x.organ == "liver"), key=lambda x: -x.volume_ml)
    assert len(liver) >= 2 and f"{liver[1].id}: {liver[1].volume_ml:.3f} mL" in local[1]
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "api"))) as c:
        cid = c.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1/segmentations"},
                     headers=AUTH).json()["id"]
        first = _sse(c, cid, {"message": turns[0]})
        sid = first[0][1]["session_id"]
        second = _sse(c, cid, {"message": turns[1], "session_id": sid})
    assert [first[-1][1]["text"], second[-1][1]["text"]] == local
