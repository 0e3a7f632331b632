"""Deterministic question answering over Findings: every DeepTumorVQA question subtype (42, in
four groups) answered from findings.json alone, with the finding ids and the rule used.

Questions arrive as (a) a :class:`Question` (subtype + parameters), (b) multiple-choice text
whose options are ``A) ...`` / ``A: ...`` / ``(A) ...`` / ``A. ...`` up to D (in the text or as
``choices``), or (c) free text. No LLM is involved. Free text is understood in two steps
(``entities``, ``parse``): the text a prompt builder puts around the question (DeepTumorVQA's 2D /
3D / video blurbs, patient and voxel-spacing lines, answer-format instructions) is removed, the
entities are read (organs with side, lesion ids and kinds, vessels, sub-segments, the measure and
unit asked, rank and aggregate, a size threshold, time references, diagnosis and recommendation
words), and a question type is chosen only when it uses every entity named; otherwise the answer is
``unmapped_question``, saying what was understood and the three closest supported questions
(never a guess). A vessel question is answered by a vessel rule or refused; a time reference goes
to "change over time", a diagnosis word to "diagnosis", advice to "recommendation" (they refuse
unless a sourced rule applies). Given the type (``subtype=``, a DeepTumorVQA file's subtype
field), only the parameters are read from the text. The unit asked is the unit answered (mm/cm,
mL/cm3/L/mm3); a size cut by the scan edge is answered "at least X" (``Answer.qualifier``
``lower_bound``), and with options only when the bound leaves one. A question the findings
cannot support is ``cannot_be_determined`` with the reason.

Subtype names are DeepTumorVQA's own (``deeptumorvqa/_data/subtype_schema.csv``); group names are
its ``question_type`` values; answer types follow its ``SUBTYPE_ANSWER_TYPE``. :data:`SUBTYPES`
is the mapping table (name, group, answer type, parameters, definition, example phrasing);
two radagent extensions (``lesion existence`` for organs DeepTumorVQA has no subtype for,
``lesion HU measurement``) are marked ``source="radagent"``.

Choices this package makes where the issue leaves them open (thresholds themselves live in
``reasoning.knowledge``, cited by key in ``Answer.rule``):

- "Largest lesion" = largest by volume (Findings orders lesions by volume, so L1 of an organ);
  "diameter" = RECIST long axis (``long_axis_mm``) unless the question says 3D/maximal 3D
  (``max_diameter_3d_mm``) or short axis. Unit mm; multiple-choice options in cm are converted.
- Organ volume includes the organ's lesions (perception's definition); organ mean HU is the host
  parenchyma (organ minus all lesions). A volume is never given for an organ truncated by the
  scan edge. For threshold questions (splenomegaly, organ enlargement) the imaged part
  (voxel_count x voxel volume) is a lower bound: above the threshold it answers "yes", otherwise
  the answer cannot be determined.
- "kidney" without a side: volumes add both kidneys (both must be measured); a mean HU needs a side.
- Lesion presence ("no") needs the organ recorded as searched in ``Findings.lesion_search``
  (by a lesion mask or a tumour model) and the organ imaged; an organ truncated by the scan edge
  answers for its imaged part, and says so.
- Lesion class (existence of kidney cyst/tumour, lesion type classification): the mask type first
  (``kidney_cyst*`` -> cyst, ``*_tumor`` -> tumour); an untyped kidney lesion by the HU rule
  (mean > 34.8 HU -> tumour). Outside the kidney an untyped lesion is a cyst when perception
  flagged it cystic (mean < 20 HU, SD <= 20), else solid.
- PDAC / PNET existence uses typed masks only (``pancreatic_pdac`` / ``pancreatic_pnet``): an
  untyped pancreatic lesion makes "no" undeterminable. PDAC vs PNET classification of an untyped
  lesion uses the attenuation heuristic (hypo -> PDAC; iso/hyper -> PNET), flagged as such.
- Tumour burden % = total lesion volume in the organ / organ volume x 100; with no lesion in a
  covered, measured organ it is 0 %.
- Liver lesion clustering (DeepTumorVQA's definition, which counts lesions): each liver lesion
  counts once, in the segment holding most of it; shares are lesion counts per segment over all
  liver lesions (a lesion outside every segment mask makes it cannot be determined).
- Inter-segment comparison counts, per segment, the lesions holding > 10 % of their volume there
  (Lesion.segments, so a lesion may count in two segments); metric=volume compares the
  per-segment lesion volume instead. Lesion count by location uses the same membership rule.
  Ties answer "equal".
- Lesion outlier with fewer than 3 lesions answers "no" (the rule needs >= 3).
- Bilateral kidney asymmetry compares total lesion volume per kidney (ratio >= 2 or one side
  without lesions -> the more affected side; else "symmetric", also when neither has a lesion).
- Multi-organ lesion burden comparison compares total lesion volume (mL) per organ family, not
  the percentage (organ volumes are often truncated).
- Organ aggregation sums organ volumes (default), lesion counts or lesion volumes over the organs.
- Tumour-organ HU difference is signed (lesion minus host); a multiple-choice option list with
  only non-negative values is matched with the absolute value.
- Largest lesion slice (DeepTumorVQA's definition): the axial slice where the lesion's
  cross-sectional area is largest (``Lesion.max_area_slice``, schema 1.2.0), answered as its 0-based
  index along the axial voxel axis in file order, the benchmark's numpy convention (its volumes are
  (512, 512, Z) NIfTI arrays). The image of the RECIST long axis as a radiologist opens it (DICOM
  InstanceNumber, else the 1-based image number) is the radagent type "lesion key slice".
- Sizes of a lesion cut by the scan edge are lower bounds (``Answer.qualifier`` "lower_bound",
  "at least ..., cut by the scan edge"); a threshold question is answered when the bound decides it.
- Fatty liver and steatosis grade are one decision (``handlers.medical_reasoning.liver_fat``):
  Kodama, the most severe grade whose HU or L/S criterion holds; fatty liver = grade G1 or worse,
  so "no fatty liver" and a grade above G0 are never both said. Both, and pancreatic steatosis,
  require a non-contrast study (else cannot be determined). Every organ HU ratio (L/S, P/S, the
  ratio question) comes from one function and needs both means above 0 HU; ratio questions name
  the organs used. An implausible organ (Organ.plausibility) answers nothing.
- Lesion absence and counts of zero read ``Findings.lesion_search`` (as the reports do): "no" only
  for a searched organ, naming what searched it; an unsearched organ, or findings without the
  record (older than schema 1.1.0), cannot be determined.
- Renal mass characterization: simple cyst -10..20 HU (inclusive), indeterminate > 20..70,
  hyperdense cyst > 70 (non-contrast only), fat-containing < -10 HU.
- Pancreatic cyst questions (resectability, pseudocyst) apply to the largest pancreatic lesion
  that is a cyst (typed cyst or flagged cystic); none -> cannot be determined. Resectability of a
  pancreatic lesion and T stage read perception's staging hints of the largest non-cystic
  pancreatic lesion; "not assessed" or "T4 not excluded" -> cannot be determined.
- Portal hypertension: only splenomegaly is assessable from Findings; present -> "yes", otherwise
  cannot be determined (caudate/right-lobe ratio, portal vein diameter, collaterals, ascites are
  not in Findings).
- Multiple choice: numeric options are parsed with their unit and converted; the nearest option
  is chosen when within tolerance (counts exact, slices +-2, else 15 % relative or a small
  absolute margin per unit) and clearly nearer than the next one (less than half its distance);
  categories are matched by normalised synonyms. No unique match -> cannot be determined, with
  the computed value kept in ``Answer.value``.

Layout (one job per module; each imports only the ones above it):

- ``subtypes``: the mapping table (:data:`SUBTYPES`, :class:`Subtype`) and subtype names;
- ``vocabulary``: organ, vessel and sub-segment words (re-exported from :mod:`reasoning.vocabulary`);
- ``question``: the typed :class:`Question` and :class:`Answer`;
- ``result``: what a handler returns (``_Result``) or raises (``_Cannot``);
- ``lookup``: reading organs and lesions out of Findings for the handlers;
- ``handlers``: one handler per subtype, by group (``recognition``, ``measurement``,
  ``visual_reasoning``, ``medical_reasoning``), and the subtype -> handler table;
- ``entities``: prompt wrappers removed, :class:`QuestionEntities` read from the text;
- ``parse``: entities -> a question type that uses them all (:func:`understand`, :func:`parse_question`);
- ``choices``: multiple-choice options and matching the computed value to one;
- ``answering``: :func:`answer`, the entry point;
- ``qa``: :func:`generate_qa`, QA pairs for datasets.
"""

from __future__ import annotations

from reasoning.vqa.answering import answer
from reasoning.vqa.choices import Option, parse_choices, split_choices
from reasoning.vqa.entities import QuestionEntities, extract_entities, strip_prompt
from reasoning.vqa.parse import Understanding, parse_question, understand
from reasoning.vqa.qa import generate_qa
from reasoning.vqa.question import Answer, Question, Scalar, Status_
from reasoning.vqa.subtypes import (
                                    DEEPTUMORVQA_SUBTYPES,
                                    GROUPS,
                                    SUBTYPES,
                                    AnswerType,
                                    Group,
                                    Subtype,
                                    canonical_subtype,
                                    supported_questions,
)
from reasoning.vqa.vocabulary import canonical_organ, canonical_segment, segment_display

__all__ = [
    "DEEPTUMORVQA_SUBTYPES", "GROUPS", "SUBTYPES", "Answer", "AnswerType", "Group", "Option", "Question", "QuestionEntities",
    "Scalar", "Status_", "Subtype", "Understanding", "answer", "canonical_organ", "canonical_segment", "canonical_subtype",
    "extract_entities", "generate_qa", "parse_choices", "parse_question", "segment_display", "split_choices", "strip_prompt",
    "supported_questions", "understand",
]
