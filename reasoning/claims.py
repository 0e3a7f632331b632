"""Claim checker: every sentence of a report is parsed into claims of known types, and each claim is
checked against Findings (and the sourced rules of :mod:`reasoning.knowledge`).

Claim types and what supports them:

- ``measurement``: a number with a unit (mm, cm, mL, HU, degrees, %) or a size "A x B mm" equals a
  measured value of the findings in scope *as rounded to the decimals written* (cm converted to
  mm). Study values (slice thickness, spacing), table positions, totals and the RECIST 10 mm
  minimum only count when the sentence names them ("slice", "table position", "total", "RECIST").
  A number glued to letters (``x99.9mm``, ``slice-t2.0mm``) is read like any other.
- ``number``: a number without unit or context (slice, count, segment, stage, ratio fact) is an error.
- ``location``: Couinaud segments, pancreatic head/body/tail, kidney pole, left/right, organ words.
- ``attenuation``: hypo-/iso-/hyperattenuating (and -dense, low/high attenuation); "enhancing" words
  on a non-contrast study are unsupported.
- ``vessel``: one claim per vessel mention, its category read from the nearest contact word of the
  same clause ("abuts the aorta but has no contact with the IVC" is two claims).
- ``stage``: T categories and NCCN resectability among the staging hints; N, M and overall stage
  are never assessed (a sentence saying they are not assessed is supported).
- ``count``: "three liver lesions", "2 hypoattenuating lesions" against the lesions in scope.
- ``comparison``: with a prior study (grown, new, stable, since prior ...): never supported (no prior).
- ``diagnosis``: a diagnosis or interpretation; supported only by a finding's own typing (cyst kind
  or cystic composition, fat, calcified, PDAC/PNET mask, nodule type, RECIST measurability) or a
  positive flag of a sourced rule (steatosis, splenomegaly, hepatomegaly). Everything else
  (hemangioma, HCC, metastasis, benign, malignant ...) is unsupported.
- ``recommendation``: biopsy, follow-up, further imaging ...: unsupported unless a sourced rule
  applies (pancreatic cyst resection criteria).
- ``negative``: "no lesion in the liver" needs ``Findings.lesion_search`` to record the organ as
  searched (for that lesion kind), the organ imaged (a cut-off organ: "in its imaged part") and no
  such lesion there. "No metastases", "no lymphadenopathy", "no ascites", "unremarkable" are never
  supported: nothing measured them.
- ``phase``: "non-contrast", "arterial phase", "portal venous" ... against the study's contrast
  phase; enhancement patterns (washout, arterial hyperenhancement, rim enhancement) need several
  phases and are never supported.
- ``organ_status``: not seen / cut off by the scan edge / not assessed (no mask) / not searched.
- ``limitation``: "cannot be determined", "not measured": statements of what was not established.
- ``citation``: lesion ids written in the text must exist (and, when ids are cited, be cited).
- ``unknown``: a clinical word the vocabulary does not know is an error: a sentence cannot pass as
  "no claims" by using words the checker cannot read.

- ``history``: the indication and patient history ("history of", "known", "status post") are not in
  the findings: not checkable (a comparison or recommendation in the same sentence is still checked).

Scope: a sentence that cites finding ids (the report draft, chat answers) is checked against those
ids. A sentence that cites none (``radagent verify``) is checked against the lesions it names
(L-ids), else the lesions and organs of the organ words it uses, narrowed by the segment, side,
attenuation, pancreatic part and kidney pole it names ("the largest / second largest ... lesion":
that lesion by long axis), else against the whole findings; "the left kidney holds a lesion and the
right kidney a cyst" is checked part by part. Where a sentence names several lesions, a value,
attenuation or vessel contact is checked against the lesion named just before it. A negated
attribute ("is not hypoattenuating", "not in the pancreatic tail", "not a cyst") is true exactly when
the attribute is measured and differs.

Numbers: equal to a measured value at the decimals written; a lesion length also within half an
in-plane voxel (the measurement's resolution); "about" allows one unit of the last written digit or
10 %; "exceeds / more than / less than N" compares; number words before a unit ("five centimetres")
are read as numbers; a statistic named just before an HU value ("mean", "median", "SD",
"difference") selects the values it may match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from perception.registry import organ_family
from perception.schema import Findings, Lesion, Organ

from .facts import Fact, IdFacts, build_facts, counts, quotable
from .knowledge import knowledge
from .limitations import human, implausible
from .vocabulary import (
    ORDINAL_WORDS,
    ORGAN_WORDS,
    PANCREAS_PARTS,
    ROMAN,
    VESSEL_PHRASES,
)

Verdict = Literal["supported", "unsupported", "not_checkable"]

WORD_NUM = {"no": 0, "zero": 0, "one": 1, "single": 1, "solitary": 1, "two": 2, "three": 3, "four": 4, "five": 5,
            "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
            "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
            "thirty": 30, "forty": 40, "fifty": 50}



NUM = r"(?<![\w.])(-?\d+(?:\.\d+)?)"
# a number carrying a unit may be glued to letters before it ('x99.9mm', 'slice-t2.0mm'): only digits and dots stop it
_UNUM = r"(?<![\d.])(-?\d+(?:\.\d+)?)"
_UNITS = (r"millimet(?:er|re)s?|centimet(?:er|re)s?|millilit(?:er|re)s?|mls?|mm|cm3|cm³|cm\^3|cc|cm|mL|HU|hu|"
          r"Hounsfield units?|degrees|degree|deg|°|%|percent")
UNIT_RE = re.compile(_UNUM + r"\s*(" + _UNITS + r")(?![\w])", re.IGNORECASE)
SIZE_RE = re.compile(_UNUM + r"\s*(?:x|×|by)\s*(-?\d+(?:\.\d+)?)(?:\s*(?:x|×|by)\s*(-?\d+(?:\.\d+)?))?\s*"
                     r"(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)(?![\w])", re.IGNORECASE)
SLICE_RE = re.compile(r"\b(?:axial\s+)?(?:slice|image)\s+(?:index\s+|number\s+|no\.?\s*|#\s*)?(\d+)\b", re.IGNORECASE)
SEG_RE = re.compile(r"\b(?:segments?|seg\.?)\s+((?:(?:IVa|IVb|VIII|VII|VI|IV|V|III|II|I|[1-8])(?![\w])(?:\s*(?:,|and|/|-|&|or)\s*)?)+)", re.IGNORECASE)
SEG_TOKEN = re.compile(r"IVa|IVb|VIII|VII|VI|IV|V|III|II|I|[1-8]", re.IGNORECASE)
STAGE_RE = re.compile(r"\b(?:c|p|y)?([TNM])(X|is|[0-4][a-c]?)\b")
OVERALL_STAGE_RE = re.compile(r"\bstage\s+(?:IV|III|II|I|[1-4])[abc]?\b", re.IGNORECASE)
NCCN = ("locally advanced", "borderline resectable", "borderline", "unresectable", "resectable")
_LESION_NOUN = r"lesions?|masses|mass|nodules?|cysts?|tumou?rs?|foci|focus|neoplasms?|abnormalit(?:y|ies)"
COUNT_RE = re.compile(r"\b(\d+|" + "|".join(WORD_NUM) + r")\s+((?:[\w-]+\s+){0,3}?)(" + _LESION_NOUN + r")\b", re.IGNORECASE)
ATT_RE = re.compile(r"\b(hypo|iso|hyper)[- ]?(attenuating|attenuation|enhancing|enhancement|dense|density|intense)\b"
                    r"|\b(low|high|lower|higher|increased|decreased|reduced)[- ](attenuation|density|attenuating)\b", re.IGNORECASE)
LATERAL_RE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
POLE_RE = re.compile(r"\b(upper|lower|interpolar|mid)[- ]?(pole|polar)?\b", re.IGNORECASE)
PANC_PART_RE = re.compile(r"\b(?:pancreatic\s+(head|neck|body|tail)|(head|neck|body|tail)\s+of\s+the\s+pancreas|"
                          r"pancreas\s+(head|body|tail)|uncinate(?:\s+process)?)\b", re.IGNORECASE)
LESION_ID_RE = re.compile(r"\bL(\d+)\b")
IGNORE_RE = re.compile(r"RECIST\s*1\.1|AJCC\s*8(?:th)?|AJCC8|\b3D\b|\b2D\b|Couinaud|NCCN|\bW\d+/L-?\d+|\bv2019\b", re.IGNORECASE)
QUOTE_RE = re.compile(r"""(["'])(.+?)\1""")
LIST_MARK_RE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")

_SUBJECT_SPLIT = re.compile(r";\s+|,?\s+(?:and|but|whereas|while)\s+(?=(?:the|a|an|L\d+)\b)", re.IGNORECASE)
_COUNT_BREAK = re.compile(r"[;(),]|\bbut\b|\bwhereas\b|\bwhile\b|\band\b|\. ")
_CLAUSE_BREAK = re.compile(r";|\bbut\b|\bwhereas\b|\bwhile\b|\balthough\b|\bhowever\b|\. ")
_NEG_CONTACT = re.compile(
    r"\b(?:no|without)\s+(?:\w+\s+){0,2}?(?:contact|abutment|involvement)\b|\bnot\s+in\s+contact\b|\bdoes\s+not\s+"
    r"(?:contact|touch|abut|involve|reach)\b|\bdo\s+not\s+(?:contact|touch|abut)\b|\bclear\s+of\b|\bfree\s+of\b|\bspar\w*"
    r"|\bnot\s+involv\w*|\bseparate[ds]?\s+from\b|\baway\s+from\b|\bpreserved\s+fat\s+plane")
_NOT_ENCASE = re.compile(r"\b(?:no|without)\s+encasement\b|\bdoes\s+not\s+encase\b|\bnot\s+encas\w*")
_ENCASE = re.compile(r"\bencas\w*|\bencircl\w*|\bsurround\w*|\bwrap\w*|\bcircumferential\w*")
_ABUT = re.compile(r"\babut\w*")
_CONTACT = re.compile(r"\bcontact\w*|\btouch\w*|\binvolv\w*|\babutting\b")
_INVADE = re.compile(r"\bpatent\w*|\bpatency\b|\bopacif\w*|\bflow\b|\binva\w*|\binfiltrat\w*|\btumou?r\s+thromb\w*|\bthromb\w*|\bocclu\w*|\bnarrow\w*|\bstenos\w*"
                     r"|\bcompress\w*|\bdisplac\w*")

_PHASES = [
    (re.compile(r"\b(?:non[- ]?contrast|unenhanced|non[- ]?enhanced|without\s+(?:iv\s+|intravenous\s+)?contrast|"
                r"plain\s+ct|native\s+ct)\b", re.IGNORECASE), ("non_contrast",), "non-contrast"),
    (re.compile(r"\b(?:late\s+|early\s+)?arterial[- ]phase\b", re.IGNORECASE), ("arterial",), "arterial phase"),
    (re.compile(r"\bportal[- ]venous(?:[- ]phase)?\b|\bvenous[- ]phase\b", re.IGNORECASE), ("portal_venous",), "portal venous phase"),
    (re.compile(r"\bdelayed[- ]phase\b|\bequilibrium[- ]phase\b", re.IGNORECASE), ("delayed",), "delayed phase"),
    (re.compile(r"\bcontrast[- ]enhanced\b|\bwith\s+(?:iv\s+|intravenous\s+)?contrast\b|\bpost[- ]?contrast\b"
                r"|\benhanced\s+ct\b", re.IGNORECASE),
     ("arterial", "portal_venous", "delayed", "contrast_unspecified"), "contrast-enhanced"),
    (re.compile(r"\bcontrast\s+phase\s+(?:is\s+)?unknown\b|\bphase\s+unknown\b", re.IGNORECASE), ("unknown",), "contrast phase unknown"),
]
_PATTERN_FIRST = re.compile(r"\b(?:arterial[- ]phase\s+hyper[- ]?enhanc\w*|arterial\s+(?:hyper)?enhanc\w*|aphe|"
                            r"wash[- ]?out|washes\s+out)\b", re.IGNORECASE)
_PATTERN = re.compile(
    r"\b(?:arterial(?:[- ]phase)?\s+(?:hyper)?enhancement|aphe|wash[- ]?out|washes\s+out|(?:rim|ring|peripheral"
    r"(?:\s+nodular)?|progressive|delayed|late|centripetal|heterogeneous|homogeneous|avid)\s+enhancement|"
    r"(?:enhancing\s+)?capsule|avid(?:ly)?\s+enhanc\w*|enhances|enhancing|enhancement|enhanced|"
    r"hyper[- ]?vascular|hypo[- ]?vascular)\b", re.IGNORECASE)

_COMPARISON = re.compile(
    r"\b(?:prior|previous(?:ly)?|interval\w*|since\s+(?:the\s+)?(?:last|prior|previous|baseline)|baseline|new(?:ly)?|"
    r"grow\w*|grew|enlarging|(?:increas|decreas)\w*(?:\s+in\s+(?:size|number|volume|extent))?(?=\s+(?:in\s+|since|from|"
    r"compared|by\b|over\b|relative\s+to\s+(?:the\s+)?(?:prior|previous))|[.;,]|$)|shr[iau]nk\w*|stable|unchanged|"
    r"progress\w*|regress\w*|resolv\w*|resolution|respon\w*|improv\w*|worsen\w*|larger\s+than\s+before|"
    r"smaller\s+than\s+before|no\s+change)\b", re.IGNORECASE)
# change claims, checked when a Comparison is given (ClaimChecker._changes)
_PRIOR_REF = re.compile(r"prior|previous(?:ly)?|interval\w*|since\s+(?:the\s+)?(?:last|prior|previous|baseline)|baseline",
                        re.IGNORECASE)
_TRACK_ID_RE = re.compile(r"\bT\d+\b")
_PRIOR_CTX = re.compile(r"\b(?:prior|previous(?:ly)?|baseline|before|earlier|was|were|then|initially|from|nadir)\b")
_CHANGE_CTX = re.compile(r"\bchang\w*|\bgr[eo]w\w*|\bincreas\w*|\bdecreas\w*|\bshr[aiu]nk\w*|\breduc\w*|[+-]\s*\d|"
                         r"\bfrom\b")
_SUM_CTX = re.compile(r"\bsum\b|\brecist\b|\bnadir\b|\btarget")
_RESPONSE_WORDS = re.compile(r"\b(?:complete\s+response|partial\s+response|stable\s+disease|progressive\s+disease|"
                             r"disease\s+progression|progression)\b", re.IGNORECASE)
_RESPONSE_CODES = re.compile(r"\b(?:CR|PR|SD|PD)\b")
_RESPONSE_CTX = re.compile(r"\bRECIST(?:\s+1\.1)?|\brespon\w*", re.IGNORECASE)
_NEW_RE = re.compile(r"\bnew(?:ly)?\s+(?:[a-z-]+\s+){0,3}?(?:lesions?|nodules?|mass(?:es)?|metasta\w*|tumou?rs?|foci|focus)\b",
                     re.IGNORECASE)
_GONE_RE = re.compile(r"\b(?:disappeared|resolved|no\s+longer\s+(?:seen|visible|present|identified))\b", re.IGNORECASE)
_NO_BEFORE = re.compile(r"\b(?:no|not|without|nor|any)\s+(?:[\w-]+\s+){0,2}$", re.IGNORECASE)
_GROW_WORD = re.compile(r"gr[eo]w|growing|increas|enlarg", re.IGNORECASE)
_STABLE_WORD = re.compile(r"stable|unchanged", re.IGNORECASE)
_CHANGE_RE = re.compile(r"\b(grew|grown|growing|increased|enlarged|enlarging|shr[iau]nk\w*|decreased|reduced|regressed|"
                        r"stable|unchanged)\b(?:\s+in\s+(?:size|diameter|volume))?(?:\s+by\s+(?:approximately\s+|about\s+|~\s*)?"
                        r"(\d+(?:\.\d+)?)\s*(%|percent|mm|cm|ml)(?![a-z]))?", re.IGNORECASE)
_RECOMMEND = re.compile(
    r"\b(?:recommend\w*|advis\w*|suggest(?:ed|s)?\s+(?=follow|biopsy|further|mri|ct|pet|resection|surveillance|"
    r"correlation|referral|repeat)|should\s+(?:be|undergo)|follow[- ]?up(?!\s+questions?)|biops\w*|further\s+(?:evaluation|imaging|"
    r"work-?up|assessment|characteri\w+)|clinical(?:ly)?\s+correlat\w*|correlat\w*\s+clinically|surveillance|"
    r"resection|referr(?:al|ed)|consult\w*|mri\b|pet(?:/ct)?\b|repeat\s+(?:imaging|ct|scan)|no\s+further\s+"
    r"(?:action|imaging|work-?up))", re.IGNORECASE)
_HEDGE = re.compile(
    r"\b(?:consistent\s+with|compatible\s+with|in\s+keeping\s+with|suggestive\s+of|suspicious\s+for|concerning\s+for|"
    r"worrisome\s+for|characteristic\s+of|typical\s+of|diagnostic\s+of|likely|probabl[ey]|possibl[ey]|presumed|"
    r"represent\w*|favou?r\w*|differential|may\s+be|could\s+be|cannot\s+be\s+excluded|can\s+not\s+be\s+excluded)\b", re.IGNORECASE)
# diagnoses nothing in the findings can establish (negated: "not assessed")
_NEVER = re.compile(
    r"\b(?:(?:distant\s+)?metasta\w*|lymphadenopathy|adenopathy|lymph\s+nodes?|nodal\s+disease|ascites|free\s+fluid|"
    r"free\s+air|pneumoperitoneum|fractures?|obstruction|hydronephrosis|effusions?|stones?|calculi|calculus|"
    r"gallstones|cholelithiasis|carcinomatosis|hemangioma\w*|haemangioma\w*|hcc|hepatocellular(?:\s+carcinoma)?|"
    r"cholangiocarcinoma|carcinoma|adenocarcinoma|cancer\w*|malignan\w*|benign\w*|adenoma\w*|fnh|focal\s+nodular"
    r"\s+hyperplasia|nodal(?:\s+disease)?|lymphoma|rcc|renal\s+cell(?:\s+carcinoma)?|angiomyolipoma|oncocytoma|pheochromocytoma|ipmn|"
    r"mucinous|serous|pseudocyst|abscess\w*|hematoma|haematoma|infarct\w*|cirrho\w*|hemorrhag\w*|haemorrhag\w*|"
    r"necro\w*|embol\w*|neoplas\w*|sarcoma|gist|lipoma|granuloma|atroph\w*|edema|oedema|inflamm\w*|dilat\w*|"
    r"aneurysm\w*|thrombosis|thrombus|varices|collaterals|splenic\s+infarct|disease|pathology|tumou?r\s+burden|"
    r"primary|secondary|simple|complex|hemorrhagic|proteinaceous|indeterminate|aggressive|atypical|nodular"
    r"(?=\s+(?:liver|contour|surface))|bosniak\s+\w+|(?:li|lung|pi|ti|o|bi)-?rads(?:\s+(?:category\s+)?\w+)?)\b", re.IGNORECASE)
_NEVER_NEGATABLE = re.compile(
    r"\b(?:no|without|absence\s+of|negative\s+for|free\s+of)\s+(?:evidence\s+of\s+|signs?\s+of\s+|definite\s+|"
    r"suspicious\s+|other\s+)*(?=(?:distant\s+)?metasta|lymphadenopathy|adenopathy|(?:enlarged\s+|pathologic\w*\s+)?"
    r"lymph|nodal|ascites|free\s+fluid|free\s+air|pneumoperitoneum|fracture|obstruction|hydronephrosis|effusion|"
    r"stones|calcul|gallstones|carcinomatosis|malignan|disease|thromb|invasion|abnormalit)", re.IGNORECASE)
_NORMAL = re.compile(r"\b(?:unremarkable|normal|within\s+normal\s+limits|no\s+(?:focal\s+)?abnormalit(?:y|ies)|"
                     r"no\s+acute\s+\w+|clear|healthy|intact)\b", re.IGNORECASE)
_SIZE_WORD = re.compile(r"\b(?:not\s+enlarged|normal(?:\s+in)?\s+(?:size|volume)|enlarged|enlargement|"
                        r"splenomegaly|hepatomegaly)\b", re.IGNORECASE)
_STEATOSIS = re.compile(r"\b(?:steatosis|fatty(?:\s+(?:liver|infiltration|pancreas|change))?|fatty-liver)\b", re.IGNORECASE)
_CYST = re.compile(r"\bcyst(?:s|ic)?\b", re.IGNORECASE)
_FAT = re.compile(r"\b(?:fat[- ]containing|macroscopic\s+fat|(?:contains?|containing)\s+fat|fat)\b", re.IGNORECASE)
_CALC = re.compile(r"\bcalcif\w*", re.IGNORECASE)
_TYPED = re.compile(r"\b(pdac|ductal\s+adenocarcinoma|pancreatic\s+adenocarcinoma|pnet|neuroendocrine(?:\s+tumou?r)?)\b", re.IGNORECASE)
_NODULE_TYPE = re.compile(r"\b(part[- ]solid|ground[- ]glass|solid)\b", re.IGNORECASE)
_MEASURABLE = re.compile(r"\b(non[- ]?measurable|not\s+measurable|measurable|target\s+lesions?)\b", re.IGNORECASE)
_LIMIT = re.compile(r"\b(?:cannot|can ?not|could\s+not|can't)\s+be\s+(?:assessed|determined|stated|measured|evaluated|"
                    r"established|excluded|characteri[sz]ed|given)|\bnot\s+(?:be\s+)?(?:assessed|determined|measured|"
                    r"evaluated|assessable|interpreted|recorded|recognised|recognized|used|typed|called|available|"
                    r"fully\s+assessable)\b|\bundetermin\w*|\bunknown\b|\bunable\b", re.IGNORECASE)
_SEARCH_PARTIAL = re.compile(r"\bsearched\s+for\s+(?:[\w-]+(?:\s+and\s+|\s*,\s*))*[\w-]+\s+only\b", re.IGNORECASE)
_SEARCH_NOT = re.compile(r"\bnot\s+searched(?:\s+for)?(?:\s+(?:in|there|elsewhere))?", re.IGNORECASE)
_TRUNC = re.compile(r"\b(?:incompletely\s+imaged|(?:cut|cut\s+off)\s+by\s+the\s+(?:scan\s+)?edge|cut\s+off|truncated|"
                    r"partially\s+imaged|not\s+fully\s+imaged)\b", re.IGNORECASE)
_LESION_EDGE = re.compile(r"\breach\w*\s+the\s+(?:scan\s+)?edge\b|\blower\s+bounds?\b|\bat\s+least\b", re.IGNORECASE)
_ABSENT = re.compile(r"\bnot\s+seen\s+on\s+the\s+segmentation\b|\b(?:is|are)\s+(?:absent|not\s+seen)\b|\bnot\s+visuali[sz]ed\b", re.IGNORECASE)
_IMPLAUSIBLE = re.compile(r"\bimplausible\b", re.IGNORECASE)
_NO_VASCULAR = re.compile(r"\b(?:no|without)\s+(?:evidence\s+of\s+)?(?:vascular|vessel|venous|arterial)\s+"
                          r"(?:involvement|contact|encasement|abutment|invasion)\b", re.IGNORECASE)
_NO_CONTACT_ASSESSED = re.compile(r"\bno\s+tumou?r[- ]vessel\s+contact\s+was\s+assessed(?:\s*\(no\s+lesion\s+near\s+a\s+"
                                  r"vessel\s+mask\))?", re.IGNORECASE)
_NO_LESION_MEASURED = re.compile(r"\bno\s+lesions?\s+(?:was|were)\s+measured\b", re.IGNORECASE)
_NEG_LESION = re.compile(
    r"\b(?:no|without|absence\s+of|negative\s+for|free\s+of)\s+(?:evidence\s+of\s+|signs?\s+of\s+|other\s+|further\s+|"
    r"additional\s+|definite\s+|discrete\s+|suspicious\s+|focal\s+|new\s+)*((?:(?!search|for\b|of\b|was\b|were\b)"
    r"[\w-]+\s+){0,2}?)(" + _LESION_NOUN + r")\b"
    r"(?!\s+(?:mask|search|model|type|coverage|kind|record))", re.IGNORECASE)
# clinical words the vocabulary does not know: a sentence using one cannot pass as 'no claims'
_CLINICAL = re.compile(
    r"\b(?:\w+(?:omas?|itis|osis|oses|emia|aemia|ectomy|plasia|pathy|megaly|ectasia|lithiasis)|metasta\w*|malign\w*|"
    r"benign\w*|cancer\w*|carcinoma\w*|neoplas\w*|thromb\w*|embol\w*|h(?:a)?emorrh\w*|infarct\w*|necro\w*|o?edema\w*|"
    r"effusion\w*|ascites|stones?|calcul\w*|obstruct\w*|dilat\w*|strictur\w*|fistula\w*|absces\w*|collection\w*|"
    r"perforat\w*|pneumo\w*|fractur\w*|enhanc\w*|wash\w*|inva[sd]\w*|infiltrat\w*|spread\w*|recur\w*|progress\w*|"
    r"aggressive|suspicious|concerning|worrisome|indeterminate|atypical|diagnos\w*|pathognomonic|typical|"
    r"lesion(?:al)?\s+type|hypervascular|hypovascular|heterogeneous\w*|homogeneous\w*|septat\w*|solid|mural|"
    r"nodularity|irregular\w*|spiculat\w*|lobulat\w*|margin\w*|well[- ]defined|ill[- ]defined|circumscribed|"
    r"exophytic|endophytic|satellite|multifocal|diffuse\w*|infiltrative|lymph\w*|nod(?:e|al)\w*|ductal?|biliary|"
    r"jaundice|cholesta\w*|portal\s+hypertension|varic\w*|hernia\w*|surgical|resect\w*|transplant\w*|post[- ]?operative|"
    r"treated|treatment|therapy|chemo\w*|ablat\w*|emboliz\w*|stent\w*|drain\w*|catheter\w*|clips?|prosthe\w*|"
    r"history|symptom\w*|pain|clinical\w*|biops\w*|mri|pet|ultrasound|significant\w*|"
    r"abnormal\w*|pathologic\w*|normal|unremarkable|enlarged|atrophic|cirrhotic|fatty)\b", re.IGNORECASE)


MAX_SENTENCE_CHARS = 3000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Claim(_Model):
    """One claim of a sentence and its verdict."""

    type: str = Field(description="measurement | number | location | attenuation | vessel | stage | count | comparison | "
                                  "diagnosis | recommendation | negative | phase | organ_status | limitation | citation | "
                                  "unknown")
    text: str = Field(description="the words of the sentence the claim was read from")
    verdict: Verdict
    reason: str = Field(description="what supports it (the finding, value or rule), or why it is unsupported")
    finding_ids: list[str] = Field(default_factory=list, description="the findings the claim was checked against")


class SentenceCheck(_Model):
    text: str
    finding_ids: list[str] = Field(default_factory=list, description="ids the sentence cites (empty: none cited)")
    claims: list[Claim]

    @property
    def ok(self) -> bool:
        return all(c.verdict != "unsupported" for c in self.claims)


class Verification(_Model):
    ok: bool = Field(description="no claim is unsupported")
    sentences: list[SentenceCheck]

    @property
    def claims(self) -> list[Claim]:
        return [c for s in self.sentences for c in s.claims]

    def counts(self) -> dict[str, int]:
        out = {"supported": 0, "unsupported": 0, "not_checkable": 0}
        for c in self.claims:
            out[c.verdict] += 1
        return out


@dataclass
class _C:
    """A claim while checking; ``kind`` is the GroundingError kind it maps to."""

    type: str
    text: str
    verdict: Verdict
    reason: str
    ids: list[str]
    kind: str = ""

    def claim(self) -> Claim:
        return Claim(type=self.type, text=self.text.strip(), verdict=self.verdict, reason=self.reason,
                     finding_ids=list(self.ids))


# --- numbers --------------------------------------------------------------------------------------
def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def _matches(written: str, value: float, scale: float = 1.0) -> bool:
    """written (in its unit, decimals as written) equals value/scale rounded to those decimals."""
    x = float(written)
    tol = 0.5 * 10 ** (-_decimals(written)) + 1e-9
    return abs(x - value / scale) <= tol


def _unit(u: str) -> tuple[str, float]:
    u = u.lower()
    if u.startswith("millimet"):
        return "mm", 1.0
    if u.startswith("centimet"):
        return "mm", 10.0
    if u.startswith("millilit") or u in ("ml", "mls", "cc", "cm3", "cm³", "cm^3"):
        return "mL", 1.0
    if u.startswith("hounsfield"):
        return "HU", 1.0
    return {"mm": ("mm", 1.0), "cm": ("mm", 10.0), "hu": ("HU", 1.0), "degrees": ("deg", 1.0), "degree": ("deg", 1.0),
            "deg": ("deg", 1.0), "°": ("deg", 1.0), "%": ("%", 1.0), "percent": ("%", 1.0)}[u]


# facts that count only when the sentence names them (a lesion of 3.0 mm is not the slice thickness)
_SUPERLATIVE = re.compile(r"\b(?:(second|third|fourth|fifth|2nd|3rd|4th|5th)[- ]+)?(largest|biggest|smallest)\b", re.IGNORECASE)
_RANK = ORDINAL_WORDS
_RENAL_CLASS = re.compile(r"\b(simple|indeterminate|hyperdense|hyperattenuating)(?:\s+(?:renal\s+|kidney\s+)?"
                          r"(?:cyst(?:ic)?s?|lesions?|mass(?:es)?))\b", re.IGNORECASE)
_FEW_RE = re.compile(r"\b(multiple|several|numerous|many|innumerable|countless|various)\s+((?:[\w-]+\s+){0,3}?)("
                     + _LESION_NOUN + r")\b", re.IGNORECASE)
_SLICE_CONTEXT = re.compile(r"^-?\d+(?:\.\d+)?\s*(?:mm|millimet\w+)\b[\s-]*(?:thick\w*\s+)?(?:axial\s+)?(?:slices?|sections?|"
                            r"reconstructions?|recons?|images|thick)", re.IGNORECASE)
_BARE_PART_RE = re.compile(r"\b(?:in|at|of|within)\s+the\s+(head|neck|body|tail)()()\b", re.IGNORECASE)
_COMPARATIVE = re.compile(r"\b(larger|bigger|longer|greater|smaller|shorter)\s+(?:in\s+(?:size|diameter)\s+)?than\b",
                          re.IGNORECASE)
_HISTORY = re.compile(r"\b(?:history\s+of|known|status\s+post|s/p|presents?\s+with|presenting\s+with|indication|"
                      r"clinical\s+(?:history|information|question)|referred\s+for|complain\w*\s+of)\b", re.IGNORECASE)
_WORD_VALUE = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                             "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                             "seventeen", "eighteen", "nineteen", "twenty"))}
_WORD_VALUE.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90})
_WORD_UNIT_RE = re.compile(r"\b(" + "|".join(sorted(_WORD_VALUE, key=len, reverse=True)) + r")(\s+(?:" + _UNITS + r"))(?![\w])",
                           re.IGNORECASE)
_COMPLETE = re.compile(r"\b(?:completely|fully|entirely|wholly)\s+(?:imaged|included|covered|visuali[sz]ed|seen|captured)\b"
                       r"|\b(?:included|contained)\s+(?:\w+\s+)?(?:in|within)\s+(?:the\s+)?(?:field\s+of\s+view|fov|scan(?:\s+range)?)"
                       r"|\bwhole\b|\bentire\b|\bin\s+its\s+entirety\b", re.IGNORECASE)
_RATIO_WORDS = re.compile(r"ratio|threshold|\b[lp]/s\b|index|relative\s+to|times", re.IGNORECASE)
_LENGTH_FACTS = ("long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "contact_length_mm")
_APPROX = re.compile(r"(?:\babout|\bapproximately|\bapprox\.?|\broughly|\baround|~|\bnearly|\balmost|\bsome)\s*$", re.IGNORECASE)
_INEQ_RE = re.compile(r"(\bexceed(?:s|ing)?|\bmore\s+than|\bgreater\s+than|\blarger\s+than|\babove|\bless\s+than|"
                      r"\bsmaller\s+than|\bunder|\bbelow|\bup\s+to|\bat\s+most|\bno\s+more\s+than|>=?|<=?|≥|≤)\s*"
                      r"(?:about\s+|approximately\s+)?" + _UNUM + r"\s*(" + _UNITS + r")(?![\w])", re.IGNORECASE)
_GATED = [
    (re.compile(r"^(slice_thickness_mm|spacing_\d)$"), re.compile(r"slice|thick|spacing|section|resolution|voxel|pixel", re.IGNORECASE)),
    (re.compile(r"^aorta_hu$"), re.compile(r"aort", re.IGNORECASE)),
    (re.compile(r"^imaged_volume_ml$"), re.compile(r"imaged|visible|partial|at\s+least|cut|edge", re.IGNORECASE)),
    (re.compile(r"^portal_vein_hu$"), re.compile(r"portal|splenic vein", re.IGNORECASE)),
    (re.compile(r"total_lesion_volume_ml$"), re.compile(r"total|combined|sum|burden|overall|altogether|together", re.IGNORECASE)),
    (re.compile(r"^recist_min_long_axis$"), re.compile(r"recist|measurab|threshold|minimum|at least|target", re.IGNORECASE)),
    (re.compile(r"^table_position_mm$"), re.compile(r"table|position|couch|z\s*=", re.IGNORECASE)),
]


def _usable(fact: Fact, sentence: str) -> bool:
    for name_re, ctx in _GATED:
        if name_re.search(fact.name):
            return bool(ctx.search(sentence))
    return True


_HU_KINDS = [
    (re.compile(r"differ|relative|compared|than", re.IGNORECASE), ("hu_difference", "abs_hu_difference", "mean_hu", "organ_mean_hu")),
    (re.compile(r"\bsd\b|standard\s+deviation|heterogene|spread", re.IGNORECASE), ("sd_hu",)),
    (re.compile(r"median", re.IGNORECASE), ("median_hu", "portal_vein_hu", "aorta_hu")),
    (re.compile(r"mean|average", re.IGNORECASE), ("mean_hu", "organ_mean_hu")),
]


def _hu_kind(pool: list[Fact], sentence: str, start: int) -> list[Fact]:
    """HU facts of the statistic the words just before the number name ('mean', 'median', 'SD', 'difference');
    all HU facts when they name none (thresholds, flags)."""
    prev = list(UNIT_RE.finditer(sentence[:start]))
    before = sentence[max(prev[-1].end() if prev else 0, start - 40):start]
    for rx, names in _HU_KINDS:
        if rx.search(before):
            sub = [x for x in pool if x.name in names]
            return sub or pool
    return pool


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


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    out = list(text)
    for a, b in spans:
        out[a:b] = " " * (b - a)
    return "".join(out)


def _lesion_kind(les: Lesion) -> str:
    return "cyst" if les.kind == "cyst" else "nodule" if les.kind == "nodule" else \
        "tumor" if les.kind in ("tumor", "pdac", "pnet") else "lesion"


def _is_cystic(les: Lesion) -> bool:
    return les.kind == "cyst" or any(c.split(":")[0].strip() == "cystic" for c in les.components)


def _component(les: Lesion, name: str) -> bool:
    return any(c.split(":")[0].strip() == name for c in les.components)


_ABBREV_END = re.compile(r"(?:\b(?:approx|e\.g|i\.e|vs|cf|dr|fig|nr|ca|incl|max|min|seg|mr|mrs|ms)\.)$",
                         re.IGNORECASE)
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'*-])|\n+")
_HEADING = re.compile(r"^\s*(?:#+\s*.*|(?:findings|impression|technique|limitations|conclusions?|report|summary)\s*:?\s*)$", re.IGNORECASE)
_SECTION_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:findings|impression|technique|limitations|conclusions?)(?:\*\*)?\s*:\s*", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences of a plain-text or markdown report (headings and empty lines dropped, list marks kept)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or _HEADING.match(line) or re.fullmatch(r"\s*[-=*_|: ]{3,}\s*", line):
            continue
        line = _SECTION_PREFIX.sub("", line.replace("**", ""))
        mark = LIST_MARK_RE.match(line)  # '1. Eight lesions.': the list mark stays with its sentence
        body = line[mark.end():] if mark else line
        parts: list[str] = []
        for piece in (s.strip() for s in _SENT_SPLIT.split(body) if s and s.strip()):
            if parts and _ABBREV_END.search(parts[-1]):  # 'approx. 5 mm', 'e.g. L1', 'vs. 30 HU': one sentence
                parts[-1] += " " + piece
            else:
                parts.append(piece)
        if mark and parts:
            parts[0] = mark.group(0).strip() + " " + parts[0]
        out += parts
    return out


@dataclass
class _Scope:
    ids: list[str]
    lesions: list[Lesion]
    organs: list[Organ]
    facts: IdFacts
    explicit: bool  # ids cited by the caller
    study_only: bool = False


@dataclass
class _Work:
    """The sentence being checked: ``t`` keeps the original length; consumed spans are blanked."""

    orig: str
    t: str
    claims: list[_C] = field(default_factory=list)
    vessel_names: set[str] = field(default_factory=set)  # vessel masks the sentence names
    named: list[str] = field(default_factory=list)  # existing lesion ids the sentence writes, in order
    id_pos: list[tuple[int, str]] = field(default_factory=list)  # (position, lesion id) of each written id

    def owner(self, pos: int, lesions: list[Lesion]) -> list[Lesion]:
        """The lesions a phrase at ``pos`` is about: the nearest lesion id written before it when the sentence
        writes several ('L1 is 42 mm, L2 is 30 mm'), else all lesions in scope."""
        if len(set(self.named)) < 2:
            return lesions
        before = [lid for p, lid in self.id_pos if p < pos]
        if not before:
            return lesions
        sub = [les for les in lesions if les.id == before[-1]]
        return sub or lesions

    def take(self, a: int, b: int) -> None:
        self.t = self.t[:a] + " " * (b - a) + self.t[b:]

    def low(self) -> str:
        return self.t.lower()


class ClaimChecker:
    """Parses sentences into claims and checks each against one Findings object."""

    def __init__(self, findings: Findings, comparison=None):
        self.findings = findings
        self.comparison = comparison  # perception.followup Comparison of this study with its priors, or None
        self.comparison_refused: str | None = None  # why a comparison given was not used (made from other findings)
        if comparison is not None:
            from reasoning.comparison import check_matches
            from reasoning.vqa.result import _Cannot

            try:
                check_matches(comparison, findings)
            except _Cannot as e:
                self.comparison, self.comparison_refused = None, e.reason
        self.facts = build_facts(findings)
        self.counts = counts(findings)
        self.lesion_ids = {les.id for les in findings.lesions}
        self.quotable = quotable(findings)
        self.contrast = findings.study.contrast_phase.phase
        # organ phrases: specific organs by their human name, then family words
        names = {o.name for o in findings.organs} | {s.organ for s in findings.lesion_search} | \
            {les.organ for les in findings.lesions if les.organ}
        phrases: dict[str, set[str]] = {}
        for n in names:
            phrases.setdefault(human(n).lower(), set()).add(n)
            if n.startswith(("adrenal_gland_", "kidney_", "lung_")) and n.count("_") >= 1:
                side = n.rsplit("_", 1)[1]
                base = {"adrenal": "adrenal", "kidney": "kidney", "lung": "lung"}[n.split("_")[0]]
                phrases.setdefault(f"{side} {base}", set()).add(n)
        for w, fam in ORGAN_WORDS.items():
            phrases.setdefault(w, set()).update(n for n in names if organ_family(n) == fam)
            phrases[w].add("family:" + fam)
        self.organ_phrases = sorted(phrases.items(), key=lambda kv: -len(kv[0]))

    # --- public -----------------------------------------------------------------------------------
    def check_sentence(self, text: str, finding_ids: list[str] | None = None) -> SentenceCheck:
        if len(text) > MAX_SENTENCE_CHARS:  # not a sentence a reader checks either; and parsing cost grows with it
            return SentenceCheck(text=text, finding_ids=list(finding_ids or []), claims=[Claim(
                type="unknown", text=text[:80] + "...", verdict="unsupported",
                reason=f"a 'sentence' of {len(text)} characters (more than {MAX_SENTENCE_CHARS}): split it into sentences")])
        if finding_ids is None:  # 'the left kidney holds a lesion and the right kidney a cyst': one subject per part
            cs, context = [], []
            for part in self._subject_parts(text):
                cs += self._claims(part, None, context)
                context = self._organ_mentions(self._vessel_free(part.lower()))[0] or context
        else:
            cs = self._claims(text, finding_ids)
        return SentenceCheck(text=text, finding_ids=list(finding_ids or []), claims=[c.claim() for c in cs])

    def verify(self, text: str) -> Verification:
        sents = [self.check_sentence(s) for s in split_sentences(text)]
        return Verification(ok=all(s.ok for s in sents), sentences=sents)

    def _subject_parts(self, text: str) -> list[str]:
        """A sentence citing nothing, split where each part names its own organ or lesion (else whole)."""
        parts = [p for p in _SUBJECT_SPLIT.split(text) if p and p.strip()]
        if len(parts) < 2:
            return [text]

        def subject(part: str) -> bool:
            low = part.lower()
            for phrase, _ in VESSEL_PHRASES:
                low = re.sub(r"\b" + re.escape(phrase) + r"\b", " ", low)
            return bool(LESION_ID_RE.search(part)) or bool(self._organ_mentions(low)[0])

        def sided(part: str) -> bool:
            return bool(re.search(r"\b(?:left|right)(?:[- ]sided)?\b", part, re.IGNORECASE))
        if all(subject(p) for p in parts):
            return parts
        if subject(parts[0]) and all(subject(p) or sided(p) for p in parts[1:]) and sided(parts[0]):
            return parts
        return [text]

    # --- parsing ----------------------------------------------------------------------------------
    def _blank_quotes(self, t: str) -> str:
        """Quoted Findings strings (warnings, mask names, search sources) and mask file names are
        quotations: blanked before parsing. Anything else stays."""
        for m in QUOTE_RE.finditer(t):
            if m.group(2) in self.quotable:
                t = t[:m.start()] + " " * (m.end() - m.start()) + t[m.end():]
        for q in sorted(self.quotable, key=len, reverse=True):
            if ("_" in q or "." in q or ":" in q) and q in t:
                t = t.replace(q, " " * len(q))
        return t

    def _organ_mentions(self, low: str) -> tuple[list[tuple[str, set[str], int, int]], str]:
        """(phrase, organ names or 'family:x', start, end) for each organ phrase, and the text with them blanked."""
        out = []
        for phrase, names in self.organ_phrases:
            for m in re.finditer(r"\b" + re.escape(phrase) + r"\b", low):
                out.append((phrase, names, m.start(), m.end()))
                low = low[:m.start()] + " " * (m.end() - m.start()) + low[m.end():]
        return sorted(out, key=lambda x: x[2]), low

    def _scope(self, cited: list[str] | None, w: _Work, organ_mentions, vessel_free_low: str) -> _Scope:
        f = self.findings
        if cited is not None:
            ids = [i for i in cited if i in self.facts]
            lesions = [les for les in f.lesions if les.id in ids]
            organs = [o for o in f.organs if f"organ:{o.name}" in ids]
            return _Scope(ids, lesions, organs, _merge(self.facts, ids), True, study_only=ids == ["study"])
        named = [f"L{m.group(1)}" for m in LESION_ID_RE.finditer(w.orig) if f"L{m.group(1)}" in self.lesion_ids]
        if named:
            lesions = [les for les in f.lesions if les.id in named]
            organs = [o for o in f.organs if any(les.organ == o.name for les in lesions)]
        elif organ_mentions:
            specific = {n for _, names, _, _ in organ_mentions for n in names if not n.startswith("family:")}
            fams = {n[7:] for _, names, _, _ in organ_mentions for n in names if n.startswith("family:")}
            lesions = [les for les in f.lesions if les.organ and (les.organ in specific or organ_family(les.organ) in fams)]
            organs = [o for o in f.organs if o.name in specific or organ_family(o.name) in fams]
            lesions = self._narrow(lesions, vessel_free_low)
        else:
            lesions, organs = self._narrow(list(f.lesions), vessel_free_low), list(f.organs)
        sup = _SUPERLATIVE.search(vessel_free_low)
        if not named and sup and lesions:  # 'the (second) largest liver lesion measures ...': that lesion
            ranked = _ranked(lesions, sup)
            lesions = ranked if ranked else lesions
        ids = ["study"] + [f"organ:{o.name}" for o in organs] + [les.id for les in lesions]
        return _Scope(ids, lesions, organs, _merge(self.facts, ids), False)

    @staticmethod
    def _narrow(lesions: list[Lesion], low: str) -> list[Lesion]:
        """Lesions matching the segment / pancreatic part / side / pole the sentence names (unchanged when none match)."""
        def keep(sub):
            return sub if sub else lesions
        for m in SEG_RE.finditer(low):
            if _negated(low, m.start()):
                continue
            segs = {f"liver_segment_{_seg_num(t)}" for t in SEG_TOKEN.findall(m.group(1))}
            lesions = keep([les for les in lesions if segs <= set(les.segments)]
                           or [les for les in lesions if segs & set(les.segments)])
        atts = {_att_word(m) for m in ATT_RE.finditer(low) if not re.search(r"enhanc", m.group(0))
                and not _negated(low, m.start())}
        if len(atts) == 1:
            att = atts.pop()
            lesions = keep([les for les in lesions if les.attenuation and les.attenuation.value == att])
        bare = [] if PANC_PART_RE.search(low) or "pancrea" not in low else list(_BARE_PART_RE.finditer(low))
        for m in list(PANC_PART_RE.finditer(low)) + bare:
            if _negated(low, m.start()):
                continue
            part = _panc_part(m)
            lesions = keep([les for les in lesions if f"pancreas_{part}" in les.segments])
        sides = {m.group(1).lower() for m in LATERAL_RE.finditer(low) if not _negated(low, m.start())}
        if len(sides) == 1:
            side = sides.pop()
            lesions = keep([les for les in lesions if les.laterality == side or (les.organ or "").endswith("_" + side)])
        for m in POLE_RE.finditer(low):
            if m.group(2) or m.group(1).lower() == "interpolar":
                pole = "interpolar" if m.group(1).lower() in ("interpolar", "mid") else m.group(1).lower()
                lesions = keep([les for les in lesions if les.kidney_pole == pole])
        return lesions

    @staticmethod
    def _vessel_free(low: str) -> str:
        for phrase, _ in VESSEL_PHRASES:
            low = re.sub(r"\b" + re.escape(phrase) + r"\b", lambda m: " " * len(m.group(0)), low)
        return low

    def _claims(self, text: str, cited: list[str] | None, context: list | None = None) -> list[_C]:
        """Claims of one sentence; ``context``: organ mentions of the previous part of the same sentence, the scope of
        a part that names no organ ('Renal lesions: a left-sided lesion and a right-sided cyst')."""
        t = LIST_MARK_RE.sub(lambda m: " " * len(m.group(0)), text)
        t = IGNORE_RE.sub(lambda m: " " * len(m.group(0)), t)
        t = self._blank_quotes(t)
        t = _WORD_UNIT_RE.sub(lambda m: (str(_WORD_VALUE[m.group(1).lower()]) + " " * len(m.group(1)))[:len(m.group(1))]
                              + m.group(2), t)  # 'five centimetres' is read as '5 centimetres'
        w = _Work(orig=text, t=t)
        out = w.claims
        ids_for = lambda sc: list(sc.ids)

        # citations
        if cited is not None:
            for i in cited:
                if i not in self.facts:
                    out.append(_C("citation", i, "unsupported", f"cites {i!r}, which is not a finding (valid ids: "
                                  f"{', '.join(sorted(self.facts))})", [], "citation"))
        w.id_pos = [(m.start(), f"L{m.group(1)}") for m in LESION_ID_RE.finditer(w.t) if f"L{m.group(1)}" in self.lesion_ids]
        w.named = list(dict.fromkeys(lid for _, lid in w.id_pos))
        for m in LESION_ID_RE.finditer(w.t):
            lid = f"L{m.group(1)}"
            if lid not in self.lesion_ids:
                out.append(_C("citation", lid, "unsupported", f"mentions lesion {lid}, which does not exist (lesions: "
                              f"{', '.join(sorted(self.lesion_ids)) or 'none'})", [], "citation"))
            elif cited is not None and lid not in cited:
                out.append(_C("citation", lid, "unsupported", f"mentions {lid} without citing it", [], "citation"))
            w.take(*m.span())

        # vessels are located first (so 'splenic vein' is not the spleen), organs next; scope follows
        low = w.low()
        vessels = []
        for phrase, names in VESSEL_PHRASES:
            for m in re.finditer(r"\b" + re.escape(phrase) + r"\b", low):
                vessels.append((phrase, names, m.start(), m.end()))
                low = low[:m.start()] + " " * (m.end() - m.start()) + low[m.end():]
        w.vessel_names = {n for _, names, _, _ in vessels for n in names}
        organ_mentions, _ = self._organ_mentions(low)
        sc = self._scope(cited, w, organ_mentions or ([(p, n, -1, -1) for p, n, _, _ in context] if context else []), low)
        ids = ids_for(sc)

        self._phase_and_patterns(w, ids)
        self._vessels(w, vessels, sc)
        self._special(w, sc)
        if self.comparison is not None:
            self._changes(w, sc, organ_mentions)
        self._lesion_edge(w, sc)
        self._superlative(w, sc, organ_mentions)
        self._comparative(w)
        self._organ_status(w, sc, organ_mentions)
        self._sizes(w, sc, organ_mentions)
        self._negatives(w, sc, organ_mentions)
        self._stages(w, sc)
        self._measurements(w, sc)
        self._counts(w, sc, organ_mentions)
        self._locations(w, sc)
        self._attenuation(w, sc)
        self._history(w, sc)
        self._diagnoses(w, sc, organ_mentions)
        self._recommendations(w, sc)
        self._comparisons(w, sc)
        self._limitations(w, sc)
        self._organs(w, sc, organ_mentions, vessels)
        self._unknown(w, sc)
        self._bare_numbers(w, sc)
        return out

    # --- claim families ---------------------------------------------------------------------------
    def _phase_and_patterns(self, w: _Work, ids: list[str]) -> None:
        ph = self.contrast

        def patterns(rx):
            for m in rx.finditer(w.t):
                word = m.group(0)
                if ph == "non_contrast":
                    why = f"says {word!r} on a non-contrast study: enhancement cannot be seen without contrast"
                elif ph == "unknown":
                    why = f"says {word!r}, but the contrast phase is unknown"
                else:
                    why = (f"says {word!r}: enhancement and its patterns (washout, arterial hyperenhancement, capsule) "
                           "need several phases or a pre-contrast series; the findings measure one series")
                w.claims.append(_C("phase", word, "unsupported", why, ["study"], "phase"))
                w.take(*m.span())
        patterns(_PATTERN_FIRST)
        for rx, phases, label in _PHASES:
            for m in rx.finditer(w.t):
                ok = ph in phases
                w.claims.append(_C("phase", m.group(0), "supported" if ok else "unsupported",
                                   (f"the study is {label} ({self.findings.study.contrast_phase.rule})" if ok else
                                    f"says {label}; the study's contrast phase is {ph} "
                                    f"({self.findings.study.contrast_phase.rule})"), ["study"], "phase"))
                w.take(*m.span())
        patterns(_PATTERN)

    def _vessels(self, w: _Work, vessels, sc: _Scope) -> None:
        if not vessels:
            return
        low = w.low()
        cues: list[tuple[int, int, str]] = []
        for rx, cat in ((_NOT_ENCASE, "not_encasement"), (_NEG_CONTACT, "none"), (_INVADE, "invasion"),
                        (_ENCASE, "encasement"), (_ABUT, "abutment"), (_CONTACT, "contact")):
            for m in rx.finditer(low):
                cues.append((m.start(), m.end(), cat))
                low = low[:m.start()] + " " * (m.end() - m.start()) + low[m.end():]
        cues.sort()
        breaks = [m.start() for m in _CLAUSE_BREAK.finditer(w.t)]
        per_lesion = {les.id: {vc.vessel: vc.category.value for vc in les.vessel_contacts} for les in sc.lesions}

        def clause(pos):
            a = max([b for b in breaks if b <= pos], default=-1)
            b = min([b for b in breaks if b > pos], default=10 ** 9)
            return a, b

        all_lesions = per_lesion
        for phrase, names, s, e in vessels:
            per_lesion = {les.id: all_lesions[les.id] for les in w.owner(s, sc.lesions)} if sc.lesions else all_lesions
            a, b = clause(s)
            before = [c for c in cues if a <= c[0] < s]
            after = [c for c in cues if e <= c[0] < b]
            cue = before[-1] if before else (after[0] if after else None)
            cat = cue[2] if cue else None
            text = w.orig[cue[0]:cue[1]] + " ... " + w.orig[s:e] if cue else w.orig[s:e]
            cats = {vs[n] for vs in per_lesion.values() for n in names if n in vs}
            where = [lid for lid, vs in per_lesion.items() if any(n in vs for n in names)]
            if not cats:
                assessed = sorted({n for vs in per_lesion.values() for n in vs})
                w.claims.append(_C("vessel", text, "unsupported", f"mentions the {phrase}, which was not assessed for the "
                                   f"lesions in scope (assessed: {', '.join(assessed) or 'none'})", sc.ids, "vessel"))
                continue
            if cat == "invasion":
                ok, why = False, (f"says {w.orig[cue[0]:cue[1]]!r} of the {phrase}: only contact (none / abutment / "
                                  "encasement, by angle) is measured, never invasion, thrombus or narrowing")
            elif cat is None:
                ok, why = True, f"the {phrase} was assessed for {', '.join(where)} ({', '.join(sorted(cats))})"
            else:
                want = {"none": {"none"}, "encasement": {"encasement"}, "abutment": {"abutment"},
                        "contact": {"abutment", "encasement"}, "not_encasement": {"none", "abutment"}}[cat]
                ok = bool(cats & want)
                label = {"none": "no contact", "contact": "contact", "not_encasement": "no encasement"}.get(cat, cat)
                why = (f"says {label} with the {phrase}; findings: " +
                       ", ".join(f"{lid} {vs[n]}" for lid, vs in per_lesion.items() for n in names if n in vs))
            w.claims.append(_C("vessel", text, "supported" if ok else "unsupported", why, where or sc.ids, "vessel"))
        for s0, e0, _ in cues:
            w.take(s0, e0)
        for _, _, s, e in vessels:
            w.take(s, e)

    def _special(self, w: _Work, sc: _Scope) -> None:
        f = self.findings
        if not w.vessel_names:
            for m in _NO_VASCULAR.finditer(w.t):
                touching = [f"{les.id} {vc.category.value} {vc.vessel}" for les in sc.lesions for vc in les.vessel_contacts
                            if vc.category.value != "none"]
                assessed = any(les.vessel_contacts for les in sc.lesions)
                ok = assessed and not touching
                w.claims.append(_C("vessel", m.group(0), "supported" if ok else "unsupported",
                                   ("no lesion in scope touches an assessed vessel" if ok else
                                    ("contact: " + ", ".join(touching)) if touching else
                                    "no vessel contact was assessed for the lesions in scope"), sc.ids, "vessel"))
                w.take(*m.span())
        for m in _NO_CONTACT_ASSESSED.finditer(w.t):
            ok = not any(les.vessel_contacts for les in f.lesions)
            w.claims.append(_C("vessel", m.group(0), "supported" if ok else "unsupported",
                               "no lesion has a vessel contact assessment" if ok else
                               "vessel contact was assessed for " + ", ".join(les.id for les in f.lesions if les.vessel_contacts),
                               ["study"], "vessel"))
            w.take(*m.span())
        for m in _NO_LESION_MEASURED.finditer(w.t):
            ok = not f.lesions
            w.claims.append(_C("count", m.group(0), "supported" if ok else "unsupported",
                               "the findings hold no lesion" if ok else f"the findings hold {len(f.lesions)} lesions",
                               ["study"], "count"))
            w.take(*m.span())

    def _lesion_edge(self, w: _Work, sc: _Scope) -> None:
        for m in _LESION_EDGE.finditer(w.t):
            edge = [les.id for les in sc.lesions if les.size_qualifier == "lower_bound" or les.status.value == "truncated_by_fov"]
            ok = bool(edge)
            w.claims.append(_C("measurement", m.group(0), "supported" if ok else "unsupported",
                               f"{', '.join(edge)} reach the scan edge (sizes are lower bounds)" if ok else
                               f"{m.group(0)!r}: no lesion in scope reaches the scan edge", edge or sc.ids, "number"))
            w.take(*m.span())

    def _superlative(self, w: _Work, sc: _Scope, mentions) -> None:
        """'L1 is the largest (liver) lesion': among the lesions of the organs named (all when none), by long axis."""
        named = [f"L{m.group(1)}" for m in LESION_ID_RE.finditer(w.orig) if f"L{m.group(1)}" in self.lesion_ids]
        for m in _SUPERLATIVE.finditer(w.t):
            if len(named) != 1:
                w.take(*m.span())
                continue
            fams = {n[7:] for _, names, _s, _e in mentions for n in names if n.startswith("family:")}
            pool = [les for les in self.findings.lesions if not fams or (les.organ and organ_family(les.organ) in fams)]
            ranked = _ranked(pool, m)
            best = ranked[0] if ranked else None
            ok = best is not None and best.id == named[0]
            w.claims.append(_C("measurement", m.group(0), "supported" if ok else "unsupported",
                               f"{best.id} is the {m.group(0).lower()} by long axis ({best.long_axis_mm:.1f} mm) of "
                               f"{len(pool)} lesion(s)" + ("" if ok else f", not {named[0]}") if best else
                               f"fewer than {_RANK.get((m.group(1) or '').lower(), 1)} lesions to compare", named, "number"))
            w.take(*m.span())

    def _side_lesions(self, text: str) -> list[Lesion]:
        """The lesions one side of a comparison names: its L-ids, else the lesions of its organ words narrowed by
        segment / side / attenuation / part."""
        ids = [f"L{m.group(1)}" for m in LESION_ID_RE.finditer(text) if f"L{m.group(1)}" in self.lesion_ids]
        if ids:
            return [les for les in self.findings.lesions if les.id in ids]
        low = self._vessel_free(text.lower())
        mentions = self._organ_mentions(low)[0]
        if not mentions:
            return []
        spec = {n for _, names, _, _ in mentions for n in names if not n.startswith("family:")}
        fams = {n[7:] for _, names, _, _ in mentions for n in names if n.startswith("family:")}
        pool = [les for les in self.findings.lesions if les.organ and (les.organ in spec or organ_family(les.organ) in fams)]
        return self._narrow(pool, low)

    def _comparative(self, w: _Work) -> None:
        """'the splenic lesion is larger than the hypoattenuating liver lesion': by long axis, every lesion of one side
        against every lesion of the other."""
        for m in _COMPARATIVE.finditer(w.t):
            a, b = self._side_lesions(w.orig[:m.start()]), self._side_lesions(w.orig[m.end():])
            if not a or not b or {x.id for x in a} & {x.id for x in b}:
                continue
            bigger = m.group(1).lower() in ("larger", "bigger", "longer", "greater")
            ok = min(x.long_axis_mm for x in a) > max(x.long_axis_mm for x in b) if bigger else \
                max(x.long_axis_mm for x in a) < min(x.long_axis_mm for x in b)
            w.claims.append(_C("measurement", m.group(0), "supported" if ok else "unsupported",
                               "long axes: " + ", ".join(f"{x.id} {x.long_axis_mm:.1f} mm" for x in a) + " vs " +
                               ", ".join(f"{x.id} {x.long_axis_mm:.1f} mm" for x in b), [x.id for x in a + b], "number"))
            w.take(*m.span())

    def _organs_in(self, mentions, a: int = 0, b: int = 10 ** 9) -> list[Organ]:
        out = []
        for _, names, s, _e in mentions:
            if a <= s < b:
                for n in names:
                    if n.startswith("family:"):
                        out += [o for o in self.findings.organs if organ_family(o.name) == n[7:] and o not in out]
                    else:
                        o = self.findings.organ(n)
                        if o is not None and o not in out:
                            out.append(o)
        return out

    def _organ_status(self, w: _Work, sc: _Scope, mentions) -> None:
        f = self.findings
        # "not searched for in: A, B": each must have no search record or an unsearched one
        for m in _SEARCH_NOT.finditer(w.t):
            named = [(p, names, s, e) for p, names, s, e in mentions if s >= m.start()]
            for p, names, s0, e0 in named:
                w.take(s0, e0)
                organs = [n for n in names if not n.startswith("family:")] or \
                    [s.organ for s in f.lesion_search if "family:" + organ_family(s.organ) in names]
                bad = [n for n in organs if (s := f.search_of(n)) is not None and s.covers()]
                w.claims.append(_C("organ_status", f"not searched ... {p}", "unsupported" if bad else "supported",
                                   (f"the {p} was searched ({', '.join(f.search_of(n).by[0] if f.search_of(n).by else 'search' for n in bad)})"
                                    if bad else f"lesion_search records no search covering the {p}"), ["study"], "organ"))
            w.take(*m.span())
        for m in _SEARCH_PARTIAL.finditer(w.t):
            organs = [n for _, names, _s, _e in mentions for n in names if not n.startswith("family:")]
            part = [n for n in organs if (s := f.search_of(n)) is not None and s.searched and not s.covers()]
            ok = bool(part)
            w.claims.append(_C("organ_status", m.group(0), "supported" if ok else "unsupported",
                               f"lesion_search of {', '.join(part)}: kinds {', '.join(k for n in part for k in f.search_of(n).kinds)}"
                               if ok else f"{m.group(0)!r}: no organ named has a partial lesion search", ["study"], "organ"))
            w.take(*m.span())
        for rx, status, label in ((_TRUNC, "truncated_by_fov", "cut off by the scan edge"),
                                  (_ABSENT, "absent", "not seen on its mask")):
            ms = list(rx.finditer(w.t))
            if not ms:
                continue
            organs = self._organs_in(mentions)
            if not organs and sc.organs and sc.explicit:
                organs = sc.organs
            for o in organs:
                ok = o.status.value == status
                w.claims.append(_C("organ_status", f"{human(o.name)} {ms[0].group(0)}", "supported" if ok else "unsupported",
                                   f"the {human(o.name)} mask is {o.status.value}" + ("" if ok else f", not {label}"),
                                   [f"organ:{o.name}"], "organ"))
            if not organs:
                w.claims.append(_C("organ_status", ms[0].group(0), "unsupported", f"says {label}, but names no organ of "
                                   "the findings", sc.ids, "organ"))
            for m in ms:
                w.take(*m.span())
        comp = list(_COMPLETE.finditer(w.t))
        if comp and re.search(r"imag|includ|cover|field\s+of\s+view|fov|scan|visuali|captur", w.orig, re.IGNORECASE):
            organs = self._organs_in(mentions) or (sc.organs if sc.explicit else [])
            for o in organs:
                ok = o.status.value == "measured"
                w.claims.append(_C("organ_status", f"{human(o.name)} {comp[0].group(0)}", "supported" if ok else "unsupported",
                                   f"the {human(o.name)} mask is {o.status.value}" + ("" if ok else
                                   " (it reaches the scan edge: not completely imaged)"), [f"organ:{o.name}"], "organ"))
            for m in comp:
                w.take(*m.span())
        for m in _IMPLAUSIBLE.finditer(w.t):
            for o in self._organs_in(mentions) or (sc.organs if sc.explicit else []):
                ok = implausible(o)
                w.claims.append(_C("organ_status", f"{human(o.name)} implausible", "supported" if ok else "unsupported",
                                   f"the {human(o.name)} mask's plausibility checks " + ("failed" if ok else "passed"),
                                   [f"organ:{o.name}"], "organ"))
            w.take(*m.span())
        # "Gallbladder: not assessed (no mask)" / "The gallbladder was not assessed"
        for p, names, s, e in mentions:
            tail = w.t[e:e + 60]
            mm = re.match(r"(?:\s+glands?)?\s*(?::|is|are|was|were)\s+(?:\w+\s+)?not\s+(?:assessed|evaluated|segmented|imaged|included|"
                          r"covered)(?:\s*\((no\s+(?:\w+\s+)?mask)[^)]*\))?", tail, re.IGNORECASE)
            if not mm:
                continue
            fams = {n[7:] for n in names if n.startswith("family:")}
            present = [o for o in f.organs if (o.name in names or organ_family(o.name) in fams)
                       and o.status.value != "absent" and not implausible(o)]
            lesions = [les for les in f.lesions if les.organ and (les.organ in names or organ_family(les.organ) in fams)]
            ok = not present and not lesions
            w.claims.append(_C("organ_status", w.orig[s:e + mm.end()], "supported" if ok else "unsupported",
                               f"no usable {p} mask in the findings" if ok else
                               f"the {p} was measured ({', '.join([o.name for o in present] + [les.id for les in lesions])})",
                               ["study"], "organ"))
            w.take(e, e + mm.end())
            w.take(s, e)

    def _negatives(self, w: _Work, sc: _Scope, mentions) -> None:
        f = self.findings
        for m in _NEVER_NEGATABLE.finditer(w.t):
            tail = re.match(r"[\w\s-]{0,40}?(?=[,;.()]|$)", w.t[m.end():])
            what = (m.group(0) + (tail.group(0) if tail else "")).strip()
            w.claims.append(_C("negative", what, "unsupported",
                               f"{what!r}: nothing in the findings assessed this (no mask or measurement for it), so its "
                               "absence cannot be stated", ["study"], "negative"))
            w.take(m.start(), m.end() + (tail.end() if tail else 0))
        for m in _NEG_LESION.finditer(w.t):
            noun = m.group(2).lower()
            kind = "cyst" if noun.startswith("cyst") else "nodule" if noun.startswith("nodule") else \
                "tumor" if noun.startswith(("tumo", "mass", "neoplasm")) else None
            if noun.startswith("abnormal"):
                w.claims.append(_C("negative", m.group(0), "unsupported", "'no abnormality' asserts more than was "
                                   "measured (volumes, attenuation, lesion masks)", ["study"], "negative"))
                w.take(*m.span())
                continue
            if re.match(r"[^.;]{0,40}?\b(?:cannot|can ?not|could\s+not)\s+be\s+(?:stated|determined|assessed)",
                        w.t[m.end():], re.IGNORECASE):
                w.claims.append(_C("limitation", m.group(0), "supported", "states that absence cannot be stated",
                                   ["study"], "limitation"))
                w.take(*m.span())
                continue
            organs = self._organs_in(mentions)
            search_names = []
            for _, names, _s, _e in mentions:
                for n in names:
                    if n.startswith("family:"):
                        search_names += [s.organ for s in f.lesion_search if organ_family(s.organ) == n[7:]]
                    else:
                        search_names.append(n)
            search_names = list(dict.fromkeys(search_names + [o.name for o in organs]))
            if not search_names and sc.explicit:
                search_names = [o.name for o in sc.organs]
            if not search_names:
                w.claims.append(_C("negative", m.group(0), "unsupported",
                                   "absence of lesions anywhere cannot be stated: lesions are searched per organ "
                                   f"({', '.join(s.organ for s in f.lesion_search if s.searched) or 'none searched'})",
                                   ["study"], "count"))
                w.take(*m.span())
                continue
            imaged_part = bool(re.search(r"imaged\s+part|imaged\s+portion|visible\s+part", w.orig, re.IGNORECASE))
            for n in search_names:
                s = f.search_of(n)
                o = f.organ(n)
                have = [les.id for les in f.lesions if les.organ == n and (kind is None or _lesion_kind(les) == kind
                                                                           or (kind == "cyst" and _is_cystic(les)))]
                if s is None or not s.covers(kind):
                    ok, why = False, (f"lesion_search does not record the {human(n)} as searched"
                                      + (f" for {noun}" if kind else "") + (f" ({s.reason})" if s and s.reason else "")
                                      + ": absence cannot be stated")
                elif have:
                    ok, why = False, f"the {human(n)} has {', '.join(have)}"
                elif o is None or o.status.value == "absent":
                    ok, why = False, f"the {human(n)} is not imaged (no usable mask): absence cannot be stated"
                elif implausible(o):
                    ok, why = False, f"the {human(n)} mask is implausible"
                elif o.status.value == "truncated_by_fov" and not imaged_part:
                    ok, why = False, (f"the {human(n)} is cut off by the scan edge: absence holds for its imaged part "
                                      "only (say so)")
                else:
                    ok, why = True, f"{human(n)} searched by {', '.join(s.by) or 'a lesion search'}; no such lesion"
                w.claims.append(_C("negative", f"{m.group(0)} ({human(n)})", "supported" if ok else "unsupported", why,
                                   [f"organ:{n}"] if o is not None else ["study"], "count"))
            w.take(*m.span())
        for m in _NORMAL.finditer(w.t):
            word = m.group(0)
            w.claims.append(_C("negative", word, "unsupported",
                               f"{word!r} asserts more than was measured (volume, attenuation, lesion masks): state the "
                               "measurements instead", sc.ids, "negative"))
            w.take(*m.span())

    def _stages(self, w: _Work, sc: _Scope) -> None:
        F = sc.facts
        limited = bool(re.search(r"\bnot\s+(?:be\s+)?(?:assessed|determined|staged|given|assessable)|\bcannot\b|\bnever\b",
                                 w.orig, re.IGNORECASE))
        for m in OVERALL_STAGE_RE.finditer(w.t):
            w.claims.append(_C("stage", m.group(0), "supported" if limited else "unsupported",
                               "states that it was not assessed" if limited else
                               "an overall stage needs N and M, which are never assessed from masks", sc.ids, "stage"))
            w.take(*m.span())
        for m in STAGE_RE.finditer(w.t):
            letter, val = m.group(1), m.group(2)
            if letter in "NM":
                w.claims.append(_C("stage", m.group(0), "supported" if limited else "unsupported",
                                   "states that N/M were not assessed" if limited else
                                   f"{letter}{val}: N and M are never assessed from masks", sc.ids, "stage"))
            else:
                ok = f"T{val}" in F.stages
                why = f"T{val} is the staging hint of the findings in scope" if ok else \
                    f"T{val} is not the T category of the findings in scope " \
                    f"({', '.join(sorted(s for s in F.stages if s.startswith('T'))) or 'none'})"
                if any(s.startswith("T") for s in F.stages):
                    ok, why = _flip(w.orig, m.start(), ok, why)
                w.claims.append(_C("stage", m.group(0), "supported" if ok else "unsupported", why, sc.ids, "stage"))
            w.take(*m.span())
        low = w.low()
        for phrase in NCCN:
            for m in re.finditer(r"\b" + phrase + r"\b", low):
                full = "borderline resectable" if phrase == "borderline" else phrase
                ok = full in F.stages
                w.claims.append(_C("stage", w.orig[m.start():m.end()], "supported" if ok else "unsupported",
                                   f"{full} is the NCCN hint of the findings in scope ({knowledge('nccn_pancreas_resectability').source})"
                                   if ok else f"{full!r} is not the resectability of the findings in scope "
                                   f"({', '.join(sorted(s for s in F.stages if not s.startswith('T'))) or 'none'})",
                                   sc.ids, "stage"))
                w.take(m.start(), m.end())
                low = w.low()

    def _measurements(self, w: _Work, sc: _Scope) -> None:
        nums = [x for x in sc.facts.numbers if _usable(x, w.orig)]
        if self.comparison is not None:
            nums += self._comparison_numbers(w, sc)
        if not sc.explicit or "study" not in sc.ids:
            nums += [x for x in self.facts["study"].numbers if _usable(x, w.orig)]
        nums = [x for x in nums if not (x.name.endswith((".max_angle_deg", ".contact_length_mm")) and x.value == 0)]
        if w.vessel_names:  # angles and contact lengths of the vessels the sentence names
            nums = [x for x in nums if not x.name.endswith((".max_angle_deg", ".contact_length_mm"))
                    or x.name.rsplit(".", 1)[0] in w.vessel_names]
        st = self.findings.study
        inplane = max((sp for i, sp in enumerate(st.spacing_mm) if i != st.axial_axis), default=0.0)

        def approx(start: int) -> bool:
            return bool(_APPROX.search(w.orig[max(0, start - 16):start]))

        def close(written: str, x: Fact, scale: float, about: bool) -> bool:
            """written equals the fact as rounded to the written decimals; a length of a lesion or organ also within
            half an in-plane voxel (its measurement resolution); 'about' also within one unit of the last written
            digit or 10 % of the value."""
            dec_unit = 10 ** (-_decimals(written))
            tol = (0.5 * dec_unit + 1e-9) * scale
            if x.unit == "mm" and x.name.endswith(_LENGTH_FACTS):
                tol = max(tol, inplane / 2)
            if about:
                tol = max(tol, dec_unit * scale, 0.1 * abs(x.value))
            return abs(float(written) * scale - x.value) <= tol

        study_nums = [x for x in self.facts["study"].numbers if _usable(x, w.orig)]

        def pool_for(unit, start=None):
            pool = [x for x in nums if x.unit == unit]
            if start is not None and unit == "mm" and _SLICE_CONTEXT.search(w.orig[start:start + 40]) or \
                    start is not None and re.search(r"(?:slice|section)\s+thickness(?:\s+(?:is|of))?\s*$|-t\s*$",
                                                    w.orig[max(0, start - 30):start], re.IGNORECASE) and unit == "mm":
                return [x for x in self.facts["study"].numbers if x.name == "slice_thickness_mm" or x.name.startswith("spacing_")]
            if start is not None and len(set(w.named)) >= 2:  # the numbers of the lesion named just before
                own = w.owner(start, sc.lesions)
                if len(own) == 1:
                    pool = [x for x in _merge(self.facts, [own[0].id]).numbers + study_nums
                            if x.unit == unit and _usable(x, w.orig)]
            if unit == "HU" and start is not None:
                pool = _hu_kind(pool, w.orig, start)
            return pool

        def find(written, unit, scale, about=False, start=None):
            return [x for x in pool_for(unit, start) if close(written, x, scale, about)]

        for m in _INEQ_RE.finditer(w.t):
            unit, scale = _unit(m.group(3))
            bound = float(m.group(2)) * scale
            op = m.group(1).lower()
            more = bool(re.match(r"exceed|more|greater|larger|above|over|>|≥", op))
            cands = [x for x in nums if x.unit == unit and not (x.unit == "deg" and x.value == 0)]
            hit = [x for x in cands if (x.value > bound if more else x.value < bound)]
            rule = next((e for e in (knowledge("nccn_pancreas_resectability"),) if unit == "deg" and bound in e.values), None)
            w.claims.append(_C("measurement", m.group(0), "supported" if hit else "unsupported",
                               (f"{hit[0].name} = {hit[0].value:g} {unit}" + (f" ({rule.source})" if rule else ""))
                               if hit else f"no {unit} value of the findings in scope is {'above' if more else 'below'} "
                               f"{m.group(2)} {m.group(3)} ({', '.join(f'{x.value:g}' for x in cands) or 'none'})",
                               sc.ids, "number"))
            w.take(*m.span())
        for m in SIZE_RE.finditer(w.t):
            unit, scale = _unit(m.group(4))
            about = approx(m.start())
            parts = [g for g in (m.group(1), m.group(2), m.group(3)) if g is not None]
            bad = [g for g in parts if not find(g, unit, scale, about, m.start())]
            w.claims.append(_C("measurement", m.group(0), "unsupported" if bad else "supported",
                               (f"size {', '.join(bad)} {m.group(4)} matches no measured length of the findings in scope"
                                if bad else "sizes: " + "; ".join(f"{g} = {find(g, unit, scale, about, m.start())[0].name}"
                                                                  for g in parts)),
                               sc.ids, "number"))
            w.take(*m.span())
        for m in UNIT_RE.finditer(w.t):
            unit, scale = _unit(m.group(2))
            hit = find(m.group(1), unit, scale, approx(m.start()), m.start())
            if hit:
                w.claims.append(_C("measurement", m.group(0), "supported", f"{hit[0].name} = {hit[0].value:g} {unit}",
                                   sc.ids, "number"))
            else:
                cands = sorted({f"{x.value:g} {x.unit} ({x.name})" for x in pool_for(unit, m.start())})[:8]
                w.claims.append(_C("measurement", m.group(0), "unsupported",
                                   f"{m.group(1)} {m.group(2)} matches no {unit} value of the findings in scope"
                                   + (f" (candidates: {', '.join(cands)})" if cands else ""), sc.ids, "number"))
            w.take(*m.span())
        for m in SLICE_RE.finditer(w.t):
            ok = int(m.group(1)) in sc.facts.slices
            w.claims.append(_C("location", m.group(0), "supported" if ok else "unsupported",
                               "the long-axis slice" if ok else
                               f"slice {m.group(1)} is not the long-axis slice of the lesions in scope ({sorted(sc.facts.slices)})",
                               sc.ids, "number"))
            w.take(*m.span())

    def _counts(self, w: _Work, sc: _Scope, mentions) -> None:
        f = self.findings
        segs = [x.span() for x in SEG_RE.finditer(w.t)]
        for m in _FEW_RE.finditer(w.t):  # 'multiple splenic lesions': at least two (numerous / many: at least five)
            word, quals = m.group(1).lower(), m.group(2).lower().split()
            fams = {ORGAN_WORDS[q] for q in quals if q in ORGAN_WORDS}
            pool = [les for les in (sc.lesions if not fams else f.lesions)
                    if not fams or (les.organ and organ_family(les.organ) in fams)]
            need = 5 if word in ("numerous", "many", "innumerable", "countless") else 2
            ok = len(pool) >= need
            w.claims.append(_C("count", m.group(0), "supported" if ok else "unsupported",
                               f"{len(pool)} such lesion(s); {word!r} is read as at least {need}", [les.id for les in pool]
                               or ["study"], "count"))
            w.take(m.start(), m.start() + len(m.group(1)))
        for m in COUNT_RE.finditer(w.t):
            if any(a <= m.start() < b for a, b in segs):
                continue  # 'segment 7/8 hypodense lesion': a segment, not a count
            word = m.group(1).lower()
            n = int(word) if word.isdigit() else WORD_NUM[word]
            quals = m.group(2).lower().split()
            noun = m.group(3).lower()
            lesions = list(f.lesions)
            organ_fam = None
            for q in quals:
                if q in ORGAN_WORDS:
                    organ_fam = ORGAN_WORDS[q]
            if organ_fam is None:  # the nearest organ named in the same clause (before the count, else after)
                a = max([b.start() for b in _COUNT_BREAK.finditer(w.orig[:m.start()])], default=-1)
                nxt = _COUNT_BREAK.search(w.orig, m.end())
                b = nxt.start() if nxt else len(w.orig)
                before = [x for x in mentions if a <= x[2] < m.start()]
                after = [x for x in mentions if m.end() <= x[2] < b]
                near = before[-1] if before else (after[0] if after else None)
                if near is None and mentions and len({frozenset(x[1]) for x in mentions}) == 1 and \
                        mentions[0][2] < m.start() and not re.search(r"\b(?:total|overall|in\s+all|altogether)\b", w.orig, re.IGNORECASE):
                    near = mentions[0]  # 'Within the spleen, a single lesion ...': the one organ named before the count
                if near:
                    fams = {n[7:] for n in near[1] if n.startswith("family:")}
                    spec = {n for n in near[1] if not n.startswith("family:")}
                    lesions = [les for les in lesions if les.organ and (les.organ in spec or organ_family(les.organ) in fams)]
            else:
                lesions = [les for les in lesions if les.organ and organ_family(les.organ) == organ_fam]
            for q in quals:
                am = ATT_RE.match(q)
                if am:
                    att = _att_word(am)
                    lesions = [les for les in lesions if les.attenuation and les.attenuation.value == att]
                if q in ("left", "right"):
                    lesions = [les for les in lesions if les.laterality == q or (les.organ or "").endswith("_" + q)]
                if q == "cystic":
                    lesions = [les for les in lesions if _is_cystic(les)]
            if noun.startswith("cyst"):
                lesions = [les for les in lesions if _is_cystic(les)]
            elif noun.startswith(("mass", "tumo")):
                lesions = [les for les in lesions if _lesion_kind(les) == "tumor"]
            elif noun.startswith("nodule"):
                lesions = [les for les in lesions if les.kind == "nodule"]
            expected = len(lesions)
            strict = word in ("single", "solitary") or re.search(r"\b(there\s+(?:is|are)|total|only|in\s+all|altogether)\b",
                                                                  w.orig, re.IGNORECASE)
            per_lesion = n == 1 and not strict and bool(lesions or sc.lesions)
            ok = n == expected or per_lesion
            w.claims.append(_C("count", m.group(0), "supported" if ok else "unsupported",
                               (f"{expected} such lesion{'s' if expected != 1 else ''}" + (f" ({', '.join(les.id for les in lesions)})" if lesions else ""))
                               if ok else f"says {n} {' '.join(quals) + ' ' if quals else ''}{noun}; the findings have {expected}",
                               [les.id for les in lesions] or ["study"], "count"))
            w.take(m.start(), m.start() + len(m.group(1)))

    def _locations(self, w: _Work, sc: _Scope) -> None:
        F = sc.facts
        for m in SEG_RE.finditer(w.t):
            for tok in SEG_TOKEN.findall(m.group(1)):
                seg = f"liver_segment_{_seg_num(tok)}"
                ok = seg in F.segments
                ok, why = _flip(w.orig, m.start(), ok, f"{seg} is a location of the lesions in scope" if ok else
                                f"segment {tok} is not a location of the lesions in scope "
                                f"({', '.join(sorted(F.segments)) or 'none'})")
                w.claims.append(_C("location", f"segment {tok}", "supported" if ok else "unsupported", why, sc.ids,
                                   "segment"))
            w.take(*m.span())
        parts = list(PANC_PART_RE.finditer(w.t))
        if not parts and re.search(r"pancrea", w.orig, re.IGNORECASE):  # 'Pancreas: 1.5 cm lesion in the tail'
            parts = list(_BARE_PART_RE.finditer(w.t))
        for m in parts:
            part = _panc_part(m)
            ok = f"pancreas_{part}" in F.segments
            ok, why = _flip(w.orig, m.start(), ok, f"pancreas_{part} is a location of the lesions in scope" if ok else
                            f"pancreatic {part} is not a location of the lesions in scope "
                            f"({', '.join(sorted(F.segments)) or 'none'})")
            w.claims.append(_C("location", m.group(0), "supported" if ok else "unsupported", why, sc.ids, "segment"))
            w.take(*m.span())
        for m in POLE_RE.finditer(w.t):
            if m.group(2) or m.group(1).lower() == "interpolar":
                pole = "interpolar" if m.group(1).lower() in ("interpolar", "mid") else m.group(1).lower()
                ok = pole in F.poles
                why = f"kidney pole {pole}" if ok else \
                    f"says {m.group(0)}; the kidney pole in scope is {', '.join(sorted(F.poles)) or 'not measured'}"
                if F.poles:
                    ok, why = _flip(w.orig, m.start(), ok, why)
                w.claims.append(_C("location", m.group(0), "supported" if ok else "unsupported", why, sc.ids, "laterality"))
                w.take(*m.span())
        # a sentence citing nothing is about the lesions it describes when there are any (not their organs)
        lats = F.laterality if sc.explicit or not sc.lesions else _merge(self.facts, [les.id for les in sc.lesions]).laterality
        for m in LATERAL_RE.finditer(w.t):
            side = m.group(1).lower()
            relevant = set(sc.ids) & (self.lesion_ids | {k for k in self.facts if k.startswith("organ:")})
            if lats:
                ok = side in lats
                ok, why = _flip(w.orig, m.start(), ok, f"{side} side" if ok else
                                f"says {side}; the findings in scope are {', '.join(sorted(lats))}")
            elif relevant:
                ok, why = False, f"says {side}; the findings in scope have no side"
            else:
                continue
            w.claims.append(_C("location", m.group(0), "supported" if ok else "unsupported", why, sc.ids, "laterality"))
            w.take(*m.span())

    def _attenuation(self, w: _Work, sc: _Scope) -> None:
        atts = {les.attenuation.value for les in sc.lesions if les.attenuation} if sc.lesions else sc.facts.attenuation
        all_atts = atts
        for m in ATT_RE.finditer(w.t):
            att = _att_word(m)
            word = m.group(0)
            own = w.owner(m.start(), sc.lesions)
            atts = {les.attenuation.value for les in own if les.attenuation} if own is not sc.lesions else all_atts
            if re.search(r"enhanc", word, re.IGNORECASE) and self.contrast in ("non_contrast", "unknown"):
                w.claims.append(_C("attenuation", word, "unsupported", f"says {word!r}; the study is "
                                   f"{'non-contrast' if self.contrast == 'non_contrast' else 'of unknown phase'}: "
                                   "say attenuating", sc.ids, "attenuation"))
            elif atts:
                ok = att in atts
                ok, why = _flip(w.orig, m.start(), ok, f"{att} ({knowledge('attenuation_margin_hu').rule})" if ok else
                                f"says {word}; findings say {', '.join(sorted(atts))}")
                w.claims.append(_C("attenuation", word, "supported" if ok else "unsupported", why, sc.ids, "attenuation"))
            elif sc.lesions:
                w.claims.append(_C("attenuation", word, "unsupported", f"says {word}; attenuation was not measured for "
                                   "the lesions in scope", sc.ids, "attenuation"))
            else:
                w.claims.append(_C("attenuation", word, "unsupported", f"says {word}; no lesion in scope", sc.ids,
                                   "attenuation"))
            w.take(*m.span())

    def _flag_claim(self, w: _Work, span: tuple[int, int], word: str, flag_names: tuple[str, ...],
                    organs: list[Organ], negated: bool) -> None:
        flags = [(o, fl) for o in organs for fl in o.flags if fl.name in flag_names]
        limited = bool(_LIMIT.search(w.orig))
        if not flags:
            ok, why = False, f"{word!r}: no {'/'.join(flag_names)} flag for the organs in scope (rule not applied)"
            ids = ["study"]
        else:
            o, fl = flags[0]
            ids = [f"organ:{o.name}"]
            if limited:
                ok = fl.status == "not_assessed" or (fl.unit == "ratio" and fl.value is not None and fl.value <= 0)
                why = f"{fl.name} is {fl.status}" + (f" ({fl.reason})" if fl.reason else "")
            elif fl.status == "not_assessed":
                ok, why = False, f"{fl.name} was not assessed ({fl.reason or fl.rule})"
            else:
                ok = (fl.status == "positive") != negated and not (fl.unit == "ratio" and fl.value is not None and fl.value <= 0)
                why = f"{fl.name} {fl.status}: {fl.value} against {fl.rule} ({fl.source})"
        w.claims.append(_C("diagnosis", word, "supported" if ok else "unsupported", why, ids, "diagnosis"))
        w.take(*span)

    def _diagnoses(self, w: _Work, sc: _Scope, mentions) -> None:
        self._renal_rule(w, sc)
        lesions = sc.lesions
        organs = self._organs_in(mentions) or sc.organs
        for m in _STEATOSIS.finditer(w.t):
            neg = bool(re.search(r"\b(?:no|without|not)\b[^.;]{0,30}$", w.orig[:m.start()], re.IGNORECASE))
            fam_organs = organs or [o for o in self.findings.organs if organ_family(o.name) in ("liver", "pancreas")]
            names = ("hepatic_steatosis", "liver_spleen_ratio_low", "pancreatic_steatosis")
            self._flag_claim(w, m.span(), m.group(0), names, fam_organs, neg)
        for m in _TYPED.finditer(w.t):
            want = "pdac" if re.match(r"pdac|ductal|pancreatic\s+adeno", m.group(1), re.IGNORECASE) else "pnet"
            have = [les.id for les in lesions if les.kind == want]
            ok = bool(have)
            w.claims.append(_C("diagnosis", m.group(0), "supported" if ok else "unsupported",
                               f"{', '.join(have)} come from a mask typed {want}" if ok else
                               f"{m.group(0)!r}: no lesion in scope comes from a mask typed {want} (histology is not "
                               "determined from CT masks)", have or sc.ids, "diagnosis"))
            w.take(*m.span())
        for m in _CYST.finditer(w.t):
            have = [les.id for les in lesions if _is_cystic(les)]
            neg_ctx = _NEG_LESION.search(w.orig[max(0, m.start() - 40):m.end()])
            if neg_ctx:
                w.take(*m.span())
                continue
            ok = bool(have)
            why = f"{', '.join(have)}: typed cyst or cystic ({knowledge('cystic_lesion_hu').rule})" if ok else \
                f"{m.group(0)!r}: no lesion in scope is typed cyst or meets the cystic rule " \
                f"({knowledge('cystic_lesion_hu').rule})"
            if lesions and _negated(w.orig, m.start()):  # 'L5 is not a cyst': none in scope may be cystic
                ok, why = not any(_is_cystic(les) for les in lesions), "negated: " + why
            w.claims.append(_C("diagnosis", m.group(0), "supported" if ok else "unsupported", why, have or sc.ids,
                               "diagnosis"))
            w.take(*m.span())
        for rx, comp in ((_FAT, "fat"), (_CALC, "calcified")):
            for m in rx.finditer(w.t):
                have = [les.id for les in lesions if _component(les, comp)]
                neg = bool(re.search(r"\b(?:no|without|not)\b[^.;]{0,25}$", w.orig[:m.start()], re.IGNORECASE))
                ok = (not have and bool(lesions)) if neg else bool(have)
                w.claims.append(_C("diagnosis", m.group(0), "supported" if ok else "unsupported",
                                   (f"composition rule {comp}: {', '.join(have) or 'none of ' + ', '.join(les.id for les in lesions)}")
                                   if ok else f"{m.group(0)!r}: the composition rule {comp!r} does not say so for the lesions "
                                   "in scope", have or sc.ids, "diagnosis"))
                w.take(*m.span())
        for m in _NODULE_TYPE.finditer(w.t):
            want = m.group(1).lower().replace("-", "_").replace(" ", "_")
            if re.search(r"nodule\s+type[^.;]*?(?:not\s+determined|undetermined|cannot)", w.orig, re.IGNORECASE):
                have = [les.id for les in lesions if les.nodule_type is None]
            else:
                have = [les.id for les in lesions if les.nodule_type == want]
            ok = bool(have)
            w.claims.append(_C("diagnosis", m.group(0), "supported" if ok else "unsupported",
                               f"nodule type of {', '.join(have)}" if ok else f"{m.group(0)!r} is not the nodule type of "
                               "the lesions in scope", have or sc.ids, "diagnosis"))
            w.take(*m.span())
        for m in _MEASURABLE.finditer(w.t):
            word = m.group(1).lower()
            want = not word.startswith(("non", "not"))
            have = [les.id for les in lesions if les.recist_measurable == want]
            ok = bool(have) and len(have) == len(lesions)
            w.claims.append(_C("diagnosis", m.group(0), "supported" if ok else "unsupported",
                               f"RECIST 1.1: {knowledge('recist_measurable').rule}" +
                               ("" if ok else f"; measurable: {', '.join(les.id for les in lesions if les.recist_measurable) or 'none'}"),
                               [les.id for les in lesions] or sc.ids, "diagnosis"))
            w.take(*m.span())
        hedges = list(_HEDGE.finditer(w.t))
        for m in _NEVER.finditer(w.t):
            limited = _LIMIT.search(w.orig) and not re.search(r"excluded|ruled\s+out", w.orig, re.IGNORECASE)
            w.claims.append(_C("diagnosis", m.group(0), "supported" if limited else "unsupported",
                               f"{m.group(0)!r}: stated as not established by the measurements" if limited else
                               f"{m.group(0)!r} is a diagnosis or interpretation that the measurements cannot establish "
                               "(no rule in reasoning/knowledge.py maps these findings to it)", sc.ids, "diagnosis"))
            w.take(*m.span())
        # a hedge whose words after it were all read as claims ('consistent with encasement') adds nothing
        open_hedges = [h for h in hedges if re.search(r"[a-z]{3,}", re.sub(
            r"\b(?:an?|the|this|it|its|of|lesion|lesions|mass|masses|nodule|finding|findings|which|that|is|are|be)\b",
            " ", w.t[h.end():h.end() + 40].split(".")[0], flags=re.IGNORECASE), re.IGNORECASE)]
        for m in hedges:
            w.take(*m.span())
        if open_hedges and not any(c.type == "diagnosis" for c in w.claims):
            w.claims.append(_C("diagnosis", hedges[0].group(0), "unsupported",
                               f"{hedges[0].group(0)!r} introduces an interpretation the vocabulary cannot check",
                               sc.ids, "diagnosis"))

    def _sizes(self, w: _Work, sc: _Scope, mentions) -> None:
        organs = self._organs_in(mentions) or sc.organs
        for m in _SIZE_WORD.finditer(w.t):
            word = m.group(0).lower()
            neg = word.startswith(("not", "normal")) or bool(re.search(r"\b(?:no|without)\s+$", w.t[:m.start()], re.IGNORECASE))
            if "splenomegaly" in word:
                orgs = [o for o in self.findings.organs if organ_family(o.name) == "spleen"]
            elif "hepatomegaly" in word:
                orgs = [o for o in self.findings.organs if organ_family(o.name) == "liver"]
            else:
                orgs = organs
            self._size_claim(w, m.span(), m.group(0), orgs, neg)

    def _renal_rule(self, w: _Work, sc: _Scope) -> None:
        """'simple cyst' / 'indeterminate' / 'hyperdense cyst' of a kidney lesion, by the simplified Bosniak HU ranges
        (knowledge 'renal_mass_hu_ranges'; the > 70 HU rule on non-contrast CT only)."""
        e = knowledge("renal_mass_hu_ranges")
        fat, cyst_max, dense = e.values
        kidney = [les for les in sc.lesions if les.organ and organ_family(les.organ) == "kidney"]
        for m in _RENAL_CLASS.finditer(w.t):
            word = m.group(1).lower()
            if not kidney:
                w.claims.append(_C("diagnosis", m.group(0), "unsupported", f"{m.group(0)!r}: the Bosniak HU ranges apply "
                                   "to kidney lesions; none in scope", sc.ids, "diagnosis"))
                w.take(*m.span())
                continue
            if word == "simple":
                have = [les for les in kidney if fat <= les.mean_hu <= cyst_max]
            elif word == "indeterminate":
                have = [les for les in kidney if cyst_max < les.mean_hu <= dense]
            else:  # hyperdense / hyperattenuating cyst
                have = [les for les in kidney if les.mean_hu > dense and self.contrast == "non_contrast"]
            ok = bool(have) and len(have) == len(kidney)
            w.claims.append(_C("diagnosis", m.group(0), "supported" if ok else "unsupported",
                               f"{', '.join(f'{les.id} mean {les.mean_hu:.1f} HU' for les in kidney)}: {e.rule} ({e.source})",
                               [les.id for les in kidney], "diagnosis"))
            w.take(*m.span())
            for c in _CYST.finditer(w.t[m.start():m.end() + 12]):
                w.take(m.start() + c.start(), m.start() + c.end())

    def _size_claim(self, w: _Work, span, word: str, organs: list[Organ], normal: bool) -> None:
        flag_for = {"spleen": "splenomegaly", "liver": "hepatomegaly"}
        ref = {"kidney": "kidney_volume_reference_ml", "pancreas": "pancreas_volume_reference_ml"}
        if not organs:
            w.claims.append(_C("diagnosis", word, "unsupported", f"{word!r}: no organ in scope to compare", ["study"],
                               "diagnosis"))
            w.take(*span)
            return
        for o in organs:
            fam = organ_family(o.name)
            if fam in flag_for:
                self._flag_claim(w, span, word, (flag_for[fam],), [o], normal)
                continue
            if fam in ref and o.volume_ml is not None:
                e = knowledge(ref[fam])
                enlarged = o.volume_ml > e.values[1]
                ok = enlarged != normal
                w.claims.append(_C("diagnosis", word, "supported" if ok else "unsupported",
                                   f"{human(o.name)} {o.volume_ml:.1f} mL; {e.rule} ({e.source})", [f"organ:{o.name}"],
                                   "diagnosis"))
            else:
                w.claims.append(_C("diagnosis", word, "unsupported",
                                   f"{word!r}: the {human(o.name)} volume is not measured or has no sourced size rule",
                                   [f"organ:{o.name}"], "diagnosis"))
        w.take(*span)

    def _history(self, w: _Work, sc: _Scope) -> None:
        """Patient history and the indication are not in the findings: not checkable (the clinical words with them
        too); a recommendation or a comparison in the same sentence is still checked."""
        cue = _HISTORY.search(w.t)
        if not cue:
            return
        words = [m for rx in (_NEVER, _CLINICAL) for m in rx.finditer(w.t)
                 if not _RECOMMEND.fullmatch(m.group(0)) and not _COMPARISON.fullmatch(m.group(0))]
        w.claims.append(_C("history", w.orig[cue.start():].strip(), "not_checkable",
                           "patient history or indication: not in the findings, so not checkable", sc.ids, "history"))
        w.take(*cue.span())
        for m in words:
            w.take(*m.span())

    def _recommendations(self, w: _Work, sc: _Scope) -> None:
        for m in _RECOMMEND.finditer(w.t):
            word = m.group(0)
            ok, why = False, (f"{word!r}: a recommendation; management is not derived from the measurements (no sourced "
                              "rule in reasoning/knowledge.py applies)")
            if re.match(r"resection|surveillance", word, re.IGNORECASE) or re.search(r"resection|surveillance", w.orig, re.IGNORECASE):
                e = knowledge("pancreatic_cyst_resection")
                cysts = [les for les in sc.lesions if les.organ and organ_family(les.organ) == "pancreas" and _is_cystic(les)]
                if cysts:
                    meets = [les for les in cysts if les.volume_ml > e.values[0] or les.long_axis_mm > e.values[1]]
                    says_resect = bool(re.search(r"resection", w.orig, re.IGNORECASE))
                    ok = bool(meets) == says_resect
                    why = f"{e.rule} ({e.source})" + ("" if ok else "; the cysts in scope say otherwise")
            w.claims.append(_C("recommendation", word, "supported" if ok else "unsupported", why, sc.ids, "recommendation"))
            w.take(*m.span())

    def _comparisons(self, w: _Work, sc: _Scope) -> None:
        for m in _COMPARISON.finditer(w.t):
            if self.comparison is not None and _PRIOR_REF.fullmatch(m.group(0)):
                w.claims.append(_C("comparison", m.group(0), "supported",
                                   f"{m.group(0)!r}: refers to the prior study of the comparison", sc.ids, "comparison"))
            else:
                w.claims.append(_C("comparison", m.group(0), "unsupported",
                                   f"{m.group(0)!r}: a comparison with a prior study; " + (
                                       "this change word is not one the comparison verifies (grew/shrank by, new, "
                                       "disappeared, stable, a RECIST response)" if self.comparison is not None else
                                       self.comparison_refused or "these findings hold one study and no prior"),
                                   sc.ids, "comparison"))
            w.take(*m.span())

    # --- change claims against a Comparison (reasoning.comparison) ---------------------------------
    def _comparison_numbers(self, w: _Work, sc: _Scope) -> list[Fact]:
        """Values of the comparison a sentence may write: earlier sizes of the tracked lesions in scope (with a
        prior-reference word or a tracking id), their changes (with a change word or a signed number), and the
        RECIST sums and their changes (with 'sum', 'RECIST', 'nadir' or 'target')."""
        c = self.comparison
        now = c.current.time_point
        low = w.orig.lower()
        tids = [m.group(0) for m in _TRACK_ID_RE.finditer(w.orig) if any(t.tracking_id == m.group(0) for t in c.lesions)]
        ids = {les.id for les in sc.lesions}
        organs = {o.name for o in sc.organs}
        tracked = [t for t in c.lesions if (t.tracking_id in tids) if tids] or [
            t for t in c.lesions if ((m := t.at(now)) is not None and m.lesion_id in ids)
            or ((m is None or not m.lesion_id) and t.organ in organs)]
        out: list[Fact] = []
        prior = bool(tids) or bool(_PRIOR_CTX.search(low))
        change = bool(_CHANGE_CTX.search(low))
        for t in tracked:
            for m in t.measurements:
                if m.time_point != now and prior:
                    out += [Fact(v, u, f"{t.tracking_id}.tp{m.time_point}.{n}") for v, u, n in (
                        (m.long_axis_mm, "mm", "long_axis_mm"), (m.short_axis_mm, "mm", "short_axis_mm"),
                        (m.volume_ml, "mL", "volume_ml")) if v is not None]
            for ch in (t.change_from_prior, t.change_from_baseline):
                if ch is not None and change:
                    out += [Fact(s * v, u, f"{t.tracking_id}.change_tp{ch.reference_time_point}.{n}")
                            for v, u, n in ((ch.long_axis_abs_mm, "mm", "long_axis_abs_mm"), (ch.long_axis_pct, "%", "long_axis_pct"),
                                            (ch.volume_abs_ml, "mL", "volume_abs_ml"), (ch.volume_pct, "%", "volume_pct"))
                            if v is not None for s in (1, -1)]
        r = c.recist
        if r is not None and _SUM_CTX.search(low):
            out += [Fact(v, "mm", f"recist.{n}") for v, n in ((r.baseline_sum_mm, "baseline_sum_mm"),
                                                              (r.nadir_sum_mm, "nadir_sum_mm"), (r.current_sum_mm, "current_sum_mm"))
                    if v is not None]
            out += [Fact(s * v, u, f"recist.{n}") for v, u, n in ((r.change_from_baseline_pct, "%", "change_from_baseline_pct"),
                                                                  (r.change_from_nadir_pct, "%", "change_from_nadir_pct"),
                                                                  (r.change_from_nadir_mm, "mm", "change_from_nadir_mm"))
                    if v is not None for s in (1, -1)]
        return out

    def _tracked(self, sc: _Scope, tids: list[str]):
        c = self.comparison
        if tids:
            return [t for t in c.lesions if t.tracking_id in tids]
        ids = {les.id for les in sc.lesions}
        now = c.current.time_point
        return [t for t in c.lesions if (m := t.at(now)) is not None and m.lesion_id in ids]

    def _changes(self, w: _Work, sc: _Scope, mentions) -> None:
        """Change claims checked against the comparison: RECIST response categories, new and disappeared lesions,
        growth or shrinkage (with 'by N %/mm/cm/mL' checked as rounded to the decimals written), stability."""
        from reasoning.comparison import RESPONSE_NAMES, _direction
        from reasoning.vqa.result import _Cannot

        c = self.comparison
        tids = []
        for m in _TRACK_ID_RE.finditer(w.t):
            if any(t.tracking_id == m.group(0) for t in c.lesions):
                tids.append(m.group(0))
                w.take(*m.span())
        r = c.recist
        codes = {v.lower(): k for k, v in RESPONSE_NAMES.items()} | {"disease progression": "PD", "progression": "PD"}
        for m in list(_RESPONSE_WORDS.finditer(w.t)) + (list(_RESPONSE_CODES.finditer(w.t)) if _RESPONSE_CTX.search(w.t) else []):
            word = m.group(0)
            code = codes.get(re.sub(r"\s+", " ", word.lower()), word.upper())
            before = w.t[max(0, m.start() - 30):m.start()].lower()
            which = "non_target_response" if "non-target" in before else \
                "target_response" if re.search(r"\btarget\b", before) else "overall_response"
            if r is None:
                ok, why = False, f"{word!r}: RECIST 1.1 was not assessed in the comparison ({'; '.join(c.warnings) or 'no reason'})"
            else:
                have = getattr(r, which)
                ok = have == code
                why = f"RECIST 1.1 {which.replace('_', ' ')} is {have} ({RESPONSE_NAMES[have]})"
            w.claims.append(_C("comparison", word, "supported" if ok else "unsupported", why,
                               [x.tracking_id for x in (r.targets if r else [])], "comparison"))
            w.take(*m.span())
            for ctx in _RESPONSE_CTX.finditer(w.t):  # 'overall response', 'by RECIST 1.1': the category's own words
                w.take(*ctx.span())
        specific = {n for _, names, _, _ in mentions for n in names if not n.startswith("family:")}
        fams = {n[7:] for _, names, _, _ in mentions for n in names if n.startswith("family:")}

        def in_organs(t) -> bool:
            return not (specific or fams) or t.organ in specific or (t.organ is not None and organ_family(t.organ) in fams)
        for state, rx in (("new", _NEW_RE), ("disappeared", _GONE_RE)):
            for m in rx.finditer(w.t):
                pool = [t for t in c.lesions if t.state == state and (t.tracking_id in tids if tids else in_organs(t))]
                neg = bool(_NO_BEFORE.search(w.t[max(0, m.start() - 25):m.start()]))
                ok = (not pool) if neg else bool(pool)
                where = "in the organs named" if (specific or fams) and not tids else "in scope"
                why = (f"{state} lesion(s) {where}: {', '.join(t.tracking_id for t in pool) or 'none'}"
                       + (" (refused registration: cannot be ruled out)" if neg and any(
                           g.status == "refused" for g in c.registrations) else ""))
                if neg and any(g.status == "refused" for g in c.registrations):
                    ok = False
                w.claims.append(_C("comparison", m.group(0), "supported" if ok else "unsupported", why,
                                   [t.tracking_id for t in pool], "comparison"))
                w.take(*m.span())
        tracked = self._tracked(sc, tids)
        kinds = {}
        for t in tracked:
            try:
                kinds[t.tracking_id] = _direction(c, t, self.findings, None)
            except _Cannot as e:
                kinds[t.tracking_id] = ("unknown", None, None, e.reason)
        for m in _CHANGE_RE.finditer(w.t):
            verb, num, unit = m.group(1).lower(), m.group(2), (m.group(3) or "").lower()
            want = "stable" if _STABLE_WORD.fullmatch(verb) else "grown" if _GROW_WORD.match(verb) else "shrunk"
            hits = [t for t in tracked if kinds[t.tracking_id][0] == want or (want == "shrunk" and kinds[t.tracking_id][0] == "disappeared")]
            why = "; ".join(kinds[t.tracking_id][3] for t in tracked) or "no tracked lesion in scope"
            if num is not None and hits:
                scale = 10.0 if unit == "cm" else 1.0
                volume = "volume" in w.t.lower()
                hits = [t for t in hits if (v := _change_amount(kinds[t.tracking_id], unit, volume)) is not None
                        and _matches(num, v, scale)]
            ok = bool(hits) and (want != "stable" or len(hits) == len(tracked))
            w.claims.append(_C("comparison", m.group(0), "supported" if ok else "unsupported", why,
                               [t.tracking_id for t in (hits or tracked)], "comparison"))
            w.take(*m.span())

    def _limitations(self, w: _Work, sc: _Scope) -> None:
        for m in _LIMIT.finditer(w.t):
            w.claims.append(_C("limitation", m.group(0), "supported", "states what was not established", sc.ids,
                               "limitation"))
            w.take(*m.span())

    def _organs(self, w: _Work, sc: _Scope, mentions, vessels) -> None:
        F = sc.facts
        f = self.findings
        known = {organ_family(o.name) for o in f.organs} | {organ_family(les.organ) for les in f.lesions if les.organ} | \
            {organ_family(a) for les in f.lesions for a in les.adjacent_organs}
        for phrase, names, s, e in mentions:
            if s < 0 or not w.t[s:e].strip():
                continue  # consumed by another claim
            fams = {n[7:] for n in names if n.startswith("family:")} | {organ_family(n) for n in names if not n.startswith("family:")}
            if sc.explicit:
                if sc.study_only:
                    ok = bool(fams & (F.organs | known)) or bool(_LIMIT.search(w.orig) or _SEARCH_NOT.search(w.orig))
                    why = f"the {phrase} is in the findings" if ok else f"the {phrase} has no mask and no lesion in the findings"
                elif F.organs:
                    ok = bool(fams & F.organs)
                    why = (f"the cited findings are about the {phrase}" if ok else
                           f"mentions the {phrase}, but the cited findings are about {', '.join(sorted(F.organs))}")
                else:
                    ok, why = False, f"mentions the {phrase}, which the cited findings do not locate"
            elif w.named:  # 'L1 ... in the spleen': the organ of the lesions the sentence names (or next to them)
                own = _merge(self.facts, w.named).organs
                ok = bool(fams & own)
                why = (f"{', '.join(w.named)} {'is' if len(w.named) == 1 else 'are'} in or next to the {phrase}" if ok else
                       f"mentions the {phrase}, but {', '.join(w.named)} {'is' if len(w.named) == 1 else 'are'} about "
                       f"{', '.join(sorted(own)) or 'no organ'}")
            else:
                ok = bool(fams & known)
                why = f"the {phrase} is in the findings" if ok else f"the {phrase} has no mask and no lesion in the findings"
            w.claims.append(_C("location", phrase, "supported" if ok else "unsupported", why, sc.ids, "organ"))
            w.take(s, e)

    def _unknown(self, w: _Work, sc: _Scope) -> None:
        for m in _CLINICAL.finditer(w.t):
            word = m.group(0)
            if not word.strip():
                continue
            w.claims.append(_C("unknown", word, "unsupported",
                               f"{word!r} is a clinical assertion the claim vocabulary does not know, so it cannot be "
                               "checked against the findings", sc.ids, "unknown"))
            w.take(*m.span())

    def _bare_numbers(self, w: _Work, sc: _Scope) -> None:
        # a bare number is a ratio fact only where the sentence speaks of a ratio (not '1.' of a list)
        ratios = [x for x in sc.facts.numbers if x.unit == "ratio"] if _RATIO_WORDS.search(w.orig) else []
        for m in re.finditer(NUM, w.t):
            hit = [x for x in ratios if _matches(m.group(1), x.value)]
            if hit:
                w.claims.append(_C("measurement", m.group(1), "supported", f"{hit[0].name} = {hit[0].value:g}", sc.ids, "number"))
                continue
            w.claims.append(_C("number", m.group(1), "unsupported", f"the number {m.group(1)} has no unit or context that a "
                               "finding can confirm", sc.ids, "unverifiable_number"))


_NOT_BEFORE = re.compile(r"\b(?:not|isn't|aren't|wasn't|weren't|never|nor|neither)\b(?:\s+[\w-]+){0,3}\s*$", re.IGNORECASE)


def _negated(text: str, start: int) -> bool:
    """'is not hypoattenuating', 'is not in the pancreatic tail', 'in segment VIII, not segment VII'."""
    before = text[max(0, start - 40):start]
    cut = max((m.end() for m in re.finditer(r"[;,(]|\bbut\b|\band\b", before)), default=0)
    return bool(_NOT_BEFORE.search(before[cut:]))


def _flip(text: str, start: int, ok: bool, why: str) -> tuple[bool, str]:
    """The verdict of a negated attribute claim: true exactly when the positive claim is false."""
    if _negated(text, start):
        return (not ok), ("negated: " + why)
    return ok, why


def _ranked(lesions: list[Lesion], m: re.Match) -> list[Lesion]:
    """[the lesion of that rank by long axis] ('second largest'), or [] when there are fewer lesions."""
    k = _RANK.get((m.group(1) or "").lower(), 1)
    order = sorted(lesions, key=lambda les: les.long_axis_mm, reverse=m.group(2).lower() in ("largest", "biggest"))
    return [order[k - 1]] if len(order) >= k else []


def _seg_num(tok: str) -> int:
    return int(tok) if tok.isdigit() else ROMAN[tok.lower()]


def _panc_part(m: re.Match) -> str:
    part = (m.group(1) or m.group(2) or m.group(3) or "uncinate").lower()
    return PANCREAS_PARTS[part].removeprefix("pancreas_")


def _att_word(m: re.Match) -> str:
    if m.group(1):
        return {"hypo": "hypoattenuating", "iso": "isoattenuating", "hyper": "hyperattenuating"}[m.group(1).lower()]
    return "hypoattenuating" if m.group(3).lower() in ("low", "lower", "decreased", "reduced") else "hyperattenuating"


def _change_amount(kind: tuple, unit: str, volume: bool) -> float | None:
    """The magnitude of a tracked lesion's change in the unit written: % of the long axis (of the volume when the
    sentence says volume), mm/cm of the long axis, mL of the volume."""
    _, ref, cur, _ = kind
    if cur is None or cur.long_axis_mm is None or ref is None:
        return None
    if unit in ("%", "percent"):
        if volume:
            return abs((cur.volume_ml - ref.volume_ml) / ref.volume_ml * 100) if ref.volume_ml and cur.volume_ml is not None \
                else None
        return abs((cur.long_axis_mm - ref.long_axis_mm) / ref.long_axis_mm * 100)
    if unit == "ml":
        return abs(cur.volume_ml - ref.volume_ml) if ref.volume_ml is not None and cur.volume_ml is not None else None
    return abs(cur.long_axis_mm - ref.long_axis_mm)


def verify(findings: Findings, text: str, comparison=None) -> Verification:
    """Every sentence of ``text`` (plain text or markdown) parsed into claims and checked against ``findings``;
    change claims (grew by, new, disappeared, stable, RECIST response) against ``comparison`` when given."""
    return ClaimChecker(findings, comparison).verify(text)
