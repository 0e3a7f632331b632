"""What was searched and what was set aside: lesion-search coverage per organ, and the masks radagent did
not interpret. "No lesion" is only ever said of an organ some lesion mask or model task searched.

Search units are organ names (``registry.search_units_of``): every non-empty organ or sub-segment mask
whose organ family can host lesions (``registry.lesion_host_families``), lung lobes and the whole-lung
mask counted as ``lung_left``/``lung_right``, plus every organ a lesion mask names even when its organ
mask is absent. An organ-specific lesion mask (``liver_lesion``, ``kidney_cyst_left``, ``lung_nodules``,
...), empty or not, searched the organs it names (``registry.lesion_mask_searches``); generic
``lesion``/``tumor``/``gtv`` masks name no organ and establish no search (their lesions are still
reported).
"""

from __future__ import annotations

from pathlib import Path

from . import registry
from .mask import Mask
from .schema import (
    IgnoredMask,
    LesionProvenance,
    LesionSearch,
    ModelWeights,
    Segmentation,
    SegmentationRun,
)

_MODEL_BACKENDS = ("totalseg", "unit", "nnunet", "bundle")  # perception.segment.common.BACKENDS minus "masks"


def searcher(m: Mask) -> str:
    """'model <backend>:<task>' for a segmentation backend's mask, else 'mask <file name>[#label]'."""
    src = m.source or m.name
    head = src.split("#", 1)[0]
    if any(head.startswith(b + ":") for b in _MODEL_BACKENDS):
        return f"model {head}"
    name = Path(head).name or head
    label = src[len(head):] if "#" in src else ""
    return f"mask {name}{label}" + (f" ({m.name})" if label else "")


def lesion_search(masks: dict[str, Mask]) -> list[LesionSearch]:
    """Per search unit: searched (by which masks / model tasks) or not, and why not."""
    hosts = registry.lesion_host_families()
    units: set[str] = set()
    by: dict[str, list[str]] = {}
    kinds: dict[str, set[str]] = {}
    generic: list[str] = []
    for name, m in masks.items():
        st = registry.classify(name)
        if st is None:
            continue
        if st.category in ("organ", "subsegment") and not m.empty and st.family in hosts:
            units.update(registry.search_units_of(name))
        elif st.category == "lesion":
            covered = registry.lesion_mask_searches(name)
            if not covered:
                generic.append(name)
            for u in covered:
                units.add(u)
                kinds.setdefault(u, set()).add(st.lesion_kind or "lesion")
                s = searcher(m)
                if s not in by.setdefault(u, []):
                    by[u].append(s)
    out = []
    gen = (f"; generic lesion masks ({', '.join(sorted(generic))}) name no organ and establish no search"
           if generic else "")
    for u in sorted(units, key=_order):
        if by.get(u):
            out.append(LesionSearch(organ=u, searched=True, by=sorted(by[u]), kinds=sorted(kinds[u])))
        else:
            out.append(LesionSearch(organ=u, searched=False,
                                    reason=f"no lesion mask or model task covers the {u.replace('_', ' ')}{gen}"))
    return out


def _order(name: str) -> tuple[int, str]:
    from .findings import ORGAN_ORDER  # lazy: findings imports this module

    return (ORGAN_ORDER.index(name) if name in ORGAN_ORDER else len(ORGAN_ORDER), name)


def ignored_masks(ls) -> list[IgnoredMask]:
    """Masks given but not interpreted: ``LabelSet.ignored`` (dicts name/source/reason/did_you_mean) and the
    unknown names of ``LabelSet.unknown`` (raw name -> did-you-mean), one entry per name."""
    out: list[IgnoredMask] = []
    seen: set[str] = set()
    for d in getattr(ls, "ignored", None) or []:
        d = d if isinstance(d, dict) else dict(d)
        im = IgnoredMask(name=str(d["name"]), source=str(d.get("source") or d["name"]), reason=str(d.get("reason") or
                         "not interpreted"), did_you_mean=list(d.get("did_you_mean") or []))
        if im.name not in seen:
            seen.add(im.name)
            out.append(im)
    for raw, sugg in (getattr(ls, "unknown", None) or {}).items():
        if raw in seen or registry.canonical_name(raw) in seen:
            continue
        m = ls.masks.get(registry.canonical_name(raw))
        seen.add(raw)
        out.append(IgnoredMask(name=raw, source=m.source if m is not None else raw, reason="unknown structure name",
                               did_you_mean=list(sugg)))
    return out


def _file_sha256(path: str) -> str | None:
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while b := f.read(1 << 22):
                h.update(b)
    except OSError:
        return None
    return h.hexdigest()


def lesion_provenance(source: str, runs: list | None, _sha: dict[str, str | None] | None = None) -> LesionProvenance:
    """A lesion mask's provenance from its ``Mask.source``: a model's (``totalseg:liver_lesions#1`` with the
    matching ``ModelRun`` of ``runs``: version, checkpoint checksums) or a mask file's (path and SHA-256;
    ``_sha`` caches checksums across the lesions of one file)."""
    head, _, label = source.partition("#")
    lab = label.split()[0] if label else ""
    lab_id = int(lab) if lab.isdigit() else None
    backend = head.split(":", 1)[0]
    if backend in _MODEL_BACKENDS and ":" in head:
        run = next((r for r in runs or [] if r.source_prefix == head), None)
        task = head.split(":", 1)[1].split("/", 1)[0]
        return LesionProvenance(kind="model", label=lab_id, backend=backend, task=task,
                                model_version=run.version if run else None,
                                weights_sha256=[w.sha256 for w in run.weights if w.sha256] if run else [])
    cache = _sha if _sha is not None else {}
    if head not in cache:
        cache[head] = _file_sha256(head) if "+" not in head else None
    return LesionProvenance(kind="mask", mask_file=head, mask_sha256=cache[head], label=lab_id)


def segmentation_block(runs: list | None) -> Segmentation | None:
    """Findings.segmentation from the backends' ``ModelRun`` records (None when no model ran)."""
    if not runs:
        return None
    out = [SegmentationRun(backend=r.backend, task=r.task, version=r.version, status=r.status, seconds=r.seconds,
                           mode=r.mode, device=r.device, reason=r.reason,
                           weights=[ModelWeights(folder=w.folder, trainer=w.trainer, configuration=w.configuration,
                                                 sha256=w.sha256) for w in r.weights]) for r in runs]
    return Segmentation(runs=out, seconds=round(sum(r.seconds for r in out), 2))
