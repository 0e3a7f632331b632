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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOLERANCES: tuple[float, ...] = (0.05, 0.10, 0.20, 0.50)
Fmt = Literal["mc", "freeform"]
ScoreType = Literal["choice", "numeric", "binary", "categorical"]

# --- parsing predictions (as DeepTumorVQA's eval/metrics.py reads them) ----------------------------
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_NUMBER = re.compile(r"-?\d+\.?\d*")
_LETTER = re.compile(r"\b([A-D])\b")


def strip_think(text: str) -> str:
    return _THINK.sub("", str(text)).strip()


def extract_letter(text: Any) -> str:
    """The option letter A-D of a prediction ('' if none): its first character when A-D (any case), else
    a standalone A-D word."""
    s = strip_think(str(text or "")).upper()
    if not s:
        return ""
    if s[0] in "ABCD":
        return s[0]
    m = _LETTER.search(s)
    return m.group(1) if m else ""


def extract_number(text: Any) -> float | None:
    """The first number in the text (None if none)."""
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
    """'yes' / 'no' / '': a leading yes/no (so 'not ...' and 'none' read 'no'), else a yes/no word."""
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
                    d[f"within_{round(t * 100)}"] = round(sum(r.score.hit(t) for r in rows) / len(rows), 4)
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
    """One prediction in DeepTumorVQA's results format (written strictly). DeepTumorVQA's scorer reads
    ``pred_answer or raw_output``; an abstention has ``pred_answer`` empty and ``raw_output`` set to
    :func:`abstain_token`, which that scorer cannot read as any option, yes/no, number or category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qid: str
    image_id: str
    question_subtype: str | None
    question_type: str | None
    raw_output: str
    pred_answer: str
    correct_option: str | None = None
    answer: str | None = None
    status: str | None = Field(None, description="radagent: answered / cannot_be_determined / unmapped_question / no_case")
    reason: str | None = Field(None, description="radagent: why not answered")
    finding_ids: list[str] = []
    rule: str | None = None

    @property
    def prediction(self) -> str:
        """The text DeepTumorVQA's scorer reads: pred_answer, else raw_output."""
        return self.pred_answer or self.raw_output

    @property
    def abstained(self) -> bool:
        return self.status in ABSTAINED


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
        raise TypeError(f"{p}: expected a list of questions, got {type(data).__name__}")
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


# DeepTumorVQA's scorer (eval/metrics.py SUBTYPE_ANSWER_TYPE) scores these by another answer type than
# the one radagent answers in: 'fatty liver' is answered yes/no but scored as a category (exact text).
SCORED_AS = {"fatty liver": "categorical"}


def score_type_of(subtype: str | None, fmt: Literal["mc", "freeform"]) -> ScoreType:
    """How DeepTumorVQA's scorer scores a subtype: mc by letter; free form by its answer-type table (the
    42 DeepTumorVQA subtypes, :data:`SCORED_AS` where it differs from radagent's), every other subtype
    name as categorical, as that scorer does."""
    if fmt == "mc":
        return "choice"
    from reasoning.vqa import SUBTYPES

    spec = SUBTYPES.get(subtype or "")
    if spec is None or spec.source != "DeepTumorVQA":
        return "categorical"
    return SCORED_AS.get(spec.name, spec.answer_type)  # type: ignore[return-value]


def _official_numeric(pairs: list[tuple[str, str]]) -> dict:
    mras: list[float] = []
    hits = dict.fromkeys(TOLERANCES, 0)
    n_gold = 0
    for pred, gold in pairs:
        g = extract_number(gold)
        if g is None:  # a question without a numeric gold answer is counted, not scored
            continue
        n_gold += 1
        p = extract_number(pred)
        if p is None:
            mras.append(0.0)
            continue
        mras.append(relative_accuracy(p, g))
        for t in TOLERANCES:
            hits[t] += relative_error(p, g) <= t
    mra = round(sum(mras) / max(len(mras), 1), 4)
    return {"metric": "MRA", "mean_mra": mra,
            "tolerance_acc": {f"tol_{int(t * 100)}%": round(hits[t] / max(n_gold, 1), 4) for t in TOLERANCES},
            "n_total": len(pairs), "n_scored": n_gold, "accuracy": mra}


def _official_binary(pairs: list[tuple[str, str]]) -> dict:
    tp = fp = tn = fn = right = 0
    for pred, gold in pairs:
        g, p = extract_binary(gold), extract_binary(pred)
        right += bool(p) and p == g
        if g == "yes":
            tp, fn = tp + (p == "yes"), fn + (p != "yes")
        elif g == "no":
            fp, tn = fp + (p == "yes"), tn + (p != "yes")
    n = len(pairs)
    return {"metric": "exact_match", "accuracy": round(right / max(n, 1), 4), "sensitivity": round(tp / max(tp + fn, 1), 4),
            "specificity": round(tn / max(tn + fp, 1), 4), "n_total": n}


def _official_categorical(pairs: list[tuple[str, str]]) -> dict:
    exact = partial = 0
    for pred, gold in pairs:
        g, p = normalize_text(gold), normalize_text(pred)
        exact += g == p
        partial += g == p or bool(g and p and (g in p or p in g))
    n = len(pairs)
    return {"metric": "exact_match", "accuracy": round(exact / max(n, 1), 4),
            "partial_accuracy": round(partial / max(n, 1), 4), "n_total": n}


def _official_mc(pairs: list[tuple[str, str]]) -> dict:
    letters = [(extract_letter(pred), str(gold).strip().upper()) for pred, gold in pairs]
    n = len(pairs)
    return {"metric": "exact_match", "accuracy": round(sum(p == g for p, g in letters) / max(n, 1), 4),
            "n_parsed": sum(bool(p) for p, _ in letters), "n_total": n}


_OFFICIAL = {"choice": _official_mc, "numeric": _official_numeric, "binary": _official_binary,
             "categorical": _official_categorical}


def score_results(results: Iterable[BenchResult], questions: Iterable[BenchQuestion],
                  fmt: Literal["mc", "freeform"]) -> dict:
    """radagent's own score of results against the questions they answer (matched by qid), computed and
    named as DeepTumorVQA's scorer (``eval/metrics.py::aggregate``) computes and names it:
    ``overall`` {accuracy, n_total, n_subtypes} (question-weighted), ``by_super_type`` {accuracy, n_total}
    keyed by the file's ``question_type``, ``by_subtype`` its per-type dicts (numeric: mean_mra and
    tolerance_acc, here also ``accuracy`` = mean_mra, the figure the aggregate weights). The prediction is
    ``pred_answer or raw_output`` as there. ``radagent`` adds what that scorer does not count:
    abstentions (cannot be determined / unmapped / no case), per status and per subtype."""
    index = {q.qid: q for q in questions}
    pairs: dict[str | None, list[tuple[str, str]]] = defaultdict(list)
    abst: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    n_answered = 0
    for r in results:
        q = index.get(r.qid)
        if q is None:
            continue
        st = q.question_subtype
        gold = q.correct_option if fmt == "mc" else q.answer
        pairs[st].append((r.prediction, str(gold)))  # str(None) == "None", as that scorer writes it
        if r.abstained:
            abst[st][r.status or ""] += 1
        else:
            n_answered += 1
    by_subtype = {st: _OFFICIAL[score_type_of(st, fmt)](p) for st, p in pairs.items()}
    by_super: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for st, m in by_subtype.items():
        group = next((q.question_type for q in index.values() if q.question_subtype == st), None)
        if group:
            by_super[group].append((m["accuracy"], m["n_total"]))
    n_total = sum(m["n_total"] for m in by_subtype.values())
    by_status: dict[str, int] = defaultdict(int)
    for d in abst.values():
        for k, v in d.items():
            by_status[k] += v
    return {
        "overall": {"accuracy": round(sum(m["accuracy"] * m["n_total"] for m in by_subtype.values()) / max(n_total, 1), 4),
                    "n_total": n_total, "n_subtypes": len(by_subtype)},
        "by_super_type": {g: {"accuracy": round(sum(a * n for a, n in v) / max(sum(n for _, n in v), 1), 4),
                              "n_total": sum(n for _, n in v)} for g, v in by_super.items()},
        "by_subtype": by_subtype,
        "radagent": {"n_answered": n_answered, "n_abstained": sum(by_status.values()), "abstained_by_status": dict(by_status),
                     "abstained_by_subtype": {str(st): dict(d) for st, d in abst.items()}},
    }


# --- results rows from radagent answers ------------------------------------------------------------
ABSTAINED = ("cannot_be_determined", "unmapped_question", "no_case")
_SIDED = re.compile(r"^(?P<base>[a-z_]+?)_(?P<side>left|right)$")


def abstain_token(status: str) -> str:
    """What an abstention is written as: ``[abstained: <status>]``. DeepTumorVQA's scorer reads a letter
    from a leading A-D or any standalone A-D word, yes/no from a leading 'yes'/'no' (so 'not', 'none') or
    any such word, a number from the first digits; this text has none of them and equals no category."""
    if status not in ABSTAINED:
        raise ValueError(f"abstention status {status!r}: expected one of {', '.join(ABSTAINED)}")
    return f"[abstained: {status}]"


def benchmark_spelling(value: Any) -> str:
    """A categorical answer as DeepTumorVQA writes it: 'liver_segment_8' -> 'segment 8', 'pancreas_head'
    -> 'pancreas head', 'kidney_right' -> 'right kidney', 'small_bowel' -> 'small bowel'."""
    from reasoning.vocabulary import SUBSEGMENTS, segment_benchmark

    s = str(value)
    if s in SUBSEGMENTS:
        return segment_benchmark(s)
    m = _SIDED.match(s)
    if m:
        return f"{m['side']} {m['base'].replace('_', ' ')}"
    return s.replace("_", " ")


def abstained_result(q: BenchQuestion, status: str, reason: str, a: Any = None) -> BenchResult:
    """The row of an abstention (``a``: the radagent Answer, for its evidence)."""
    return BenchResult(qid=q.qid, image_id=q.image_id, question_subtype=q.question_subtype, question_type=q.question_type,
                       raw_output=abstain_token(status), pred_answer="", correct_option=q.correct_option,
                       answer=None if q.answer is None else str(q.answer), status=status, reason=reason,
                       finding_ids=list(a.finding_ids) if a is not None else [], rule=a.rule if a is not None else None)


def result_from_answer(q: BenchQuestion, a: Any, fmt: Literal["mc", "freeform"]) -> BenchResult:
    """A results row from a radagent ``reasoning.vqa.Answer``: the option letter (mc) or the answer in the
    benchmark's spelling (freeform). Not answered, or in mc answered with no option letter, is an
    abstention (a value such as 'body' would be read as option B)."""
    if a.status != "answered":
        return abstained_result(q, a.status, a.reason or a.status, a)
    if fmt == "mc" and a.answer_type != "choice":
        return abstained_result(q, "cannot_be_determined", f"computed {a.answer}{' ' + a.unit if a.unit else ''}, but the "
                                "question has no option to match (a multiple-choice answer is an option letter)", a)
    pred = benchmark_spelling(a.answer) if a.answer_type == "categorical" else str(a.answer)
    return BenchResult(qid=q.qid, image_id=q.image_id, question_subtype=q.question_subtype, question_type=q.question_type,
                       raw_output=a.line(), pred_answer=pred, correct_option=q.correct_option,
                       answer=None if q.answer is None else str(q.answer), status=a.status,
                       finding_ids=list(a.finding_ids), rule=a.rule)


# --- answering a benchmark question ---------------------------------------------------------------
def no_case_result(q: BenchQuestion, why: str) -> BenchResult:
    """The row for a question whose case has no findings: an abstention."""
    return abstained_result(q, "no_case", why)


def ask_text(findings, text: str, subtype: str | None, fmt: Fmt):
    """radagent's Answer to one question text (options inside the text for mc), typed by ``subtype`` when given."""
    from reasoning.vqa import Answer, answer, parse_question, split_choices

    body, opts = split_choices(text) if fmt == "mc" else (text, [])
    choices = [f"{o.letter}) {o.text}" for o in opts] or None
    if not subtype:
        return answer(findings, body, choices)
    try:
        q = parse_question(body, subtype=subtype)  # that type; only its parameters come from the text
    except ValueError as e:
        return Answer(status="unmapped_question", explanation="the question's subtype is not a radagent question type",
                      reason=f"subtype {subtype!r} not supported: {e}")
    if q is None:
        return Answer(status="unmapped_question", explanation="the text does not give valid parameters for its subtype",
                      reason=f"the parameters read from the text are not valid for subtype {subtype!r}")
    return answer(findings, q, choices)


def answer_bench_question(findings, q: BenchQuestion, fmt: Fmt) -> BenchResult:
    """One DeepTumorVQA question answered from ``findings``: its subtype used, its text read for parameters."""
    text = (q.mc_question or q.question) if fmt == "mc" else q.question
    return result_from_answer(q, ask_text(findings, text, q.question_subtype, fmt), fmt)
