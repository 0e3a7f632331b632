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
@click.option("--masks", "masks", default=None, type=click.Path(path_type=Path),
              help="Folder of per-structure NIfTI masks (TotalSegmentator / AbdomenAtlas names) or a multilabel NIfTI. "
                   "Without it the CT is segmented (--backend).")
@click.option("--class-map", type=click.Path(path_type=Path), default=None,
              help="JSON {label id: name} for a multilabel mask (default: TotalSegmentator 'total').")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--strict-masks", is_flag=True, help="Refuse unknown mask names instead of warning.")
@click.option("--no-key-images", is_flag=True, help="Skip rendering the key image of each lesion.")
@click.option("--report", "with_report", is_flag=True, help="Also write report.md / report.json / report.html.")
@click.option("--llm", "llm_url", default=None, help="OpenAI-compatible server URL for the narrative (with --report).")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--style", type=click.Choice(["structured", "narrative"]), default="structured", show_default=True)
@click.option("--backend", "backends", multiple=True, type=click.Choice(["totalseg", "unit"]),
              help="Without --masks: segmentation backend(s) in priority order (default: totalseg, plus unit with --weights).")
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="UniT checkpoint (backend unit).")
@click.option("--task", "tasks", multiple=True, help="TotalSegmentator task(s) (default: total).")
@click.option("--fast/--full", "fast", default=None, help="TotalSegmentator at 3 mm (fast) or 1.5 mm (full); default: fast on CPU.")
@click.option("--totalseg-weights", type=click.Path(path_type=Path), default=None, help="TotalSegmentator nnU-Net weights folder.")
@click.option("--totalseg-home", type=click.Path(path_type=Path), default=None, help="TotalSegmentator home folder.")
@click.option("--no-download", is_flag=True, help="Fail with instructions instead of downloading TotalSegmentator weights.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
def analyze(ct: Path, masks: Path | None, class_map: Path | None, out: Path, force: bool, strict_masks: bool,
            no_key_images: bool, with_report: bool, llm_url: str | None, model: str | None, style: str,
            backends: tuple[str, ...], weights: Path | None, tasks: tuple[str, ...], fast: bool | None,
            totalseg_weights: Path | None, totalseg_home: Path | None, no_download: bool, device: str) -> None:
    """Measure every organ and lesion of CT (a .nii/.nii.gz file or a DICOM series folder)
    and write OUT/findings.json and OUT/findings.md (and key images; report files with --report).
    Without --masks the CT is segmented first (TotalSegmentator, and the UniT model with --weights)."""
    from agent.pipeline import Timings, analyze_case, write_outputs_atomically
    from perception.errors import RadagentError
    from templates.render import render_findings_md

    con = _stderr()
    t0 = time.perf_counter()
    tm = Timings()
    try:
        if out.exists() and out.is_dir() and any(out.iterdir()) and not force:
            raise click.UsageError(f"{out}: output folder exists and is not empty (use --force to replace it)")
        seg_backends, seg_opts = None, None
        if masks is None:
            from agent.segment_cli import backend_options

            seg_backends = list(backends) or (["totalseg", "unit"] if weights else ["totalseg"])
            seg_opts = backend_options(seg_backends, weights, tasks, fast, totalseg_weights, totalseg_home, no_download,
                                       None, None, None)
        with con.status(f"analyzing {ct}" + ("" if masks else f" (segmenting with {', '.join(seg_backends)})")):
            findings, images = analyze_case(ct, masks, class_map, timings=tm, key_images=not no_key_images,
                                            backends=seg_backends, segment_options=seg_opts, device=device)
        if strict_masks:
            unknown = [w for w in findings.study.warnings if w.startswith("unknown mask name")]
            if unknown:
                raise InputError(f"{masks}: " + "; ".join(unknown))
        files = {"findings.json": findings.to_json() + "\n", "findings.md": render_findings_md(findings), **images}
        if with_report:
            files.update(_report_files(findings, {l.id: images[l.key_image] for l in findings.lesions if l.key_image},
                                       llm_url, model, style, con))
        write_outputs_atomically(out, files, force=force)
    except RadagentError as e:  # input errors, and segmentation backends unavailable / weights missing
        from rich.markup import escape

        con.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)
    for w in findings.study.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False)
    n_trunc = sum(o.status.value == "truncated_by_fov" for o in findings.organs)
    con.print(f"{len(findings.organs)} organs ({n_trunc} truncated by the scan edge), {len(findings.lesions)} lesions; "
              f"phase {findings.study.contrast_phase.phase}; {time.perf_counter() - t0:.2f} s "
              f"({', '.join(f'{k} {v:.2f} s' for k, v in tm.seconds.items())})", highlight=False)
    click.echo(str(out / "findings.json"))
    click.echo(str(out / "findings.md"))


def _report_files(findings, images, llm_url, model, style, con) -> dict[str, str]:
    from reasoning.narrative import draft_report
    from templates.render import render_report

    with con.status("drafting the report" + (f" with {llm_url}" if llm_url else "")):
        draft = draft_report(findings, llm_url, model, style=style)
    if draft.fallback_reason:
        con.print(f"[yellow]warning:[/] {draft.fallback_reason}", highlight=False)
    con.print(f"report: engine {draft.engine}" + (f" ({draft.model}, {draft.attempts} attempts)" if llm_url else ""), highlight=False)
    return render_report(findings, draft, style, images)


@main.command()
@click.argument("findings_path", metavar="FINDINGS_OR_OUTDIR", type=click.Path(path_type=Path))
@click.option("--llm", "llm_url", default=None, help="OpenAI-compatible server URL (e.g. http://127.0.0.1:8000/v1); template narrative without it.")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--style", type=click.Choice(["structured", "narrative"]), default="structured", show_default=True)
@click.option("-o", "--out", "out", default=None, type=click.Path(path_type=Path),
              help="Output folder (default: the folder of findings.json).")
def report(findings_path: Path, llm_url: str | None, model: str | None, style: str, out: Path | None) -> None:
    """Write report.md, report.json and report.html from a findings.json (or an analyze output folder)."""
    from agent.pipeline import add_files_atomically, findings_location, load_findings, write_outputs_atomically

    con = _stderr()
    try:
        findings, images = load_findings(findings_path)
        files = _report_files(findings, images, llm_url, model, style, con)
        target = out or findings_location(findings_path).parent
        if target.exists():
            add_files_atomically(target, files)
        else:
            write_outputs_atomically(target, files)
    except InputError as e:
        from rich.markup import escape

        con.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)
    for name in files:
        click.echo(str(target / name))


@main.command("serve-llm")
@click.option("--model", default=None, help="Model folder or name (default: the SmolLM2-135M test model under .cache/models).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
def serve_llm(model: str | None, host: str, port: int) -> None:
    """Run vLLM's OpenAI-compatible server in the foreground with the flags radagent's client needs
    (hermes tool-call parser, xgrammar structured outputs), on GPU when present."""
    from agent.llm_server import main as llm_main

    sys.exit(llm_main(["serve", "--host", host, "--port", str(port)] + (["--model", model] if model else [])))


@main.command()
def schema() -> None:
    """Print the JSON Schema of findings.json."""
    from perception.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


from agent.vqa_cli import ask  # noqa: E402

from agent.eval_cli import eval_group  # noqa: E402

from agent.chat_cli import chat  # noqa: E402
from agent.serve_cli import serve  # noqa: E402

main.add_command(ask)
main.add_command(eval_group)
main.add_command(serve)
main.add_command(chat)

from agent.segment_cli import segment, train  # noqa: E402

main.add_command(segment)
main.add_command(train)

from agent.dataset_cli import dataset as _dataset_group  # noqa: E402

main.add_command(_dataset_group)

if __name__ == "__main__":
    main()
