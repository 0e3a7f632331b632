"""One chat engine (reasoning.agent.ChatSession over reasoning.vqa.followup) behind every surface,
and its follow-up resolution (issue 12).

- Follow-ups: an organ named in a message beats a pronoun; ordinals ("and the second largest?",
  "and the third?", "the smallest?") count all lesions of the organ in context whatever the
  previous question was; a vessel follow-up keeps or replaces the vessel; what cannot be answered
  says so (an ordinal past the last lesion, a lesion id that does not exist).
- The same transcript (8 turns with follow-ups) through `radagent chat` (stdin), the HTTP chat route
  (SSE, one session id) and the case-service Python call gives the same answers.
- The structured final answer of the LLM path (reasoning.chat_answer.render): what it refuses.

Truth comes from the case masks (tests.cases.build_case): a lesion's volume is its voxel count x
voxel volume, its organ the organ mask it overlaps most, vessel contact from the sector the case
drew (120 deg around the aorta: abutment; 240 deg around the IVC: encasement).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from scipy import ndimage

from agent import case as case_service
from agent.api import ServerSettings, create_app
from agent.cli import main
from reasoning.chat_answer import Fact, build_facts, connective_errors, render
from reasoning.grounding import Validator
from reasoning.vqa import Question
from reasoning.vqa.followup import ChatState, resolve
from tests.cases import build_case
from tests.test_case_service import AUTH, TOKEN, _sse

ORGANS = ("liver", "spleen", "pancreas", "kidney_left", "kidney_right", "duodenum", "stomach", "colon", "small_bowel",
          "gallbladder")
FAMILY = {"kidney_left": "kidney", "kidney_right": "kidney"}
KEYS = ("hypo", "hyper", "iso", "kidney_tumor", "kidney_cyst", "pancreas", "aorta", "ivc")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("chat_engine")


@pytest.fixture(scope="module")
def case(root):
    c = build_case(root / "case1")
    vml = abs(np.linalg.det(c["aff"][:3, :3])) / 1000.0
    f = c["findings"]
    lesions = []
    for k in KEYS:
        m = c["truth"][k]["mask"]
        overlap = {o: int((m & c["masks"][o]).sum()) for o in ORGANS if o in c["masks"]}
        organ = max(overlap, key=overlap.get) if max(overlap.values()) > 0 else None
        vol = float(m.sum() * vml)
        # the finding of this lesion: the one whose volume is this mask's (ids are the analysis's own)
        les = min(f.lesions, key=lambda x: abs(x.volume_ml - vol))
        assert abs(les.volume_ml - vol) < 1e-3, (k, les.volume_ml, vol)
        lesions.append({"key": k, "volume_ml": vol, "organ": FAMILY.get(organ, organ), "id": les.id})
    c["lesions"] = sorted(lesions, key=lambda x: -x["volume_ml"])
    c["by_key"] = {x["key"]: x for x in lesions}
    c["liver"] = [x for x in c["lesions"] if x["organ"] == "liver"]
    return c


def _ml(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(-?\d+(?:\.\d+)?)\s*mL\b", text)]


def _states_ml(text: str, truth: float) -> bool:
    return any(abs(v - truth) <= 0.0005 + 1e-9 for v in _ml(text))


# --- follow-ups ------------------------------------------------------------------------------------
@pytest.mark.parametrize("first", [
    "What is the volume of the largest liver lesion?",
    "Is there a lesion in the liver?",
    "How many lesions are in the liver?",
    "Which liver segment contains the largest liver lesion?",
    "What is the mean HU of the largest liver lesion?",
    "What is the diameter of the largest liver lesion?",
])
def test_ordinals_count_all_lesions_of_the_organ_in_context(case, first):
    liver = case["liver"]
    assert len(liver) == 3  # the case's three liver lesions (hypo, hyper, the IVC tumour)
    s = case_service.chat(case["findings"])
    s.ask(first)
    second = s.ask("and the second largest?")
    assert second.answer.status == "answered" and second.answer.finding_ids[:1] == [liver[1]["id"]], second.text
    third = s.ask("and the third?")
    assert third.answer.status == "answered" and third.answer.finding_ids[:1] == [liver[2]["id"]], third.text
    smallest = s.ask("the smallest?")
    assert smallest.answer.finding_ids[:1] == [liver[-1]["id"]], smallest.text
    # refused: there is no fourth liver lesion, and it says how many there are
    s2 = case_service.chat(case["findings"])
    s2.ask(first)
    fourth = s2.ask("and the fourth largest?")
    assert fourth.answer.status == "cannot_be_determined" and "has 3 liver lesion(s)" in fourth.text


def test_ordinal_volume_follow_ups_state_the_truth(case):
    liver = case["liver"]
    s = case_service.chat(case["findings"])
    texts = [s.ask(m).text for m in ("What is the volume of the largest liver lesion?", "and the second largest?",
                                      "and the third?")]
    for text, truth in zip(texts, liver):
        assert _states_ml(text, truth["volume_ml"]), (text, truth)
    assert not _states_ml(texts[1], liver[0]["volume_ml"])


def test_named_organ_beats_the_pronoun(case):
    kidney = next(x for x in case["lesions"] if x["organ"] == "kidney")
    pancreas = case["by_key"]["pancreas"]
    assert pancreas["organ"] == "pancreas" and kidney["id"] != pancreas["id"]
    s = case_service.chat(case["findings"])
    k = s.ask("What is the volume of the largest kidney lesion?")
    assert k.answer.finding_ids[:1] == [next(x["id"] for x in case["lesions"] if x["organ"] == "kidney")]
    t = s.ask("the pancreas lesion, is it resectable?")
    assert t.answer.subtype == "pancreatic lesion resectability"
    assert pancreas["id"] in t.answer.finding_ids and kidney["id"] not in t.answer.finding_ids, t.text
    assert s.state.lesion_id == pancreas["id"]
    # and the pronoun then refers to the pancreatic lesion
    v = s.ask("what is its volume?")
    assert v.answer.finding_ids == [pancreas["id"]] and _states_ml(v.text, pancreas["volume_ml"])
    # an organ named with "its" in one message: the organ's lesion, not the previous one
    w = s.ask("and the liver lesion, what is its volume?")
    assert w.answer.finding_ids[:1] == [case["liver"][0]["id"]] and _states_ml(w.text, case["liver"][0]["volume_ml"])
    # without an organ named, the pronoun keeps the previous lesion
    assert s.ask("what is its volume?").answer.finding_ids == [case["liver"][0]["id"]]


def _gap_mm(a: np.ndarray, b: np.ndarray, vox: float) -> float:
    """Smallest distance between two voxel sets (mm, isotropic voxels)."""
    return float(ndimage.distance_transform_edt(~b)[a].min() * vox)


def test_vessel_follow_up_keeps_and_replaces_the_vessel(case):
    f = case["findings"]
    vox = float(abs(case["aff"][0, 0]))
    ao = case["by_key"]["aorta"]
    t_ao = case["truth"]["aorta"]
    ivc_mask = case["masks"]["inferior_vena_cava"]
    assert _gap_mm(t_ao["mask"], ivc_mask, vox) > 2.0  # truth: the aorta tumour does not reach the IVC
    q = Question(subtype="vessel contact category", lesion_id=ao["id"], vessel="aorta")
    st = ChatState(q, ao["organ"], ao["id"], None, "largest", "aorta")
    r = resolve(f, "and its contact length?", st)
    assert r.question.subtype == "vessel contact length" and r.question.vessel == "aorta" and r.question.lesion_id == ao["id"]
    assert abs(r.answer.answer - t_ao["length"]) <= vox, (r.answer.answer, t_ao["length"])  # one slice of tolerance
    r2 = resolve(f, "and the IVC?", r.state)
    assert r2.question.subtype == "vessel contact length" and r2.question.vessel == "inferior_vena_cava"
    assert r2.answer.answer == 0
    r3 = resolve(f, "and the category?", r2.state)
    assert (r3.question.vessel, r3.answer.answer) == ("inferior_vena_cava", "none")
    r4 = resolve(f, "and the aorta?", r3.state)
    assert (r4.question.subtype, r4.answer.answer) == ("vessel contact category", "abutment")  # truth: 120 deg < 180
    # the IVC tumour (240 deg): encasement, asked about by id with the vessel kept
    ivc = case["by_key"]["ivc"]
    r5 = resolve(f, f"and {ivc['id']}?", r4.state.__class__(r4.question, None, None, None, "largest", "inferior_vena_cava"))
    assert r5.question.lesion_id == ivc["id"]


def test_follow_ups_refuse_what_they_cannot_resolve(case):
    f = case["findings"]
    assert resolve(f, "and the third?", ChatState()).answer.status == "unmapped_question"  # no context: nothing to count
    assert resolve(f, "and the spleen?", ChatState()).answer.status == "unmapped_question"
    r = resolve(f, "what is the volume of L99?", ChatState())
    assert r.answer.status == "cannot_be_determined" and "L99" in r.answer.reason and r.answer.answer is None


# --- one engine behind CLI, HTTP API and the case service --------------------------------------------------
TRANSCRIPT = [
    "What is the volume of the largest liver lesion?",
    "and the second largest?",
    "and the third?",
    "and its diameter?",
    "What is the volume of the largest kidney lesion?",
    "the pancreas lesion, is it resectable?",
    "How many lesions are in the liver?",
    "what about the spleen?",
    "hello there",
]


def test_same_transcript_same_answers_on_every_surface(root, case, tmp_path):
    # the case service (the Python call)
    session = case_service.chat(case["findings"])
    local = [session.ask(m).text for m in TRANSCRIPT]
    liver = case["liver"]
    assert _states_ml(local[0], liver[0]["volume_ml"]) and _states_ml(local[1], liver[1]["volume_ml"])
    assert _states_ml(local[2], liver[2]["volume_ml"]) and liver[2]["id"] in local[3]
    assert case["by_key"]["pancreas"]["id"] in local[5]
    assert local[6].startswith(f"{len(liver)} lesions")
    assert local[7].startswith(f"{sum(x['organ'] == 'spleen' for x in case['lesions'])} lesion")
    assert "could not map" in local[8]

    # `radagent chat` on stdin
    p = tmp_path / "findings.json"
    p.write_text(case["findings"].to_json())
    r = CliRunner().invoke(main, ["chat", str(p)], input="\n".join(TRANSCRIPT) + "\n")
    assert r.exit_code == 0, r.output
    cli, cur = [], None
    for line in r.stdout.splitlines():  # an answer may span lines: each starts with the prompt prefix
        if line.startswith("radagent> "):
            cur = [line[len("radagent> "):]]
            cli.append(cur)
        elif cur is not None:
            cur.append(line)
    assert ["\n".join(x) for x in cli] == local

    # the HTTP chat route: one session over all turns
    with TestClient(create_app(ServerSettings(data_root=root, token=TOKEN, cases_dir=tmp_path / "api"))) as c:
        resp = c.post("/cases/from-path?wait=true", json={"ct": "case1/ct.nii.gz", "masks": "case1/segmentations"},
                      headers=AUTH)
        assert resp.status_code == 201, resp.text
        cid = resp.json()["id"]
        sid, http = None, []
        for m in TRANSCRIPT:
            events = _sse(c, cid, {"message": m, **({"session_id": sid} if sid else {})})
            sid = events[0][1]["session_id"]
            assert events[-1][0] == "final", events[-1]
            http.append(events[-1][1]["text"])
    assert http == local


# --- the structured final answer: what it refuses -------------------------------------------------------
def _facts(case):
    f = case["findings"]
    s = case_service.chat(f)
    a = s.ask("What is the volume of the largest liver lesion?").answer
    return build_facts(f, a, None, []), a


def test_render_states_the_deterministic_answer_with_its_unit(case):
    facts, _ = _facts(case)
    v = Validator(case["findings"])
    out = render(v, json.dumps({"intro": "From the measured findings:", "facts": [], "closing": ""}), facts, ["F1"])
    assert out.errors == [] and out.chosen == ["F1"]
    assert _states_ml(out.text, case["liver"][0]["volume_ml"]) and out.text.startswith("From the measured findings: ")
    # a harmless phrase that is not one of the stock phrases is refused too (the enum, checked in code)
    assert render(v, json.dumps({"intro": "Well", "facts": ["F1"], "closing": ""}), facts, ["F1"]).errors == [
        "intro: 'Well' is not one of the allowed phrases"]
    assert out.finding_ids == [case["liver"][0]["id"]]


@pytest.mark.parametrize("intro, why", [
    ("It measures 9.99 mL", "only words"),
    ("There are three lesions", "number word"),
    ("No", "could contradict"),
    ("The lesion is not enlarging", "could contradict"),
    ("<tool_call>", "tool-call markup"),
    ('{"name": "get_lesion", "arguments": {}}', "tool-call markup"),
    ("Lesion L", None),  # harmless words: accepted
])
def test_connective_text_refusals(case, intro, why):
    errs = connective_errors(Validator(case["findings"]), "intro", intro, [])
    if why is None:
        assert errs == []
    else:
        assert any(why in e for e in errs), errs


def test_render_refuses_markup_unknown_refs_and_non_json(case):
    facts, _ = _facts(case)
    v = Validator(case["findings"])
    for raw, why in [('<tool_call>{"name": "list_lesions", "arguments": {}}</tool_call>', "tool-call markup"),
                     ("<tool_response>{}</tool_response>", "tool-call markup"),
                     ("The volume is 6 mL.", "not the JSON answer"),
                     (json.dumps({"intro": "", "facts": ["F9"], "closing": ""}), "not an offered reference"),
                     (json.dumps({"intro": "Sure, 12 mL", "facts": ["F1"], "closing": ""}), "only words")]:
        out = render(v, raw, facts, ["F1"])
        assert out.text == "" and any(why in e for e in out.errors), (raw, out.errors)
    assert build_facts(case["findings"], None, None, []) == []  # nothing to state: no fact offered
    assert isinstance(facts[0], Fact) and facts[0].ref == "F1"


def test_off_topic_tool_facts_are_not_offered(case):
    """A kidney question answered with the liver lesion the model looked up (seen on SmolLM2): the
    liver lesion's summary is not offered, the kidney lesion's is."""
    from reasoning.chat_tools import FindingsTools

    f = case["findings"]
    kidney = next(x for x in case["lesions"] if x["organ"] == "kidney")
    liver = case["liver"][0]
    a = case_service.chat(f).ask("Is the kidney lesion a cyst or a tumor?").answer
    assert a.status == "answered" and a.finding_ids == [kidney["id"]]
    tools = FindingsTools(f)
    facts = build_facts(f, a, None, [tools.get_lesion(liver["id"]), tools.get_lesion(kidney["id"])])
    assert [x.finding_ids for x in facts] == [[kidney["id"]], [kidney["id"]]]
    assert facts[1].text.startswith(f"{kidney['id']}: ") and not any(f"{liver['id']}: " in x.text for x in facts)
