"""`radagent chat`: an interactive question-answer session about one study (reasoning.agent).

Plain ``input()`` lines; answers go to stdout prefixed ``radagent> ``, the prompt and the evidence
line (engine, finding ids, tool calls) to stderr. Commands: /help, /lesions, /reset, /quit (or
EOF). Without --llm every answer is deterministic (reasoning.vqa); with --llm URL the tool-calling
agent answers and its text is grounding-checked, with the deterministic answer as fallback.
A missing or invalid FINDINGS exits with code 2. Registered on the main group in agent/cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

COMMANDS = {"/help": "question types with an example of each, and these commands",
            "/lesions": "the lesions of this study, largest first",
            "/reset": "forget the conversation (follow-ups start afresh)",
            "/quit": "leave (also /exit, Ctrl-D)"}


def _help_text() -> str:
    from reasoning.vqa import SUBTYPES

    lines = ["Ask in plain words, e.g. 'What is the volume of the largest liver lesion?', then follow up with "
             "'and the second largest?', 'and its diameter?', 'what about the kidney?'. Question types:"]
    lines += [f"  {s.name}: {s.example}" for s in SUBTYPES.values()]
    lines += ["Commands:"] + [f"  {k:<9} {v}" for k, v in COMMANDS.items()]
    return "\n".join(lines)


def _lesions_text(findings) -> str:
    if not findings.lesions:
        return "no lesions in this study"
    rows = [f"  {'id':<4} {'organ':<16} {'kind':<6} {'volume':>10} {'long axis':>10} {'mean':>9}  segments"]
    for les in sorted(findings.lesions, key=lambda l: -l.volume_ml):
        rows.append(f"  {les.id:<4} {(les.organ or '-'):<16} {les.kind:<6} {les.volume_ml:>7.3f} mL {les.long_axis_mm:>7.1f} mm "
                    f"{les.mean_hu:>6.1f} HU  {', '.join(les.segments) or '-'}")
    return "\n".join(rows)


def _evidence(turn) -> str:
    bits = [f"engine {turn.engine}" + (f" ({turn.model}, {turn.attempts} attempt(s))" if turn.model else "")]
    if turn.resolved_as:
        bits.append(f"read as: {turn.resolved_as}")
    if turn.finding_ids:
        bits.append("findings: " + ", ".join(turn.finding_ids))
    if turn.tool_calls:
        bits.append("tools: " + ", ".join(f"{c.name}({', '.join(f'{k}={v}' for k, v in c.args.items())})" for c in turn.tool_calls))
    if turn.fallback_reason:
        bits.append(f"fallback: {turn.fallback_reason}")
    bits.append(f"{turn.seconds:.1f} s")
    return "[" + "; ".join(bits) + "]"


@click.command("chat")
@click.argument("findings_path", metavar="FINDINGS", type=click.Path(path_type=Path))
@click.option("--llm", "llm_url", default=None, help="OpenAI-compatible server URL (e.g. http://127.0.0.1:8000/v1); deterministic answers without it.")
@click.option("--model", default=None, help="Model name on the LLM server (default: the first served).")
@click.option("--llm-timeout", "llm_timeout", type=click.FloatRange(min=0.1, max=3600), default=120.0, show_default=True,
              metavar="SECONDS", help="Seconds to wait for the LLM server (connect, each read of an answer).")
@click.option("--max-attempts", default=3, show_default=True, type=click.IntRange(1, 10),
              help="LLM replies per question before the deterministic fallback.")
def chat(findings_path: Path, llm_url: str | None, model: str | None, llm_timeout: float, max_attempts: int) -> None:
    """Chat about FINDINGS (a findings.json or a `radagent analyze` output folder)."""
    from agent import case as case_service
    from radagent.errors import RadagentError

    try:
        findings = case_service.load(findings_path).findings
        llm = case_service.LLMSettings(url=llm_url, model=model, timeout_s=llm_timeout) if llm_url else None
        from reasoning.comparison import beside

        session = case_service.chat(findings, llm, max_attempts=max_attempts, comparison=beside(findings_path))
    except RadagentError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    click.echo(f"radagent chat: {len(findings.lesions)} lesions, {len(findings.organs)} organs; "
               f"{'LLM ' + llm_url if llm_url else 'deterministic answers'}. /help for question types, /quit to leave.",
               err=True)
    while True:
        click.echo("you> ", nl=False, err=True)
        try:
            line = input()
        except (EOFError, KeyboardInterrupt):
            click.echo("", err=True)
            break
        msg = line.strip()
        if not msg:
            continue
        cmd = msg.lower()
        if cmd in ("/quit", "/exit", "/q"):
            break
        if cmd == "/help":
            click.echo(_help_text())
            continue
        if cmd == "/lesions":
            click.echo(_lesions_text(findings))
            continue
        if cmd == "/reset":
            session.reset()
            click.echo("(conversation cleared)", err=True)
            continue
        if cmd.startswith("/"):
            click.echo(f"unknown command {msg.split()[0]!r}; commands: {', '.join(COMMANDS)}", err=True)
            continue
        turn = session.ask(msg)
        click.echo(f"radagent> {turn.text}")
        click.echo(_evidence(turn), err=True)
