"""radagent as tools for other agents: an MCP server (Model Context Protocol, the official ``mcp`` SDK).

``build_server(settings)`` returns an ``MCPServer`` whose tools are thin calls into the case service
(agent/case.py), over the HTTP API's case store (agent/api/store.py), so a case id means the same case
to `radagent serve` and `radagent mcp` started on the same data root::

    analyze_ct            CT path in the data root (+ masks, or a segmentation request), or a case id
                          -> case id + summary (organs, lesions with sizes and locations, coverage, warnings)
    get_findings          case id [+ lesion ids / organs] -> Findings fragments (perception.schema models)
    ask                   case id + question text or subtype + params -> the Answer (finding ids, rule)
    verify_text           case id + report text -> per-sentence claims and verdicts (reasoning.claims)
    draft_report          case id + style -> report.md text and its provenance (sentences -> finding ids)
    compare_studies       prior case ids + current case id -> comparison sentences, RECIST 1.1, comparison.json
                          (kept with the current case: ask, verify_text and draft_report then use it)
    key_image             case id + lesion id -> the lesion's key image (PNG image content)
    list_question_types   the question subtypes ask takes, with their parameters
    list_segmentation_tasks   the segmentation backends and TotalSegmentator tasks analyze_ct can request

Resources (templates): ``radagent://cases/{case_id}/findings.json``, ``.../report.md``,
``.../comparison.json`` and ``.../key-images/{lesion_id}.png`` (PNG bytes, image/png).

Paths are confined to the data root by the HTTP API's own check (agent.api.security.resolve_in_root:
'..', absolute paths elsewhere, symlinks leading out and the case storage are refused). Errors come
back as tool errors carrying the case service's message (the CLI's text, with the server's paths
replaced by their display names as the HTTP API does). Analyses report MCP progress notifications
(one per stage: load_ct, load_masks or segment, measure, key_images, write).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import HTTPException
from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import BaseModel, Field, ValidationError

from agent import case as case_service
from agent.api.models import AskRequest, CaseInfo, CaseRecord, validate_mask_label
from agent.api.security import redact, redact_text, resolve_in_root
from agent.api.settings import LESION_ID_PATTERN, ServerSettings
from agent.api.store import CaseStore, now
from perception.followup.schema import Comparison, Recist
from perception.schema import (
    Findings,
    IgnoredMask,
    Lesion,
    LesionSearch,
    Organ,
    SliceRef,
    Study,
)
from radagent.errors import InputError, RadagentError
from reasoning.claims import Verification
from reasoning.comparison import ComparisonSentence, beside
from reasoning.report import ReportDraft
from reasoning.vqa.question import Answer

log = logging.getLogger("radagent.mcp")

CaseId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="a case id (32 lowercase hex characters) from "
                                                                       "analyze_ct or the HTTP API")]
LesionId = Annotated[str, Field(pattern=LESION_ID_PATTERN, description="a lesion id (L1, L2, ...)")]


# --- typed outputs ---------------------------------------------------------------------------------
class OrganSummary(BaseModel):
    name: str
    status: str = Field(description="measured, or why not (a status, never a 0)")
    volume_ml: float | None = Field(description="null unless measured")
    mean_hu: float | None
    cut_by_scan_edge: bool = Field(description="the mask touches a scan edge: the volume is the imaged part only")
    lesion_ids: list[str]


class LesionBrief(BaseModel):
    id: str
    organ: str | None
    kind: str
    long_axis_mm: float = Field(description="RECIST 1.1 longest axial diameter")
    short_axis_mm: float
    volume_ml: float
    mean_hu: float
    attenuation: str | None
    segments: list[str] = Field(description="sub-segments holding > 10 % of the lesion, largest first")
    laterality: str | None
    size_qualifier: Literal["complete", "lower_bound"] = Field(
        description="lower_bound: the lesion reaches the scan edge, its sizes are at least these")
    key_slice: SliceRef | None = Field(description="the long-axis slice as a radiologist opens it")
    key_image: str | None = Field(description="resource URI of the key image (PNG), when rendered")


class Coverage(BaseModel):
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    slice_thickness_mm: float
    organs_cut_by_scan_edge: list[str]
    lesion_search: list[LesionSearch] = Field(description="per organ: searched for lesions (by which mask or model), "
                                                          "or why not; absence is said only where searched")


class CaseSummary(BaseModel):
    case_id: str
    status: str
    inputs: dict[str, str]
    organs: list[OrganSummary]
    lesions: list[LesionBrief]
    coverage: Coverage
    warnings: list[str]
    ignored_masks: list[IgnoredMask]
    resources: list[str] = Field(description="resource URIs of this case (findings.json, report.md, key images)")


class FindingsFragment(BaseModel):
    """The parts of findings.json asked for (lesions and organs filtered; the study always whole)."""

    case_id: str
    schema_version: str
    study: Study
    organs: list[Organ]
    lesions: list[Lesion]
    lesion_search: list[LesionSearch]
    dropped_components: int


class VerifyResult(BaseModel):
    case_id: str
    ok: bool = Field(description="no claim is unsupported")
    counts: dict[str, int] = Field(description="claims per verdict: supported, unsupported, not_checkable")
    sentences: list[dict[str, Any]] = Field(description="each sentence with its claims and verdicts "
                                                        "(reasoning.claims.SentenceCheck)")


class DraftedReport(BaseModel):
    case_id: str
    style: str
    engine: Literal["llm", "template"]
    text: str = Field(description="report.md")
    fallback_reason: str | None = Field(description="why the LLM narrative was not used, when it was not")
    provenance: ReportDraft = Field(description="every sentence with the finding ids it rests on")


class ComparisonResult(BaseModel):
    """compare_studies: the comparison in sentences (each with the tracking / lesion ids it rests on), the
    RECIST 1.1 assessment, and the whole comparison.json (server paths shown as case ids)."""

    current_case_id: str
    prior_case_ids: list[str]
    summary: list[ComparisonSentence]
    recist: Recist | None = Field(description="null when it cannot be assessed (the reason is in comparison.warnings)")
    comparison: Comparison


class QuestionType(BaseModel):
    name: str
    group: str
    answer_type: str
    params: list[str] = Field(description="parameters ask takes with this subtype (params={name: value})")
    definition: str
    example: str
    source: str


class QuestionTypes(BaseModel):
    groups: list[str]
    types: list[QuestionType]


class SegmentationTask(BaseModel):
    name: str
    what: str
    modes: list[Literal["fast", "full"]]
    datasets: list[int] = Field(description="TotalSegmentator nnU-Net dataset ids the full mode runs")


class UnavailableTask(BaseModel):
    name: str
    reason: str


class SegmentationTasks(BaseModel):
    backends: list[str] = Field(description="segmentation backends analyze_ct's segment.backends takes")
    tasks: list[SegmentationTask]
    unavailable: list[UnavailableTask]
    installed: bool = Field(description="TotalSegmentator importable in this server's environment")


class SegmentationRequest(BaseModel):
    """What analyze_ct segments when no masks are given (perception.segment.request.SegmentRequest)."""

    model_config = {"extra": "forbid"}

    backends: list[str] | None = Field(None, description="backends in priority order (default: totalseg)")
    tasks: list[str] | None = Field(None, description="TotalSegmentator tasks (default: total)")
    fast: bool | None = Field(None, description="TotalSegmentator total at 3 mm (true) or 1.5 mm (false)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    allow_download: bool = Field(False, description="download missing TotalSegmentator weights")


# --- helpers ---------------------------------------------------------------------------------------
class Service:
    """The server's state: settings and the case store (shared with `radagent serve` on the same cases dir)."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.store = CaseStore(settings.cases)
        self.store.root.mkdir(parents=True, exist_ok=True)
        self.workers = anyio.CapacityLimiter(settings.workers)  # analyses run at once (as serve --workers)
        self.display = {str(settings.data_root) + "/": "", str(settings.data_root): "<data root>",
                        str(self.store.root): "<cases>"}

    def llm(self) -> case_service.LLMSettings | None:
        s = self.settings
        return case_service.LLMSettings(url=s.llm_url, model=s.model, timeout_s=s.llm_timeout_s) if s.llm_url else None

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Domain errors as tool errors: the case service's message (server paths redacted, as the HTTP API does)."""
        try:
            yield
        except ToolError:
            raise
        except HTTPException as e:
            raise ToolError(redact_text(str(e.detail), self.display)) from None
        except RadagentError as e:
            raise ToolError(redact_text(str(e), self.display)) from None
        except ValidationError as e:
            raise ToolError(validation_message(e)) from None

    def findings(self, cid: str) -> tuple[Findings, Path]:
        return self.store.findings(cid)


def validation_message(e: ValidationError) -> str:
    """A pydantic refusal as the CLI and the HTTP API word it: 'field: message; ...'."""
    return "; ".join(f"{'.'.join(str(x) for x in d['loc']) or 'question'}: {d['msg']}" for d in e.errors())


def _pick(items: list, wanted: list[str], key, what: str, cid: str) -> list:
    """The items whose key is in ``wanted``; an unknown name is refused, listing the case's own."""
    names = [key(x) for x in items]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise InputError(f"no {what} {', '.join(unknown)} in case {cid}; {what}s are {names}")
    return [x for x in items if key(x) in wanted]


def resource_uris(cid: str, f: Findings) -> list[str]:
    return ([f"radagent://cases/{cid}/findings.json", f"radagent://cases/{cid}/report.md"]
            + [f"radagent://cases/{cid}/key-images/{les.id}.png" for les in f.lesions if les.key_image])


def summarize(cid: str, info: CaseInfo, f: Findings) -> CaseSummary:
    """The case at a glance, every value copied from its Findings."""
    organs = [OrganSummary(name=o.name, status=o.status.value, volume_ml=o.volume_ml, mean_hu=o.mean_hu,
                           cut_by_scan_edge=bool(o.touches_edges), lesion_ids=o.lesion_ids) for o in f.organs]
    lesions = [LesionBrief(id=les.id, organ=les.organ, kind=les.kind, long_axis_mm=les.long_axis_mm,
                           short_axis_mm=les.short_axis_mm, volume_ml=les.volume_ml, mean_hu=les.mean_hu,
                           attenuation=les.attenuation.value if les.attenuation else None, segments=les.segments,
                           laterality=les.laterality, size_qualifier=les.size_qualifier, key_slice=les.key_slice,
                           key_image=f"radagent://cases/{cid}/key-images/{les.id}.png" if les.key_image else None)
               for les in f.lesions]
    st = f.study
    cov = Coverage(shape=st.shape, spacing_mm=st.spacing_mm, slice_thickness_mm=st.slice_thickness_mm,
                   organs_cut_by_scan_edge=[o.name for o in f.organs if o.touches_edges], lesion_search=f.lesion_search)
    return CaseSummary(case_id=cid, status=info.status, inputs=info.inputs, organs=organs, lesions=lesions,
                       coverage=cov, warnings=list(st.warnings), ignored_masks=f.ignored_masks,
                       resources=resource_uris(cid, f))


def _segment_request(req: SegmentationRequest):
    from perception.segment.request import SegmentRequest

    fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in req.model_dump().items() if v is not None}
    return SegmentRequest.build(**fields)


def _analyze_into(store: CaseStore, cid: str, rec: CaseRecord, segment, tm: case_service.Timings) -> None:
    """Worker thread: the case service's analysis of the record's inputs, findings redacted and out/
    written atomically (as the HTTP API's worker does); with ``segment`` the CT is segmented first."""
    analyzed = case_service.analyze(rec.paths["ct"], rec.paths.get("masks"), class_map=rec.paths.get("class_map"),
                                    mask_label=rec.mask_label, segment=segment, timings=tm)
    findings = Findings.model_validate(redact(analyzed.findings.model_dump(mode="json"), rec.display))
    analyzed = analyzed.with_findings(findings)
    with tm.stage("write"), store.case_lock(cid):
        if not (store.root / cid / "case.json").is_file():
            return  # deleted meanwhile (the call was cancelled): nothing is written
        case_service.write(analyzed, None, store.root / cid / "out", force=True)
        rec.info.status = "done"
        rec.info.n_lesions, rec.info.n_organs = len(findings.lesions), len(findings.organs)
        rec.info.warnings = list(findings.study.warnings)
        rec.info.timings_s = {k: round(v, 3) for k, v in tm.seconds.items()}
        store.save(rec)


async def _progress_while(ctx: Context, done: anyio.Event, tm: case_service.Timings, stages: tuple[str, ...]) -> None:
    """A progress notification as the analysis enters each of ``stages`` (progress: the stages before it), until ``done``."""
    last = None
    while not done.is_set():
        cur = tm.current
        if cur is not None and cur != last and cur in stages:
            await ctx.report_progress(stages.index(cur), len(stages), f"analysis: {cur}")
            last = cur
        with anyio.move_on_after(0.05):
            await done.wait()


async def _wait_for_case(svc: Service, cid: str, ctx: Context) -> CaseRecord:
    """A case analyzed elsewhere (e.g. uploaded to `radagent serve`): its record once it has ended,
    with a progress notification each second while it is queued or running."""
    t = 0
    while True:
        rec = await anyio.to_thread.run_sync(svc.store.load, cid)
        if rec.info.status not in ("queued", "running"):
            return rec
        t += 1
        await ctx.report_progress(t, None, f"case {cid} is {rec.info.status} ({t} s)")
        await anyio.sleep(1.0)


# --- the server ------------------------------------------------------------------------------------
INSTRUCTIONS = (
    "radagent measures CT scans: organ volumes and HU, lesions with RECIST sizes, locations and key images, in "
    "findings.json. Start with analyze_ct (a CT path in the server's data root with its masks, or a case id), then "
    "ask questions (ask), check a report text claim by claim (verify_text) or draft a report (draft_report). Every "
    "value comes from the measured findings; what cannot be measured is reported as a status with its reason.")


def build_server(settings: ServerSettings) -> MCPServer:
    """The MCP server over the case service and the case store under ``settings.cases``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("radagent")
    except PackageNotFoundError:
        ver = "0"
    svc = Service(settings)
    server = MCPServer("radagent", version=ver, instructions=INSTRUCTIONS, log_level="WARNING")
    store = svc.store

    @server.tool(title="Analyze a CT")
    async def analyze_ct(
        ctx: Context,
        ct: Annotated[str | None, Field(description="CT (.nii/.nii.gz file or DICOM series folder), relative to the "
                                                    "data root or absolute inside it")] = None,
        masks: Annotated[str | None, Field(description="folder of binary NIfTI masks named by structure, or a "
                                                       "multilabel NIfTI; without it the CT is segmented")] = None,
        class_map: Annotated[str | None, Field(description="JSON {label id: name} for a multilabel masks file")] = None,
        mask_label: Annotated[str | None, Field(description="what a single binary mask file holds when its name "
                                                            "does not say it (as radagent analyze --mask-label)")] = None,
        segment: Annotated[SegmentationRequest | None, Field(description="segmentation request when no masks are "
                                                                         "given (default: TotalSegmentator total)")] = None,
        case_id: Annotated[str | None, Field(pattern=r"^[0-9a-f]{32}$", description="instead of ct: a case already "
                                             "created (an upload to the HTTP API, or an earlier analyze_ct)")] = None,
    ) -> CaseSummary:
        """Measure every organ and lesion of a CT (or return an existing case): the case id and a summary of
        organs, lesions (sizes, locations), coverage and warnings. Progress is reported per stage."""
        with svc.errors():
            if case_id is not None:
                if any(v is not None for v in (ct, masks, class_map, mask_label, segment)):
                    raise InputError("give either case_id or ct (with masks or a segmentation request), not both")
                rec = await _wait_for_case(svc, case_id, ctx)
                f, _ = await anyio.to_thread.run_sync(store.findings, case_id)
                return summarize(case_id, rec.info, f)
            if ct is None:
                raise InputError("give ct (a path in the data root) or case_id")
            if masks is not None and segment is not None:
                raise InputError("give masks or a segmentation request, not both")
            if masks is None and (class_map is not None or mask_label is not None):
                raise InputError("class_map and mask_label describe masks, but no masks were given")
            seg = _segment_request(segment or SegmentationRequest()) if masks is None else None
            if mask_label is not None:
                try:
                    validate_mask_label(mask_label)
                except ValueError as e:
                    raise InputError(str(e)) from None
            root = settings.data_root
            paths: dict[str, str] = {}
            for role, given in (("ct", ct), ("masks", masks), ("class_map", class_map)):
                if given is not None:
                    paths[role] = str(await anyio.to_thread.run_sync(resolve_in_root, root, given, role, (store.root,)))
            inputs = {k: str(Path(v).relative_to(root)) for k, v in paths.items()}
            if mask_label is not None:
                inputs["mask_label"] = mask_label
            if seg is not None:
                inputs["segment"] = f"{', '.join(seg.backends)} ({', '.join(seg.tasks)})"
            cid, staging = store.new_staging()
            try:
                display = {str(root) + "/": "", str(root): "<data root>", str(store.root / cid): "<case>"}
                rec = CaseRecord(info=CaseInfo(id=cid, status="running", source="path", inputs=inputs, created=now()),
                                 paths=paths, display=display, mask_label=mask_label)
                store.commit(staging, rec)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            tm = case_service.Timings()
            done = anyio.Event()
            stages = ("load_ct", "load_masks" if seg is None else "segment", "measure", "key_images", "write")
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_progress_while, ctx, done, tm, stages)
                    try:
                        # the deadline and a client's cancellation abandon the worker thread (it cannot be
                        # killed); the case is removed below, so whatever it returns later is not written
                        with anyio.fail_after(settings.analysis_timeout_s):
                            await anyio.to_thread.run_sync(_analyze_into, store, cid, rec, seg, tm,
                                                           abandon_on_cancel=True, limiter=svc.workers)
                    finally:
                        done.set()
            except BaseException as e:
                err = e.exceptions[0] if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1 else e
                if isinstance(err, TimeoutError):
                    err = InputError(f"the analysis did not finish within the server's limit of "
                                     f"{settings.analysis_timeout_s:g} s (analysis_timeout_s); its inputs may be too "
                                     "large or malformed")
                # no partial case: the folder goes, as the HTTP API removes a failed case answered with wait=true
                with contextlib.suppress(HTTPException, OSError):
                    store.delete(cid)
                if isinstance(err, Exception) and not isinstance(err, (RadagentError, HTTPException, ValidationError)):
                    log.error("case %s: analysis failed", cid, exc_info=err)
                raise err from None
            await ctx.report_progress(len(stages), len(stages), "analysis: done")
            f, _ = await anyio.to_thread.run_sync(store.findings, cid)
            return summarize(cid, store.load(cid).info, f)

    @server.tool(title="Findings of a case")
    def get_findings(
        case_id: CaseId,
        lesion_ids: Annotated[list[Annotated[str, Field(pattern=LESION_ID_PATTERN)]] | None,
                              Field(description="only these lesions (and no organ unless organs is given)")] = None,
        organs: Annotated[list[str] | None, Field(description="only these organs (and their lesions unless lesion_ids "
                                                              "is given)")] = None,
    ) -> FindingsFragment:
        """findings.json of a case, whole or filtered by lesion ids and/or organ names (the study always whole)."""
        with svc.errors():
            f, _ = svc.findings(case_id)
            les, org = f.lesions, f.organs
            if lesion_ids is not None:
                les = _pick(f.lesions, lesion_ids, lambda x: x.id, "lesion", case_id)
                org = [] if organs is None else org
            if organs is not None:
                org = _pick(f.organs, organs, lambda x: x.name, "organ", case_id)
                if lesion_ids is None:
                    les = [le for le in f.lesions if le.organ in organs]
            return FindingsFragment(case_id=case_id, schema_version=f.schema_version, study=f.study, organs=org,
                                    lesions=les, lesion_search=f.lesion_search, dropped_components=f.dropped_components)

    @server.tool(title="Answer a question")
    def ask(
        case_id: CaseId,
        question: Annotated[str | None, Field(max_length=4000, description="the question in words")] = None,
        choices: Annotated[list[str] | None, Field(max_length=10, description="multiple-choice options 'A) ...'")] = None,
        subtype: Annotated[str | None, Field(description="a question type (list_question_types) instead of the text")] = None,
        params: Annotated[dict[str, str | list[str]] | None,
                          Field(description="parameters of the subtype (organ, lesion_id, organs, ...)")] = None,
    ) -> Answer:
        """Answer one question about a case from its measurements alone: the Answer with its finding ids and
        rule, or the reason it cannot be determined."""
        with svc.errors():
            req = AskRequest(question=question, choices=choices, subtype=subtype, params=params or {})
            f, out = svc.findings(case_id)
            q = case_service.question(req.subtype, req.params) if req.subtype is not None else req.question
            try:  # with the case's comparison.json (compare_studies), change-over-time questions are answered from it
                return case_service.ask(f, q, req.choices, comparison=beside(out))
            except ValueError as e:  # malformed choices
                raise InputError(str(e)) from None

    @server.tool(title="Check a report text")
    def verify_text(
        case_id: CaseId,
        text: Annotated[str, Field(min_length=1, max_length=200_000, description="report text, plain or markdown")],
    ) -> VerifyResult:
        """Check every claim of a report text (dictated or LLM-written) against the case's findings: each
        sentence with its claims, each supported (and by what), unsupported (and why) or not checkable."""
        with svc.errors():
            if not text.strip():
                raise InputError("text: the report text is empty")
            f, out = svc.findings(case_id)
            v: Verification = case_service.verify(f, text, beside(out))
            return VerifyResult(case_id=case_id, ok=v.ok, counts=v.counts(),
                                sentences=[s.model_dump(mode="json") for s in v.sentences])

    def _drafted(case_id: str, style: str) -> DraftedReport:
        _, out = store.done(case_id)
        llm = svc.llm()
        eng = "llm" if llm else "template"
        folder = out / "reports" / f"{eng}-{style}"  # the HTTP API's report cache: drafted once per engine and style
        if (folder / "report.md").is_file() and (folder / "report.json").is_file():
            # report.json carries a `comparison` section when the case was compared: read the draft without it
            from reasoning.comparison import report_draft

            draft = report_draft((folder / "report.json").read_text())
            return DraftedReport(case_id=case_id, style=style, engine=draft.engine,
                                 text=(folder / "report.md").read_text(), fallback_reason=draft.fallback_reason,
                                 provenance=draft)
        cmp = beside(out)  # a comparison adds the COMPARISON section (the HTTP API's report does the same)
        images = {f"comparison/{p.name}": p.read_bytes() for p in sorted((out / "comparison").glob("*.png"))} \
            if cmp is not None else None
        rep = case_service.report(case_service.load(out), llm, style, comparison=cmp, comparison_pngs=images)
        if not rep.fallback_reason:  # a fallback is not kept: the next request tries the LLM again
            with store.case_lock(case_id):
                if (store.root / case_id / "case.json").is_file():
                    case_service.write_report(rep, folder)
        return DraftedReport(case_id=case_id, style=style, engine=rep.engine, text=rep.files["report.md"],
                             fallback_reason=rep.fallback_reason, provenance=rep.draft)

    @server.tool(title="Draft a report")
    async def draft_report(
        ctx: Context,
        case_id: CaseId,
        style: Annotated[Literal["structured", "narrative"], Field(description="report style")] = "structured",
    ) -> DraftedReport:
        """Draft the case's report (the LLM narrative when the server has --llm, each claim checked; else the
        template): report.md and its provenance, every sentence with the finding ids it rests on."""
        with svc.errors():
            await ctx.report_progress(0, 1, f"drafting the report ({'llm' if svc.llm() else 'template'})")
            out = await anyio.to_thread.run_sync(_drafted, case_id, style)
            await ctx.report_progress(1, 1, "report drafted")
            return out

    def _compare(current: str, priors: list[str], study_dates: list[str] | None, targets: list[str] | None
                 ) -> Comparison:
        """As POST /cases/{id}/compare: compared on the case folders, paths shown as case ids, kept as the
        current case's comparison.json with the key images per time point; reports drafted before are dropped."""
        from agent.files import add_files_atomically

        if current in priors or len(set(priors)) != len(priors):
            raise InputError(f"priors {priors}: each prior once, and not the case {current} itself")
        rec, out = store.done(current)
        shown_as = dict(rec.display)
        prior_outs = []
        for p in priors:
            prec, pout = store.done(p)
            shown_as.update({k: v.replace("<case>", f"<case {p}>") for k, v in prec.display.items()})
            shown_as[str(pout)] = f"<case {p}>/out"
            prior_outs.append(pout)
        shown_as[str(out)] = f"<case {current}>/out"
        try:
            c = case_service.compare(prior_outs, out, study_dates=study_dates, targets=targets)
        except InputError as e:
            raise InputError(redact_text(str(e), shown_as)) from None
        images = case_service.comparison_images(c, case_service.load(out))
        shown = Comparison.model_validate(redact(c.model_dump(mode="json"), shown_as))
        with store.case_lock(current):
            add_files_atomically(out, {"comparison.json": shown.to_json() + "\n", **images})
            shutil.rmtree(out / "reports", ignore_errors=True)  # reports drafted before lack the COMPARISON section
        return shown

    @server.tool(title="Compare with prior studies")
    async def compare_studies(
        ctx: Context,
        prior_case_ids: Annotated[list[CaseId], Field(min_length=1, max_length=8, description="the prior studies of "
                                                      "the same patient, oldest first (analyzed cases)")],
        current_case_id: CaseId,
        study_dates: Annotated[list[str] | None, Field(description="YYYY-MM-DD of each study, oldest prior first, the "
                                                                   "current last (all or none): volume doubling times")] = None,
        targets: Annotated[list[str] | None, Field(description="RECIST target lesions by tracking id (default: chosen "
                                                               "by the RECIST 1.1 rules)")] = None,
    ) -> ComparisonResult:
        """Compare the current study with its priors: register the CTs, track every lesion (persisting, new,
        disappeared, not assessable) and assess RECIST 1.1. Kept with the current case: ask, verify_text and
        draft_report then use it (change questions, change claims, the COMPARISON section)."""
        from reasoning.comparison import section

        with svc.errors():
            await ctx.report_progress(0, 1, "comparing: registration, lesion tracking, RECIST 1.1")
            c = await anyio.to_thread.run_sync(_compare, current_case_id, prior_case_ids, study_dates, targets,
                                               limiter=svc.workers)
            await ctx.report_progress(1, 1, "compared")
            return ComparisonResult(current_case_id=current_case_id, prior_case_ids=prior_case_ids,
                                    summary=section(c).sentences, recist=c.recist, comparison=c)

    @server.tool(title="Key image of a lesion")
    def key_image(case_id: CaseId, lesion_id: LesionId) -> Image:
        """The lesion's key image: the axial slice through its long axis, organ window, contour and RECIST
        axes drawn, patient right on image left (PNG)."""
        with svc.errors():
            return Image(data=_key_png(case_id, lesion_id), format="png")

    def _key_png(case_id: str, lesion_id: str) -> bytes:
        f, out = svc.findings(case_id)
        les = next((x for x in f.lesions if x.id == lesion_id), None)
        if les is None:
            raise InputError(f"no lesion {lesion_id!r} in case {case_id}; lesions are {[x.id for x in f.lesions]}")
        if not les.key_image:
            raise InputError(f"lesion {lesion_id} has no key image")
        p = (out / les.key_image).resolve()
        if not p.is_relative_to(out.resolve()) or not p.is_file():
            raise InputError(f"key image of lesion {lesion_id} not found in this case")
        return p.read_bytes()

    @server.tool(title="Question types")
    def list_question_types() -> QuestionTypes:
        """The question types (subtypes) ask answers from measurements, with their parameters and an example."""
        from reasoning.vqa import GROUPS, SUBTYPES

        return QuestionTypes(groups=list(GROUPS), types=[
            QuestionType(name=s.name, group=s.group, answer_type=s.answer_type, params=list(s.params),
                         definition=s.definition, example=s.example, source=s.source) for s in SUBTYPES.values()])

    @server.tool(title="Segmentation tasks")
    def list_segmentation_tasks() -> SegmentationTasks:
        """What analyze_ct can segment when no masks are given: backends and TotalSegmentator tasks."""
        from perception.segment import BACKENDS
        from perception.segment.totalseg import TASKS, UNAVAILABLE, available

        return SegmentationTasks(
            backends=[b for b in BACKENDS if b != "masks"],
            tasks=[SegmentationTask(name=t.name, what=t.what, modes=(["fast", "full"] if t.fast_datasets else ["full"]),
                                    datasets=list(t.datasets)) for t in TASKS.values()],
            unavailable=[UnavailableTask(name=k, reason=v) for k, v in UNAVAILABLE.items()], installed=available())

    # --- resources
    def _resource(fn, *args):
        try:
            return fn(*args)
        except HTTPException as e:
            raise ResourceError(redact_text(str(e.detail), svc.display)) from None
        except RadagentError as e:
            raise ResourceError(redact_text(str(e), svc.display)) from None

    @server.resource("radagent://cases/{case_id}/findings.json", name="findings.json", mime_type="application/json",
                     description="the case's findings.json")
    def findings_json(case_id: str) -> str:
        return _resource(lambda: (store.done(case_id)[1] / "findings.json").read_text())

    @server.resource("radagent://cases/{case_id}/comparison.json", name="comparison.json",
                     mime_type="application/json", description="the case's comparison with its priors (compare_studies)")
    def comparison_json(case_id: str) -> str:
        def read() -> str:
            p = store.done(case_id)[1] / "comparison.json"
            if not p.is_file():
                raise InputError(f"case {case_id} has not been compared with a prior (compare_studies)")
            return p.read_text()

        return _resource(read)

    @server.resource("radagent://cases/{case_id}/report.md", name="report.md", mime_type="text/markdown",
                     description="the case's structured report (drafted on first read)")
    def report_md(case_id: str) -> str:
        return _resource(lambda: _drafted(case_id, "structured").text)

    @server.resource("radagent://cases/{case_id}/key-images/{lesion_id}.png", name="key image", mime_type="image/png",
                     description="a lesion's key image (PNG)")
    def key_image_png(case_id: str, lesion_id: str) -> bytes:
        return _resource(_key_png, case_id, lesion_id)

    server.radagent_service = svc  # type: ignore[attr-defined]  # for tests and the CLI
    return server


def http_app(server: MCPServer, settings: ServerSettings, host: str = "127.0.0.1"):
    """The streamable-HTTP app at /mcp behind the HTTP API's token guard (agent.api.security.Guard: the
    same bearer token and constant-time check as `radagent serve`, 401 before any body is read)."""
    from agent.api.security import Guard

    return Guard(server.streamable_http_app(host=host), token=settings.token)

