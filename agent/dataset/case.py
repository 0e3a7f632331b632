"""One case of a build, in a worker: hash its inputs, analyze, report, QA, write its folder.

Every step goes through the case service (agent.case), so a dataset case folder holds exactly
what ``radagent analyze --report`` writes for the same inputs, plus ``case.json`` and ``qa.json``.
A bad case never raises: its outcome records the stage that failed (set before each step runs,
never inferred), the error type and message.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import case as case_service
from agent.files import write_outputs_atomically
from perception import __version__
from perception.schema import Findings
from radagent.errors import InputError

from .errors import is_output_error
from .hashing import HashCache, input_hash
from .options import CASE_JSON, CASES_DIR, LAYOUT_VERSION, BuildOptions, CaseConfig, generator_name
from .sources import CaseSpec
from .worker import exit_if_orphaned

log = logging.getLogger("radagent")


@dataclass
class CaseTask:
    spec: CaseSpec
    input_hash: str | None = None  # known when the parent had to hash the case to plan it


@dataclass
class CaseOutcome:
    case_id: str
    status: str  # done | failed | prepared (analysis done, narrative pending)
    input_hash: str | None = None
    stage: str | None = None
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time of the process on this case (robust to other load on the machine)
    file_hashes: dict[str, list] = field(default_factory=dict)
    spec: CaseSpec | None = None
    case: case_service.AnalyzedCase | None = None  # carried only while status == prepared
    draft: Any = None

    @property
    def findings(self) -> Findings | None:
        return self.case.findings if self.case is not None else None


def failure(o: CaseOutcome, stage: str, e: BaseException) -> CaseOutcome:
    """A failed outcome. An OSError of the output side while writing (disk full, I/O error, read-only,
    permission) gets stage "output": not the case's own failure (the build records it as pending and
    the next run retries it)."""
    if stage == "write" and is_output_error(e):
        stage = "output"
    o.status, o.stage, o.error_type = "failed", stage, type(e).__name__
    o.message = str(e) or repr(e)
    if not isinstance(e, InputError) and stage != "output":
        frames = traceback.extract_tb(e.__traceback__)[-4:]
        o.traceback = "\n".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}: {f.line}" for f in frames)
    o.case = o.draft = None
    return o


def run_case(task: CaseTask, cfg: CaseConfig, finish: bool = True) -> CaseOutcome:
    """Hash, load, measure (or segment), key images; then (finish=True) report, QA and the atomic
    write. Never raises for a bad case: the outcome says what failed, where."""
    exit_if_orphaned()  # a queued case of a killed build is not started
    cpu0 = time.process_time()
    spec = task.spec
    o = CaseOutcome(spec.case_id, "prepared", task.input_hash, spec=spec)
    tm = case_service.Timings()
    try:
        with tm.stage("hash"):
            if o.input_hash is None:
                cache = HashCache()
                o.input_hash = input_hash(spec, cache)
                o.file_hashes = cache.new
        o.case = case_service.analyze(spec.ct, spec.masks, class_map=spec.class_map, mask_label=spec.mask_label,
                                      settings=cfg.settings,
                                      segment=cfg.segment, key_images=cfg.key_images, timings=tm,
                                      dicom_out=cfg.dicom_out)
    except Exception as e:  # noqa: BLE001 - a bad case is recorded, the build goes on
        return failure(o, tm.current or "analyze", e)
    finally:
        o.timings.update(tm.seconds)
        o.cpu_seconds += time.process_time() - cpu0
    return finish_case(o, cfg) if finish else o


def finish_case(o: CaseOutcome, cfg: CaseConfig) -> CaseOutcome:
    """Report (the LLM draft in o.draft, else the template), QA, case.json, atomic write."""
    if o.status != "prepared":
        return o
    cpu0 = time.process_time()
    tm = case_service.Timings(seconds=o.timings)
    try:
        c = o.case
        if o.draft is not None and getattr(o.draft, "seconds", None) is not None:
            o.timings["llm"] = float(o.draft.seconds)
        with tm.stage("report"):
            rep = case_service.report(c, style=cfg.style, draft=o.draft)
        extra: dict[str, str | bytes] = {}
        if cfg.qa_generator is not None:
            with tm.stage("qa"):
                qa = cfg.qa_generator(c.findings)
                if not isinstance(qa, list) or not all(isinstance(q, dict) for q in qa):
                    raise TypeError(f"{generator_name(cfg.qa_generator)} returned {type(qa).__name__}; expected list[dict]")
                extra["qa.json"] = json.dumps(qa, indent=1, ensure_ascii=False, default=str) + "\n"
        with tm.stage("write"):
            spec = o.spec
            files = case_service.output_files(c, rep, extra)  # rendered once: listed in case.json, then written
            if cfg.dicom_out:
                from perception.dicom_out import dicom_output_files

                files.update(dicom_output_files(c, rep.files["report.md"]))
            record = {
                "case_id": o.case_id, "status": "done", "layout_version": LAYOUT_VERSION,
                "input_hash": o.input_hash, "settings_hash": cfg.settings_hash, "radagent_version": __version__,
                "inputs": {"ct": spec.ct, "masks": spec.masks, "class_map": spec.class_map,
                           "mask_label": spec.mask_label},
                "metadata": spec.metadata,
                "timings_s": {k: round(v, 6) for k, v in o.timings.items()},
                "files": sorted(files) + [CASE_JSON],
            }
            files[CASE_JSON] = json.dumps(record, indent=1) + "\n"
            folder = write_outputs_atomically(Path(cfg.out) / CASES_DIR / o.case_id, files, force=True)
            os.chmod(folder, 0o777 & ~_umask())  # the temporary folder was created 0700 (tempfile.mkdtemp)
    except Exception as e:  # noqa: BLE001
        return failure(o, tm.current or "report", e)
    finally:
        o.cpu_seconds += time.process_time() - cpu0
    o.status, o.case, o.draft = "done", None, None
    return o


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


STALL_LIMIT = 3  # consecutive LLM timeouts after which a build stops sending to the server
TIMED_OUT = "LLM timed out"  # how reasoning.narrative's fallback_reason of a timeout starts
SKIPPED = "LLM not asked"


class LLMStallGuard:
    """Stops sending to an LLM server that timed out on ``limit`` consecutive requests: the remaining
    cases of the build get the template narrative, their fallback_reason saying why (counted on the
    card and in the build summary). One per LLM stage (the local engine's, each Ray LLM actor)."""

    def __init__(self, limit: int = STALL_LIMIT) -> None:
        self.limit, self.consecutive, self.tripped = limit, 0, False

    def drafts(self, findings: list, llm: case_service.LLMSettings, style: str, concurrency: int) -> list:
        if self.tripped:
            from reasoning.report import template_draft

            reason = (f"{SKIPPED}: the server timed out on {self.limit} consecutive requests ({llm.timeout_s:g} s "
                      "each); template narrative used")
            return [template_draft(f, style).model_copy(update={"model": llm.model, "fallback_reason": reason})
                    for f in findings]
        drafts = case_service.draft_batch(findings, llm, style, concurrency)
        for d in drafts:
            self.consecutive = self.consecutive + 1 if (d.fallback_reason or "").startswith(TIMED_OUT) else 0
            if self.consecutive >= self.limit and not self.tripped:
                self.tripped = True
                log.warning("the LLM server %s timed out on %d consecutive requests (%g s each): the remaining "
                            "cases use the template narrative", llm.url, self.limit, llm.timeout_s)
        return drafts


def draft_and_finish(batch: list[CaseOutcome], cfg: CaseConfig, opts: BuildOptions, model: str | None,
                     guard: LLMStallGuard | None = None) -> list[CaseOutcome]:
    """LLM narratives for a batch of prepared cases (concurrent requests), then finish each. ``guard``
    (kept across batches) stops asking a server that stalled repeatedly."""
    llm = case_service.LLMSettings(url=opts.llm_url, model=model, api_key=opts.llm_api_key, timeout_s=opts.llm_timeout_s)
    try:
        drafts = (guard or LLMStallGuard()).drafts([o.findings for o in batch], llm, opts.style, opts.llm_concurrency)
    except Exception as e:  # noqa: BLE001
        return [failure(o, "llm", e) for o in batch]
    out = []
    for o, d in zip(batch, drafts):
        o.draft = d
        out.append(finish_case(o, cfg))
    return out
