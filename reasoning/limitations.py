"""What the tool knows about its own reach, as text every surface shares: slice references a
radiologist can open, lower-bound sizes, lesion-search coverage, and the Technique / Limitations
sentences (Study warnings, ignored masks, organs cut by the scan edge, implausible organs).

Everything here reads Findings only. The rules it applies:

- A slice is written as the image a radiologist opens, never as a 0-based voxel index:
  ``Lesion.key_slice`` (DICOM: InstanceNumber, NIfTI: 1-based image number) when recorded; without
  it, NIfTI images are numbered axial index + 1 in file order (what ``SliceRef.image_number``
  defines), and DICOM slices are named as volume slices in position order, saying that the
  InstanceNumber is not recorded.
- "No lesion" is said only of an organ that ``Findings.lesion_search`` records as searched, naming
  what searched it. An empty ``lesion_search`` (files older than schema 1.1.0) means absence cannot
  be stated for any organ.
- A lesion with ``size_qualifier == "lower_bound"`` (or truncated by the scan edge) has sizes that
  are at least the measured values.
"""

from __future__ import annotations

import difflib

from perception.registry import ORGANS, organ_family
from perception.schema import Findings, IgnoredMask, Lesion, LesionSearch, Organ, Study

NOT_RECORDED = ("lesion-search coverage is not recorded in these findings (a findings file from an older radagent, or "
                "perception did not fill it)")


def human(name: str) -> str:
    """'kidney_left' -> 'left kidney', 'lung_upper_lobe_right' -> 'right upper lobe'."""
    if name.startswith("lung_") and "_lobe_" in name:
        part, side = name[len("lung_"):].rsplit("_", 1)
        return f"{side} {part.replace('_', ' ')}"
    n = name.replace("_", " ")
    for side in ("left", "right"):
        if n.endswith(" " + side):
            n = f"{side} {n[: -len(side) - 1]}"
    return n.strip()


# --- slices ---------------------------------------------------------------------------------------
def slice_number(les: Lesion) -> int:
    """The number written for the lesion's long-axis slice (see the module rules)."""
    ks = les.key_slice
    if ks is not None:
        return ks.instance_number if ks.instance_number is not None else ks.image_number
    return les.axial_slice + 1


def slice_phrase(les: Lesion, study: Study, table: bool = True) -> str:
    """'image 283 (table position -120.5 mm)'; never the 0-based index."""
    ks = les.key_slice
    if ks is not None:
        where = f", table position {ks.table_position_mm:.1f} mm" if table else ""
        return f"image {slice_number(les)}{where}"
    if study.source_format == "dicom":
        return (f"volume slice {slice_number(les)} (counted in slice-position order; DICOM InstanceNumber not "
                "recorded in these findings)")
    return f"image {slice_number(les)}"


def slice_ref_json(les: Lesion) -> dict:
    """The slice reference for machine-readable outputs (never the bare index alone)."""
    ks = les.key_slice
    if ks is None:
        return {"image_number": slice_number(les), "source": "axial index + 1 (key_slice not recorded)"}
    return {k: v for k, v in ks.model_dump().items() if k != "index" and v is not None}


# --- sizes ----------------------------------------------------------------------------------------
def is_lower_bound(les: Lesion) -> bool:
    return les.size_qualifier == "lower_bound" or les.status.value == "truncated_by_fov"


def size_phrase(les: Lesion) -> str:
    """'42.1 x 31.5 mm' or 'at least 42.1 x 31.5 mm (reaches the scan edge)'."""
    s = f"{les.long_axis_mm:.1f} x {les.short_axis_mm:.1f} mm"
    return f"at least {s} (reaches the scan edge)" if is_lower_bound(les) else s


def volume_phrase(les: Lesion) -> str:
    return f"{'at least ' if is_lower_bound(les) else ''}{les.volume_ml:.2f} mL"


# --- lesion search --------------------------------------------------------------------------------
def _members(f: Findings, organ: str) -> list[str]:
    """Organ names of Findings that make up ``organ`` (itself or a family's members)."""
    if f.organ(organ) is not None:
        return [organ]
    names = [o.name for o in f.organs if organ_family(o.name) == organ]
    names += [s.organ for s in f.lesion_search if organ_family(s.organ) == organ and s.organ not in names]
    return names or [organ]


def search_of(f: Findings, organ: str, kind: str | None = None) -> tuple[bool, str, list[str]]:
    """(searched, why, finding ids) for an organ or organ family: searched only when every member's
    search covers ``kind`` (None: lesions of every kind; LesionSearch.covers). ``why`` names what
    searched it, or why absence cannot be stated."""
    if not f.lesion_search:
        return False, NOT_RECORDED, ["study"]
    members = _members(f, organ)
    found = [(m, f.search_of(m)) for m in members]
    missing = [m for m, s in found if s is None]
    unsearched = [(m, s) for m, s in found if s is not None and not s.covers(kind)]
    if missing or unsearched:
        bits = [f"{human(m)}: " + (f"searched for {kinds_phrase(s)} only ({', '.join(s.by)})" if s.searched else
                                   f"not searched ({s.reason or 'no lesion mask or tumour model covers it'})")
                for m, s in unsearched]
        bits += [f"{human(m)}: no lesion-search record" for m in missing]
        hint = ignored_hint(f, organ)
        return False, "; ".join(bits) + (f"; {hint}" if hint else ""), ["study"]
    by = sorted({b for _, s in found for b in s.by})
    return True, "searched by " + ", ".join(by), ["study"]


def kinds_phrase(s: LesionSearch) -> str:
    """'cysts', 'tumours and cysts': what a partial search looked for."""
    words = {"cyst": "cysts", "tumor": "tumours", "pdac": "PDAC", "pnet": "PNET", "nodule": "nodules", "lesion": "lesions"}
    return " and ".join(words.get(k, k) for k in s.kinds) or "lesions"


def searched_phrase(s: LesionSearch) -> str:
    return "searched by " + ", ".join(s.by) if s.by else "searched"


def unsearched(f: Findings) -> list[LesionSearch]:
    return [s for s in f.lesion_search if not s.searched]


# --- ignored masks --------------------------------------------------------------------------------
def _family_words(family: str) -> set[str]:
    words = {family} | {k for k, v in ORGANS.items() if v == family}
    return {w for w in words if len(w) >= 4}


def ignored_for(f: Findings, family: str) -> list[IgnoredMask]:
    """Ignored masks that plausibly meant this organ family: a did-you-mean of the family, or a name
    that contains or closely resembles one of its organ names."""
    words = _family_words(family)
    out = []
    for m in f.ignored_masks:
        stem = m.name.lower().split(".")[0]
        if any(organ_family(d) == family or organ_family(d.split("_")[0]) == family or d.startswith(family)
               for d in m.did_you_mean):
            out.append(m)
        elif any(w in stem or stem.split("_")[0] == w for w in words):
            out.append(m)
        elif difflib.get_close_matches(stem.split("_")[0], list(words), n=1, cutoff=0.75):
            out.append(m)
    return out


def ignored_hint(f: Findings, family: str) -> str:
    ms = ignored_for(f, family)
    if not ms:
        return ""
    names = ", ".join(f"'{m.name}'" for m in ms)
    return f"the mask{'s' if len(ms) > 1 else ''} {names} {'were' if len(ms) > 1 else 'was'} not recognised, see Limitations"


# --- Limitations ----------------------------------------------------------------------------------
def _quote(s: str) -> str:
    return f'"{s}"'


def ignored_sentence(m: IgnoredMask) -> str:
    dym = f"; did you mean {', '.join(repr(d) for d in m.did_you_mean)}?" if m.did_you_mean else ""
    src = m.source.replace("\\", "/").rsplit("/", 1)[-1]
    return f"Mask '{m.name}' ({src}) was not used: {_quote(m.reason)}{dym}"


def implausible(o: Organ) -> bool:
    return o.plausibility is not None and not o.plausibility.plausible


def implausible_sentence(o: Organ) -> str:
    failed = [c.detail for c in (o.plausibility.checks if o.plausibility else []) if not c.passed]
    return (f"The {human(o.name)} mask is implausible for that organ ({'; '.join(_quote(d) for d in failed)}): nothing is "
            "derived from it.")


def limitation_texts(f: Findings) -> list[tuple[str, list[str]]]:
    """(text, finding ids) for the Limitations part, in a fixed order."""
    out: list[tuple[str, list[str]]] = []
    for w in f.study.warnings:
        out.append((f"Warning: {_quote(w)}.", ["study"]))
    for m in f.ignored_masks:
        out.append((ignored_sentence(m).rstrip(".?") + ("?" if m.did_you_mean else "."), ["study"]))
    for o in f.organs:
        if implausible(o):
            out.append((implausible_sentence(o), [f"organ:{o.name}"]))
    trunc = [o for o in f.organs if o.status.value == "truncated_by_fov"]
    if trunc:
        out.append(("Cut by the scan edge (incompletely imaged; complete volumes not measured): "
                    + ", ".join(human(o.name) for o in trunc) + ".", [f"organ:{o.name}" for o in trunc]))
    edge = [l for l in f.lesions if is_lower_bound(l)]
    if edge:
        out.append(("Lesions reaching the scan edge (sizes are lower bounds): " + ", ".join(l.id for l in edge) + ".",
                    [l.id for l in edge]))
    if not f.lesion_search:
        out.append((f"Lesion search: {NOT_RECORDED}; absence of lesions cannot be stated for any organ.", ["study"]))
    else:
        not_searched = unsearched(f)
        if not_searched:
            names = []
            for s in not_searched:
                hint = ignored_hint(f, organ_family(s.organ))
                names.append(human(s.organ) + (f" ({hint})" if hint else ""))
            out.append(("Lesions were not searched for in: " + ", ".join(names)
                        + " (not covered by any lesion mask or tumour model).", ["study"]))
        for s in partial_searches(f):
            out.append((f"The {human(s.organ)} was searched for {kinds_phrase(s)} only ({', '.join(s.by)}): other "
                        "lesions were not searched for there.", ["study"]))
    return out


def partial_searches(f: Findings) -> list[LesionSearch]:
    """Searches for some lesion kinds only (e.g. TotalSegmentator's kidney cyst labels): they ground the
    absence of those kinds, never 'no lesion'."""
    return [s for s in f.lesion_search if s.searched and not s.covers()]
