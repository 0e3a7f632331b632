"""The build: plan (skip cases done with the same inputs and settings), run on an engine, record
each outcome as it arrives, and finish with dataset.parquet, errors.jsonl and the card."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.files import atomic_write_bytes

from .case import SKIPPED, TIMED_OUT, CaseOutcome, CaseTask
from .errors import DatasetError, DatasetOutputError, SegmentationUnavailableError, is_output_error
from .hashing import HashCache, input_hash
from .options import (CARD_FILE, CASE_JSON, CASES_DIR, DATASET_FILE, ERRORS_FILE, HASHES_FILE, LOCK_FILE, QA_FILE,
                      SETTINGS_FILE, BuildOptions, CaseConfig, State, fingerprint, settings_document)
from .outputs import columns, dataset_card, dataset_rows, write_parquet
from .sources import CaseSpec, discover_cases, require_pyarrow, source_root

log = logging.getLogger("radagent")


@dataclass
class BuildSummary:
    out: Path
    engine: str
    total: int = 0
    done: int = 0
    failed: int = 0
    pending: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    ran: int = 0
    ran_done: int = 0
    ran_failed: int = 0
    seconds: float = 0.0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    output_failed: int = 0  # cases not written because of the output side (pending; the next run retries them)
    output_error: str | None = None  # the first such error, e.g. "OSError: [Errno 28] No space left on device"
    removed: list[str] = field(default_factory=list)  # what a change of settings removed (see settings_changes)
    llm_timed_out: int = 0  # done cases whose LLM request timed out (template narrative)
    llm_not_asked: int = 0  # done cases not sent to an LLM server that had stalled repeatedly (template narrative)

    @property
    def cases_per_hour(self) -> float | None:
        return self.ran / self.seconds * 3600.0 if self.ran and self.seconds > 0 else None


class BuildObserver(Protocol):
    def planned(self, total: int, to_run: int, skipped_done: int, skipped_failed: int) -> None: ...

    def case_finished(self, outcome: CaseOutcome) -> None: ...

    # optional: def settings_changed(self, message: str) -> None, told before anything is removed


def read_errors(path: Path) -> dict[str, dict]:
    """Latest error record per case id; unreadable lines (a line torn by a kill) are skipped."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
                out[str(rec["case_id"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return out


def read_case_record(folder: Path) -> dict | None:
    try:
        rec = json.loads((folder / CASE_JSON).read_text())
        return rec if isinstance(rec, dict) and rec.get("status") == "done" else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(out: Path):
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise DatasetError(f"{out}: another `radagent dataset build` is running on this output folder "
                               f"(lock {out / LOCK_FILE} is held)") from e
        yield
    finally:
        os.close(fd)


def _clean_stale(out: Path) -> None:
    """Temporary folders/files left by a killed run (never a complete case)."""
    cases = out / CASES_DIR
    for d in (cases.iterdir() if cases.is_dir() else []):
        if d.name.startswith(".") and (".tmp-" in d.name or ".old-" in d.name):
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
    for f in out.iterdir():
        if f.name.startswith(".") and ".tmp-" in f.name:
            f.unlink(missing_ok=True)


def _resolve_llm_model(opts: BuildOptions) -> str:
    """The served model name (part of the settings hash); fails early when the server is unreachable,
    so that a whole build does not silently fall back to template narratives."""
    import httpx

    from reasoning.client import LLMClient, LLMError

    async def go() -> str:
        client = LLMClient(opts.llm_url, opts.llm_model, opts.llm_api_key, min(30.0, opts.llm_timeout_s))
        async with httpx.AsyncClient(timeout=client.timeout_s) as http:
            return await client.resolve_model(http)

    if opts.llm_model:
        return opts.llm_model
    try:
        return asyncio.run(go())
    except LLMError as e:
        raise DatasetError(f"--llm {opts.llm_url}: {e}") from e


def build_dataset(source: str | Path, out: str | Path, options: BuildOptions | None = None,
                  observer: BuildObserver | None = None) -> BuildSummary:
    """Build (or resume) the dataset of SOURCE into OUT. See the module docstring."""
    opts = options or BuildOptions()
    out = Path(out)
    require_pyarrow()
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: output path exists and is not a folder")
    src = Path(source)
    if src.is_dir() and out.exists() and src.resolve() == out.resolve():
        raise DatasetError(f"{out}: the output folder must differ from the source folder")
    specs = discover_cases(src, exclude=out)
    from .followup import patients

    patients(specs, src)  # follow-up columns checked before anything runs
    model = _resolve_llm_model(opts) if opts.llm_url else None
    sdoc = settings_document(opts, model)
    cfg = CaseConfig(str(out.absolute()), opts.settings, opts.key_images, opts.style, opts.qa_function(),
                     bool(opts.llm_url), fingerprint(sdoc), opts.segment, opts.dicom_out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CASES_DIR).mkdir(exist_ok=True)
    t0 = time.perf_counter()
    summary = BuildSummary(out=out, engine=opts.engine, total=len(specs))
    with _locked(out):
        _clean_stale(out)
        cache = HashCache(out / HASHES_FILE)
        state = State(errors=read_errors(out / ERRORS_FILE))
        to_run, to_fail = _plan(specs, out, cfg, cache, state, opts, summary)
        message, summary.removed = settings_changes(out, specs, cfg, sdoc, opts)
        if message:
            log.warning("%s", message)
            if observer is not None and hasattr(observer, "settings_changed"):
                observer.settings_changed(message)
        if observer:
            observer.planned(len(specs), len(to_run) + len(to_fail), summary.skipped_done, summary.skipped_failed)
        sink = _Recorder(out, cfg, cache, state, summary, observer)
        try:
            for spec in to_fail:
                o = CaseOutcome(spec.case_id, "failed", state.keys.get(spec.case_id), stage="segment",
                                error_type=SegmentationUnavailableError.__name__, spec=spec,
                                message=f"{spec.ct}: no masks; segmentation backend not available (this build was not "
                                        "asked to segment: add --segment totalseg, or give masks for this case: a "
                                        "manifest 'masks' column or a CASE/segmentations/ folder)")
                sink(o)
            if to_run:
                if opts.engine == "ray":
                    from .ray_engine import run_ray

                    run_ray(to_run, cfg, opts, model, sink)
                else:
                    from .local_engine import run_local

                    run_local(to_run, cfg, opts, model, sink)
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            summary.seconds = time.perf_counter() - t0
            try:
                _finalize(out, specs, state, cfg, opts, sdoc, cache, summary, source_root(src))
            except OSError as e:
                if not is_output_error(e) or summary.interrupted:
                    raise
                raise DatasetOutputError(
                    f"{out}: the output folder cannot be written ({type(e).__name__}: {e}); finished cases are "
                    "kept, cases not written are pending: free space or fix permissions, then run the same "
                    "command again") from e
    return summary


def _diff(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"]


def settings_changes(out: Path, specs: list[CaseSpec], cfg: CaseConfig, sdoc: dict, opts: BuildOptions
                     ) -> tuple[str | None, list[str]]:
    """When the settings differ from those the done cases were built with: one line saying what changed,
    how many cases are redone and which outputs go away (qa.json and qa.parquet without --qa, key images
    without them), and the list of what is removed. (None, []) when nothing built before is affected."""
    old_cases = qa_cases = key_cases = 0
    for s in specs:
        folder = out / CASES_DIR / s.case_id
        rec = read_case_record(folder)
        if rec is None or rec.get("settings_hash") == cfg.settings_hash:
            continue
        old_cases += 1
        files = rec.get("files") or []
        qa_cases += cfg.qa_generator is None and "qa.json" in files
        key_cases += not cfg.key_images and any(str(f).startswith("key_images") for f in files)
    removed = []
    if qa_cases:
        removed.append(f"qa.json of {qa_cases} case{'s' if qa_cases != 1 else ''}")
    if key_cases:
        removed.append(f"key images of {key_cases} case{'s' if key_cases != 1 else ''}")
    if not opts.qa and (out / QA_FILE).exists():
        removed.append(QA_FILE)
    if not old_cases and not removed:
        return None, []
    try:
        old = json.loads((out / SETTINGS_FILE).read_text())
        what = "; ".join(_diff(old, sdoc)) or "same settings, other hash"
    except (OSError, ValueError):
        what = "the previous settings are not recorded"
    msg = f"settings changed ({what})"
    if old_cases:
        msg += f": {old_cases} case{'s' if old_cases != 1 else ''} built with other settings will be redone"
    if removed:
        msg += "; " + (", ".join(removed[:-1]) + " and " + removed[-1] if len(removed) > 1 else removed[0]) + \
            " will be removed"
    return msg, removed


def _plan(specs, out, cfg, cache, state, opts, summary) -> tuple[list[CaseTask], list[CaseSpec]]:
    records = {s.case_id: read_case_record(out / CASES_DIR / s.case_id) for s in specs}
    need = [s for s in specs if records[s.case_id] or s.case_id in state.errors or not s.masks]

    def key(s: CaseSpec) -> str | None:
        try:
            return input_hash(s, cache)
        except OSError as e:
            log.warning("%s: cannot hash its inputs (%s)", s.case_id, e)
            return None

    with cf.ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (opts.workers or os.cpu_count() or 2)))) as tp:
        for s, k in zip(need, tp.map(key, need)):
            state.keys[s.case_id] = k
    to_run, to_fail = [], []
    for s in specs:
        cid, rec, err = s.case_id, records[s.case_id], state.errors.get(s.case_id)
        k = state.keys.get(cid)
        if rec and k and rec.get("input_hash") == k and rec.get("settings_hash") == cfg.settings_hash:
            state.status[cid] = "done"
            summary.skipped_done += 1
        elif (err and err.get("input_hash") == k and err.get("settings_hash") == cfg.settings_hash
              and err.get("stage") != "output" and not opts.retry_failed):
            state.status[cid] = "failed"
            summary.skipped_failed += 1
        else:
            state.status[cid] = "pending"
            if not s.masks and opts.segment is None:
                to_fail.append(s)
            else:
                to_run.append(CaseTask(s, k))
    return to_run, to_fail


OUTPUT_STOP = 3  # consecutive cases not written because of the output side after which the build stops


class _Recorder:
    """Parent-side bookkeeping of each finished case: errors.jsonl, hash cache, counts, observer. Stops
    the build (DatasetOutputError) after OUTPUT_STOP cases in a row could not be written: a full disk
    would otherwise have every remaining case analysed only to be thrown away."""

    def __init__(self, out, cfg, cache, state, summary, observer) -> None:
        self.out, self.cfg, self.cache, self.state, self.summary, self.observer = out, cfg, cache, state, summary, observer
        self._last_save = time.monotonic()
        self._n = 0
        self._output_streak = 0

    def __call__(self, o: CaseOutcome) -> None:
        st, cid = self.state, o.case_id
        if o.input_hash is not None:
            st.keys[cid] = o.input_hash
        if o.file_hashes:
            self.cache.merge(o.file_hashes)
        self.summary.ran += 1
        if o.status == "done":
            st.status[cid] = "done"
            st.errors.pop(cid, None)
            self.summary.ran_done += 1
        elif o.stage == "output":  # disk full, I/O error, permission: not the case's fault; retried next run
            self._output_streak += 1
            st.status[cid] = "pending"
            self.summary.output_failed += 1
            self.summary.output_error = self.summary.output_error or f"{o.error_type}: {o.message}"
        else:
            prev = st.errors.get(cid)
            rec = {"case_id": cid, "stage": o.stage, "error_type": o.error_type, "message": o.message}
            if o.traceback:
                rec["traceback"] = o.traceback
            rec.update(input_hash=st.keys.get(cid), settings_hash=self.cfg.settings_hash,
                       attempts=int(prev.get("attempts", 1)) + 1 if prev else 1)
            try:
                with open(self.out / ERRORS_FILE, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:  # the output side; the final errors.jsonl (rewritten whole) still gets it
                if not is_output_error(e):
                    raise
                self.summary.output_error = self.summary.output_error or f"{ERRORS_FILE}: {type(e).__name__}: {e}"
            st.errors[cid] = rec
            st.status[cid] = "failed"
            self.summary.ran_failed += 1
            stale = self.out / CASES_DIR / cid
            if stale.exists():  # outputs of older inputs/settings: the case folder must mean "done now"
                tomb = stale.with_name(f".{cid}.old-{os.getpid()}")
                try:
                    os.rename(stale, tomb)
                except OSError as e:
                    if not is_output_error(e):
                        raise
                    log.warning("%s: could not remove the outputs of older inputs/settings (%s)", cid, e)
                shutil.rmtree(tomb, ignore_errors=True)
        self._n += 1
        if self._n % 50 == 0 or time.monotonic() - self._last_save > 30:
            try:
                self.cache.save()
            except OSError as e:  # only a shortcut: saved again at the end
                if not is_output_error(e):
                    raise
            self._last_save = time.monotonic()
        if self.observer:
            self.observer.case_finished(o)
        if o.stage != "output":
            self._output_streak = 0
        elif self._output_streak >= OUTPUT_STOP:
            raise DatasetOutputError(
                f"{self.out}: {self._output_streak} cases in a row could not be written ({self.summary.output_error}); "
                "the build stopped: finished cases are kept, the others are pending: free space or fix permissions, "
                "then run the same command again")


# ------------------------------------------------------------------------------------------------
# local engine


_PARENT_PID: int | None = None  # set in local-engine workers


def _finalize(out: Path, specs, state: State, cfg: CaseConfig, opts: BuildOptions, sdoc: dict, cache: HashCache,
              summary: BuildSummary, root: Path | None = None) -> None:
    cache.save()
    atomic_write_bytes(out / SETTINGS_FILE, json.dumps(sdoc, indent=1, sort_keys=True).encode())
    failed = {s.case_id for s in specs if state.status.get(s.case_id) == "failed"}
    lines = [json.dumps(state.errors[c]) + "\n" for c in sorted(failed) if c in state.errors]
    atomic_write_bytes(out / ERRORS_FILE, "".join(lines).encode())
    from .followup import FOLLOWUP_FILE, compare_patients, write_followup

    if not summary.interrupted:  # patients' cases compared in time order (kept as they were after Ctrl-C)
        write_followup(compare_patients(out, specs, state.status, root or out), out / FOLLOWUP_FILE)
    rows, qa_rows = dataset_rows(specs, out, state, cfg.settings_hash, root)
    meta_keys = sorted({k for s in specs for k in s.metadata})
    write_parquet(rows, out / DATASET_FILE, columns(require_pyarrow(), meta_keys))
    if opts.qa:
        write_parquet(qa_rows, out / QA_FILE)
    elif (out / QA_FILE).exists():
        (out / QA_FILE).unlink()  # a QA table of an older build would not match the case folders
    counts = Counter(r["status"] for r in rows)
    summary.done, summary.failed, summary.pending = counts["done"], counts["failed"], counts["pending"]
    summary.errors_by_type = dict(Counter(r["error_type"] for r in rows if r["status"] == "failed"))
    fallbacks = [r.get("report_fallback") or "" for r in rows if r["status"] == "done"]
    summary.llm_timed_out = sum(f.startswith(TIMED_OUT) for f in fallbacks)
    summary.llm_not_asked = sum(f.startswith(SKIPPED) for f in fallbacks)
    atomic_write_bytes(out / CARD_FILE, dataset_card(rows, qa_rows, sdoc, cfg, opts, out).encode())

