"""Watch a PACS for newly stable studies and process each once (resumable, idempotent).

Each poll asks QIDO-RS for the studies (optionally one modality) and their instance counts. A study is *stable*
when its count has not changed for ``stable_age_s`` seconds (the count and the time it last changed are kept in
the state file, so stability survives a restart); only then is it processed (agent.pacs.loop). The state file
(JSON, written atomically: a temporary file in the same folder, fsync, rename) records per study ``done`` (with
the SOP Instance UIDs stored back), ``failed`` (with the message; retried only with ``retry_failed``) or
``pending`` (seen, not yet stable). A study ``done`` is never processed again, even though storing our SEG + SR
into it changes its instance count. One watcher per state file (an flock on ``<state>.lock``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent.pacs.client import PacsClient, PacsError
from radagent.errors import RadagentError

STATE_VERSION = 1
log = logging.getLogger("radagent.pacs")


@dataclass
class PollResult:
    processed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # done before, or failed and not retried
    pending: list[str] = field(default_factory=list)   # not yet stable


def load_state(path: Path, url: str) -> dict:
    """The state file's content, a new state when absent; refused when corrupt or written for another PACS."""
    if not path.exists():
        return {"version": STATE_VERSION, "url": url, "studies": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PacsError(f"{path}: expected a radagent watch state file (JSON), found unreadable content ({e})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("studies"), dict):
        raise PacsError(f"{path}: expected a watch state file of version {STATE_VERSION} with a 'studies' table, "
                        f"found {type(state).__name__} version {state.get('version') if isinstance(state, dict) else None}")
    if state.get("url") != url:
        raise PacsError(f"{path}: this state file records the PACS {state.get('url')!r}, not {url!r}; use another "
                        "state file for another PACS")
    return state


def save_state(path: Path, state: dict) -> None:
    """Write the state atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def state_lock(path: Path):
    """Exclusive use of the state file by this process; a second watcher is refused at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PacsError(f"{path}: another radagent pacs watch is using this state file") from None
        yield


def poll(client: PacsClient, state_path: Path, process: Callable[[str], list[str]], *, modality: str | None = "CT",
         stable_age_s: float = 60.0, retry_failed: bool = False, attempted: set[str] | None = None,
         now: Callable[[], float] = time.time) -> PollResult:
    """One poll: update what is seen, process each stable study not done (``process(study_uid)`` returns the SOP
    Instance UIDs it stored), save the state after each study. An error from ``process`` is recorded as that study's
    failure with its message, and the poll goes on: a RadagentError (the study's input refused, segmentation
    unavailable, the PACS refusing a transfer) as is; any other exception is a bug, logged with its traceback and
    recorded as an internal error (one bad study must not stop the watcher, or stop it again at each restart).
    KeyboardInterrupt and SystemExit propagate, with the state saved so far."""
    state = load_state(state_path, client.settings.url)
    studies: dict[str, dict] = state["studies"]
    result = PollResult()
    attempted = set() if attempted is None else attempted  # failed studies retried in this run: once each
    for row in client.find_studies(modality=modality):
        uid = row["StudyInstanceUID"]
        rec = studies.get(uid)
        status = rec["status"] if rec else None
        if status == "done" or (status == "failed" and (not retry_failed or uid in attempted)):
            result.skipped.append(uid)
            continue
        count = row["NumberOfStudyRelatedInstances"]
        if count is None:
            count = client.study_instance_count(uid)
        t = now()
        if rec is None or rec.get("instances") != count:  # new, or still receiving instances: wait until stable
            rec = studies[uid] = {**(rec or {}), "status": status or "pending", "instances": count, "changed_at": t}
            save_state(state_path, state)
        if t - rec["changed_at"] < stable_age_s:
            result.pending.append(uid)
            continue
        attempted.add(uid)
        try:
            stored = process(uid)
        except Exception as e:  # a bad study is recorded (retried on request only), the watch goes on
            if not isinstance(e, RadagentError):
                log.exception("study %s: internal error", uid)
            what = "" if isinstance(e, RadagentError) else "internal error (a bug, with its traceback in the log): "
            studies[uid] = {**rec, "status": "failed", "message": f"{what}{type(e).__name__}: {e}", "attempts": rec.get("attempts", 0) + 1,
                            "at": now()}
            result.failed.append(uid)
        else:
            studies[uid] = {**rec, "status": "done", "stored": stored, "attempts": rec.get("attempts", 0) + 1,
                            "at": now(), "message": None}
            result.processed.append(uid)
        save_state(state_path, state)
    return result


def watch(client: PacsClient, state_path: Path, process: Callable[[str], list[str]], *, modality: str | None = "CT",
          stable_age_s: float = 60.0, interval_s: float = 10.0, retry_failed: bool = False, once: bool = False,
          report: Callable[[PollResult], None] | None = None, sleep: Callable[[float], None] = time.sleep
          ) -> PollResult:
    """Poll every ``interval_s`` seconds; with ``once``, stop when no seen study is still waiting to become stable.
    Returns what was processed, failed and skipped over all polls (``pending``: those of the last poll)."""
    total = PollResult()
    attempted: set[str] = set()
    with state_lock(state_path):
        while True:
            r = poll(client, state_path, process, modality=modality, stable_age_s=stable_age_s,
                     retry_failed=retry_failed, attempted=attempted)
            total.processed += r.processed
            total.failed += r.failed
            total.skipped = sorted(set(total.skipped) | set(r.skipped))
            total.pending = r.pending
            if report is not None:
                report(r)
            if once and not r.pending:
                total.skipped = sorted(set(total.skipped) - set(total.processed) - set(total.failed))
                return total
            sleep(interval_s)
