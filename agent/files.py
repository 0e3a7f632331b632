"""Atomic output: a folder appears complete or not at all; files added to a folder replace the old
ones whole. Every surface writes through these (via agent.case.write)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _write(target: Path, content: str | bytes) -> None:
    with open(target, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
        f.flush()
        os.fsync(f.fileno())


def write_outputs_atomically(out_dir: Path, files: dict[str, str | bytes], force: bool = False) -> Path:
    """Write ``files`` (relative path -> text or bytes) into out_dir so that out_dir appears
    complete or not at all."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: output path exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"{out_dir}: output folder exists and is not empty (use --force to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for name, content in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(target, content)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def add_files_atomically(folder: Path, files: dict[str, str | bytes]) -> None:
    """Add files to an existing folder: all are written to temporary names first, then renamed,
    so a crash leaves either the old files or the new ones, never a half-written file."""
    folder = Path(folder)
    tmps = []
    try:
        for name, content in files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            _write(tmp, content)
            tmps.append((tmp, target))
        for tmp, target in tmps:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace one file atomically (temporary sibling, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
