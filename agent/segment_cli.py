"""`radagent segment` and `radagent train unit`: thin click shells over perception.segment.

Registered in agent/cli.py with::

    from agent.segment_cli import segment, train
    main.add_command(segment)
    main.add_command(train)

Domain errors (InputError and its subclasses, e.g. missing weights) become a message and exit code 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from perception.errors import InputError


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _fail(con, e: Exception) -> None:
    from rich.markup import escape

    con.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
    sys.exit(2)


def backend_options(backends, weights, tasks, fast, totalseg_weights, totalseg_home, no_download, masks, class_map,
                    threshold) -> dict[str, dict]:
    """Per-backend keyword arguments for perception.segment.segment_ct from the CLI options."""
    opts: dict[str, dict] = {}
    for b in backends:
        if b == "unit":
            if weights is None:
                raise click.UsageError("--backend unit needs --weights CKPT (a checkpoint from `radagent train unit`)")
            opts["unit"] = {"weights": weights, **({"existence_threshold": threshold} if threshold is not None else {})}
        elif b == "totalseg":
            opts["totalseg"] = {"tasks": list(tasks) or ["total"], "fast": fast, "weights_dir": totalseg_weights,
                                "home_dir": totalseg_home, "allow_download": not no_download}
        elif b == "masks":
            if masks is None:
                raise click.UsageError("--backend masks needs --masks PATH")
            opts["masks"] = {"path": masks, "class_map": class_map}
    return opts


def segment_options(f):
    """The segmentation options shared by `segment` (and, once wired, `analyze` without --masks)."""
    from perception.segment.totalseg import TASKS

    opts = [
        click.option("--backend", "backends", multiple=True, type=click.Choice(["totalseg", "unit", "masks"]),
                     help="Segmentation backend(s), in priority order (repeat the option). Default: totalseg, plus unit when --weights is given."),
        click.option("--weights", type=click.Path(path_type=Path), default=None, help="UniT checkpoint (backend unit)."),
        click.option("--task", "tasks", multiple=True, type=click.Choice(sorted(TASKS)),
                     help="TotalSegmentator task(s) (repeat; default: total)."),
        click.option("--fast/--full", "fast", default=None,
                     help="TotalSegmentator `total` at 3 mm (fast) or 1.5 mm (full). Default: fast on CPU, full on GPU."),
        click.option("--totalseg-weights", type=click.Path(path_type=Path), default=None,
                     help="Folder of TotalSegmentator nnU-Net weights (TOTALSEG_WEIGHTS_PATH)."),
        click.option("--totalseg-home", type=click.Path(path_type=Path), default=None,
                     help="TotalSegmentator home folder (TOTALSEG_HOME_DIR; weights in <home>/nnunet/results)."),
        click.option("--no-download", is_flag=True, help="Fail with instructions instead of downloading missing TotalSegmentator weights."),
        click.option("--masks", type=click.Path(path_type=Path), default=None, help="Existing masks (backend masks)."),
        click.option("--class-map", type=click.Path(path_type=Path), default=None, help="Class map for a multilabel --masks file."),
        click.option("--threshold", type=float, default=None, help="UniT tumour existence threshold (default: the checkpoint's)."),
        click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N | mps"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.command()
@click.argument("ct", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output mask folder.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@segment_options
def segment(ct: Path, out: Path, force: bool, backends, weights, tasks, fast, totalseg_weights, totalseg_home, no_download,
            masks, class_map, threshold, device) -> None:
    """Segment CT into OUT: one <structure>.nii.gz per structure on the CT grid (readable by
    `radagent analyze CT --masks OUT`), provenance.json, and for UniT unit/instances.nii.gz + .json."""
    from agent.pipeline import write_outputs_atomically
    from perception.io import load_ct
    from perception.segment import labelset_files, make_segmenter, merge_labelsets

    con = _stderr()
    backends = tuple(backends) or (("totalseg", "unit") if weights else ("totalseg",))
    t0 = time.perf_counter()
    try:
        if out.exists() and out.is_dir() and any(out.iterdir()) and not force:
            raise click.UsageError(f"{out}: output folder exists and is not empty (use --force to replace it)")
        opts = backend_options(backends, weights, tasks, fast, totalseg_weights, totalseg_home, no_download, masks,
                               class_map, threshold)
        vol = load_ct(ct)
        results, extra, timing = [], {}, {}
        for b in backends:
            seg = make_segmenter(b, device=device, **opts[b])
            t = time.perf_counter()
            with con.status(f"segmenting {ct} with {b} on {seg.device}"):
                results.append((b, seg.segment(vol)))
            timing[b] = round(time.perf_counter() - t, 2)
            if hasattr(seg, "files"):
                extra.update(seg.files(vol))
        ls = merge_labelsets(results)
        meta = {"ct": str(ct), "backends": list(backends), "device": device, "seconds": timing}
        extra["segment.json"] = json.dumps(meta, indent=2) + "\n"
        write_outputs_atomically(out, labelset_files(ls, vol, extra), force=force)
    except InputError as e:
        _fail(con, e)
    from rich.markup import escape

    for w in ls.warnings:
        con.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    n = sum(not m.empty for m in ls.masks.values())
    con.print(f"{n} structures found ({len(ls.masks)} looked for) by {', '.join(backends)}; "
              f"{time.perf_counter() - t0:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in timing.items())})", highlight=False)
    click.echo(str(out))


@click.group()
def train() -> None:
    """Train radagent's own models."""


@train.command("unit")
@click.option("--data", "data_dir", required=False, type=click.Path(path_type=Path),
              help="Training data: AbdomenAtlas-style case folders or an MSD / nnU-Net raw dataset.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="YAML or JSON config (see --print-config).")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), default=Path("runs/unit"), show_default=True,
              help="Run folder: config.yaml, last.pt, final.pt, history.json.")
@click.option("--steps", type=int, default=None, help="Override train.steps.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from OUT/last.pt when present.")
@click.option("--print-config", is_flag=True, help="Print the effective config (YAML) and exit.")
def train_unit_cmd(data_dir: Path | None, config_path: Path | None, out: Path, steps: int | None, device: str, resume: bool,
                   print_config: bool) -> None:
    """Train the UniT tumour model (organ masks, tumour instances with existence, tumour types)."""
    con = _stderr()
    try:
        from perception.segment.errors import missing_package_message
        from perception.segment.unit.config import UniTConfig

        cfg = UniTConfig.load(config_path) if config_path else UniTConfig()
        if steps is not None:
            cfg.train.steps = steps
        if print_config:
            click.echo(cfg.dump(), nl=False)
            return
        if data_dir is None:
            raise click.UsageError("--data DIR is required (unless --print-config)")
        try:
            from perception.segment.unit.train import train_unit
        except ImportError as e:
            raise InputError(missing_package_message("radagent train unit", "torch and monai")) from e

        def progress(rec: dict) -> None:
            if rec["step"] % cfg.train.log_every == 0:
                con.print(f"step {rec['step']}: loss {rec['loss']:.4f} ({rec['seconds']:.0f} s)", highlight=False)

        res = train_unit(data_dir, out, cfg, device=device, resume=resume, progress=progress)
    except InputError as e:
        _fail(con, e)
    con.print(f"{res.steps} steps on {res.device} (amp {res.amp}) in {res.seconds:.0f} s; loss {res.first_loss} -> "
              f"{res.last_loss}; {res.parameters['total']:,} parameters", highlight=False)
    click.echo(str(res.checkpoint))
