"""The mapping table: every question subtype (DeepTumorVQA's 42 and radagent's extensions)
with its group, answer type, parameters, definition and example phrasing; subtype names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Group = Literal["recognition", "measurement", "visual reasoning", "medical reasoning"]
AnswerType = Literal["numeric", "binary", "categorical"]
GROUPS: tuple[str, ...] = ("recognition", "measurement", "visual reasoning", "medical reasoning")


@dataclass(frozen=True)
class Subtype:
    """One row of the mapping table."""

    name: str
    group: str
    answer_type: str
    params: tuple[str, ...]
    definition: str
    example: str
    source: Literal["DeepTumorVQA", "radagent"] = "DeepTumorVQA"


def _s(name, group, atype, params, definition, example, source="DeepTumorVQA") -> Subtype:
    return Subtype(name, group, atype, tuple(params.split()) if params else (), definition, example, source)


_R, _M, _V, _MR = GROUPS
SUBTYPES: dict[str, Subtype] = {s.name: s for s in (
    # recognition
    _s("PDAC existence", _R, "binary", "", "a pancreatic lesion typed PDAC (pancreatic_pdac mask)", "Is there a PDAC in the pancreas?"),
    _s("PNET existence", _R, "binary", "", "a pancreatic lesion typed PNET (pancreatic_pnet mask)", "Is there a pancreatic neuroendocrine tumor (PNET)?"),
    _s("colon lesion existence", _R, "binary", "", "any lesion in the colon/rectum", "Is there a lesion in the colon?"),
    _s("kidney cyst existence", _R, "binary", "organ", "a kidney lesion classed cyst (mask type, else HU <= 34.8)", "Is there a cyst in the kidneys?"),
    _s("kidney lesion existence", _R, "binary", "organ", "any kidney lesion (organ = kidney, kidney_left, kidney_right)", "Is there evidence of a lesion in the right kidney?"),
    _s("kidney tumor existence", _R, "binary", "organ", "a kidney lesion classed tumour (mask type, else HU > 34.8)", "Is there a tumor in the left kidney?"),
    _s("liver lesion existence", _R, "binary", "", "any liver lesion", "Is there a lesion in the liver?"),
    _s("pancreatic lesion existence", _R, "binary", "", "any pancreatic lesion", "Is there a lesion in the pancreas?"),
    _s("splenomegaly detection", _R, "binary", "", "spleen volume > 314.5 mL", "Does the patient have splenomegaly?"),
    # measurement
    _s("lesion volume measurement", _M, "numeric", "organ lesion_id aggregate", "volume of the largest lesion (aggregate=total: all lesions) in the organ, mL", "What is the volume of the largest liver lesion?"),
    _s("organ HU measurement", _M, "numeric", "organ", "mean HU of the organ parenchyma (organ minus lesions)", "What is the mean HU of the spleen?"),
    _s("organ HU ratio", _M, "numeric", "organs", "mean HU of organs[0] / mean HU of organs[1] (default liver/spleen)", "What is the liver-to-spleen HU ratio?"),
    _s("organ volume measurement", _M, "numeric", "organ", "organ volume including its lesions, mL (not for truncated organs)", "What is the volume of the liver?"),
    _s("tumor burden percentage", _M, "numeric", "organ", "total lesion volume / organ volume x 100", "What percentage of the pancreas is occupied by tumor?"),
    # visual reasoning
    _s("adjacent organ", _V, "categorical", "organ lesion_id", "nearest other organ within 3 mm of the (largest) lesion", "Which organ is adjacent to the largest liver lesion?"),
    _s("bilateral kidney asymmetry", _V, "categorical", "", "kidney with >= 2x the lesion volume of the other, else symmetric", "Which kidney has the greater lesion burden?"),
    _s("inter-segment comparison", _V, "categorical", "organ segments metric direction", "segment with more lesions (metric=volume: more lesion volume)", "Which liver segment has more lesions, segment 7 or segment 8?"),
    _s("kidney volume comparison", _V, "categorical", "direction", "the larger (direction=smaller: smaller) kidney by volume", "Which kidney is larger?"),
    _s("largest lesion attenuation", _V, "categorical", "organ lesion_id", "hypo/iso/hyperattenuating vs the host organ (margin 10 HU)", "Is the largest liver lesion hypoattenuating, isoattenuating or hyperattenuating?"),
    _s("largest lesion diameter", _V, "numeric", "organ lesion_id diameter", "RECIST long axis of the largest lesion, mm", "What is the diameter of the largest liver lesion?"),
    _s("largest lesion location", _V, "categorical", "organ lesion_id", "sub-segment holding the largest share of the largest lesion", "Which Couinaud segment contains the largest liver lesion?"),
    _s("largest lesion slice", _V, "numeric", "organ lesion_id", "axial slice where the (largest) lesion's cross-sectional area is largest, in DeepTumorVQA's slice index convention", "On which axial slice is the largest liver lesion biggest?"),
    _s("lesion count by location", _V, "numeric", "organ location", "lesions holding > 10 % of their volume in the location (segment or organ)", "How many lesions are in liver segment 8?"),
    _s("lesion counting", _V, "numeric", "organ", "number of lesions in the organ", "How many lesions are in the liver?"),
    _s("lesion outlier", _V, "binary", "organ", ">= 3 lesions and largest >= 3x second largest", "Is the largest liver lesion an outlier in size?"),
    _s("liver lesion clustering", _V, "categorical", "", "highly clustered / somewhat clustered / widely distributed by the count of liver lesions per segment (DeepTumorVQA's definition)", "Are the liver lesions clustered or widely distributed?"),
    _s("multi-organ lesion burden comparison", _V, "categorical", "organs direction", "organ family with the most lesion volume", "Which organ has the greater lesion burden, the liver or the kidneys?"),
    _s("organ aggregation", _V, "numeric", "organs measure", "sum of organ volumes (measure=lesion_count / lesion_volume)", "What is the combined volume of both kidneys?"),
    _s("organ enlargement", _V, "binary", "organ", "organ volume above its reference", "Is the liver enlarged?"),
    _s("tumor organ HU difference", _V, "numeric", "organ lesion_id", "lesion mean HU minus host organ mean HU", "What is the HU difference between the largest liver lesion and the liver?"),
    # medical reasoning
    _s("PDAC vs PNET classification", _MR, "categorical", "lesion_id", "mask type, else attenuation heuristic", "Is the pancreatic lesion more likely PDAC or PNET?"),
    _s("fatty liver", _MR, "binary", "", "Kodama steatosis grade G1 or worse (liver < 58 HU or L/S < 1.0) on non-contrast CT, the same decision as steatosis grading", "Does the patient have fatty liver?"),
    _s("hepatic steatosis grading", _MR, "categorical", "", "Kodama grade G0-G3 on non-contrast CT", "What is the grade of hepatic steatosis?"),
    _s("lesion type classification", _MR, "categorical", "organ lesion_id", "kidney lesion: cyst or tumour (mask type, else 34.8 HU)", "Is the kidney lesion a cyst or a tumor?"),
    _s("pancreatic cyst resectability", _MR, "binary", "lesion_id", "cyst volume > 3.0 mL or diameter > 30 mm", "Should the pancreatic cyst be resected?"),
    _s("pancreatic lesion resectability", _MR, "categorical", "lesion_id", "NCCN category from the staging hint", "Is the pancreatic tumor resectable?"),
    _s("pancreatic steatosis", _MR, "binary", "", "P/S HU ratio < 0.70 on non-contrast CT", "Is there pancreatic steatosis?"),
    _s("pancreatic tumor staging", _MR, "categorical", "lesion_id", "AJCC 8 T from the staging hint", "What is the T stage of the pancreatic tumor?"),
    _s("portal hypertension assessment", _MR, "binary", "", "splenomegaly as the assessable sign", "Are there signs of portal hypertension?"),
    _s("pseudocyst determination", _MR, "binary", "lesion_id", "pancreatic cyst mean > 14.5 HU", "Is the pancreatic cyst a pseudocyst?"),
    _s("renal mass characterization", _MR, "categorical", "organ lesion_id", "simple cyst / indeterminate / hyperdense cyst / fat-containing by HU", "How would you characterize the renal mass?"),
    _s("splenomegaly grading", _MR, "categorical", "", "normal / mild / moderate / severe by spleen volume", "How would you classify the splenic enlargement based on volume?"),
    # radagent extensions (not DeepTumorVQA subtypes)
    _s("lesion existence", _R, "binary", "organ lesion_kind", "any lesion in an organ without a DeepTumorVQA subtype", "Is there a lesion in the spleen?", "radagent"),
    _s("lesion HU measurement", _M, "numeric", "organ lesion_id", "mean HU of the (largest) lesion", "What is the mean HU of the largest liver lesion?", "radagent"),
    _s("vessel involvement", _V, "binary", "organ lesion_id rank vessel",
       "the lesion contacts the vessel (abutment or encasement); no vessel: any assessed vessel",
       "Does the pancreatic tumor contact the superior mesenteric artery?", "radagent"),
    _s("vessel contact category", _V, "categorical", "organ lesion_id rank vessel",
       "none / abutment (0 < angle <= 180 deg) / encasement (> 180 deg) of the vessel by the lesion",
       "Does the tumor abut or encase the aorta?", "radagent"),
    _s("vessel contact angle", _V, "numeric", "organ lesion_id rank vessel unit",
       "maximal circumferential contact angle of the lesion around the vessel, deg",
       "How many degrees of the aorta's circumference does the tumor contact?", "radagent"),
    _s("vessel contact length", _V, "numeric", "organ lesion_id rank vessel unit",
       "length of the vessel in contact with the lesion, mm", "Over what length does the tumor contact the inferior vena cava?",
       "radagent"),
    _s("involved vessels", _V, "categorical", "organ lesion_id rank",
       "the assessed vessels the lesion contacts, comma-separated, or none", "Which vessels does the pancreatic tumor involve?",
       "radagent"),
    _s("lesion short axis", _M, "numeric", "organ lesion_id rank unit",
       "short axis (longest diameter perpendicular to the long axis on its slice), mm; a lower bound when cut by the scan edge",
       "What is the short axis of the largest liver lesion?", "radagent"),
    _s("lesion 3D diameter", _M, "numeric", "organ lesion_id rank unit",
       "maximal 3D (Feret) diameter, mm; a lower bound when cut by the scan edge",
       "What is the maximal 3D diameter of the largest liver lesion?", "radagent"),
    _s("lesion size threshold", _M, "binary", "organ lesion_id rank diameter threshold_mm direction",
       "is the long axis (short axis, 3D diameter) larger (smaller) than the threshold; a lower-bound size decides when the "
       "bound does", "Is the largest liver lesion larger than 2 cm?", "radagent"),
    _s("RECIST measurability", _MR, "binary", "organ lesion_id rank",
       "RECIST 1.1 measurable: long axis >= 10 mm (and >= 2x slice thickness above 5 mm slices)",
       "Is the liver lesion measurable by RECIST?", "radagent"),
    _s("lesion composition", _V, "categorical", "organ lesion_id rank",
       "cystic / fat-containing / calcified by the composition rules; solid only when every rule ran and none applied",
       "Is the largest liver lesion cystic or solid?", "radagent"),
    _s("kidney tumor staging", _MR, "categorical", "organ lesion_id rank", "AJCC 8 kidney T category from the staging hint",
       "What is the T stage of the kidney tumor?", "radagent"),
    _s("contrast phase", _R, "categorical", "", "contrast phase of the study: non_contrast / arterial / portal_venous / delayed",
       "In which contrast phase was the CT acquired?", "radagent"),
    _s("lesion completeness", _R, "binary", "organ lesion_id rank",
       "yes when the lesion is completely imaged, no when it is cut by the scan edge",
       "Is the liver lesion completely imaged?", "radagent"),
    _s("organ status", _R, "categorical", "organ",
       "measured / incompletely imaged (truncated by the scan edge) / absent / not found / failed / not segmented",
       "Is the whole liver within the scan?", "radagent"),
    _s("lesion search coverage", _R, "binary", "organ lesion_kind",
       "were lesions searched for in the organ (by which mask or model)", "Was the liver searched for lesions?", "radagent"),
    _s("lesion key slice", _V, "numeric", "organ lesion_id rank",
       "image number of the lesion's RECIST long axis (DICOM InstanceNumber, else the 1-based image number)",
       "On which image is the long axis of the liver lesion measured?", "radagent"),
    _s("change over time", _MR, "binary", "organ lesion_id rank",
       "growth or change since a prior study: answered from a comparison with the priors (comparison.json); "
       "never determinable from one study's findings alone",
       "Has the liver lesion grown since the prior scan?", "radagent"),
    _s("diagnosis", _MR, "categorical", "organ lesion_id rank diagnosis",
       "a diagnosis only where a sourced rule in reasoning.knowledge supports it, else cannot be determined",
       "Is the largest liver lesion benign?", "radagent"),
    _s("recommendation", _MR, "categorical", "organ lesion_id rank",
       "follow-up / biopsy / treatment advice only where a sourced rule applies, else cannot be determined",
       "Should the liver lesion be biopsied?", "radagent"),
)}
DEEPTUMORVQA_SUBTYPES: tuple[str, ...] = tuple(n for n, s in SUBTYPES.items() if s.source == "DeepTumorVQA")

_KEY = re.compile(r"[^a-z0-9]")


def _subtype_key(name: str) -> str:
    return _KEY.sub("", name.lower())


_SUBTYPE_BY_KEY = {_subtype_key(n): n for n in SUBTYPES}


def canonical_subtype(name: str) -> str:
    """DeepTumorVQA spelling of a subtype name ('lesion_counting' -> 'lesion counting')."""
    k = _subtype_key(name)
    if k in _SUBTYPE_BY_KEY:
        return _SUBTYPE_BY_KEY[k]
    import difflib

    close = difflib.get_close_matches(name.lower().replace("_", " "), [n.lower() for n in SUBTYPES], n=3, cutoff=0.5)
    close = [next(n for n in SUBTYPES if n.lower() == c) for c in close]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown question subtype {name!r}{hint} (expected one of: {', '.join(SUBTYPES)})")


def supported_questions() -> str:
    """The question types and an example of each (for 'unmapped question' messages and help)."""
    return "; ".join(f"{s.name} (e.g. '{s.example}')" for s in SUBTYPES.values())
