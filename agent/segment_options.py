"""The segmentation options of the CLI, written once: `analyze`, `dataset build` and `segment` share them.

    @click.command()
    @segment_request_options                                 # analyze, dataset build
    def analyze(..., **seg):
        request = segment_request_from_options(**seg)      # SegmentRequest, or click.UsageError

    @segment_request_options(include_masks_backend=True)     # segment: adds --masks / --class-map
    def segment(..., **seg): ...

Choices come from perception's own data (``perception.segment.BACKENDS``, ``totalseg.TASKS``), so the
CLI cannot drift from what the backends accept; every value is validated once, by
``SegmentRequest.build``, whose refusal becomes a click usage error (exit code 2) naming the option.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from perception.segment import BACKENDS, SegmentRequest
from perception.segment.totalseg import TASKS
from radagent.errors import RequestError

# click parameter name -> SegmentRequest field, where they differ (no_download is allow_download negated)
_FIELD_OF = {"weights": "unit_weights", "threshold": "existence_threshold"}
# the parameter names segment_request_options adds (without / with the masks backend)
OPTION_NAMES = ("backends", "weights", "tasks", "fast", "totalseg_weights", "totalseg_home", "no_download",
                "threshold", "nnunet_model", "labels", "bundle", "device")
MASKS_OPTION_NAMES = ("masks", "class_map")


def backend_choices(include_masks_backend: bool) -> list[str]:
    """Backend names offered by a command: the models first, ``masks`` last and only where it applies."""
    models = [b for b in BACKENDS if b != "masks"]
    return models + (["masks"] if include_masks_backend and "masks" in BACKENDS else [])


def _options(include_masks_backend: bool, backend_aliases: tuple[str, ...] = ()) -> list[Callable[[Callable], Callable]]:
    opts = [
        click.option("--backend", *backend_aliases, "backends", multiple=True, type=click.Choice(backend_choices(include_masks_backend)),
                     help="Segmentation backend(s), in priority order (repeat the option; the first listed wins where "
                          "several find a structure). Default: totalseg, plus unit when --weights is given."),
        click.option("--weights", type=click.Path(path_type=Path), default=None,
                     help="UniT checkpoint (backend unit), from `radagent train unit`."),
        click.option("--task", "tasks", multiple=True, type=click.Choice(list(TASKS)),
                     help="TotalSegmentator task(s) (repeat; default: total, then liver_segments, liver_lesions, "
                          "kidney_cysts, lung_nodules where total found the organ)."),
        click.option("--fast/--full", "fast", default=None,
                     help="TotalSegmentator `total` at 3 mm (fast) or 1.5 mm (full). Default: fast on CPU, full on GPU."),
        click.option("--totalseg-weights", type=click.Path(path_type=Path), default=None,
                     help="Folder of TotalSegmentator nnU-Net weights (TOTALSEG_WEIGHTS_PATH)."),
        click.option("--totalseg-home", type=click.Path(path_type=Path), default=None,
                     help="TotalSegmentator home folder (TOTALSEG_HOME_DIR; weights in <home>/nnunet/results)."),
        click.option("--no-download", is_flag=True,
                     help="Fail with instructions instead of downloading missing TotalSegmentator weights."),
        click.option("--threshold", type=float, default=None,
                     help="UniT tumour existence threshold, a probability in 0..1 (default: the checkpoint's)."),
        click.option("--nnunet-model", type=click.Path(path_type=Path), default=None,
                     help="nnU-Net v2 results folder (backend nnunet): plans.json, dataset.json, fold_N/checkpoint_final.pth."),
        click.option("--labels", type=click.Path(path_type=Path), default=None,
                     help="JSON {label id: radagent name} for --nnunet-model (default: its dataset.json names)."),
        click.option("--bundle", type=click.Path(path_type=Path), default=None,
                     help="MONAI bundle folder (backend bundle): configs/inference.json, configs/metadata.json, models/model.pt."),
        click.option("--device", default="auto", show_default=True,
                     help="Segmentation device: auto | cpu | cuda | cuda:N | mps."),
    ]
    if include_masks_backend:
        opts += [
            click.option("--masks", type=click.Path(path_type=Path), default=None,
                         help="Existing masks (backend masks): a folder of NIfTI masks or a multilabel NIfTI."),
            click.option("--class-map", type=click.Path(path_type=Path), default=None,
                         help="JSON {label id: name} for a multilabel --masks file (default: TotalSegmentator 'total')."),
        ]
    return opts


def segment_request_options(f: Callable | None = None, *, include_masks_backend: bool = False,
                            backend_aliases: tuple[str, ...] = ()):
    """Add the shared segmentation options to a click command (``@segment_request_options`` or
    ``@segment_request_options(include_masks_backend=True)`` for `segment`, whose ``masks`` backend
    takes ``--masks``/``--class-map``; `analyze` has its own ``--masks``, so it leaves them out).
    ``backend_aliases``: other spellings of ``--backend`` (`dataset build` says ``--segment``)."""

    def decorate(fn: Callable) -> Callable:
        for o in reversed(_options(include_masks_backend, backend_aliases)):
            fn = o(fn)
        return fn

    return decorate(f) if f is not None else decorate


def segment_request_from_options(*, backends: tuple[str, ...] = (), weights: Path | None = None,
                                 tasks: tuple[str, ...] = (), fast: bool | None = None,
                                 totalseg_weights: Path | None = None, totalseg_home: Path | None = None,
                                 no_download: bool = False, threshold: float | None = None, device: str = "auto",
                                 nnunet_model: Path | None = None, labels: Path | None = None, bundle: Path | None = None,
                                 masks: Path | None = None, class_map: Path | None = None) -> SegmentRequest:
    """The SegmentRequest of the options ``segment_request_options`` added (pass them as click gave them).

    Options left at their defaults are left to the request's defaults (no --backend: totalseg, plus
    unit with --weights; no --task: ``totalseg.DEFAULT_TASKS``). A refusal raises click.UsageError naming the option.
    """
    given: dict[str, Any] = {"weights": weights, "totalseg_weights": totalseg_weights, "totalseg_home": totalseg_home,
                             "threshold": threshold, "fast": fast, "masks": masks, "class_map": class_map,
                             "nnunet_model": nnunet_model, "nnunet_labels": labels, "bundle": bundle}
    fields: dict[str, Any] = {_FIELD_OF.get(k, k): v for k, v in given.items() if v is not None}
    if backends:
        fields["backends"] = tuple(backends)
    if tasks:
        fields["tasks"] = tuple(tasks)
    fields["allow_download"] = not no_download
    fields["device"] = device
    try:
        return SegmentRequest.build(**fields)
    except RequestError as e:
        raise click.UsageError(_usage_message(e)) from e


def _usage_message(e: RequestError) -> str:
    if not getattr(e, "problems", ()):
        return str(e)
    return "; ".join(f"{SegmentRequest.option_of(field) or field}: {msg}" for field, msg in e.problems)


@contextlib.contextmanager
def segment_progress(console: Any, label: str) -> Iterator[None]:
    """One progress bar over every segmentation task run inside (percentage, elapsed, ETA), on ``console``
    (stderr). Backends report through ``perception.segment.runs.progress_to``."""
    import time

    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from perception.segment.runs import eta_seconds, progress_to

    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[eta]}"), console=console, transient=False) as bar:
        task = bar.add_task(label, total=100.0, eta="ETA unknown")

        def report(fraction: float, message: str) -> None:
            eta = eta_seconds(fraction, time.perf_counter() - t0)
            bar.update(task, completed=100.0 * fraction, description=f"{label}: {message}",
                       eta="ETA unknown" if eta is None else f"ETA {int(eta // 60)}:{int(eta % 60):02d}")

        with progress_to(report):
            yield
