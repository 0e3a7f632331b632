"""Label vocabulary, aliases and clinical thresholds: plain data, read by code, CLI and tests.

Nothing here imports torch or touches voxels. Canonical structure names follow
TotalSegmentator where it has one; AbdomenAtlas and other spellings are aliases.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# --- structure categories ----------------------------------------------------------------------
ORGANS = {
    # name: organ family (used to group sub-segments and lesions)
    "liver": "liver", "gallbladder": "gallbladder", "pancreas": "pancreas", "spleen": "spleen",
    "kidney_left": "kidney", "kidney_right": "kidney", "adrenal_gland_left": "adrenal",
    "adrenal_gland_right": "adrenal", "stomach": "stomach", "duodenum": "duodenum",
    "small_bowel": "small_bowel", "colon": "colon", "rectum": "colon", "esophagus": "esophagus",
    "urinary_bladder": "urinary_bladder", "prostate": "prostate", "lung_left": "lung",
    "lung_right": "lung", "lung": "lung", "heart": "heart", "thyroid_gland": "thyroid_gland",
    "brain": "brain", "trachea": "trachea",
}

# Sub-segments: name -> host organ family. Lung lobes are sub-segments of "lung".
SUBSEGMENTS = {
    **{f"liver_segment_{i}": "liver" for i in range(1, 9)},
    "pancreas_head": "pancreas", "pancreas_body": "pancreas", "pancreas_tail": "pancreas",
    "lung_upper_lobe_left": "lung", "lung_lower_lobe_left": "lung", "lung_upper_lobe_right": "lung",
    "lung_middle_lobe_right": "lung", "lung_lower_lobe_right": "lung",
}
COUINAUD = {f"liver_segment_{i}": n for i, n in enumerate(["I", "II", "III", "IVa/b", "V", "VI", "VII", "VIII"], 1)}
COUINAUD["liver_segment_4"] = "IV"

VESSELS = {
    # name: (kind, display name)
    "aorta": ("artery", "aorta"),
    "celiac_trunk": ("artery", "celiac trunk"),
    "superior_mesenteric_artery": ("artery", "superior mesenteric artery"),
    "common_hepatic_artery": ("artery", "common hepatic artery"),
    "hepatic_artery": ("artery", "hepatic artery"),
    "splenic_artery": ("artery", "splenic artery"),
    "renal_artery_left": ("artery", "left renal artery"),
    "renal_artery_right": ("artery", "right renal artery"),
    "inferior_vena_cava": ("vein", "inferior vena cava"),
    "portal_vein_and_splenic_vein": ("vein", "portal/splenic vein"),
    "portal_vein": ("vein", "portal vein"),
    "splenic_vein": ("vein", "splenic vein"),
    "superior_mesenteric_vein": ("vein", "superior mesenteric vein"),
    "renal_vein_left": ("vein", "left renal vein"),
    "renal_vein_right": ("vein", "right renal vein"),
    "hepatic_vein": ("vein", "hepatic veins"),
    "liver_vessels": ("vein", "hepatic vessels"),
    "iliac_artery_left": ("artery", "left iliac artery"),
    "iliac_artery_right": ("artery", "right iliac artery"),
    "iliac_vena_left": ("vein", "left iliac vein"),
    "iliac_vena_right": ("vein", "right iliac vein"),
    "pulmonary_artery": ("artery", "pulmonary artery"),
    "superior_vena_cava": ("vein", "superior vena cava"),
}

# Lesion masks: exact names -> (organ or None when it comes from overlap, lesion kind)
LESIONS = {
    "liver_lesion": ("liver", "lesion"), "liver_tumor": ("liver", "tumor"),
    "liver_lesions": ("liver", "lesion"), "liver_cyst": ("liver", "cyst"),
    "hepatic_tumor": ("liver", "tumor"),
    "pancreatic_lesion": ("pancreas", "lesion"), "pancreatic_tumor": ("pancreas", "tumor"),
    "pancreatic_pdac": ("pancreas", "pdac"), "pancreatic_pnet": ("pancreas", "pnet"),
    "pancreatic_cyst": ("pancreas", "cyst"), "pancreas_lesion": ("pancreas", "lesion"),
    "pancreas_tumor": ("pancreas", "tumor"),
    "kidney_lesion": ("kidney", "lesion"), "kidney_tumor": ("kidney", "tumor"),
    "kidney_cyst": ("kidney", "cyst"),
    "kidney_cyst_left": ("kidney_left", "cyst"), "kidney_cyst_right": ("kidney_right", "cyst"),
    "kidney_tumor_left": ("kidney_left", "tumor"), "kidney_tumor_right": ("kidney_right", "tumor"),
    "spleen_lesion": ("spleen", "lesion"), "colon_lesion": ("colon", "lesion"),
    "colon_tumor": ("colon", "tumor"), "stomach_lesion": ("stomach", "lesion"),
    "esophagus_lesion": ("esophagus", "lesion"), "bladder_lesion": ("urinary_bladder", "lesion"),
    "gallbladder_lesion": ("gallbladder", "lesion"), "adrenal_lesion": ("adrenal", "lesion"),
    "lung_nodules": ("lung", "nodule"), "lung_nodule": ("lung", "nodule"),
    "lung_lesion": ("lung", "lesion"), "lung_tumor": ("lung", "tumor"),
    "lesion": (None, "lesion"), "lesions": (None, "lesion"), "tumor": (None, "tumor"),
    "tumour": (None, "tumor"), "gtv": (None, "tumor"), "nodule": (None, "nodule"),
}

ALIASES = {
    "postcava": "inferior_vena_cava", "ivc": "inferior_vena_cava", "vena_cava_inferior": "inferior_vena_cava",
    "gall_bladder": "gallbladder", "sma": "superior_mesenteric_artery", "smv": "superior_mesenteric_vein",
    "celiac_artery": "celiac_trunk", "celiac_axis": "celiac_trunk", "cha": "common_hepatic_artery",
    "hepatic_vessel": "liver_vessels", "hepatic_veins": "hepatic_vein", "intestine": "small_bowel",
    "bladder": "urinary_bladder", "pv": "portal_vein", "portal_vein_and_splenic": "portal_vein_and_splenic_vein",
    "left_kidney": "kidney_left", "right_kidney": "kidney_right", "kidney_l": "kidney_left",
    "kidney_r": "kidney_right", "adrenal_gland_l": "adrenal_gland_left", "adrenal_gland_r": "adrenal_gland_right",
    "lung_tumors": "lung_tumor", "liver_tumors": "liver_tumor", "pancreatic_tumors": "pancreatic_tumor",
    "kidney_tumors": "kidney_tumor", "kidney_cysts": "kidney_cyst", "kidney_lesions": "kidney_lesion",
    "pancreatic_lesions": "pancreatic_lesion", "ct_mask": "gtv", "mask": "lesion",
}

# Everything else TotalSegmentator knows (bones, muscles, ...) is accepted as "other".
_LESION_PATTERN = re.compile(r"^(?P<organ>[a-z_]+?)_(lesion|lesions|tumor|tumors|tumour|cyst|cysts|nodule|nodules)(_(left|right))?$")

PANCREAS_ADJECTIVE = {"pancreatic": "pancreas", "hepatic": "liver", "renal": "kidney", "splenic": "spleen"}


@lru_cache(maxsize=1)
def totalseg_class_maps() -> dict[str, dict[int, str]]:
    """TotalSegmentator class maps (task -> id -> name), shipped as data."""
    text = resources.files("perception").joinpath("data/totalseg_class_map.json").read_text()
    return {task: {int(k): v for k, v in m.items()} for task, m in json.loads(text).items()}


@lru_cache(maxsize=1)
def _known_names() -> frozenset[str]:
    names = set(ORGANS) | set(SUBSEGMENTS) | set(VESSELS) | set(LESIONS)
    for m in totalseg_class_maps().values():
        names.update(m.values())
    return frozenset(names)


def known_names() -> list[str]:
    return sorted(_known_names())


@dataclass(frozen=True)
class Structure:
    name: str  # canonical
    category: str  # organ | subsegment | vessel | lesion | other
    family: str | None  # organ family for organ/subsegment/lesion
    lesion_kind: str | None = None


def canonical_name(raw: str) -> str:
    """Normalise a file stem or label to the canonical structure name (no validation)."""
    n = raw.strip().lower().replace("-", "_").replace(" ", "_")
    n = ALIASES.get(n, n)
    return _lower_to_known().get(n, n)


@lru_cache(maxsize=1)
def _lower_to_known() -> dict[str, str]:
    return {k.lower(): k for k in _known_names()}


def classify(name: str) -> Structure | None:
    """Category of a canonical name; None when radagent does not know it."""
    if name in LESIONS:
        organ, kind = LESIONS[name]
        return Structure(name, "lesion", organ, kind)
    if name in SUBSEGMENTS:
        return Structure(name, "subsegment", SUBSEGMENTS[name])
    if name in VESSELS:
        return Structure(name, "vessel", None)
    if name in ORGANS:
        return Structure(name, "organ", ORGANS[name])
    m = _LESION_PATTERN.match(name)
    if m:
        organ = PANCREAS_ADJECTIVE.get(m.group("organ"), m.group("organ"))
        side = m.group(4)
        if organ in ORGANS or organ in set(ORGANS.values()):
            target = f"{organ}_{side}" if side and f"{organ}_{side}" in ORGANS else organ
            kind = {"lesions": "lesion", "tumors": "tumor", "tumour": "tumor", "cysts": "cyst", "nodules": "nodule"}.get(m.group(2), m.group(2))
            return Structure(name, "lesion", target, kind)
    if name in _known_names():
        return Structure(name, "other", None)
    return None


def did_you_mean(name: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, known_names(), n=n, cutoff=0.6)


def organ_family(organ: str) -> str:
    return ORGANS.get(organ, organ)


# --- clinical thresholds (each with its source) -------------------------------------------------
THRESHOLDS: dict[str, dict] = {
    "splenomegaly_volume_ml": {
        "value": 314.5, "unit": "mL", "rule": "spleen volume > 314.5 mL",
        "source": "Linguraru et al., AJR 2013 (CT splenic volume); DeepTumorVQA splenomegaly threshold",
    },
    "splenomegaly_grades_ml": {
        "value": [314.5, 500.0, 800.0], "unit": "mL",
        "rule": "normal < 314.5; mild 314.5-500; moderate 500-800; severe > 800 mL",
        "source": "DeepTumorVQA splenomegaly grading",
    },
    "hepatomegaly_volume_ml": {
        "value": 2200.0, "unit": "mL", "rule": "liver volume > 2200 mL",
        "source": "CT liver volumetry, upper reference ~2.2 L (e.g. Kromrey et al., Eur Radiol 2018)",
    },
    "liver_steatosis_hu": {
        "value": 40.0, "unit": "HU", "rule": "liver mean HU < 40 on non-contrast CT",
        "source": "Kodama et al., AJR 2007; Pickhardt et al., AJR 2012", "requires_phase": "non_contrast",
    },
    "liver_spleen_ratio": {
        "value": 1.0, "unit": "ratio", "rule": "liver/spleen HU ratio < 1.0 on non-contrast CT",
        "source": "Iwasaki et al. 2004; Kodama et al., AJR 2007", "requires_phase": "non_contrast",
    },
    "pancreatic_steatosis_ps_ratio": {
        "value": 0.70, "unit": "ratio", "rule": "pancreas/spleen HU ratio < 0.70 on non-contrast CT",
        "source": "Kim et al., AJR 2014 (P/S ratio); DeepTumorVQA", "requires_phase": "non_contrast",
    },
    "recist_min_long_axis_mm": {
        "value": 10.0, "unit": "mm", "rule": "long axis >= 10 mm, and >= 2x slice thickness when slices > 5 mm",
        "source": "Eisenhauer et al., RECIST 1.1, Eur J Cancer 2009",
    },
    "cystic_max_hu": {"value": 20.0, "unit": "HU", "rule": "mean < 20 HU with SD <= 20 HU", "source": "radagent default (simple-cyst range -10..20 HU, Bosniak 2019)"},
    "fat_max_hu": {"value": -10.0, "unit": "HU", "rule": "mean < -10 HU", "source": "radagent default (macroscopic fat)"},
    "calcified_min_hu": {"value": 130.0, "unit": "HU", "rule": ">= 5 % of voxels > 130 HU", "source": "radagent default (calcification > 130 HU, Agatston threshold)"},
}

# AJCC 8th edition T-stage size cut-offs (greatest dimension, mm)
PANCREAS_T_MM = [(20.0, "T1"), (40.0, "T2")]  # > 40 -> T3; T4 by arterial involvement
KIDNEY_T_MM = [(40.0, "T1a"), (70.0, "T1b"), (100.0, "T2a")]  # > 100 -> T2b
PANCREAS_T4_ARTERIES = ("celiac_trunk", "superior_mesenteric_artery", "common_hepatic_artery")
PANCREAS_VEINS = ("superior_mesenteric_vein", "portal_vein", "portal_vein_and_splenic_vein")


# Display windows (width, level) in HU for key images, by organ family.
WINDOWS = {
    "liver": (150.0, 60.0), "lung": (1500.0, -600.0), "bone": (2000.0, 500.0),
    "default": (400.0, 40.0),
}
