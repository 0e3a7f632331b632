"""Access control: the bearer-token guard, body caps, security headers, and server paths confined
to the data root (and redacted from everything sent back)."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from radagent.errors import InputError

from .settings import MAX_PATH_ENTRIES, MiB

WEB_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def refuse(status: int, msg: str) -> HTTPException:
    return HTTPException(status_code=status, detail=msg)


def resolve_in_root(root: Path, given: str, what: str, forbidden: tuple[Path, ...] = ()) -> Path:
    """The real path of ``given`` (relative to ``root``, or absolute) when it and every symlink
    under it stay inside ``root`` and outside ``forbidden``; 400/403/422 otherwise."""
    if not given or "\x00" in given or len(given) > 4096:
        raise refuse(400, f"{what}: expected a path of 1 to 4096 characters without NUL bytes")
    p = Path(given)
    cand = p if p.is_absolute() else root / p
    try:
        real = cand.resolve(strict=False)
    except (OSError, RuntimeError) as e:
        raise refuse(400, f"{what} {given!r}: cannot be resolved ({type(e).__name__})") from None
    if not real.is_relative_to(root):
        raise refuse(403, f"{what} {given!r}: outside the data root; paths must stay inside it "
                           "('..', absolute paths elsewhere and symlinks leading out are refused)")
    for f in forbidden:
        if real.is_relative_to(f):
            raise refuse(403, f"{what} {given!r}: inside the server's case storage, which cannot be referenced")
    try:
        st = real.stat()
    except FileNotFoundError:
        raise InputError(f"{what} {given!r}: not found in the data root") from None
    except OSError as e:
        raise refuse(400, f"{what} {given!r}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        if what == "class_map":
            raise InputError(f"{what} {given!r}: expected a file, found a folder")
        check_tree(real, root, forbidden, what, given)
    elif not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {given!r}: expected a regular file or a folder, found {file_kind(st.st_mode)}")
    return real


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def check_tree(top: Path, root: Path, forbidden: tuple[Path, ...], what: str, given: str) -> None:
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
            raise refuse(400, f"{what} {given!r}: cannot list {d.name!r} ({e.strerror})") from None
        for e in entries:
            n += 1
            if n > MAX_PATH_ENTRIES:
                raise refuse(400, f"{what} {given!r}: more than {MAX_PATH_ENTRIES} entries; expected a case folder")
            path = Path(e.path)
            if e.is_symlink():
                try:
                    target = path.resolve(strict=False)
                except (OSError, RuntimeError):
                    raise refuse(400, f"{what} {given!r}: symlink {path.relative_to(top)} cannot be resolved") from None
                if not target.is_relative_to(root) or any(target.is_relative_to(f) for f in forbidden):
                    raise refuse(403, f"{what} {given!r}: symlink {str(path.relative_to(top))!r} leads outside the "
                                       "data root; refused")
                if target.is_dir():
                    stack.append(target)
                try:
                    tst = target.stat()
                except OSError:
                    continue  # dangling: nothing to read there; the loader decides
                if not (stat.S_ISREG(tst.st_mode) or stat.S_ISDIR(tst.st_mode)):
                    raise InputError(f"{what} {given!r}: {str(path.relative_to(top))!r} leads to "
                                     f"{file_kind(tst.st_mode)}; expected regular files")
            elif e.is_dir(follow_symlinks=False):
                stack.append(path)
            elif not e.is_file(follow_symlinks=False):
                raise InputError(f"{what} {given!r}: {str(path.relative_to(top))!r} is "
                                 f"{file_kind(e.stat(follow_symlinks=False).st_mode)}; expected regular files")


def redact_text(s: str, display: dict[str, str]) -> str:
    for k in sorted(display, key=len, reverse=True):
        s = s.replace(k, display[k])
    return s


def redact(obj: Any, display: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return redact_text(obj, display)
    if isinstance(obj, dict):
        return {k: redact(v, display) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, display) for v in obj)
    return obj



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


class Guard:
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


# img-src data: for the NiiVue viewer's built-in font atlas (a PNG data URL inside agent/web/app.js)
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
            "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"

