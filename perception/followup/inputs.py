"""inputs.json of an analyze output folder: what its findings were made from, so that compare re-reads it."""

from __future__ import annotations

import hashlib
from pathlib import Path

INPUTS_VERSION = "1.0.0"


def sha256_path(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder: its sorted relative file names and each file's SHA-256."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode() + b"\0" + sha256_path(p).encode() + b"\n")
        return h.hexdigest()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_record(ct: str | Path, masks: str | Path | None, *, class_map: str | Path | None = None,
                 mask_label: str | None = None) -> dict:
    """The absolute paths the findings were made from, each with its SHA-256. ``masks`` None: the masks came
    from a segmentation model (not kept; compare then matches lesions by position only)."""
    def rec(p):
        if p is None:
            return None, None
        q = Path(p).absolute()
        return str(q), (sha256_path(q) if q.exists() else None)

    (ct_p, ct_h), (m_p, m_h), (c_p, c_h) = rec(ct), rec(masks), rec(class_map)
    return {"inputs_version": INPUTS_VERSION, "ct": ct_p, "ct_sha256": ct_h, "masks": m_p, "masks_sha256": m_h,
            "class_map": c_p, "class_map_sha256": c_h, "mask_label": mask_label, "segmented": masks is None}
