"""`radagent dataset ...`: a thin click shell over agent.dataset.build_dataset.

Registered in agent/cli.py's lazy command table ``_LAZY`` (imported only when it runs); also runnable alone as
``python -m agent.dataset_cli build SOURCE -o OUT``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from agent.segment_options import segment_request_from_options, segment_request_options
from radagent.errors import InputError


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class _RichObserver:
    """Progress bar (done/failed counts, cases per hour, ETA) fed by build_dataset."""

    def __init__(self, console, enabled: bool) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                rate = task.completed / task.elapsed * 3600.0 if task.elapsed and task.completed else None
                return Text(f"{rate:,.0f} cases/h" if rate else "-- cases/h")

        self.con = console
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                                 TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not enabled,
                                 transient=False)
        self.task = None
        self.failed = 0

    def planned(self, total: int, to_run: int, skipped_done: int, skipped_failed: int) -> None:
        self.con.print(f"{total} cases: {to_run} to process, {skipped_done} already done, "
                       f"{skipped_failed} failed before (skipped; --retry-failed retries them)", highlight=False)
        self.progress.start()
        self.task = self.progress.add_task("building", total=to_run, failed=0)

    def settings_changed(self, message: str) -> None:
        self.con.print(f"[yellow]{_esc(message)}[/]", highlight=False)

    def case_finished(self, outcome) -> None:
        if outcome.stage == "output":  # not the case's failure: pending, retried by the next run
            self.progress.console.print(f"[yellow]not written[/] {_esc(f'{outcome.case_id} (pending; the next run retries it): {outcome.error_type}: {outcome.message}')}",
                                        highlight=False)
        elif outcome.status != "done":
            self.failed += 1
            first = (outcome.message or "").splitlines()[0][:200] if outcome.message else ""
            self.progress.console.print(f"[yellow]failed[/] {_esc(f'{outcome.case_id} ({outcome.stage}, {outcome.error_type}): {first}')}",
                                        highlight=False)
        self.progress.update(self.task, advance=1, failed=self.failed)

    def stop(self) -> None:
        self.progress.stop()


@click.group("dataset")
def dataset() -> None:
    """Build image-report datasets from many CT cases (resumable, local pool or Ray)."""


@dataset.command("build")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder (created; re-running resumes it).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: process pool; ray: Ray Data pipeline (needs ray[data]).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Cases processed in parallel (default: CPU count; ray: the whole cluster).")
@click.option("--llm", "llm_url", default=None, help="OpenAI-compatible server URL for the narrative (template without it).")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--llm-timeout", "llm_timeout", type=click.FloatRange(min=0.1, max=3600), default=120.0,
              show_default=True, metavar="SECONDS",
              help="Seconds to wait for the LLM server per request; after 3 consecutive timeouts the remaining "
                   "cases use the template narrative.")
@click.option("--llm-concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Concurrent LLM requests per batch.")
@click.option("--qa", is_flag=True, help="Also generate question-answer pairs per case (qa.json, qa.parquet).")
@click.option("--retry-failed", is_flag=True, help="Retry the cases errors.jsonl lists (skipped otherwise).")
@click.option("--style", type=click.Choice(["structured", "narrative"]), default="structured", show_default=True)
@click.option("--no-key-images", is_flag=True, help="Skip the key image of each lesion.")
@click.option("--dicom-out", "dicom_out", is_flag=True,
              help="Also write dicom/seg.dcm, dicom/sr.dcm and fhir_bundle.json per case (DICOM CT cases; these carry the "
                   "source's patient and study identifiers).")
@click.option("--ray-address", default=None, help="Ray cluster to join ('auto': the running cluster); default: a local Ray.")
@click.option("--no-progress", is_flag=True, help="No progress bar (failures and the summary are still printed).")
@segment_request_options(backend_aliases=("--segment",))
def build(source: Path, out: Path, engine: str, workers: int | None, llm_url: str | None, model: str | None,
          llm_timeout: float, llm_concurrency: int, qa: bool, retry_failed: bool, style: str, no_key_images: bool,
          ray_address: str | None, no_progress: bool, dicom_out: bool, **segment: object) -> None:
    """Build (or resume) a dataset from SOURCE: a folder of cases (CASE/ct.nii.gz + CASE/segmentations/)
    or a manifest .csv/.parquet (case_id, ct, masks, [class_map], [mask_label], [split: train|val|test],
    metadata columns such as phase or patient_id).
    Cases without masks are segmented with --segment BACKEND (repeat; the segment extra; the other
    segmentation options as for `radagent analyze`); without it they are recorded as errors."""
    from agent.dataset import BuildOptions, DatasetOutputError, build_dataset

    con = _stderr()
    obs = _RichObserver(con, enabled=not no_progress)
    t0 = time.perf_counter()
    try:
        # cases without masks are segmented only when asked (--segment BACKEND): a SegmentRequest,
        # validated here, hashed into the settings and pickled to the workers
        request = segment_request_from_options(**segment) if segment.get("backends") else None
        opts = BuildOptions(engine=engine, workers=workers, llm_url=llm_url, llm_model=model,
                            llm_concurrency=llm_concurrency, llm_timeout_s=llm_timeout, qa=qa, retry_failed=retry_failed, style=style,
                            key_images=not no_key_images, ray_address=ray_address, segment=request,
                            dicom_out=dicom_out)
        s = build_dataset(source, out, opts, observer=obs)
    except InputError as e:
        obs.stop()
        con.print(f"[bold red]error:[/] {_esc(str(e))}", highlight=False)
        sys.exit(2)
    except DatasetOutputError as e:
        obs.stop()
        con.print(f"[bold red]error:[/] {_esc(str(e))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        obs.stop()
        con.print(f"[yellow]interrupted[/]: finished cases are kept; {out / 'dataset.parquet'} lists them; "
                  "run the same command again to resume", highlight=False)
        sys.exit(130)
    obs.stop()
    rate = f", {s.cases_per_hour:,.0f} cases/h" if s.cases_per_hour else ""
    con.print(f"{s.total} cases: {s.done} done, {s.failed} failed, {s.pending} pending; this run processed {s.ran} "
              f"({s.ran_done} done, {s.ran_failed} failed) in {time.perf_counter() - t0:.1f} s{rate}", highlight=False)
    if s.llm_timed_out or s.llm_not_asked:
        con.print(f"[yellow]warning:[/] the LLM server timed out on {s.llm_timed_out} case(s)"
                  + (f" and stalled repeatedly: {s.llm_not_asked} case(s) were not sent" if s.llm_not_asked else "")
                  + "; their reports use the template narrative (dataset.parquet column report_fallback)", highlight=False)
    if s.errors_by_type:
        con.print("failures: " + ", ".join(f"{k} {v}" for k, v in sorted(s.errors_by_type.items())), highlight=False)
    for name in ("dataset.parquet", "errors.jsonl", "dataset_card.md") + (("qa.parquet",) if qa else ()):
        click.echo(str(out / name))
    if s.output_failed:
        con.print(f"[bold red]error:[/] {s.output_failed} case(s) could not be written to {_esc(str(out))} "
                  f"({_esc(s.output_error or 'output error')}); they are pending, not failed: free space or fix "
                  "permissions, then run the same command again", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    dataset()
