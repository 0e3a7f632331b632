"""Grounding validator: every claim in report text must be backed by the findings it cites.

What is extracted from each sentence, and how it is checked against the facts of the finding
ids the sentence cites (plus ``study``, which every sentence may use):

- numbers with a unit (mm, cm, mL/ml/cc, HU, degrees/deg/°, %): must equal a fact of that unit
  *as rounded to the decimals written* (|written - fact| <= half a unit in the last written
  digit; cm are converted to mm first, so "3.9 cm" and "4 cm" match 39.0 mm, "4 cm" does not
  match 34.0 mm and "39 mm" does not match 39.6 mm). Sizes "A x B mm" check each part.
- numbers with no unit: allowed only as an axial slice ("slice 18", "image 18"), a count
  ("3 lesions"), a Couinaud segment, a stage (T2), or a ratio that is a fact (e.g. 0.95). Any
  other bare number is an error ("unverifiable number").
- counts ("three liver lesions", "2 lesions"): must equal the lesion count of the organ named,
  or the total when no organ is named.
- Couinaud segments (segment VII / segment 7), pancreas head/body/tail, kidney pole,
  laterality words next to an organ word: must be among the cited lesions' locations.
- organ words (liver, hepatic, pancreas, kidney, renal, ...): must be an organ the cited findings
  are about or adjacent to; vessel names are removed first so "splenic vein" is not the spleen.
- vessel + category (encase/abut/contact/no contact): the vessel must have been assessed for a
  cited lesion and the category must match; degrees in the same sentence are checked as numbers.
- stages: T categories and NCCN categories must be among the cited lesions' staging hints; any
  N or M stage is an error (never assessed).
- attenuation words (hypo/iso/hyper + attenuating/enhancing/dense): must match a cited lesion.
- citations: every cited id must exist; lesion ids written in the text (L3) must exist and be
  cited. Report level: every lesion must be cited by some sentence of the FINDINGS section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perception.schema import Findings

from .facts import IdFacts, build_facts, counts, quotable

WORD_NUM = {"no": 0, "zero": 0, "one": 1, "single": 1, "solitary": 1, "two": 2, "three": 3, "four": 4, "five": 5,
            "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "IVA": 4, "IVB": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8}

# text vessel phrases -> vessel mask names they may refer to (longest phrases first)
VESSEL_PHRASES: list[tuple[str, tuple[str, ...]]] = sorted([
    ("superior mesenteric artery", ("superior_mesenteric_artery",)), ("sma", ("superior_mesenteric_artery",)),
    ("superior mesenteric vein", ("superior_mesenteric_vein",)), ("smv", ("superior_mesenteric_vein",)),
    ("celiac trunk", ("celiac_trunk",)), ("celiac axis", ("celiac_trunk",)), ("coeliac trunk", ("celiac_trunk",)),
    ("celiac artery", ("celiac_trunk",)),
    ("common hepatic artery", ("common_hepatic_artery",)), ("cha", ("common_hepatic_artery",)),
    ("hepatic artery", ("common_hepatic_artery", "hepatic_artery")),
    ("splenic artery", ("splenic_artery",)),
    ("portal/splenic vein", ("portal_vein_and_splenic_vein",)), ("portal vein", ("portal_vein", "portal_vein_and_splenic_vein")),
    ("splenic vein", ("splenic_vein", "portal_vein_and_splenic_vein")),
    ("portal confluence", ("portal_vein", "portal_vein_and_splenic_vein", "superior_mesenteric_vein")),
    ("inferior vena cava", ("inferior_vena_cava",)), ("ivc", ("inferior_vena_cava",)), ("vena cava", ("inferior_vena_cava",)),
    ("aorta", ("aorta",)), ("aortic", ("aorta",)),
    ("left renal vein", ("renal_vein_left",)), ("right renal vein", ("renal_vein_right",)),
    ("renal vein", ("renal_vein_left", "renal_vein_right")),
    ("left renal artery", ("renal_artery_left",)), ("right renal artery", ("renal_artery_right",)),
    ("renal artery", ("renal_artery_left", "renal_artery_right")),
    ("hepatic veins", ("hepatic_vein",)), ("hepatic vein", ("hepatic_vein",)), ("hepatic vessels", ("liver_vessels",)),
    ("iliac artery", ("iliac_artery_left", "iliac_artery_right")), ("iliac vein", ("iliac_vena_left", "iliac_vena_right")),
    ("pulmonary artery", ("pulmonary_artery",)), ("superior vena cava", ("superior_vena_cava",)),
], key=lambda t: -len(t[0]))

ORGAN_WORDS = {
    "liver": "liver", "hepatic": "liver", "pancreas": "pancreas", "pancreatic": "pancreas", "spleen": "spleen",
    "splenic": "spleen", "kidney": "kidney", "kidneys": "kidney", "renal": "kidney", "gallbladder": "gallbladder",
    "adrenal": "adrenal", "adrenals": "adrenal", "stomach": "stomach", "gastric": "stomach", "duodenum": "duodenum",
    "duodenal": "duodenum", "colon": "colon", "colonic": "colon", "lung": "lung", "lungs": "lung", "pulmonary": "lung",
    "bladder": "urinary_bladder", "esophagus": "esophagus", "prostate": "prostate", "heart": "heart",
    "small bowel": "small_bowel", "bowel": "small_bowel",
}

NUM = r"(?<![\w.])(-?\d+(?:\.\d+)?)"
UNIT_RE = re.compile(NUM + r"\s*(mm|cm|ml|mL|cc|cm3|cm³|HU|hu|degrees|degree|deg|°|%)(?![\w])")
SIZE_RE = re.compile(NUM + r"\s*(?:x|×|by)\s*(-?\d+(?:\.\d+)?)(?:\s*(?:x|×|by)\s*(-?\d+(?:\.\d+)?))?\s*(mm|cm)\b")
SLICE_RE = re.compile(r"\b(?:axial\s+)?(?:slice|image)\s+(?:index\s+|number\s+|no\.?\s*)?(\d+)\b", re.I)
SEG_RE = re.compile(r"\bsegments?\s+((?:(?:IVa|IVb|VIII|VII|VI|IV|V|III|II|I|[1-8])(?:\s*(?:,|and|/|-|&|or)\s*)?)+)", re.I)
SEG_TOKEN = re.compile(r"IVa|IVb|VIII|VII|VI|IV|V|III|II|I|[1-8]", re.I)
STAGE_RE = re.compile(r"\b(?:c|p|y)?([TNM])(X|is|[0-4][a-c]?)\b")
NCCN = ("locally advanced", "borderline resectable", "borderline", "unresectable", "resectable")
COUNT_RE = re.compile(r"\b(\d+|" + "|".join(WORD_NUM) + r")\s+(?:(\w+)\s+)?(lesions?|masses|mass|nodules?|cysts?|tumou?rs?|foci|focus)\b", re.I)
ATT_RE = re.compile(r"\b(hypo|iso|hyper)[- ]?(attenuating|attenuation|enhancing|enhancement|dense|density|intense)\b", re.I)
LATERAL_RE = re.compile(r"\b(left|right)\b", re.I)
POLE_RE = re.compile(r"\b(upper|lower|interpolar|mid)[- ]?(pole|polar)?\b", re.I)
PANC_PART_RE = re.compile(r"\b(?:pancreatic\s+(head|neck|body|tail)|(head|neck|body|tail)\s+of\s+the\s+pancreas|uncinate)\b", re.I)
LESION_ID_RE = re.compile(r"\bL(\d+)\b")
IGNORE_RE = re.compile(r"RECIST\s*1\.1|AJCC\s*8(?:th)?|AJCC8|\b3D\b|\b2D\b|Couinaud|NCCN|\bW\d+/L-?\d+", re.I)
QUOTE_RE = re.compile(r"""(["'])(.+?)\1""")
LIST_MARK_RE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")


@dataclass(frozen=True)
class GroundingError:
    sentence: int  # index in the draft
    kind: str  # number | unverifiable_number | count | segment | laterality | organ | vessel | stage | attenuation | citation | missing_lesion
    message: str

    def __str__(self) -> str:
        return f"sentence {self.sentence + 1}: [{self.kind}] {self.message}"


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def _matches(written: str, value: float, scale: float = 1.0) -> bool:
    """written (in its unit, decimals as written) equals value/scale rounded to those decimals."""
    x = float(written)
    tol = 0.5 * 10 ** (-_decimals(written)) + 1e-9
    return abs(x - value / scale) <= tol


def _unit(u: str) -> tuple[str, float]:
    u = u.lower()
    return {"mm": ("mm", 1.0), "cm": ("mm", 10.0), "ml": ("mL", 1.0), "cc": ("mL", 1.0), "cm3": ("mL", 1.0),
            "cm³": ("mL", 1.0), "hu": ("HU", 1.0), "degrees": ("deg", 1.0), "degree": ("deg", 1.0), "deg": ("deg", 1.0),
            "°": ("deg", 1.0), "%": ("%", 1.0)}[u]


def _merge(facts: dict[str, IdFacts], ids: list[str]) -> IdFacts:
    out = IdFacts()
    for i in ids:
        f = facts.get(i)
        if f is None:
            continue
        out.numbers += f.numbers
        out.organs |= f.organs
        out.segments |= f.segments
        out.laterality |= f.laterality
        out.poles |= f.poles
        for k, v in f.vessels.items():
            out.vessels.setdefault(k, v)
        out.stages |= f.stages
        out.slices |= f.slices
        out.attenuation |= f.attenuation
    return out


class Validator:
    """Checks report sentences against one Findings object."""

    def __init__(self, findings: Findings):
        self.findings = findings
        self.facts = build_facts(findings)
        self.counts = counts(findings)
        self.lesion_ids = {l.id for l in findings.lesions}
        self.quotable = quotable(findings)

    def check_sentence(self, idx: int, text: str, finding_ids: list[str]) -> list[GroundingError]:
        errs: list[GroundingError] = []
        E = lambda kind, msg: errs.append(GroundingError(idx, kind, msg))
        unknown = [i for i in finding_ids if i not in self.facts]
        for i in unknown:
            E("citation", f"cites {i!r}, which is not a finding (valid ids: {', '.join(sorted(self.facts))})")
        cited = [i for i in finding_ids if i in self.facts]
        F = _merge(self.facts, cited)
        if "study" not in cited:  # study-level numbers (slice thickness, totals) are usable everywhere
            F.numbers += self.facts["study"].numbers
        t = LIST_MARK_RE.sub("", text)
        t = IGNORE_RE.sub(" ", t)
        t = self._blank_quotes(t)

        for m in LESION_ID_RE.finditer(t):
            lid = f"L{m.group(1)}"
            if lid not in self.lesion_ids:
                E("citation", f"mentions lesion {lid}, which does not exist (lesions: {', '.join(sorted(self.lesion_ids)) or 'none'})")
            elif lid not in cited:
                E("citation", f"mentions {lid} without citing it")
        t = LESION_ID_RE.sub(" ", t)

        # vessels (removed from the text afterwards so 'splenic vein' is not the spleen)
        low = t.lower()
        mentioned_vessels = []
        for phrase, names in VESSEL_PHRASES:
            for m in re.finditer(r"\b" + re.escape(phrase) + r"\b", low):
                mentioned_vessels.append((phrase, names, m.start()))
                low = low[:m.start()] + " " * len(phrase) + low[m.end():]
        cat_word = None
        if re.search(r"\bencas", low):
            cat_word = "encasement"
        elif re.search(r"\babut", low):
            cat_word = "abutment"
        elif re.search(r"\b(no|without|free of|clear of|not in) (vascular |vessel )?contact|\bdoes not (contact|touch|abut|encase)|\bclear of\b|\bno involvement|\bnot involved|\bspar", low):
            cat_word = "none"
        for phrase, names, _ in mentioned_vessels:
            assessed = [n for n in names if n in F.vessels]
            if not assessed:
                E("vessel", f"mentions the {phrase}, which was not assessed for the cited findings (assessed: {', '.join(sorted(F.vessels)) or 'none'})")
                continue
            cats = {F.vessels[n] for n in assessed}
            if cat_word and cat_word not in cats:
                E("vessel", f"says {cat_word} of the {phrase}; findings say {', '.join(sorted(cats))}")

        # sizes A x B [x C] unit
        consumed = []
        for m in SIZE_RE.finditer(t):
            unit, scale = _unit(m.group(4))
            for g in (m.group(1), m.group(2), m.group(3)):
                if g is not None and not any(f.unit == unit and _matches(g, f.value, scale) for f in F.numbers):
                    E("number", f"size {g} {m.group(4)} matches no measured length of the cited findings")
            consumed.append(m.span())
        t2 = _blank(t, consumed)
        consumed = []
        for m in UNIT_RE.finditer(t2):
            unit, scale = _unit(m.group(2))
            if not any(f.unit == unit and _matches(m.group(1), f.value, scale) for f in F.numbers):
                cands = sorted({f"{f.value:g} {f.unit} ({f.name})" for f in F.numbers if f.unit == unit})[:8]
                E("number", f"{m.group(1)} {m.group(2)} matches no {unit} value of the cited findings"
                  + (f" (candidates: {', '.join(cands)})" if cands else ""))
            consumed.append(m.span())
        t2 = _blank(t2, consumed)

        consumed = []
        for m in SLICE_RE.finditer(t2):
            if int(m.group(1)) not in F.slices:
                E("number", f"slice {m.group(1)} is not the long-axis slice of the cited lesions ({sorted(F.slices)})")
            consumed.append(m.span())
        for m in SEG_RE.finditer(t2):
            for tok in SEG_TOKEN.findall(m.group(1)):
                n = ROMAN.get(tok.upper()) or int(tok) if not tok.isdigit() else int(tok)
                if f"liver_segment_{n}" not in F.segments:
                    E("segment", f"segment {tok} is not a location of the cited lesions ({', '.join(sorted(F.segments)) or 'none'})")
            consumed.append(m.span())
        for m in PANC_PART_RE.finditer(t2):
            part = (m.group(1) or m.group(2) or "head").lower()
            part = "head" if part in ("neck", "uncinate") else part
            if f"pancreas_{part}" not in F.segments:
                E("segment", f"pancreatic {part} is not a location of the cited lesions ({', '.join(sorted(F.segments)) or 'none'})")
            consumed.append(m.span())
        for m in STAGE_RE.finditer(t2):
            letter, val = m.group(1), m.group(2)
            if letter in "NM":
                E("stage", f"{letter}{val}: N and M are never assessed from masks")
            elif f"T{val}" not in F.stages:
                E("stage", f"T{val} is not the T category of the cited findings ({', '.join(sorted(s for s in F.stages if s.startswith('T'))) or 'none'})")
            consumed.append(m.span())
        lowt2 = t2.lower()
        for phrase in NCCN:
            for m in re.finditer(r"\b" + phrase + r"\b", lowt2):
                full = "borderline resectable" if phrase == "borderline" else phrase
                if full == "resectable" and re.search(r"(borderline|un)\s*$", lowt2[:m.start()]):
                    continue
                if full not in F.stages:
                    E("stage", f"{full!r} is not the resectability of the cited findings ({', '.join(sorted(s for s in F.stages if not s.startswith('T')))})")
                consumed.append(m.span())
                lowt2 = lowt2[:m.start()] + " " * (m.end() - m.start()) + lowt2[m.end():]
        for m in COUNT_RE.finditer(t2):
            word = m.group(1).lower()
            n = int(word) if word.isdigit() else WORD_NUM[word]
            organ = ORGAN_WORDS.get((m.group(2) or "").lower())
            expected = self.counts.get(organ, 0) if organ else self.counts["total"]
            per_lesion = n == 1 and bool(set(cited) & self.lesion_ids)
            # "no lesion found in the <organ>": zero lesions in each cited organ (the search is named in the sentence)
            cited_organs = [i.split(":", 1)[1] for i in cited if i.startswith("organ:")]
            zero_in_cited = n == 0 and not organ and cited_organs and all(
                not any(l.organ == o for l in self.findings.lesions) for o in cited_organs)
            noun = m.group(3).lower()
            kind = "cyst" if noun.startswith("cyst") else "nodule" if noun.startswith("nodule") else \
                "tumor" if noun.startswith("tumo") else None
            if zero_in_cited and not all((s := self.findings.search_of(o)) is not None and s.covers(kind)
                                         for o in cited_organs):
                E("count", f"says no {m.group(3)} in {', '.join(cited_organs)}, which lesion_search does not record as "
                  "searched (absence cannot be stated)")
                consumed.append(m.span())
                continue
            if n != expected and not per_lesion and not zero_in_cited:
                E("count", f"says {n} {(m.group(2) or '') + ' ' if m.group(2) else ''}{m.group(3)}; findings have {expected}")
            consumed.append(m.span())
        t3 = _blank(t2, consumed)
        for m in ATT_RE.finditer(t3):
            att = {"hypo": "hypoattenuating", "iso": "isoattenuating", "hyper": "hyperattenuating"}[m.group(1).lower()]
            if F.attenuation and att not in F.attenuation:
                E("attenuation", f"says {m.group(0)}; findings say {', '.join(sorted(F.attenuation))}")
            if not F.attenuation and set(cited) & self.lesion_ids:
                E("attenuation", f"says {m.group(0)}; attenuation was not measured for the cited lesion")
        # organs and laterality (vessel phrases already blanked in `low`)
        low3 = _blank(low, [])
        for w, fam in sorted(ORGAN_WORDS.items(), key=lambda kv: -len(kv[0])):
            if re.search(r"\b" + re.escape(w) + r"\b", low3):
                low3 = re.sub(r"\b" + re.escape(w) + r"\b", " ", low3)
                # a study-level sentence may name an organ it says was not assessed / not searched (no claim about it)
                not_assessed = cited == ["study"] and re.search(r"\bnot (assessed|searched|recognised)\b", low)
                if F.organs and fam not in F.organs and not not_assessed:
                    E("organ", f"mentions the {w}, but the cited findings are about {', '.join(sorted(F.organs))}")
                elif not F.organs and cited != [] and set(cited) - {"study"}:
                    E("organ", f"mentions the {w}, which the cited findings do not locate")
        for m in LATERAL_RE.finditer(low):
            if F.laterality and m.group(1).lower() not in F.laterality:
                E("laterality", f"says {m.group(1)}; the cited findings are {', '.join(sorted(F.laterality))}")
            elif not F.laterality and set(cited) & (self.lesion_ids | {k for k in self.facts if k.startswith('organ:')}):
                E("laterality", f"says {m.group(1)}; the cited findings have no side")
        for m in POLE_RE.finditer(t3):
            if m.group(2) or m.group(1).lower() == "interpolar":
                pole = "interpolar" if m.group(1).lower() in ("interpolar", "mid") else m.group(1).lower()
                if pole not in F.poles:
                    E("laterality", f"says {m.group(0)}; the cited kidney pole is {', '.join(sorted(F.poles)) or 'not measured'}")
        # bare numbers left over
        for m in re.finditer(NUM, t3):
            if any(f.unit == "ratio" and _matches(m.group(1), f.value) for f in F.numbers):
                continue
            E("unverifiable_number", f"the number {m.group(1)} has no unit or context that a finding can confirm")
        return errs

    def _blank_quotes(self, t: str) -> str:
        """Quoted Findings strings (warnings, mask names, search sources) and mask file names are quotations:
        blanked before parsing, so a warning's own numbers are not read as claims. Anything else stays."""
        for m in QUOTE_RE.finditer(t):
            if m.group(2) in self.quotable:
                t = t[:m.start()] + " " * (m.end() - m.start()) + t[m.end():]
        for q in sorted(self.quotable, key=len, reverse=True):
            if ("_" in q or "." in q or ":" in q) and q in t:
                t = t.replace(q, " " * len(q))
        return t

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


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    out = list(text)
    for a, b in spans:
        out[a:b] = " " * (b - a)
    return "".join(out)
