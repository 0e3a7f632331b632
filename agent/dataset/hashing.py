"""Content hashes: a case is redone exactly when the bytes of its inputs or the settings change."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from agent.files import atomic_write_bytes

from .sources import CaseSpec, nifti_name

log = logging.getLogger("radagent")

CACHE_VERSION = 2  # 1: [size, mtime_ns, sha256]; 2: [size, mtime_ns, inode, ctime_ns, sha256]


def stat_key(st: os.stat_result) -> list[int]:
    """What must be unchanged for a cached digest to be reused: size, mtime_ns, inode and ctime_ns.
    ctime cannot be set by users (os.utime, touch -d and a copy that restores mtime all change it), and
    the inode changes when a file is replaced by another (rename over it, a fresh download)."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


class HashCache:
    """sha256 of file bytes (160 bits kept), cached by real path in OUT/.hashes.json and reused only while
    the file's (size, mtime_ns, inode, ctime_ns) are unchanged (entries of the older 3-field layout,
    keyed on size and mtime only, are dropped: those files are hashed again)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.new: dict[str, list] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("version") == CACHE_VERSION:
                    self.entries = {k: v for k, v in data.get("files", {}).items()
                                    if isinstance(v, list) and len(v) == 5}
            except (OSError, ValueError, AttributeError):
                log.warning("%s: unreadable hash cache; hashes will be recomputed", path)

    def digest(self, p: Path) -> str:
        key = os.path.realpath(p)
        st = os.stat(key)
        with self._lock:
            e = self.entries.get(key)
        sk = stat_key(st)
        if e and e[:4] == sk:
            return e[4]
        with open(key, "rb") as f:
            d = hashlib.file_digest(f, "sha256").hexdigest()[:40]  # sha256: hardware-accelerated on x86-64
        with self._lock:
            self.entries[key] = self.new[key] = [*sk, d]
        return d

    def merge(self, entries: dict[str, list]) -> None:
        with self._lock:
            self.entries.update(entries)

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            data = json.dumps({"version": CACHE_VERSION, "files": self.entries}, sort_keys=True)
        atomic_write_bytes(self.path, data.encode())


def case_files(spec: CaseSpec) -> list[tuple[str, Path]]:
    """(role, path) of every file the case's outputs depend on, in a fixed order. Missing paths are
    listed as is (hashing marks them missing; loading reports them properly)."""
    out: list[tuple[str, Path]] = []
    ct = Path(spec.ct)
    if ct.is_dir():
        out += [(f"ct/{f.relative_to(ct).as_posix()}", f) for f in sorted(ct.rglob("*")) if f.is_file()]
    else:
        out.append(("ct", ct))
    if spec.masks:
        m = Path(spec.masks)
        if m.is_dir():
            d = m / "segmentations" if (m / "segmentations").is_dir() else m
            out += [(f"masks/{f.name}", f) for f in sorted(d.iterdir()) if f.is_file() and nifti_name(f)]
        else:
            out.append(("masks", m))
    if spec.class_map:
        out.append(("class_map", Path(spec.class_map)))
    return out


def input_hash(spec: CaseSpec, cache: HashCache) -> str:
    h = hashlib.sha256()
    for role, p in case_files(spec):
        try:
            d = cache.digest(p)
        except FileNotFoundError:
            d = "missing"
        h.update(f"{role}\0{d}\n".encode())
    h.update(json.dumps(spec.metadata, sort_keys=True).encode())
    if spec.mask_label is not None:  # what a single mask file holds changes the findings
        h.update(f"mask_label\0{spec.mask_label}\n".encode())
    return h.hexdigest()[:40]


# ------------------------------------------------------------------------------------------------
# options, settings fingerprint
