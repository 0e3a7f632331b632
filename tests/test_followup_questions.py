"""Change-over-time questions answered from a Comparison (reasoning.comparison), refused without one.

The pair (tests/followup_cases.py) is real CT with spheres of known radius at two time points, analyzed
by the real pipeline; the Comparison is built through the model's constructor from those findings.
Answers are checked against the measured findings and against the analytic sphere diameters."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent import case
from agent.cli import main
from reasoning import comparison as rc
from reasoning.vqa import Question, answer
from tests.followup_cases import RADII, constructed, nearest, pair_fixture

pair = pair_fixture("followup")


def _ids(p):
    f0, f1 = (c.findings for c in p["cases"])
    return {k: (nearest(f0, p["centres"][k]) if RADII[k][0] else None, nearest(f1, p["centres"][k]) if RADII[k][1] else None)
            for k in RADII}


def _les(findings, lid):
    return next(x for x in findings.lesions if x.id == lid)


def test_grown_by_how_much(pair):
    f0, f1 = (c.findings for c in pair["cases"])
    c = pair["comparison"]
    a0, a1 = _ids(pair)["A"]
    measured = _les(f1, a1).long_axis_mm - _les(f0, a0).long_axis_mm
    a = answer(f1, f"Has {a1} grown since the prior scan?", comparison=c)
    assert (a.status, a.answer, a.answer_type) == ("answered", "yes", "binary")
    assert "T1" in a.finding_ids and a1 in a.finding_ids
    mm = answer(f1, f"By how much has {a1} grown since the prior, in mm?", comparison=c)
    assert mm.answer == pytest.approx(round(measured, 1)) and mm.unit == "mm"
    analytic = 2 * (RADII["A"][1] - RADII["A"][0])  # 8 mm
    assert abs(mm.answer - analytic) <= pair["spacing"][0]  # one voxel (3 mm)
    pct = answer(f1, f"By how many percent has {a1} grown since the prior?", comparison=c)
    assert pct.unit == "%" and pct.answer == pytest.approx(round(measured / _les(f0, a0).long_axis_mm * 100, 1))
    vol = answer(f1, f"By how much has the volume of {a1} increased since the prior?", comparison=c)
    assert vol.unit == "mL" and vol.answer == pytest.approx(round(_les(f1, a1).volume_ml - _les(f0, a0).volume_ml, 2))
    # the liver's lesion without an id: the largest tracked liver lesion (A)
    assert answer(f1, "Has the liver lesion grown since the prior scan?", comparison=c).finding_ids == ["T1", a1]


def test_shrunk_new_disappeared(pair):
    f1 = pair["cases"][1].findings
    c = pair["comparison"]
    ids = _ids(pair)
    b1 = ids["B"][1]
    assert answer(f1, f"Has {b1} shrunk since the prior?", comparison=c).answer == "yes"
    assert answer(f1, f"Has {b1} grown since the prior?", comparison=c).answer == "no"
    new = answer(f1, "Are there new lesions since the prior study?", comparison=c)
    assert new.answer == "yes" and new.finding_ids == ["T4", ids["S"][1]]
    assert answer(f1, "Is there a new lesion in the liver?", comparison=c).answer == "no"
    gone = answer(f1, "Has any lesion disappeared since the prior?", comparison=c)
    assert gone.answer == "yes" and gone.finding_ids == ["T3"]
    # the new lesion has no prior size: its growth is refused, not 'no'
    g = answer(f1, f"Has {ids['S'][1]} grown since the prior?", comparison=c)
    assert g.status == "cannot_be_determined" and "is new" in g.reason


def test_counts_and_prior_size(pair):
    f0, f1 = (c.findings for c in pair["cases"])
    c = pair["comparison"]
    ids = _ids(pair)
    n = answer(f1, "How many new lesions are there since the prior?", comparison=c)
    assert (n.answer, n.answer_type) == (1, "numeric")
    assert answer(f1, "How many lesions have disappeared since the prior?", comparison=c).answer == 1
    a0, a1 = ids["A"]
    p = answer(f1, f"What was the diameter of {a1} on the prior scan?", comparison=c)
    assert p.unit == "mm" and p.answer == pytest.approx(round(_les(f0, a0).long_axis_mm, 1))
    v = answer(f1, f"What was the volume of {a1} on the prior scan?", comparison=c)
    assert v.unit == "mL" and v.answer == pytest.approx(round(_les(f0, a0).volume_ml, 2))
    s = answer(f1, f"What was the diameter of {ids['S'][1]} on the prior scan?", comparison=c)
    assert s.status == "cannot_be_determined" and "no measured prior size" in s.reason


def test_recist_and_nadir(pair):
    f1 = pair["cases"][1].findings
    c = pair["comparison"]
    r = answer(f1, "What is the RECIST response category?", comparison=c)
    assert r.answer == "PD" and r.answer_type == "categorical" and "PD: new lesion" in r.explanation
    nadir = answer(f1, "What is the nadir sum of diameters?", comparison=c)
    assert nadir.unit == "mm" and nadir.answer == pytest.approx(round(c.recist.nadir_sum_mm, 1))
    # multiple choice: the letter of the matching category
    mc = answer(f1, "What is the overall response? A) complete response B) partial response C) stable disease "
                    "D) progressive disease", comparison=c)
    assert mc.answer == "D"


def test_refusals(pair):
    f1 = pair["cases"][1].findings
    c = pair["comparison"]
    for q in ("Has the liver lesion grown since the prior scan?", "Are there new lesions?", "What is the RECIST response category?",
              "By how much has it grown since the prior?", "What is the nadir sum of diameters?"):
        a = answer(f1, q)  # one time point: refused, never 'yes'/'no'
        assert a.status == "cannot_be_determined" and "no prior study" in a.reason, q
    assert answer(f1, "Has L9 grown since the prior?", comparison=c).status == "cannot_be_determined"
    no_recist = c.model_copy(update={"recist": None, "warnings": ["registration refused"]})
    a = answer(f1, "What is the RECIST response category?", comparison=no_recist)
    assert a.status == "cannot_be_determined" and "registration refused" in a.reason
    refused = constructed(pair, registration_refused="field-of-view overlap 0.12 < 0.5")
    refused = refused.model_copy(update={"lesions": [t for t in refused.lesions if t.state == "persisting"]})
    a = answer(f1, "Are there new lesions?", comparison=refused)
    assert a.status == "cannot_be_determined" and "overlap 0.12" in a.reason
    # a comparison made from other findings is refused
    other = c.model_copy(update={"studies": [c.studies[0], c.studies[1].model_copy(update={"n_lesions": 7})]})
    assert answer(f1, "Are there new lesions?", comparison=other).status == "cannot_be_determined"
    t1 = c.tracked("T1")
    moved = t1.model_copy(update={"measurements": [t1.measurements[0], t1.measurements[1].model_copy(
        update={"long_axis_mm": t1.measurements[1].long_axis_mm + 1})]})
    a = answer(f1, "Are there new lesions?", comparison=c.model_copy(update={"lesions": [moved] + c.lesions[1:]}))
    assert a.status == "cannot_be_determined" and "not made from these findings" in a.reason


def test_resolution_and_lower_bound(pair):
    """A change within one in-plane voxel is 'stable'; a lower bound decides only when the bound does."""
    f1 = pair["cases"][1].findings
    c = pair["comparison"]
    t1 = c.tracked("T1")
    m0, m1 = t1.measurements
    small = t1.model_copy(update={"measurements": [m0.model_copy(update={"long_axis_mm": m1.long_axis_mm - 2.9}), m1]})
    cc = c.model_copy(update={"lesions": [small] + c.lesions[1:]})
    lid = m1.lesion_id
    assert answer(f1, f"Has {lid} grown since the prior?", comparison=cc).answer == "no"
    assert answer(f1, f"Is {lid} stable since the prior?", comparison=cc).answer == "yes"
    bound_now = t1.model_copy(update={"measurements": [m0, m1.model_copy(update={"size_qualifier": "lower_bound"})]})
    assert answer(f1, f"Has {lid} grown since the prior?",
                  comparison=c.model_copy(update={"lesions": [bound_now] + c.lesions[1:]})).answer == "yes"
    bound_then = t1.model_copy(update={"measurements": [m0.model_copy(update={"size_qualifier": "lower_bound"}), m1]})
    a = answer(f1, f"Has {lid} grown since the prior?", comparison=c.model_copy(update={"lesions": [bound_then] + c.lesions[1:]}))
    assert a.status == "cannot_be_determined" and "lower bound" in a.reason
    na = t1.model_copy(update={"state": "not_assessable", "state_reason": "liver not imaged now"})
    a = answer(f1, f"Has {lid} grown since the prior?", comparison=c.model_copy(update={"lesions": [na] + c.lesions[1:]}))
    assert a.status == "cannot_be_determined" and "liver not imaged now" in a.reason


def test_typed_question_and_intent():
    assert rc.intent("Has it grown?") == "grown" and rc.intent("Any new lesion?") == "new"
    assert rc.intent("What is the nadir?") == "nadir" and rc.intent("RECIST category?") == "response"
    assert Question(subtype="change over time", organ="liver").subtype == "change over time"


def test_ask_cli_and_case_pick_up_comparison(pair, tmp_path):
    """`radagent ask OUT` reads OUT/comparison.json when present; case.ask takes a comparison."""
    out = pair["dirs"][1]
    f1 = pair["cases"][1].findings
    q = "Are there new lesions since the prior?"
    r = CliRunner().invoke(main, ["ask", str(out), q, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "cannot_be_determined"
    (out / "comparison.json").write_text(pair["comparison"].to_json())
    try:
        r = CliRunner().invoke(main, ["ask", str(out), q, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["answer"] == "yes"
        assert case.ask(f1, q, comparison=rc.load(out)).answer == "yes"
        (out / "comparison.json").write_text('{"schema_version": "9.9.9"}')
        r = CliRunner().invoke(main, ["ask", str(out), q])
        assert r.exit_code == 2 and "comparison.json" in r.output and "9.9.9" in r.output
    finally:
        (out / "comparison.json").unlink()


def test_chat_resolves_change_questions(pair):
    """The chat (deterministic engine) answers change questions from the comparison, with follow-ups."""
    f1 = pair["cases"][1].findings
    session = case.chat(f1, comparison=pair["comparison"])
    t = session.ask("Are there new lesions since the prior?")
    assert t.answer.answer == "yes" and "T4" in t.answer.finding_ids
    t = session.ask("What is the RECIST response category?")
    assert t.answer.answer == "PD"
    plain = case.chat(f1).ask("Are there new lesions since the prior?")
    assert plain.answer.status == "cannot_be_determined"


def test_questions_on_compare_output(pair):
    """The same questions on the Comparison perception.followup.compare makes of the pair (registration, matching,
    RECIST by part A), against the painted truth: A grew (+8 mm analytic), B shrank, the spleen lesion is new, the
    left-kidney lesion disappeared, a new lesion makes the overall response PD."""
    c = case.compare([pair["dirs"][0]], pair["dirs"][1])
    f0, f1 = (x.findings for x in pair["cases"])
    ids = {k: (nearest(f0, pair["centres"][k]) if RADII[k][0] else None, nearest(f1, pair["centres"][k]) if RADII[k][1]
               else None) for k in RADII}
    a1, b1, s1 = ids["A"][1], ids["B"][1], ids["S"][1]
    assert answer(f1, f"Has {a1} grown since the prior?", comparison=c).answer == "yes"
    mm = answer(f1, f"By how much has {a1} grown since the prior, in mm?", comparison=c)
    assert abs(mm.answer - 2 * (RADII["A"][1] - RADII["A"][0])) <= pair["spacing"][0]
    assert answer(f1, f"Has {b1} shrunk since the prior?", comparison=c).answer == "yes"
    new = answer(f1, "Are there new lesions?", comparison=c)
    assert new.answer == "yes" and s1 in new.finding_ids
    assert answer(f1, "Is there a new lesion in the liver?", comparison=c).answer == "no"
    gone = answer(f1, "Has any lesion disappeared since the prior?", comparison=c)
    assert gone.answer == "yes" and "kidney left" in gone.explanation
    assert answer(f1, "What is the RECIST response category?", comparison=c).answer == "PD"
