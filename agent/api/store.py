"""Case folders on the server: records, the per-case lock, the findings cache, and the analysis job."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

from fastapi import HTTPException
from pydantic import ValidationError

from perception.schema import Findings
from radagent.errors import InputError

from .models import CaseInfo, CaseRecord
from .security import redact, redact_text, refuse
from .settings import CASE_ID_RE

log = logging.getLogger("radagent.api")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- case storage ---------------------------------------------------------------------------------
class CaseStore:
    """Case folders under one root; case.json written atomically; a lock per case orders the
    analysis worker's writes against deletion."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._case_locks: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[str, Findings] = OrderedDict()

    def case_lock(self, cid: str) -> threading.Lock:
        with self._lock:
            return self._case_locks.setdefault(cid, threading.Lock())

    def folder(self, cid: str) -> Path:
        """The case's folder; 404 for a malformed id, a missing case, or anything but a real folder."""
        if not CASE_ID_RE.fullmatch(cid):
            raise refuse(404, f"unknown case {cid[:64]!r} (case ids are 32 lowercase hex characters)")
        p = self.root / cid
        if p.is_symlink() or not p.is_dir() or not (p / "case.json").is_file():
            raise refuse(404, f"unknown case {cid!r}")
        return p

    def load(self, cid: str) -> CaseRecord:
        p = self.folder(cid)
        try:
            return CaseRecord.model_validate_json((p / "case.json").read_text())
        except (OSError, ValidationError, ValueError):
            raise refuse(404, f"unknown case {cid!r}") from None

    def save(self, rec: CaseRecord, folder: Path | None = None) -> None:
        folder = folder or self.root / rec.info.id
        tmp = folder / f".case.json.tmp-{threading.get_ident()}"
        tmp.write_text(rec.model_dump_json(indent=2))
        os.replace(tmp, folder / "case.json")

    def new_staging(self) -> tuple[str, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        cid = secrets.token_hex(16)
        staging = self.root / f".staging-{cid}"
        staging.mkdir(mode=0o700)
        return cid, staging

    def commit(self, staging: Path, rec: CaseRecord) -> None:
        self.save(rec, staging)
        os.rename(staging, self.root / rec.info.id)

    def delete(self, cid: str) -> None:
        p = self.folder(cid)
        with self.case_lock(cid):
            shutil.rmtree(p)
        with self._lock:
            self._cache.pop(cid, None)
            self._case_locks.pop(cid, None)

    def list(self) -> list[CaseInfo]:
        out = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.iterdir()):
            if CASE_ID_RE.fullmatch(p.name):
                try:
                    out.append(self.load(p.name).info)
                except HTTPException:
                    continue
        return sorted(out, key=lambda i: i.created)

    def done(self, cid: str) -> tuple[CaseRecord, Path]:
        """The record and out/ folder of a finished case; 409 while it runs, its error when it failed."""
        rec = self.load(cid)
        st = rec.info.status
        if st in ("queued", "running"):
            raise refuse(409, f"case {cid} is {st}; poll GET /cases/{cid} until its status is 'done'")
        if st == "failed":
            raise refuse(failed_status(rec.info.error_kind), rec.info.error or "analysis failed")
        return rec, self.root / cid / "out"

    def findings(self, cid: str) -> tuple[Findings, Path]:
        _, out = self.done(cid)
        with self._lock:
            f = self._cache.get(cid)
            if f is not None:
                self._cache.move_to_end(cid)
                return f, out
        f = Findings.model_validate_json((out / "findings.json").read_text())
        with self._lock:
            self._cache[cid] = f
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return f, out

    def recover(self) -> None:
        """At start: staging leftovers removed; cases a previous process left queued/running marked failed."""
        if not self.root.is_dir():
            return
        for p in self.root.iterdir():
            if p.name.startswith(".staging-") and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif CASE_ID_RE.fullmatch(p.name):
                try:
                    rec = self.load(p.name)
                except HTTPException:
                    continue
                if rec.info.status in ("queued", "running"):
                    rec.info.status, rec.info.error_kind = "failed", "internal"
                    rec.info.error = "the server stopped during the analysis; create the case again"
                    self.save(rec)


def failed_status(error_kind: str | None) -> int:
    """HTTP status of a failed case: its input (unusable, or not analyzable within the deadline) 422,
    the server's own failure 500."""
    return 422 if error_kind in ("input", "timeout") else 500


# --- the analysis job -----------------------------------------------------------------------------
def _expire(store: CaseStore, cid: str, timeout_s: float) -> None:
    """Deadline timer: a case still running is marked failed; the worker's late result is discarded."""
    with store.case_lock(cid):
        try:
            rec = store.load(cid)
        except HTTPException:
            return
        if rec.info.status != "running":
            return
        rec.info.status, rec.info.error_kind = "failed", "timeout"
        rec.info.error = (f"the analysis did not finish within the server's limit of {timeout_s:g} s "
                          "(analysis_timeout_s); its inputs may be too large or malformed")
        store.save(rec)
    log.warning("case %s: analysis past its deadline of %g s, marked failed", cid, timeout_s)


def run_analysis(store: CaseStore, cid: str, timeout_s: float | None = None) -> None:
    """Worker thread: analyze the case's inputs through the case service and write out/ atomically,
    unless the case was deleted meanwhile or passed its deadline (``timeout_s`` from the start of the
    analysis; a thread cannot be killed, so the case is marked failed when the deadline passes and
    whatever the analysis returns later is discarded)."""
    from agent import case as case_service

    lock = store.case_lock(cid)
    with lock:
        try:
            rec = store.load(cid)
        except HTTPException:
            return  # deleted before it started
        rec.info.status = "running"
        store.save(rec)
    timer = None
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, _expire, (store, cid, timeout_s))
        timer.daemon = True
        timer.start()
    try:
        _analyze(store, cid, rec, case_service)
    finally:
        if timer is not None:
            timer.cancel()


def _still_running(store: CaseStore, cid: str) -> bool:
    """Under the case lock: the case exists and was not expired meanwhile."""
    try:
        return store.load(cid).info.status == "running"
    except HTTPException:
        return False


def _analyze(store: CaseStore, cid: str, rec: CaseRecord, case_service) -> None:
    lock = store.case_lock(cid)
    folder = store.root / cid
    tm = case_service.Timings()
    try:
        analyzed = case_service.analyze(rec.paths["ct"], rec.paths["masks"], class_map=rec.paths.get("class_map"),
                                        mask_label=rec.mask_label, timings=tm, dicom_out=rec.dicom_out)
        findings = Findings.model_validate(redact(analyzed.findings.model_dump(mode="json"), rec.display))
        analyzed = analyzed.with_findings(findings)
        with lock:
            if not _still_running(store, cid):
                return
            case_service.write(analyzed, None, folder / "out", force=True, dicom_out=rec.dicom_out)
            rec.info.status = "done"
            rec.info.n_lesions, rec.info.n_organs = len(findings.lesions), len(findings.organs)
            rec.info.warnings = list(findings.study.warnings)
            rec.info.timings_s = {k: round(v, 3) for k, v in tm.seconds.items()}
            store.save(rec)
        log.info("case %s analyzed: %d lesions (%.2f s)", cid, len(findings.lesions), sum(tm.seconds.values()))
    except Exception as e:  # noqa: BLE001 - recorded as the case's status, not swallowed
        input_err = isinstance(e, InputError)
        if not input_err:
            log.exception("case %s: analysis failed", cid)
        with lock:
            if not _still_running(store, cid):
                return
            rec.info.status = "failed"
            rec.info.error_kind = "input" if input_err else "internal"
            rec.info.error = redact_text(str(e), rec.display) if input_err else \
                f"internal error during the analysis ({type(e).__name__}); see the server log"
            shutil.rmtree(folder / "input", ignore_errors=True)
            store.save(rec)
