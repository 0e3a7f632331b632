"""`radagent verify FINDINGS TEXT`: check a report (dictated or LLM-written) against the measurements.

Every sentence of TEXT (a .txt or .md file, or ``-`` for stdin) is parsed into claims
(reasoning.claims); each claim is printed with its verdict: supported (and by what), unsupported
(and why), or not checkable. Exit codes: 0 when no claim is unsupported, 1 when any is, 2 on bad
input (missing or invalid findings, unreadable or empty text), naming the file. Registered on the
main group in agent/cli.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

_MARK = {"supported": "ok", "unsupported": "UNSUPPORTED", "not_checkable": "not checkable"}


def _read_text(text_path: str) -> str:
    from radagent.errors import InputError

    if text_path == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        name = "standard input"
    else:
        p = Path(text_path)
        name = str(p)
        if p.is_dir():
            raise InputError(f"{p}: is a folder; expected a .txt or .md report file (or - for standard input)")
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{p}: report text not found (expected a .txt or .md file, or - for standard input)") from None
        except OSError as e:
            raise InputError(f"{p}: cannot read the report text ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name}: the report text is not UTF-8 text") from None
    if "\x00" in text:
        raise InputError(f"{name}: binary data, not a report text")
    if not text.strip():
        raise InputError(f"{name}: the report text is empty")
    return text


@click.command("verify")
@click.argument("findings_path", metavar="FINDINGS", type=click.Path(path_type=Path))
@click.argument("text_path", metavar="TEXT")
@click.option("--json", "as_json", is_flag=True, help="Print the Verification object (sentences, claims, verdicts) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="List only the sentences with an unsupported or not checkable claim.")
def verify(findings_path: Path, text_path: str, as_json: bool, quiet: bool) -> None:
    """Check every claim of TEXT (a .txt or .md report, - for stdin) against FINDINGS (a findings.json or
    a `radagent analyze` output folder). Exit 0: every claim supported or not checkable; 1: some claim is
    unsupported; 2: bad input."""
    from agent import case as case_service
    from radagent.errors import RadagentError

    try:
        findings = case_service.load(findings_path).findings
        from reasoning.comparison import beside

        comparison = beside(findings_path)  # OUT/comparison.json: change claims are checked against it
        text = _read_text(text_path)
    except RadagentError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    v = case_service.verify(findings, text, comparison)
    if as_json:
        click.echo(json.dumps({**v.model_dump(mode="json"), "counts": v.counts()}, indent=2))
    else:
        for i, s in enumerate(v.sentences, 1):
            if quiet and s.ok and all(c.verdict == "supported" for c in s.claims):
                continue
            head = "ok" if s.ok else "UNSUPPORTED"
            click.echo(f"{i}. [{head}] {s.text}")
            if not s.claims:
                click.echo("     (no claim)")
            for c in s.claims:
                click.echo(f"     - {c.type}: {c.text!r}: {_MARK[c.verdict]}: {c.reason}")
        n = v.counts()
        click.echo(f"{len(v.sentences)} sentences, {sum(n.values())} claims: {n['supported']} supported, "
                   f"{n['unsupported']} unsupported, {n['not_checkable']} not checkable", err=True)
    sys.exit(0 if v.ok else 1)
