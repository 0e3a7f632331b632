"""VQA scoring and DeepTumorVQA file formats.

Scoring follows DeepTumorVQA (``deeptumorvqa/eval/metrics.py``): multiple choice is exact match of
the option letter; free-form answers are scored by answer type -- numeric by mean relative
accuracy ``max(0, 1 - |p - g| / |g|)`` (1 when both are 0) with hits within 5/10/20/50 %
relative error, binary (yes/no) and categorical (normalised text) by exact match. An unanswered
question (no prediction) scores 0.

Pure functions score one prediction; :class:`VQAMetric` accumulates predictions and aggregates
per subtype, per group (question_type) and overall. Group and overall accuracy are
question-weighted (as DeepTumorVQA's evaluator computes them); ``macro_accuracy`` is the mean
over subtypes. A numeric subtype's accuracy is its mean relative accuracy.

Files: questions ``{"questions": [{qid, image_id, question, answer, mc_question, correct_option,
question_type, question_subtype, ...}]}`` (also a bare list or JSON lines; read tolerantly), and
results ``{"results": [{qid, image_id, question_subtype, question_type, raw_output, pred_answer,
...}]}`` (written strictly).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOLERANCES: tuple[float, ...] = (0.05, 0.10, 0.20, 0.50)
ScoreType = Literal["choice", "numeric", "binary", "categorical"]

# --- parsing predictions -------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_LETTER = re.compile(r"\b([A-D])\b")


def strip_think(text: str) -> str:
    return _THINK.sub("", str(text)).strip()


def extract_letter(text: Any) -> str:
    """The option letter A-D of a prediction ('' if none): a leading letter, else a standalone one."""
    s = strip_think(str(text or "")).upper()
    if not s:
        return ""
    if s[0] in "ABCD" and (len(s) == 1 or not s[1].isalpha()):
        return s[0]
    m = _LETTER.search(s)
    return m.group(1) if m else ""


def extract_number(text: Any) -> float | None:
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    m = _NUMBER.search(strip_think(str(text)))
    return float(m.group(0)) if m else None


def normalize_text(text: Any) -> str:
    s = re.sub(r"[^\w\s\-]", "", strip_think(str(text)).lower())
    return re.sub(r"\s+", " ", s).strip()


def extract_binary(text: Any) -> str:
    s = strip_think(str(text or "")).lower()
    if s.startswith("yes"):
        return "yes"
    if s.startswith("no"):
        return "no"
    if re.search(r"\byes\b", s):
        return "yes"
    if re.search(r"\bno\b", s):
        return "no"
    return ""


# --- pure scoring functions ----------------------------------------------------------------------
def relative_error(pred: float, gold: float) -> float:
    if gold == 0:
        return 0.0 if pred == 0 else math.inf
    return abs(pred - gold) / abs(gold)


def relative_accuracy(pred: float, gold: float) -> float:
    """Mean relative accuracy of one prediction: max(0, 1 - |p - g| / |g|); 1/0 when g == 0."""
    if gold == 0:
        return 1.0 if pred == 0 else 0.0
    return max(0.0, 1.0 - abs(pred - gold) / abs(gold))


def within(pred: float, gold: float, tolerance: float) -> bool:
    return relative_error(pred, gold) <= tolerance


@dataclass(frozen=True)
class Score:
    correct: bool
    score: float  # 1/0, or the relative accuracy of a numeric answer
    answered: bool
    relative_error: float | None = None  # numeric only

    def hit(self, tolerance: float) -> bool:
        return self.relative_error is not None and self.relative_error <= tolerance


def score_answer(pred: Any, gold: Any, score_type: ScoreType) -> Score:
    """Score one prediction against the gold answer (letter for 'choice')."""
    answered = pred is not None and str(pred).strip() != ""
    if score_type == "choice":
        ok = answered and extract_letter(pred) == str(gold).strip().upper()
        return Score(ok, float(ok), answered)
    if score_type == "numeric":
        g = extract_number(gold)
        p = extract_number(pred) if answered else None
        if g is None:
            raise ValueError(f"numeric gold answer expected, got {gold!r}")
        if p is None:
            return Score(False, 0.0, answered, math.inf)
        err = relative_error(p, g)
        ra = relative_accuracy(p, g)
        return Score(err == 0.0, ra, answered, err)
    if score_type == "binary":
        ok = answered and extract_binary(pred) == extract_binary(gold) != ""
        return Score(ok, float(ok), answered)
    if score_type == "categorical":
        ok = answered and normalize_text(pred) == normalize_text(gold)
        return Score(ok, float(ok), answered)
    raise ValueError(f"score_type {score_type!r}: expected one of choice, numeric, binary, categorical")


# --- accumulator ---------------------------------------------------------------------------------
@dataclass
class _Row:
    subtype: str
    group: str
    score_type: str
    score: Score
    qid: str | None


@dataclass
class VQAMetric:
    """Accumulate scored predictions; ``aggregate()`` gives per-subtype, per-group and overall figures."""

    rows: list[_Row] = field(default_factory=list)

    def add(self, subtype: str, group: str, pred: Any, gold: Any, score_type: ScoreType, qid: str | None = None) -> Score:
        s = score_answer(pred, gold, score_type)
        self.rows.append(_Row(subtype, group, score_type, s, qid))
        return s

    def reset(self) -> None:
        self.rows.clear()

    def aggregate(self) -> dict:
        by_sub: dict[str, list[_Row]] = defaultdict(list)
        for r in self.rows:
            by_sub[r.subtype].append(r)
        subtypes: dict[str, dict] = {}
        for st, rows in sorted(by_sub.items()):
            d: dict[str, Any] = {
                "group": rows[0].group, "score_type": rows[0].score_type, "n": len(rows),
                "accuracy": round(sum(r.score.score for r in rows) / len(rows), 4),
                "n_unanswered": sum(not r.score.answered for r in rows),
            }
            if rows[0].score_type == "numeric":
                d["mean_relative_accuracy"] = d["accuracy"]
                for t in TOLERANCES:
                    d[f"within_{int(round(t * 100))}"] = round(sum(r.score.hit(t) for r in rows) / len(rows), 4)
            subtypes[st] = d
        groups: dict[str, dict] = {}
        for g in sorted({r.group for r in self.rows}):
            sts = [d for d in subtypes.values() if d["group"] == g]
            groups[g] = _summary(sts)
        return {"overall": _summary(list(subtypes.values())), "by_group": groups, "by_subtype": subtypes}


def _summary(sts: list[dict]) -> dict:
    n = sum(d["n"] for d in sts)
    if not n:
        return {"n": 0, "accuracy": None, "macro_accuracy": None, "n_subtypes": 0}
    return {"n": n, "accuracy": round(sum(d["accuracy"] * d["n"] for d in sts) / n, 4),
            "macro_accuracy": round(sum(d["accuracy"] for d in sts) / len(sts), 4), "n_subtypes": len(sts)}


# --- DeepTumorVQA files --------------------------------------------------------------------------
class BenchQuestion(BaseModel):
    """One DeepTumorVQA question (read tolerantly: unknown fields are kept, v1 field names accepted)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    qid: str
    image_id: str
    question: str
    answer: Any = None
    mc_question: str | None = None
    correct_option: str | None = None
    question_type: str | None = None
    question_subtype: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _v1_names(cls, d: Any) -> Any:
        if isinstance(d, dict):
            d = dict(d)
            if "qid" not in d and "question_id" in d:
                d["qid"] = d["question_id"]
            if "mc_question" not in d and "multiple_choice_question" in d:
                d["mc_question"] = d["multiple_choice_question"]
        return d

    @field_validator("qid", "image_id", mode="before")
    @classmethod
    def _str(cls, v: Any) -> str:
        return str(v)


class BenchResult(BaseModel):
    """One prediction in DeepTumorVQA's results format (written strictly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qid: str
    image_id: str
    question_subtype: str | None
    question_type: str | None
    raw_output: str
    pred_answer: str
    correct_option: str | None = None
    answer: str | None = None
    status: str | None = Field(None, description="radagent: answered / cannot_be_determined / unmapped_question")
    finding_ids: list[str] = []
    rule: str | None = None


def read_questions(path: str | Path) -> list[BenchQuestion]:
    """Questions from ``{"questions": [...]}``, a bare JSON list, or JSON lines."""
    p = Path(path)
    text = p.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        if "questions" not in data:
            raise ValueError(f"{p}: expected a 'questions' list, found keys {sorted(data)}")
        data = data["questions"]
    if not isinstance(data, list):
        raise ValueError(f"{p}: expected a list of questions, got {type(data).__name__}")
    return [BenchQuestion.model_validate(q) for q in data]


def write_results(path: str | Path, results: Iterable[BenchResult], metrics: dict | None = None) -> Path:
    p = Path(path)
    out: dict[str, Any] = {}
    if metrics is not None:
        out["metrics"] = metrics
    rows = [r.model_dump() for r in results]
    out["n_processed"] = len(rows)
    out["results"] = rows
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(p)
    return p


def read_results(path: str | Path) -> list[BenchResult]:
    """Results from ``{"results": [...]}``; fields BenchResult does not know are dropped."""
    data = json.loads(Path(path).read_text())
    rows = data["results"] if isinstance(data, dict) else data
    known = set(BenchResult.model_fields)
    out = []
    for r in rows:
        d = {k: v for k, v in r.items() if k in known}
        for k in ("qid", "image_id", "raw_output", "pred_answer"):
            d[k] = "" if d.get(k) is None else str(d[k])
        for k in ("correct_option", "answer"):
            if d.get(k) is not None:
                d[k] = str(d[k])
        d.setdefault("question_subtype", None)
        d.setdefault("question_type", None)
        out.append(BenchResult.model_validate(d))
    return out


def score_type_of(subtype: str | None, fmt: Literal["mc", "freeform"]) -> ScoreType:
    if fmt == "mc":
        return "choice"
    from reasoning.vqa import SUBTYPES, canonical_subtype

    try:
        return SUBTYPES[canonical_subtype(subtype or "")].answer_type  # type: ignore[return-value]
    except ValueError:
        return "categorical"


def score_results(results: Iterable[BenchResult], questions: Iterable[BenchQuestion],
                  fmt: Literal["mc", "freeform"]) -> dict:
    """Aggregate metrics of results against the questions they answer (matched by qid)."""
    index = {q.qid: q for q in questions}
    m = VQAMetric()
    for r in results:
        q = index.get(r.qid)
        if q is None:
            continue
        gold = q.correct_option if fmt == "mc" else q.answer
        m.add(q.question_subtype or "unknown", (q.question_type or "unknown").lower(), r.pred_answer or None, gold,
              score_type_of(q.question_subtype, fmt), q.qid)
    return m.aggregate()


def result_from_answer(q: BenchQuestion, a: Any, fmt: Literal["mc", "freeform"]) -> BenchResult:
    """A results row from a radagent ``reasoning.vqa.Answer`` (pred_answer is '' when not answered)."""
    pred = "" if a.answer is None else str(a.answer)
    return BenchResult(qid=q.qid, image_id=q.image_id, question_subtype=q.question_subtype, question_type=q.question_type,
                       raw_output=a.line(), pred_answer=pred, correct_option=q.correct_option,
                       answer=None if q.answer is None else str(q.answer), status=a.status,
                       finding_ids=list(a.finding_ids), rule=a.rule)
