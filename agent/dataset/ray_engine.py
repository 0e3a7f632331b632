"""The Ray engine: the same per-case functions as a Ray Data pipeline
``from_items -> map(prepare: hash, analyze; CPU tasks, one GPU each when segmenting on a GPU
cluster) -> map_batches(LLM actor; only with an LLM) -> map(finish: report, QA, atomic write)``.
The driver streams the outcomes (progress, errors, hash cache)."""

from __future__ import annotations

import logging
import os
import pickle
from typing import Callable

from agent import case as case_service
from radagent.errors import RadagentError

from .case import CaseOutcome, CaseTask, failure, finish_case, run_case
from .errors import DatasetError
from .options import BuildOptions, CaseConfig


def ray_prepare(row: dict, cfg: CaseConfig, finish: bool) -> dict:
    task = pickle.loads(row["task"])
    return {"outcome": pickle.dumps(run_case(task, cfg, finish))}


def ray_finish(row: dict, cfg: CaseConfig) -> dict:
    return {"outcome": pickle.dumps(finish_case(pickle.loads(row["outcome"]), cfg))}


class RayLLMStage:
    """Ray Data actor: one batch of cases -> LLM drafts through bounded concurrent requests."""

    def __init__(self, url: str, model: str | None, concurrency: int, style: str, api_key: str | None = None,
                 timeout_s: float = 120.0) -> None:
        from .case import LLMStallGuard

        self.url, self.model, self.concurrency, self.style, self.api_key = url, model, concurrency, style, api_key
        self.timeout_s, self.guard = timeout_s, LLMStallGuard()

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        outs = [pickle.loads(b) for b in batch["outcome"]]
        todo = [o for o in outs if o.status == "prepared"]
        if todo:
            try:
                llm = case_service.LLMSettings(url=self.url, model=self.model, api_key=self.api_key,
                                               timeout_s=self.timeout_s)
                drafts = self.guard.drafts([o.findings for o in todo], llm, self.style, self.concurrency)
                for o, d in zip(todo, drafts):
                    o.draft = d
            except Exception as e:  # noqa: BLE001
                for o in todo:
                    failure(o, "llm", e)
        return {"outcome": np.array([pickle.dumps(o) for o in outs], dtype=object)}


def run_ray(tasks: list[CaseTask], cfg: CaseConfig, opts: BuildOptions, model: str | None,
             record: Callable[[CaseOutcome], None]) -> None:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise DatasetError("--engine ray needs Ray Data: pip install 'ray[data]>=2.30' (or 'radagent[scale]')") from e
    for name in ("ray", "ray.data"):  # Ray Data logs every execution plan at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    started = False
    if not ray.is_initialized():
        if opts.ray_address:
            ray.init(address=opts.ray_address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=opts.workers or os.cpu_count(), include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
        started = True
    try:
        dctx = ray.data.DataContext.get_current()
        dctx.enable_progress_bars = False
        dctx.enable_operator_progress_bars = False
        compute = ray.data.TaskPoolStrategy(size=opts.workers) if opts.workers else None
        ds = ray.data.from_items([{"task": pickle.dumps(t)} for t in tasks], override_num_blocks=len(tasks))
        # cases without masks are segmented inside this stage: with --segment on a cluster that has
        # GPUs, each such task holds one GPU (TotalSegmentator / UniT load their weights per case)
        gpu = cfg.segment is not None and cfg.segment.device != "cpu" and float(ray.cluster_resources().get("GPU", 0)) > 0
        ds = ds.map(ray_prepare, fn_kwargs={"cfg": cfg, "finish": not cfg.llm}, num_cpus=1, compute=compute,
                    **({"num_gpus": 1} if gpu else {}))
        if cfg.llm:
            ds = ds.map_batches(RayLLMStage, batch_size=opts.llm_concurrency, num_cpus=0,
                                compute=ray.data.ActorPoolStrategy(size=1),
                                fn_constructor_kwargs={"url": opts.llm_url, "model": model,
                                                       "concurrency": opts.llm_concurrency, "style": opts.style,
                                                       "api_key": opts.llm_api_key,
                                                       "timeout_s": opts.llm_timeout_s})
            ds = ds.map(ray_finish, fn_kwargs={"cfg": cfg}, num_cpus=1, compute=compute)
        try:
            for row in ds.iter_rows():
                record(pickle.loads(row["outcome"]))
        except (RadagentError, KeyboardInterrupt):
            raise
        except Exception as e:  # the pipeline itself failed (cluster lost, ...): finished cases are kept
            raise DatasetError(f"the Ray pipeline stopped ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                               "finished cases are kept: run the same command again to resume") from e
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------------
# dataset.parquet, qa.parquet, errors.jsonl compaction, dataset card
