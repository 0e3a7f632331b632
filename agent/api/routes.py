"""The API's routes over the case service (agent.case): cases, results, questions.

Each route only parses its request, calls the case service or the case store, and renders the
answer; nothing here measures, drafts or answers on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from perception.schema import Findings
from reasoning.claims import Verification

from .models import (AskRequest, AskResponse, CaseInfo, CaseRecord, ChatRequest, CompareRequest, LesionSummary,
                     PathCaseRequest, VerifyRequest, ViewerInfo, validate_mask_label)
from .security import REPORT_CSP, redact, redact_text, refuse, resolve_in_root
from .sessions import Sessions
from .settings import LESION_ID_PATTERN, MiB, ServerSettings
from .store import CaseStore, failed_status, now, run_analysis
from .uploads import form_value, place_uploads, receive_upload

log = logging.getLogger("radagent.api")

ChatFactory = Callable[[Findings, ServerSettings], Any]


def default_chat_factory(findings: Findings, settings: ServerSettings) -> Any:
    """The case service's chat engine: the tool-calling agent with the server's --llm, deterministic
    answers (with follow-ups) without; when the agent cannot be built, deterministic with the reason
    in ``.note``."""
    from agent import case as case_service
    from radagent.errors import RadagentError

    llm = case_service.LLMSettings(url=settings.llm_url, model=settings.model,
                                          timeout_s=settings.llm_timeout_s) if settings.llm_url else None
    try:
        return case_service.chat(findings, llm)
    except RadagentError as e:  # e.g. langchain missing
        log.warning("chat agent unavailable (%s): answering deterministically", e)
        session = case_service.chat(findings, None)
        session.note = f"the chat agent is unavailable ({e}); answered deterministically"
        return session


def chat_mode(session: Any) -> str:
    """deterministic for the case service's chat engine without an LLM; agent otherwise."""
    from reasoning.agent import ChatSession

    return "deterministic" if isinstance(session, ChatSession) and session.llm_url is None else "agent"


def _jsonable(o: Any) -> Any:
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    return str(o)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=_jsonable, ensure_ascii=False)}\n\n".encode()


class Capacity:
    """Analyses admitted and not yet ended (queued, running, or past their deadline but still in a
    worker thread): at most workers + max_queued; past it new cases are refused with 503."""

    def __init__(self, limit: int):
        self.limit, self.n, self._lock = limit, 0, threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.n >= self.limit:
                raise HTTPException(503, f"the server is busy: {self.n} analyses running or queued (limit "
                                         f"{self.limit}: workers + max_queued); try again later",
                                    headers={"Retry-After": "30"})
            self.n += 1

    def give(self, *_: Any) -> None:
        with self._lock:
            self.n -= 1


@dataclass(frozen=True)
class ApiContext:
    """What the routes share: settings, case storage, chat sessions, the analysis executor."""

    settings: ServerSettings
    store: CaseStore
    sessions: Sessions
    executor: ThreadPoolExecutor
    make_chat: ChatFactory
    upload_limit: int
    max_unzipped: int
    capacity: Capacity


def add_routes(api: APIRouter, ctx: ApiContext) -> None:
    """Register the case, result and question routes on ``api`` (a router behind the token check)."""
    settings, store, sessions, executor, make_chat = ctx.settings, ctx.store, ctx.sessions, ctx.executor, ctx.make_chat
    limit, max_unzipped = ctx.upload_limit, ctx.max_unzipped

    capacity = ctx.capacity

    # --- cases
    @contextlib.contextmanager
    def _new_case() -> Iterator[tuple[str, Path]]:
        """A capacity slot and a staging folder for a new case, both released when creating it fails;
        once committed, the slot passes to the analysis (see _start)."""
        capacity.take()
        staging = None
        try:
            cid, staging = store.new_staging()
            yield cid, staging
        except BaseException:
            capacity.give()
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise

    async def _start(cid: str, wait: bool, status_code_done: int = 201) -> JSONResponse:
        """Queue the analysis (a capacity slot was taken by the caller; the worker gives it back when its
        thread ends, even past the deadline)."""
        try:
            fut = executor.submit(run_analysis, store, cid, settings.analysis_timeout_s)
        except BaseException:
            capacity.give()
            raise
        fut.add_done_callback(capacity.give)
        if not wait:
            return JSONResponse(store.load(cid).info.model_dump(mode="json"), status_code=202)
        wrapped = asyncio.wrap_future(fut)
        while True:  # ends with the worker, or earlier when the deadline marks the case failed
            await asyncio.wait({wrapped}, timeout=0.25)
            rec = await run_in_threadpool(store.load, cid)
            if rec.info.status not in ("queued", "running"):
                break
        if rec.info.status == "failed":
            await run_in_threadpool(store.delete, cid)
            return JSONResponse({"detail": rec.info.error}, status_code=failed_status(rec.info.error_kind))
        return JSONResponse(rec.info.model_dump(mode="json"), status_code=status_code_done)

    wait_q = Query(False, description="answer when the analysis has ended (201, or 422 with the input error and the "
                                      "case removed) instead of at once (202)")
    created = {201: {"model": CaseInfo, "description": "analyzed (wait=true)"},
               202: {"model": CaseInfo, "description": "queued"},
               413: {"description": "body larger than --max-upload-mb"},
               503: {"description": "too many analyses running or queued (Retry-After)"},
               422: {"description": "unusable input, the file named"}}

    @api.post("/cases", tags=["cases"], status_code=202, responses=created, openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["ct", "masks"], "properties": {
                "ct": {"type": "string", "format": "binary", "description": "CT, .nii or .nii.gz"},
                "masks": {"type": "string", "format": "binary",
                          "description": "multilabel .nii/.nii.gz, or a .zip of binary mask files named by structure"},
                "class_map": {"type": "string", "format": "binary", "description": "JSON {label id: name}"},
                "mask_label": {"type": "string", "description": "what a single binary mask file holds, when its file "
                                                                "name does not say it (as radagent analyze --mask-label)"}
                }}}}}})
    async def create_case_upload(request: Request, wait: bool = wait_q) -> JSONResponse:
        """Create a case from uploaded files (multipart/form-data) and analyze it."""
        cl = request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > limit:
            raise refuse(413, f"upload of {int(cl) / MiB:.1f} MiB is larger than the server's limit of "
                               f"{limit / MiB:.3g} MiB (--max-upload-mb)")
        with _new_case() as (cid, staging):
            uploads = await receive_upload(request, staging, limit)
            mask_label = form_value(uploads, "mask_label")
            if mask_label is not None:
                try:
                    validate_mask_label(mask_label)
                except ValueError as e:
                    raise refuse(422, str(e)) from None
            paths, display, inputs = await run_in_threadpool(place_uploads, uploads, staging, max_unzipped)
            if mask_label is not None:
                inputs["mask_label"] = mask_label
            display[str(store.root / cid)] = "<case>"
            display[str(staging)] = "<case>"
            rec = CaseRecord(info=CaseInfo(id=cid, status="queued", source="upload", inputs=inputs, created=now()),
                              paths={k: v.replace(str(staging), str(store.root / cid), 1) for k, v in paths.items()},
                              display={k.replace(str(staging), str(store.root / cid), 1): v for k, v in display.items()},
                              mask_label=mask_label)
            store.commit(staging, rec)
        return await _start(cid, wait)

    @api.post("/cases/from-path", tags=["cases"], status_code=202, responses={
        **created, 403: {"description": "path outside the data root (or inside the case storage)"}})
    async def create_case_from_path(req: PathCaseRequest, wait: bool = wait_q) -> JSONResponse:
        """Create a case from files already inside the server's data root and analyze it."""
        root = settings.data_root
        forbidden = (store.root,)
        paths = {}
        for role, given in (("ct", req.ct), ("masks", req.masks), ("class_map", req.class_map)):
            if given is not None:
                paths[role] = str(await run_in_threadpool(resolve_in_root, root, given, role, forbidden))
        inputs = {k: str(Path(v).relative_to(root)) for k, v in paths.items()}
        if req.mask_label is not None:
            inputs["mask_label"] = req.mask_label
        with _new_case() as (cid, staging):
            display = {str(root) + "/": "", str(root): "<data root>", str(store.root / cid): "<case>"}
            rec = CaseRecord(info=CaseInfo(id=cid, status="queued", source="path", inputs=inputs, created=now()),
                              paths=paths, display=display, mask_label=req.mask_label, dicom_out=req.dicom_out)
            store.commit(staging, rec)
        return await _start(cid, wait)

    @api.get("/cases", tags=["cases"])
    def list_cases() -> list[CaseInfo]:
        return store.list()

    @api.get("/cases/{case_id}", tags=["cases"], responses={404: {"description": "unknown case"}})
    def get_case(case_id: str) -> CaseInfo:
        return store.load(case_id).info

    @api.delete("/cases/{case_id}", tags=["cases"], status_code=204, responses={404: {"description": "unknown case"}})
    def delete_case(case_id: str) -> Response:
        store.delete(case_id)
        sessions.drop_case(case_id)
        return Response(status_code=204)

    # --- results
    @api.get("/cases/{case_id}/findings", tags=["results"], responses={
        200: {"content": {"application/json": {}, "text/markdown": {}}, "description": "findings.json or findings.md"},
        409: {"description": "still being analyzed"}})
    def get_findings(case_id: str, format: Literal["json", "md"] = "json") -> FileResponse:
        _, out = store.done(case_id)
        if format == "md":
            return FileResponse(out / "findings.md", media_type="text/markdown; charset=utf-8")
        return FileResponse(out / "findings.json", media_type="application/json")

    @api.get("/cases/{case_id}/lesions", tags=["results"])
    def list_lesions(case_id: str) -> list[LesionSummary]:
        f, _ = store.findings(case_id)
        return [LesionSummary(id=les.id, organ=les.organ, kind=les.kind, volume_ml=les.volume_ml,
                              long_axis_mm=les.long_axis_mm, short_axis_mm=les.short_axis_mm, mean_hu=les.mean_hu,
                              segments=les.segments,
                              key_image_url=f"/cases/{case_id}/lesions/{les.id}/key-image" if les.key_image else None)
                for les in f.lesions]

    @api.get("/cases/{case_id}/lesions/{lesion_id}/key-image", tags=["results"], response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the key image"}})
    def key_image(case_id: str, lesion_id: str = PathParam(pattern=LESION_ID_PATTERN)) -> FileResponse:
        """The axial slice through the lesion's long axis, contour and axes drawn."""
        f, out = store.findings(case_id)
        les = next((x for x in f.lesions if x.id == lesion_id), None)
        if les is None:
            raise refuse(404, f"no lesion {lesion_id!r} in case {case_id}; lesions are {[x.id for x in f.lesions]}")
        if not les.key_image:
            raise refuse(404, f"lesion {lesion_id} has no key image")
        p = (out / les.key_image).resolve()
        if not p.is_relative_to(out.resolve()) or not p.is_file():
            raise refuse(404, f"key image of lesion {lesion_id} not found in this case")
        return FileResponse(p, media_type="image/png")

    @api.get("/cases/{case_id}/report", tags=["results"], responses={
        200: {"content": {"text/html": {}, "text/markdown": {}, "application/json": {}}},
        400: {"description": "engine=llm on a server started without --llm"}})
    def get_report(case_id: str, format: Literal["html", "md", "json"] = "html",
                   engine: Literal["auto", "template", "llm"] = Query("auto", description="auto: llm with --llm"),
                   style: Literal["structured", "narrative"] = "structured") -> Response:
        """The report (drafted once per engine and style, then kept in the case folder)."""
        from agent import case as case_service

        _, out = store.done(case_id)
        if engine == "llm" and not settings.llm_url:
            raise refuse(400, "engine=llm: the server was started without --llm; use engine=template")
        eng = "llm" if engine == "llm" or (engine == "auto" and settings.llm_url) else "template"
        folder = out / "reports" / f"{eng}-{style}"
        headers = {}
        if not (folder / f"report.{format}").is_file():
            llm = case_service.LLMSettings(url=settings.llm_url, model=settings.model,
                                          timeout_s=settings.llm_timeout_s) if eng == "llm" else None
            cmp = _comparison(out)
            images = {f"comparison/{p.name}": p.read_bytes() for p in sorted((out / "comparison").glob("*.png"))} \
                if cmp is not None else None
            rep = case_service.report(case_service.load(out), llm, style, comparison=cmp, comparison_pngs=images)
            content = rep.files[f"report.{format}"]
            if rep.fallback_reason:  # a fallback is not kept: the next request tries the LLM again
                headers["X-Radagent-Report-Fallback"] = re.sub(r"[^\x20-\x7e]", "?", rep.fallback_reason)[:300]
            else:
                with store.case_lock(case_id):
                    if (store.root / case_id / "case.json").is_file():
                        case_service.write_report(rep, folder)
        else:
            content = (folder / f"report.{format}").read_text()
        media = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8", "json": "application/json"}
        if format == "html":
            headers["Content-Security-Policy"] = REPORT_CSP
        headers["X-Radagent-Report-Engine"] = eng
        return Response(content, media_type=media[format], headers=headers)

    # --- questions
    @api.post("/cases/{case_id}/ask", tags=["questions"], responses={
        400: {"description": "mode=agent on a server without --llm"}, 422: {"description": "malformed question"}})
    def ask(case_id: str, req: AskRequest) -> AskResponse:
        """Answer one question: structured (subtype + params) and no-LLM questions deterministically
        (agent.case.ask); text questions by the chat agent when the server has --llm (mode=auto)."""
        from agent import case as case_service

        f, out = store.findings(case_id)
        cmp = _comparison(out)
        if req.mode == "agent" and not settings.llm_url:
            raise refuse(400, "mode=agent: the server was started without --llm; use mode=deterministic or auto")
        if req.subtype is not None:
            try:
                q = case_service.question(req.subtype, req.params)
            except ValidationError as e:
                raise refuse(422, "; ".join(f"{'.'.join(str(x) for x in d['loc']) or 'question'}: {d['msg']}"
                                             for d in e.errors())) from None
            return _det(f, q, req.choices, cmp)
        if req.mode == "deterministic" or cmp is not None:  # a comparison: answered from it (the chat agent has none)
            return _det(f, req.question, req.choices, cmp)
        session = make_chat(f, settings)
        if chat_mode(session) == "deterministic" or req.choices:
            r = _det(f, req.question, req.choices)
            return r.model_copy(update={"note": getattr(session, "note", None)})
        try:
            turn = session.ask(req.question)
        except Exception as e:  # noqa: BLE001 - the LLM side failed: reported as a bad gateway, and logged
            log.exception("case %s: chat agent failed", case_id)
            raise refuse(502, f"the chat agent failed ({type(e).__name__}: {str(e)[:300]})") from None
        return AskResponse(mode="agent", text=str(getattr(turn, "text", turn)))

    @api.post("/cases/{case_id}/verify", tags=["questions"], responses={
        200: {"description": "each sentence with its claims and verdicts; ok is false when a claim is unsupported"}})
    def verify(case_id: str, req: VerifyRequest) -> Verification:
        """Check every claim of a report text against the case's findings (agent.case.verify)."""
        from agent import case as case_service

        f, out = store.findings(case_id)
        if not req.text.strip():
            raise refuse(422, "text: the report text is empty")
        return case_service.verify(f, req.text, _comparison(out))

    def _det(f: Findings, q: Any, choices: list[str] | None, comparison: Any = None) -> AskResponse:
        from agent import case as case_service

        try:
            a = case_service.ask(f, q, choices, comparison=comparison)
        except ValueError as e:  # malformed choices
            raise refuse(422, str(e)) from None
        return AskResponse(mode="deterministic", text=a.line(), answer=a.model_dump(mode="json"))

    @api.post("/cases/{case_id}/chat", tags=["questions"], response_class=StreamingResponse, responses={
        200: {"content": {"text/event-stream": {}}, "description": "events: session, token (repeated), final; "
                                                                     "error instead of final on failure"}})
    async def chat(case_id: str, req: ChatRequest) -> StreamingResponse:
        """Stream a chat answer as Server-Sent Events. Each event's data is JSON: ``session``
        {session_id, mode}; ``token`` {text}; ``final`` {text, ...}; ``error`` {detail}."""
        f, _ = await run_in_threadpool(store.findings, case_id)
        sid, session = sessions.get(case_id, req.session_id)
        if session is None:
            session = await run_in_threadpool(make_chat, f, settings)
            sessions.put(case_id, sid, session)

        async def events() -> AsyncIterator[bytes]:
            yield _sse("session", {"session_id": sid, "mode": chat_mode(session),
                                   "note": getattr(session, "note", None)})
            try:
                final = False
                async for ev in session.astream(req.message):
                    kind = ev.get("type", "token") if isinstance(ev, dict) else "token"
                    payload = ev if isinstance(ev, dict) else {"type": "token", "text": str(ev)}
                    if kind == "final" and "answer" not in payload and isinstance(payload.get("turn"), dict):
                        payload = {**payload, "answer": payload["turn"].get("answer")}
                    yield _sse(kind if kind in ("token", "final") else "token", payload)
                    final = final or kind == "final"
                if not final:
                    yield _sse("error", {"detail": "the chat ended without a final answer"})
            except Exception as e:  # noqa: BLE001 - reported to the client as an event, and logged
                log.exception("case %s: chat failed", case_id)
                yield _sse("error", {"detail": f"chat failed ({type(e).__name__}: {str(e)[:300]})"})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # --- viewer (the web page's NiiVue viewer): gzip NIfTI volumes on the CT's grid, decoded in the browser
    # (nothing is rendered here). Built once per case from the case's own CT and masks, with the analysis'
    # intake rule (agent.case.viewer_volumes), and kept in out/viewer/; a gzip NIfTI CT is sent as it is.
    def _viewer(case_id: str) -> tuple[CaseRecord, Path, dict]:
        from agent import case as case_service

        rec, out = store.done(case_id)
        folder = out / "viewer"
        if not (folder / "legend.json").is_file():
            if not rec.paths.get("masks"):
                raise refuse(404, f"case {case_id} has no masks to show")
            f, _ = store.findings(case_id)
            with store.case_lock(case_id):
                if not (folder / "legend.json").is_file():
                    case_service.viewer_volumes(rec.paths["ct"], rec.paths["masks"], f, folder,
                                                class_map=rec.paths.get("class_map"), mask_label=rec.mask_label)
        return rec, folder, json.loads((folder / "legend.json").read_text())

    def _volume_path(rec: CaseRecord, folder: Path, legend: dict, name: str) -> Path:
        return Path(rec.paths["ct"]) if name == "ct" and legend["ct"] is None else folder / f"{name}.nii.gz"

    @api.get("/cases/{case_id}/viewer", tags=["results"], responses={404: {"description": "unknown case, no masks"}})
    def viewer_info(case_id: str) -> ViewerInfo:
        """The viewer's volumes (URLs, sizes), their legends, the window presets and the CT's geometry."""
        from perception.registry import WINDOWS

        rec, folder, legend = _viewer(case_id)
        f, _ = store.findings(case_id)
        names = ("ct", "organs", "lesions")
        return ViewerInfo(volumes={n: f"/cases/{case_id}/viewer/{n}.nii.gz" for n in names},
                          sizes_bytes={n: _volume_path(rec, folder, legend, n).stat().st_size for n in names},
                          organs=legend["organs"], lesions=legend["lesions"],
                          windows={"abdomen": WINDOWS["default"], "liver": WINDOWS["liver"], "lung": WINDOWS["lung"],
                                   "bone": WINDOWS["bone"]},
                          affine=f.study.affine, shape=f.study.shape, axial_axis=f.study.axial_axis)

    @api.get("/cases/{case_id}/viewer/{name}.nii.gz", tags=["results"], response_class=Response,
             responses={200: {"content": {"application/gzip": {}}, "description": "a gzip NIfTI volume"}})
    def viewer_volume(case_id: str, name: Literal["ct", "organs", "lesions"]) -> FileResponse:
        """The CT (int HU as stored), the organ labels or the lesion labels, as gzip NIfTI."""
        rec, folder, legend = _viewer(case_id)
        p = _volume_path(rec, folder, legend, name)
        if not p.is_file():
            raise refuse(404, f"the {name} volume of case {case_id} is no longer there")
        return FileResponse(p, media_type="application/gzip", headers={"Cache-Control": "private, max-age=3600"})

    # --- follow-up (issue 16): the case compared with prior cases of the same patient (agent.case.compare);
    # out/comparison.json then answers change-over-time questions (/ask) and adds the COMPARISON section (/report)
    def _comparison(out: Path) -> Any:
        from reasoning.comparison import beside

        return beside(out)

    @api.post("/cases/{case_id}/compare", tags=["follow-up"], responses={
        200: {"description": "the Comparison (comparison.json, schema: `radagent schema --comparison`)"},
        404: {"description": "unknown case or prior"}, 409: {"description": "a case is still being analyzed"},
        422: {"description": "a prior repeated or equal to the case, or inputs that cannot be compared"}})
    def compare(case_id: str, req: CompareRequest) -> JSONResponse:
        """Compare the case (the current study) with its priors: registration, lesion tracking, RECIST 1.1.
        The result is kept as the case's comparison.json (replacing an earlier one); server paths are not shown."""
        from agent import case as case_service
        from agent.files import add_files_atomically
        from radagent.errors import InputError

        if case_id in req.priors or len(set(req.priors)) != len(req.priors):
            raise refuse(422, f"priors {req.priors}: each prior once, and not the case {case_id} itself")
        rec, out = store.done(case_id)
        priors = [store.done(p) for p in req.priors]
        display = dict(rec.display)
        for p, (prec, pout) in zip(req.priors, priors):
            display.update({k: v.replace("<case>", f"<case {p}>") for k, v in prec.display.items()})
            display[str(pout)] = f"<case {p}>/out"
        display[str(out)] = f"<case {case_id}>/out"
        try:
            c = case_service.compare([pout for _, pout in priors], out)
        except InputError as e:
            raise refuse(422, redact_text(str(e), display)) from None
        images = case_service.comparison_images(c, case_service.load(out))
        shown = type(c).model_validate(redact(c.model_dump(mode="json"), display))
        with store.case_lock(case_id):
            add_files_atomically(out, {"comparison.json": shown.to_json() + "\n", **images})
            shutil.rmtree(out / "reports", ignore_errors=True)  # reports drafted before lack the COMPARISON section
        return JSONResponse(json.loads(shown.to_json()))

    @api.get("/cases/{case_id}/comparison", tags=["follow-up"], responses={
        404: {"description": "unknown case, or not compared (POST /cases/{id}/compare first)"}})
    def get_comparison(case_id: str) -> JSONResponse:
        _, out = store.done(case_id)
        c = _comparison(out)
        if c is None:
            raise refuse(404, f"case {case_id} has not been compared with a prior (POST /cases/{case_id}/compare)")
        return JSONResponse(json.loads(c.to_json()))

    # --- DICOM SEG + SR and FHIR (issue 15) --------------------------------------------------------------
    dicom_media = {"seg": ("dicom/seg.dcm", "application/dicom"), "sr": ("dicom/sr.dcm", "application/dicom"),
                   "fhir": ("fhir_bundle.json", "application/fhir+json")}

    @api.get("/cases/{case_id}/dicom/{name}", tags=["results"], response_class=Response, responses={
        200: {"content": {"application/dicom": {}, "application/fhir+json": {}},
              "description": "the DICOM SEG, the TID 1500 SR, or the FHIR Bundle"},
        404: {"description": "unknown case, or analyzed without dicom_out"}})
    def get_dicom_output(case_id: str, name: Literal["seg", "sr", "fhir"]) -> FileResponse:
        """The case's DICOM SEG (``seg``), DICOM SR TID 1500 (``sr``) or FHIR Bundle (``fhir``); the case
        must have been created with ``dicom_out: true`` (a DICOM CT)."""
        _, out = store.done(case_id)
        rel, media = dicom_media[name]
        if not (out / rel).is_file():
            raise refuse(404, f"case {case_id} has no {rel}: create the case with dicom_out: true (a DICOM CT series)")
        return FileResponse(out / rel, media_type=media)
