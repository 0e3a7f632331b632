"""The `radagent` command line: a thin shell over the case service (agent.case). Domain errors become exit code 2.

Subcommands are loaded lazily (`LazyGroup`): `import agent.cli`, `radagent --help` and any one command import only
what that command needs, never pydicom, requests/httpx, fastapi or another command's modules. `radagent --help` lists
every command with its short help from the static table `_LAZY` (tests/test_import_time.py checks that the table
matches each command's own help).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

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


# command name -> ("module:attribute", the first paragraph of the command's help, as `radagent --help` shows it)
_LAZY: dict[str, tuple[str, str]] = {
    "analyze": ("agent.analyze_cli:analyze",
                ("Measure every organ and lesion of CT (a .nii/.nii.gz file or a DICOM series folder) and write "
                "OUT/findings.json and OUT/findings.md (and key images; report files with --report). Without --masks "
                "the CT is segmented first (TotalSegmentator, and the UniT model with --weights).")),
    "ask": ("agent.vqa_cli:ask",
            ("Answer QUESTION about FINDINGS (a findings.json or a `radagent analyze` output folder) from the "
            "measurements alone; with --llm the chat agent phrases it (grounding-checked).")),
    "chat": ("agent.chat_cli:chat", "Chat about FINDINGS (a findings.json or a `radagent analyze` output folder)."),
    "compare": ("agent.compare_cli:compare",
                ("Compare CURRENT_OUT with its priors (`radagent analyze` output folders, oldest first): register the "
                "CTs, track every lesion (persisting, new, disappeared, not assessable) and assess RECIST 1.1; write "
                "OUT/comparison.json.")),
    "dataset": ("agent.dataset_cli:dataset",
                "Build image-report datasets from many CT cases (resumable, local pool or Ray)."),
    "eval": ("agent.eval_cli:eval_group", "Benchmarks: run radagent on a benchmark's question file and score it."),
    "mcp": ("agent.mcp_cli:mcp",
            ("Serve radagent's tools (analyze_ct, get_findings, ask, verify_text, draft_report, ...) to MCP clients, "
            "over stdio or, with --http, over streamable HTTP on 127.0.0.1 with the bearer token of `radagent serve`.")),
    "pacs": ("agent.pacs_cli:pacs",
             ("Find, retrieve, analyze and store back studies on a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS); "
             "credentials from RADAGENT_PACS_USER / RADAGENT_PACS_PASSWORD or RADAGENT_PACS_TOKEN.")),
    "segment": ("agent.segment_cli:segment",
                ("Segment CT into OUT: one <structure>.nii.gz per structure on the CT grid (readable by `radagent "
                "analyze CT --masks OUT`), provenance.json, and for UniT unit/instances.nii.gz + .json.")),
    "serve": ("agent.serve_cli:serve",
              "Serve the HTTP API (OpenAPI schema at /openapi.json) and the web chat page at /."),
    "train": ("agent.segment_cli:train", "Train radagent's own models."),
    "verify": ("agent.verify_cli:verify",
               ("Check every claim of TEXT (a .txt or .md report, - for stdin) against FINDINGS (a findings.json or a "
               "`radagent analyze` output folder). Exit 0: every claim supported or not checkable; 1: some claim is "
               "unsupported; 2: bad input.")),
}
# commands that read CT or mask images (NIfTI through nibabel)
_READS_IMAGES = frozenset({"analyze", "segment", "dataset", "serve", "train", "mcp", "compare"})


class LazyGroup(click.Group):
    """A click group whose subcommands in `_LAZY` are imported only when invoked (or their own --help is asked)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _LAZY:
            import importlib

            if cmd_name in _READS_IMAGES:  # nibabel without pydicom: 0.3-0.6 s less on the NIfTI path
                from radagent.imports import import_without

                import_without("nibabel", "pydicom")

            module, attr = _LAZY[cmd_name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, the lazy ones' short help from `_LAZY` (nothing imported)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            cmd = self.commands.get(name) or click.Command(name, help=_LAZY[name][1])
            if not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="radagent")
def main(verbose: int) -> None:
    """radagent: measured, traceable CT oncology findings and reports."""
    _setup_logging(verbose)


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


def _report(analyzed, llm_url, model, style, con, llm_timeout: float = 120.0, comparison=None):
    from agent import case as case_service

    llm = case_service.LLMSettings(url=llm_url, model=model, timeout_s=llm_timeout) if llm_url else None
    with con.status("drafting the report" + (f" with {llm_url}" if llm_url else "")):
        rep = case_service.report(analyzed, llm, style, comparison=comparison)
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
    """Write report.md, report.json and report.html from a findings.json (or an analyze output folder); with a
    comparison.json beside it (`radagent compare`), a COMPARISON section with prior and current key images."""
    from agent import case as case_service

    con = _stderr()
    try:
        analyzed = case_service.load(findings_path)
        from reasoning.comparison import beside

        rep = _report(analyzed, llm_url, model, style, con, llm_timeout, beside(findings_path))
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
@click.option("--comparison", is_flag=True, help="The JSON Schema of comparison.json (`radagent compare`) instead.")
def schema(comparison: bool) -> None:
    """Print the JSON Schema of findings.json (with --comparison: of comparison.json)."""
    if comparison:
        from perception.followup.schema import json_schema
    else:
        from perception.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":
    main()
