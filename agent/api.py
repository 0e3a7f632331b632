"""HTTP API and web chat page over agent.pipeline and reasoning: what `radagent serve` runs.

``create_app(settings)`` builds the FastAPI app. Every case lives in its own folder
``<cases_dir>/<id>/`` (id: 32 random hex digits) holding ``case.json`` (status, inputs),
``input/`` (uploads only) and ``out/`` (findings.json, findings.md, key_images/, reports/).

Endpoints (all but ``/``, ``/static/*`` and ``/health`` need ``Authorization: Bearer <token>``)::

    GET    /                                    web page shell (no data in it)
    GET    /static/{app.js,app.css}             its script and style
    GET    /health                              liveness
    GET    /openapi.json                        OpenAPI schema
    GET    /cases                               list cases
    POST   /cases                               multipart upload: ct (.nii/.nii.gz), masks (.nii/.nii.gz or
                                                .zip of mask files), optional class_map (.json)
    POST   /cases/from-path                     JSON {ct, masks, class_map?}: paths inside the data root
    GET    /cases/{id}                          status (queued, running, done, failed) and summary
    DELETE /cases/{id}                          remove the case folder
    GET    /cases/{id}/findings?format=json|md  findings.json / findings.md
    GET    /cases/{id}/lesions                  lesion summaries with their key-image URLs
    GET    /cases/{id}/lesions/{lesion}/key-image   PNG
    GET    /cases/{id}/report?format=md|html|json&engine=auto|template|llm&style=...
    POST   /cases/{id}/ask                      one question: deterministic (reasoning.vqa) or the agent
    POST   /cases/{id}/chat                     Server-Sent Events: session, token..., final (or error)

Both create endpoints answer 202 at once and analyze in a worker thread; ``?wait=true`` answers
when the analysis ends (201, or the error: an InputError is 422 and the case is removed).

Security: constant-time bearer-token check in an ASGI guard in front of the app (401 before any
body is read; the route dependency checks again and documents it in the schema); non-upload
bodies capped at 1 MiB; the upload body is counted while it streams and refused with 413 past
``max_upload_mb`` (Content-Length checked first; zip members are counted again after
decompression); an upload is staged in a hidden folder that is removed on any error;
server-side paths must resolve (symlinks followed) inside the data root and outside the case
storage, and every symlink inside a referenced folder too; case and lesion ids are checked
against patterns and files are only served from the case's own folder; server paths are replaced
by display names in findings and error messages; the page is served with a strict CSP and never
puts the token in a URL.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, AsyncIterator, Callable, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from perception.errors import InputError
from perception.schema import Findings

log = logging.getLogger("radagent.api")

WEB_DIR = Path(__file__).parent / "web"
WEB_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CASE_ID_RE = re.compile(r"[0-9a-f]{32}")
SESSION_ID_RE = re.compile(r"[0-9a-f]{32}")
LESION_ID_PATTERN = r"^L[0-9]{1,5}$"
MiB = 1024 * 1024
UPLOAD_FIELDS = {"ct": (".nii.gz", ".nii"), "masks": (".nii.gz", ".nii", ".zip"), "class_map": (".json",)}
MAX_ZIP_MEMBERS = 5000
MAX_PATH_ENTRIES = 20000
CHUNK = 1 << 20


# --- settings -------------------------------------------------------------------------------------
class ServerSettings(BaseModel):
    """What `radagent serve` is started with. Paths are resolved once, here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_root: Path = Field(description="server-side folder that path references must stay inside")
    token: str = Field(repr=False, description="bearer token every API call must send")
    cases_dir: Path | None = Field(None, validate_default=True,
                                   description="where case folders are kept (default: DATA_ROOT/.radagent-cases)")
    max_upload_mb: float = Field(1024.0, gt=0, description="largest request body accepted (MiB)")
    max_unzipped_mb: float | None = Field(None, gt=0, description="largest total size of a masks zip once unpacked "
                                                                  "(MiB; default 4 x max_upload_mb)")
    llm_url: str | None = Field(None, description="OpenAI-compatible server for the chat agent and LLM reports")
    model: str | None = None
    workers: int = Field(1, ge=1, le=64, description="analyses run at once")
    max_chat_sessions: int = Field(256, ge=1)

    @field_validator("data_root")
    @classmethod
    def _root(cls, v: Path) -> Path:
        p = Path(v).expanduser()
        if not p.is_dir():
            raise ValueError(f"{p}: expected an existing folder, found {'a file' if p.exists() else 'nothing'}")
        return p.resolve()

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        v = v.strip()
        if len(v) < 8 or any(c.isspace() for c in v):
            raise ValueError(f"expected a token of at least 8 characters without spaces, got {len(v)} characters")
        return v

    @field_validator("cases_dir")
    @classmethod
    def _cases(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        root = info.data.get("data_root")
        if v is None:
            return None if root is None else root / ".radagent-cases"
        p = Path(v).expanduser().resolve()
        if root is not None and p == root:
            raise ValueError(f"{p}: the case storage must not be the data root itself (use a sub-folder or another folder)")
        if p.exists() and not p.is_dir():
            raise ValueError(f"{p}: expected a folder, found a file")
        return p

    @model_validator(mode="after")
    def _zip_default(self) -> "ServerSettings":
        if self.max_unzipped_mb is None:
            object.__setattr__(self, "max_unzipped_mb", 4 * self.max_upload_mb)
        return self

    @property
    def cases(self) -> Path:
        assert self.cases_dir is not None  # set by the validator
        return self.cases_dir


# --- API models -----------------------------------------------------------------------------------
CaseStatus = Literal["queued", "running", "done", "failed"]


class CaseInfo(BaseModel):
    """A case as the API shows it (no server paths)."""

    id: str
    status: CaseStatus
    source: Literal["upload", "path"]
    inputs: dict[str, str] = Field(description="role (ct, masks, class_map) -> upload file name or path in the data root")
    created: str = Field(description="UTC, ISO 8601")
    error: str | None = None
    error_kind: Literal["input", "internal"] | None = None
    n_lesions: int | None = None
    n_organs: int | None = None
    warnings: list[str] = []
    timings_s: dict[str, float] = {}


class _CaseRecord(BaseModel):
    """case.json: the CaseInfo plus the server-side paths the analysis reads (never sent)."""

    model_config = ConfigDict(extra="forbid")

    info: CaseInfo
    paths: dict[str, str]
    display: dict[str, str] = Field(description="server path -> the name shown for it")


class PathCaseRequest(BaseModel):
    """A case from files already on the server, inside its data root."""

    model_config = ConfigDict(extra="forbid")

    ct: str = Field(description="CT .nii/.nii.gz file or DICOM folder, relative to the data root (or absolute inside it)")
    masks: str = Field(description="folder of binary NIfTI masks, or a multilabel NIfTI")
    class_map: str | None = Field(None, description="JSON {label id: name} for a multilabel mask")


class LesionSummary(BaseModel):
    id: str
    organ: str | None
    kind: str
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    mean_hu: float
    segments: list[str]
    key_image_url: str | None


class AskRequest(BaseModel):
    """A question as text (free or multiple choice) or as a subtype with parameters."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(None, max_length=4000)
    choices: list[str] | None = Field(None, max_length=10, description="multiple-choice options 'A) ...'")
    subtype: str | None = Field(None, description="DeepTumorVQA subtype name instead of question text")
    params: dict[str, str | list[str]] = Field({}, description="parameters of the subtype (organ, lesion_id, organs, ...)")
    mode: Literal["auto", "deterministic", "agent"] = Field(
        "auto", description="auto: the agent when the server has --llm, else deterministic")

    @model_validator(mode="after")
    def _one(self) -> "AskRequest":
        if (self.question is None) == (self.subtype is None):
            raise ValueError("give either 'question' or 'subtype' (with 'params'), not both and not neither")
        if self.params and self.subtype is None:
            raise ValueError("'params' needs 'subtype'")
        return self


class AskResponse(BaseModel):
    mode: Literal["deterministic", "agent"]
    text: str = Field(description="the answer in one line for people")
    answer: dict[str, Any] | None = Field(None, description="deterministic mode: the reasoning.vqa Answer object")
    note: str | None = Field(None, description="why the deterministic path answered although an agent was configured")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4000)
    session_id: str | None = Field(None, description="continue this conversation (from the 'session' event)")

    @field_validator("session_id")
    @classmethod
    def _sid(cls, v: str | None) -> str | None:
        if v is not None and not SESSION_ID_RE.fullmatch(v):
            raise ValueError("expected 32 lowercase hex characters")
        return v


# --- chat sessions ----------------------------------------------------------------------------------
class _Turn(BaseModel):
    text: str
    answer: dict[str, Any] | None = None


class DeterministicChat:
    """The no-LLM chat: each message answered by reasoning.vqa.answer (no conversation memory).
    Same interface as reasoning.agent.ChatSession: ``ask(msg) -> turn with .text``, ``astream(msg)``."""

    def __init__(self, findings: Findings, note: str | None = None):
        self.findings = findings
        self.note = note

    def ask(self, msg: str) -> _Turn:
        from reasoning.vqa import answer

        try:
            a = answer(self.findings, msg)
        except ValueError as e:  # malformed choices in the text
            return _Turn(text=f"cannot parse the question: {e}")
        return _Turn(text=a.line(), answer=a.model_dump(mode="json"))

    async def astream(self, msg: str) -> AsyncIterator[dict]:
        turn = self.ask(msg)
        for tok in re.findall(r"\S+\s*", turn.text):
            yield {"type": "token", "text": tok}
        yield {"type": "final", "text": turn.text, "answer": turn.answer}


ChatFactory = Callable[[Findings, "ServerSettings"], Any]


def default_chat_factory(findings: Findings, settings: ServerSettings) -> Any:
    """The tool-calling agent (reasoning.agent.ChatSession) when the server has --llm and the module
    imports; the deterministic chat otherwise (with the reason in ``.note``)."""
    if not settings.llm_url:
        return DeterministicChat(findings)
    try:
        from reasoning.agent import ChatSession
    except ImportError as e:
        log.warning("chat agent unavailable (%s): answering deterministically", e)
        return DeterministicChat(findings, note=f"the chat agent is unavailable ({e}); answered deterministically")
    return ChatSession(findings, llm_url=settings.llm_url, model=settings.model)


def _mode(session: Any) -> str:
    return "deterministic" if isinstance(session, DeterministicChat) else "agent"


class _Sessions:
    """Chat sessions in memory, per (case id, session id), least recently used dropped first."""

    def __init__(self, cap: int):
        self.cap = cap
        self._d: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cid: str, sid: str | None) -> tuple[str, Any | None]:
        with self._lock:
            if sid is not None and (cid, sid) in self._d:
                self._d.move_to_end((cid, sid))
                return sid, self._d[(cid, sid)]
        return secrets.token_hex(16), None

    def put(self, cid: str, sid: str, session: Any) -> None:
        with self._lock:
            self._d[(cid, sid)] = session
            self._d.move_to_end((cid, sid))
            while len(self._d) > self.cap:
                self._d.popitem(last=False)

    def drop_case(self, cid: str) -> None:
        with self._lock:
            for k in [k for k in self._d if k[0] == cid]:
                del self._d[k]


# --- paths and messages ---------------------------------------------------------------------------
def _refuse(status: int, msg: str) -> HTTPException:
    return HTTPException(status_code=status, detail=msg)


def resolve_in_root(root: Path, given: str, what: str, forbidden: tuple[Path, ...] = ()) -> Path:
    """The real path of ``given`` (relative to ``root``, or absolute) when it and every symlink
    under it stay inside ``root`` and outside ``forbidden``; 400/403/422 otherwise."""
    if not given or "\x00" in given or len(given) > 4096:
        raise _refuse(400, f"{what}: expected a path of 1 to 4096 characters without NUL bytes")
    p = Path(given)
    cand = p if p.is_absolute() else root / p
    try:
        real = cand.resolve(strict=False)
    except (OSError, RuntimeError) as e:
        raise _refuse(400, f"{what} {given!r}: cannot be resolved ({type(e).__name__})") from None
    if not real.is_relative_to(root):
        raise _refuse(403, f"{what} {given!r}: outside the data root; paths must stay inside it "
                           "('..', absolute paths elsewhere and symlinks leading out are refused)")
    for f in forbidden:
        if real.is_relative_to(f):
            raise _refuse(403, f"{what} {given!r}: inside the server's case storage, which cannot be referenced")
    if not real.exists():
        raise InputError(f"{what} {given!r}: not found in the data root")
    if real.is_dir():
        _check_tree(real, root, forbidden, what, given)
    return real


def _check_tree(top: Path, root: Path, forbidden: tuple[Path, ...], what: str, given: str) -> None:
    """Every symlink under ``top`` (followed into linked folders, once each) must stay inside root."""
    seen: set[Path] = set()
    stack = [top]
    n = 0
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            raise _refuse(400, f"{what} {given!r}: cannot list {d.name!r} ({e.strerror})") from None
        for e in entries:
            n += 1
            if n > MAX_PATH_ENTRIES:
                raise _refuse(400, f"{what} {given!r}: more than {MAX_PATH_ENTRIES} entries; expected a case folder")
            path = Path(e.path)
            if e.is_symlink():
                try:
                    target = path.resolve(strict=False)
                except (OSError, RuntimeError):
                    raise _refuse(400, f"{what} {given!r}: symlink {path.relative_to(top)} cannot be resolved") from None
                if not target.is_relative_to(root) or any(target.is_relative_to(f) for f in forbidden):
                    raise _refuse(403, f"{what} {given!r}: symlink {str(path.relative_to(top))!r} leads outside the "
                                       "data root; refused")
                if target.is_dir():
                    stack.append(target)
            elif e.is_dir(follow_symlinks=False):
                stack.append(path)


def _redact_text(s: str, display: dict[str, str]) -> str:
    for k in sorted(display, key=len, reverse=True):
        s = s.replace(k, display[k])
    return s


def _redact(obj: Any, display: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return _redact_text(obj, display)
    if isinstance(obj, dict):
        return {k: _redact(v, display) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_redact(v, display) for v in obj)
    return obj


def _client_name(filename: str | None) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())[:200]
    return name or "(unnamed)"


def _suffix(name: str, allowed: tuple[str, ...]) -> str | None:
    low = name.lower()
    return next((s for s in allowed if low.endswith(s)), None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- case storage ---------------------------------------------------------------------------------
class CaseStore:
    """Case folders under one root; case.json written atomically; a lock per case orders the
    analysis worker's writes against deletion."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._case_locks: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[str, Findings] = OrderedDict()

    def case_lock(self, cid: str) -> threading.Lock:
        with self._lock:
            return self._case_locks.setdefault(cid, threading.Lock())

    def folder(self, cid: str) -> Path:
        """The case's folder; 404 for a malformed id, a missing case, or anything but a real folder."""
        if not CASE_ID_RE.fullmatch(cid):
            raise _refuse(404, f"unknown case {cid[:64]!r} (case ids are 32 lowercase hex characters)")
        p = self.root / cid
        if p.is_symlink() or not p.is_dir() or not (p / "case.json").is_file():
            raise _refuse(404, f"unknown case {cid!r}")
        return p

    def load(self, cid: str) -> _CaseRecord:
        p = self.folder(cid)
        try:
            return _CaseRecord.model_validate_json((p / "case.json").read_text())
        except (OSError, ValidationError, ValueError):
            raise _refuse(404, f"unknown case {cid!r}") from None

    def save(self, rec: _CaseRecord, folder: Path | None = None) -> None:
        folder = folder or self.root / rec.info.id
        tmp = folder / f".case.json.tmp-{threading.get_ident()}"
        tmp.write_text(rec.model_dump_json(indent=2))
        os.replace(tmp, folder / "case.json")

    def new_staging(self) -> tuple[str, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        cid = secrets.token_hex(16)
        staging = self.root / f".staging-{cid}"
        staging.mkdir(mode=0o700)
        return cid, staging

    def commit(self, staging: Path, rec: _CaseRecord) -> None:
        self.save(rec, staging)
        os.rename(staging, self.root / rec.info.id)

    def delete(self, cid: str) -> None:
        p = self.folder(cid)
        with self.case_lock(cid):
            shutil.rmtree(p)
        with self._lock:
            self._cache.pop(cid, None)
            self._case_locks.pop(cid, None)

    def list(self) -> list[CaseInfo]:
        out = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.iterdir()):
            if CASE_ID_RE.fullmatch(p.name):
                try:
                    out.append(self.load(p.name).info)
                except HTTPException:
                    continue
        return sorted(out, key=lambda i: i.created)

    def done(self, cid: str) -> tuple[_CaseRecord, Path]:
        """The record and out/ folder of a finished case; 409 while it runs, its error when it failed."""
        rec = self.load(cid)
        st = rec.info.status
        if st in ("queued", "running"):
            raise _refuse(409, f"case {cid} is {st}; poll GET /cases/{cid} until its status is 'done'")
        if st == "failed":
            raise _refuse(422 if rec.info.error_kind == "input" else 500, rec.info.error or "analysis failed")
        return rec, self.root / cid / "out"

    def findings(self, cid: str) -> tuple[Findings, Path]:
        _, out = self.done(cid)
        with self._lock:
            f = self._cache.get(cid)
            if f is not None:
                self._cache.move_to_end(cid)
                return f, out
        f = Findings.model_validate_json((out / "findings.json").read_text())
        with self._lock:
            self._cache[cid] = f
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return f, out

    def recover(self) -> None:
        """At start: staging leftovers removed; cases a previous process left queued/running marked failed."""
        if not self.root.is_dir():
            return
        for p in self.root.iterdir():
            if p.name.startswith(".staging-") and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif CASE_ID_RE.fullmatch(p.name):
                try:
                    rec = self.load(p.name)
                except HTTPException:
                    continue
                if rec.info.status in ("queued", "running"):
                    rec.info.status, rec.info.error_kind = "failed", "internal"
                    rec.info.error = "the server stopped during the analysis; create the case again"
                    self.save(rec)


# --- the analysis job -----------------------------------------------------------------------------
def _run_analysis(store: CaseStore, cid: str) -> None:
    """Worker thread: analyze the case's inputs and write out/ atomically, unless deleted meanwhile."""
    from agent.pipeline import Timings, analyze_case, write_outputs_atomically
    from templates.render import render_findings_md

    lock = store.case_lock(cid)
    with lock:
        try:
            rec = store.load(cid)
        except HTTPException:
            return  # deleted before it started
        rec.info.status = "running"
        store.save(rec)
    folder = store.root / cid
    tm = Timings()
    try:
        findings, images = analyze_case(rec.paths["ct"], rec.paths["masks"], rec.paths.get("class_map"),
                                         timings=tm, key_images=True)
        findings = Findings.model_validate(_redact(findings.model_dump(mode="json"), rec.display))
        files = {"findings.json": findings.to_json() + "\n", "findings.md": render_findings_md(findings), **images}
        with lock:
            if not (folder / "case.json").is_file():
                return
            write_outputs_atomically(folder / "out", files, force=True)
            rec.info.status = "done"
            rec.info.n_lesions, rec.info.n_organs = len(findings.lesions), len(findings.organs)
            rec.info.warnings = list(findings.study.warnings)
            rec.info.timings_s = {k: round(v, 3) for k, v in tm.seconds.items()}
            store.save(rec)
        log.info("case %s analyzed: %d lesions (%.2f s)", cid, len(findings.lesions), sum(tm.seconds.values()))
    except Exception as e:  # noqa: BLE001 - recorded as the case's status, not swallowed
        input_err = isinstance(e, InputError)
        if not input_err:
            log.exception("case %s: analysis failed", cid)
        with lock:
            if not (folder / "case.json").is_file():
                return
            rec.info.status = "failed"
            rec.info.error_kind = "input" if input_err else "internal"
            rec.info.error = _redact_text(str(e), rec.display) if input_err else \
                f"internal error during the analysis ({type(e).__name__}); see the server log"
            shutil.rmtree(folder / "input", ignore_errors=True)
            store.save(rec)


# --- uploads ----------------------------------------------------------------------------------------
class _Upload:
    def __init__(self, field: str, filename: str, path: Path):
        self.field, self.filename, self.path = field, filename, path
        self.size = 0
        self.fh = open(path, "wb")


async def receive_upload(request: Request, staging: Path, limit: int) -> dict[str, _Upload]:
    """Stream a multipart/form-data body into ``staging`` (one file per field), counting bytes as
    they arrive: 413 past ``limit``, 400 for unknown or repeated fields, 415 for another body type."""
    from python_multipart import MultipartParser
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import parse_options_header

    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise _refuse(415, f"expected a multipart/form-data body with fields {', '.join(UPLOAD_FIELDS)}, "
                           f"found content type {ctype.decode(errors='replace') or 'none'!r}")
    uploads: dict[str, _Upload] = {}
    cur: dict[str, Any] = {}

    def on_part_begin() -> None:
        cur.clear()
        cur.update(headers={}, field=b"", value=b"", upload=None)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        cur["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        cur["value"] += data[start:end]

    def on_header_end() -> None:
        cur["headers"][cur["field"].decode("latin-1").strip().lower()] = cur["value"]
        cur["field"], cur["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(cur["headers"].get("content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if name not in UPLOAD_FIELDS:
            raise _refuse(400, f"unexpected form field {name[:64]!r}; expected {', '.join(UPLOAD_FIELDS)}")
        if name in uploads:
            raise _refuse(400, f"form field {name!r} given twice")
        if b"filename" not in disp:
            raise _refuse(400, f"form field {name!r}: expected a file, found a plain value")
        up = _Upload(name, _client_name(disp[b"filename"].decode("utf-8", "replace")), staging / f"upload-{name}")
        uploads[name] = up
        cur["upload"] = up

    def on_part_data(data: bytes, start: int, end: int) -> None:
        up = cur["upload"]
        up.fh.write(data[start:end])
        up.size += end - start

    def on_part_end() -> None:
        if cur.get("upload") is not None:
            cur["upload"].fh.close()

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _refuse(413, f"upload larger than the server's limit of {limit / MiB:.3g} MiB (--max-upload-mb)")
            if chunk:
                await run_in_threadpool(parser.write, chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise _refuse(400, f"malformed multipart body ({e})") from None
    finally:
        for up in uploads.values():
            up.fh.close()
    return uploads


def extract_masks_zip(zpath: Path, dest: Path, shown: str, max_bytes: int) -> None:
    """Unpack the NIfTI members of a masks zip flat into ``dest``: members with absolute or '..'
    paths, symlinks, duplicate names or more than ``max_bytes`` unpacked are refused."""
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"upload {shown!r} (masks): not a readable zip archive ({e})") from None
    dest.mkdir()
    names: set[str] = set()
    total = 0
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise InputError(f"upload {shown!r} (masks): {len(infos)} members, expected at most {MAX_ZIP_MEMBERS}")
        for info in infos:
            raw = info.filename
            parts = PurePosixPath(raw.replace("\\", "/")).parts
            if raw.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise InputError(f"upload {shown!r} (masks): member {raw[:200]!r} points outside the archive; refused")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(f"upload {shown!r} (masks): member {raw[:200]!r} is a symlink; refused")
            if info.is_dir() or not parts or "__MACOSX" in parts or parts[-1].startswith("."):
                continue
            base = parts[-1]
            if not _suffix(base, (".nii.gz", ".nii")):
                continue
            if base in names:
                raise InputError(f"upload {shown!r} (masks): two members named {base!r}; expected one file per structure")
            names.add(base)
            try:
                with zf.open(info) as src, open(dest / base, "wb") as dst:
                    while True:
                        buf = src.read(CHUNK)
                        if not buf:
                            break
                        total += len(buf)
                        if total > max_bytes:
                            raise _refuse(413, f"upload {shown!r} (masks): more than {max_bytes / MiB:.3g} MiB once "
                                               "unpacked; refused")
                        dst.write(buf)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                raise InputError(f"upload {shown!r} (masks): member {base!r} cannot be read ({e})") from None
    if not names:
        raise InputError(f"upload {shown!r} (masks): expected .nii/.nii.gz mask files in the zip, found none")


def _place_uploads(uploads: dict[str, _Upload], staging: Path, max_unzipped: int
                   ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Check the uploaded files and move them to input/; returns (paths, display map, inputs)."""
    for req in ("ct", "masks"):
        if req not in uploads:
            raise _refuse(400, f"missing file field {req!r}; expected ct (.nii/.nii.gz) and masks (.nii/.nii.gz or .zip)")
    inp = staging / "input"
    inp.mkdir()
    paths, display, inputs = {}, {}, {}
    for field, up in uploads.items():
        suf = _suffix(up.filename, UPLOAD_FIELDS[field])
        if suf is None:
            raise InputError(f"upload {up.filename!r} ({field}): expected a file ending in "
                             f"{' or '.join(UPLOAD_FIELDS[field])}")
        if up.size == 0:
            raise InputError(f"upload {up.filename!r} ({field}): the file is empty")
        inputs[field] = up.filename
        if suf == ".zip":
            target = inp / "masks"
            extract_masks_zip(up.path, target, up.filename, max_unzipped)
            up.path.unlink()
            display[str(target) + "/"] = f"upload {up.filename!r} (masks), member "
        else:
            target = inp / f"{field}{suf}"
            os.rename(up.path, target)
        paths[field] = str(target)
        display[str(target)] = f"upload {up.filename!r} ({field})"
    return paths, display, inputs


# --- the app ----------------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                     description="the API token the server was started with (radagent serve --token)")


def require_token(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    expected: str = request.app.state.settings.token
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), expected.encode()):
        raise HTTPException(401, "missing or invalid bearer token (send 'Authorization: Bearer <token>')",
                            headers={"WWW-Authenticate": 'Bearer realm="radagent"'})


PUBLIC_PATHS = {"/", "/health", "/favicon.ico"} | {f"/static/{n}" for n in WEB_ASSETS}
JSON_BODY_LIMIT = 1 * MiB


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]


class _Guard:
    """ASGI middleware in front of everything: a protected path without the right bearer token is
    answered 401 before the app reads a byte of the body, and the body of anything but an upload
    is capped at JSON_BODY_LIMIT (413). The route dependency (require_token) checks again.
    Every response gets SECURITY_HEADERS; API responses also ``Cache-Control: no-store``."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        public = scope["path"] in PUBLIC_PATHS

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in have]
                if not public and b"cache-control" not in have:
                    extra.append((b"cache-control", b"no-store"))
                msg = {**msg, "headers": list(msg.get("headers", [])) + extra}
            await send(msg)

        if public:
            return await self.app(scope, receive, send_with_headers)
        headers = dict(scope["headers"])
        scheme, _, cred = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(cred.strip(), self.token):
            resp = JSONResponse({"detail": "missing or invalid bearer token (send 'Authorization: Bearer <token>')"},
                                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="radagent"'})
            return await resp(scope, receive, send_with_headers)
        if scope["method"] == "POST" and scope["path"] == "/cases":
            return await self.app(scope, receive, send_with_headers)  # uploads: counted while streaming
        cl = headers.get(b"content-length", b"")
        if cl.isdigit() and int(cl) > JSON_BODY_LIMIT:
            return await JSONResponse({"detail": f"request body larger than {JSON_BODY_LIMIT // MiB} MiB"},
                                      status_code=413)(scope, receive, send_with_headers)
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > JSON_BODY_LIMIT:
                    raise HTTPException(413, f"request body larger than {JSON_BODY_LIMIT // MiB} MiB")
            return msg

        return await self.app(scope, counted, send_with_headers)


PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
            "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=_jsonable, ensure_ascii=False)}\n\n".encode()


def _jsonable(o: Any) -> Any:
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    return str(o)


def create_app(settings: ServerSettings, chat_factory: ChatFactory | None = None) -> FastAPI:
    """The FastAPI app. ``chat_factory(findings, settings)`` makes a chat session (default: the
    agent with --llm, the deterministic chat without)."""
    store = CaseStore(settings.cases)
    store.root.mkdir(parents=True, exist_ok=True)
    os.chmod(store.root, 0o700)
    store.recover()
    make_chat = chat_factory or default_chat_factory
    sessions = _Sessions(settings.max_chat_sessions)
    executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="radagent-analyze")
    limit = int(settings.max_upload_mb * MiB)
    max_unzipped = int((settings.max_unzipped_mb or 4 * settings.max_upload_mb) * MiB)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("radagent")
    except PackageNotFoundError:
        ver = "0"
    app = FastAPI(title="radagent", version=ver, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
                  description="CT oncology reading agent: cases (CT + masks) -> findings, key images, reports, "
                              "answers. Bearer-token auth on every endpoint but /, /static/* and /health.")
    app.state.settings = settings
    app.state.store = store

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": _redact_text(str(exc), {str(settings.data_root) + "/": "",
                                                                str(store.root): "<cases>"})}, status_code=422)

    # --- public: page shell, its assets, health
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in WEB_ASSETS:
            raise _refuse(404, "not found")
        return FileResponse(WEB_DIR / name, media_type=WEB_ASSETS[name], headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": ver}

    api = APIRouter(dependencies=[Depends(require_token)])

    @api.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # --- cases
    async def _start(cid: str, wait: bool, status_code_done: int = 201) -> JSONResponse:
        fut = executor.submit(_run_analysis, store, cid)
        if not wait:
            return JSONResponse(store.load(cid).info.model_dump(mode="json"), status_code=202)
        await asyncio.wrap_future(fut)
        rec = store.load(cid)
        if rec.info.status == "failed":
            await run_in_threadpool(store.delete, cid)
            return JSONResponse({"detail": rec.info.error}, status_code=422 if rec.info.error_kind == "input" else 500)
        return JSONResponse(rec.info.model_dump(mode="json"), status_code=status_code_done)

    wait_q = Query(False, description="answer when the analysis has ended (201, or 422 with the input error and the "
                                      "case removed) instead of at once (202)")
    created = {201: {"model": CaseInfo, "description": "analyzed (wait=true)"},
               202: {"model": CaseInfo, "description": "queued"},
               413: {"description": "body larger than --max-upload-mb"},
               422: {"description": "unusable input, the file named"}}

    @api.post("/cases", tags=["cases"], status_code=202, responses=created, openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["ct", "masks"], "properties": {
                "ct": {"type": "string", "format": "binary", "description": "CT, .nii or .nii.gz"},
                "masks": {"type": "string", "format": "binary",
                          "description": "multilabel .nii/.nii.gz, or a .zip of binary mask files named by structure"},
                "class_map": {"type": "string", "format": "binary", "description": "JSON {label id: name}"}}}}}}})
    async def create_case_upload(request: Request, wait: bool = wait_q) -> JSONResponse:
        """Create a case from uploaded files (multipart/form-data) and analyze it."""
        cl = request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > limit:
            raise _refuse(413, f"upload of {int(cl) / MiB:.1f} MiB is larger than the server's limit of "
                               f"{limit / MiB:.3g} MiB (--max-upload-mb)")
        cid, staging = store.new_staging()
        try:
            uploads = await receive_upload(request, staging, limit)
            paths, display, inputs = await run_in_threadpool(_place_uploads, uploads, staging, max_unzipped)
            display[str(store.root / cid)] = "<case>"
            display[str(staging)] = "<case>"
            rec = _CaseRecord(info=CaseInfo(id=cid, status="queued", source="upload", inputs=inputs, created=_now()),
                              paths={k: v.replace(str(staging), str(store.root / cid), 1) for k, v in paths.items()},
                              display={k.replace(str(staging), str(store.root / cid), 1): v for k, v in display.items()})
            store.commit(staging, rec)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
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
        cid, staging = store.new_staging()
        try:
            display = {str(root) + "/": "", str(root): "<data root>", str(store.root / cid): "<case>"}
            rec = _CaseRecord(info=CaseInfo(id=cid, status="queued", source="path", inputs=inputs, created=_now()),
                              paths=paths, display=display)
            store.commit(staging, rec)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
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
            raise _refuse(404, f"no lesion {lesion_id!r} in case {case_id}; lesions are {[x.id for x in f.lesions]}")
        if not les.key_image:
            raise _refuse(404, f"lesion {lesion_id} has no key image")
        p = (out / les.key_image).resolve()
        if not p.is_relative_to(out.resolve()) or not p.is_file():
            raise _refuse(404, f"key image of lesion {lesion_id} not found in this case")
        return FileResponse(p, media_type="image/png")

    @api.get("/cases/{case_id}/report", tags=["results"], responses={
        200: {"content": {"text/html": {}, "text/markdown": {}, "application/json": {}}},
        400: {"description": "engine=llm on a server started without --llm"}})
    def get_report(case_id: str, format: Literal["html", "md", "json"] = "html",
                   engine: Literal["auto", "template", "llm"] = Query("auto", description="auto: llm with --llm"),
                   style: Literal["structured", "narrative"] = "structured") -> Response:
        """The report (drafted once per engine and style, then kept in the case folder)."""
        from agent.pipeline import add_files_atomically, load_findings
        from reasoning.narrative import draft_report
        from templates.render import render_report

        _, out = store.done(case_id)
        if engine == "llm" and not settings.llm_url:
            raise _refuse(400, "engine=llm: the server was started without --llm; use engine=template")
        eng = "llm" if engine == "llm" or (engine == "auto" and settings.llm_url) else "template"
        folder = out / "reports" / f"{eng}-{style}"
        headers = {}
        if not (folder / f"report.{format}").is_file():
            findings, images = load_findings(out)
            draft = draft_report(findings, settings.llm_url if eng == "llm" else None, settings.model, style=style)
            files = render_report(findings, draft, style, images)
            if draft.fallback_reason:
                headers["X-Radagent-Report-Fallback"] = re.sub(r"[^\x20-\x7e]", "?", draft.fallback_reason)[:300]
                content = files[f"report.{format}"]
            else:
                with store.case_lock(case_id):
                    if (store.root / case_id / "case.json").is_file():
                        add_files_atomically(folder, files)
                content = files[f"report.{format}"]
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
        """Answer one question: structured (subtype + params) and no-LLM questions by reasoning.vqa;
        text questions by the chat agent when the server has --llm (mode=auto)."""
        from reasoning.vqa import Question

        f, _ = store.findings(case_id)
        if req.mode == "agent" and not settings.llm_url:
            raise _refuse(400, "mode=agent: the server was started without --llm; use mode=deterministic or auto")
        if req.subtype is not None:
            try:
                q = Question(subtype=req.subtype, **req.params)
            except ValidationError as e:
                raise _refuse(422, "; ".join(f"{'.'.join(str(x) for x in d['loc']) or 'question'}: {d['msg']}"
                                             for d in e.errors())) from None
            return _det(f, q, req.choices)
        if req.mode == "deterministic":
            return _det(f, req.question, req.choices)
        session = make_chat(f, settings)
        if _mode(session) == "deterministic" or req.choices:
            r = _det(f, req.question, req.choices)
            return r.model_copy(update={"note": getattr(session, "note", None)})
        try:
            turn = session.ask(req.question)
        except Exception as e:  # noqa: BLE001 - the LLM side failed: reported as a bad gateway, and logged
            log.exception("case %s: chat agent failed", case_id)
            raise _refuse(502, f"the chat agent failed ({type(e).__name__}: {str(e)[:300]})") from None
        return AskResponse(mode="agent", text=str(getattr(turn, "text", turn)))

    def _det(f: Findings, q: Any, choices: list[str] | None) -> AskResponse:
        from reasoning.vqa import answer

        try:
            a = answer(f, q, choices)
        except ValueError as e:  # malformed choices
            raise _refuse(422, str(e)) from None
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
            yield _sse("session", {"session_id": sid, "mode": _mode(session),
                                   "note": getattr(session, "note", None)})
            try:
                final = False
                async for ev in session.astream(req.message):
                    kind = ev.get("type", "token") if isinstance(ev, dict) else "token"
                    payload = ev if isinstance(ev, dict) else {"type": "token", "text": str(ev)}
                    yield _sse(kind if kind in ("token", "final") else "token", payload)
                    final = final or kind == "final"
                if not final:
                    yield _sse("error", {"detail": "the chat ended without a final answer"})
            except Exception as e:  # noqa: BLE001 - reported to the client as an event, and logged
                log.exception("case %s: chat failed", case_id)
                yield _sse("error", {"detail": f"chat failed ({type(e).__name__}: {str(e)[:300]})"})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.include_router(api)
    app.add_middleware(_Guard, token=settings.token)
    return app
