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
    "pancreatic_lesions": "pancreatic_lesion",
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


# --- lesion-search coverage ---------------------------------------------------------------------
# A lesion mask (or a model task writing one) searches the organs of its family: ``liver_lesion`` the
# liver, ``kidney_lesion`` both kidneys, ``kidney_cyst_left`` the left kidney, ``lung_nodules`` both
# lungs. Generic masks (``lesion``, ``tumor``, ``gtv``) name no organ and establish no search. Search
# units are organ names; the whole-lung ``lung`` mask and the lobes count as ``lung_left``/``lung_right``.
SEARCH_UNITS: dict[str, tuple[str, ...]] = {
    # family -> the organs a family-wide lesion mask searches
    "kidney": ("kidney_left", "kidney_right"), "adrenal": ("adrenal_gland_left", "adrenal_gland_right"),
    "lung": ("lung_left", "lung_right"),
}


def lesion_host_families() -> frozenset[str]:
    """Organ families some lesion mask names: the organs that can be searched for lesions."""
    return frozenset(organ_family(org) for org, _ in LESIONS.values() if org is not None)


def search_units_of(organ_or_family: str) -> tuple[str, ...]:
    """The search units an organ, sub-segment or family name stands for."""
    if organ_or_family in SUBSEGMENTS:
        fam = SUBSEGMENTS[organ_or_family]
        if fam == "lung":
            return (f"lung_{organ_or_family.rsplit('_', 1)[1]}",)
        return (fam,)
    if organ_or_family == "lung":
        return SEARCH_UNITS["lung"]
    if organ_or_family in ORGANS:
        return (organ_or_family,)
    return SEARCH_UNITS.get(organ_or_family, (organ_or_family,))


def lesion_mask_searches(name: str) -> tuple[str, ...]:
    """Search units a lesion mask (canonical name) covers; () for a generic mask naming no organ."""
    st = classify(name)
    if st is None or st.category != "lesion" or st.family is None:
        return ()
    return search_units_of(st.family)


# --- organ-aware characterization (where each rule applies, with its source) ---------------------
COMPOSITION_RULES: dict[str, dict] = {
    # rule -> the lesion host families it applies to; elsewhere it is not assessed, saying why
    "fat": {"applies_to": ("kidney", "adrenal", "liver", "pancreas", "spleen"),
            "why_not": "macroscopic-fat rule applies to solid abdominal organs only (partial volume with air or bowel gas "
                       "mimics fat elsewhere)",
            "source": "renal angiomyolipoma / adrenal myelolipoma: macroscopic fat below -10 HU (Bosniak et al., AJR 1988)"},
    "cystic": {"applies_to": ("kidney", "liver", "pancreas", "spleen", "adrenal"),
               "why_not": "simple-cyst rule applies to solid abdominal organs only",
               "source": "simple cyst -9..20 HU, homogeneous (Bosniak classification v2019, Silverman et al., Radiology 2019)"},
    "calcified": {"applies_to": ("kidney", "adrenal", "liver", "pancreas", "spleen"),
                  "why_not": "calcification rule applies to solid abdominal organs only (lung nodule masks share voxels "
                             "with chest wall and vessels; nodule calcification needs its own reading)",
                  "source": "calcification > 130 HU (Agatston threshold)"},
}
# A lesion with no host organ (generic mask outside every organ mask, e.g. a soft-tissue sarcoma GTV) keeps
# the generic rules: fat, cystic and calcified all apply (there is no air-filled host to mimic them).
COMPOSITION_NO_HOST = ("fat", "cystic", "calcified")

NODULE_TYPE = {
    "solid_min_hu": -400.0,  # solid component: voxels at or above this
    "aerated_max_hu": -750.0,  # aerated lung: below this, the mask's partial volume with lung (not nodule)
    "rim_pixels": 2,  # ground-glass-range voxels within this many in-plane pixels of solid voxels: its edge
    "solid_min_share": 0.5,  # solid share of non-aerated voxels (rim excluded) >= this: solid
    "ground_glass_max_share": 0.05,  # <= this: ground glass; between: part-solid
    "min_long_axis_mm": 6.0,  # smaller nodules (or < 3 slice thicknesses) are not typed
    "min_slices": 3.0,
    "rule": "solid component >= -400 HU; ground-glass -750..-400 HU (aerated lung below -750 HU and the ground-glass "
            "rim within 2 pixels of solid voxels excluded as partial volume); solid share >= 50 % solid, <= 5 % "
            "ground-glass, else part-solid; typed only when long axis >= 6 mm and >= 3 slice thicknesses",
    "source": "solid-component threshold -400 HU: Lee et al., PLoS One 2018 (e0205490, low threshold); types and the "
              "6 mm size limit: Fleischner Society 2017 (MacMahon et al., Radiology 2017); shares and rim: radagent defaults",
}

LATERALITY_MIDLINE_STRUCTURES = ("spinal_cord", "trachea", "sternum", "esophagus")  # + vertebrae_*
LATERALITY_MIN_OFFSET_MM = 10.0

# HU host region: the organ mask minus all lesions, eroded by a box of >= 2 mm (>= 1 voxel) per axis, so
# boundary fat and partial volume do not decide attenuation; organs eroded to fewer voxels keep the mask.
HOST_EROSION_MM = 2.0
HOST_MIN_ERODED_VOXELS = 20

FATTY_HOST = {
    "fat_hu": (-190.0, -30.0), "max_fraction": 0.10,
    "rule": "host voxels at -190..-30 HU (adipose tissue) > 10 %: no attenuation call against a fat/parenchyma mean",
    "source": "adipose tissue -190..-30 HU (Yoshizumi et al., Radiology 1999); 10 %: radagent default",
}

# Plausibility of an organ mask: mean HU of its HU region, SD, volume of a completely imaged organ. Bounds are
# set wide of published reference values (every contrast phase, steatosis, iron overload) so that only a failed
# or misregistered segmentation trips them; nothing is derived from an implausible organ.
PLAUSIBILITY: dict[str, dict] = {
    "liver": {"mean_hu": (-50.0, 250.0), "max_sd_hu": 120.0, "volume_ml": (300.0, 6000.0)},
    "spleen": {"mean_hu": (-20.0, 250.0), "max_sd_hu": 120.0, "volume_ml": (10.0, 4000.0)},
    "pancreas": {"mean_hu": (-80.0, 250.0), "max_sd_hu": 120.0, "volume_ml": (10.0, 400.0)},
    "kidney_left": {"mean_hu": (-20.0, 400.0), "max_sd_hu": 150.0, "volume_ml": (20.0, 5000.0)},
    "kidney_right": {"mean_hu": (-20.0, 400.0), "max_sd_hu": 150.0, "volume_ml": (20.0, 5000.0)},
    "adrenal_gland_left": {"mean_hu": (-100.0, 200.0), "max_sd_hu": 120.0, "volume_ml": (0.5, 300.0)},
    "adrenal_gland_right": {"mean_hu": (-100.0, 200.0), "max_sd_hu": 120.0, "volume_ml": (0.5, 300.0)},
    "gallbladder": {"mean_hu": (-30.0, 250.0), "max_sd_hu": 150.0, "volume_ml": (1.0, 500.0)},
    "lung_left": {"mean_hu": (-1000.0, -300.0), "max_sd_hu": 400.0, "volume_ml": (300.0, 6000.0)},
    "lung_right": {"mean_hu": (-1000.0, -300.0), "max_sd_hu": 400.0, "volume_ml": (300.0, 6000.0)},
}
PLAUSIBILITY_SOURCE = ("radagent bounds set wide of reference values: unenhanced liver ~55 HU, lower with steatosis, up to "
                       "~130 HU with iron overload (Boll & Merkle, RadioGraphics 2009), +50-100 HU with contrast; spleen and "
                       "pancreas 40-60 HU unenhanced (Kim et al., AJR 2014); adult liver 1.2-1.8 L, spleen < 314.5 mL "
                       "(Linguraru et al., AJR 2013), polycystic kidneys up to several litres")

# HU ratios are read only where both means are positive soft-tissue values (a ratio with a mean <= 0 or a
# near-zero denominator has no meaning); outside these ranges the flag is "not assessed", saying why.
RATIO_OPERAND_HU = {
    "numerator": (0.0, 150.0), "denominator": (20.0, 150.0),
    "source": "radagent: the published L/S and P/S thresholds were derived on unenhanced parenchyma of positive HU "
              "(spleen 40-60 HU: Kim et al., AJR 2014)",
}
