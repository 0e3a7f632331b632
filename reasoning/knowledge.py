"""The medical knowledge base of question answering: one table of thresholds and rules, each with
its source. ``reasoning.vqa`` reads its thresholds from here (never from literals), and the same
table is the ``lookup_medical_knowledge`` tool of the chat agent.

Entries that perception already uses (``perception.registry.THRESHOLDS``) are re-exported from
there, so the report flags and the answers cannot drift apart. Where DeepTumorVQA's own knowledge
base (``deeptumorvqa/eval/tools.py``) uses a different reference than the report flag, the entry
says so in ``note`` (liver enlargement: 1800 mL here, 2200 mL for the report's hepatomegaly flag).

``values`` are the numbers a rule compares against, in ``unit``; ``rule`` is the rule in words,
with the comparison direction and what happens at the boundary; ``requires_phase`` names the
contrast phase a rule is valid on (``non_contrast``) or is None when it holds on any phase.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from perception.registry import KIDNEY_T_MM, PANCREAS_T_MM, THRESHOLDS


class KnowledgeEntry(BaseModel):
    """One rule of the knowledge base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="stable identifier, cited as the rule of an answer")
    topic: str = Field(description="short title")
    values: tuple[float, ...] = Field(description="thresholds the rule compares against, in unit")
    unit: str = Field(description="unit of values: mL, mm, HU, ratio, %, count, deg")
    rule: str = Field(description="the rule in words, including boundaries")
    source: str = Field(description="citation")
    keywords: tuple[str, ...] = ()
    requires_phase: Literal["non_contrast"] | None = None
    note: str | None = None


def _reg(key: str) -> tuple[tuple[float, ...], str]:
    t = THRESHOLDS[key]
    v = t["value"]
    return (tuple(float(x) for x in v) if isinstance(v, list) else (float(v),)), t["source"]


_SPLEEN, _SPLEEN_SRC = _reg("splenomegaly_volume_ml")
_SPLEEN_GRADES, _SPLEEN_GRADES_SRC = _reg("splenomegaly_grades_ml")
_LIVER_HU, _LIVER_HU_SRC = _reg("liver_steatosis_hu")
_LS, _LS_SRC = _reg("liver_spleen_ratio")
_PS, _PS_SRC = _reg("pancreatic_steatosis_ps_ratio")
_CYSTIC, _CYSTIC_SRC = _reg("cystic_max_hu")
_FAT, _FAT_SRC = _reg("fat_max_hu")
_RECIST, _RECIST_SRC = _reg("recist_min_long_axis_mm")
_HEPATOMEGALY, _ = _reg("hepatomegaly_volume_ml")

DTV_KB = "DeepTumorVQA knowledge base (Schuture/DeepTumorVQA, src/deeptumorvqa/eval/tools.py)"

KNOWLEDGE: tuple[KnowledgeEntry, ...] = (
    # --- spleen ------------------------------------------------------------------------------
    KnowledgeEntry(
        key="splenomegaly_volume_ml", topic="Splenomegaly (spleen volume)", values=_SPLEEN, unit="mL",
        rule=f"splenomegaly when spleen volume > {_SPLEEN[0]} mL (= cm3); <= {_SPLEEN[0]} mL is normal",
        source=f"{_SPLEEN_SRC}; Bezerra et al., AJR 2005;184(5):1510",
        keywords=("spleen", "splenic", "splenomegaly", "enlarged", "enlargement", "volume", "size", "detection")),
    KnowledgeEntry(
        key="splenomegaly_grades_ml", topic="Splenomegaly grading (spleen volume)", values=_SPLEEN_GRADES, unit="mL",
        rule=(f"normal <= {_SPLEEN_GRADES[0]} mL; mild > {_SPLEEN_GRADES[0]} and <= {_SPLEEN_GRADES[1]}; "
              f"moderate > {_SPLEEN_GRADES[1]} and <= {_SPLEEN_GRADES[2]}; severe > {_SPLEEN_GRADES[2]} mL"),
        source=f"{_SPLEEN_GRADES_SRC}; Bezerra et al., AJR 2005;184(5):1510 ({DTV_KB})",
        keywords=("spleen", "splenomegaly", "grade", "grading", "mild", "moderate", "severe", "classify")),
    # --- organ enlargement references --------------------------------------------------------
    KnowledgeEntry(
        key="liver_volume_reference_ml", topic="Liver volume reference (hepatomegaly)", values=(1000.0, 1800.0), unit="mL",
        rule="normal liver volume 1000-1800 mL; enlarged (hepatomegaly) when volume > 1800 mL",
        source=f"radiologyassistant.nl, as used by the {DTV_KB}",
        keywords=("liver", "hepatic", "hepatomegaly", "enlarged", "enlargement", "volume", "size", "normal"),
        note=f"the report's hepatomegaly flag (perception.registry) uses {_HEPATOMEGALY[0]:.0f} mL (Kromrey et al.); "
             "question answering follows the benchmark's 1800 mL"),
    KnowledgeEntry(
        key="kidney_volume_reference_ml", topic="Kidney volume reference (one kidney)", values=(130.0, 260.0), unit="mL",
        rule="normal single-kidney volume 130-260 mL; enlarged when volume > 260 mL",
        source=f"radiologyassistant.nl, as used by the {DTV_KB}",
        keywords=("kidney", "renal", "enlarged", "enlargement", "volume", "size", "normal")),
    KnowledgeEntry(
        key="pancreas_volume_reference_ml", topic="Pancreas volume reference", values=(40.0, 100.0), unit="mL",
        rule="normal pancreas volume 40-100 mL; enlarged when volume > 100 mL",
        source=f"radiologyassistant.nl, as used by the {DTV_KB}",
        keywords=("pancreas", "pancreatic", "enlarged", "enlargement", "volume", "size", "normal")),
    # --- steatosis ---------------------------------------------------------------------------
    KnowledgeEntry(
        key="liver_steatosis_hu", topic="Hepatic steatosis by liver attenuation", values=_LIVER_HU, unit="HU",
        rule=f"liver mean < {_LIVER_HU[0]:.0f} HU on non-contrast CT suggests moderate-severe steatosis",
        source=_LIVER_HU_SRC, requires_phase="non_contrast",
        keywords=("liver", "hepatic", "steatosis", "fatty", "attenuation", "hu")),
    KnowledgeEntry(
        key="liver_spleen_ratio", topic="Fatty liver (liver-to-spleen HU ratio)", values=_LS, unit="ratio",
        rule=f"fatty liver when liver/spleen mean HU ratio (L/S) < {_LS[0]} on non-contrast CT; >= {_LS[0]} is normal",
        source=f"{_LS_SRC}; {DTV_KB}", requires_phase="non_contrast",
        keywords=("fatty", "liver", "steatosis", "hepatic", "l/s", "ratio", "spleen")),
    KnowledgeEntry(
        key="kodama_steatosis_grade", topic="Hepatic steatosis grading (Kodama)",
        values=(58.0, 51.0, 39.0, 1.0, 0.8, 0.5), unit="HU, ratio",
        rule=("G0 normal: liver >= 58 HU and L/S >= 1.0; G1 mild: 51-57 HU or L/S 0.8-1.0; "
              "G2 moderate: 39-50 HU or L/S 0.5-0.8; G3 severe: < 39 HU or L/S < 0.5. "
              "Applied from G3 down: the most severe grade whose HU or L/S criterion holds "
              "(G3 if HU < 39 or L/S < 0.5; else G2 if HU < 51 or L/S < 0.8; else G1 if HU < 58 or L/S < 1.0; else G0)"),
        source=f"Kodama et al., AJR 2007;188:1307 (CT fat quantification), as graded in the {DTV_KB}",
        requires_phase="non_contrast",
        keywords=("hepatic", "steatosis", "grade", "grading", "liver", "fatty", "kodama", "mild", "moderate", "severe")),
    KnowledgeEntry(
        key="pancreatic_steatosis_ps_ratio", topic="Pancreatic steatosis (pancreas-to-spleen HU ratio)", values=_PS,
        unit="ratio", rule=f"pancreatic steatosis when pancreas/spleen mean HU ratio (P/S) < {_PS[0]} on non-contrast CT",
        source=f"{_PS_SRC}; PMC8833002", requires_phase="non_contrast",
        keywords=("pancreatic", "pancreas", "steatosis", "fatty", "p/s", "ratio", "infiltration", "spleen")),
    KnowledgeEntry(
        key="normal_unenhanced_hu", topic="Normal organ attenuation on non-contrast CT", values=(50.0, 65.0, 40.0, 55.0),
        unit="HU", rule="liver 50-65 HU; spleen 40-55 HU; kidney cortex 30-45 HU; pancreas 35-45 HU (non-contrast)",
        source=f"radiology reference tables, as used by the {DTV_KB}", requires_phase="non_contrast",
        keywords=("hu", "hounsfield", "normal", "attenuation", "reference", "organ", "density")),
    # --- kidney ------------------------------------------------------------------------------
    KnowledgeEntry(
        key="kidney_lesion_tumor_hu", topic="Kidney lesion type (cyst vs tumour) by attenuation", values=(34.8,), unit="HU",
        rule="kidney lesion mean > 34.8 HU suggests a solid tumour (RCC); <= 34.8 HU suggests a cyst",
        source=f"AJR 2017 (doi:10.2214/AJR.16.17119), as used by the {DTV_KB}",
        keywords=("kidney", "renal", "lesion", "cyst", "tumor", "tumour", "type", "classification", "solid")),
    KnowledgeEntry(
        key="renal_mass_hu_ranges", topic="Renal mass characterization by attenuation (simplified Bosniak)",
        values=(_FAT[0], _CYSTIC[0], 70.0), unit="HU",
        rule=(f"mean < {_FAT[0]:.0f} HU: fat-containing (macroscopic fat); {_FAT[0]:.0f} to {_CYSTIC[0]:.0f} HU: simple cyst; "
              f"> {_CYSTIC[0]:.0f} to 70 HU: indeterminate; > 70 HU: hyperdense (hyperattenuating) cyst -- "
              "the > 70 HU rule holds on non-contrast CT only (on enhanced CT it may be enhancement)"),
        source=f"Silverman et al., Bosniak classification v2019, Radiology 2019;292:475 ({DTV_KB}); {_FAT_SRC}",
        keywords=("renal", "kidney", "mass", "bosniak", "cyst", "characterization", "characterisation", "hu", "hyperdense",
                  "indeterminate", "simple")),
    KnowledgeEntry(
        key="kidney_t_stage_mm", topic="Kidney tumour T stage (AJCC 8)", values=tuple(float(v) for v, _ in KIDNEY_T_MM),
        unit="mm", rule="T1a <= 40 mm; T1b 40-70; T2a 70-100; T2b > 100 mm; T3a renal vein, T3b IVC extension",
        source="AJCC Cancer Staging Manual, 8th edition (kidney)",
        keywords=("kidney", "renal", "stage", "staging", "t1", "t2", "t3", "ajcc")),
    KnowledgeEntry(
        key="bilateral_kidney_asymmetry", topic="Bilateral kidney lesion-burden asymmetry", values=(2.0,), unit="ratio",
        rule=("asymmetric when one kidney's total lesion volume is >= 2x the other's (or the other has none); "
              "the answer is the more affected side, else 'symmetric' (also when neither kidney has a lesion)"),
        source=(f"radagent default for 'substantially more lesion burden' ({DTV_KB}: 'one kidney has substantially more "
                "lesion burden (volume/count) than the other')"),
        keywords=("bilateral", "kidney", "asymmetry", "left", "right", "comparison", "burden")),
    # --- pancreas ----------------------------------------------------------------------------
    KnowledgeEntry(
        key="pancreatic_cyst_resection", topic="Pancreatic cyst resection (size criteria)", values=(3.0, 30.0), unit="mL, mm",
        rule="resection recommended when cyst volume > 3.0 mL (cm3) or diameter > 30 mm (3 cm); else surveillance",
        source=f"Johns Hopkins / ACR incidental pancreatic cyst guidance, as used by the {DTV_KB}",
        keywords=("pancreatic", "pancreas", "cyst", "resection", "resectability", "surgery", "remove")),
    KnowledgeEntry(
        key="pancreatic_pseudocyst_hu", topic="Pseudocyst vs mucinous cyst by attenuation", values=(14.5,), unit="HU",
        rule="pancreatic cyst mean > 14.5 HU suggests a pseudocyst; <= 14.5 HU a mucinous cyst",
        source=f"PMID 21737901, as used by the {DTV_KB}",
        keywords=("pseudocyst", "pancreatic", "cyst", "mucin", "mucinous")),
    KnowledgeEntry(
        key="pdac_vs_pnet_attenuation", topic="PDAC vs PNET (imaging pattern)", values=(10.0,), unit="HU",
        rule=("PDAC is typically hypoattenuating relative to the pancreas; PNET iso- or hyperattenuating "
              "(attenuation = lesion mean minus pancreas mean, iso within +-10 HU). An imaging heuristic, not histology; "
              "a lesion mask typed pancreatic_pdac / pancreatic_pnet takes precedence"),
        source=f"NCCN Pancreatic Adenocarcinoma guideline 2024, as summarised in the {DTV_KB}",
        keywords=("pdac", "pnet", "pancreatic", "adenocarcinoma", "neuroendocrine", "classification", "ductal")),
    KnowledgeEntry(
        key="pancreas_t_stage_mm", topic="Pancreatic tumour T stage (AJCC 8)", values=tuple(float(v) for v, _ in PANCREAS_T_MM),
        unit="mm",
        rule=("T1 <= 20 mm; T2 > 20 and <= 40 mm; T3 > 40 mm (greatest dimension); T4 celiac axis, SMA and/or CHA "
              "involvement regardless of size. T cannot be given when T4 cannot be excluded (an arterial mask is missing)"),
        source="AJCC Cancer Staging Manual, 8th edition (exocrine pancreas)",
        keywords=("pancreatic", "pancreas", "tumor", "staging", "stage", "t1", "t2", "t3", "t4", "ajcc")),
    KnowledgeEntry(
        key="nccn_pancreas_resectability", topic="Pancreatic cancer resectability (NCCN)", values=(180.0,), unit="deg",
        rule=("resectable: no arterial contact (celiac, SMA, CHA) and venous (SMV/PV) contact <= 180 deg; "
              "borderline: arterial abutment <= 180 deg, CHA contact, or venous contact > 180 deg; "
              "locally advanced: SMA or celiac encasement > 180 deg. Not assessed when arterial or venous masks are missing"),
        source="NCCN Guidelines, Pancreatic Adenocarcinoma (resectability criteria)",
        keywords=("resectability", "resectable", "borderline", "unresectable", "locally", "advanced", "surgical", "pancreatic", "nccn")),
    # --- lesions -----------------------------------------------------------------------------
    KnowledgeEntry(
        key="lesion_outlier", topic="Lesion outlier", values=(3.0, 3.0), unit="ratio, count",
        rule="outlier when there are >= 3 lesions and the largest has >= 3x the volume of the second largest",
        source=f"DeepTumorVQA protocol ({DTV_KB})",
        keywords=("outlier", "lesion", "volume", "largest", "dominant")),
    KnowledgeEntry(
        key="liver_lesion_clustering", topic="Liver lesion clustering (Couinaud segments)", values=(0.50, 0.75), unit="fraction",
        rule=("per-segment share of the liver lesions, each lesion counted once in the segment holding most of it: "
              "highly clustered when one segment holds > 50 % of the lesions; somewhat clustered when the top two "
              "segments hold >= 75 %; else widely distributed"),
        source=f"DeepTumorVQA protocol ({DTV_KB})",
        keywords=("clustering", "clustered", "distributed", "distribution", "liver", "segment", "spread")),
    KnowledgeEntry(
        key="tumor_burden_percentage", topic="Tumour burden percentage", values=(50.0,), unit="%",
        rule="tumour burden = total lesion volume / organ volume x 100 (organ volume includes its lesions); > 50 % = advanced disease",
        source=f"EASL-EORTC HCC guidelines, as used by the {DTV_KB}",
        keywords=("tumor", "tumour", "burden", "percentage", "percent", "lesion", "volume", "ratio")),
    KnowledgeEntry(
        key="attenuation_margin_hu", topic="Lesion attenuation relative to the organ", values=(10.0,), unit="HU",
        rule=("lesion mean minus host parenchyma mean (organ mask minus all lesions): < -10 HU hypoattenuating, "
              "> +10 HU hyperattenuating, else isoattenuating"),
        source="radagent measurement settings (attenuation_margin_hu), DESIGN.md 'Measurement definitions'",
        keywords=("attenuation", "hypoattenuating", "hyperattenuating", "isoattenuating", "hypodense", "hyperdense", "enhancement")),
    KnowledgeEntry(
        key="cystic_lesion_hu", topic="Cystic lesion (attenuation)", values=_CYSTIC, unit="HU",
        rule=f"cystic when mean < {_CYSTIC[0]:.0f} HU and SD <= 20 HU (homogeneous), or when its mask is typed cyst",
        source=_CYSTIC_SRC, keywords=("cyst", "cystic", "fluid", "attenuation")),
    KnowledgeEntry(
        key="recist_measurable", topic="RECIST 1.1 measurability", values=_RECIST, unit="mm",
        rule="long axis (longest axial diameter) >= 10 mm, and >= 2x slice thickness when slices are thicker than 5 mm",
        source=_RECIST_SRC, keywords=("recist", "measurable", "diameter", "long", "axis", "target")),
    KnowledgeEntry(
        key="couinaud_segments", topic="Couinaud liver segments", values=(), unit="",
        rule="I caudate; II, III left lateral; IV left medial (IVa/IVb); V, VIII right anterior; VI, VII right posterior",
        source=f"radiologyassistant.nl, as used by the {DTV_KB}",
        keywords=("liver", "segment", "couinaud", "anatomy", "hepatic", "caudate", "lobe")),
    # --- portal hypertension -----------------------------------------------------------------
    KnowledgeEntry(
        key="portal_hypertension_signs", topic="Portal hypertension on CT", values=(_SPLEEN[0], 0.65, 13.0), unit="mL, ratio, mm",
        rule=(f"signs: splenomegaly (spleen > {_SPLEEN[0]} mL), caudate-to-right-lobe volume ratio > 0.65, portal vein "
              "diameter > 13 mm, portosystemic collaterals, ascites. From findings.json only splenomegaly can be assessed "
              "(no liver sub-segment volumes, no vessel diameters, no collateral or ascites masks): a positive sign "
              "answers yes; no sign found cannot exclude portal hypertension"),
        source=("Harbin et al., Radiology 1980;135:273 (caudate/right lobe ratio); Weinreb et al., AJR 1982;139:497 "
                f"(portal vein diameter); Bezerra et al., AJR 2005 (spleen volume); {DTV_KB}"),
        keywords=("portal", "hypertension", "splenomegaly", "cirrhosis", "caudate", "collaterals", "ascites", "varices")),
    KnowledgeEntry(
        key="caudate_right_lobe_ratio", topic="Caudate-to-right-lobe ratio", values=(0.65,), unit="ratio",
        rule="caudate (segment I) / right lobe (segments V-VIII) > 0.65 suggests cirrhosis",
        source="Harbin et al., Radiology 1980;135:273",
        keywords=("caudate", "right", "lobe", "ratio", "cirrhosis", "portal", "hypertension")),
    # --- diagnoses (only where a sourced rule decides one) ------------------------------------
    KnowledgeEntry(
        key="bosniak_homogeneous_fluid_hu", topic="Benign renal cystic mass by attenuation (Bosniak v2019 class II)",
        values=(-9.0, 20.0), unit="HU",
        rule=("a homogeneous renal mass of -9 to 20 HU (inclusive) on non-contrast CT is Bosniak class II: benign, no "
              "follow-up. radagent reads 'homogeneous' as perception's cystic flag (mean < 20 HU and SD <= 20 HU); wall "
              "thickness and septa are not assessed from masks. Not applied on contrast-enhanced CT or outside the kidney"),
        source="Silverman SG et al., Bosniak Classification of Cystic Renal Masses, Version 2019. Radiology 2019;292:475-488",
        requires_phase="non_contrast",
        keywords=("bosniak", "benign", "renal", "kidney", "cyst", "malignant", "diagnosis", "homogeneous")),
)

_BY_KEY = {e.key: e for e in KNOWLEDGE}
if len(_BY_KEY) != len(KNOWLEDGE):  # pragma: no cover - a duplicated key is a programming error
    raise RuntimeError("duplicate knowledge keys")


def knowledge(key: str) -> KnowledgeEntry:
    """The entry with this key; KeyError naming the closest keys otherwise."""
    try:
        return _BY_KEY[key]
    except KeyError:
        close = difflib.get_close_matches(key, list(_BY_KEY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"no knowledge entry {key!r}{hint} (keys: {', '.join(sorted(_BY_KEY))})") from None


_TOKEN = re.compile(r"[a-z0-9/]+")


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower().replace("tumour", "tumor").replace("hounsfield", "hu")))


def lookup_medical_knowledge(topic: str, limit: int = 3) -> list[KnowledgeEntry]:
    """Entries matching a free-text topic, best first (at most ``limit``; empty when nothing matches).

    Score: an exact key match wins; otherwise tokens shared with the entry's keywords (2 each) and
    with its key/topic words (1 each), plus fuzzy similarity of each topic word to the keywords
    (for misspellings like 'splenomegally'). Entries scoring below 1 are left out.
    """
    t = topic.strip().lower()
    if not t:
        return []
    if t in _BY_KEY:
        return [_BY_KEY[t]]
    toks = _tokens(t)
    scored = []
    for e in KNOWLEDGE:
        kw = set(e.keywords)
        title = _tokens(e.key.replace("_", " ") + " " + e.topic)
        s = 2.0 * len(toks & kw) + 1.0 * len(toks & title)
        for w in toks - kw - title:
            if len(w) >= 5:
                best = max((difflib.SequenceMatcher(None, w, k).ratio() for k in kw), default=0.0)
                if best >= 0.8:
                    s += 1.5 * best
        if s >= 1.0:
            scored.append((s, e.key))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [_BY_KEY[k] for _, k in scored[:limit]]
