"""`radagent pacs`: find, retrieve, analyze and store back studies on a PACS over DICOMweb (agent.pacs).

Credentials come from the environment only (RADAGENT_PACS_USER + RADAGENT_PACS_PASSWORD, or RADAGENT_PACS_TOKEN);
a password or token on the command line, or in the URL, is refused with exit code 2 before anything is sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from agent.cli import _fail, _stderr
from agent.segment_options import segment_request_from_options, segment_request_options


def _refuse_secret(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        from agent.pacs.client import ENV_PASSWORD, ENV_TOKEN, ENV_USER

        raise click.UsageError(f"{'/'.join(param.opts)} is refused: a secret on the command line is visible in shell history "
                               f"and the process list; set {ENV_USER} and {ENV_PASSWORD} (or {ENV_TOKEN}) in the "
                               "environment")


def _no_secrets(f):
    """A hidden --password / --token option that refuses any value (on the group and on every subcommand)."""
    return click.option("--password", "--token", "--pass", hidden=True, expose_value=False, callback=_refuse_secret,
                        is_eager=True)(f)


@click.group()
@_no_secrets
@click.option("--url", default=None, metavar="URL",
              help="DICOMweb root of the PACS, e.g. http://127.0.0.1:8042/dicom-web (default: $RADAGENT_PACS_URL).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1, max=3600), default=60.0, show_default=True,
              metavar="SECONDS", help="Seconds to wait for each answer of the PACS.")
@click.pass_context
def pacs(ctx: click.Context, url: str | None, timeout_s: float) -> None:
    """Find, retrieve, analyze and store back studies on a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS);
    credentials from RADAGENT_PACS_USER / RADAGENT_PACS_PASSWORD or RADAGENT_PACS_TOKEN."""
    ctx.obj = {"url": url, "timeout_s": timeout_s}


def _study_filters(f):
    """--patient, --date, --accession: QIDO-RS study filters (find, and run without a STUDY_UID)."""
    for opt in reversed([click.option("--patient", "patient_id", default=None, help="Patient ID."),
                         click.option("--date", default=None, help="Study date YYYYMMDD or range YYYYMMDD-YYYYMMDD."),
                         click.option("--accession", default=None, help="Accession number.")]):
        f = opt(f)
    return f


def _client(ctx: click.Context):
    from agent.pacs.client import PacsClient, PacsSettings

    return PacsClient(PacsSettings.from_env(ctx.obj["url"], timeout_s=ctx.obj["timeout_s"]))


@pacs.command()
@_study_filters
@click.option("--study", "study_uid", default=None, help="Study Instance UID.")
@click.option("--modality", default=None, help="A modality in the study (CT, SEG, SR, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the studies as JSON.")
@_no_secrets
@click.pass_context
def find(ctx: click.Context, patient_id, study_uid, modality, date, accession, as_json: bool) -> None:
    """List the studies matching every filter (QIDO-RS): UID, patient, date, modalities, instance count."""
    from radagent.errors import InputError

    con = _stderr()
    try:
        rows = _client(ctx).find_studies(patient_id=patient_id, study_uid=study_uid, modality=modality, date=date,
                                         accession=accession)
    except InputError as e:
        _fail(con, e)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        click.echo("\t".join([r["StudyInstanceUID"] or "", r["PatientID"] or "", r["StudyDate"] or "",
                              ",".join(r["ModalitiesInStudy"] or []), str(r["NumberOfStudyRelatedInstances"] or "")]))
    con.print(f"{len(rows)} studies", highlight=False)


@pacs.command()
@click.argument("study_uid")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Folder to write OUT/<SeriesInstanceUID>/<SOPInstanceUID>.dcm into.")
@_no_secrets
@click.pass_context
def retrieve(ctx: click.Context, study_uid: str, out: Path) -> None:
    """Retrieve every instance of STUDY_UID (WADO-RS), one folder per series (each readable by `radagent analyze`)."""
    from radagent.errors import InputError

    con = _stderr()
    try:
        folders = _client(ctx).retrieve_study(study_uid, out)
    except InputError as e:
        _fail(con, e)
    for folder in folders.values():
        click.echo(str(folder))


def _processor(client, work: Path, series: str | None, store: bool, segment: dict):
    from agent.pacs.loop import analyze_study

    request = segment_request_from_options(**segment)

    def process(uid: str):
        return analyze_study(client, uid, work, ct_series=series, segment=request, store=store)
    return process


@pacs.command()
@click.argument("study_uid", required=False)
@_study_filters
@click.option("-o", "--out", "work", required=True, type=click.Path(path_type=Path),
              help="Work folder: OUT/<study>/dicom (retrieved) and OUT/<study>/out (findings, SEG, SR).")
@click.option("--series", default=None, help="The CT series to analyze when the study holds several.")
@click.option("--no-store", is_flag=True, help="Write the outputs but do not store SEG + SR back (STOW-RS).")
@segment_request_options
@_no_secrets
@click.pass_context
def run(ctx: click.Context, study_uid: str | None, patient_id: str | None, date: str | None, accession: str | None,
        work: Path, series: str | None, no_store: bool, **segment) -> None:
    """Retrieve STUDY_UID (or every CT study matching --patient/--date/--accession), analyze its CT (with the DICOM
    SEG stored with it, else segmenting), write findings and the DICOM SEG + SR, and store SEG + SR back into the
    study (STOW-RS)."""
    from rich.markup import escape

    from agent.pacs.client import PacsError
    from radagent.errors import RadagentError

    con = _stderr()
    filters = {"patient_id": patient_id, "date": date, "accession": accession}
    if (study_uid is None) == (not any(filters.values())):
        raise click.UsageError("expected a STUDY_UID or study filters (--patient, --date, --accession), not "
                               + ("both" if study_uid else "neither"))
    failed = 0
    try:
        client = _client(ctx)
        process = _processor(client, work, series, not no_store, segment)
        uids = [study_uid] if study_uid else [r["StudyInstanceUID"] for r in client.find_studies(modality="CT", **filters)]
        if not uids:
            raise PacsError(f"no CT study on {client.settings.url} matches {', '.join(f'{k}={v}' for k, v in filters.items() if v)}")
        for uid in uids:
            try:
                res = process(uid)
            except RadagentError as e:
                if len(uids) == 1:
                    raise
                failed += 1
                con.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
                continue
            con.print(f"study {res.study_uid}: CT series {res.ct_series}, masks {res.masks}; {res.n_organs} organs, "
                      f"{res.n_lesions} lesions; stored {len(res.stored)} instances", highlight=False)
            click.echo(str(res.out_dir / "findings.json"))
    except RadagentError as e:
        _fail(con, e)
    if failed:
        con.print(f"{failed} of {len(uids)} studies failed", highlight=False)
        ctx.exit(2)


@pacs.command()
@click.option("--state", "state_path", required=True, type=click.Path(path_type=Path),
              help="State file (JSON): which studies are done, failed (with the message) or waiting to be stable.")
@click.option("-o", "--out", "work", required=True, type=click.Path(path_type=Path), help="Work folder (as for run).")
@click.option("--modality", default="CT", show_default=True, help="Only studies holding this modality.")
@click.option("--stable-age", "stable_age_s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS", help="A study is processed once its instance count has not changed for this long.")
@click.option("--interval", "interval_s", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Stop when no seen study is still waiting to become stable.")
@click.option("--retry-failed", is_flag=True, help="Process studies that failed before again (once each).")
@click.option("--no-store", is_flag=True, help="Write the outputs but do not store SEG + SR back.")
@segment_request_options
@_no_secrets
@click.pass_context
def watch(ctx: click.Context, state_path: Path, work: Path, modality: str, stable_age_s: float, interval_s: float,
          once: bool, retry_failed: bool, no_store: bool, **segment) -> None:
    """Poll the PACS (QIDO-RS) and process each newly stable study once, as `run` does; resumable through --state
    (written atomically), a study done is never processed again, a failure is kept with its message."""
    from agent.pacs.watch import watch as watch_loop
    from radagent.errors import RadagentError

    con = _stderr()

    def report(r) -> None:
        for uid in r.processed:
            con.print(f"processed {uid}", highlight=False)
        for uid in r.failed:
            con.print(f"[yellow]failed[/] {uid} (see {state_path})", highlight=False)

    try:
        client = _client(ctx)
        process = _processor(client, work, None, not no_store, segment)
        total = watch_loop(client, state_path, lambda uid: process(uid).stored, modality=modality,
                           stable_age_s=stable_age_s, interval_s=interval_s, retry_failed=retry_failed, once=once,
                           report=report)
    except RadagentError as e:
        _fail(con, e)
    con.print(f"{len(total.processed)} processed, {len(total.failed)} failed, {len(total.skipped)} skipped",
              highlight=False)
    click.echo(json.dumps({"processed": total.processed, "failed": total.failed, "skipped": total.skipped}))
