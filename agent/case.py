"""The case service: the one path from a CT to its written outputs, under every surface.

The CLI (agent/cli.py), the HTTP API (agent/api/) and the dataset builder (agent/dataset/) only
parse their input, call these functions, and render what comes back::

    case = analyze(ct, masks, class_map=..., mask_label=..., settings=..., segment=SegmentRequest(...))
    rep = report(case, llm=None | LLMSettings(url, model), style="structured")
    write(case, rep, out)                      # atomic: the folder appears complete or not at all
    session = chat(case.findings, llm=None)    # one chat engine, with or without an LLM

So the same inputs through any surface give the same findings.json, key images and reports
(tests/test_case_service.py holds this). Data flows one way: perception measures here and renders
the key images; reasoning and templates receive only Findings and those images.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from radagent.errors import InputError

if TYPE_CHECKING:  # imported lazily at run time: starting the CLI must stay cheap
    from perception.findings import Settings
    from perception.schema import Findings
    from perception.segment.request import SegmentRequest
    from reasoning.agent import ChatSession
    from reasoning.claims import Verification
    from reasoning.report import ReportDraft

Style = Literal["structured", "narrative"]
STYLES: tuple[str, ...] = ("structured", "narrative")


class LLMSettings(BaseModel):
    """An OpenAI-compatible server (vLLM in production) for narratives and chat."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, description="base URL, e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="served model name (default: the first the server lists)")
    api_key: str | None = Field(None, repr=False)
    timeout_s: float = Field(120.0, gt=0, le=3600,
                             description="seconds to wait for the server (connect, and each read of an answer); "
                                         "a timed-out report falls back to the template and says so")


@dataclass
class Timings:
    """Seconds per stage, and the stage running now (so a failure names its stage explicitly)."""

    seconds: dict[str, float] = field(default_factory=dict)
    current: str | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time ``name``; on an exception ``current`` stays ``name`` (the stage that failed)."""
        self.current = name
        t0 = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + (time.perf_counter() - t0)
        self.current = None


@dataclass(frozen=True)
class AnalyzedCase:
    """Findings and the key image of each lesion (PNG bytes by lesion id)."""

    findings: Findings
    key_images: dict[str, bytes] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # what the findings were made from (inputs.json: paths + SHA-256), so `radagent compare` can re-read them
    inputs: dict = field(default_factory=dict)
    # DICOM SEG of the masks measured (perception.dicom_out.SegOutput), built when analyze(dicom_out=True)
    dicom_seg: object | None = None

    def image_files(self) -> dict[str, bytes]:
        """Key images by the relative path each lesion's ``key_image`` names."""
        return {les.key_image: self.key_images[les.id] for les in self.findings.lesions
                if les.key_image and les.id in self.key_images}

    def with_findings(self, findings: Findings) -> AnalyzedCase:
        """The same case with other findings (e.g. server paths redacted); lesion ids must not change."""
        if [x.id for x in findings.lesions] != [x.id for x in self.findings.lesions]:
            raise ValueError("with_findings: the lesion ids differ; key images would not match their lesions")
        return replace(self, findings=findings)


@dataclass(frozen=True)
class Report:
    """A drafted report and its rendered files (report.md, report.json, report.html)."""

    draft: ReportDraft
    style: str
    files: dict[str, str]

    @property
    def engine(self) -> str:
        return self.draft.engine

    @property
    def fallback_reason(self) -> str | None:
        return self.draft.fallback_reason


# --- analyze ---------------------------------------------------------------------------------------
def analyze(ct: str | Path, masks: str | Path | None = None, *, class_map: str | Path | None = None,
            mask_label: str | None = None, settings: Settings | None = None, segment: SegmentRequest | None = None,
            key_images: bool = True, strict_masks: bool = False, timings: Timings | None = None,
            dicom_out: bool = False, tracking_uids: dict[str, str] | None = None) -> AnalyzedCase:
    """Load the CT, obtain its masks (the user's ``masks``, else ``segment``), check geometry,
    measure, and render each lesion's key image. Nothing is written.

    ``masks`` follow one intake rule on every surface (perception.masks.load_masks): a multilabel map
    needs ``class_map`` or a TotalSegmentator multilabel file name; a single binary mask is named by
    ``mask_label`` or by its file name (an unknown name is refused). Without ``masks`` and without
    ``segment`` the CT is segmented by TotalSegmentator's default request. ``strict_masks`` refuses
    any mask given but not interpreted (unknown name, label not in the class map) instead of
    recording it as ignored with a warning. ``dicom_out`` also builds the DICOM SEG of the masks
    measured (a DICOM CT only; ``tracking_uids`` maps lesion ids to tracking UIDs kept from an earlier
    time point), for ``write(..., dicom_out=True)`` / perception.dicom_out.write_dicom_outputs."""
    from perception.findings import Settings, build_findings_with_masks
    from perception.io import load_ct

    if mask_label is not None:
        from perception.masks import check_mask_label

        if masks is None:
            raise InputError(f"mask label {mask_label!r} names a mask file, but no masks were given")
        check_mask_label(mask_label)  # before the CT is read: a typo fails at once
    tm = timings if timings is not None else Timings()
    s = settings or Settings()
    if dicom_out:
        from perception.dicom_out import require_extra

        require_extra()
    with tm.stage("load_ct"):
        vol = load_ct(ct)
    if dicom_out:
        from perception.dicom_out.seg import source_headers

        headers = source_headers(vol)  # a NIfTI CT or a series without UIDs is refused before measuring
    if masks is not None:
        from perception.masks import load_masks

        with tm.stage("load_masks"):
            labels = load_masks(masks, vol, class_map, tol_mm=s.geometry_tolerance_mm, mask_label=mask_label,
                                strict=strict_masks)
    else:
        from perception.segment import segment_ct
        from perception.segment.request import SegmentRequest

        with tm.stage("segment"):
            labels = segment_ct(vol, segment or SegmentRequest.build())
    with tm.stage("measure"):
        findings, lesion_masks = build_findings_with_masks(vol, labels, s)
    images: dict[str, bytes] = {}
    if key_images and findings.lesions:
        from perception.keyimages import render_key_images

        with tm.stage("key_images"):
            findings, images = render_key_images(vol, findings, lesion_masks)
    seg = None
    if dicom_out:
        from perception.dicom_out.seg import build_seg

        with tm.stage("dicom_seg"):
            seg = build_seg(vol, findings, labels.masks, lesion_masks, tracking_uids=tracking_uids, headers=headers)
    return AnalyzedCase(findings, images, dict(tm.seconds), dicom_seg=seg,
                        inputs=input_record(ct, masks, class_map=class_map, mask_label=mask_label))


def measure(ct: str | Path, masks: str | Path | None = None, class_map: str | Path | None = None,
            settings: Settings | None = None, timings: Timings | None = None, *, mask_label: str | None = None
            ) -> Findings:
    """The Python API's shortest path: Findings of ``ct`` with ``masks`` (no key images, nothing written)."""
    return analyze(ct, masks, class_map=class_map, mask_label=mask_label, settings=settings, key_images=False,
                   timings=timings).findings


def findings_location(path: str | Path) -> Path:
    """findings.json itself, or the analyze output folder holding it."""
    p = Path(path)
    if p.is_dir():
        p = p / "findings.json"
    if not p.exists():
        raise InputError(f"{p}: findings.json not found (expected a findings.json or an `radagent analyze` output folder)")
    return p


def load(path: str | Path) -> AnalyzedCase:
    """A case written by ``write`` (or findings.json alone): findings and the key images found."""
    from pydantic import ValidationError

    from perception.schema import Findings

    p = findings_location(path)
    try:
        f = Findings.model_validate_json(p.read_text())
    except (ValidationError, ValueError) as e:
        raise InputError(f"{p}: not a valid findings.json ({str(e).splitlines()[0]})") from e
    except OSError as e:
        raise InputError(f"{p}: cannot read findings.json ({e.strerror or e})") from e
    images = {les.id: (p.parent / les.key_image).read_bytes() for les in f.lesions
              if les.key_image and (p.parent / les.key_image).is_file()}
    return AnalyzedCase(f, images)


# --- report ----------------------------------------------------------------------------------------
def _check_style(style: str) -> None:
    if style not in STYLES:
        raise InputError(f"report style {style!r}: expected one of {', '.join(STYLES)}")


def report(case: AnalyzedCase, llm: LLMSettings | None = None, style: str = "structured", *,
           draft: ReportDraft | None = None, max_attempts: int = 3, comparison=None,
           comparison_pngs: dict[str, bytes] | None = None) -> Report:
    """Draft the report (the LLM narrative with ``llm``, each claim checked; else the template)
    and render report.md/json/html with the key images. ``draft``: one drafted already (a batch).
    ``comparison`` (comparison.json of this study with its priors): a COMPARISON section with each tracked
    lesion's key images side by side (``comparison_pngs``, by default read by comparison_images())."""
    from templates.render import render_report

    _check_style(style)
    if draft is None:
        from reasoning.narrative import draft_report

        draft = draft_report(case.findings, llm.url if llm else None, llm.model if llm else None, style=style,
                             max_attempts=max_attempts, api_key=llm.api_key if llm else None,
                             **({"timeout_s": llm.timeout_s} if llm else {}))
    if comparison is not None:
        imgs = comparison_pngs if comparison_pngs is not None else comparison_images(comparison, case)
        return Report(draft, style, render_report(case.findings, draft, style, case.key_images, comparison, imgs))
    return Report(draft, style, render_report(case.findings, draft, style, case.key_images))


def draft_batch(findings: list[Findings], llm: LLMSettings, style: str = "structured", concurrency: int = 8
                ) -> list[ReportDraft]:
    """LLM narratives for many cases as bounded concurrent requests (template fallback per case)."""
    import asyncio

    from reasoning.client import LLMClient
    from reasoning.narrative import llm_drafts

    _check_style(style)
    return asyncio.run(llm_drafts(findings, LLMClient(llm.url, llm.model, llm.api_key, llm.timeout_s), concurrency=concurrency,
                                  style=style))


# --- write -----------------------------------------------------------------------------------------
def output_files(case: AnalyzedCase, rep: Report | None = None, extra: dict[str, str | bytes] | None = None
                 ) -> dict[str, str | bytes]:
    """Every file of a case folder: findings.json, findings.md, key images, report files, ``extra``."""
    from templates.render import render_findings_md

    files: dict[str, str | bytes] = {"findings.json": case.findings.to_json() + "\n",
                                     "findings.md": render_findings_md(case.findings), **case.image_files()}
    if case.inputs:
        import json

        files["inputs.json"] = json.dumps(case.inputs, indent=1) + "\n"
    if rep is not None:
        files.update(rep.files)
    clash = set(files) & set(extra or {})
    if clash:
        raise ValueError(f"extra files would replace case outputs: {sorted(clash)}")
    files.update(extra or {})
    return files


def write(case: AnalyzedCase, rep: Report | None, out: str | Path, *, force: bool = False,
          extra: dict[str, str | bytes] | None = None, dicom_out: bool = False) -> Path:
    """Write the case folder atomically (complete or absent); ``force`` replaces a non-empty one.
    ``dicom_out`` adds dicom/seg.dcm, dicom/sr.dcm and fhir_bundle.json (the case must come from
    ``analyze(..., dicom_out=True)``); the FHIR DiagnosticReport carries report.md, else findings.md."""
    from agent.files import write_outputs_atomically

    files = output_files(case, rep, extra)
    if dicom_out:
        from perception.dicom_out import dicom_output_files

        text = files.get("report.md") or files["findings.md"]
        files.update(dicom_output_files(case, text if isinstance(text, str) else text.decode()))
    return write_outputs_atomically(Path(out), files, force=force)


def write_report(rep: Report, folder: str | Path) -> Path:
    """Add (or replace) the report files in an existing folder, each file atomically; a missing
    folder is created complete."""
    from agent.files import add_files_atomically, write_outputs_atomically

    folder = Path(folder)
    if folder.is_dir():
        add_files_atomically(folder, rep.files)
    else:
        write_outputs_atomically(folder, rep.files)
    return folder


# --- chat ------------------------------------------------------------------------------------------
def chat(findings: Findings, llm: LLMSettings | None = None, *, max_attempts: int = 3, comparison=None) -> ChatSession:
    """One conversation about one study: the tool-calling agent with ``llm``, deterministic answers
    without; follow-ups ("and the second largest?") resolve the same way in both. ``comparison``
    (comparison.json with the priors): change-over-time questions are resolved against it."""
    from reasoning.agent import ChatSession

    return ChatSession(findings, llm.url if llm else None, llm.model if llm else None,
                       api_key=llm.api_key if llm else None, max_attempts=max_attempts,
                       **({"timeout_s": llm.timeout_s} if llm else {}), comparison=comparison)


# --- questions -------------------------------------------------------------------------------------
def question(subtype: str, params: dict | None = None):
    """A structured question (a DeepTumorVQA subtype and its parameters), validated
    (pydantic ValidationError naming the field)."""
    from reasoning.vqa import Question

    return Question(subtype=subtype, **(params or {}))


def ask(findings: Findings, q, choices: list[str] | None = None, comparison=None):
    """One question answered deterministically from findings (text or a ``question(...)``): the
    Answer with its finding ids and rule, or the reason it cannot be determined. ``comparison`` (a
    Comparison of this study with its priors, comparison.json): change-over-time questions are answered
    from it; without it they are refused."""
    from reasoning.vqa import answer

    return answer(findings, q, choices, comparison=comparison)


# --- claim checking --------------------------------------------------------------------------------
def verify(findings: Findings, text: str, comparison=None) -> Verification:
    """Every sentence of ``text`` (a dictated or LLM-written report, plain text or markdown) parsed
    into claims, each supported by ``findings`` (or a sourced rule), unsupported with the reason, or
    not checkable; ``.ok`` when no claim is unsupported. ``comparison`` (comparison.json): change claims
    ("grew by 30 %", "new lesion", "partial response") are checked against it; without it they are unsupported."""
    from reasoning.claims import verify as _verify

    return _verify(findings, text, comparison)


# --- viewer volumes (the web page's NiiVue viewer) -------------------------------------------------
VIEWER_VOLUMES = ("ct", "organs", "lesions")


def viewer_volumes(ct: str | Path, masks: str | Path, findings: Findings, folder: str | Path, *,
                   class_map: str | Path | None = None, mask_label: str | None = None) -> dict:
    """The volumes the web viewer loads, written once into ``folder`` (atomically, with ``legend.json``):
    ``ct.nii.gz`` (the CT as measured; None when ``ct`` is itself a gzip NIfTI, which is served as is),
    ``organs.nii.gz`` (label i+1 = ``legend['organs'][i]``, every organ of ``findings`` with a mask) and
    ``lesions.nii.gz`` (label i+1 = ``findings.lesions[i]``: the 26-connected component ``component_label``
    of mask ``lesion.mask``, as perception measured it; its voxel count must equal ``voxel_count``).
    Masks are read with the same intake rule and tolerance as the analysis. Returns the legend."""
    import gzip
    import json
    import os
    import shutil
    import tempfile

    import cc3d
    import nibabel as nib
    import numpy as np

    from perception.findings import Settings
    from perception.io import load_ct
    from perception.masks import load_masks

    folder = Path(folder)
    vol = load_ct(ct)
    if list(vol.shape) != list(findings.study.shape) or not np.allclose(vol.affine, findings.study.affine, atol=1e-3):
        raise InputError(f"{ct}: the CT is not the one these findings were measured on (shape {vol.shape}, expected "
                         f"{tuple(findings.study.shape)}; or another affine)")
    labels = load_masks(masks, vol, class_map, tol_mm=Settings().geometry_tolerance_mm, mask_label=mask_label)
    organs = [o for o in findings.organs if labels.get(o.name) is not None]
    if len(organs) > 65535 or len(findings.lesions) > 65535:
        raise InputError(f"{masks}: more than 65535 organs or lesions cannot be one label volume")

    def label_volume(n: int) -> np.ndarray:
        return np.zeros(vol.shape, dtype=np.uint8 if n < 256 else np.uint16)

    org = label_volume(len(organs))
    for i, o in enumerate(organs, 1):
        m = labels.get(o.name)
        org[tuple(slice(a, b) for a, b in m.bbox)][m.data] = i
    les = label_volume(len(findings.lesions))
    cache: dict[str, np.ndarray] = {}
    for i, lesion in enumerate(findings.lesions, 1):
        m = labels.get(lesion.mask)
        if m is None:
            raise InputError(f"{masks}: lesion {lesion.id}'s mask {lesion.mask!r} is not among the case's masks")
        if lesion.mask not in cache:
            cache[lesion.mask] = cc3d.connected_components(m.data, connectivity=26)
        comp = cache[lesion.mask] == lesion.component_label
        if int(comp.sum()) != lesion.voxel_count:
            raise InputError(f"{masks}: component {lesion.component_label} of mask {lesion.mask!r} holds "
                             f"{int(comp.sum())} voxels, lesion {lesion.id} was measured with {lesion.voxel_count}")
        les[tuple(slice(a, b) for a, b in m.bbox)][comp] = i

    ct_path = Path(ct)
    with open(ct_path, "rb") if ct_path.is_file() else contextlib.nullcontext(None) as fh:
        ct_is_gz_nifti = fh is not None and ct_path.name.endswith((".nii.gz", ".nii")) and fh.read(2) == b"\x1f\x8b"
    legend = {"ct": None if ct_is_gz_nifti else "ct.nii.gz",
              "organs": [{"label": i, "name": o.name, "status": o.status.value} for i, o in enumerate(organs, 1)],
              "lesions": [{"label": i, "id": x.id} for i, x in enumerate(findings.lesions, 1)]}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        def save(arr: np.ndarray, name: str) -> None:
            img = nib.Nifti1Image(arr, vol.affine)
            img.set_qform(vol.affine, code=1)
            img.set_sform(vol.affine, code=1)
            img.header.set_xyzt_units("mm")
            (tmp / name).write_bytes(gzip.compress(img.to_bytes(), compresslevel=6))

        if not ct_is_gz_nifti:
            save(vol.hu, "ct.nii.gz")
        save(org, "organs.nii.gz")
        save(les, "lesions.nii.gz")
        (tmp / "legend.json").write_text(json.dumps(legend, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return legend


# --- follow-up (issue 16) --------------------------------------------------------------------------
def input_record(ct: str | Path, masks: str | Path | None, *, class_map: str | Path | None = None,
                 mask_label: str | None = None) -> dict:
    """inputs.json of an analyze output (perception.followup.inputs): absolute paths + SHA-256 of the CT, masks
    and class map, so that `radagent compare` re-reads the same files (and refuses when they changed)."""
    from perception.followup.inputs import input_record as _record

    return _record(ct, masks, class_map=class_map, mask_label=mask_label)


def compare(priors: list[str | Path], current: str | Path, *, study_dates: list | None = None,
            targets: list[str] | None = None):
    """Compare the current study with its priors (each an analyze output folder, oldest prior first):
    registration, lesion tracking and RECIST 1.1 as a Comparison (perception.followup.schema)."""
    from perception.followup.compare import compare as _compare

    return _compare([Path(p) for p in priors], Path(current), study_dates=study_dates, targets=targets)


def compare_case(priors: list[str | Path], current: AnalyzedCase, out: str | Path, *, study_dates: list | None = None,
                 targets: list[str] | None = None):
    """Compare a case analyzed now (not written yet; it will be written to ``out``) with its priors, so that
    `radagent analyze --prior` writes findings and comparison.json in one atomic folder."""
    import hashlib

    from perception.followup.compare import compare as _compare, study_from

    if not current.inputs:
        raise InputError("compare: the current case has no inputs record (CT and masks paths)")
    sha = hashlib.sha256((current.findings.to_json() + "\n").encode()).hexdigest()  # the bytes write() writes
    cur = study_from(Path(out).absolute(), len(priors), current.findings, sha, current.inputs)
    return _compare([Path(p) for p in priors], cur, study_dates=study_dates, targets=targets)


def write_comparison(comparison, out: str | Path, *, force: bool = False) -> Path:
    """OUT/comparison.json, atomically: a new folder appears complete; into an existing folder (an analyze
    output, or with ``force``) the file is added or replaced whole."""
    from agent.files import add_files_atomically, write_outputs_atomically

    out = Path(out)
    files = {"comparison.json": comparison.to_json() + "\n"}
    if out.is_dir() and (force or (out / "findings.json").is_file() or not any(out.iterdir())):
        add_files_atomically(out, files)
    else:
        write_outputs_atomically(out, files, force=force)
    return out


# --- follow-up report (issue 16, part B) -----------------------------------------------------------
def comparison_images(comparison, current: AnalyzedCase | None = None) -> dict[str, bytes]:
    """Each tracked lesion's key image per time point (name: reasoning.comparison.image_name), read from
    the analyze output folders the comparison names (the PNGs analyze wrote; no voxel is read). The current
    study's images come from ``current`` when given. A folder whose findings.json no longer has the
    SHA-256 the comparison recorded gives no images (they might show other lesions)."""
    import hashlib

    from perception.schema import Findings
    from reasoning.comparison import image_name

    out: dict[str, bytes] = {}
    for s in comparison.studies:
        folder = Path(s.analyze_dir)
        images: dict[str, bytes] = {}
        if s.role == "current" and current is not None:
            images = dict(current.key_images)
        else:
            fj = folder / "findings.json"
            try:
                raw = fj.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(raw).hexdigest() != s.findings_sha256:
                continue
            f = Findings.model_validate_json(raw)
            for les in f.lesions:
                if les.key_image and (folder / les.key_image).is_file():
                    images[les.id] = (folder / les.key_image).read_bytes()
        for t in comparison.lesions:
            m = t.at(s.time_point)
            if m is not None and m.lesion_id and m.lesion_id in images:
                out[image_name(t.tracking_id, s.time_point)] = images[m.lesion_id]
    return out
