"""Uploads: a multipart body streamed to disk with its size counted, masks zips unpacked safely,
and the files placed in the case's input/ folder under names the case service reads as the CLI does."""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from radagent.errors import InputError

from .security import refuse
from .settings import CHUNK, MAX_ZIP_MEMBERS, UPLOAD_FIELDS, VALUE_FIELDS, MiB


def client_name(filename: str | None) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())[:200]
    return name or "(unnamed)"


def suffix(name: str, allowed: tuple[str, ...]) -> str | None:
    low = name.lower()
    return next((s for s in allowed if low.endswith(s)), None)


# --- uploads ----------------------------------------------------------------------------------------
class Upload:
    def __init__(self, field: str, filename: str, path: Path):
        self.field, self.filename, self.path = field, filename, path
        self.size = 0
        self.fh = open(path, "wb")


class FormValue:
    """A plain-text form field (``mask_label``), kept in memory up to its size limit."""

    def __init__(self, field: str, limit: int):
        self.field, self.limit, self.data = field, limit, bytearray()

    def write(self, b: bytes) -> None:
        self.data += b
        if len(self.data) > self.limit:
            raise refuse(400, f"form field {self.field!r}: expected at most {self.limit} bytes")

    def close(self) -> None:
        pass

    @property
    def text(self) -> str:
        try:
            return self.data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputError(f"form field {self.field!r}: expected UTF-8 text") from None


def form_value(uploads: dict, field: str) -> str | None:
    """Remove the plain-text field ``field`` from ``uploads``; its text (None when absent or empty)."""
    v = uploads.pop(field, None)
    return (v.text or None) if v is not None else None


async def receive_upload(request: Request, staging: Path, limit: int) -> dict[str, Upload | FormValue]:
    """Stream a multipart/form-data body into ``staging`` (one file per field; the plain-text fields of
    VALUE_FIELDS in memory), counting bytes as they arrive: 413 past ``limit``, 400 for unknown or
    repeated fields, 415 for another body type."""
    from python_multipart import MultipartParser
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import parse_options_header

    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise refuse(415, f"expected a multipart/form-data body with fields {', '.join([*UPLOAD_FIELDS, *VALUE_FIELDS])}, "
                           f"found content type {ctype.decode(errors='replace') or 'none'!r}")
    uploads: dict[str, Upload | FormValue] = {}
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
        if name not in UPLOAD_FIELDS and name not in VALUE_FIELDS:
            raise refuse(400, f"unexpected form field {name[:64]!r}; expected {', '.join([*UPLOAD_FIELDS, *VALUE_FIELDS])}")
        if name in uploads:
            raise refuse(400, f"form field {name!r} given twice")
        if name in VALUE_FIELDS:
            if b"filename" in disp:
                raise refuse(400, f"form field {name!r}: expected a plain value, found a file")
            uploads[name] = cur["upload"] = FormValue(name, VALUE_FIELDS[name])
            return
        if b"filename" not in disp:
            raise refuse(400, f"form field {name!r}: expected a file, found a plain value")
        up = Upload(name, client_name(disp[b"filename"].decode("utf-8", "replace")), staging / f"upload-{name}")
        uploads[name] = up
        cur["upload"] = up

    def on_part_data(data: bytes, start: int, end: int) -> None:
        up = cur["upload"]
        if isinstance(up, FormValue):
            up.write(data[start:end])
            return
        up.fh.write(data[start:end])
        up.size += end - start

    def on_part_end() -> None:
        if cur.get("upload") is not None and isinstance(cur["upload"], Upload):
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
                raise refuse(413, f"upload larger than the server's limit of {limit / MiB:.3g} MiB (--max-upload-mb)")
            if chunk:
                await run_in_threadpool(parser.write, chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise refuse(400, f"malformed multipart body ({e})") from None
    finally:
        for up in uploads.values():
            if isinstance(up, Upload):
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
            if not suffix(base, (".nii.gz", ".nii")):
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
                            raise refuse(413, f"upload {shown!r} (masks): more than {max_bytes / MiB:.3g} MiB once "
                                               "unpacked; refused")
                        dst.write(buf)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                raise InputError(f"upload {shown!r} (masks): member {base!r} cannot be read ({e})") from None
    if not names:
        raise InputError(f"upload {shown!r} (masks): expected .nii/.nii.gz mask files in the zip, found none")


def stored_name(filename: str) -> str:
    """The client's file name as stored: characters outside [A-Za-z0-9._()+ -] become '_', no
    leading dot. Structure names (``liver_lesion.nii.gz``) pass unchanged, so the case service
    reads an uploaded mask exactly as ``radagent analyze --masks`` reads the same file."""
    name = re.sub(r"[^A-Za-z0-9._()+ -]", "_", filename).lstrip(".") or "mask"
    return name[:200]


def place_uploads(uploads: dict[str, Upload], staging: Path, max_unzipped: int
                  ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Check the uploaded files and move them to input/; returns (paths, display map, inputs).
    A single mask file keeps its (sanitised) name: the name says what the mask is."""
    for req in ("ct", "masks"):
        if req not in uploads:
            raise refuse(400, f"missing file field {req!r}; expected ct (.nii/.nii.gz) and masks (.nii/.nii.gz or .zip)")
    inp = staging / "input"
    inp.mkdir()
    paths, display, inputs = {}, {}, {}
    for field, up in uploads.items():
        suf = suffix(up.filename, UPLOAD_FIELDS[field])
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
        elif field == "masks":
            (inp / "mask-file").mkdir()
            target = inp / "mask-file" / stored_name(up.filename)
            os.rename(up.path, target)
        else:
            target = inp / f"{field}{suf}"
            os.rename(up.path, target)
        paths[field] = str(target)
        display[str(target)] = f"upload {up.filename!r} ({field})"
    return paths, display, inputs
