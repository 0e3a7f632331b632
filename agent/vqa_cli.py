"""`radagent ask`: answer one question from a findings.json, deterministically (reasoning.vqa).

A thin shell: input errors (missing or invalid findings, unknown subtype or parameter, malformed
--param) exit with code 2; an unmapped or undeterminable question is a valid outcome, printed
with its reason, exit 0. Registered on the main group in agent/cli.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            raise click.UsageError(f"--param {p!r}: expected KEY=VALUE (e.g. organ=liver, organs=liver,spleen, lesion_id=L2)")
        out[k.strip()] = v.strip()
    return out


@click.command("ask")
@click.argument("findings_path", metavar="FINDINGS", type=click.Path(path_type=Path))
@click.argument("question", required=False)
@click.option("--choices", "-c", multiple=True, metavar="'A) ...'",
              help="A multiple-choice option (repeat for each); options may also be written inside QUESTION.")
@click.option("--subtype", default=None, help="Question subtype (DeepTumorVQA name, e.g. 'organ volume measurement') instead of QUESTION.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Parameter of --subtype (organ, organs, lesion_id, segments, location, measure, metric, aggregate, diameter, direction).")
@click.option("--json", "as_json", is_flag=True, help="Print the Answer object as JSON.")
@click.option("--llm", "llm_url", default=None,
              help="OpenAI-compatible server URL: the chat agent phrases the answer (grounding-checked; deterministic fallback).")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--llm-timeout", "llm_timeout", type=click.FloatRange(min=0.1, max=3600), default=120.0, show_default=True,
              metavar="SECONDS", help="Seconds to wait for the LLM server (connect, each read of an answer).")
def ask(findings_path: Path, question: str | None, choices: tuple[str, ...], subtype: str | None,
        params: tuple[str, ...], as_json: bool, llm_url: str | None, model: str | None, llm_timeout: float) -> None:
    """Answer QUESTION about FINDINGS (a findings.json or a `radagent analyze` output folder)
    from the measurements alone; with --llm the chat agent phrases it (grounding-checked)."""
    from pydantic import ValidationError

    from agent import case as case_service
    from radagent.errors import RadagentError

    try:
        if (question is None) == (subtype is None):
            raise click.UsageError("give either QUESTION or --subtype (with --param KEY=VALUE), not both and not neither")
        if params and subtype is None:
            raise click.UsageError("--param needs --subtype")
        if subtype is not None:
            try:
                q = case_service.question(subtype, _params(params))
            except ValidationError as e:
                msgs = "; ".join(f"{'.'.join(str(x) for x in d['loc']) or 'question'}: {d['msg']}" for d in e.errors())
                raise click.UsageError(msgs) from None
        else:
            q = question
        findings = case_service.load(findings_path).findings
        from reasoning.comparison import beside

        comparison = beside(findings_path)  # OUT/comparison.json of `radagent compare`: questions over time
        text = None
        try:
            if llm_url and isinstance(q, str):
                turn = case_service.chat(findings, case_service.LLMSettings(url=llm_url, model=model,
                                                                          timeout_s=llm_timeout),
                                         comparison=comparison).ask(
                    q, choices=list(choices) or None)
                text, a = turn.text, turn.answer
            else:
                a = case_service.ask(findings, q, list(choices) or None, comparison=comparison)
        except ValueError as e:  # malformed choices
            raise click.UsageError(str(e)) from None
    except click.UsageError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(2)
    except RadagentError as e:  # InputError, or LLMError (agent extra missing)
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(a.model_dump_json(indent=2) if a is not None else json.dumps({"text": text}, indent=2))
    else:
        click.echo(text if text is not None else a.line())
        if a is not None and a.status == "answered" and a.subtype:
            click.echo(f"[{a.subtype}; rule: {a.rule}; findings: {', '.join(a.finding_ids)}]", err=True)
