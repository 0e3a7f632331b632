"""Dataset resume never keeps stale results (issue 11): "done" is decided by content (a CT changed with
the same size and a restored mtime is redone), output-side failures (disk full, I/O error, permission)
are retried on the next run and never recorded as the case's own failure, and a change of settings
that removes outputs says so."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from agent.dataset import BuildOptions, build_dataset
from eval.bench_dataset import make_synthetic_cases

import pyarrow.parquet as pq  # noqa: E402  (the test extra)


def _rows(out: Path) -> dict[str, dict]:
    return {r["case_id"]: r for r in pq.read_table(out / "dataset.parquet").to_pylist()}


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """Two cases whose CT is an uncompressed .nii (so bytes can change while the size stays the same)."""
    root = tmp_path_factory.mktemp("resume_src")
    for folder in make_synthetic_cases(root, 2):
        img = nib.load(folder / "ct.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), folder / "ct.nii")
        (folder / "ct.nii.gz").unlink()
    return root


def _opts(**kw) -> BuildOptions:
    return BuildOptions(workers=1, key_images=False, **kw)


def test_same_size_same_mtime_change_is_redone(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s1 = build_dataset(src, out, _opts())
    assert s1.done == 2
    before = _rows(out)["case_0000"]["liver_mean_hu"]
    ct = src / "case_0000" / "ct.nii"
    st = os.stat(ct)
    img = nib.load(ct)
    data = np.asarray(img.dataobj).copy()
    data += 80  # int16: the same number of bytes
    offset = int(img.dataobj.offset)
    assert offset >= 348
    raw = np.asarray(data, dtype=img.get_data_dtype()).tobytes(order="F")
    with open(ct, "r+b") as f:
        f.seek(offset)
        f.write(raw)
    os.utime(ct, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored, size unchanged
    st2 = os.stat(ct)
    assert (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    s2 = build_dataset(src, out, _opts())
    assert s2.ran == 1 and s2.skipped_done == 1, s2
    row = _rows(out)["case_0000"]
    assert row["status"] == "done", (row["error_type"], row["error_message"])
    after = row["liver_mean_hu"]
    assert after == pytest.approx(before + 80, abs=0.01)
    # a fresh build of the changed inputs gives the same value
    fresh = build_dataset(src, tmp_path / "fresh", _opts())
    assert fresh.done == 2
    assert _rows(tmp_path / "fresh")["case_0000"]["liver_mean_hu"] == after
    # and with nothing changed, a re-run is a no-op
    s3 = build_dataset(src, out, _opts())
    assert s3.ran == 0 and s3.skipped_done == 2


# ------------------------------------------------------------------------------------------------
# output-side failures (disk full): pending and retried, never the case's own failure


def _in_process_engine(monkeypatch, fail_case: str | None, err: OSError) -> None:
    """The local engine, in this process (forkserver workers would not inherit a monkeypatch): each
    task through run_case -> finish_case, with the case folder's atomic write raising ``err`` for ``fail_case``."""
    import agent.dataset.case as dcase
    import agent.dataset.local_engine as le
    from agent.dataset.case import run_case

    real_write = dcase.write_outputs_atomically

    def write(folder, files, **kw):
        if fail_case is not None and fail_case in ("*", Path(folder).name):
            raise err
        return real_write(folder, files, **kw)

    monkeypatch.setattr(dcase, "write_outputs_atomically", write)
    monkeypatch.setattr(le, "run_local", lambda tasks, cfg, opts, model, record: [record(run_case(t, cfg)) for t in tasks])


def test_disk_full_case_is_pending_and_retried(src: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    _in_process_engine(monkeypatch, "case_0001", OSError(errno.ENOSPC, "No space left on device"))
    s1 = build_dataset(src, out, _opts())
    assert (s1.done, s1.failed, s1.pending, s1.output_failed) == (1, 0, 1, 1), s1
    assert "No space left on device" in s1.output_error
    assert (out / "errors.jsonl").read_text() == ""  # not recorded as the case's failure
    assert _rows(out)["case_0001"]["status"] == "pending"
    assert not (out / "cases" / "case_0001").exists()
    # space freed: a plain resume (no --retry-failed) writes it
    monkeypatch.undo()
    _in_process_engine(monkeypatch, None, OSError())
    s2 = build_dataset(src, out, _opts())
    assert (s2.ran, s2.done, s2.failed, s2.pending, s2.output_failed) == (1, 2, 0, 0, 0), s2


@pytest.mark.parametrize("code", [errno.EIO, errno.EACCES, errno.EROFS])
def test_output_errnos_are_output_stage(code: int, src: Path, tmp_path: Path, monkeypatch) -> None:
    from agent.dataset import CaseSpec
    from agent.dataset.case import CaseOutcome, failure

    o = failure(CaseOutcome("x", "prepared", spec=CaseSpec("x", "ct.nii")), "write", OSError(code, os.strerror(code)))
    assert o.stage == "output" and o.traceback is None
    o = failure(CaseOutcome("x", "prepared", spec=CaseSpec("x", "ct.nii")), "load_ct", OSError(code, os.strerror(code)))
    assert o.stage == "load_ct"  # reading an input is the case's own failure


def test_cli_disk_full_one_line_exit_1(src: Path, tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from agent.dataset_cli import dataset

    _in_process_engine(monkeypatch, "case_0000", OSError(errno.ENOSPC, "No space left on device"))
    r = CliRunner().invoke(dataset, ["build", str(src), "-o", str(tmp_path / "out"), "--workers", "1", "--no-progress",
                                     "--no-key-images"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert "1 case(s) could not be written" in r.output and "No space left on device" in r.output


def test_finalize_disk_full_is_a_clean_error(src: Path, tmp_path: Path, monkeypatch) -> None:
    import agent.dataset.build as b
    from agent.dataset import DatasetOutputError

    _in_process_engine(monkeypatch, None, OSError())

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(b, "write_parquet", full)
    with pytest.raises(DatasetOutputError, match="cannot be written.*run the same command again"):
        build_dataset(src, tmp_path / "out", _opts())


# ------------------------------------------------------------------------------------------------
# a change of settings says what it removes


def test_dropping_qa_says_what_it_removes(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert build_dataset(src, out, _opts(qa=True)).done == 2
    assert (out / "qa.parquet").exists() and (out / "cases" / "case_0000" / "qa.json").exists()

    class Obs:
        messages: list[str] = []
        order: list[str] = []

        def settings_changed(self, message: str) -> None:
            self.messages.append(message)
            self.order.append("settings_changed")
            assert (out / "qa.parquet").exists()  # told before anything is removed

        def planned(self, *a) -> None:
            self.order.append("planned")

        def case_finished(self, o) -> None:
            self.order.append("case")

    obs = Obs()
    s = build_dataset(src, out, _opts(), observer=obs)
    assert s.done == 2 and s.removed == ["qa.json of 2 cases", "qa.parquet"]
    (msg,) = obs.messages
    assert obs.order[:2] == ["settings_changed", "planned"]
    assert msg.startswith("settings changed (qa: ")
    assert "2 cases built with other settings will be redone" in msg
    assert msg.endswith("qa.json of 2 cases and qa.parquet will be removed")
    assert not (out / "qa.parquet").exists() and not (out / "cases" / "case_0000" / "qa.json").exists()
    # the same settings again: nothing to say
    obs.messages.clear()
    s = build_dataset(src, out, _opts(), observer=obs)
    assert s.ran == 0 and not obs.messages and s.removed == []


def test_cli_prints_settings_change(src: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "out"
    args = [sys.executable, "-m", "agent.dataset_cli", "build", str(src), "-o", str(out), "--workers", "1",
            "--no-progress", "--no-key-images"]
    assert subprocess.run(args + ["--qa"], cwd=REPO, capture_output=True, timeout=180).returncode == 0
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "qa.json of 2 cases and qa.parquet will be removed" in r.stderr.replace("\n", " ")


# ------------------------------------------------------------------------------------------------
# LLM timeout: the report says so; a build stops sending to a server that stalled repeatedly


def _findings(src: Path):
    from agent import case as case_service

    return case_service.analyze(src / "case_0000" / "ct.nii", src / "case_0000" / "segmentations", key_images=False)


def test_report_says_llm_timed_out(src: Path) -> None:
    import time

    from agent import case as case_service
    from tests.scripted_openai import ScriptedServer

    c = _findings(src)
    with ScriptedServer(lambda body, n: {"role": "assistant", "content": "{}"}, hold_s=3.0) as srv:
        t = time.perf_counter()
        rep = case_service.report(c, case_service.LLMSettings(url=srv.base_url, timeout_s=0.5))
        took = time.perf_counter() - t
    assert rep.engine == "template"
    assert rep.fallback_reason == "LLM timed out after 0.5 s"
    assert took < 2.5, took


def test_stall_guard_stops_after_3_timeouts(src: Path) -> None:
    from agent import case as case_service
    from agent.dataset.case import LLMStallGuard
    from tests.scripted_openai import ScriptedServer

    f = _findings(src).findings
    guard = LLMStallGuard()
    with ScriptedServer(lambda body, n: {"role": "assistant", "content": "{}"}, hold_s=2.0) as srv:
        llm = case_service.LLMSettings(url=srv.base_url, model="scripted-model", timeout_s=0.3)
        drafts = [d for _ in range(5) for d in guard.drafts([f], llm, "structured", 1)]
        n_requests = len(srv.requests)
    assert n_requests == 3  # the 4th and 5th cases were never sent
    reasons = [d.fallback_reason for d in drafts]
    assert reasons[:3] == ["LLM timed out after 0.3 s"] * 3
    assert all(r.startswith("LLM not asked: the server timed out on 3 consecutive requests (0.3 s each)")
               for r in reasons[3:])
    assert all(d.engine == "template" for d in drafts)


def test_dataset_build_llm_timeout(src: Path, tmp_path: Path) -> None:
    from tests.scripted_openai import ScriptedServer

    out = tmp_path / "out"
    with ScriptedServer(lambda body, n: {"role": "assistant", "content": "{}"}, hold_s=2.0) as srv:
        s = build_dataset(src, out, _opts(llm_url=srv.base_url, llm_timeout_s=0.3, llm_concurrency=1))
    assert s.done == 2 and s.llm_timed_out == 2 and s.llm_not_asked == 0, s
    assert {r["report_fallback"] for r in _rows(out).values()} == {"LLM timed out after 0.3 s"}
    assert "The LLM server timed out on 2 case(s)" in (out / "dataset_card.md").read_text()


def test_build_stops_after_consecutive_output_failures(src: Path, tmp_path: Path, monkeypatch) -> None:
    import agent.dataset.build as b
    from agent.dataset import DatasetOutputError

    monkeypatch.setattr(b, "OUTPUT_STOP", 1)
    ran = []
    _in_process_engine(monkeypatch, "*", OSError(errno.ENOSPC, "No space left on device"))
    real_record = b._Recorder.__call__

    def record(self, o):
        ran.append(o.case_id)
        return real_record(self, o)

    monkeypatch.setattr(b._Recorder, "__call__", record)
    out = tmp_path / "out"
    with pytest.raises(DatasetOutputError, match="1 cases in a row could not be written.*No space left"):
        build_dataset(src, out, _opts())
    assert ran == ["case_0000"]  # the second case was not analysed
    assert {r["status"] for r in _rows(out).values()} == {"pending"}  # finalized: both pending, none failed
    assert (out / "errors.jsonl").read_text() == ""
