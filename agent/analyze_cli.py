"""`radagent analyze`: measure a CT (NIfTI or DICOM series) with its masks, or segment it first.

Loaded by agent/cli.py only when the command runs (or its own --help is asked for): its segmentation options
come from perception.segment, whose imports (nibabel, scipy, the mask registry) the other commands never need.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from agent.cli import _check_output_folder, _fail, _report, _stderr
from agent.segment_options import segment_request_from_options, segment_request_options
from radagent.errors import InputError


@click.command()
@click.argument("ct", type=click.Path(path_type=Path))
@click.option("--masks", "masks", default=None, type=click.Path(path_type=Path),
              help="Folder of per-structure binary NIfTI (or NRRD) masks (TotalSegmentator / AbdomenAtlas names), a "
                   "multilabel NIfTI (with --class-map, or named like TotalSegmentator output: segmentations.nii.gz, "
                   "total.nii.gz, *_seg.nii.gz), one binary mask named after its structure (or with --mask-label), a "
                   "3D Slicer .seg.nrrd, a DICOM SEG or an RTSTRUCT file (segments named by the file). "
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
@click.option("--dicom-out", "dicom_out", is_flag=True,
              help="Also write OUT/dicom/seg.dcm (DICOM SEG of the masks), OUT/dicom/sr.dcm (TID 1500 measurement "
                   "report) and OUT/fhir_bundle.json (FHIR R4B). Needs a DICOM CT series and the dicom-out extra.")
@click.option("--prior", "priors", multiple=True, type=click.Path(path_type=Path), metavar="PRIOR_OUT",
              help="An earlier `radagent analyze` output folder of the same patient (repeatable, oldest first): also "
                   "write OUT/comparison.json (registration, tracked lesions, RECIST 1.1; see `radagent compare`).")
@click.option("--date", "dates", multiple=True, metavar="YYYY-MM-DD",
              help="With --prior: the study date of each prior (oldest first), then this study's, for doubling times.")
@segment_request_options
def analyze(ct: Path, masks: Path | None, class_map: Path | None, mask_label: str | None, out: Path, force: bool,
            strict_masks: bool,
            no_key_images: bool, with_report: bool, llm_url: str | None, model: str | None, llm_timeout: float,
            style: str, dicom_out: bool, priors: tuple[Path, ...], dates: tuple[str, ...], **segment: object) -> None:
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
        if masks is None:  # one bar over every segmentation task (percentage, ETA)
            from agent.segment_options import segment_progress

            busy = segment_progress(con, f"segmenting {ct.name} ({', '.join(request.backends)})")
        else:
            busy = con.status(f"analyzing {ct}")
        with busy:
            analyzed = case_service.analyze(ct, masks, class_map=class_map, mask_label=mask_label, segment=request,
                                            key_images=not no_key_images, strict_masks=strict_masks, timings=tm,
                                            dicom_out=dicom_out)
        comparison = None
        if priors:
            with con.status(f"comparing with {len(priors)} prior(s)"):
                comparison = case_service.compare_case(list(priors), analyzed, out, study_dates=list(dates) or None)
        elif dates:
            raise click.UsageError("--date is given with --prior only")
        rep = _report(analyzed, llm_url, model, style, con, llm_timeout, comparison=comparison) if with_report else None
        try:
            case_service.write(analyzed, rep, out, force=force, dicom_out=dicom_out,
                               extra={"comparison.json": comparison.to_json() + "\n"} if comparison else None)
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
    if comparison is not None:
        if comparison.recist is not None:
            con.print(f"RECIST 1.1 vs {len(priors)} prior(s): overall {comparison.recist.overall_response}", highlight=False)
        for w in comparison.warnings:
            con.print(f"[yellow]warning:[/] {w}", highlight=False)
        click.echo(str(out / "comparison.json"))
    if dicom_out:
        from perception.dicom_out import FHIR_FILE, SEG_FILE, SR_FILE

        for rel in (SEG_FILE, SR_FILE, FHIR_FILE):
            click.echo(str(out / rel))
