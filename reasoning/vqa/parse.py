"""Free text -> :class:`Question`: templated patterns modelled on DeepTumorVQA's phrasing, with
the organs, sub-segments and lesion ids named in the text. No template, no question (never a guess)."""

from __future__ import annotations

import re

from perception.registry import SUBSEGMENTS, organ_family
from reasoning.vqa.question import Question
from reasoning.vqa.vocabulary import _PANCREAS_PARTS, _ROMAN

_ORGAN_PATTERNS: list[tuple[str, str]] = [
    ("kidney_left", r"\bleft[\s-]+(?:kidney|renal)\b|\bkidney_left\b|\bleft-sided kidney\b"),
    ("kidney_right", r"\bright[\s-]+(?:kidney|renal)\b|\bkidney_right\b|\bright-sided kidney\b"),
    ("adrenal_gland_left", r"\bleft adrenal(?: gland)?\b"),
    ("adrenal_gland_right", r"\bright adrenal(?: gland)?\b"),
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
]
_LESION_WORDS = r"\b(?:lesions?|tumou?rs?|masse?s?|cysts?|nodules?|neoplasms?|cancers?|carcinomas?|metasta\w*|pdac|pnet|malignan\w*)\b"


def _organs_in(t: str) -> list[str]:
    found: list[tuple[int, str]] = []
    taken = [False] * len(t)
    for name, pat in _ORGAN_PATTERNS:
        for m in re.finditer(pat, t):
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


_SEG_LIST = re.compile(r"\bsegments?\s+((?:[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i)\b"
                       r"(?:\s*(?:,|and|or|vs\.?|versus|&)\s*(?:segment\s+)?(?:[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i)\b)*)")
_SEG_SHORT = re.compile(r"\bs([1-8])\b|\bliver_segment_([1-8])\b")
_PANC_PART = re.compile(r"\b(?:pancreatic\s+|pancreas\s+)?(head|body|tail|uncinate)\b(?:\s+of\s+the\s+pancreas)?|\bpancreas_(head|body|tail)\b")


def _segments_in(t: str, pancreas_context: bool) -> list[str]:
    found: list[tuple[int, str]] = []
    for m in _SEG_LIST.finditer(t):
        for tok in re.finditer(r"[1-8]|viii|vii|vi|iv[ab]?|v|iii|ii|i", m.group(1)):
            x = tok.group(0)
            found.append((m.start(1) + tok.start(), f"liver_segment_{int(x) if x.isdigit() else _ROMAN[x]}"))
    for m in _SEG_SHORT.finditer(t):
        found.append((m.start(), f"liver_segment_{m.group(1) or m.group(2)}"))
    if pancreas_context:
        for m in _PANC_PART.finditer(t):
            found.append((m.start(), _PANCREAS_PARTS[m.group(1) or m.group(2)]))
    out: list[str] = []
    for _, s in sorted(found):
        if s not in out:
            out.append(s)
    return out


def _norm(text: str) -> str:
    t = text.lower().replace("\u2212", "-").replace("\u2013", "-").replace("hounsfield units", "hu").replace("hounsfield unit", "hu")
    t = t.replace("tumour", "tumor").replace("characterise", "characterize")
    return re.sub(r"\s+", " ", t).strip()


def _has(t: str, pat: str) -> bool:
    return re.search(pat, t) is not None


def parse_question(text: str) -> Question | None:
    """Map templated free text to a Question; None when no template matches (never a guess)."""
    t = _norm(text)
    organs = _organs_in(t)
    segs = _segments_in(t, "pancrea" in t)
    lid = re.search(r"\b(L\d+)\b", text)
    lesion = _has(t, _LESION_WORDS)
    organ = organs[0] if organs else None
    kw: dict = {"text": text}
    if lid:
        kw["lesion_id"] = lid.group(1)
    ordinal = re.search(r"\b(second|third|fourth|fifth|2nd|3rd|4th|5th)[- ](largest|biggest)\b", t)
    if ordinal:
        kw["rank"] = {"second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5}[ordinal.group(1)]
    elif re.search(r"\bsmallest (\w+ )?(lesion|tumou?r|mass|cyst|nodule)", t):
        kw["rank"] = -1

    def q(subtype: str, **extra) -> Question:
        return Question(subtype=subtype, **{**kw, **extra})

    smaller = _has(t, r"\b(smaller|smallest|fewer|fewest|less|least|lower)\b")
    direction = "smaller" if smaller else "larger"

    # --- medical reasoning first (most specific wording) ---
    if _has(t, r"\bpdac\b|ductal adenocarcinoma|\badenocarcinoma\b") and _has(t, r"\bpnet\b|neuroendocrine"):
        return q("PDAC vs PNET classification")
    if _has(t, r"pseudo-?cyst|mucinous"):
        return q("pseudocyst determination")
    if _has(t, r"portal (venous )?hypertension"):
        return q("portal hypertension assessment")
    if _has(t, r"steatosis|fatty|fat (content|infiltration|deposition)"):
        if "pancreas" in organs and "liver" not in organs:
            return q("pancreatic steatosis")
        if _has(t, r"\bgrad|severity|how severe|kodama|what degree|\bdegree\b|\bstage\b|classify"):
            return q("hepatic steatosis grading")
        return q("fatty liver")
    if _has(t, r"splenomegaly|splenic enlargement|enlarge\w* (of the )?spleen|spleen (is )?enlarged"):
        if _has(t, r"\bgrad|classify|classification|severity|how severe|\bdegree\b|\bmild\b|\bmoderate\b|\bsevere\b|categor"):
            return q("splenomegaly grading")
        return q("splenomegaly detection")
    if "kidney" in [organ_family(o) for o in organs] and _has(t, r"bosniak|characteri[sz]"):
        return q("renal mass characterization", organ=organ if organ != "kidney" else None)
    if "kidney" in [organ_family(o) for o in organs] and lesion and _has(
            t, r"\b(cyst|tumor) or (a |an )?(cyst|tumor|solid)\b|\btype of\b|\bclassif|cystic or solid|solid or cystic|benign cyst or"):
        return q("lesion type classification", organ=organ if organ != "kidney" else None)
    if "pancreas" in organs and _has(t, r"\bcyst") and _has(t, r"resect|surg|remov|excis|operat"):
        return q("pancreatic cyst resectability")
    if "pancreas" in organs and _has(t, r"resectab|\bresect|nccn|surgical candidate|operable|surgically"):
        return q("pancreatic lesion resectability")
    if "pancreas" in organs and _has(t, r"\bt[\s-]?stag|\bt[\s-]?categor|\bstag(e|ing)\b|\bajcc\b"):
        return q("pancreatic tumor staging")
    if _has(t, r"\bpdac\b|ductal adenocarcinoma"):
        return q("PDAC existence")
    if _has(t, r"\bpnet\b|neuroendocrine"):
        return q("PNET existence")

    # --- comparisons and ratios ---
    if _has(t, r"\bratio\b|-to-|\bl/s\b|\bp/s\b") and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)|\bl/s\b|\bp/s\b|-to-"):
        if _has(t, r"\bl/s\b"):
            return q("organ HU ratio", organs=("liver", "spleen"))
        if _has(t, r"\bp/s\b"):
            return q("organ HU ratio", organs=("pancreas", "spleen"))
        if len(organs) >= 2:
            return q("organ HU ratio", organs=tuple(organs[:2]))
        return None
    kidney_only = organs and all(organ_family(o) == "kidney" for o in organs)
    if _has(t, r"asymmetr|\bbilateral\b") or (kidney_only and _has(t, r"which kidney|which side") and (
            lesion or _has(t, r"\bburden\b"))):
        return q("bilateral kidney asymmetry")
    if lesion and _has(t, r"\bburden\b|lesion volume|tumor volume|more (lesions?|tumors?)") and (
            len({organ_family(o) for o in organs}) >= 2 or _has(t, r"which organ")):
        if not (len(organs) == 1 and organ_family(organs[0]) == "kidney"):
            return q("multi-organ lesion burden comparison", organs=tuple(dict.fromkeys(organ_family(o) for o in organs)),
                     direction=direction)
    if _has(t, r"(tumor|lesion) burden|percent|proportion|fraction of the") and organ and (
            _has(t, r"\bburden\b") or lesion):
        return q("tumor burden percentage", organ=organ)
    if _has(t, r"\bdifference\b|\bdiffer\b") and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)"):
        return q("tumor organ HU difference", organ=organ)

    # --- lesion-level visual reasoning ---
    if kidney_only and _has(t, r"which kidney|which side|(left|right) kidney (is )?(larger|bigger|smaller)|compare.*kidney") and \
            _has(t, r"larger|bigger|smaller|volume|\bsize\b"):
        return q("kidney volume comparison", direction=direction)
    if _has(t, r"\badjacent\b|\babut|\bin contact\b|\bcontact with\b|\bneighbo|\bnext to\b|\bborder(s|ing)?\b|\btouch"):
        return q("adjacent organ", organ=organ)
    if _has(t, r"outlier|disproportionate|(much|significantly|substantially|markedly|far) larger than (the )?(other|rest|remaining)|dominant lesion"):
        return q("lesion outlier", organ=organ)
    if _has(t, r"cluster|distribut|scatter|dispers|\bspread\b|concentrated|diffuse"):
        return q("liver lesion clustering")
    largest = _has(t, r"\b(largest|biggest|dominant|main|primary|index)\b")
    if lesion and _has(t, r"\bslice\b"):
        return q("largest lesion slice", organ=organ)
    if lesion and (largest or lid) and _has(t, r"\bsegment|\bwhere\b|locat|\bwhich (part|portion|region|lobe|side)\b|\blobe\b"):
        return q("largest lesion location", organ=organ)
    if _has(t, r"which (couinaud |liver |hepatic |pancreatic )?(segment|part|portion|region)s?\b") or \
            (len(segs) >= 2 and _has(t, r"\bor\b|\bvs\.?\b|versus|compare|more|fewer")):
        metric = "volume" if _has(t, r"volume|burden|larger|bigger") else "count"
        return q("inter-segment comparison", organ=(SUBSEGMENTS[segs[0]] if segs else organ), segments=tuple(segs),
                 metric=metric, direction="smaller" if _has(t, r"\b(fewer|fewest|less|least)\b") else "larger")
    if lesion and _has(t, r"hypo|hyper|\biso|attenuat|dense\b|density|enhanc|darker|brighter") and not _has(t, r"\bmean\b|\baverage\b"):
        return q("largest lesion attenuation", organ=organ)
    if lesion and _has(t, r"diameter|long(est)? axis|short axis|\bsize\b|how (large|big|long|wide)|\bextent\b|\bmeasure") and \
            not _has(t, r"\bvolume\b"):
        d = "3d" if _has(t, r"\b3d\b|three-dimensional|3-dimensional|feret") else ("short_axis" if _has(t, r"short axis") else "long_axis")
        return q("largest lesion diameter", organ=organ, diameter=d)
    count = _has(t, r"how many|number of|\bcount\b")
    if count and lesion and segs:
        return q("lesion count by location", location=segs[0])
    if _has(t, r"\b(total|combined|sum|together|aggregate|overall|all)\b") and (
            len(organs) >= 2 or _has(t, r"\bkidneys\b|both kidneys|\bboth\b")):
        orgs = tuple(organs) if len(organs) >= 2 else ("kidney_left", "kidney_right") if "kidney" in organs else tuple(organs)
        if lesion and count:
            return q("organ aggregation", organs=orgs, measure="lesion_count")
        if lesion:
            return q("organ aggregation", organs=orgs, measure="lesion_volume")
        if _has(t, r"\bvolume\b|\bsize\b"):
            return q("organ aggregation", organs=orgs, measure="volume")
    if count and lesion:
        return q("lesion counting", organ=organ)
    if lesion and _has(t, r"\bvolume\b"):
        agg = "total" if _has(t, r"\b(total|combined|sum|all|overall)\b") else "largest"
        return q("lesion volume measurement", organ=organ, aggregate=agg)
    if lesion and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)"):
        return q("lesion HU measurement", organ=organ)

    # --- organ-level ---
    if organ and _has(t, r"\bhu\b|attenuation|density|\bct (value|number)"):
        return q("organ HU measurement", organ=organ)
    if organ and _has(t, r"enlarg|megaly|larger than normal|increased (in )?size|abnormally large|normal (in )?size"):
        return q("organ enlargement", organ=organ)
    if organ and _has(t, r"\bvolume\b|how (large|big) is the"):
        return q("organ volume measurement", organ=organ)

    # --- recognition ---
    if lesion and organ and _has(t, r"\b(is|are) there\b|\bany\b|evidence|presen|\bcontain|\bhave\b|\bhas\b|\bshow|detect|identif|visible|\bexist|\bsee\b|\bsign"):
        kind = "cyst" if _has(t, r"\bcysts?\b") else ("tumor" if _has(t, r"tumor|\bmass|cancer|carcinoma|neoplasm|malignan") else None)
        fam = organ_family(organ)
        if fam == "kidney":
            st = {"cyst": "kidney cyst existence", "tumor": "kidney tumor existence"}.get(kind or "", "kidney lesion existence")
            return q(st, organ=organ)
        if fam == "liver":
            return q("liver lesion existence")
        if fam == "pancreas":
            return q("pancreatic lesion existence")
        if fam == "colon":
            return q("colon lesion existence")
        return q("lesion existence", organ=organ, lesion_kind=kind)
    return None
