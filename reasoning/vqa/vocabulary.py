"""Organ and sub-segment vocabulary for VQA: re-exported from :mod:`reasoning.vocabulary` (the one
place organ words, aliases, vessel phrases, Roman numerals and segment spellings are written)."""

from __future__ import annotations

from reasoning.vocabulary import (
                                  _FAMILIES,  # noqa: F401  (lookup imports it)
                                  CYST_WORDS,
                                  LESION_WORDS,
                                  ORGAN_ALIASES,
                                  ORGAN_PATTERNS,
                                  PANCREAS_PARTS,
                                  ROMAN,
                                  TUMOR_WORDS,
                                  VESSEL_GENERIC,
                                  VESSEL_PHRASES,
                                  canonical_organ,
                                  canonical_segment,
                                  organs_in,
                                  segment_benchmark,
                                  segment_display,
                                  segment_number,
                                  vessel_display,
                                  vessels_in,
)

# former private names, kept for importers
_ROMAN = ROMAN
_PANCREAS_PARTS = PANCREAS_PARTS
_ORGAN_ALIASES = ORGAN_ALIASES

__all__ = [
    "CYST_WORDS", "LESION_WORDS", "ORGAN_ALIASES", "ORGAN_PATTERNS", "PANCREAS_PARTS", "ROMAN", "TUMOR_WORDS", "VESSEL_GENERIC",
    "VESSEL_PHRASES", "canonical_organ", "canonical_segment", "organs_in", "segment_benchmark", "segment_display",
    "segment_number", "vessel_display", "vessels_in",
]
