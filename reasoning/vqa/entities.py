"""Question understanding, step one: the entities a question names, read before any routing.

:func:`strip_prompt` removes the text a prompt builder puts around a question (DeepTumorVQA's 2D /
3D / video blurbs, patient and voxel-spacing lines, "answer with ..." instructions), so that it
never changes what the question is taken to ask. :func:`extract_entities` then reads organs (with
side), lesion ids and kind words, vessels, sub-segments, the measure and unit asked, rank and
aggregate, comparison with a threshold, time references, diagnosis and recommendation words into a
typed :class:`QuestionEntities`. Routing (``reasoning.vqa.parse``) chooses a question type only
when it uses every entity named here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reasoning.vocabulary import (
    CYST_WORDS,
    LESION_WORDS,
    ORDINAL_WORDS,
    OTHER_ANATOMY,
    PANCREAS_PARTS,
    SEGMENT_NUMBER,
    TUMOR_WORDS,
    VESSEL_GENERIC,
    organs_in,
    segment_number,
    vessels_in,
)

# --- prompt wrappers ------------------------------------------------------------------------------

# DeepTumorVQA's prompt builders (deeptumorvqa/data/prompt.py): modality blurbs, patient and spacing
# lines, answer-format instructions, system prompts. Each is removed wherever it sits in the text.
_WRAPPERS = [
    r"the image is a single axial ct slice from the patient's abdomen \(window width \d+, level \d+\)\.",
    r"the video plays a series of axial ct slices through the patient's abdomen \(window width \d+, level \d+\)\.",
    r"you are given the full 3d abdominal ct volume \(nifti, native voxel spacing\)\.",
    r"patient: (?:(?:sex|age|scanner|contrast)=[^,\n]*?(?:, |\.(?=\s|$)))+",
    r"voxel spacing \(mm\):[^\n]*?\.(?=\s|$)(?:\s*volume shape:[^\n]*?\.(?=\s|$))?",
    r"volume shape:[^\n]*?\.(?=\s|$)",
    r"answer with only the single letter \([a-d](?:, [a-d])*,? (?:or|and) [a-d]\)\.?",
    r"answer with (?:only )?(?:the|a) (?:single )?letter[^\n.]*\.?",
    r"answer with a single number \(no units, no extra words\)\.?",
    r"answer with 'yes' or 'no'\.?",
    r"answer with the most appropriate short phrase\.?",
    r"you are a radiology ai (?:assistant|agent)[^\n]*?(?:exactly|format(?: \([^)]*\))?)\.",
    r"be concise and follow the answer-format instructions exactly\.",
]
_WRAPPER_RE = re.compile("|".join(f"(?:{w})" for w in _WRAPPERS), re.IGNORECASE)


def strip_prompt(text: str) -> str:
    """The question without the prompt builder's surrounding text (kept line structure)."""
    out = _WRAPPER_RE.sub(" ", text)
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in out.splitlines()]
    return "\n".join(ln for ln in lines if ln)


def norm(text: str) -> str:
    """Lower case, one spelling for dashes, 'Hounsfield units', tumour/tumor; single spaces."""
    t = text.lower().replace("\u2212", "-").replace("\u2013", "-").replace("\u2014", "-")
    t = t.replace("hounsfield units", "hu").replace("hounsfield unit", "hu").replace("³", "3").replace("°", " deg")
    t = t.replace("tumour", "tumor").replace("characterise", "characterize").replace("haem", "hem").replace("oedema", "edema")
    return re.sub(r"\s+", " ", t).strip()


# --- the entities ---------------------------------------------------------------------------------


@dataclass
class QuestionEntities:
    """What a question names. Lists keep the order of mention."""

    text: str  # the question after strip_prompt
    norm: str  # normalised text (see :func:`norm`)
    organs: list[str] = field(default_factory=list)  # Findings names, e.g. kidney_left, liver
    lesion_ids: list[str] = field(default_factory=list)  # L1, L2
    lesion: bool = False  # a lesion word (lesion, tumor, mass, cyst, ...)
    lesion_kind: str | None = None  # cyst / tumor when the kind word says so (broadly: mass, growth, cancer -> tumor)
    kind_named: str | None = None  # cyst / tumor named as a kind ('cyst', 'tumour'; not 'mass', 'growth')
    vessels: list[str] = field(default_factory=list)  # Findings vessel names (first candidate of each phrase)
    vessel_phrases: list[str] = field(default_factory=list)
    vessel_generic: bool = False  # "vessels", "vascular", "arteries" without naming one
    segments: list[str] = field(default_factory=list)  # liver_segment_N, pancreas_head/body/tail
    measures: list[str] = field(default_factory=list)  # see _MEASURES
    unit: str | None = None  # mm, cm, mL, cm3, L, HU, deg, %
    rank: int | None = None  # 2 = second largest, -1 = smallest
    aggregate: str | None = None  # total
    comparison: str | None = None  # larger / smaller (a threshold comparison or a comparative)
    threshold_mm: float | None = None
    threshold_text: str | None = None
    time: list[str] = field(default_factory=list)  # prior, since, grown, ...
    diagnosis: str | None = None  # metastasis, hcc, benign, malignant, ...
    recommendation: list[str] = field(default_factory=list)  # recommend, biopsy, follow-up, treat, ...
    other_anatomy: list[str] = field(default_factory=list)  # body parts radagent has no organ for (bone, breast, ...)
    phase_named: str | None = None  # a contrast phase the question presupposes ('on the arterial phase')

    def describe(self) -> str:
        """The understood entities in words (for 'unmapped' answers)."""
        parts = []
        if self.organs:
            parts.append("organ " + ", ".join(self.organs))
        if self.lesion_ids:
            parts.append("lesion " + ", ".join(self.lesion_ids))
        elif self.lesion:
            parts.append("a lesion" + (f" ({self.lesion_kind})" if self.lesion_kind else ""))
        if self.vessels:
            parts.append("vessel " + ", ".join(self.vessels))
        elif self.vessel_generic:
            parts.append("vessels (none named)")
        if self.segments:
            parts.append("segment " + ", ".join(self.segments))
        if self.measures:
            parts.append("measure " + ", ".join(self.measures))
        if self.unit:
            parts.append("unit " + self.unit)
        if self.rank not in (None, 1):
            parts.append("rank " + ("smallest" if self.rank == -1 else f"#{self.rank} by size"))
        if self.aggregate:
            parts.append("aggregate " + self.aggregate)
        if self.threshold_mm is not None:
            parts.append(f"threshold {self.comparison} than {self.threshold_text}")
        if self.time:
            parts.append("time reference " + ", ".join(self.time))
        if self.diagnosis:
            parts.append("diagnosis " + self.diagnosis)
        if self.recommendation:
            parts.append("recommendation " + ", ".join(self.recommendation))
        if self.phase_named:
            parts.append("contrast phase " + self.phase_named)
        if self.other_anatomy:
            parts.append("body part not measured: " + ", ".join(self.other_anatomy))
        return "; ".join(parts) or "nothing radagent measures"


# measure name -> pattern (over normalised text). Several may match; routing decides.
_MEASURES: list[tuple[str, str]] = [
    ("angle", r"\bdegrees?\b|\bdeg\b|\bangle\b|circumferen|°"),
    ("contact_length", (r"\blength of (?:the )?(?:vessel |vascular )?contact|\bcontact length|\bover (?:what|which|how much) length"
                        r"|\bhow long (?:is|does) (?:the )?(?:vessel |vascular )?contact|\blength along\b|\bhow far along\b"
                        r"|\balong how (?:much|far|long)\b")),
    ("contact_category", (r"\babut\w*|\bencase\w*|\bencasement\b|\bcontact category\b"
                          r"|\bdegree of (?:vascular |vessel )?(?:contact|involvement)")),
    ("contact", (r"\bcontact\w*|\btouch\w*|\binvolv\w*|\binvad\w*|\binvasion\b|\binfiltrat\w*|\bin contact\b"
                 r"|\bextend\w* (?:into|to)\b")),
    ("short_axis", (r"\bshort[\s-]axis\b|\bshortest (?:axial )?diameter\b|\bperpendicular (?:diameter|axis)\b"
                    r"|\bsad\b|\bnarrowest\b|\bcross-?ways?\b|\bshort (?:dimension|diameter)\b")),
    ("diameter_3d", r"\b3d\b|\bthree[\s-]dimensional\b|\b3[\s-]dimensional\b|\bferet\b|\bin any direction\b|\bin 3 dimensions\b"),
    ("diameter", (r"\bdiameters?\b|\blong(?:est)?[\s-]axis\b|\bhow (?:long|wide)\b|\bwidest\b|\blongest (?:dimension|measurement)\b"
                  r"|\bmaximal? dimension\b|\blad\b|\bwidth\b|\bhow far across\b")),
    ("size", r"\bsize\b|\bhow (?:large|big)\b|\bmeasure(?:s|d|ment)?\b|\bdimensions?\b"),
    ("volume", r"\bvolumes?\b|\bcubic\b|\bhow much space\b|\bvol\.?(?=\s|$)"),
    ("hu", (r"\bhu\b|\battenuation value\b|\bmean attenuation\b|\bdensity value\b|\bct (?:value|number)s?\b|\baverage attenuation\b"
            r"|\bhow dense\b|\bdensity\b|\bbrightness\b|\bhow bright\b")),
    ("attenuation", r"\bhypo\w*|\bhyper(?:dense|attenuat)\w*|\biso(?:dense|attenuat)\w*|\bdarker\b|\bbrighter\b|\battenuat\w*"),
    ("count", (r"\bhow many\b(?! (?:degrees?|deg|mm|millimet\w*|cm|centimet\w*|ml|millilit\w*|cc|cm3|lit\w*|hu|percent)\b)"
               r"|\bnumber of\b(?! (?:degrees?|mm|cm|ml|hu)\b)|\bcount\b|(?:^|\s)#\s*(?:of\s+)?[a-z]|\bno\. of\b")),
    ("key_slice", (r"\bkey (?:slice|image)\b|\bimage number\b|\bwhich image\b|\bwhat image\b|\b(?:long[\s-]axis|recist) (?:slice|image)\b"
                   r"|\bimage (?:should|do|would) (?:i|we)\b|\bimage (?:no\.?|#)(?=\s|$)")),
    ("slice", r"\bslices?\b|\baxial (?:level|section|image)\b"),
    ("stage", r"\bt[\s-]?stag\w*|\bt[\s-]?categor\w*|\bstag(?:e|ing)\b|\bajcc\b|\bt[1-4][ab]?\b"),
    ("phase", r"\bphase\b|\bcontrast\b|\bunenhanced\b|\bnon-?enhanced\b|\bcontrast-enhanced\b|\bwith iv\b|\bdye\b|\binject\w*"),
    ("percent", r"\bpercent\w*|\bproportion\b|\bfraction of\b|%"),
    ("ratio", r"\bratio\b|-to-|\bl/s\b|\bp/s\b|\bdivide\w*"),
    ("location", r"\bwhich (?:couinaud |liver |hepatic |pancreatic )?(?:segment|part|portion|region|lobe)s?\b|\bwhere\b|\blocat\w*"),
    ("composition", (r"\bcomposition\b|\bmade of\b|\bcontains? (?:fat|calcium|calcification|fluid)\b|\bfat[\s-]containing\b"
                     r"|\bcalcif\w*|\bcystic or solid\b|\bsolid or cystic\b|\bfatty component\b|\bmacroscopic fat\b|\bfilled with fluid\b"
                     r"|\bfluid or (?:is it )?solid\b|\bsolid tissue\b|\bsolid or (?:fluid|liquid)\b")),
    ("completeness", (r"\bcompletely (?:imaged|included|visible|captured|covered|in)\b"
                      r"|\bfully (?:imaged|included|visible|captured|covered|in)\b"
                      r"|\bcut (?:off|by)\b|\btruncat\w*|\bscan edge\b|\bedge of the (?:scan|image|volume|field)\b|\bfield of view\b"
                      r"|\bentirely (?:imaged|within|in|visible)\b|\bpartially (?:imaged|visible|included)\b|\bextends? beyond\b"
                      r"|\bwhole (?:lesion|tumor|mass|organ) (?:imaged|visible|included)\b|\bincompletely imaged\b|\bin its entirety\b"
                      r"|\b(?:whole|entire)\b.*\b(?:inside|within|in|on|visible|included|covered|seen)\b.*\b(?:scan|image|images|field|fov)\b"
                      r"|\bcaptur\w* (?:the )?(?:entire|whole)\b|\bcomplete in (?:the )?fov\b|\b(?:in|by|beyond) (?:the )?fov\b")),
    ("measurable", r"\bmeasurab\w*|\btarget lesion\b|\brecist\b"),
    ("search", (r"\bsearched\b|\bsearch(?:ed)? for\b|\blooked for\b|\bscreened\b|\bchecked for\b|\bevaluated for\b|\bassessed for\b"
                r"|\blesion (?:search|detection)\b|\bwas .* (?:examined|analy[sz]ed) for\b|\bcoverage\b|\bcheck\w* (?:the )?[a-z_ ]+ for\b"
                r"|\blook\w* (?:at|through|over) (?:the )?[a-z_ ]*for\b|\bwas (?:the )?[a-z_ ]+ looked at\b")),
    ("status", (r"\bstatus\b|\bsegmented\b|\babsent\b|\bmissing\b"
                r"|\b(?:was|is) (?:the )?[a-z ]+ (?:imaged|present|removed|seen|included)\b"
                r"|\bresected\b(?= )|\bnephrectomy\b|\bsplenectomy\b")),
    ("enlargement", r"\benlarg\w*|\bmegaly\b|splenomegaly|hepatomegaly|\blarger than normal\b|\bnormal (?:in )?size\b|\babnormally large\b"),
    ("burden", r"\bburden\b"),
    ("existence", (r"\b(?:is|are) there\b|\bany\b|\bevidence\b|\bpresen\w*|\bcontains?\b|\bdoes .* have\b|\bshow\w*|\bdetect\w*"
                   r"|\bidentif\w*|\bvisible\b|\bexist\w*|\bsee\b|\bsigns? of\b|\bfound\b|\bfind\b|\b(?:free|clear) of\b|\by/n\b")),
]

_UNITS: list[tuple[str, str]] = [
    ("cm3", r"\bcm3\b|\bcubic centimet(?:er|re)s?\b|\bcc\b"),
    ("mL", r"\bml\b|\bmillilit(?:er|re)s?\b"),
    ("L", r"\bin lit(?:er|re)s?\b|\blit(?:er|re)s?\b|\bin l\b"),
    ("mm3", r"\bmm3\b|\bcubic millimet(?:er|re)s?\b"),
    ("mm", r"\bmm\b|\bmillimet(?:er|re)s?\b"),
    ("cm", r"\bcm\b|\bcentimet(?:er|re)s?\b"),
    ("HU", r"\bin hu\b|\bhu\b"),
    ("deg", r"\bdegrees?\b|\bdeg\b"),
    ("%", r"%|\bpercent\w*"),
    ("inch", r"\binch(?:es)?\b|\bfeet\b|\bfoot\b|\bgrams?\b|\bkg\b|\bpounds?\b|\bounces?\b|\bgallons?\b|\bpixels?\b|\bvoxels?\b"),
]

_TIME = (r"\bprior\b|\bprevious(?:ly)?\b|\bearlier (?:scan|study|exam|ct|imaging)\b|\blast (?:scan|study|exam|ct|time|visit)\b|\bsince\b"
         r"|\binterval\w*|\bbaseline\b|\bgrown\b|\bgrew\b|\bgrowing\b|\bgrow\b|\bshrunk\b|\bshrank\b|\bshrink\w*|\bprogress\w*"
         r"|\bregress\w*|\bunchanged\b|\bstable\b|\bchanged?\b|\bchanges\b|\bover time\b|\bnew(?:ly)?(?: [a-z]+)? (?:lesion|tumor|mass|nodule|metasta|spot|growth|cyst)\w*|\bnewly\b"
         r"|\bgetting (?:smaller|bigger|larger|worse|better)\b|\bresponse to (?:treatment|therapy)\b|\bresponding\b|\bdoubl\w* time\b|\bold (?:scan|study|ct)\b"
         r"|\bnadir\b|\brecist (?:1\.1 )?(?:response|category)\b|\bresponse (?:category|assessment)\b|\boverall response\b"
         r"|\bdisappear\w*|\bvanished\b")
_TIME_NOT = r"\bfatty changes?\b|\bcystic changes?\b|\b(?:something|anything|what(?:'s| is)?) growing\b"

_DIAGNOSES: list[tuple[str, str]] = [
    ("metastasis", r"\bmetasta\w*|\bmets\b|\bsecondar(?:y|ies)\b"),
    ("hcc", r"\bhcc\b|\bhepatocellular\b|\bhepatoma\b"),
    ("cholangiocarcinoma", r"\bcholangiocarcinoma\b"),
    ("hemangioma", r"\bhemangioma\w*"),
    ("fnh", r"\bfnh\b|\bfocal nodular hyperplasia\b"),
    ("adenoma", r"\badenomas?\b"),
    ("abscess", r"\babscess\w*"),
    ("lymphoma", r"\blymphoma\w*"),
    ("rcc", r"\brcc\b|\brenal cell carcinoma\b|\bclear cell\b"),
    ("angiomyolipoma", r"\bangiomyolipoma\w*|\baml\b"),
    ("oncocytoma", r"\boncocytoma\w*"),
    ("ipmn", r"\bipmn\b|\bintraductal papillary\b|\bmucinous cystic\b|\bserous cystadenoma\b"),
    ("malignant", r"\bmalignan\w*|\bcancer(?:s|ous)?\b(?!-like)|\bcarcinoma\w*|\baggressive\b"),
    ("benign", r"\bbenign\b|\bharmless\b|\bnothing to worry\b|\binnocent\b"),
]

_RECOMMEND = (r"\brecommend\w*|\bbiops\w*|\bfollow[\s-]?up\b|\bsurveillance\b|\bshould (?:it|this|the [a-z ]+|we|i|they|he|she) be\b"
              r"|\bshould (?:we|i|the patient|they|he|she) (?:treat|remove|operate|biops|resect|follow|worry|get|have|do|see|start|stop)\w*"
              r"|\bneeds? (?:to be )?(?:treat|remov|surg|operat|chemo)\w*|\btreat(?:ed|ment)?\b"
              r"|\bnext step\b|\bmanagement\b|\bmanage\b|\bworkup\b|\bwork-up\b|\brefer\w*|\bchemo\w*|\bradiation\b|\bablat\w*"
              r"|\bsurgery\b|\boperat(?:e|ion|ed)\b|\bresect\w*|\bremov\w*|\bexcis\w*|\bmri\b|\bpet\b")

# parts of an organ Findings does not divide it into (its sub-segments are Couinaud 1-8 and pancreas head/body/tail)
_REGIONS = (r"\b(?:right|left|caudate|quadrate) (?:hepatic |liver )?lobe\b|\b(?:upper|lower|mid) pole\b|\b(?:renal )?cortex\b"
            r"|\bmedulla\b|\bhilum\b|\bhilar\b|\bdome\b|\bsubcapsular\b")

_NUM = r"(\d+(?:[.,]\d+)?)"
_LEN_UNIT = r"(mm|millimet(?:er|re)s?|cm|centimet(?:er|re)s?)"
_BIGGER = r"larger|bigger|greater|longer|wider|more|over|above|exceed\w*|at least|>=?|in excess of|beyond"
_SMALLER = r"smaller|less|shorter|under|below|narrower|at most|<=?|within|up to"
_THRESHOLD = re.compile(rf"\b(?:({_BIGGER})|({_SMALLER}))\s*(?:than\s+|of\s+)?(?:the\s+)?{_NUM}\s*{_LEN_UNIT}\b|"
                        rf"(?:^|[\s(])([<>]=?)\s*{_NUM}\s*{_LEN_UNIT}\b")

_SEG_LIST = re.compile(rf"\b(?:segments?|segs?\.?)\s+({SEGMENT_NUMBER}\b(?:\s*(?:,|and|or|vs\.?|versus|&|/)\s*(?:segment\s+|seg\.?\s+)?{SEGMENT_NUMBER}\b)*)")
_SEG_SHORT = re.compile(r"\bs([1-8])\b|\bliver_segment_([1-8])\b|\bsegment_([1-8])\b")
_SEG_ORDINAL = re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|1st|2nd|3rd|4th|5th|6th|7th|8th) "
                          r"(?:couinaud |liver |hepatic )?segment\b")
_PANC_PART = re.compile(r"\b(?:pancreatic\s+|pancreas\s+)(head|neck|body|tail|uncinate)\b|\b(head|neck|body|tail|uncinate)"
                        r"(?: process)?\s+(?:of\s+(?:the\s+)?pancreas|region of the pancreas)\b|\bpancreas_(head|body|tail)\b")
_PANC_PART_LOOSE = re.compile(r"\b(head|body|tail|uncinate)\b")


def segments_in(t: str, pancreas_context: bool) -> list[str]:
    """Sub-segments named in normalised text: Couinaud 1-8 (digits, Roman, 'S8', 'eighth segment'),
    pancreas head/body/tail (loose words only with the pancreas named)."""
    found: list[tuple[int, str]] = []
    for m in _SEG_LIST.finditer(t):
        for tok in re.finditer(SEGMENT_NUMBER, m.group(1)):
            found.append((m.start(1) + tok.start(), f"liver_segment_{segment_number(tok.group(0))}"))
    for m in _SEG_SHORT.finditer(t):
        found.append((m.start(), f"liver_segment_{m.group(1) or m.group(2) or m.group(3)}"))
    for m in _SEG_ORDINAL.finditer(t):
        found.append((m.start(), f"liver_segment_{ORDINAL_WORDS[m.group(1)]}"))
    for m in _PANC_PART.finditer(t):
        found.append((m.start(), PANCREAS_PARTS[m.group(1) or m.group(2) or m.group(3)]))
    if pancreas_context:
        for m in _PANC_PART_LOOSE.finditer(t):
            found.append((m.start(), PANCREAS_PARTS[m.group(1)]))
    out: list[str] = []
    for _, s in sorted(found):
        if s not in out:
            out.append(s)
    return out


def _blank(t: str, spans: list[tuple[int, int]]) -> str:
    for a, b in spans:
        t = t[:a] + " " * (b - a) + t[b:]
    return t


_RANKS = {"second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5}


def extract_entities(text: str) -> QuestionEntities:
    """Read the entities of a question (prompt wrappers removed first)."""
    q = strip_prompt(text)
    t = norm(q)
    e = QuestionEntities(text=q, norm=t)
    # vessels first: their words ('hepatic artery', 'splenic vein', 'renal vein') are not organs
    spans = []
    for phrase, names in vessels_in(t):
        e.vessel_phrases.append(phrase)
        if names[0] not in e.vessels:
            e.vessels.append(names[0])
        spans += [(m.start(), m.end()) for m in re.finditer(r"\b" + re.escape(phrase) + r"\b", t)]
    rest = _blank(t, spans)
    e.vessel_generic = re.search(VESSEL_GENERIC, rest) is not None and re.search(r"\b(?:arterial|venous) phase\b", rest) is None \
        and not e.vessels
    if e.vessel_generic and re.search(r"\b(?:arterial|portal venous|venous|delayed) phase\b", rest):
        e.vessel_generic = False
    # numbers with a unit are measurements, not ids or segments
    e.organs = organs_in(rest)
    sided = {o.rsplit("_", 1)[0] for o in e.organs if o.endswith(("_left", "_right"))}
    e.organs = [o for o in e.organs if o not in sided and not (o == "adrenal" and "adrenal_gland" in sided)]
    e.lesion_ids = list(dict.fromkeys(m.group(1).upper() for m in re.finditer(r"\b(l\d+)\b", t)))
    e.lesion = re.search(LESION_WORDS, rest) is not None or bool(e.lesion_ids)
    if re.search(CYST_WORDS, rest) and not re.search(r"\bpseudo-?cysts?\b", rest):
        e.lesion_kind = "cyst"
    elif re.search(TUMOR_WORDS, rest):
        e.lesion_kind = "tumor"
    if e.lesion_kind == "cyst" and re.search(r"\bcysts?\b", rest):
        e.kind_named = "cyst"
    elif e.lesion_kind == "tumor" and re.search(r"\btumou?rs?\b|\bneoplasms?\b", rest):
        e.kind_named = "tumor"
    e.segments = segments_in(rest, "pancreas" in e.organs)
    for name, pat in _MEASURES:
        if re.search(pat, rest):
            e.measures.append(name)
    e.unit = _unit(rest)
    # rank and aggregate
    m = re.search(r"\b(second|third|fourth|fifth|2nd|3rd|4th|5th)[\s-]+(?:largest|biggest|most large|in size)\b", rest)
    if m:
        e.rank = _RANKS[m.group(1)]
    elif re.search(r"\bsmallest\b|\bleast (?:large|big)\b|\btiniest\b", rest):
        e.rank = -1
    elif re.search(r"\b(?:largest|biggest|dominant|main|index|primary)\b", rest):
        e.rank = 1
    if re.search(r"\b(?:total|combined|sum|altogether|aggregate|overall|in all|all (?:the )?(?:lesions|tumors|masses|cysts))\b", rest):
        e.aggregate = "total"
    # comparison with a threshold
    th = _THRESHOLD.search(rest)
    if th:
        if th.group(5):
            bigger = th.group(5).startswith(">")
            num, unit = th.group(6), th.group(7)
        else:
            bigger = th.group(1) is not None
            num, unit = th.group(3), th.group(4)
        v = float(num.replace(",", "."))
        e.threshold_mm = v * (10.0 if unit.startswith(("cm", "centi")) else 1.0)
        e.threshold_text = f"{num} {'cm' if unit.startswith(('cm', 'centi')) else 'mm'}"
        e.comparison = "larger" if bigger else "smaller"
        if e.unit in ("mm", "cm") and re.search(rf"{_NUM}\s*{_LEN_UNIT}", rest) and len(re.findall(_LEN_UNIT, rest)) == 1:
            e.unit = None  # the unit belongs to the threshold, not to an asked value
    elif re.search(r"\b(?:smaller|fewer|less|least|lower)\b", rest):
        e.comparison = "smaller"
    elif re.search(r"\b(?:larger|bigger|greater|more|higher)\b", rest):
        e.comparison = "larger"
    # time, diagnosis, recommendation
    tt = re.sub(_TIME_NOT, " ", rest)
    e.time = list(dict.fromkeys(m.group(0) for m in re.finditer(_TIME, tt)))
    for name, pat in _DIAGNOSES:
        if re.search(pat, rest):
            e.diagnosis = name
            break
    e.recommendation = list(dict.fromkeys(m.group(0) for m in re.finditer(_RECOMMEND, rest)))
    e.other_anatomy = list(dict.fromkeys(m.group(0) for m in re.finditer(OTHER_ANATOMY, rest)))
    e.other_anatomy += [m.group(0) for m in re.finditer(_REGIONS, rest)]
    ph = re.search(r"\b(late arterial|arterial|portal[\s-]venous|venous|delayed|excretory|nephrographic|non-?contrast|unenhanced)"
                   r"(?: phase| scan| ct| images?| study)\b", rest)
    e.phase_named = ph.group(1) if ph else None
    if "ratio" in e.measures and re.search(r"\bdifference\b|\bminus\b|\bsubtract", rest) and not re.search(r"\bratio\b", rest):
        e.measures.remove("ratio")
    return e


def _unit(t: str) -> str | None:
    """The unit the question asks its answer in ('in cm', 'how many mL', 'in degrees'); None when not said."""
    for asked in re.finditer(r"\b(?:in|into|as|using|expressed in|reported in|given in|measured in|units? of|how many)\s+"
                             r"(?:the\s+)?(?:units?\s+of\s+)?([a-z%3]+(?:\s+(?:centi|milli)?met[a-z]*)?)", t):
        for unit, pat in _UNITS:
            if re.match(pat.replace(r"\bin ", r"\b"), asked.group(1)):
                return unit
    m = re.search(r"\((mm3|mm|cm|ml|cc|cm3|l|hu|%|degrees?|deg)\)", t)
    if m:
        return {"ml": "mL", "cc": "cm3", "l": "L", "hu": "HU", "degree": "deg", "degrees": "deg"}.get(m.group(1), m.group(1))
    return None
