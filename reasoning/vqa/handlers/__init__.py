"""One handler per subtype, ``(Findings, Question) -> _Result`` (or ``_Cannot``), by group; the
table :data:`_HANDLERS` maps every subtype of :data:`SUBTYPES` to its handler."""

from __future__ import annotations

from typing import Callable

from perception.schema import Findings
from reasoning.vqa.handlers.clinical import _h_change, _h_diagnosis, _h_recommendation
from reasoning.vqa.handlers.lesion_facts import (_h_completeness, _h_composition, _h_key_slice, _h_kidney_t, _h_recist,
                                                 _h_size, _h_size_threshold)
from reasoning.vqa.handlers.measurement import (_h_burden, _h_hu_ratio, _h_lesion_hu, _h_lesion_volume, _h_organ_hu,
                                                _h_organ_volume)
from reasoning.vqa.handlers.medical_reasoning import (_h_cyst_resect, _h_fatty_liver, _h_lesion_type,
                                                      _h_pancreatic_steatosis, _h_pdac_vs_pnet, _h_portal_htn,
                                                      _h_pseudocyst, _h_renal_mass, _h_resectability, _h_spleno_grade,
                                                      _h_steatosis_grade, _h_t_stage)
from reasoning.vqa.handlers.recognition import (_h_exist_fixed, _h_kidney_exist, _h_lesion_existence, _h_splenomegaly,
                                                _typed_existence)
from reasoning.vqa.handlers.study import _h_contrast_phase, _h_organ_status, _h_search_coverage
from reasoning.vqa.handlers.vessels import (_h_involved_vessels, _h_vessel_angle, _h_vessel_category, _h_vessel_involvement,
                                            _h_vessel_length)
from reasoning.vqa.handlers.visual_reasoning import (_h_adjacent, _h_aggregation, _h_asymmetry, _h_attenuation,
                                                     _h_clustering, _h_count_location, _h_counting, _h_diameter,
                                                     _h_enlargement, _h_hu_difference, _h_inter_segment,
                                                     _h_kidney_volume_cmp, _h_location, _h_multi_organ, _h_outlier,
                                                     _h_slice)
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Result
from reasoning.vqa.subtypes import SUBTYPES

_HANDLERS: dict[str, Callable[[Findings, Question], _Result]] = {
    "PDAC existence": _typed_existence("pdac"),
    "PNET existence": _typed_existence("pnet"),
    "colon lesion existence": _h_exist_fixed("colon"),
    "kidney cyst existence": _h_kidney_exist("cyst"),
    "kidney lesion existence": _h_kidney_exist(None),
    "kidney tumor existence": _h_kidney_exist("tumor"),
    "liver lesion existence": _h_exist_fixed("liver"),
    "pancreatic lesion existence": _h_exist_fixed("pancreas"),
    "splenomegaly detection": _h_splenomegaly,
    "lesion volume measurement": _h_lesion_volume,
    "organ HU measurement": _h_organ_hu,
    "organ HU ratio": _h_hu_ratio,
    "organ volume measurement": _h_organ_volume,
    "tumor burden percentage": _h_burden,
    "adjacent organ": _h_adjacent,
    "bilateral kidney asymmetry": _h_asymmetry,
    "inter-segment comparison": _h_inter_segment,
    "kidney volume comparison": _h_kidney_volume_cmp,
    "largest lesion attenuation": _h_attenuation,
    "largest lesion diameter": _h_diameter,
    "largest lesion location": _h_location,
    "largest lesion slice": _h_slice,
    "lesion count by location": _h_count_location,
    "lesion counting": _h_counting,
    "lesion outlier": _h_outlier,
    "liver lesion clustering": _h_clustering,
    "multi-organ lesion burden comparison": _h_multi_organ,
    "organ aggregation": _h_aggregation,
    "organ enlargement": _h_enlargement,
    "tumor organ HU difference": _h_hu_difference,
    "PDAC vs PNET classification": _h_pdac_vs_pnet,
    "fatty liver": _h_fatty_liver,
    "hepatic steatosis grading": _h_steatosis_grade,
    "lesion type classification": _h_lesion_type,
    "pancreatic cyst resectability": _h_cyst_resect,
    "pancreatic lesion resectability": _h_resectability,
    "pancreatic steatosis": _h_pancreatic_steatosis,
    "pancreatic tumor staging": _h_t_stage,
    "portal hypertension assessment": _h_portal_htn,
    "pseudocyst determination": _h_pseudocyst,
    "renal mass characterization": _h_renal_mass,
    "splenomegaly grading": _h_spleno_grade,
    "lesion existence": _h_lesion_existence,
    "lesion HU measurement": _h_lesion_hu,
    "vessel involvement": _h_vessel_involvement,
    "vessel contact category": _h_vessel_category,
    "vessel contact angle": _h_vessel_angle,
    "vessel contact length": _h_vessel_length,
    "involved vessels": _h_involved_vessels,
    "lesion short axis": _h_size("short_axis"),
    "lesion 3D diameter": _h_size("3d"),
    "lesion size threshold": _h_size_threshold,
    "RECIST measurability": _h_recist,
    "lesion composition": _h_composition,
    "kidney tumor staging": _h_kidney_t,
    "contrast phase": _h_contrast_phase,
    "lesion completeness": _h_completeness,
    "organ status": _h_organ_status,
    "lesion search coverage": _h_search_coverage,
    "lesion key slice": _h_key_slice,
    "change over time": _h_change,
    "diagnosis": _h_diagnosis,
    "recommendation": _h_recommendation,
}
if set(_HANDLERS) != set(SUBTYPES):  # pragma: no cover - programming error
    raise RuntimeError(f"handlers and subtypes differ: {set(_HANDLERS) ^ set(SUBTYPES)}")
