"""DeepTumorVQA's own evaluator agrees with radagent's (issue 12, benchmark part).

A DeepTumorVQA-format question file over the real-CT test case (tests/cases.py::build_case: real CT,
synthetic lesions of known geometry) is generated here, with every DeepTumorVQA subtype the case can
answer (multiple choice and free form) and the subtypes it cannot (the findings must abstain). Truth
comes from the case's masks and HU array through this suite's own reading of them
(tests/test_vqa.py::Truth: connected components, voxel counts, numpy means, mask overlaps), never
from radagent.

The file is run (a) through ``radagent eval vqa`` (subtype field used) and (b) through the benchmark's
own evaluator path: its ``HFVLMEvaluator.run`` wraps each question with its own prompt builder (2D
image, 2D video, 3D volume; mc and free form), radagent answers the prompt text alone, and the
benchmark's own ``eval/metrics.py`` scores it. Asserted: radagent's own score equals the official
one on both paths, both paths score the same, and each question is right or (where the truth says
so) abstained; abstentions are never credited by the official scorer.

The vendored evaluator is imported from ../shared/vendor/deeptumorvqa/src (required like the data:
missing, it skips locally and fails where RADAGENT_REQUIRE includes ``data``).

Spellings and conventions of the gold answers written here (the benchmark's free-text answers are
not in the vendored code; where it shows them they are followed): sub-segments "segment 8"
(issue 12), sided organs "right adrenal gland" (its "right kidney"), attenuation and clustering
words of its knowledge base (``eval/tools.py``), "largest lesion slice" = the 0-based axial index of
the slice of largest lesion area (first of equal areas), "tumor organ HU difference" signed (lesion
minus organ). Categorical subtypes whose free-text spelling the vendored code does not show
(steatosis grade, kidney asymmetry, pancreas part) are asked as multiple choice only.
"""

from __future__ import annotations

import csv
import importlib
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from agent.cli import main
from eval.vqa_metrics import (
    BenchQuestion,
    abstain_token,
    benchmark_spelling,
    read_results,
    score_results,
)
from tests.cases import build_case
from tests.require import require_path
from tests.test_vqa import CANNOT, Truth, int_options, num_options

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO.parent / "shared" / "vendor" / "deeptumorvqa"
IMAGE_ID = "case01"
MODES = ("2d_image", "2d_video", "3d_volume")


def _vendored(name: str):
    """A module of the vendored DeepTumorVQA package (its src folder first on sys.path)."""
    src = require_path(VENDOR / "src" / "deeptumorvqa", "data", "../shared/vendor/deeptumorvqa (see ../shared/vendor/README.md)")
    if str(src.parent) not in sys.path:
        sys.path.insert(0, str(src.parent))
    mod = importlib.import_module(name)
    assert Path(mod.__file__).resolve().is_relative_to(src.resolve()), f"{name} imported from {mod.__file__}, not the vendor folder"
    return mod


@pytest.fixture(scope="module")
def dtv():
    return {"metrics": _vendored("deeptumorvqa.eval.metrics"), "prompt": _vendored("deeptumorvqa.data.prompt"),
            "evaluator": _vendored("deeptumorvqa.eval.vqa_evaluator")}


# --- the question file ----------------------------------------------------------------------------
@dataclass
class Q:
    subtype: str
    text: str
    gold: object  # the truth (value) or CANNOT
    options: list[str] = field(default_factory=list)  # mc options, the correct one first
    freeform: str | None = None  # the free-form gold answer as the benchmark writes it (None: mc only)
    tol: float = 0.0  # free form: relative tolerance of a numeric answer (rounding in Findings)


def yes_no(v: str) -> list[str]:
    return ["Yes", "No"] if v == "yes" else ["No", "Yes"]


def largest_area_slice(vox: np.ndarray) -> int:
    """0-based axial index of the slice where the component's area is largest (first of equal areas)."""
    return int(np.argmax(vox.sum(axis=(0, 1))))


def questions(T: Truth) -> list[Q]:
    """Every DeepTumorVQA subtype the case answers (and those it must not), truth from the masks."""
    out: list[Q] = []

    def binary(sub, text, v):
        out.append(Q(sub, text, v, yes_no(v), v))

    def cannot(sub, text, trap_options, trap_free):
        """A question the findings cannot answer: mc options whose gold letter is C (an abstention read as
        'C' would be credited), a free-form gold an abstention might be read as ('no', a number)."""
        out.append(Q(sub, text, CANNOT, trap_options, trap_free))

    kid = T.lesions
    # recognition
    binary("kidney lesion existence", "Is there evidence of a lesion in the right kidney?", "yes" if kid("kidney_right") else "no")
    binary("kidney lesion existence", "Is there evidence of a lesion in the left kidney?", "yes" if kid("kidney_left") else "no")
    binary("kidney cyst existence", "Is there a cyst in the left kidney?",
           "yes" if any(T.kidney_class(c) == "cyst" for c in kid("kidney_left")) else "no")
    binary("kidney tumor existence", "Is there a tumor in the right kidney?",
           "yes" if any(T.kidney_class(c) == "tumor" for c in kid("kidney_right")) else "no")
    binary("kidney tumor existence", "Is there a tumor in the left kidney?",
           "yes" if any(T.kidney_class(c) == "tumor" for c in kid("kidney_left")) else "no")
    binary("liver lesion existence", "Is there evidence of a lesion in the liver?", "yes" if T.lesions("liver") else "no")
    binary("pancreatic lesion existence", "Is there a lesion in the pancreas?", "yes" if T.lesions("pancreas") else "no")
    # the pancreatic lesion is untyped (no PDAC/PNET mask), the colon is not searched, the spleen is cut by the scan edge
    cannot("PDAC existence", "Is there a pancreatic ductal adenocarcinoma (PDAC) in the pancreas?", ["Yes", "Maybe", "No"], "no")
    cannot("colon lesion existence", "Is there any lesion in the colon?", ["Yes", "Uncertain", "No"], "no")
    assert T.volume("spleen") is None
    cannot("splenomegaly detection", "Does this patient have splenomegaly?", ["Yes", "Borderline", "No"], "no")

    # measurement
    L = T.largest("liver")
    out.append(Q("lesion volume measurement", "What is the volume of the largest liver lesion in cm³?", L.volume,
                 num_options(L.volume, "cm³", "{:.3f}"), f"{L.volume:.3f}", 1e-3))
    for organ, text in (("spleen", "What is the mean HU value of the spleen?"), ("liver", "What is the mean HU value of the liver?")):
        v = T.host_mean(organ)
        out.append(Q("organ HU measurement", text, v, num_options(v, "HU"), f"{v:.2f}", 1e-3))
    r = T.host_mean("liver") / T.host_mean("spleen")
    out.append(Q("organ HU ratio", "What is the liver-to-spleen HU ratio?", r, num_options(r, "", "{:.3f}"), f"{r:.3f}", 2e-3))
    gb = T.volume("gallbladder")
    out.append(Q("organ volume measurement", "What is the volume of the gallbladder in cm³?", gb, num_options(gb, "cm³", "{:.1f}"),
                 f"{gb:.1f}", 2e-3))
    pv = T.volume("pancreas")
    pct = 100 * sum(c.volume for c in T.lesions("pancreas")) / pv
    out.append(Q("tumor burden percentage", "What percentage of the pancreas volume is occupied by tumor?", pct,
                 num_options(pct, "%"), f"{pct:.2f}", 3e-3))
    assert T.volume("liver") is None
    imaged = T.partial("liver")
    cannot("organ volume measurement", "What is the volume of the liver in cm³?",
           [f"{imaged * k:.0f} cm³" for k in (0.5, 0.8, 1.0, 1.6)], f"{imaged:.1f}")

    # visual reasoning
    adj = T.adjacent(L)
    assert adj, "the largest liver lesion touches an organ by construction"
    names = {"adrenal_gland_right": "right adrenal gland", "adrenal_gland_left": "left adrenal gland",
             "kidney_right": "right kidney", "kidney_left": "left kidney", "small_bowel": "small bowel"}
    a0 = names.get(adj[0], adj[0])
    out.append(Q("adjacent organ", "Which organ is adjacent to the largest liver lesion?", adj[0],
                 [a0.capitalize()] + [o for o in ("Stomach", "Spleen", "Left kidney", "Colon") if o.lower() != a0][:3], a0))
    cnt = {s: sum(T.in_segment(c, s) for c in T.lesions("liver")) for s in ("liver_segment_7", "liver_segment_8")}
    more = max(cnt, key=cnt.get)
    assert cnt[more] > min(cnt.values())
    out.append(Q("inter-segment comparison", "Which liver segment has more lesions, segment 7 or segment 8?", more,
                 [f"Segment {more[-1]}", f"Segment {({'7': '8', '8': '7'})[more[-1]]}", "Equal"], f"segment {more[-1]}"))
    att = T.attenuation(L)
    out.append(Q("largest lesion attenuation", "Is the largest liver lesion hypoattenuating, isoattenuating, or hyperattenuating "
                 "compared with the liver?", att, [att.capitalize()] + [a.capitalize() for a in
                                                   ("hypoattenuating", "isoattenuating", "hyperattenuating") if a != att], att))
    out.append(Q("largest lesion diameter", "What is the longest diameter of the largest liver lesion in mm?", L.long_axis,
                 [f"{L.long_axis * k:.1f} mm" for k in (1.0, 0.5, 1.6, 2.5)], f"{L.long_axis:.1f}", 5e-3))
    sh = T.shares(L)
    top = max(sh, key=sh.get)
    out.append(Q("largest lesion location", "Which liver segment contains the largest liver lesion?", top,
                 [f"Segment {top[-1]}"] + [f"Segment {n}" for n in (7, 8, 4, 2) if str(n) != top[-1]][:3], f"segment {top[-1]}"))
    P = T.largest("pancreas")
    shp = T.shares(P)
    topp = max(shp, key=shp.get)
    part = topp.split("_")[1].capitalize()
    out.append(Q("largest lesion location", "In which part of the pancreas is the largest pancreatic lesion located?", topp,
                 [part] + [p for p in ("Head", "Body", "Tail") if p != part]))
    z = largest_area_slice(L.vox)
    out.append(Q("largest lesion slice", "On which axial slice is the largest liver lesion biggest?", z,
                 [str(z), str(z + 6), str(max(z - 6, 0)), str(z + 12)], str(z)))
    n8 = cnt["liver_segment_8"]
    out.append(Q("lesion count by location", "How many lesions are located in liver segment 8?", n8, int_options(n8), str(n8)))
    for organ, text in (("liver", "How many lesions are in the liver?"), ("kidney", "How many lesions are there in the kidneys?")):
        n = len(T.lesions(organ))
        out.append(Q("lesion counting", text, n, int_options(n), str(n)))
    vols = [c.volume for c in T.lesions("liver")]
    binary("lesion outlier", "Is the largest liver lesion an outlier, much larger than the other liver lesions?",
           "yes" if len(vols) >= 3 and vols[0] >= 3 * vols[1] else "no")
    # clustering counts lesions per segment (DeepTumorVQA): > 50 % of the lesions in one segment -> highly clustered
    n_liver = len(T.lesions("liver"))
    clus = "highly clustered" if max(cnt.values()) > 0.5 * n_liver else None
    assert clus, "the case's liver lesions all reach segment 8 by construction"
    out.append(Q("liver lesion clustering", "Are the liver lesions clustered in one segment or widely distributed?", clus,
                 ["Highly clustered", "Somewhat clustered", "Widely distributed"], clus))
    lv, kv = sum(c.volume for c in T.lesions("liver")), sum(c.volume for c in T.lesions("kidney"))
    mo = "liver" if lv > kv else "kidney"
    out.append(Q("multi-organ lesion burden comparison", "Which organ has the greater lesion burden, the liver or the kidneys?", mo,
                 [mo.capitalize(), ("Kidney" if mo == "liver" else "Liver"), "Spleen", "Pancreas"], mo))
    n = len(T.lesions("liver")) + len(T.lesions("kidney"))
    out.append(Q("organ aggregation", "How many lesions are there in total in the liver and the kidneys?", n, int_options(n), str(n)))
    binary("organ enlargement", "Is the pancreas enlarged?", "yes" if pv > 100.0 else "no")
    d = T.diff(L)
    out.append(Q("tumor organ HU difference", "What is the HU difference between the largest liver lesion and the surrounding liver?",
                 d, [f"{d * k:.1f} HU" for k in (1.0, 0.5, 1.6, 2.5)], f"{d:.1f}", 2e-3))
    assert T.volume("kidney_left") is None
    cannot("kidney volume comparison", "Which kidney is larger, the left or the right?", ["Left kidney", "Equal", "Right kidney"],
           "right kidney")

    # medical reasoning (the case is non-contrast: its phase rule reads the aorta HU)
    assert T.f.study.contrast_phase.phase == "non_contrast"
    pp = "PDAC" if T.attenuation(P) == "hypoattenuating" else "PNET"
    out.append(Q("PDAC vs PNET classification", "Is the pancreatic lesion more likely a PDAC or a PNET?", pp,
                 [pp, {"PDAC": "PNET", "PNET": "PDAC"}[pp]], pp))
    lh, ls = T.host_mean("liver"), T.host_mean("liver") / T.host_mean("spleen")
    g = "G3" if lh < 39 or ls < 0.5 else "G2" if lh < 51 or ls < 0.8 else "G1" if lh < 58 or ls < 1.0 else "G0"
    binary("fatty liver", "Does the patient have fatty liver?", "yes" if g != "G0" else "no")
    grades = {"G0": "Normal (G0)", "G1": "Mild (G1)", "G2": "Moderate (G2)", "G3": "Severe (G3)"}
    out.append(Q("hepatic steatosis grading", "What is the grade of hepatic steatosis?", g,
                 [grades[g]] + [v for k, v in grades.items() if k != g]))
    for organ in ("kidney_left", "kidney_right"):
        k = T.kidney_class(T.largest(organ))
        out.append(Q("lesion type classification", f"Is the {organ.split('_')[1]} kidney lesion a cyst or a tumor?", k,
                     [k.capitalize(), "Tumor" if k == "cyst" else "Cyst"], k))
    ph, sp = T.host_mean("pancreas"), T.host_mean("spleen")
    assert ph > 0 and sp > 0
    binary("pancreatic steatosis", "Is there evidence of pancreatic steatosis?", "yes" if ph / sp < 0.70 else "no")
    K = T.largest("kidney")
    rm = "fat-containing" if K.mean < -10 else "simple cyst" if K.mean <= 20 else "indeterminate" if K.mean <= 70 else "hyperdense cyst"
    out.append(Q("renal mass characterization", "How would you characterize the renal mass based on its attenuation?", rm,
                 [rm.capitalize()] + [o for o in ("Simple cyst", "Indeterminate", "Hyperdense cyst", "Fat-containing")
                                      if o.lower() != rm][:3], rm))
    assert not [c for c in T.lesions("pancreas") if T.cystic(c)]
    cannot("pancreatic cyst resectability", "Should the pancreatic cyst be surgically resected?", ["Yes", "Follow-up", "No"], "no")
    cannot("pancreatic tumor staging", "What is the AJCC T stage of the pancreatic tumor?", ["T2", "T3", "T1", "T4"], "T1")
    cannot("portal hypertension assessment", "Are there imaging signs of portal hypertension?", ["Yes", "Equivocal", "No"], "no")
    cannot("splenomegaly grading", "How would you classify the splenic enlargement based on volume?",
           ["Mild", "Moderate", "Normal", "Severe"], "normal")
    return out


def question_file(qs: list[Q], groups: dict[str, str], seed: int = 12) -> list[dict]:
    """DeepTumorVQA records: options shuffled and written inside mc_question ('A: ... B: ...'); an
    abstention trap keeps its options in order (gold C)."""
    rng = random.Random(seed)
    rows = []
    for i, q in enumerate(qs):
        opts = list(q.options)
        if q.gold == CANNOT:
            gold = "C"
        else:
            rng.shuffle(opts)
            gold = "ABCD"[opts.index(q.options[0])]
        rows.append({
            "qid": f"{IMAGE_ID}_{i:03d}", "image_id": IMAGE_ID, "question_type": groups[q.subtype], "question_subtype": q.subtype,
            "question": q.text, "answer": q.freeform if q.freeform is not None else q.options[0],
            "mc_question": q.text + " " + " ".join(f"{'ABCD'[k]}: {o}" for k, o in enumerate(opts)), "correct_option": gold,
        })
    return rows


@pytest.fixture(scope="module")
def bench(tmp_path_factory, dtv):
    tmp = tmp_path_factory.mktemp("dtv")
    c = build_case(tmp / "src")
    cases = tmp / "cases"
    r = CliRunner().invoke(main, ["analyze", str(c["folder"] / "ct.nii.gz"), "--masks", str(c["folder"]), "-o", str(cases / IMAGE_ID)])
    assert r.exit_code == 0, r.output
    from agent.case import load

    T = Truth({**c, "findings": load(cases / IMAGE_ID).findings})
    schema = VENDOR / "metadata" / "subtype_schema.csv"
    groups = {row["subtype_name"]: row["task_group"].lower() for row in csv.DictReader(schema.open())}
    qs = questions(T)
    rows = question_file(qs, groups)
    qf = tmp / "test_qa.json"
    qf.write_text(json.dumps({"questions": rows}, indent=1))
    return {"tmp": tmp, "case": c, "cases": cases, "qs": qs, "rows": rows, "qfile": qf, "groups": groups}


def test_question_file_covers_the_case(bench):
    """Every DeepTumorVQA subtype the case can answer is asked; the ones it cannot are asked too."""
    asked = {q.subtype for q in bench["qs"]}
    answerable = {q.subtype for q in bench["qs"] if q.gold != CANNOT}
    assert len(answerable) >= 30 and asked <= set(bench["groups"])
    assert len({q.subtype for q in bench["qs"] if q.gold == CANNOT}) >= 8


# --- scoring helpers ------------------------------------------------------------------------------
def official(dtv, results: list[dict], rows: list[dict], fmt: str) -> dict:
    return dtv["metrics"].aggregate(results, {r["qid"]: r for r in rows}, fmt=fmt)


def same_score(ours: dict, theirs: dict) -> list[str]:
    """Where radagent's score differs from the official one (every official key must be equal)."""
    diffs = [f"overall: {ours['overall']} != {theirs['overall']}"] if ours["overall"] != theirs["overall"] else []
    if ours["by_super_type"] != theirs["by_super_type"]:
        diffs.append(f"by_super_type: {ours['by_super_type']} != {theirs['by_super_type']}")
    for st, m in theirs["by_subtype"].items():
        mine = {k: v for k, v in ours["by_subtype"].get(st, {}).items() if k in m}
        if mine != m:
            diffs.append(f"{st}: {mine} != {m}")
    return diffs


def right(dtv, q: Q, row: dict, pred: str, fmt: str) -> bool:
    """Is the prediction (as the official scorer reads it) right for this question?"""
    M = dtv["metrics"]
    if fmt == "mc":
        return M.extract_letter(pred) == row["correct_option"]
    if isinstance(q.gold, (int, float)) and not isinstance(q.gold, bool):
        p = M.extract_number(M.strip_think(pred))
        return p is not None and abs(p - float(q.gold)) <= q.tol * abs(float(q.gold)) + 1e-9
    if q.gold in ("yes", "no"):
        return M.extract_binary(pred) == q.gold
    return M.normalize_text(pred) == M.normalize_text(row["answer"])


def check_questions(dtv, bench, preds: dict[str, str], fmt: str, label: str) -> list[str]:
    """Each question right, each CANNOT question abstained (never credited): the wrong ones, described."""
    bad = []
    for q, row in zip(bench["qs"], bench["rows"]):
        if fmt == "freeform" and q.freeform is None:
            continue
        pred = preds.get(row["qid"], "")
        if q.gold == CANNOT:
            ok = pred.startswith("[abstained: ") and not right(dtv, q, row, pred, fmt)
        else:
            ok = right(dtv, q, row, pred, fmt)
        if not ok:
            bad.append(f"[{label}/{fmt}] {row['qid']} {q.subtype}: {row['mc_question' if fmt == 'mc' else 'question']!r} "
                       f"gold {row['correct_option'] if fmt == 'mc' else row['answer']!r} (truth {q.gold!r}) got {pred!r}")
    return bad


def rows_for(bench, fmt: str) -> list[dict]:
    return [r for q, r in zip(bench["qs"], bench["rows"]) if fmt == "mc" or q.freeform is not None]


# --- (a) radagent eval vqa ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def path_a(bench):
    out = {}
    for fmt in ("mc", "freeform"):
        qf = bench["tmp"] / f"questions_{fmt}.json"
        qf.write_text(json.dumps({"questions": rows_for(bench, fmt)}))
        res = bench["tmp"] / f"radagent_{fmt}.json"
        r = CliRunner().invoke(main, ["eval", "vqa", str(qf), "--cases", str(bench["cases"]), "--format", fmt, "-o", str(res)])
        assert r.exit_code == 0, r.output
        out[fmt] = json.loads(res.read_text())
    return out


@pytest.mark.parametrize("fmt", ["mc", "freeform"])
def test_radagent_eval_vqa_scored_as_the_official_scorer(dtv, bench, path_a, fmt):
    data = path_a[fmt]
    rows = rows_for(bench, fmt)
    theirs = official(dtv, data["results"], rows, fmt)
    assert not same_score(data["metrics"], theirs)
    assert set(data["metrics"]["by_subtype"]) == {r["question_subtype"] for r in rows}
    # radagent's own count of abstentions = the CANNOT questions, which the official scorer gives nothing
    n_cannot = sum(q.gold == CANNOT for q, r in zip(bench["qs"], bench["rows"]) if r in rows)
    assert data["metrics"]["radagent"]["n_abstained"] == n_cannot
    preds = {r["qid"]: r["pred_answer"] or r["raw_output"] for r in data["results"]}
    bad = check_questions(dtv, bench, preds, fmt, "eval vqa")
    print(f"\nradagent eval vqa ({fmt}): official overall {theirs['overall']}, by group {theirs['by_super_type']}")
    assert not bad, "\n".join(bad)


# --- (b) the benchmark's own evaluator path -------------------------------------------------------
def data_dir(bench, fmt: str) -> Path:
    """A --data-dir in the benchmark's layout: the question file, a 2D PNG (the CT's middle axial slice,
    W400/L50, its image id in a PNG text chunk), a video placeholder and the 3D CT (the case's own)."""
    from PIL import Image, PngImagePlugin

    root = bench["tmp"] / f"dtv_{fmt}"
    if root.exists():
        return root
    (root / "benchmark" / "images_2d" / "whole").mkdir(parents=True)
    (root / "benchmark" / "videos" / "whole").mkdir(parents=True)
    (root / "benchmark" / "ct" / IMAGE_ID).mkdir(parents=True)
    (root / "benchmark" / "test_qa.json").write_text(json.dumps({"questions": rows_for(bench, fmt)}))
    hu = bench["case"]["hu"]
    sl = np.clip((hu[:, :, hu.shape[2] // 2].T - (50 - 200)) / 400 * 255, 0, 255).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("image_id", IMAGE_ID)
    Image.fromarray(sl).save(root / "benchmark" / "images_2d" / "whole" / f"{IMAGE_ID}.png", pnginfo=info)
    (root / "benchmark" / "videos" / "whole" / f"{IMAGE_ID}.mp4").write_bytes(b"placeholder: radagent reads findings, not frames")
    (root / "benchmark" / "ct" / IMAGE_ID / "ct.nii.gz").symlink_to(bench["case"]["folder"] / "ct.nii.gz")
    return root


@pytest.fixture(scope="module")
def path_b(dtv, bench):
    from eval.deeptumorvqa import radagent_evaluator

    out = {}
    for fmt in ("mc", "freeform"):
        for mode in MODES:
            res = bench["tmp"] / f"official_{mode}_{fmt}.json"
            metrics = radagent_evaluator(bench["cases"], fmt).run(split="benchmark", input_mode=mode, fmt=fmt, output_path=res,
                                                                  data_dir=data_dir(bench, fmt), resume=False)
            out[(mode, fmt)] = (metrics, json.loads(res.read_text()))
    return out


@pytest.mark.parametrize("fmt", ["mc", "freeform"])
@pytest.mark.parametrize("mode", MODES)
def test_benchmark_evaluator_path_agrees(dtv, bench, path_a, path_b, mode, fmt):
    """The benchmark's own prompts around each question, its own scorer: equal to radagent's own score of
    the same outputs, equal to the score of `radagent eval vqa` (the prompt never changes the answer),
    and each question right or abstained."""
    metrics, saved = path_b[(mode, fmt)]
    rows = rows_for(bench, fmt)
    qs = [BenchQuestion.model_validate(r) for r in rows]
    prompts = {r["qid"]: dtv["prompt"].build_prompt(r, mode, fmt) for r in rows}
    assert all(r["question"] in p for r, p in zip(rows, prompts.values()))
    ours = score_results(read_results(bench["tmp"] / f"official_{mode}_{fmt}.json"), qs, fmt)
    assert not same_score(ours, metrics)
    preds = {r["qid"]: r["pred_answer"] or r["raw_output"] for r in saved["results"]}
    bad = check_questions(dtv, bench, preds, fmt, mode)
    eval_vqa = {r["qid"]: r["pred_answer"] or r["raw_output"] for r in path_a[fmt]["results"]}
    differ = [f"{qid}: prompt {prompts[qid]!r} -> {preds[qid]!r}, eval vqa -> {eval_vqa[qid]!r}"
              for qid in eval_vqa if preds.get(qid) != eval_vqa[qid]]
    print(f"\nofficial evaluator ({mode}, {fmt}): overall {metrics['overall']}, by group {metrics['by_super_type']}")
    assert not bad and not differ, "\n".join(bad + differ)
    assert not same_score(path_a[fmt]["metrics"], metrics)


# --- what the official scorer can and cannot credit -----------------------------------------------
def test_abstentions_are_never_credited(dtv):
    """An abstention is written so the official scorer reads no letter, no yes/no, no number and no
    category from it: scored 0 whatever the gold (also gold C and 'no', which today's 'cannot be
    determined: ...' text would have been credited with)."""
    M = dtv["metrics"]
    for status in ("cannot_be_determined", "unmapped_question", "no_case"):
        tok = abstain_token(status)
        assert (M.extract_letter(tok), M.extract_binary(tok), M.extract_number(tok)) == ("", "", None)
        rows = [{"qid": "1", "question_subtype": "lesion counting", "question_type": "visual reasoning", "correct_option": "C",
                 "answer": "0"},
                {"qid": "2", "question_subtype": "liver lesion existence", "question_type": "recognition", "correct_option": "B",
                 "answer": "no"},
                {"qid": "3", "question_subtype": "largest lesion location", "question_type": "visual reasoning", "correct_option": "A",
                 "answer": "segment 8"}]
        results = [{"qid": r["qid"], "pred_answer": "", "raw_output": tok} for r in rows]
        for fmt in ("mc", "freeform"):
            assert official(dtv, results, rows, fmt)["overall"]["accuracy"] == 0.0
            assert official(dtv, results, rows, fmt)["by_subtype"]["largest lesion location"].get("partial_accuracy", 0.0) == 0.0
    # the refusal this fixes: the old spelling is read as option C and as 'no'
    old = "cannot be determined: the spleen is cut by the scan edge; no volume"
    assert M.extract_letter(old) == "C" and M.extract_binary(old) == "no"
    with pytest.raises(ValueError, match="abstention status"):
        abstain_token("answered")


def test_scored_by_the_official_answer_types(dtv):
    """radagent's own scorer uses the official scorer's answer type for every subtype (mc: the letter)."""
    from eval.vqa_metrics import score_type_of

    table = dtv["metrics"].SUBTYPE_ANSWER_TYPE
    assert {st: score_type_of(st, "freeform") for st in table} == table
    assert score_type_of("vessel contact angle", "freeform") == "categorical"  # not in the table: categorical, as there
    assert score_type_of("lesion counting", "mc") == "choice"


def test_answers_in_the_benchmarks_spelling():
    assert benchmark_spelling("liver_segment_8") == "segment 8"
    assert benchmark_spelling("kidney_right") == "right kidney"
    assert benchmark_spelling("adrenal_gland_left") == "left adrenal gland"
    assert benchmark_spelling("small_bowel") == "small bowel"
    assert benchmark_spelling("highly clustered") == "highly clustered"


def test_unknown_subtype_is_unmapped_not_rerouted(bench):
    """A subtype radagent does not know is an abstention (unmapped), never answered by the text's route."""
    from agent.case import load
    from eval.vqa_metrics import answer_bench_question

    f = load(bench["cases"] / IMAGE_ID).findings
    q = BenchQuestion(qid="x", image_id=IMAGE_ID, question="How many lesions are in the liver?", answer="3",
                      mc_question="How many lesions are in the liver? A: 3 B: 4", correct_option="A",
                      question_type="visual reasoning", question_subtype="lesion echogenicity")
    for fmt in ("mc", "freeform"):
        r = answer_bench_question(f, q, fmt)
        assert r.status == "unmapped_question" and r.pred_answer == "" and r.raw_output == abstain_token("unmapped_question")
    # an mc question whose options are missing abstains instead of giving a value the scorer would read as a letter
    q2 = q.model_copy(update={"question_subtype": "largest lesion location", "mc_question": "Where is the largest pancreatic lesion?"})
    r2 = answer_bench_question(f, q2, "mc")
    assert r2.status in ("cannot_be_determined", "unmapped_question") and r2.pred_answer == ""
