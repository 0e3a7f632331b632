"""Organ and sub-segment vocabulary: the names Findings uses, read from what people write
('left kidney' -> 'kidney_left', 'segment VIII' -> 'liver_segment_8'), and shown back."""

from __future__ import annotations

import re

from perception.registry import COUINAUD, ORGANS, SUBSEGMENTS

_FAMILIES = set(ORGANS.values())
_ORGAN_ALIASES = {
    "left_kidney": "kidney_left", "right_kidney": "kidney_right", "kidneys": "kidney", "renal": "kidney",
    "hepatic": "liver", "pancreatic": "pancreas", "splenic": "spleen", "gall_bladder": "gallbladder",
    "colonic": "colon", "bladder": "urinary_bladder", "adrenal_gland": "adrenal", "adrenals": "adrenal",
    "left_adrenal": "adrenal_gland_left", "right_adrenal": "adrenal_gland_right", "lungs": "lung",
}


def canonical_organ(name: str) -> str:
    """Organ or organ-family name as Findings spells it ('left kidney' -> 'kidney_left')."""
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    n = _ORGAN_ALIASES.get(n, n)
    if n in ORGANS or n in _FAMILIES:
        return n
    import difflib

    close = difflib.get_close_matches(n, sorted(set(ORGANS) | _FAMILIES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown organ {name!r}{hint}")


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "iva": 4, "ivb": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
_PANCREAS_PARTS = {"head": "pancreas_head", "uncinate": "pancreas_head", "body": "pancreas_body", "tail": "pancreas_tail"}


def canonical_segment(name: str) -> str:
    """Sub-segment name as Findings spells it ('segment VIII', 'S8', '8' -> 'liver_segment_8';
    'head' -> 'pancreas_head')."""
    n = name.strip().lower().replace("-", "_")
    if n in SUBSEGMENTS:
        return n
    n = re.sub(r"^(couinaud\s+)?(liver\s+)?(segment\s*|s(?=\d))", "", n).strip()
    n = re.sub(r"^(pancreas|pancreatic)[\s_]+", "", n)
    n = re.sub(r"\s+of\s+the\s+pancreas$", "", n)
    if n.isdigit() and 1 <= int(n) <= 8:
        return f"liver_segment_{int(n)}"
    if n in _ROMAN:
        return f"liver_segment_{_ROMAN[n]}"
    if n in _PANCREAS_PARTS:
        return _PANCREAS_PARTS[n]
    raise ValueError(f"unknown sub-segment {name!r} (expected liver_segment_1..8, Couinaud I-VIII, pancreas_head/body/tail, "
                     f"or one of {', '.join(sorted(SUBSEGMENTS))})")


def segment_display(seg: str) -> str:
    if seg.startswith("liver_segment_"):
        n = seg.rsplit("_", 1)[1]
        return f"liver segment {n} ({COUINAUD.get(seg, n)})"
    return seg.replace("_", " ")
