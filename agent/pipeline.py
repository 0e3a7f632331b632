"""Typed Python API behind the CLI: analyze one case and write its outputs atomically."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from perception.findings import Settings, build_findings_with_masks
from perception.io import load_ct
from perception.masks import load_masks
from perception.schema import Findings

log = logging.getLogger("radagent")


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, t0: float) -> float:
        t = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + (t - t0)
        return t


def analyze(ct_path: str | Path, masks_path: str | Path, class_map: str | Path | None = None,
            settings: Settings | None = None, timings: Timings | None = None) -> Findings:
    """Load the CT and its masks, check geometry, measure: the Findings object (nothing written)."""
    return analyze_case(ct_path, masks_path, class_map, settings, timings, key_images=False)[0]


def analyze_case(ct_path: str | Path, masks_path: str | Path | None, class_map: str | Path | None = None,
                 settings: Settings | None = None, timings: Timings | None = None, key_images: bool = True,
                 backends: list[str] | None = None, segment_options: dict | None = None, device: str = "auto"
                 ) -> tuple[Findings, dict[str, bytes]]:
    """Findings and the files that go with them (key images: relative path -> PNG bytes).

    With ``masks_path`` the user's masks are measured; without, the CT is segmented first by
    ``backends`` (default TotalSegmentator; see perception.segment)."""
    tm = timings or Timings()
    t = time.perf_counter()
    ct = load_ct(ct_path)
    t = tm.add("load_ct", t)
    s = settings or Settings()
    if masks_path is not None:
        ls = load_masks(masks_path, ct, class_map, tol_mm=s.geometry_tolerance_mm)
        t = tm.add("load_masks", t)
    else:
        from perception.segment import segment_ct

        ls = segment_ct(ct, backends or ["totalseg"], device=device, options=segment_options)
        t = tm.add("segment", t)
    findings, lesion_masks = build_findings_with_masks(ct, ls, s)
    t = tm.add("measure", t)
    files: dict[str, bytes] = {}
    if key_images and findings.lesions:
        from perception.keyimages import render_key_images

        findings, files = render_key_images(ct, findings, lesion_masks)
        tm.add("key_images", t)
    return findings, files


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
            with open(target, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
                f.flush()
                os.fsync(f.fileno())
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
            with open(tmp, "wb") as fh:
                fh.write(content.encode() if isinstance(content, str) else content)
                fh.flush()
                os.fsync(fh.fileno())
            tmps.append((tmp, target))
        for tmp, target in tmps:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
        raise


def findings_location(path: str | Path) -> Path:
    """findings.json itself, or the analyze output folder holding it."""
    p = Path(path)
    if p.is_dir():
        p = p / "findings.json"
    if not p.exists():
        from perception.errors import InputError

        raise InputError(f"{p}: findings.json not found (expected a findings.json or an `radagent analyze` output folder)")
    return p


def load_findings(path: str | Path) -> tuple[Findings, dict[str, bytes]]:
    """Findings and its key images (by lesion id), read from disk."""
    from pydantic import ValidationError

    from perception.errors import InputError

    p = findings_location(path)
    try:
        f = Findings.model_validate_json(p.read_text())
    except (ValidationError, ValueError) as e:
        raise InputError(f"{p}: not a valid findings.json ({str(e).splitlines()[0]})") from e
    images = {}
    for les in f.lesions:
        if les.key_image and (p.parent / les.key_image).exists():
            images[les.id] = (p.parent / les.key_image).read_bytes()
    return f, images
