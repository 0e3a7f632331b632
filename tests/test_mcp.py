"""`radagent mcp` (agent/mcp_server.py) through real MCP client sessions of the official SDK: over stdio
(the client starts `python -m agent.cli mcp` as a subprocess) and over streamable HTTP (the server started
as a subprocess on a free 127.0.0.1 port, with the bearer token).

Each tool is called on the shared synthetic case (tests/cases.build_case) and its result is compared with
what the case service (agent.case) computes in this process from the same files: findings, answers,
verdicts, report text and key-image bytes must be equal. Refusals: paths outside the data root (``..``,
absolute, a symlink leading out), a bad or missing token (401 before the MCP layer), a bad CT (the CLI's
own message), a malformed question or segmentation request; none leaves a case behind.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from agent import case as case_service
from agent.api.security import redact
from agent.cli import main
from perception.schema import Findings
from reasoning.vqa import SUBTYPES
from tests.cases import build_case

REPO = Path(__file__).resolve().parents[1]
TOKEN = "mcp-test-token-4c9d1e"
TOOLS = {"analyze_ct", "get_findings", "ask", "verify_text", "draft_report", "compare_studies", "key_image",
         "list_question_types", "list_segmentation_tasks"}
KIDNEY_Q = "What is the volume of the largest lesion in the left kidney?"
LIVER_Q = "How many lesions are in the liver?"
NEW_TRUE, NEW_FALSE = "A new lesion in the spleen. Progressive disease.", "No new lesions. Stable disease."
TEXT = ("There are 3 lesions in the liver. The spleen measures 900 mL. "
        "A 5 cm lesion is seen in the left kidney.")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mcp_root")


@pytest.fixture(scope="module")
def case(root) -> dict:
    return build_case(root / "case1")


@pytest.fixture(scope="module")
def truth(root, case) -> case_service.AnalyzedCase:
    """The case service's analysis of the same files, server paths redacted as the server shows them."""
    a = case_service.analyze(root / "case1" / "ct.nii.gz", root / "case1")
    shown = redact(a.findings.model_dump(mode="json"), {str(root) + "/": "", str(root): "<data root>"})
    return a.with_findings(Findings.model_validate(shown))


def cases_in(root: Path) -> list[str]:
    d = root / ".radagent-cases"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def stdio_server(root: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "agent.cli", "mcp", "--data-root", str(root)],
                                 cwd=str(REPO), env={"PYTHONPATH": str(REPO)})


def error_text(r) -> str:
    assert r.is_error, r
    return r.content[0].text


def cli_error(args: list[str], cwd: Path) -> str:
    """The message the CLI prints for the same refusal (its exit code must be 2)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(main, args)
    finally:
        os.chdir(old)
    assert res.exit_code == 2, res.output
    out = (res.stderr if hasattr(res, "stderr") else res.output).strip()
    return re.sub(r"\s+", " ", out.removeprefix("error:").strip())


def arun(fn):
    """anyio.run, with the first failure out of the SDK's task groups raised as itself (a readable assertion)."""
    try:
        return anyio.run(fn)
    except BaseExceptionGroup as g:
        e: BaseException = g
        while isinstance(e, BaseExceptionGroup):
            e = e.exceptions[0]
        raise e from None


def one_line(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


async def check_tools(c: Client, root: Path, truth: case_service.AnalyzedCase) -> str:
    """Every tool of a session against the case service; returns the case id analyzed."""
    tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == TOOLS
    assert all(tools[n].output_schema for n in TOOLS - {"key_image"})  # typed outputs: JSON Schema of the models
    assert {"ct", "masks", "class_map", "mask_label", "segment", "case_id"} <= set(tools["analyze_ct"].input_schema["properties"])
    assert tools["ask"].output_schema["title"] == "Answer"

    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p, total, msg):
        progress.append((p, total, msg))

    r = await c.call_tool("analyze_ct", {"ct": "case1/ct.nii.gz", "masks": "case1"}, progress_callback=on_progress)
    assert not r.is_error, r.content
    s = r.structured_content
    cid = s["case_id"]
    f = truth.findings
    # progress: one notification per stage entered, non-decreasing, ending at total
    assert progress and progress[-1] == (5, 5, "analysis: done")
    assert [p for p, _, _ in progress] == sorted(p for p, _, _ in progress)
    assert {m for _, _, m in progress} <= {f"analysis: {x}" for x in ("load_ct", "load_masks", "measure", "key_images",
                                                                       "write", "done")}
    # the summary: every value equals the case service's findings
    assert [x["id"] for x in s["lesions"]] == [x.id for x in f.lesions]
    for got, les in zip(s["lesions"], f.lesions):
        assert (got["organ"], got["kind"], got["long_axis_mm"], got["short_axis_mm"], got["volume_ml"], got["segments"],
                got["size_qualifier"]) == (les.organ, les.kind, les.long_axis_mm, les.short_axis_mm, les.volume_ml,
                                           les.segments, les.size_qualifier)
        assert got["key_slice"] == les.key_slice.model_dump(mode="json")
    assert [(o["name"], o["status"], o["volume_ml"]) for o in s["organs"]] == [(o.name, o.status.value, o.volume_ml)
                                                                            for o in f.organs]
    assert any(o["volume_ml"] is None and o["status"] != "measured" for o in s["organs"])  # unknown is a status, not 0
    assert s["coverage"]["organs_cut_by_scan_edge"] == [o.name for o in f.organs if o.touches_edges]
    assert s["coverage"]["lesion_search"] == [x.model_dump(mode="json") for x in f.lesion_search]
    assert s["warnings"] == f.study.warnings and s["inputs"] == {"ct": "case1/ct.nii.gz", "masks": "case1"}
    assert [m["name"] for m in s["ignored_masks"]] == [m.name for m in f.ignored_masks] == ["retroperitoneal_tumor_aorta"]

    # get_findings: whole, and filtered
    r = await c.call_tool("get_findings", {"case_id": cid})
    whole = r.structured_content
    assert whole["lesions"] == [x.model_dump(mode="json") for x in f.lesions]
    assert whole["organs"] == [x.model_dump(mode="json") for x in f.organs]
    assert whole["study"] == f.study.model_dump(mode="json")
    r = await c.call_tool("get_findings", {"case_id": cid, "lesion_ids": ["L2"]})
    assert [x["id"] for x in r.structured_content["lesions"]] == ["L2"] and r.structured_content["organs"] == []
    r = await c.call_tool("get_findings", {"case_id": cid, "organs": ["kidney_left"]})
    assert [o["name"] for o in r.structured_content["organs"]] == ["kidney_left"]
    assert [x["id"] for x in r.structured_content["lesions"]] == [x.id for x in f.lesions if x.organ == "kidney_left"]
    assert "no lesion L99 in case" in error_text(await c.call_tool("get_findings", {"case_id": cid, "lesion_ids": ["L99"]}))

    # ask: text, and subtype + params, equal to the case service's Answer
    for q in (KIDNEY_Q, LIVER_Q):
        r = await c.call_tool("ask", {"case_id": cid, "question": q})
        assert r.structured_content == case_service.ask(f, q).model_dump(mode="json")
    r = await c.call_tool("ask", {"case_id": cid, "subtype": "lesion volume measurement", "params": {"organ": "kidney_left"}})
    want = case_service.ask(f, case_service.question("lesion volume measurement", {"organ": "kidney_left"}))
    assert r.structured_content == want.model_dump(mode="json") and want.status == "answered" and want.finding_ids
    assert "either 'question' or 'subtype'" in error_text(await c.call_tool(
        "ask", {"case_id": cid, "question": LIVER_Q, "subtype": "lesion counting"}))
    msg = error_text(await c.call_tool("ask", {"case_id": cid, "subtype": "no such type"}))
    (root / "f.json").write_text(f.to_json())
    assert msg.endswith(cli_error(["ask", "f.json", "--subtype", "no such type"], root))

    # verify_text: per-sentence verdicts equal the case service's
    r = await c.call_tool("verify_text", {"case_id": cid, "text": TEXT})
    v = case_service.verify(f, TEXT)
    assert r.structured_content["sentences"] == [x.model_dump(mode="json") for x in v.sentences]
    assert r.structured_content["ok"] is v.ok is False and r.structured_content["counts"] == v.counts()
    assert v.counts()["supported"] >= 1 and v.counts()["unsupported"] >= 1

    # draft_report: the template report of the case service, with its provenance
    r = await c.call_tool("draft_report", {"case_id": cid, "style": "structured"})
    rep = case_service.report(truth, None, "structured")
    d = r.structured_content
    assert d["engine"] == "template" and d["text"] == rep.files["report.md"]
    assert d["provenance"]["sentences"] == [x.model_dump(mode="json") for x in rep.draft.sentences]
    again = await c.call_tool("draft_report", {"case_id": cid})  # kept in the case folder, read back the same
    assert again.structured_content["text"] == d["text"]

    # key images: tool image content and resource blob are the case service's PNG bytes
    lid = f.lesions[0].id
    r = await c.call_tool("key_image", {"case_id": cid, "lesion_id": lid})
    assert r.content[0].type == "image" and r.content[0].mime_type == "image/png"
    png = base64.b64decode(r.content[0].data)
    assert png == truth.key_images[lid]
    assert Image.open(io.BytesIO(png)).format == "PNG"
    rr = await c.read_resource(f"radagent://cases/{cid}/key-images/{lid}.png")
    assert rr.contents[0].mime_type == "image/png" and base64.b64decode(rr.contents[0].blob) == png
    rr = await c.read_resource(f"radagent://cases/{cid}/findings.json")
    assert Findings.model_validate_json(rr.contents[0].text) == f
    rr = await c.read_resource(f"radagent://cases/{cid}/report.md")
    assert rr.contents[0].text == d["text"]
    templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
    assert templates == {"radagent://cases/{case_id}/findings.json", "radagent://cases/{case_id}/report.md",
                         "radagent://cases/{case_id}/comparison.json",
                         "radagent://cases/{case_id}/key-images/{lesion_id}.png"}
    assert f"radagent://cases/{cid}/key-images/{lid}.png" in s["resources"]

    # catalogues
    r = await c.call_tool("list_question_types", {})
    assert [t["name"] for t in r.structured_content["types"]] == list(SUBTYPES)
    r = await c.call_tool("list_segmentation_tasks", {})
    from perception.segment.totalseg import TASKS, UNAVAILABLE

    assert [t["name"] for t in r.structured_content["tasks"]] == list(TASKS)
    assert {t["name"]: t["reason"] for t in r.structured_content["unavailable"]} == UNAVAILABLE
    return cid


def outside_file(root: Path) -> Path:
    out = root.parent / f"{root.name}_outside"
    out.mkdir(exist_ok=True)
    (out / "ct.nii.gz").write_bytes((root / "case1" / "ct.nii.gz").read_bytes())
    return out / "ct.nii.gz"


async def check_refusals(c: Client, root: Path) -> None:
    before = cases_in(root)
    secret = outside_file(root)
    link = root / "link_out.nii.gz"
    if not link.is_symlink():
        link.symlink_to(secret)
    for ct in (f"../{secret.parent.name}/ct.nii.gz", str(secret), "link_out.nii.gz", "case1/../../" + secret.parent.name):
        msg = error_text(await c.call_tool("analyze_ct", {"ct": ct, "masks": "case1"}))
        assert "outside the data root" in msg, (ct, msg)
        assert str(secret.parent) not in msg or ct == str(secret)  # the server's own paths are not shown
    msg = error_text(await c.call_tool("analyze_ct", {"ct": "case1/ct.nii.gz", "masks": ".radagent-cases"}))
    assert "case storage" in msg
    # a bad CT: the CLI's own message (paths relative to the data root, as the CLI run from it prints them)
    (root / "bad.nii.gz").write_bytes(b"not a nifti file at all")
    msg = error_text(await c.call_tool("analyze_ct", {"ct": "bad.nii.gz", "masks": "case1"}))
    assert one_line(msg).endswith(cli_error(["analyze", "bad.nii.gz", "--masks", "case1", "-o", "out_bad"], root))
    assert not (root / "out_bad").exists()
    # segmentation requests: validated before anything is created; without torch the backend's refusal
    msg = error_text(await c.call_tool("analyze_ct", {"ct": "case1/ct.nii.gz", "segment": {"tasks": ["no_such_task"]}}))
    assert "invalid segmentation request" in msg and "no_such_task" in msg
    if importlib.util.find_spec("torch") is None:  # the main venv: the backend refuses, naming what to install
        msg = error_text(await c.call_tool("analyze_ct", {"ct": "case1/ct.nii.gz", "segment": {"tasks": ["total"]}}))
        assert "totalseg backend needs" in msg
    r = await c.call_tool("analyze_ct", {"ct": "case1/ct.nii.gz", "masks": "case1", "segment": {}})
    assert "masks or a segmentation request, not both" in error_text(r)
    assert "give either case_id or ct" in error_text(await c.call_tool("analyze_ct", {"case_id": "0" * 32, "ct": "x"}))
    assert "unknown case" in error_text(await c.call_tool("get_findings", {"case_id": "0" * 32}))
    assert cases_in(root) == before  # no refusal leaves a case behind


def test_stdio_session_tools_equal_the_case_service(root, case, truth):
    async def run():
        t0 = time.perf_counter()
        async with Client(stdio_server(root)) as c:
            cid = await check_tools(c, root, truth)
            await check_refusals(c, root)
        return cid, time.perf_counter() - t0

    cid, seconds = arun(run)
    assert cid in cases_in(root)
    assert seconds < 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(root, case):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "mcp", "--http", "--port", str(port), "--data-root",
                             str(root)], cwd=REPO, env={**os.environ, "RADAGENT_API_TOKEN": TOKEN},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"radagent mcp --http exited: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("radagent mcp --http did not listen within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def http_client(url: str, token: str) -> Client:
    """The SDK's client over streamable HTTP, sending the bearer token (httpx2 is the SDK's HTTP client)."""
    hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300))
    return Client(streamable_http_client(url, http_client=hc))


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-123"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}])
def test_http_refuses_missing_and_bad_tokens(http_server, headers):
    r = httpx.post(http_server, json=INIT, headers={"Accept": "application/json, text/event-stream", **headers})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token" in r.json()["detail"]


def test_http_right_token_reaches_the_mcp_layer(http_server):
    ok = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(http_server, json=INIT, headers=ok)
    assert r.status_code == 200, r.text
    # the SDK's DNS-rebinding guard on a loopback server: another Host or a foreign Origin is refused
    assert httpx.post(http_server, json=INIT, headers={**ok, "Host": "evil.example:80"}).status_code == 421
    assert httpx.post(http_server, json=INIT, headers={**ok, "Origin": "http://evil.example"}).status_code == 403


def test_http_client_with_a_bad_token_gets_no_tools(http_server):
    from mcp.shared.exceptions import MCPError

    statuses: list[int] = []

    async def seen(resp):
        statuses.append(resp.status_code)

    async def run():
        hc = httpx2.AsyncClient(headers={"Authorization": "Bearer wrong-token-123"}, event_hooks={"response": [seen]})
        async with Client(streamable_http_client(http_server, http_client=hc)) as c:
            await c.list_tools()

    with pytest.raises(MCPError):  # the SDK's client: "Server returned an error response"
        arun(run)
    assert statuses and set(statuses) == {401}


def test_http_session_shares_cases_with_the_http_api(http_server, root, case, truth):
    """A case created through `radagent serve`'s API is the same case id to the MCP server (one store)."""
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN))) as api:
        r = api.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1"}, headers=auth)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        api_findings = api.get(f"/cases/{cid}/findings", headers=auth).json()
        api_answer = api.post(f"/cases/{cid}/ask", json={"question": KIDNEY_Q, "mode": "deterministic"},
                              headers=auth).json()["answer"]

    async def run():
        async with http_client(http_server, TOKEN) as c:
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS
            s = (await c.call_tool("analyze_ct", {"case_id": cid})).structured_content
            f = (await c.call_tool("get_findings", {"case_id": cid})).structured_content
            a = (await c.call_tool("ask", {"case_id": cid, "question": KIDNEY_Q})).structured_content
            bad = await c.call_tool("analyze_ct", {"ct": "../x.nii.gz", "masks": "case1"})
            return s, f, a, bad

    s, f, a, bad = arun(run)
    assert s["case_id"] == cid and [x["id"] for x in s["lesions"]] == [x.id for x in truth.findings.lesions]
    assert f["lesions"] == api_findings["lesions"] and f["organs"] == api_findings["organs"]
    assert a == api_answer == case_service.ask(truth.findings, KIDNEY_Q).model_dump(mode="json")
    assert "outside the data root" in error_text(bad)


def test_compare_studies_over_http(http_server, root):
    """compare_studies on the real-CT follow-up pair (tests/followup_cases.py: lesions A and B persist, K
    disappears, S is new; RECIST PD), equal to the case service's compare on the same case folders; then ask,
    verify_text and draft_report use the comparison kept with the current case."""
    from perception.followup.schema import Comparison
    from tests.followup_cases import build_pair

    pair = build_pair(root / "fu")

    async def run():
        async with http_client(http_server, TOKEN) as c:
            ids = []
            for t in (0, 1):
                r = await c.call_tool("analyze_ct", {"ct": f"fu/ct{t}/ct.nii.gz", "masks": f"fu/ct{t}"})
                ids.append(r.structured_content["case_id"])
            prior, cur = ids
            before = (await c.call_tool("ask", {"case_id": cur, "question": "Are there new lesions since the prior?"}))
            progress = []

            async def on_progress(p, total, msg):
                progress.append((p, total, msg))

            cmp = await c.call_tool("compare_studies", {"prior_case_ids": [prior], "current_case_id": cur},
                                    progress_callback=on_progress)
            after = await c.call_tool("ask", {"case_id": cur, "question": "Are there new lesions since the prior?"})
            claims = [await c.call_tool("verify_text", {"case_id": cur, "text": t}) for t in (NEW_TRUE, NEW_FALSE)]
            rep = await c.call_tool("draft_report", {"case_id": cur})
            rep_again = await c.call_tool("draft_report", {"case_id": cur})  # read back from the cache, comparison kept
            assert not rep_again.is_error, rep_again.content
            assert rep_again.structured_content["text"] == rep.structured_content["text"]
            res = await c.read_resource(f"radagent://cases/{cur}/comparison.json")
            bad = [await c.call_tool("compare_studies", {"prior_case_ids": [cur], "current_case_id": cur}),
                   await c.call_tool("compare_studies", {"prior_case_ids": ["0" * 32], "current_case_id": cur})]
            return ids, before, cmp, progress, after, claims, rep, res, bad

    (prior, cur), before, cmp, progress, after, claims, rep, res, bad = arun(run)
    assert before.structured_content["status"] == "cannot_be_determined"
    assert not cmp.is_error, cmp.content
    got = cmp.structured_content
    assert progress[-1][:2] == (1, 1)
    c = got["comparison"]
    assert str(root) not in json.dumps(got)  # server paths shown as case ids
    assert [s["analyze_dir"] for s in c["studies"]] == [f"<case {prior}>/out", f"<case {cur}>/out"]
    assert sorted(t["state"] for t in c["lesions"]) == ["disappeared", "new", "persisting", "persisting"]
    assert got["recist"] == c["recist"] and c["recist"]["overall_response"] == "PD"
    # the case service on the same folders
    cases = root / ".radagent-cases"
    want = case_service.compare([cases / prior / "out"], cases / cur / "out")
    assert [(t["state"], [m["lesion_id"] for m in t["measurements"]]) for t in c["lesions"]] == [
        (t.state, [m.lesion_id for m in t.measurements]) for t in want.lesions]
    assert c["recist"]["overall_response"] == want.recist.overall_response
    assert c["recist"]["sum_of_diameters_mm"] == want.recist.sum_of_diameters_mm
    assert any(s["kind"] == "recist" and "overall response PD" in s["text"] for s in got["summary"])
    assert Comparison.model_validate_json(res.contents[0].text).model_dump(mode="json") == c
    new = next(t for t in c["lesions"] if t["state"] == "new")
    a = after.structured_content
    assert a["answer"] == "yes" and new["tracking_id"] in a["finding_ids"]
    # change claims checked against the kept comparison (the new lesion is in the spleen)
    ok = claims[0].structured_content
    assert ok["ok"] and any(x["type"] == "comparison" and x["verdict"] == "supported"
                            for sen in ok["sentences"] for x in sen["claims"])
    assert claims[1].structured_content["ok"] is False
    assert "## COMPARISON" in rep.structured_content["text"] and "overall response PD" in rep.structured_content["text"]
    assert "each prior once, and not the case" in error_text(bad[0])
    assert "unknown case" in error_text(bad[1])
    assert len(pair["cases"]) == 2


def test_cli_refuses_http_without_token_and_a_missing_root(tmp_path):
    res = CliRunner(env={"RADAGENT_API_TOKEN": ""}).invoke(main, ["mcp", "--http", "--data-root", str(tmp_path)])
    assert res.exit_code == 2 and "no API token" in res.output
    res = CliRunner().invoke(main, ["mcp", "--http", "--token", "short", "--data-root", str(tmp_path)])
    assert res.exit_code == 2 and "token" in res.output
    res = CliRunner().invoke(main, ["mcp", "--data-root", str(tmp_path / "absent")])
    assert res.exit_code == 2 and "absent" in res.output


def test_analysis_past_its_deadline_is_refused_and_leaves_no_case(root, case):
    """The server's analysis_timeout_s (radagent mcp --analysis-timeout), through the SDK's in-process client."""
    from agent.api import ServerSettings
    from agent.mcp_server import build_server

    cases = root / "deadline-cases"
    server = build_server(ServerSettings(data_root=root, token=TOKEN, cases_dir=cases, analysis_timeout_s=0.001))

    async def run():
        async with Client(server) as c:
            return await c.call_tool("analyze_ct", {"ct": "case1/ct.nii.gz", "masks": "case1"})

    msg = error_text(arun(run))
    assert "did not finish within the server's limit of 0.001 s (analysis_timeout_s)" in msg
    assert [p.name for p in cases.iterdir()] == []
    time.sleep(3)  # the abandoned worker thread ends (the analysis takes ~1 s) and writes nothing
    assert [p.name for p in cases.iterdir()] == []
