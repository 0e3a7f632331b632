"""QA pairs for datasets: :func:`generate_qa` poses every subtype these findings can pose and
answers each with :func:`reasoning.vqa.answering.answer`."""

from __future__ import annotations

import re

from perception.schema import Findings, Status
from reasoning.vqa.answering import answer
from reasoning.vqa.question import Question
from reasoning.vqa.subtypes import SUBTYPES, Subtype
from reasoning.vqa.vocabulary import segment_display, vessel_display

_ORGAN_WORDS = {"liver": "liver", "pancreas": "pancreas", "kidney": "kidneys", "kidney_left": "left kidney",
                "kidney_right": "right kidney", "spleen": "spleen", "gallbladder": "gallbladder", "colon": "colon",
                "stomach": "stomach", "lung": "lungs"}


_VESSEL_TEXT = {
    "vessel involvement": "Does lesion {l} contact the {v}?",
    "vessel contact category": "Does lesion {l} abut or encase the {v}?",
    "vessel contact angle": "How many degrees of the {v} circumference does lesion {l} contact?",
    "vessel contact length": "Over what length does lesion {l} contact the {v}?",
}


def _qa_text(spec: Subtype, q: Question) -> str:
    """The subtype's template question with its organ word swapped for the one asked about."""
    if q.vessel and spec.name in _VESSEL_TEXT:
        return _VESSEL_TEXT[spec.name].format(l=q.lesion_id, v=vessel_display(q.vessel))
    if spec.name == "involved vessels" and q.lesion_id:
        return f"Which vessels does lesion {q.lesion_id} involve?"
    if spec.name == "lesion size threshold" and q.threshold_mm is not None:
        word = "kidney" if q.organ == "kidney" else _ORGAN_WORDS.get(q.organ or "", (q.organ or "").replace("_", " "))
        return f"Is the largest {word} lesion {q.direction} than {q.threshold_mm / 10:g} cm?"
    if spec.name == "diagnosis" and q.diagnosis:
        word = "kidney" if q.organ == "kidney" else _ORGAN_WORDS.get(q.organ or "", (q.organ or "").replace("_", " "))
        return f"Is the largest {word} lesion {q.diagnosis}?"
    text = spec.example
    organ = q.organ
    if spec.name == "organ HU ratio" and len(q.organs) >= 2:  # the question names the organs the ratio is computed on
        a, b = (_ORGAN_WORDS.get(o, o.replace("_", " ")) for o in q.organs[:2])
        return f"What is the {a}-to-{b} HU ratio?"
    if organ and organ != "liver" and re.search(r"\bliver\b", text):
        word = "kidney" if organ == "kidney" else ("lung" if organ == "lung" else _ORGAN_WORDS.get(organ, organ.replace("_", " ")))
        text = re.sub(r"\bliver\b", word, text, count=1)
    elif organ and re.search(r"\b(left|right) kidney\b|\bkidneys\b", text) and organ.startswith("kidney"):
        text = re.sub(r"\b(left|right) kidney\b|\bkidneys\b", _ORGAN_WORDS.get(organ, organ), text, count=1)
    elif organ and re.search(r"\bspleen\b", text) and organ != "spleen" and spec.name in ("organ HU measurement", "lesion existence"):
        text = re.sub(r"\bspleen\b", _ORGAN_WORDS.get(organ, organ.replace("_", " ")), text, count=1)
    elif organ and re.search(r"\bliver\b", text) is None and spec.name in ("organ volume measurement", "organ enlargement"):
        text = f"{text} ({_ORGAN_WORDS.get(organ, organ)})"
    if q.organs:
        text = f"{text} [{', '.join(_ORGAN_WORDS.get(o, o) for o in q.organs)}]"
    if q.segments:
        text = f"{text} [{' vs '.join(segment_display(s) for s in q.segments)}]"
    if q.location:
        text = f"{text} [{segment_display(q.location)}]"
    return text


def _fam_of(organ: str | None) -> str | None:
    if not organ:
        return None
    return "kidney" if organ.startswith("kidney") else ("lung" if organ.startswith("lung") else organ)


def generate_qa(findings: Findings) -> list[dict]:
    """QA pairs of every subtype these findings can pose, each answered by ``answer`` (status kept:
    'cannot_be_determined' rows say why, so a dataset can filter or keep them). Each row holds the
    structured question (subtype + parameters) next to its text, so the pair is unambiguous."""
    fams = []
    for les in findings.lesions:
        fam = _fam_of(les.organ)
        if fam and fam not in fams:
            fams.append(fam)
    present = [o.name for o in findings.organs if o.status != Status.absent]
    core = [o for o in ("liver", "spleen", "pancreas", "kidney_left", "kidney_right", "gallbladder") if o in present]
    segs: list[str] = []
    for les in findings.lesions:
        for s in les.segments:
            if s.startswith("liver_segment_") and s not in segs:
                segs.append(s)
    lesion_organs = fams or ["liver"]
    plan: list[Question] = []
    for name, spec in SUBTYPES.items():
        p = set(spec.params)
        if name in ("organ HU measurement", "organ volume measurement", "organ enlargement", "tumor burden percentage"):
            plan += [Question(subtype=name, organ=o) for o in core]
        elif name in ("kidney cyst existence", "kidney lesion existence", "kidney tumor existence"):
            plan.append(Question(subtype=name, organ="kidney"))
        elif name == "lesion existence":
            plan += [Question(subtype=name, organ=o) for o in lesion_organs if o not in ("liver", "pancreas", "kidney", "colon")]
        elif name == "organ HU ratio":
            plan += [Question(subtype=name, organs=pair) for pair in (("liver", "spleen"), ("pancreas", "spleen"))]
        elif name == "multi-organ lesion burden comparison":
            pair = tuple(lesion_organs[:2]) if len(lesion_organs) >= 2 else ("liver", "kidney")
            plan.append(Question(subtype=name, organs=pair))
        elif name == "organ aggregation":
            plan.append(Question(subtype=name, organs=("kidney_left", "kidney_right"), measure="volume"))
        elif name == "inter-segment comparison":
            if len(segs) >= 2:
                plan.append(Question(subtype=name, organ="liver", segments=tuple(segs[:2])))
        elif name == "lesion count by location":
            plan += [Question(subtype=name, organ="liver", location=s) for s in segs[:2]]
        elif name in ("vessel involvement", "vessel contact category", "vessel contact angle", "vessel contact length"):
            # every assessed vessel for involvement; the measures of contact where there is contact
            plan += [Question(subtype=name, lesion_id=les.id, vessel=c.vessel) for les in findings.lesions
                     for c in les.vessel_contacts if name == "vessel involvement" or c.category.value != "none"]
        elif name == "involved vessels":
            plan += [Question(subtype=name, lesion_id=les.id) for les in findings.lesions if les.vessel_contacts]
        elif name == "lesion size threshold":
            plan += [Question(subtype=name, organ=o, threshold_mm=20.0) for o in lesion_organs]
        elif name in ("organ status", "lesion search coverage"):
            plan += [Question(subtype=name, organ=o) for o in core]
        elif name == "kidney tumor staging":
            plan += [Question(subtype=name, organ="kidney")] if "kidney" in lesion_organs else []
        elif name == "diagnosis":
            plan += [Question(subtype=name, organ=o, diagnosis="benign") for o in lesion_organs]
        elif "organ" in p:
            plan += [Question(subtype=name, organ=o) for o in lesion_organs]
        else:
            plan.append(Question(subtype=name))
    rows = []
    for i, q in enumerate(plan, start=1):
        spec = SUBTYPES[q.subtype]
        a = answer(findings, q)
        rows.append({
            "qid": f"q{i:03d}", "subtype": spec.name, "group": spec.group, "question": _qa_text(spec, q),
            "params": q.model_dump(exclude_defaults=True, exclude={"text"}), "status": a.status,
            "answer": None if a.answer is None else a.answer, "unit": a.unit, "answer_type": a.answer_type,
            "finding_ids": list(a.finding_ids), "rule": a.rule, "explanation": a.explanation, "reason": a.reason,
            "qualifier": a.qualifier,
        })
    return rows
