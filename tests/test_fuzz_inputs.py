"""Fuzz suite (issue 11): hostile inputs made from real data (tests/hostile.py) through
``radagent analyze`` in a subprocess and through the HTTP API (from-path).

For each input, the CLI must: exit 2, name the hostile file on stderr, leave no output folder, stay
under PEAK_RSS_MB (the child's own peak, from wait4) and end within RUN_TIMEOUT_S (a safety net
against hangs, not a timing assertion). Two subprocesses run at a time. Through the API each input
is answered 4xx (never 500) and the server still answers /health afterwards.

Inputs the CLI does not refuse cleanly yet are listed in KNOWN_FAILING with the reason; they are
built but not run through the CLI (the API pass still takes them), so that the suite stays green
while that work lands. Remove an entry once its case passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, data_path
from tests.hostile import Case, build

PEAK_RSS_MB = 1536
RUN_TIMEOUT_S = 60
PARALLEL = 2
TOKEN = "fuzz-token-0123456789"

# case id -> why it still fails (filled from a run of this suite; see the report of issue 11)
KNOWN_FAILING: dict[str, str] = {}


@dataclass
class Run:
    rc: int | None
    stderr: str
    peak_mb: float
    seconds: float
    timed_out: bool
    killed_for_memory: bool


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_cli(case: Case, root: Path, logs: Path) -> Run:
    """``python -m agent.cli analyze`` on the case, its peak RSS from wait4; killed past the time bound,
    or past twice the memory bound (so that a runaway cannot take the machine down)."""
    out = case.out if case.out.startswith("/") else str(root / case.out)
    cmd = [sys.executable, "-m", "agent.cli", "analyze", str(root / case.ct), "--masks", str(root / case.masks),
           "-o", out, *case.extra_args]
    err_path = logs / f"{abs(hash(case.id))}.err"
    t0 = time.monotonic()
    with open(err_path, "wb") as err, open(os.devnull, "wb") as devnull:
        p = subprocess.Popen(cmd, cwd=REPO, stdout=devnull, stderr=err, stdin=subprocess.DEVNULL,
                             env={**os.environ, "PYTHONWARNINGS": "default"})
    timed_out = killed_mem = False
    status, ru = 0, None
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > RUN_TIMEOUT_S:
            timed_out = True
            p.kill()
        elif _rss_mb(p.pid) > 2 * PEAK_RSS_MB:
            killed_mem = True
            p.kill()
        time.sleep(0.05)
    p.returncode = os.waitstatus_to_exitcode(status)
    return Run(p.returncode, err_path.read_text(errors="replace"), ru.ru_maxrss / 1024 if ru else 0.0,
               time.monotonic() - t0, timed_out, killed_mem)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case], dict[str, Run]]:
    data = data_path()
    root = tmp_path_factory.mktemp("hostile")
    cases = build(root, data)
    for c in cases:
        c.known_failing = KNOWN_FAILING.get(c.id, "")
    logs = tmp_path_factory.mktemp("logs")
    todo = [c for c in cases if not c.known_failing]  # known failures are not run (some hang or exhaust memory)
    with ThreadPoolExecutor(PARALLEL) as ex:
        runs = dict(zip([c.id for c in todo], ex.map(lambda c: run_cli(c, root, logs), todo)))
    return root, cases, runs


def problems(case: Case, run: Run, root: Path) -> list[str]:
    bad = []
    if run.timed_out:
        bad.append(f"hung: killed after {RUN_TIMEOUT_S} s")
    if run.killed_for_memory:
        bad.append(f"killed past {2 * PEAK_RSS_MB} MB RSS")
    if run.rc != 2:
        bad.append(f"exit code {run.rc}, expected 2")
    if not any(n in run.stderr for n in case.names):
        bad.append(f"stderr names none of {case.names}")
    if "Traceback" in run.stderr:
        bad.append("a traceback on stderr")
    if run.peak_mb > PEAK_RSS_MB:
        bad.append(f"peak RSS {run.peak_mb:.0f} MB > {PEAK_RSS_MB} MB")
    out = Path(case.out) if case.out.startswith("/") else root / case.out
    if out.is_dir():
        bad.append(f"output folder {case.out} left behind")
    return bad


def test_at_least_70_hostile_inputs(fuzz):
    _, cases, _ = fuzz
    assert len([c for c in cases if not c.known_failing]) >= 70, len(cases)
    assert len({c.id for c in cases}) == len(cases)


def test_cli_refuses_every_hostile_input(fuzz):
    """Every input: exit 2, the file named, no output, bounded memory and time. Known failures
    (KNOWN_FAILING) are built but not run."""
    root, cases, runs = fuzz
    failures = []
    for c in cases:
        if c.known_failing:
            continue
        bad = problems(c, runs[c.id], root)
        if bad:
            failures.append(f"{c.id}: {'; '.join(bad)}\n    stderr: {runs[c.id].stderr.strip()[-400:]!r}")
    peak = max(r.peak_mb for r in runs.values())
    slowest = max(runs.items(), key=lambda kv: kv[1].seconds)
    print(f"\n{len(runs)} of {len(cases)} hostile inputs run ({len(KNOWN_FAILING)} known failing); peak RSS "
          f"{peak:.0f} MB; slowest {slowest[0]} {slowest[1].seconds:.1f} s")
    assert not failures, f"{len(failures)} of {len(runs)} inputs not refused cleanly:\n" + "\n".join(failures)


def test_api_refuses_every_hostile_input(fuzz, tmp_path):
    """The same inputs as from-path cases under a data root: 4xx (never 500), /health still answers."""
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    root, cases, _ = fuzz
    settings = ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "cases", analysis_timeout_s=60)
    failures = []
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for c in cases:
            if not c.api:  # the known CLI failures are refused by the API (or not API inputs: -o)
                continue
            r = client.post("/cases/from-path?wait=true", json={"ct": c.ct, "masks": c.masks})
            if not 400 <= r.status_code < 500:
                failures.append(f"{c.id}: HTTP {r.status_code} {r.text[:300]}")
            h = client.get("/health")
            if h.status_code != 200:
                failures.append(f"{c.id}: /health answered {h.status_code} afterwards")
                break
        left = client.get("/cases").json()
    assert not failures, "\n".join(failures)
    assert all(x["status"] == "failed" for x in left), left


# --- the API's own bounds: deadline, admitted analyses, non-regular files -----------------------------
@pytest.fixture
def slow_analyze(monkeypatch):
    """agent.case.analyze replaced by one that waits until released (a stand-in for a stuck loader)."""
    from agent import case as case_service

    release = threading.Event()

    def stuck(*a, **k):
        release.wait(30)
        raise RuntimeError("released")

    monkeypatch.setattr(case_service, "analyze", stuck)
    yield release
    release.set()


def _api_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    (root / "c/ct.nii.gz").write_bytes(b"x")
    (root / "c/seg.nii.gz").write_bytes(b"x")
    return root


def test_api_deadline_marks_the_case_failed(tmp_path, slow_analyze):
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    s = ServerSettings(data_root=_api_root(tmp_path), token=TOKEN, cases_dir=tmp_path / "cases", analysis_timeout_s=0.5,
                       workers=2)  # the first, timed-out analysis keeps its worker until it returns
    with TestClient(create_app(s), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        t0 = time.monotonic()
        r = client.post("/cases/from-path?wait=true", json={"ct": "c/ct.nii.gz", "masks": "c/seg.nii.gz"})
        assert r.status_code == 422, r.text
        assert "analysis_timeout_s" in r.json()["detail"]
        assert time.monotonic() - t0 < 10
        r = client.post("/cases/from-path", json={"ct": "c/ct.nii.gz", "masks": "c/seg.nii.gz"})
        assert r.status_code == 202
        cid = r.json()["id"]
        for _ in range(100):
            info = client.get(f"/cases/{cid}").json()
            if info["status"] == "failed":
                break
            time.sleep(0.1)
        assert info["status"] == "failed" and info["error_kind"] == "timeout", info
        slow_analyze.set()  # the late result is discarded: the case stays failed with the deadline's message
        time.sleep(0.3)
        info = client.get(f"/cases/{cid}").json()
        assert info["error_kind"] == "timeout", info
        assert client.get(f"/cases/{cid}/findings").status_code == 422


def test_api_bounds_admitted_analyses(tmp_path, slow_analyze):
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    s = ServerSettings(data_root=_api_root(tmp_path), token=TOKEN, cases_dir=tmp_path / "cases", workers=1,
                       max_queued=1)
    with TestClient(create_app(s), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        body = {"ct": "c/ct.nii.gz", "masks": "c/seg.nii.gz"}
        assert client.post("/cases/from-path", json=body).status_code == 202
        assert client.post("/cases/from-path", json=body).status_code == 202
        r = client.post("/cases/from-path", json=body)
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        r = client.post("/cases", files={"ct": ("ct.nii.gz", b"x"), "masks": ("seg.nii.gz", b"x")})
        assert r.status_code == 503
        assert client.get("/health").status_code == 200
        slow_analyze.set()
        for _ in range(100):
            if all(x["status"] == "failed" for x in client.get("/cases").json()):
                break
            time.sleep(0.1)
        time.sleep(0.2)
        assert client.post("/cases/from-path", json=body).status_code == 202


def test_api_refuses_special_files_before_queueing(tmp_path):
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    root = _api_root(tmp_path)
    os.mkfifo(root / "c/fifo.nii.gz")
    (root / "c/masks").mkdir()
    os.mkfifo(root / "c/masks/liver.nii.gz")
    s = ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "cases")
    with TestClient(create_app(s), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for body in ({"ct": "c/fifo.nii.gz", "masks": "c/seg.nii.gz"}, {"ct": "c/ct.nii.gz", "masks": "c/masks"}):
            r = client.post("/cases/from-path", json=body)
            assert r.status_code == 422 and "FIFO" in r.json()["detail"], r.text
        assert client.get("/cases").json() == []


def test_api_default_limits():
    from agent.api import ServerSettings

    s = ServerSettings(data_root=REPO, token=TOKEN)
    assert s.max_upload_mb <= 512 and s.max_unzipped_mb <= 1024
    assert s.analysis_timeout_s > 0 and s.max_queued >= 0 and s.llm_timeout_s > 0


def test_api_uploads_of_hostile_inputs_are_4xx(fuzz, tmp_path):
    """Uploaded (not from-path) hostile CTs and masks: 4xx with the case removed, the server still up."""
    from fastapi.testclient import TestClient

    from agent.api import ServerSettings, create_app

    root, cases, _ = fuzz
    picks = {"dtype-rgb24", "dtype-complex64", "dims-dim0-nine", "dtype-mask-int64-label-2e9", "bomb-ct-4096cubed",
             "geometry-qform-zero-pixdim", "truncated-ct-at-347", "empty-mask"}
    settings = ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "cases", analysis_timeout_s=60)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        seen = 0
        for c in cases:
            if c.id not in picks:
                continue
            seen += 1
            files = {"ct": (Path(c.ct).name, (root / c.ct).read_bytes()),
                     "masks": (Path(c.masks).name, (root / c.masks).read_bytes())}
            r = client.post("/cases?wait=true", files=files)
            assert 400 <= r.status_code < 500, (c.id, r.status_code, r.text[:300])
            assert client.get("/health").status_code == 200
        assert seen == len(picks)
        assert client.get("/cases").json() == []
