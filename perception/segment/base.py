"""Segmentation backends: the Segmenter protocol, the factory, merging, writing masks.

A backend turns a CTVolume into a LabelSet on the CT grid (``segment(ct) -> LabelSet``). Three are
known by name (``BACKENDS``): ``masks`` (masks the user already has), ``totalseg``
(TotalSegmentator, organs/sub-segments/vessels) and ``unit`` (radagent's UniT-style tumour model).
Several backends' LabelSets merge into one; each Mask keeps its provenance in ``Mask.source``
(``totalseg:total/fast#5``, ``unit:final.pt#organ``, or the mask file path).

What to run comes as a validated :class:`~perception.segment.request.SegmentRequest`
(``segment_ct(ct, request)``, ``make_segmenters(request)``). Backends are imported lazily, by name
(``_BACKEND_CLASSES``), and import nothing from this module: what they share with it lives in
``common``. Nothing here imports torch at module level: the light environment can import it, list
the backends and use the ``masks`` backend.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .. import registry
from ..masks import LabelSet, load_masks
from ..volume import CTVolume
from .common import BACKENDS, nifti_bytes, relabel, select_device  # noqa: F401  (re-exported: base's names before common existed)
from .errors import BackendUnavailableError
from .request import SegmentRequest

log = logging.getLogger("radagent.segment")

# Heavy backends by name -> "module:class" (relative to this package), imported only when one is made.
_BACKEND_CLASSES = {
    "totalseg": ".totalseg:TotalSegSegmenter",
    "unit": ".unit.infer:UniTSegmenter",
    "nnunet": ".nnunet:NNUNetSegmenter",
    "bundle": ".bundle:BundleSegmenter",
}


@runtime_checkable
class Segmenter(Protocol):
    """What every backend offers.

    ``outputs``: the canonical structure names the backend declares it segments (empty when it
    cannot know before reading, as for ``masks``). A declared structure that was looked for and not
    found comes back as an empty Mask (status "absent" downstream), never as a missing key.
    ``device``: the torch device it runs on (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
    """

    name: str

    @property
    def outputs(self) -> tuple[str, ...]: ...

    @property
    def device(self) -> str: ...

    def segment(self, ct: CTVolume) -> LabelSet: ...


@dataclass
class MasksSegmenter:
    """The existing-masks path as a backend: a folder of per-structure NIfTI masks or a multilabel file."""

    path: Path
    class_map: Path | None = None
    tol_mm: float = 0.01
    name: str = "masks"

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def outputs(self) -> tuple[str, ...]:
        return ()

    @property
    def device(self) -> str:
        return "cpu"

    def segment(self, ct: CTVolume) -> LabelSet:
        return load_masks(self.path, ct, self.class_map, tol_mm=self.tol_mm)


def make_segmenter(name: str, device: str = "auto", **options: Any) -> Segmenter:
    """A backend by name with its options (``masks``: path, class_map; ``totalseg``: see
    TotalSegSegmenter; ``unit``: weights, ...). Imports the heavy packages only for the chosen one."""
    key = str(name).strip().lower()
    if key == "masks":
        if "path" not in options:
            raise BackendUnavailableError("backend 'masks' needs a path (a folder of NIfTI masks or a multilabel NIfTI)")
        return MasksSegmenter(**options)
    if key in _BACKEND_CLASSES:
        module, _, cls = _BACKEND_CLASSES[key].partition(":")
        return getattr(importlib.import_module(module, __package__), cls)(device=device, **options)
    import difflib

    close = difflib.get_close_matches(key, BACKENDS, n=1)
    raise BackendUnavailableError(f"unknown segmentation backend {name!r}; expected one of {', '.join(BACKENDS)}"
                                  + (f" (did you mean {close[0]!r}?)" if close else ""))


def make_segmenters(request: SegmentRequest) -> list[Segmenter]:
    """One backend per ``request.backends``, in priority order, each on ``request.device`` with its options."""
    if not isinstance(request, SegmentRequest):
        raise TypeError(f"make_segmenters: expected a SegmentRequest, found {type(request).__name__}")
    return [make_segmenter(b, device=request.device, **request.backend_options(b)) for b in request.backends]


def merge_labelsets(results: Sequence[tuple[str, LabelSet]], prefer: Mapping[str, str] | None = None) -> LabelSet:
    """One LabelSet from several backends' (name, LabelSet), in priority order.

    For each structure: the backend named in ``prefer[structure]`` when it found it; else the first
    backend (in the given order) whose mask is non-empty; else the first one's empty mask (looked for,
    absent). Masks are never unioned across backends: two models' livers differ at the boundary and a
    union would be larger than either. Provenance stays in each Mask.source; the structures given by
    several backends are listed in one warning.
    """
    if not results:
        raise ValueError("merge_labelsets: no results to merge")
    shapes = {tuple(ls.shape) for _, ls in results}
    if len(shapes) != 1:
        raise ValueError(f"merge_labelsets: backends returned different grids {sorted(shapes)}; expected one CT grid")
    prefer = dict(prefer or {})
    out = LabelSet(results[0][1].shape)
    names: list[str] = []
    for _, ls in results:
        names += [n for n in ls.masks if n not in names]
    overlaps = []
    for n in names:
        cands = [(b, ls.masks[n]) for b, ls in results if n in ls.masks]
        present = [(b, m) for b, m in cands if not m.empty]
        chosen = None
        if n in prefer:
            chosen = next(((b, m) for b, m in present if b == prefer[n]), None)
        if chosen is None:
            chosen = present[0] if present else cands[0]
        out.masks[n] = chosen[1]
        if len(present) > 1:
            overlaps.append(f"{n} ({chosen[0]} kept over {', '.join(b for b, _ in present if b != chosen[0])})")
    for b, ls in results:
        out.warnings += [w if w.startswith(f"{b}:") else f"{b}: {w}" for w in ls.warnings]
        for raw, sugg in ls.unknown.items():
            out.unknown.setdefault(raw, sugg)
    if overlaps:
        out.warnings.append("structures segmented by several backends (one kept, not unioned): " + "; ".join(overlaps))
    return out


def segment_ct(ct: CTVolume, request: SegmentRequest | Sequence[str | Segmenter], *,
               prefer: Mapping[str, str] | None = None, device: str | None = None,
               options: Mapping[str, Mapping[str, Any]] | None = None) -> LabelSet:
    """Run each requested backend on ``ct`` and merge their LabelSets (the first listed wins where
    several found a structure; ``prefer`` overrides that per structure).

    ``request``: a SegmentRequest (backends, their options and the device, validated). Older form, kept
    for callers not yet moved: a list of names from BACKENDS or Segmenter objects, with ``device``
    (default auto) and ``options`` (per-backend keyword arguments for ``make_segmenter``, e.g.
    ``{"unit": {"weights": "final.pt"}}``); with a SegmentRequest these two must not be given.
    """
    if isinstance(request, SegmentRequest):
        if device is not None or options is not None:
            raise TypeError("segment_ct(ct, request): the device and the backends' options come from the "
                            "SegmentRequest; expected no device= or options=, found "
                            + ", ".join(n for n, v in (("device", device), ("options", options)) if v is not None))
        return run_segmenters(ct, make_segmenters(request), prefer)
    backends = request
    if not backends:
        raise BackendUnavailableError(f"no segmentation backend given; expected one or more of {', '.join(BACKENDS)}")
    options = options or {}
    unknown_opts = set(options) - {b for b in backends if isinstance(b, str)}
    if unknown_opts:
        raise BackendUnavailableError(f"options given for backends not requested: {sorted(unknown_opts)} "
                                      f"(requested: {[b if isinstance(b, str) else b.name for b in backends]})")
    segs = [make_segmenter(b, device=device or "auto", **options.get(b, {})) if isinstance(b, str) else b
            for b in backends]
    return run_segmenters(ct, segs, prefer)


def run_segmenters(ct: CTVolume, segmenters: Sequence[Segmenter],
                   prefer: Mapping[str, str] | None = None) -> LabelSet:
    """Run backends already made on ``ct`` (each result checked to be on the CT grid) and merge them."""
    results = []
    runs: list = []
    detections: list = []
    for s in segmenters:
        t0 = time.perf_counter()
        ls = s.segment(ct)
        if tuple(ls.shape) != ct.shape:
            raise ValueError(f"backend {s.name!r} returned masks of shape {ls.shape}; expected the CT grid {ct.shape}")
        log.info("segment: %s on %s: %d structures (%d non-empty) in %.1f s", s.name, s.device, len(ls.masks),
                 sum(not m.empty for m in ls.masks.values()), time.perf_counter() - t0)
        results.append((s.name, ls))
        runs += list(getattr(s, "runs", None) or [])
        if getattr(s, "detections", None) is not None:
            detections.append(s.detections)
    merged = merge_labelsets(results, prefer)
    # what each backend ran (ModelRun: task, version, weights checksums, seconds), read by build_findings for each
    # lesion's provenance and Findings.segmentation
    merged.model_runs = runs  # type: ignore[attr-defined]
    merged.detections = detections  # type: ignore[attr-defined]  # (instance ids, {id: score, type_probs}) per backend
    return merged


# --- writing masks ------------------------------------------------------------------------------

def labelset_files(ls: LabelSet, ct: CTVolume, extra: Mapping[str, bytes | str] | None = None) -> dict[str, bytes | str]:
    """Files for a mask folder that ``load_masks`` (and ``radagent analyze --masks``) reads back:
    one binary ``<name>.nii.gz`` per structure on the CT grid (empty file = looked for, absent) and
    ``provenance.json`` (structure -> source, category)."""
    files: dict[str, bytes | str] = {}
    prov = {}
    for name, m in sorted(ls.masks.items()):
        files[f"{name}.nii.gz"] = nifti_bytes(m.dense().astype(np.uint8), ct.affine)
        st = registry.classify(name)
        prov[name] = {"source": m.source, "category": st.category if st else "unknown", "voxel_count": m.voxel_count}
    files["provenance.json"] = json.dumps({"ct": ct.source, "shape": list(ct.shape), "structures": prov,
                                           "warnings": ls.warnings}, indent=2) + "\n"
    files.update(extra or {})
    return files

