"""One vocabulary for reading and writing anatomy in words: organ words and aliases (with side),
lesion words, vessel phrases, Couinaud Roman numerals, pancreas parts and segment spellings.

VQA (``reasoning.vqa``) reads questions with it; reports and the grounding checker can import
the same tables instead of spelling them again. Names on the right-hand side are the names
Findings uses (``perception.registry``): ``kidney_left``, ``liver_segment_8``, ``aorta``.
"""

from __future__ import annotations

import difflib
import re

from perception.registry import COUINAUD, ORGANS, SUBSEGMENTS, VESSELS

# --- organs -------------------------------------------------------------------------------------

# (Findings name, regex over lower-cased text); earlier rows win where two overlap ("left kidney"
# before "kidney"). Side-specific names first, then families.
ORGAN_PATTERNS: list[tuple[str, str]] = [
    ("kidney_left", (r"\bleft[\s-]+(?:kidney|renal)\b|\bkidney_left\b|\bleft-sided kidney\b|\b(?:kidney|renal)\b[^?.;:]{0,20}, left\b"
                    r"|(?<![\w-])l\.? (?:kidney|renal)\b")),
    ("kidney_right", (r"\bright[\s-]+(?:kidney|renal)\b|\bkidney_right\b|\bright-sided kidney\b|\b(?:kidney|renal)\b[^?.;:]{0,20}, right\b"
                     r"|(?<![\w-])r\.? (?:kidney|renal)\b")),
    ("adrenal_gland_left", r"\bleft adrenal(?: gland)?\b|\badrenal_gland_left\b"),
    ("adrenal_gland_right", r"\bright adrenal(?: gland)?\b|\badrenal_gland_right\b"),
    ("gallbladder", r"\bgall[\s-]?bladder\b"),
    ("kidney", r"\bkidneys?\b|\brenal\b|\bnephr\w*"),
    ("liver", r"\bliver\b|\bhepat\w*|\bcouinaud\b"),
    ("pancreas", r"\bpancrea\w*|\bpdac\b|\bpnet\b"),
    ("spleen", r"\bspleen\b|\bsplen\w*"),
    ("colon", r"\bcolon\b|\bcolonic\b|\bcolorectal\b|\brect(?:um|al)\b"),
    ("stomach", r"\bstomach\b|\bgastric\b"),
    ("duodenum", r"\bduoden\w*"),
    ("adrenal", r"\badrenals?(?: glands?)?\b"),
    ("small_bowel", r"\bsmall (?:bowel|intestine)\b"),
    ("esophagus", r"\b(?:o)?esophag\w*"),
    ("urinary_bladder", r"\b(?:urinary )?bladder\b"),
    ("lung", r"\blungs?\b|\bpulmonary\b"),
    ("brain", r"\bbrain\b|\bcerebr\w*|\bintracranial\b"),
    ("heart", r"\bheart\b|\bcardiac\b"),
    ("prostate", r"\bprostat\w*"),
    ("thyroid_gland", r"\bthyroid(?: gland)?\b"),
    ("trachea", r"\btrachea\w*"),
]

# Body parts radagent has no organ for: a question naming one is about something not measured.
OTHER_ANATOMY = (r"\b(?:breasts?|bones?|spine|vertebra\w*|ribs?|skull|skin|muscles?|lymph nodes?|nodes|uterus|uterine|ovar\w*"
                 r"|testi\w*|eyes?|ears?|nose|mouth|tongue|throat|arms?|legs?|hands?|feet|foot|knees?|hips?|shoulders?"
                 r"|appendix|peritone\w*|omentum|mesentery|bowel wall|thymus|pleura\w*)\b")

# Written forms of organ names (after lower-casing, spaces/hyphens -> "_") -> Findings name.
ORGAN_ALIASES: dict[str, str] = {
    "left_kidney": "kidney_left", "right_kidney": "kidney_right", "kidneys": "kidney", "renal": "kidney",
    "hepatic": "liver", "pancreatic": "pancreas", "splenic": "spleen", "gall_bladder": "gallbladder",
    "colonic": "colon", "bladder": "urinary_bladder", "adrenal_gland": "adrenal", "adrenals": "adrenal",
    "left_adrenal": "adrenal_gland_left", "right_adrenal": "adrenal_gland_right", "lungs": "lung",
}

# Single organ words as reports and the grounding checker read them ('renal' -> kidney), a family each.
ORGAN_WORDS: dict[str, str] = {
    "liver": "liver", "hepatic": "liver", "pancreas": "pancreas", "pancreatic": "pancreas", "spleen": "spleen",
    "splenic": "spleen", "kidney": "kidney", "kidneys": "kidney", "renal": "kidney", "gallbladder": "gallbladder",
    "adrenal": "adrenal", "adrenals": "adrenal", "stomach": "stomach", "gastric": "stomach", "duodenum": "duodenum",
    "duodenal": "duodenum", "colon": "colon", "colonic": "colon", "lung": "lung", "lungs": "lung", "pulmonary": "lung",
    "bladder": "urinary_bladder", "esophagus": "esophagus", "prostate": "prostate", "heart": "heart",
    "small bowel": "small_bowel", "bowel": "small_bowel",
}

_FAMILIES = set(ORGANS.values())


def canonical_organ(name: str) -> str:
    """Organ or organ-family name as Findings spells it ('left kidney' -> 'kidney_left')."""
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    n = ORGAN_ALIASES.get(n, n)
    if n in ORGANS or n in _FAMILIES:
        return n
    close = difflib.get_close_matches(n, sorted(set(ORGANS) | _FAMILIES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown organ {name!r}{hint}")


def organs_in(text: str) -> list[str]:
    """Organs named in lower-cased ``text``, in order of first mention, each once (a span is read
    once: 'left kidney' gives kidney_left, not also kidney)."""
    found: list[tuple[int, str]] = []
    taken = [False] * len(text)
    for name, pat in ORGAN_PATTERNS:
        for m in re.finditer(pat, text):
            if any(taken[m.start():m.end()]):
                continue
            for i in range(m.start(), m.end()):
                taken[i] = True
            found.append((m.start(), name))
    out: list[str] = []
    for _, n in sorted(found):
        if n not in out:
            out.append(n)
    return out


# --- lesions --------------------------------------------------------------------------------------

LESION_WORDS = (r"\b(?:lesions?|tumou?rs?|masse?s?|cysts?|cystic|nodules?|neoplasms?|cancers?|carcinomas?|metasta\w*|pdac|pnet|"
                r"malignan\w*|growths?|hcc|hemangiomas?|haemangiomas?|adenomas?|rcc|lumps?|spots?|abnormalit(?:y|ies)|"
                r"foc(?:us|i)|index lesion|target lesion|adenocarcinomas?|sacs?|fluid-filled|fluid collections?)\b"
                r"|\b(?:something|anything) (?:abnormal|unusual|suspicious|growing|wrong)\b")
CYST_WORDS = r"\bcysts?\b|\bcystic\b|\bfluid-filled\b|\bsacs?\b"
TUMOR_WORDS = r"\btumou?rs?\b|\bmass(?:es)?\b|\bcancers?\b|\bcarcinomas?\b|\bneoplasms?\b|\bmalignan\w*|\bgrowths?\b"

# --- sub-segments ---------------------------------------------------------------------------------

ROMAN: dict[str, int] = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "iva": 4, "ivb": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
PANCREAS_PARTS: dict[str, str] = {"head": "pancreas_head", "uncinate": "pancreas_head", "neck": "pancreas_body",
                                  "body": "pancreas_body", "tail": "pancreas_tail"}
SEGMENT_NUMBER = r"(?:[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i)"
ORDINAL_WORDS: dict[str, int] = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
                                 "eighth": 8, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8}


def segment_number(token: str) -> int:
    """'8', 'VIII', 'viii', 'IVa' -> 8 / 8 / 8 / 4."""
    t = token.strip().lower()
    return int(t) if t.isdigit() else ROMAN[t]


def canonical_segment(name: str) -> str:
    """Sub-segment name as Findings spells it ('segment VIII', 'S8', '8' -> 'liver_segment_8';
    'head' -> 'pancreas_head')."""
    n = name.strip().lower().replace("-", "_")
    if n in SUBSEGMENTS:
        return n
    n = re.sub(r"^(couinaud\s+)?(liver\s+|hepatic\s+)?(segment\s*|s(?=\d))", "", n).strip()
    n = re.sub(r"^(pancreas|pancreatic)[\s_]+", "", n)
    n = re.sub(r"\s+of\s+the\s+pancreas$", "", n)
    if n.isdigit() and 1 <= int(n) <= 8:
        return f"liver_segment_{int(n)}"
    if n in ROMAN:
        return f"liver_segment_{ROMAN[n]}"
    if n in PANCREAS_PARTS:
        return PANCREAS_PARTS[n]
    raise ValueError(f"unknown sub-segment {name!r} (expected liver_segment_1..8, Couinaud I-VIII, pancreas_head/body/tail, "
                     f"or one of {', '.join(sorted(SUBSEGMENTS))})")


def segment_display(seg: str) -> str:
    """'liver_segment_8' -> 'liver segment 8 (VIII)'; 'pancreas_head' -> 'pancreas head'."""
    if seg.startswith("liver_segment_"):
        n = seg.rsplit("_", 1)[1]
        return f"liver segment {n} ({COUINAUD.get(seg, n)})"
    return seg.replace("_", " ")


def segment_benchmark(seg: str) -> str:
    """DeepTumorVQA's free-text spelling: 'liver_segment_8' -> 'segment 8'; 'pancreas_head' -> 'pancreas head'."""
    if seg.startswith("liver_segment_"):
        return "segment " + seg.rsplit("_", 1)[1]
    return seg.replace("_", " ")


# --- vessels --------------------------------------------------------------------------------------

# (phrase as written, the Findings vessel names it may denote, first = preferred), longest first so
# 'superior mesenteric artery' is read before 'mesenteric artery'. The grounding checker's table,
# kept here as the one spelling.
VESSEL_PHRASES: list[tuple[str, tuple[str, ...]]] = sorted([
    ("superior mesenteric artery", ("superior_mesenteric_artery",)), ("sma", ("superior_mesenteric_artery",)),
    ("superior mesenteric vein", ("superior_mesenteric_vein",)), ("smv", ("superior_mesenteric_vein",)),
    ("celiac trunk", ("celiac_trunk",)), ("celiac axis", ("celiac_trunk",)), ("coeliac trunk", ("celiac_trunk",)),
    ("coeliac axis", ("celiac_trunk",)), ("celiac artery", ("celiac_trunk",)), ("celiac", ("celiac_trunk",)),
    ("coeliac", ("celiac_trunk",)),
    ("common hepatic artery", ("common_hepatic_artery",)), ("cha", ("common_hepatic_artery",)),
    ("hepatic artery", ("common_hepatic_artery", "hepatic_artery")),
    ("splenic artery", ("splenic_artery",)),
    ("portal/splenic vein", ("portal_vein_and_splenic_vein",)),
    ("portal vein", ("portal_vein", "portal_vein_and_splenic_vein")),
    ("splenic vein", ("splenic_vein", "portal_vein_and_splenic_vein")),
    ("portal confluence", ("portal_vein", "portal_vein_and_splenic_vein", "superior_mesenteric_vein")),
    ("splenoportal confluence", ("portal_vein", "portal_vein_and_splenic_vein", "superior_mesenteric_vein")),
    ("inferior vena cava", ("inferior_vena_cava",)), ("ivc", ("inferior_vena_cava",)), ("vena cava", ("inferior_vena_cava",)),
    ("aorta", ("aorta",)), ("aortic", ("aorta",)), ("abdominal aorta", ("aorta",)),
    ("left renal vein", ("renal_vein_left",)), ("right renal vein", ("renal_vein_right",)),
    ("renal vein", ("renal_vein_left", "renal_vein_right")), ("renal veins", ("renal_vein_left", "renal_vein_right")),
    ("left renal artery", ("renal_artery_left",)), ("right renal artery", ("renal_artery_right",)),
    ("renal artery", ("renal_artery_left", "renal_artery_right")),
    ("renal arteries", ("renal_artery_left", "renal_artery_right")),
    ("hepatic veins", ("hepatic_vein",)), ("hepatic vein", ("hepatic_vein",)), ("hepatic vessels", ("liver_vessels",)),
    ("iliac artery", ("iliac_artery_left", "iliac_artery_right")), ("iliac vein", ("iliac_vena_left", "iliac_vena_right")),
    ("pulmonary artery", ("pulmonary_artery",)), ("superior vena cava", ("superior_vena_cava",)),
], key=lambda t: -len(t[0]))

# Generic words for "a blood vessel" (a vessel question without naming one).
VESSEL_GENERIC = r"\b(?:vessels?|vascular|vasculature|arter(?:y|ies)|arterial structures?|veins?|venous structures?)\b"


def vessels_in(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Vessel phrases in lower-cased ``text`` (longest phrase first, each span read once), in order of
    mention: (phrase, Findings vessel names)."""
    low = text
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for phrase, names in VESSEL_PHRASES:
        for m in re.finditer(r"\b" + re.escape(phrase) + r"\b", low):
            found.append((m.start(), phrase, names))
            low = low[:m.start()] + " " * len(phrase) + low[m.end():]
    return [(p, n) for _, p, n in sorted(found)]


def vessel_display(name: str) -> str:
    """'superior_mesenteric_artery' -> 'superior mesenteric artery' (registry's words)."""
    return VESSELS[name][1] if name in VESSELS else name.replace("_", " ")
