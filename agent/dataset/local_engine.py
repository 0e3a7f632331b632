"""The local engine: a process pool (forkserver, heavy modules preloaded, workers recycled), at most
2 x workers cases in flight, an LLM stage batching narratives, and crash isolation (a case whose
worker died is retried alone; dying again, it is recorded as WorkerCrashedError)."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from .case import CaseOutcome, CaseTask, LLMStallGuard, draft_and_finish, failure, run_case
from .errors import WorkerCrashedError
from .options import BuildOptions, CaseConfig
from .worker import PRELOAD, worker_init

log = logging.getLogger("radagent")


class LLMStage:
    """Prepared cases wait here; batches of llm_concurrency go to one thread that runs them as
    concurrent requests (reasoning.narrative.llm_drafts), then renders and writes them."""

    def __init__(self, cfg: CaseConfig, opts: BuildOptions, model: str | None) -> None:
        self.cfg, self.opts, self.model = cfg, opts, model
        self.buf: list[CaseOutcome] = []
        self.fut: cf.Future | None = None
        self.ex = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
        self.guard = LLMStallGuard()

    def backlog(self) -> int:
        return len(self.buf) + (self.opts.llm_concurrency if self.fut else 0)

    def flush(self, force: bool) -> None:
        if self.fut is None and self.buf and (force or len(self.buf) >= self.opts.llm_concurrency):
            batch, self.buf = self.buf[: self.opts.llm_concurrency], self.buf[self.opts.llm_concurrency:]
            self.fut = self.ex.submit(draft_and_finish, batch, self.cfg, self.opts, self.model, self.guard)


def run_local(tasks: list[CaseTask], cfg: CaseConfig, opts: BuildOptions, model: str | None,
               record: Callable[[CaseOutcome], None]) -> None:
    workers = opts.workers or os.cpu_count() or 1
    llm = LLMStage(cfg, opts, model) if cfg.llm else None
    try:
        suspects = _pool_pass(tasks, cfg, opts, workers, 2 * workers, llm, record)
        if suspects:
            log.warning("a worker died; retrying the %d case(s) it may have held one at a time", len(suspects))
        for t in suspects:  # alone in a fresh pool: a crash now is this case's
            for t2 in _pool_pass([t], cfg, opts, 1, 1, llm, record):
                o = CaseOutcome(t2.spec.case_id, "failed", t2.input_hash, spec=t2.spec)
                record(failure(o, "worker", WorkerCrashedError(
                    f"{t2.spec.ct}: the worker process died while processing this case alone "
                    "(crash or out-of-memory kill)")))
    finally:
        if llm:
            llm.ex.shutdown(wait=True, cancel_futures=True)


def _pool_pass(tasks, cfg, opts, workers, window, llm: LLMStage | None, record) -> list[CaseTask]:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    pending, inflight, crashed = deque(tasks), {}, []
    ex: cf.ProcessPoolExecutor | None = None
    try:
        while pending or inflight or (llm and (llm.buf or llm.fut)):
            if ex is None and pending:
                ex = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),),
                                            max_tasks_per_child=opts.max_tasks_per_child)
            while pending and len(inflight) < window and (llm is None or llm.backlog() < 2 * opts.llm_concurrency):
                t = pending.popleft()
                inflight[ex.submit(run_case, t, cfg, llm is None)] = t
            if llm:
                llm.flush(force=not pending and not inflight)
            waitset = set(inflight) | ({llm.fut} if llm and llm.fut else set())
            if not waitset:
                continue
            done, _ = cf.wait(waitset, timeout=5.0, return_when=cf.FIRST_COMPLETED)
            broken = False
            for fut in done:
                if llm and fut is llm.fut:
                    llm.fut = None
                    for o in fut.result():
                        record(o)
                    continue
                t = inflight.pop(fut)
                try:
                    o = fut.result()
                except BrokenProcessPool:
                    crashed.append(t)
                    broken = True
                    continue
                except Exception as e:  # noqa: BLE001 - e.g. an outcome that cannot be pickled
                    o = failure(CaseOutcome(t.spec.case_id, "failed", t.input_hash, spec=t.spec), "worker", e)
                if o.status == "prepared":
                    llm.buf.append(o)
                else:
                    record(o)
            if broken:
                crashed += list(inflight.values())
                inflight.clear()
                ex.shutdown(wait=False, cancel_futures=True)
                ex = None
    finally:
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
    return crashed


# ------------------------------------------------------------------------------------------------
# Ray engine
