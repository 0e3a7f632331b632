"""`radagent serve`: the HTTP API and web chat page (agent.api) under uvicorn.

A thin shell: settings errors (missing data root, short token) exit with code 2. Registered on the
main group in agent/cli.py.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

log = logging.getLogger("radagent")

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, type=int, show_default=True)
@click.option("--data-root", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder whose files cases may reference by path (POST /cases/from-path); nothing outside it is read.")
@click.option("--cases-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where case folders are kept [default: DATA_ROOT/.radagent-cases].")
@click.option("--token", envvar="RADAGENT_API_TOKEN", show_envvar=True, default=None,
              help="Bearer token every API call must send (prefer the environment variable: "
                   "a command-line token is visible to other users in the process list).")
@click.option("--max-upload-mb", type=float, default=256.0, show_default=True,
              help="Largest upload (request body, MiB); larger ones are refused with 413 while streaming.")
@click.option("--llm", "llm_url", default=None,
              help="OpenAI-compatible server URL for the chat agent and LLM reports; without it answers are deterministic.")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--workers", type=int, default=1, show_default=True, help="Analyses run at once.")
def serve(host: str, port: int, data_root: Path, cases_dir: Path | None, token: str | None, max_upload_mb: float,
          llm_url: str | None, model: str | None, workers: int) -> None:
    """Serve the HTTP API (OpenAPI schema at /openapi.json) and the web chat page at /."""
    from pydantic import ValidationError

    from agent.api import ServerSettings, create_app

    if not token:
        click.echo("error: no API token: pass --token or set RADAGENT_API_TOKEN", err=True)
        sys.exit(2)
    try:
        settings = ServerSettings(data_root=data_root, token=token, cases_dir=cases_dir, max_upload_mb=max_upload_mb,
                                  llm_url=llm_url, model=model, workers=workers)
    except ValidationError as e:
        for d in e.errors():
            click.echo(f"error: {'.'.join(str(x) for x in d['loc']).replace('_', '-')}: {d['msg']}", err=True)
        sys.exit(2)
    if host not in LOOPBACK:
        log.warning("listening on %s over plain HTTP: the token and patient data travel unencrypted; "
                    "put a TLS proxy in front", host)
    import uvicorn

    click.echo(f"radagent serve: http://{host}:{port}/  data root {settings.data_root}, cases in {settings.cases_dir}",
               err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", server_header=False)
