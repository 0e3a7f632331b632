"""The `radagent` command line: a thin shell over agent.pipeline. Domain errors become exit code 2."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from perception.errors import InputError

log = logging.getLogger("radagent")


def _setup_logging(verbose: int) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), format="%(message)s",
                        handlers=[RichHandler(show_path=False, console=_stderr())])


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="radagent")
def main(verbose: int) -> None:
    """radagent: measured, traceable CT oncology findings and reports."""
    _setup_logging(verbose)


@main.command()
@click.argument("ct", type=click.Path(path_type=Path))
@click.option("--masks", "masks", required=True, type=click.Path(path_type=Path),
              help="Folder of per-structure NIfTI masks (TotalSegmentator / AbdomenAtlas names) or a multilabel NIfTI.")
@click.option("--class-map", type=click.Path(path_type=Path), default=None,
              help="JSON {label id: name} for a multilabel mask (default: TotalSegmentator 'total').")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--strict-masks", is_flag=True, help="Refuse unknown mask names instead of warning.")
@click.option("--no-key-images", is_flag=True, help="Skip rendering the key image of each lesion.")
def analyze(ct: Path, masks: Path, class_map: Path | None, out: Path, force: bool, strict_masks: bool,
            no_key_images: bool) -> None:
    """Measure every organ and lesion of CT (a .nii/.nii.gz file or a DICOM series folder)
    and write OUT/findings.json and OUT/findings.md."""
    from agent.pipeline import Timings, analyze_case, write_outputs_atomically
    from templates.render import render_findings_md

    con = _stderr()
    t0 = time.perf_counter()
    tm = Timings()
    try:
        if out.exists() and out.is_dir() and any(out.iterdir()) and not force:
            raise click.UsageError(f"{out}: output folder exists and is not empty (use --force to replace it)")
        with con.status(f"analyzing {ct}"):
            findings, images = analyze_case(ct, masks, class_map, timings=tm, key_images=not no_key_images)
        if strict_masks:
            unknown = [w for w in findings.study.warnings if w.startswith("unknown mask name")]
            if unknown:
                raise InputError(f"{masks}: " + "; ".join(unknown))
        write_outputs_atomically(out, {"findings.json": findings.to_json() + "\n",
                                       "findings.md": render_findings_md(findings), **images}, force=force)
    except InputError as e:
        con.print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
        sys.exit(2)
    for w in findings.study.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False)
    n_trunc = sum(o.status.value == "truncated_by_fov" for o in findings.organs)
    con.print(f"{len(findings.organs)} organs ({n_trunc} truncated by the scan edge), {len(findings.lesions)} lesions; "
              f"phase {findings.study.contrast_phase.phase}; {time.perf_counter() - t0:.2f} s "
              f"({', '.join(f'{k} {v:.2f} s' for k, v in tm.seconds.items())})", highlight=False)
    click.echo(str(out / "findings.json"))
    click.echo(str(out / "findings.md"))


@main.command()
def schema() -> None:
    """Print the JSON Schema of findings.json."""
    from perception.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":
    main()
