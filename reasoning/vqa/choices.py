"""Multiple choice: options read from the question text or a list, and the computed value matched
to one option (numbers with their unit and a tolerance, yes/no and categories by synonyms)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from perception.registry import organ_family
from reasoning.vqa.entities import strip_prompt
from reasoning.vqa.parse import _has, _norm, _organs_in, _segments_in
from reasoning.vqa.result import _Result


@dataclass(frozen=True)
class Option:
    letter: str
    text: str


_OPT_IN_TEXT = re.compile(r"(?:(?<=\s)|^|(?<=\())\(?([A-D])\s*[\):\.\]]\s*")


def split_choices(text: str) -> tuple[str, list[Option]]:
    """Question text and its options when it ends with 'A) ... B) ...' (or 'A: ...', '(A) ...', 'A. ...'); a prompt
    builder's text around them ('Answer with ONLY the single letter (A, B, C, or D).') is removed first."""
    text = strip_prompt(text)
    marks = list(_OPT_IN_TEXT.finditer(text))
    seq: list[re.Match] = []
    want = "A"
    for m in marks:
        if m.group(1) == want:
            seq.append(m)
            want = chr(ord(want) + 1)
    if len(seq) < 2:
        return text, []
    opts = []
    for i, m in enumerate(seq):
        end = seq[i + 1].start() if i + 1 < len(seq) else len(text)
        opts.append(Option(m.group(1), text[m.end():end].strip(" \n\t;,")))
    return text[:seq[0].start()].strip(), opts


def parse_choices(choices: list[str]) -> list[Option]:
    out = []
    for i, c in enumerate(choices):
        m = re.match(r"^\s*\(?([A-Da-d])\s*[\):\.\]]\s*(.*)$", c, re.DOTALL)
        out.append(Option(m.group(1).upper(), m.group(2).strip()) if m else Option(chr(ord("A") + i), c.strip()))
    letters = [o.letter for o in out]
    if len(set(letters)) != len(letters):
        raise ValueError(f"duplicate option letters in {choices!r}")
    return out


_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_UNIT_FACTORS = {  # option unit -> (answer unit, factor)
    "ml": ("mL", 1.0), "cc": ("mL", 1.0), "cm3": ("mL", 1.0), "l": ("mL", 1000.0),
    "mm": ("mm", 1.0), "cm": ("mm", 10.0), "%": ("%", 1.0), "hu": ("HU", 1.0),
}


def _option_number(text: str, unit: str | None) -> float | None:
    t = _norm(text).replace("cm³", "cm3").replace("mm³", "mm3")
    m = _NUM.search(t)
    if not m:
        return None
    v = float(m.group(0).replace(",", "."))
    rest = t[m.end():].strip()
    um = re.match(r"(ml|cc|cm3|mm3|l\b|liters?|litres?|mm|cm|%|percent|hu)", rest)
    if um:
        u = {"liter": "l", "liters": "l", "litre": "l", "litres": "l", "percent": "%"}.get(um.group(1), um.group(1))
        if u == "mm3":
            return v / 1000.0 if unit == "mL" else None
        target, fac = _UNIT_FACTORS.get(u, (None, 1.0))
        if unit and target and target == unit:
            return v * fac
        if unit and target and target != unit:
            return None
    return v


_TOL = {"mL": (0.15, 0.01), "mm": (0.15, 0.5), "HU": (0.15, 2.0), "ratio": (0.15, 0.02), "%": (0.15, 0.05)}


def _match_numeric(sub: str, value: float, unit: str | None, opts: list[Option]) -> tuple[Option | None, str]:
    vals = [(o, _option_number(o.text, unit)) for o in opts]
    vals = [(o, v) for o, v in vals if v is not None]
    if not vals:
        return None, "no option holds a number"
    if sub == "tumor organ HU difference" and value < 0 and all(v >= 0 for _, v in vals):
        value = abs(value)
    if unit in ("lesions", None) and sub in ("lesion counting", "lesion count by location", "organ aggregation"):
        hit = [o for o, v in vals if v == value]
        return (hit[0], "") if len(hit) == 1 else (None, f"no option equals {value}")
    if unit == "slice":
        rel, ab = 0.0, 2.0
    else:
        rel, ab = _TOL.get(unit or "", (0.15, 0.0))
    tol = max(rel * abs(value), ab)
    ranked = sorted(vals, key=lambda ov: abs(ov[1] - value))
    best, d0 = ranked[0][0], abs(ranked[0][1] - value)
    if d0 > tol:
        return None, f"nearest option {best.letter}) {best.text} is {d0:.3g} away (tolerance {tol:.3g})"
    if len(ranked) > 1 and abs(ranked[1][1] - value) <= tol and d0 >= 0.5 * abs(ranked[1][1] - value):
        return None, f"options {best.letter} and {ranked[1][0].letter} are both within tolerance"
    return best, ""


_YES = r"^(yes|true|present|positive)\b"
_NO = r"^(no|false|absent|negative|none)\b"
_NEG = r"\b(no|not|without|absent|negative|normal|none|neither)\b"
_BIN_YES_WORDS = {
    "splenomegaly detection": r"splenomegaly|enlarged",
    "organ enlargement": r"enlarg|megaly|larger than normal",
    "fatty liver": r"fatty|steatosis",
    "pancreatic steatosis": r"fatty|steatosis",
    "pseudocyst determination": r"pseudo-?cyst",
    "pancreatic cyst resectability": r"resect|surg|remov|excis|operat",
    "portal hypertension assessment": r"portal hypertension|present",
    "lesion outlier": r"outlier",
}
_BIN_NO_WORDS = {"pseudocyst determination": r"mucinous", "pancreatic cyst resectability": r"surveillance|follow|observ|monitor"}


def _binary_label(sub: str, text: str) -> str | None:
    t = _norm(text)
    if re.match(_YES, t):
        return "yes"
    if re.match(_NO, t):
        return "no"
    if sub in _BIN_NO_WORDS and re.search(_BIN_NO_WORDS[sub], t):
        return "no"
    if re.search(_NEG, t):
        return "no"
    if sub in _BIN_YES_WORDS and re.search(_BIN_YES_WORDS[sub], t):
        return "yes"
    return None


_CATEGORY_PATTERNS: dict[str, list[tuple[str, str]]] = {
    "largest lesion attenuation": [("hypoattenuating", r"hypo|lower|darker|less dense"), ("hyperattenuating", r"hyper|higher|brighter|more dense"),
                                   ("isoattenuating", r"\biso|similar|same|equal")],
    "liver lesion clustering": [("somewhat clustered", r"somewhat|moderately|partially|partly"),
                                ("highly clustered", r"highly|tightly|strongly|very|clustered|concentrated|focal"),
                                ("widely distributed", r"wide|diffuse|scatter|distribut|spread|dispers")],
    "hepatic steatosis grading": [("G3 (severe)", r"\bg(?:rade)?\s*3\b|severe"), ("G2 (moderate)", r"\bg(?:rade)?\s*2\b|moderate"),
                                  ("G1 (mild)", r"\bg(?:rade)?\s*1\b|mild"), ("G0 (normal)", r"\bg(?:rade)?\s*0\b|normal|\bnone\b|\bno\b")],
    "splenomegaly grading": [("normal (no splenomegaly)", r"normal|\bno splenomegaly|\bnone\b"), ("severe", r"severe|massive"),
                             ("moderate", r"moderate"), ("mild", r"mild")],
    "pancreatic tumor staging": [("T4", r"\bt\s*4|\bstage iv\b"), ("T3", r"\bt\s*3|\bstage iii\b"), ("T2", r"\bt\s*2|\bstage ii\b"),
                                 ("T1", r"\bt\s*1|\bstage i\b")],
    "pancreatic lesion resectability": [("borderline resectable", r"borderline"),
                                        ("locally advanced", r"locally advanced|unresectable|not resectable|irresectable|non-?resectable"),
                                        ("resectable", r"resectable")],
    "PDAC vs PNET classification": [("PDAC", r"pdac|adenocarcinoma|ductal"), ("PNET", r"pnet|neuroendocrine")],
    "lesion type classification": [("cyst", r"\bcyst|cystic"), ("tumor", r"tumor|solid|rcc|carcinoma|\bmass|neoplasm|malignan")],
    "renal mass characterization": [("fat-containing", r"\bfat|angiomyolipoma"),
                                    ("hyperdense cyst", r"hyperdense|hyperattenuating|high[\s-]density|hemorrhagic|proteinaceous"),
                                    ("indeterminate", r"indeterminate|(?<!minimally )complex|solid|enhancing|\brcc\b|bosniak (?:iii|iv|3|4)\b"),
                                    ("simple cyst", r"simple|benign cyst|bosniak (?:i|1)\b")],
    "diagnosis": [("yes", r"^(?:yes|true)\b"), ("no", r"^(?:no|false)\b"), ("benign", r"\bbenign"), ("malignant", r"malignan|cancer")],
    "recommendation": [("surveillance", r"surveil|follow|observ|monitor|watch"), ("resection", r"resect|surg|remov|excis|operat")],
    "contrast phase": [("non_contrast", r"non[\s-]?contrast|unenhanced|non[\s-]?enhanced|\bplain\b|without (?:iv )?contrast|\bnative\b"),
                       ("portal_venous", r"portal|venous"), ("arterial", r"arterial"),
                       ("delayed", r"delayed|excretory|nephrographic|\blate\b|equilibrium")],
    "vessel contact category": [("encasement", r"encase"), ("abutment", r"abut"),
                                ("none", r"\bnone\b|\bno (?:vascular |vessel )?contact\b|not in contact|\bclear\b|\bfree\b|\bseparate")],
    "vessel involvement": [],
    "lesion composition": [("fat-containing", r"\bfat"), ("calcified", r"calcif"), ("cystic", r"cyst|fluid"),
                           ("solid", r"solid|soft[\s-]tissue")],
    "organ status": [("incompletely imaged", r"incomplet|truncat|partial|cut (?:off|by)|not (?:completely|fully) imaged"),
                     ("not segmented", r"not segmented|not assessed"), ("not found", r"not found"), ("failed", r"fail"),
                     ("absent", r"absent|missing|removed|empty"), ("measured", r"measured|complete|fully imaged|whole")],
    "kidney volume comparison": [("equal", r"equal|same|similar|symmetric|no (significant )?difference"),
                                 ("left kidney", r"\bleft\b"), ("right kidney", r"\bright\b")],
    "bilateral kidney asymmetry": [("symmetric", r"symmetric(?!al)|equal|same|similar|no (significant )?(difference|asymmetry)|neither|balanced"),
                                   ("left kidney", r"\bleft\b"), ("right kidney", r"\bright\b")],
}


def _category_label(sub: str, text: str) -> str | None:
    t = _norm(text)
    if sub in ("largest lesion location", "inter-segment comparison"):
        if _has(t, r"\bequal|\bsame\b|\btie\b|\bboth\b"):
            return "equal"
        segs = _segments_in(t, True) or _segments_in("segment " + t, True)
        if segs:
            return segs[0]
        orgs = _organs_in(t)
        return orgs[0] if orgs else None
    if sub in ("adjacent organ", "multi-organ lesion burden comparison"):
        if _has(t, r"\bnone\b|\bno organ\b|\bnothing\b"):
            return "none"
        if _has(t, r"\bequal\b|\bsame\b|\btie\b"):
            return "equal"
        orgs = _organs_in(t)
        if not orgs:
            return None
        return organ_family(orgs[0]) if sub == "multi-organ lesion burden comparison" else orgs[0]
    if sub == "kidney tumor staging":
        m = re.search(r"\bt\s*([0-4])\s*([abc])?\b", t)
        return f"T{m.group(1)}{m.group(2) or ''}" if m else None
    for label, pat in _CATEGORY_PATTERNS.get(sub, []):
        if _has(t, pat):
            return label
    return None


def _match(sub: str, atype: str, r: _Result, opts: list[Option]) -> tuple[Option | None, str]:
    if atype == "numeric":
        return _match_numeric(sub, float(r.value), r.unit, opts)
    if atype == "binary":
        labels = [(o, _binary_label(sub, o.text)) for o in opts]
        accept = {str(r.value)}
    else:
        labels = [(o, _category_label(sub, o.text)) for o in opts]
        accept = set(r.accept) if r.accept is not None else {str(r.value)}
    hit = [o for o, l in labels if l is not None and l in accept]
    if len(hit) == 1:
        return hit[0], ""
    if not hit:
        return None, f"no option means {r.value!r} (options read as {', '.join(f'{o.letter}={l}' for o, l in labels)})"
    return None, f"several options mean {r.value!r}: {', '.join(o.letter for o in hit)}"
