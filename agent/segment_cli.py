"""`radagent segment` and `radagent train unit`: thin click shells over perception.segment.

Registered in agent/cli.py's lazy command table ``_LAZY`` (``"segment": ("agent.segment_cli:segment", ...)``,
``"train": ("agent.segment_cli:train", ...)``): imported only when one of them runs.

Domain errors (InputError and its subclasses, e.g. missing weights) become a message and exit code 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from agent.segment_options import segment_request_from_options, segment_request_options
from radagent.errors import InputError


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _fail(con, e: Exception) -> None:
    from rich.markup import escape

    con.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
    sys.exit(2)


@click.command()
@click.argument("ct", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output mask folder.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@segment_request_options(include_masks_backend=True)
def segment(ct: Path, out: Path, force: bool, **options: object) -> None:
    """Segment CT into OUT: one <structure>.nii.gz per structure on the CT grid (readable by
    `radagent analyze CT --masks OUT`), provenance.json, and for UniT unit/instances.nii.gz + .json."""
    from agent.files import write_outputs_atomically
    from perception.io import load_ct
    from perception.segment import labelset_files, make_segmenters, merge_labelsets

    con = _stderr()
    t0 = time.perf_counter()
    try:
        if out.exists() and out.is_dir() and any(out.iterdir()) and not force:
            raise click.UsageError(f"{out}: output folder exists and is not empty (use --force to replace it)")
        request = segment_request_from_options(**options)
        vol = load_ct(ct)
        results, extra, timing = [], {}, {}
        for seg in make_segmenters(request):
            t = time.perf_counter()
            with con.status(f"segmenting {ct} with {seg.name} on {seg.device}"):
                results.append((seg.name, seg.segment(vol)))
            timing[seg.name] = round(time.perf_counter() - t, 2)
            if hasattr(seg, "files"):
                extra.update(seg.files(vol))
        ls = merge_labelsets(results)
        meta = {"ct": str(ct), "backends": list(request.backends), "device": request.device, "seconds": timing}
        extra["segment.json"] = json.dumps(meta, indent=2) + "\n"
        write_outputs_atomically(out, labelset_files(ls, vol, extra), force=force)
    except InputError as e:
        _fail(con, e)
    from rich.markup import escape

    for w in ls.warnings:
        con.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    n = sum(not m.empty for m in ls.masks.values())
    con.print(f"{n} structures found ({len(ls.masks)} looked for) by {', '.join(request.backends)}; "
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
