"""The FastAPI app: public page and health, the token guard, and the routers of agent.api.routes."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from radagent.errors import InputError

from .routes import ApiContext, Capacity, ChatFactory, add_routes, default_chat_factory
from .security import PAGE_CSP, WEB_ASSETS, Guard, redact_text, refuse, require_token
from .sessions import Sessions
from .settings import MiB, ServerSettings
from .store import CaseStore

log = logging.getLogger("radagent.api")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("radagent")
    except PackageNotFoundError:
        return "0"


def create_app(settings: ServerSettings, chat_factory: ChatFactory | None = None) -> FastAPI:
    """The FastAPI app. ``chat_factory(findings, settings)`` makes a chat session (default: the case
    service's chat engine, with the server's --llm when it has one)."""
    store = CaseStore(settings.cases)
    store.root.mkdir(parents=True, exist_ok=True)
    os.chmod(store.root, 0o700)
    store.recover()
    executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="radagent-analyze")
    ctx = ApiContext(settings=settings, store=store, sessions=Sessions(settings.max_chat_sessions), executor=executor,
                     make_chat=chat_factory or default_chat_factory, upload_limit=int(settings.max_upload_mb * MiB),
                     max_unzipped=int((settings.max_unzipped_mb or 2 * settings.max_upload_mb) * MiB),
                     capacity=Capacity(settings.workers + settings.max_queued))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    ver = _version()
    app = FastAPI(title="radagent", version=ver, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
                  description="CT oncology reading agent: cases (CT + masks) -> findings, key images, reports, "
                              "answers. Bearer-token auth on every endpoint but /, /static/* and /health.")
    app.state.settings = settings
    app.state.store = store

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": redact_text(str(exc), {str(settings.data_root) + "/": "",
                                                               str(store.root): "<cases>"})}, status_code=422)

    # --- public: page shell, its assets, health
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in WEB_ASSETS:
            raise refuse(404, "not found")
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

    add_routes(api, ctx)
    app.include_router(api)
    app.add_middleware(Guard, token=settings.token)
    return app
