"""The `radagent` command line: a thin shell over the case service (agent.case). Domain errors become exit code 2."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from agent.segment_options import segment_request_from_options, segment_request_options
from radagent.errors import InputError

log = logging.getLogger("radagent")


def _setup_logging(verbose: int) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), format="%(message)s",
                        handlers=[RichHandler(show_path=False, console=_stderr())])


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _fail(con, e: Exception) -> None:
    """A domain error at the CLI edge: its message, exit code 2."""
    from rich.markup import escape

    con.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="radagent")
def main(verbose: int) -> None:
    """radagent: measured, traceable CT oncology findings and reports."""
    _setup_logging(verbose)


@main.command()
@click.argument("ct", type=click.Path(path_type=Path))
@click.option("--masks", "masks", default=None, type=click.Path(path_type=Path),
              help="Folder of per-structure binary NIfTI masks (TotalSegmentator / AbdomenAtlas names), a multilabel "
                   "NIfTI (with --class-map, or named like TotalSegmentator output: segmentations.nii.gz, total.nii.gz, "
                   "*_seg.nii.gz), or one binary mask named after its structure (or with --mask-label). "
                   "Without it the CT is segmented (--backend).")
@click.option("--class-map", type=click.Path(path_type=Path), default=None,
              help="JSON {label id: name} for a multilabel mask (default for TotalSegmentator-named files: that task's ids).")
@click.option("--mask-label", default=None, metavar="NAME",
              help="What a single binary mask file holds (a registry name such as liver_lesion, lung_nodule, gtv), "
                   "when its file name does not say it.")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--strict-masks", is_flag=True,
              help="Refuse masks that would be ignored (unknown names, labels not in the class map) instead of warning.")
@click.option("--no-key-images", is_flag=True, help="Skip rendering the key image of each lesion.")
@click.option("--report", "with_report", is_flag=True, help="Also write report.md / report.json / report.html.")
@click.option("--llm", "llm_url", default=None, help="OpenAI-compatible server URL for the narrative (with --report).")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--llm-timeout", "llm_timeout", type=click.FloatRange(min=0.1, max=3600), default=120.0, show_default=True,
              metavar="SECONDS", help="Seconds to wait for the LLM server (connect, each read of an answer).")
@click.option("--style", type=click.Choice(["structured", "narrative"]), default="structured", show_default=True)
@segment_request_options
def analyze(ct: Path, masks: Path | None, class_map: Path | None, mask_label: str | None, out: Path, force: bool,
            strict_masks: bool,
            no_key_images: bool, with_report: bool, llm_url: str | None, model: str | None, llm_timeout: float,
            style: str, **segment: object) -> None:
    """Measure every organ and lesion of CT (a .nii/.nii.gz file or a DICOM series folder)
    and write OUT/findings.json and OUT/findings.md (and key images; report files with --report).
    Without --masks the CT is segmented first (TotalSegmentator, and the UniT model with --weights)."""
    from agent import case as case_service
    from radagent.errors import RadagentError

    con = _stderr()
    t0 = time.perf_counter()
    tm = case_service.Timings()
    try:
        if out.exists() and out.is_dir() and any(out.iterdir()) and not force:
            raise click.UsageError(f"{out}: output folder exists and is not empty (use --force to replace it)")
        _check_output_folder(out)  # before the analysis: an unwritable -o is refused at once
        request = None if masks is not None else segment_request_from_options(**segment)
        with con.status(f"analyzing {ct}" + ("" if masks else f" (segmenting with {', '.join(request.backends)})")):
            analyzed = case_service.analyze(ct, masks, class_map=class_map, mask_label=mask_label, segment=request,
                                            key_images=not no_key_images, strict_masks=strict_masks, timings=tm)
        rep = _report(analyzed, llm_url, model, style, con, llm_timeout) if with_report else None
        try:
            case_service.write(analyzed, rep, out, force=force)
        except OSError as e:  # the output side: unwritable, full, not a folder
            raise InputError(f"{out}: cannot write the output folder ({e.strerror or e})") from e
    except RadagentError as e:  # input errors, and segmentation backends unavailable / weights missing
        _fail(con, e)
    findings = analyzed.findings
    for w in findings.study.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False)
    n_trunc = sum(o.status.value == "truncated_by_fov" for o in findings.organs)
    con.print(f"{len(findings.organs)} organs ({n_trunc} truncated by the scan edge), {len(findings.lesions)} lesions; "
              f"phase {findings.study.contrast_phase.phase}; {time.perf_counter() - t0:.2f} s "
              f"({', '.join(f'{k} {v:.2f} s' for k, v in tm.seconds.items())})", highlight=False)
    click.echo(str(out / "findings.json"))
    click.echo(str(out / "findings.md"))


def _check_output_folder(out: Path) -> None:
    """-o must be a folder (or not exist yet) under a writable folder; else InputError naming it."""
    import os

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: expected an output folder, found an existing {'file' if out.is_file() else 'non-folder'}")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{out}: cannot create the output folder: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot create the output folder: {parent} is not writable")


def _report(analyzed, llm_url, model, style, con, llm_timeout: float = 120.0):
    from agent import case as case_service

    llm = case_service.LLMSettings(url=llm_url, model=model, timeout_s=llm_timeout) if llm_url else None
    with con.status("drafting the report" + (f" with {llm_url}" if llm_url else "")):
        rep = case_service.report(analyzed, llm, style)
    if rep.fallback_reason:
        con.print(f"[yellow]warning:[/] {rep.fallback_reason}", highlight=False)
    con.print(f"report: engine {rep.engine}" + (f" ({rep.draft.model}, {rep.draft.attempts} attempts)" if llm_url else ""),
              highlight=False)
    return rep


@main.command()
@click.argument("findings_path", metavar="FINDINGS_OR_OUTDIR", type=click.Path(path_type=Path))
@click.option("--llm", "llm_url", default=None, help="OpenAI-compatible server URL (e.g. http://127.0.0.1:8000/v1); template narrative without it.")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--llm-timeout", "llm_timeout", type=click.FloatRange(min=0.1, max=3600), default=120.0, show_default=True,
              metavar="SECONDS", help="Seconds to wait for the LLM server (connect, each read of an answer).")
@click.option("--style", type=click.Choice(["structured", "narrative"]), default="structured", show_default=True)
@click.option("-o", "--out", "out", default=None, type=click.Path(path_type=Path),
              help="Output folder (default: the folder of findings.json).")
def report(findings_path: Path, llm_url: str | None, model: str | None, llm_timeout: float, style: str,
           out: Path | None) -> None:
    """Write report.md, report.json and report.html from a findings.json (or an analyze output folder)."""
    from agent import case as case_service

    con = _stderr()
    try:
        analyzed = case_service.load(findings_path)
        rep = _report(analyzed, llm_url, model, style, con, llm_timeout)
        target = case_service.write_report(rep, out or case_service.findings_location(findings_path).parent)
    except InputError as e:
        _fail(con, e)
    for name in rep.files:
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

from agent.verify_cli import verify  # noqa: E402

main.add_command(verify)

if __name__ == "__main__":
    main()
