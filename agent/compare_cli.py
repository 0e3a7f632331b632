"""`radagent compare PRIOR_OUT... CURRENT_OUT -o OUT`: follow-up reading of analyze output folders.

Registers the current CT to each prior, tracks every lesion and assesses RECIST 1.1 (perception.followup);
writes OUT/comparison.json atomically. Registered lazily in agent/cli.py (`_LAZY`)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli import _check_output_folder, _fail, _stderr


@click.command("compare")
@click.argument("folders", nargs=-1, required=True, metavar="PRIOR_OUT... CURRENT_OUT", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", default=None, type=click.Path(path_type=Path),
              help="Output folder for comparison.json (default: CURRENT_OUT).")
@click.option("--date", "dates", multiple=True, metavar="YYYY-MM-DD",
              help="Study date of each time point, oldest prior first, the current last (all or none): for volume "
                   "doubling times.")
@click.option("--target", "targets", multiple=True, metavar="TRACKING_ID",
              help="RECIST target lesion by tracking id (repeatable; default: chosen by the RECIST 1.1 rules).")
@click.option("--force", is_flag=True, help="Replace an existing comparison.json / non-empty output folder.")
def compare(folders: tuple[Path, ...], out: Path | None, dates: tuple[str, ...], targets: tuple[str, ...],
            force: bool) -> None:
    """Compare CURRENT_OUT with its priors (`radagent analyze` output folders, oldest first): register the CTs,
    track every lesion (persisting, new, disappeared, not assessable) and assess RECIST 1.1; write
    OUT/comparison.json."""
    from agent import case as case_service
    from radagent.errors import InputError, RadagentError

    con = _stderr()
    try:
        if len(folders) < 2:
            raise InputError(f"compare: expected at least one prior and the current analyze output folder, found "
                             f"{len(folders)} folder(s)")
        target = out or folders[-1]
        _check_output_folder(target)
        if (target / "comparison.json").exists() and not force:
            raise click.UsageError(f"{target / 'comparison.json'} exists (use --force to replace it)")
        if out is not None and out.is_dir() and any(out.iterdir()) and not (out / "findings.json").is_file() \
                and not force:
            raise click.UsageError(f"{out}: output folder exists and is not empty (use --force to replace it)")
        with con.status(f"comparing {folders[-1]} with {len(folders) - 1} prior(s)"):
            comp = case_service.compare(list(folders[:-1]), folders[-1], study_dates=list(dates) or None,
                                        targets=list(targets) or None)
        try:
            case_service.write_comparison(comp, target, force=force)
        except OSError as e:
            raise InputError(f"{target}: cannot write comparison.json ({e.strerror or e})") from e
    except RadagentError as e:
        _fail(con, e)
    for r in comp.registrations:
        con.print(f"registration to time point {r.fixed_time_point}: {r.status}" + (f" ({r.reason})" if r.reason else "")
                  + f", {r.seconds:.1f} s", highlight=False)
    states = {}
    for t in comp.lesions:
        states[t.state] = states.get(t.state, 0) + 1
    con.print(", ".join(f"{n} {s}" for s, n in states.items()) or "no lesions", highlight=False)
    if comp.recist is not None:
        con.print(f"RECIST 1.1: target {comp.recist.target_response}, non-target {comp.recist.non_target_response}, "
                  f"overall {comp.recist.overall_response}", highlight=False)
    for w in comp.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False)
    click.echo(str(target / "comparison.json"))
