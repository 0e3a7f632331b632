"""Grounding validator: every claim in report text must be backed by the findings it cites.

Since issue 13 this is a thin interface over the claim checker (:mod:`reasoning.claims`): each
sentence is parsed into typed claims (measurement, location, attenuation, vessel per clause, stage,
count, comparison with prior, diagnosis, recommendation, negative finding, phase, organ status) and
every claim that is unsupported or not checkable is a :class:`GroundingError` whose ``kind`` names
what failed. The rules (see reasoning/claims.py for all of them):

- numbers with a unit must equal a fact of the cited findings *as rounded to the decimals written*
  (cm converted to mm: "3.9 cm" and "4 cm" match 39.0 mm, "39 mm" does not match 39.6 mm); study
  values (slice thickness), table positions and totals only when the sentence names them.
- numbers with no unit: only as a slice, a count, a segment, a stage or a ratio that is a fact.
- counts, Couinaud segments, pancreatic parts, kidney poles, laterality, organ words, vessels with
  their contact category (per clause), T stage and NCCN resectability, attenuation words: must match
  the cited findings. N, M and overall stages are never assessed.
- diagnoses, recommendations, comparisons with a prior study, "no metastases", "unremarkable",
  enhancement patterns on a single (or non-contrast) series, and clinical words the vocabulary does
  not know are errors unless a finding or a sourced rule of reasoning/knowledge.py supports them.
- citations: every cited id must exist; lesion ids written in the text (L3) must exist and be
  cited. Report level: every lesion must be cited by some sentence of the FINDINGS section.
"""

from __future__ import annotations

from dataclasses import dataclass

from perception.schema import Findings

from .claims import (  # noqa: F401
    NUM,
    SLICE_RE,
    UNIT_RE,
    VESSEL_PHRASES,
    WORD_NUM,
    ClaimChecker,
    _blank,
    _matches,
    _unit,
)


@dataclass(frozen=True)
class GroundingError:
    sentence: int  # index in the draft
    kind: str  # number | unverifiable_number | count | segment | laterality | organ | vessel | stage | attenuation | citation | missing_lesion | diagnosis | ...
    message: str

    def __str__(self) -> str:
        return f"sentence {self.sentence + 1}: [{self.kind}] {self.message}"


class Validator:
    """Checks report sentences against one Findings object (the claim checker with cited ids)."""

    def __init__(self, findings: Findings):
        self.findings = findings
        self.checker = ClaimChecker(findings)
        self.facts = self.checker.facts
        self.counts = self.checker.counts
        self.lesion_ids = self.checker.lesion_ids
        self.quotable = self.checker.quotable

    def check_sentence(self, idx: int, text: str, finding_ids: list[str]) -> list[GroundingError]:
        """Errors of one sentence citing ``finding_ids``: its unsupported and not-checkable claims."""
        return [GroundingError(idx, c.kind or c.type, c.reason) for c in self.checker._claims(text, list(finding_ids))
                if c.verdict != "supported"]

    def _blank_quotes(self, t: str) -> str:
        return self.checker._blank_quotes(t)

    def check_report(self, sentences: list[tuple[str, list[str], str]]) -> list[GroundingError]:
        """sentences: (text, finding_ids, section). Sentence checks plus report-level completeness."""
        errs = []
        for i, (text, ids, _section) in enumerate(sentences):
            errs += self.check_sentence(i, text, ids)
        cited_in_findings = {i for text, ids, sec in sentences if sec == "findings" for i in ids}
        for les in self.findings.lesions:
            if les.id not in cited_in_findings:
                errs.append(GroundingError(len(sentences), "missing_lesion",
                                           f"lesion {les.id} ({les.organ or 'no organ'}, {les.long_axis_mm:.1f} mm) is not described in FINDINGS"))
        return errs
