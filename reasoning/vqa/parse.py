"""Free text -> :class:`Question`, built on the entities of the question (``reasoning.vqa.entities``).

1. The prompt builder's text around the question is removed and the entities are read.
2. A question type is chosen from what the question asks (the measure, the lesion or organ, the
   vessel, the time reference, diagnosis and recommendation words), most specific first.
3. The type is kept only when it uses EVERY entity the question names (a vessel, a lesion id, a
   segment, a threshold, a second-largest rank, a unit of another dimension, an organ the type does
   not take ...). Otherwise the question is "unmapped": :func:`understand` says what was understood
   and which supported questions are closest. Never a guess.

A question naming a vessel is answered by a vessel rule or refused; a time reference goes to
"change over time", a diagnosis word to "diagnosis", a recommendation word to "recommendation"
(DeepTumorVQA types that are themselves such rules, e.g. pancreatic cyst resectability, keep their
type). When the caller gives the type, :func:`parse_question` reads only its parameters.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from perception.registry import SUBSEGMENTS, organ_family
from reasoning.vocabulary import LESION_WORDS, ORGAN_PATTERNS, organs_in
from reasoning.vqa.entities import QuestionEntities, extract_entities, norm, segments_in
from reasoning.vqa.question import Question
from reasoning.vqa.subtypes import SUBTYPES, canonical_subtype

# names other modules import from here
_norm = norm
_organs_in = organs_in
_segments_in = segments_in


def _has(t: str, pat: str) -> bool:
    return re.search(pat, t) is not None


# --- what each question type can take ------------------------------------------------------------

# Measures that pick a quantity; a question asking one the chosen type does not answer is unmapped.
_PRIMARY = {"angle", "contact_length", "short_axis", "diameter_3d", "diameter", "volume", "hu", "count", "key_slice", "slice",
            "stage", "percent", "ratio"}
_LESION_SIZE = {"diameter", "short_axis", "diameter_3d"}
_TYPE_MEASURES: dict[str, set[str]] = {
    "vessel involvement": {"angle"}, "vessel contact category": {"angle"}, "vessel contact angle": {"angle"},
    "vessel contact length": {"contact_length", "diameter"}, "involved vessels": set(),
    "largest lesion diameter": {"diameter"}, "lesion short axis": {"short_axis", "diameter"},
    "lesion 3D diameter": {"diameter_3d", "diameter"}, "lesion size threshold": _LESION_SIZE,
    "lesion volume measurement": {"volume"}, "organ volume measurement": {"volume"},
    "organ HU measurement": {"hu"}, "lesion HU measurement": {"hu"}, "tumor organ HU difference": {"hu"},
    "organ HU ratio": {"hu", "ratio"}, "tumor burden percentage": {"percent", "volume"},
    "lesion counting": {"count"}, "lesion count by location": {"count"}, "organ aggregation": {"count", "volume"},
    "largest lesion slice": {"slice"}, "lesion key slice": {"key_slice", "slice", "diameter", "count"},
    "pancreatic tumor staging": {"stage"}, "kidney tumor staging": {"stage"}, "splenomegaly grading": {"volume"},
    "splenomegaly detection": {"volume"}, "organ enlargement": {"volume"}, "hepatic steatosis grading": {"hu", "ratio"},
    "fatty liver": {"hu", "ratio"}, "pancreatic steatosis": {"hu", "ratio"}, "renal mass characterization": {"hu"},
    "lesion type classification": {"hu"}, "pseudocyst determination": {"hu"},
    "pancreatic cyst resectability": {"diameter", "volume"}, "pancreatic lesion resectability": {"stage"},
    "kidney volume comparison": {"volume"}, "multi-organ lesion burden comparison": {"volume"},
    "bilateral kidney asymmetry": {"volume"}, "inter-segment comparison": {"count", "volume"},
    "lesion outlier": {"volume", "diameter"}, "largest lesion attenuation": {"hu"}, "RECIST measurability": {"diameter"},
    "lesion completeness": set(), "organ status": set(), "lesion search coverage": set(), "contrast phase": {"stage"},
    "liver lesion clustering": {"count"}, "lesion composition": {"hu"}, "portal hypertension assessment": {"volume"},
}
_REFUSING = {"change over time", "diagnosis", "recommendation"}  # they refuse whatever else is named
_TYPE_UNIT = {"mm": "length", "cm": "length", "mL": "volume", "cm3": "volume", "L": "volume", "mm3": "volume", "HU": "HU", "deg": "angle", "%": "%"}
_UNIT_OF_TYPE = {
    "largest lesion diameter": "length", "lesion short axis": "length", "lesion 3D diameter": "length",
    "vessel contact length": "length", "lesion volume measurement": "volume", "organ volume measurement": "volume",
    "organ aggregation": "volume", "organ HU measurement": "HU", "lesion HU measurement": "HU",
    "tumor organ HU difference": "HU", "vessel contact angle": "angle", "tumor burden percentage": "%",
}
_COUNTS = {"lesion counting", "lesion count by location", "organ aggregation", "tumor burden percentage",
           "multi-organ lesion burden comparison", "bilateral kidney asymmetry", "inter-segment comparison", "liver lesion clustering",
           "lesion outlier"}
_PHASE_OK = {"contrast phase", "fatty liver", "hepatic steatosis grading", "pancreatic steatosis", "renal mass characterization",
             "change over time", "diagnosis", "recommendation"}
_VESSEL_TYPES = {"vessel involvement", "vessel contact category", "vessel contact angle", "vessel contact length", "involved vessels"}
_VESSEL_OK = _VESSEL_TYPES | _REFUSING | {"pancreatic lesion resectability", "pancreatic tumor staging", "kidney tumor staging"}
_SEGMENT_OK = {"inter-segment comparison", "lesion count by location", "largest lesion location", "liver lesion clustering"} | _REFUSING
_AGGREGATE_OK = {"lesion volume measurement", "organ aggregation", "tumor burden percentage", "lesion counting",
                 "lesion count by location", "multi-organ lesion burden comparison", "bilateral kidney asymmetry",
                 "inter-segment comparison", "liver lesion clustering", "organ volume measurement", "involved vessels",
                 "lesion search coverage", "organ HU measurement"} | _REFUSING
_DIAGNOSIS_OK = {"diagnosis", "PDAC vs PNET classification", "pseudocyst determination", "renal mass characterization",
                 "lesion type classification", "PDAC existence", "PNET existence", "kidney tumor existence", "kidney cyst existence"}
_RECOMMEND_OK = {"recommendation", "pancreatic cyst resectability", "pancreatic lesion resectability"}
# organ families a type is about when it takes no organ parameter
_FIXED_ORGANS: dict[str, set[str]] = {
    "PDAC existence": {"pancreas"}, "PNET existence": {"pancreas"}, "colon lesion existence": {"colon"},
    "liver lesion existence": {"liver"}, "pancreatic lesion existence": {"pancreas"}, "splenomegaly detection": {"spleen"},
    "splenomegaly grading": {"spleen"}, "fatty liver": {"liver", "spleen"}, "hepatic steatosis grading": {"liver", "spleen"},
    "pancreatic steatosis": {"pancreas", "spleen"}, "portal hypertension assessment": {"liver", "spleen"},
    "PDAC vs PNET classification": {"pancreas"}, "pseudocyst determination": {"pancreas"},
    "pancreatic cyst resectability": {"pancreas"}, "pancreatic lesion resectability": {"pancreas"},
    "pancreatic tumor staging": {"pancreas"}, "liver lesion clustering": {"liver"}, "kidney volume comparison": {"kidney"},
    "bilateral kidney asymmetry": {"kidney"}, "renal mass characterization": {"kidney"}, "lesion type classification": {"kidney"},
    "kidney tumor staging": {"kidney"}, "kidney cyst existence": {"kidney"}, "kidney lesion existence": {"kidney"},
    "kidney tumor existence": {"kidney"}, "contrast phase": set(),
}
_MULTI_ORGAN = {"organ HU ratio", "multi-organ lesion burden comparison", "organ aggregation", "adjacent organ",
                "lesion count by location"} | _REFUSING


def _unused(sub: str, e: QuestionEntities) -> list[str]:
    """The entities the question names that question type ``sub`` would not use (empty: it uses them all)."""
    if sub in _REFUSING:
        return []
    params = set(SUBTYPES[sub].params) if sub in SUBTYPES else set()
    out = []
    if (e.vessels or e.vessel_generic) and sub not in _VESSEL_OK:
        out.append("vessel " + (", ".join(e.vessels) or "(unnamed)"))
    if len(e.vessels) > 1:
        out.append("more than one vessel (" + ", ".join(e.vessels) + "): ask about one at a time")
    if e.lesion_ids and "lesion_id" not in params:
        out.append("lesion id " + ", ".join(e.lesion_ids))
    if len(e.lesion_ids) > 1:
        out.append("more than one lesion id (" + ", ".join(e.lesion_ids) + ")")
    if e.segments and sub not in _SEGMENT_OK:
        out.append("sub-segment " + ", ".join(e.segments))
    if len(e.segments) > 1 and sub == "lesion count by location":
        out.append("more than one sub-segment (" + ", ".join(e.segments) + "): the count reads one")
    if sub in _VESSEL_TYPES and not e.lesion_ids and (_has(e.norm, r"\b(?:any|every|all|each)\b(?: \w+)? (?:lesions?|tumou?rs?|mass(?:es)?|cysts?|nodules?|growths?|spots?)\b")
                                                       or not (e.lesion or e.organs)):
        out.append("no one lesion named (the vessel rules read one lesion: name it, its organ, or ask about the largest)")
    if e.rank not in (None, 1) and "lesion_id" not in params and "rank" not in params:
        out.append("rank " + ("smallest" if e.rank == -1 else f"#{e.rank} by size"))
    if e.aggregate and sub not in _AGGREGATE_OK:
        out.append("aggregate (total)")
    if e.threshold_mm is not None and sub != "lesion size threshold":
        out.append(f"threshold ({e.comparison} than {e.threshold_text})")
    if sub == "lesion size threshold" and e.rank is None and not e.lesion_ids and _has(e.norm, r"\b(?:is|are) there\b|\bany\b"):
        out.append("any lesion (the size rule reads one lesion: name it or ask about the largest)")
    if e.time:
        out.append("time reference " + ", ".join(e.time))
    if e.other_anatomy:
        out.append("body part without a measurement: " + ", ".join(e.other_anatomy))
    if e.diagnosis and sub not in _DIAGNOSIS_OK:
        out.append("diagnosis " + e.diagnosis)
    if e.recommendation and sub not in _RECOMMEND_OK:
        out.append("recommendation " + ", ".join(e.recommendation))
    kidney = any(organ_family(o) == "kidney" for o in e.organs)
    if sub in ("lesion counting", "lesion count by location") and (e.kind_named == "cyst" or (e.kind_named == "tumor" and kidney)):
        out.append(f"lesion kind {e.kind_named} (this count takes every lesion)")
    if e.phase_named and sub not in _PHASE_OK:
        out.append(f"contrast phase {e.phase_named}")
    extra = [m for m in e.measures if m in _PRIMARY and m not in _TYPE_MEASURES.get(sub, set())]
    if extra:
        out.append("measure " + ", ".join(extra))
    if e.unit and SUBTYPES[sub].answer_type == "numeric" and _TYPE_UNIT.get(e.unit) != _UNIT_OF_TYPE.get(sub, "none"):
        out.append(f"unit {e.unit}")
    fams = list(dict.fromkeys(organ_family(o) for o in e.organs))
    if sub in _FIXED_ORGANS:
        other = [f for f in fams if f not in _FIXED_ORGANS[sub]]
        if other:
            out.append("organ " + ", ".join(other))
    elif sub not in _MULTI_ORGAN and len(fams) > 1:
        out.append("more than one organ (" + ", ".join(fams) + ")")
    return out


# --- routing --------------------------------------------------------------------------------------


def _route(e: QuestionEntities) -> tuple[str, dict] | None:
    """The question type the text asks, with parameters routing decides (the rest come from the entities)."""
    t = e.norm
    ms = set(e.measures)
    organs = e.organs
    organ = organs[0] if organs else None
    fams = [organ_family(o) for o in organs]
    lesion = e.lesion
    direction = e.comparison or "larger"

    # --- DeepTumorVQA's medical-reasoning rules first (most specific wording) ---
    if _has(t, r"\bpdac\b|ductal adenocarcinoma|\badenocarcinoma\b") and _has(t, r"\bpnet\b|neuroendocrine"):
        return "PDAC vs PNET classification", {}
    if _has(t, r"pseudo-?cyst|\bmucinous\b") and not e.time:
        return "pseudocyst determination", {}
    if _has(t, r"portal (venous )?hypertension"):
        return "portal hypertension assessment", {}
    if "kidney" in fams and (_has(t, r"bosniak|characteri[sz]|simple cyst|indeterminate|hyperdense cyst|dense cyst") or (
            _has(t, r"\b(?:kind|type|sort) of\b") and ms & {"hu", "attenuation"})):
        return "renal mass characterization", {"organ": organ if organ != "kidney" else None}
    if _has(t, r"steatosis|fatty (?:liver|pancreas|infiltration|change)|\bfatty\b(?! component| lump| mass| lesion| tumor| spot)|fat (content|infiltration|deposition)"
               r"|too much fat|fat build-?up|excess(?:ive)? fat|fat (?:in|within) the (?:liver|pancreas)") and "composition" not in ms:
        if "pancreas" in organs and "liver" not in organs:
            return "pancreatic steatosis", {}
        if _has(t, r"\bgrad|severity|how severe|kodama|what degree|\bdegree\b|\bstage\b|classify|how fatty|how much fat"):
            return "hepatic steatosis grading", {}
        return "fatty liver", {}
    if _has(t, r"splenomegaly|splenic enlargement|enlarge\w* (of the )?spleen|spleen (is )?enlarged|spleen enlarged"):
        if _has(t, r"\bgrad|classify|classification|severity|how severe|\bdegree\b|\bmild\b|\bmoderate\b|\bsevere\b|categor"):
            return "splenomegaly grading", {}
        return "splenomegaly detection", {}
    if e.time:
        return "change over time", {}
    if "kidney" in fams and lesion and _has(
            t, r"\b(cyst|tumor),? (?:or|vs\.?|versus) (a |an )?(cyst|tumor|solid)\b|\btype of\b|\bclassif|benign cyst or"):
        return "lesion type classification", {"organ": organ if organ != "kidney" else None}
    if "pancreas" in organs and _has(t, r"\bcyst") and _has(t, r"resect|surg|remov|excis|operat"):
        return "pancreatic cyst resectability", {}
    if "pancreas" in organs and _has(t, r"resectab|\bresect|nccn|surgical candidate|operable|surgically") and not e.vessels:
        return "pancreatic lesion resectability", {}
    if "pancreas" in organs and "stage" in ms and not e.vessels:
        return "pancreatic tumor staging", {}
    if _has(t, r"\bpdac\b|ductal adenocarcinoma|\badenocarcinoma\b"):
        return "PDAC existence", {}
    if _has(t, r"\bpnet\b|neuroendocrine"):
        return "PNET existence", {}

    # --- vessels: a vessel rule or nothing ---
    if e.vessels or e.vessel_generic:
        if _has(t, r"\bdistance\b|\bhow far (?:is|are|away|from)\b|\bhow close\b|\binvad\w*|\binvasion\b|\binfiltrat\w*"
                   r"|\bextend\w* into\b|\bgrow\w* into\b|\bintraluminal\b"):
            return None  # distance, invasion, tumour thrombus: not measured (contact is)
        if _has(t, r"\b(?:which|what|list|name)\b[^?]*\bvessels?\b|\bwhich (?:arter|vein)|\bwhat (?:arter|vein)") or (
                e.vessel_generic and _has(t, r"\bvessels\b|\barteries\b|\bveins\b") and not _has(t, r"\bany\b")
                and not _has(t, r"^(?:does|do|is|are|has|have|can|did|was|were)\b")):
            return "involved vessels", {}
        if "angle" in ms:
            return "vessel contact angle", {}
        if "contact_length" in ms or _has(t, r"\blength\b|\bhow long\b|\bhow far along\b|\balong\b"):
            return "vessel contact length", {}
        if "contact_category" in ms or _has(t, r"\bhow (?:much|extensive|severe)\b|\bcategor|\bextent of\b|\bdegree\b"
                                             r"|\bwrap|\bsurround|\bencircl|\ball the way around\b"):
            return "vessel contact category", {}
        if "contact" in ms or _has(t, r"\bnext to\b|\badjacent\b|\bborder|\bclose to\b|\bspare|\bsparing\b|\bclear of\b|\bfree of\b"
                                      r"|\bwrap|\bsurround|\bcompress|\bnarrow|\bocclu|\bthromb"):
            if _has(t, r"\bcompress|\bnarrow|\bocclu|\bthromb"):
                return None  # not measured (compression, thrombus): no vessel rule answers it
            return "vessel involvement", {}
        return None

    if e.lesion and "key_slice" in ms:
        return "lesion key slice", {}
    if e.recommendation:
        return "recommendation", {}
    if e.diagnosis:
        return "diagnosis", {"diagnosis": e.diagnosis}

    # --- radagent facts of the study, organ and lesion ---
    if "phase" in ms and not lesion and not organs and not (ms & (_PRIMARY - {"stage"})):
        return "contrast phase", {}
    if "completeness" in ms:
        if lesion:
            return "lesion completeness", {}
        if organ:
            return "organ status", {}
    if "search" in ms and organ:
        return "lesion search coverage", {"lesion_kind": e.lesion_kind}
    if organ and not lesion and ("status" in ms or _has(t, r"\b(?:present|absent|missing|removed|visible|seen|segmented|imaged)\b"
                                                        r"|\bwas .* found\b")) and not (ms & _PRIMARY) and "enlargement" not in ms:
        return "organ status", {}
    if lesion and "measurable" in ms and not ({"diameter", "short_axis", "diameter_3d"} & ms and _has(
            t, r"\bwhat is\b|\bhow (?:long|large|big)\b")):
        return "RECIST measurability", {}
    if lesion and ("composition" in ms or _has(
            t, r"\b(?:is|are) (?:the |this |that )?[a-z0-9' ]*(?:lesion|tumor|mass|nodule|spot|growth|it)s? (?:\w+ )?"
               r"(?:cystic|solid|calcified|fatty|fat-containing)\b")):
        return "lesion composition", {}
    if "kidney" in fams and "stage" in ms:
        return "kidney tumor staging", {}
    if lesion and "key_slice" in ms:
        return "lesion key slice", {}

    # --- comparisons and ratios ---
    if "ratio" in ms and (ms & {"hu", "attenuation"} or _has(t, r"\bl/s\b|\bp/s\b|-to-")):
        if _has(t, r"\bl/s\b"):
            return "organ HU ratio", {"organs": ("liver", "spleen")}
        if _has(t, r"\bp/s\b"):
            return "organ HU ratio", {"organs": ("pancreas", "spleen")}
        if len(organs) >= 2:
            return "organ HU ratio", {"organs": tuple(organs[:2])}
        return None
    kidney_only = bool(organs) and all(f == "kidney" for f in fams)
    if _has(t, r"asymmetr|\bbilateral\b") or (kidney_only and _has(
            t, r"which kidney|which side|\bl vs\.? r\b|\bleft vs\.? right\b|\bleft or (?:the )?right\b"
               r"|\bone kidney\b.*\bthan the other\b|\bmore affected\b") and (
            lesion or _has(t, r"\bburden\b"))):
        return "bilateral kidney asymmetry", {}
    if lesion and _has(t, r"\bburden\b|lesion volume|tumor volume|more (lesions?|tumors?)") and _has(
            t, r"\bwhich\b|\bmore\b|\bgreater\b|\blarger\b|\bhigher\b|\bcompare|\bmost\b|\bless\b|\bfewer\b|\bsmaller\b|\bvs\b") and (
            len(set(fams)) >= 2 or _has(t, r"which organ")) and not (len(organs) == 1 and fams[0] == "kidney"):
        return "multi-organ lesion burden comparison", {"organs": tuple(dict.fromkeys(fams)), "direction": direction}
    if _has(t, r"(tumor|lesion) burden|percent|proportion|fraction of the|%") and organ and (_has(t, r"\bburden\b") or lesion):
        return "tumor burden percentage", {"organ": organ}
    if _has(t, r"\bdifference\b|\bdiffer\b|\bminus\b|\bsubtract") and "hu" in ms:
        return "tumor organ HU difference", {"organ": organ}

    # --- lesion-level visual reasoning ---
    if lesion and e.threshold_mm is not None:
        d = "3d" if "diameter_3d" in ms else ("short_axis" if "short_axis" in ms else "long_axis")
        return "lesion size threshold", {"organ": organ, "diameter": d, "direction": e.comparison,
                                         "threshold_mm": e.threshold_mm}
    if kidney_only and _has(t, r"which kidney|which side|(left|right) kidney (is )?(larger|bigger|smaller)|compare.*kidney") and \
            _has(t, r"larger|bigger|smaller|volume|\bsize\b"):
        return "kidney volume comparison", {"direction": direction}
    if _has(t, r"\badjacent\b|\babut|\bin contact\b|\bcontact\w*\b|\bneighbo|\bnext to\b|\bborder(s|ing)?\b|\btouch"):
        return "adjacent organ", {"organ": organ}
    if _has(t, r"outlier|disproportionate|(much|significantly|substantially|markedly|far) larger than (all )?(the )?(other|rest|remaining)"
               r"|dominant lesion|dominant \w+ lesion|\bdominat\w* (?:the )?(?:others|other|rest)|\d+\s*(?:x|times) (?:the )?(?:next|second|other)|much,? much larger"):
        return "lesion outlier", {"organ": organ}
    if _has(t, r"cluster|distribut|scatter|dispers|\bspread\b|concentrated|diffuse"):
        return "liver lesion clustering", {}
    largest = e.rank is not None
    if lesion and "slice" in ms:
        return "largest lesion slice", {"organ": organ}
    compare = _has(t, r"\b(?:more|fewer|less|larger|greater|smaller|most|fewest|least|higher|lower)\b") or "volume" in ms
    if lesion and (largest or e.lesion_ids or "location" in ms) and "count" not in ms and not (len(e.segments) >= 2 and compare) and _has(
            t, r"\bsegment|\bwhere\b|locat|\bwhich (part|portion|region|lobe|side)\b|\blobe\b|\bin which\b|\bhead\b"):
        return "largest lesion location", {"organ": organ}
    if _has(t, r"which (couinaud |liver |hepatic |pancreatic )?(segment|part|portion|region)s?\b") or \
            (len(e.segments) >= 2 and _has(t, r"\bor\b|\bvs\.?\b|versus|compare|more|fewer")):
        metric = "volume" if _has(t, r"volume|burden|larger|bigger") else "count"
        segs = e.segments
        return "inter-segment comparison", {"organ": (SUBSEGMENTS[segs[0]] if segs else organ), "segments": tuple(segs),
                                            "metric": metric,
                                            "direction": "smaller" if _has(t, r"\b(fewer|fewest|less|least)\b") else "larger"}
    if lesion and "attenuation" in ms and not _has(t, r"\bmean\b|\baverage\b|\bhu\b"):
        return "largest lesion attenuation", {"organ": organ}
    size = "size" in ms
    vol_unit = e.unit in ("mL", "cm3", "L", "mm3")
    if lesion and (ms & _LESION_SIZE or e.unit in ("mm", "cm") or (size and "volume" not in ms and not vol_unit)):
        if "short_axis" in ms:
            return "lesion short axis", {"organ": organ}
        if "diameter_3d" in ms:
            return "lesion 3D diameter", {"organ": organ}
        if "volume" not in ms:
            return "largest lesion diameter", {"organ": organ, "diameter": "long_axis"}
    count = "count" in ms
    if count and lesion and e.segments:
        return "lesion count by location", {"location": e.segments[0]}
    if _has(t, r"\b(total|combined|sum|together|aggregate|overall|all)\b|\+") and (
            len(organs) >= 2 or _has(t, r"\bkidneys\b|both kidneys|\bboth\b")):
        orgs = tuple(organs) if len(organs) >= 2 else ("kidney_left", "kidney_right") if "kidney" in organs else tuple(organs)
        if lesion and count:
            return "organ aggregation", {"organs": orgs, "measure": "lesion_count"}
        if lesion:
            return "organ aggregation", {"organs": orgs, "measure": "lesion_volume"}
        if "volume" in ms or size:
            return "organ aggregation", {"organs": orgs, "measure": "volume"}
    if count and lesion:
        return "lesion counting", {"organ": organ}
    if lesion and ("volume" in ms or vol_unit):
        return "lesion volume measurement", {"organ": organ, "aggregate": "total" if e.aggregate else "largest"}
    if lesion and "hu" in ms:
        return "lesion HU measurement", {"organ": organ}

    # --- organ-level ---
    if organ and "hu" in ms:
        return "organ HU measurement", {"organ": organ}
    if organ and "enlargement" in ms:
        return "organ enlargement", {"organ": organ}
    if organ and ("volume" in ms or vol_unit or _has(t, r"how (large|big) is the")):
        return "organ volume measurement", {"organ": organ}

    # --- recognition ---
    bare = not (ms - {"existence"}) and not e.lesion_ids and e.rank is None and _only_names(t)
    if lesion and organ and ("existence" in ms or bare or _has(t, r"\bhave\b|\bhas\b")):
        kind = e.lesion_kind
        fam = organ_family(organ)
        if fam == "kidney":
            return {"cyst": "kidney cyst existence", "tumor": "kidney tumor existence"}.get(kind or "", "kidney lesion existence"), \
                {"organ": organ}
        if kind == "cyst" and fam in ("liver", "pancreas", "colon"):
            return "lesion existence", {"organ": organ, "lesion_kind": "cyst"}
        if fam == "liver":
            return "liver lesion existence", {}
        if fam == "pancreas":
            return "pancreatic lesion existence", {}
        if fam == "colon":
            return "colon lesion existence", {}
        return "lesion existence", {"organ": organ, "lesion_kind": kind}
    return None


_FILLER = {"is", "are", "there", "a", "an", "the", "any", "in", "of", "on", "at", "within", "inside", "seen", "present", "left",
           "right", "l", "r", "one", "some", "or", "and", "this", "scan", "ct", "patient", "patient's", "does", "do", "have", "has",
           "solid", "side", "sided", "y", "n", "yes", "no", "y/n", "both", "free", "clear"}


def _only_names(t: str) -> bool:
    """The text is organ and lesion words only ('Liver lesions?', 'Renal cyst, left?'): an existence question."""
    rest = re.sub(LESION_WORDS, " ", t)
    for _, pat in ORGAN_PATTERNS:
        rest = re.sub(pat, " ", rest)
    return all(w in _FILLER for w in re.findall(r"[a-z']+", rest))


# --- parameters from the entities -----------------------------------------------------------------


def _params(sub: str, e: QuestionEntities, decided: dict) -> dict:
    """Question fields for type ``sub``: what routing decided, else what the entities name."""
    params = set(SUBTYPES[sub].params) | {"rank"}
    fields = set(Question.model_fields)
    organ = e.organs[0] if e.organs else None
    fam_of = {organ_family(o) for o in e.organs}
    guess: dict = {
        "organ": organ, "organs": tuple(e.organs), "lesion_id": e.lesion_ids[0] if e.lesion_ids else None,
        "lesion_kind": e.lesion_kind if e.lesion_kind in ("cyst", "tumor") else None, "segments": tuple(e.segments),
        "location": e.segments[0] if e.segments else organ, "rank": e.rank if e.rank not in (None,) else 1,
        "diameter": "3d" if "diameter_3d" in e.measures else ("short_axis" if "short_axis" in e.measures else "long_axis"),
        "direction": e.comparison or "larger", "threshold_mm": e.threshold_mm, "vessel": e.vessels[0] if e.vessels else None,
        "unit": e.unit, "diagnosis": e.diagnosis, "aggregate": "total" if e.aggregate else "largest",
        "metric": "volume" if "volume" in e.measures else "count",
        "measure": ("lesion_count" if "count" in e.measures else "lesion_volume") if e.lesion else "volume",
    }
    if sub == "organ aggregation" and len(e.organs) < 2 and fam_of == {"kidney"}:
        guess["organs"] = ("kidney_left", "kidney_right")
    out = {}
    for k in (params | set(decided)) & fields:
        v = decided.get(k, guess.get(k))
        if v is None or v == ():
            continue
        out[k] = v
    if "unit" in fields and e.unit and "unit" not in out:
        out["unit"] = e.unit
    if sub == "lesion completeness" and "negated" in fields and asks_cut(e.norm):
        out["negated"] = True
    return out


def asks_cut(t: str) -> bool:
    """A completeness question asked the other way round ('is it cut off / truncated?': yes = not complete)."""
    if _has(t, r"\bnot (?:be )?(?:completely|fully|entirely|wholly)\b|\bnot (?:all|the whole|the entire)\b"):
        return True
    return _has(t, r"\btruncat\w*|\bcut (?:off|by)\b|\bpartially\b|\bincomplet\w*|\bextends? beyond\b|\bpart of\b") \
        and not _has(t, r"\b(?:completely|fully|entirely|whole|entire)\b")


# --- understanding --------------------------------------------------------------------------------


@dataclass
class Understanding:
    """What the text asks: the entities, and either a Question or why none (``unused``, ``closest``)."""

    entities: QuestionEntities
    question: Question | None = None
    subtype: str | None = None  # the type routing considered (also when entities were left unused)
    unused: list[str] = field(default_factory=list)
    closest: list[str] = field(default_factory=list)
    error: str | None = None

    def reason(self) -> str:
        """Why unmapped: what was understood, what stayed unused, and the closest supported questions."""
        head = f"understood: {self.entities.describe()}"
        if self.error:
            why = self.error
        elif self.subtype and self.unused:
            why = f"the closest question type ({self.subtype}) would not use: {'; '.join(self.unused)}"
        else:
            why = "no supported question type asks this"
        near = "; ".join(f"{s} (e.g. '{SUBTYPES[s].example}')" for s in self.closest)
        return (f"question not recognised: {self.entities.text!r}. {head}. {why}. Closest supported questions: {near} "
                f"(or pass the subtype and its parameters explicitly; the {len(SUBTYPES)} question types are in reasoning.vqa.SUBTYPES)")


@lru_cache(maxsize=1)
def _examples() -> dict[str, QuestionEntities]:
    return {s: extract_entities(spec.example) for s, spec in SUBTYPES.items()}


def closest_subtypes(e: QuestionEntities, n: int = 3) -> list[str]:
    """The ``n`` supported question types nearest to the question: shared measures, organs and lesion words,
    then wording similarity with the type's example."""
    scores = []
    for s, x in _examples().items():
        sc = 2.0 * len(set(e.measures) & set(x.measures) & (_PRIMARY | {"composition", "completeness", "attenuation", "location"}))
        sc += 1.0 * bool({organ_family(o) for o in e.organs} & {organ_family(o) for o in x.organs})
        sc += 0.5 * (e.lesion == x.lesion)
        sc += 2.0 * bool(e.vessels or e.vessel_generic) * (s in _VESSEL_TYPES)
        sc += difflib.SequenceMatcher(None, e.norm, x.norm).ratio()
        scores.append((-sc, s))
    return [s for _, s in sorted(scores)[:n]]


def understand(text: str, subtype: str | None = None) -> Understanding:
    """Entities, then the question type (``subtype`` given: that type, parameters from the text)."""
    e = extract_entities(text)
    u = Understanding(entities=e)
    if subtype is not None:
        sub = canonical_subtype(subtype)
        decided: dict = {}
    else:
        routed = _route(e)
        if routed is None:
            u.closest = closest_subtypes(e)
            return u
        sub, decided = routed
        if sub not in SUBTYPES:
            u.error = f"question type {sub!r} is not available"
            u.closest = closest_subtypes(e)
            return u
        u.subtype = sub
        u.unused = _unused(sub, e)
        if u.unused:
            u.closest = closest_subtypes(e)
            return u
    u.subtype = sub
    try:
        u.question = Question(subtype=sub, text=e.text, **_params(sub, e, decided))
    except ValueError as err:
        u.error = f"the parameters read from the text are not valid: {err}"
        u.closest = closest_subtypes(e)
    return u


def parse_question(text: str, subtype: str | None = None) -> Question | None:
    """Free text -> Question; None when the text maps to no type that uses everything it names (never a
    guess). With ``subtype`` (a DeepTumorVQA file's subtype field, the API), that type, with the
    parameters read from the text."""
    return understand(text, subtype).question
