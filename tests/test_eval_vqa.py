"""`radagent eval vqa` on a DeepTumorVQA-format question file; gold answers from the case masks."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from scipy import ndimage

from agent.cli import main
from tests.cases import build_case


def test_eval_vqa_writes_benchmark_results(tmp_path):
    c = build_case(tmp_path / "src")
    m, hu = c["masks"], c["hu"]
    cases = tmp_path / "cases"
    r = CliRunner().invoke(main, ["analyze", str(c["folder"] / "ct.nii.gz"), "--masks", str(c["folder"]), "-o", str(cases / "case01")])
    assert r.exit_code == 0, r.output
    # gold from the masks: kidney lesions (components of both kidney lesion masks), spleen host mean HU
    n_kidney = sum(ndimage.label(m[k], structure=np.ones((3, 3, 3)))[1] for k in ("kidney_lesion", "kidney_cyst_right"))
    all_les = np.any([m[k] for k in m if k.endswith(("lesion", "tumor", "cyst_right", "tumor_aorta"))], axis=0)
    host = m["spleen"] & ~all_les  # host HU region (README): organ minus lesions, eroded by one 3 mm voxel
    core = ndimage.binary_erosion(host, structure=np.ones((3, 3, 3), bool), border_value=0)
    spleen_hu = float(hu[core if core.sum() >= 20 else host].mean())
    qs = {"questions": [
        {"qid": "1", "image_id": "case01", "question": "How many lesions are in the kidneys?", "answer": str(n_kidney),
         "mc_question": f"How many lesions are in the kidneys? A) {n_kidney + 2} B) {n_kidney} C) {n_kidney + 1} D) 0",
         "correct_option": "B", "question_type": "Visual Reasoning", "question_subtype": "lesion counting"},
        {"qid": "2", "image_id": "case01", "question": "What is the mean HU of the spleen?", "answer": f"{spleen_hu:.1f}",
         "mc_question": f"What is the mean HU of the spleen? A) {spleen_hu:.1f} B) {spleen_hu + 40:.1f} C) {spleen_hu - 40:.1f} D) {spleen_hu + 80:.1f}",
         "correct_option": "A", "question_type": "Measurement", "question_subtype": "organ HU measurement"},
        {"qid": "3", "image_id": "missing_case", "question": "Is there a lesion in the liver?", "answer": "yes",
         "mc_question": "Is there a lesion in the liver? A) yes B) no", "correct_option": "A",
         "question_type": "Recognition", "question_subtype": "liver lesion existence"},
    ]}
    qf = tmp_path / "questions.json"
    qf.write_text(json.dumps(qs))
    for fmt in ("mc", "freeform"):
        out = tmp_path / f"results_{fmt}.json"
        r = CliRunner().invoke(main, ["eval", "vqa", str(qf), "--cases", str(cases), "--format", fmt, "-o", str(out)])
        assert r.exit_code == 0, r.output
        res = json.loads(out.read_text())
        rows = {x["qid"]: x for x in res["results"]}
        assert set(rows) == {"1", "2", "3"}
        # a question without a case is an abstention the official scorer cannot credit (not 'no' from "no findings")
        assert rows["3"]["status"] == "no_case" and rows["3"]["pred_answer"] == ""
        assert rows["3"]["raw_output"] == "[abstained: no_case]" and "missing_case" in rows["3"]["reason"]
        if fmt == "mc":
            assert rows["1"]["pred_answer"] == "B" and rows["2"]["pred_answer"] == "A"
        else:
            assert float(rows["1"]["pred_answer"]) == n_kidney
            assert abs(float(rows["2"]["pred_answer"]) - spleen_hu) <= 0.01
        # scored and named as DeepTumorVQA's scorer does (eval/metrics.py aggregate), abstentions counted apart
        met = res["metrics"]
        sub = met["by_subtype"]
        assert sub["liver lesion existence"]["accuracy"] == 0.0 and sub["liver lesion existence"]["n_total"] == 1
        assert met["radagent"]["n_abstained"] == 1 and met["radagent"]["abstained_by_status"] == {"no_case": 1}
        assert set(met["by_super_type"]) == {"Visual Reasoning", "Measurement", "Recognition"}  # the file's spelling, as there
        assert met["overall"]["n_total"] == 3 and met["overall"]["n_subtypes"] == 3
        hu_score = sub["organ HU measurement"]
        if fmt == "mc":
            assert sub["lesion counting"] == {"metric": "exact_match", "accuracy": 1.0, "n_parsed": 1, "n_total": 1}
            assert hu_score["accuracy"] == 1.0 and met["overall"]["accuracy"] == round(2 / 3, 4)
        else:
            assert sub["lesion counting"]["mean_mra"] == 1.0 and sub["lesion counting"]["tolerance_acc"]["tol_5%"] == 1.0
            assert hu_score["tolerance_acc"]["tol_5%"] == 1.0 and hu_score["mean_mra"] > 0.99
            assert met["overall"]["accuracy"] == round((1.0 + hu_score["mean_mra"]) / 3, 4)
