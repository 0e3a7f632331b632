"""`radagent mcp`: radagent's tools for other agents over the Model Context Protocol (agent.mcp_server).

A thin shell: over stdio by default (the client starts this command), or with ``--http`` over
streamable HTTP at http://127.0.0.1:PORT/mcp behind the bearer token of `radagent serve`. Settings
errors (missing data root, short or missing token) exit with code 2. Registered on the main group
in agent/cli.py.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click


@click.command("mcp")
@click.option("--data-root", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder whose files analyze_ct may reference by path; nothing outside it is read.")
@click.option("--cases-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where case folders are kept [default: DATA_ROOT/.radagent-cases, as `radagent serve`: "
                   "a case id means the same case to both].")
@click.option("--http", "http", is_flag=True,
              help="Serve streamable HTTP at http://127.0.0.1:PORT/mcp (bearer token required) instead of stdio.")
@click.option("--port", default=8765, type=click.IntRange(1, 65535), show_default=True, help="Port of --http.")
@click.option("--token", envvar="RADAGENT_API_TOKEN", show_envvar=True, default=None,
              help="Bearer token every --http request must send (as `radagent serve`; prefer the environment "
                   "variable). Not used over stdio.")
@click.option("--llm", "llm_url", default=None,
              help="OpenAI-compatible server URL for draft_report's narrative; template reports without it.")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Analyses run at once.")
@click.option("--analysis-timeout", "analysis_timeout", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True, metavar="SECONDS",
              help="An analysis running longer is refused (tool error) and its case removed.")
def mcp(data_root: Path, cases_dir: Path | None, http: bool, port: int, token: str | None, llm_url: str | None,
        model: str | None, workers: int, analysis_timeout: float) -> None:
    """Serve radagent's tools (analyze_ct, get_findings, ask, verify_text, draft_report, ...) to MCP clients,
    over stdio or, with --http, over streamable HTTP on 127.0.0.1 with the bearer token of `radagent serve`."""
    from pydantic import ValidationError

    from agent.api import ServerSettings

    if http and not token:
        click.echo("error: no API token: pass --token or set RADAGENT_API_TOKEN (required with --http)", err=True)
        sys.exit(2)
    try:
        settings = ServerSettings(data_root=data_root, token=token if http else secrets.token_hex(16),
                                  cases_dir=cases_dir, llm_url=llm_url, model=model, workers=workers,
                                  analysis_timeout_s=analysis_timeout)
    except ValidationError as e:
        for d in e.errors():
            click.echo(f"error: {'.'.join(str(x) for x in d['loc']).replace('_', '-')}: {d['msg']}", err=True)
        sys.exit(2)
    from agent.mcp_server import build_server, http_app

    server = build_server(settings)
    if not http:  # stdout carries the protocol: everything else goes to stderr
        server.run("stdio")
        return
    import uvicorn

    click.echo(f"radagent mcp: http://127.0.0.1:{port}/mcp  data root {settings.data_root}, cases in {settings.cases_dir}",
               err=True)
    uvicorn.run(http_app(server, settings), host="127.0.0.1", port=port, log_level="warning", server_header=False)
