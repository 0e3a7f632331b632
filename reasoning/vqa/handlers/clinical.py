"""Handlers of the questions measurements alone rarely answer: change over time (never without a
prior study), diagnoses and recommendations (only where a sourced rule of reasoning.knowledge
decides them; otherwise cannot be determined, saying why)."""

from __future__ import annotations

from perception.registry import organ_family
from perception.schema import Findings, Lesion
from reasoning.knowledge import knowledge
from reasoning.vqa.handlers.medical_reasoning import _h_cyst_resect
from reasoning.vqa.lookup import _is_cystic, _pick, _which
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result


def _h_change(f: Findings, q: Question) -> _Result:
    ids = []
    if q.lesion_id or q.organ:
        try:
            ids = [_pick(f, q, q.organ).id]
        except _Cannot as e:
            ids = e.ids
    raise _Cannot("no prior study was compared: these findings hold one time point, so growth, shrinkage or any change "
                  "over time cannot be determined (radagent compare PRIOR_OUT CURRENT_OUT writes the comparison.json "
                  "that answers it)", ids, "single time point")


_BENIGN_WORDS = {"benign", "cyst", "simple cyst", "renal cyst", "kidney cyst", "bosniak", "bosniak 2", "bosniak ii",
                 "not malignant"}
_MALIGNANT_WORDS = {"malignant", "malignancy", "cancer", "carcinoma", "rcc", "renal cell carcinoma", "metastasis",
                    "metastases", "metastatic", "tumor", "tumour", "neoplasm"}


def _bosniak_benign(f: Findings, l: Lesion) -> str | None:
    """The reason the Bosniak v2019 class II attenuation rule calls ``l`` benign, or None when it does not apply."""
    key = "bosniak_homogeneous_fluid_hu"
    lo, hi = knowledge(key).values
    if not (l.organ and organ_family(l.organ) == "kidney") or f.study.contrast_phase.phase != "non_contrast":
        return None
    if not (lo <= l.mean_hu <= hi) or not any(c.startswith("cystic") for c in l.components):
        return None
    return (f"{l.id} kidney lesion mean {_fmt(l.mean_hu)} HU (SD {_fmt(l.sd_hu)}), homogeneous, within {_fmt(lo)} to "
            f"{_fmt(hi)} HU on non-contrast CT: Bosniak II, benign (wall and septa not assessed)")


def _h_diagnosis(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    word = q.diagnosis or "the diagnosis"
    benign = _bosniak_benign(f, l)
    if benign and (q.diagnosis is None or q.diagnosis in _BENIGN_WORDS | _MALIGNANT_WORDS):
        acc = {"benign"} | ({"yes"} if q.diagnosis in _BENIGN_WORDS else {"no"} if q.diagnosis in _MALIGNANT_WORDS else set())
        return _Result("benign", None, [l.id], "bosniak_homogeneous_fluid_hu", f"{benign} ({_which(q)})", accept=acc)
    kind = "cystic by attenuation" if _is_cystic(l) else f"mean {_fmt(l.mean_hu)} HU"
    raise _Cannot(f"{word} of {l.id} ({l.organ or 'no host organ'}, {kind}) cannot be determined from measurements: no sourced "
                  "rule in the knowledge base decides it (histology, enhancement pattern or follow-up would)", [l.id])


def _h_recommendation(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    if l.organ and organ_family(l.organ) == "pancreas" and _is_cystic(l):
        r = _h_cyst_resect(f, q.model_copy(update={"lesion_id": l.id}))
        return _Result("resection" if r.value == "yes" else "surveillance", None, r.ids, r.rule, r.explanation,
                       accept={"resection", "surgery", "resect"} if r.value == "yes" else {"surveillance", "follow-up", "follow up"})
    raise _Cannot(f"follow-up, biopsy or treatment advice for {l.id} ({l.organ or 'no host organ'}) is not derivable from "
                  "measurements: no sourced rule in the knowledge base applies (only the pancreatic cyst size rule does)", [l.id])
