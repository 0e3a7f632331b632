"""The chat agent (reasoning.agent) and `radagent chat`.

- Agent path over real HTTP with the scripted OpenAI-compatible server: a tool call and a grounded
  answer accepted; a wrong number caught by grounding, re-asked, then the deterministic fallback; a
  grounded answer to the wrong question caught and corrected; tool-derived numbers; multi-turn
  follow-ups; an unreachable server; streaming.
- Agent path against the real vLLM server (marker llm_server).
- The deterministic session and the REPL (click's CliRunner).

Truth comes from the case masks (tests.cases.build_case), not from findings.json: a synthetic
lesion's volume is its voxel count x voxel volume, and its organ is the organ mask it overlaps most.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re

import numpy as np
import pytest

from reasoning.agent import (
    ChatSession,
    ChatState,
    FindingsTools,
    ask_with_llm,
    check_reply,
    resolve,
)
from reasoning.grounding import Validator
from tests.cases import build_case
from tests.require import require
from tests.scripted_openai import ScriptedServer

HAVE_LANGCHAIN = all(importlib.util.find_spec(m) is not None for m in ("langchain", "langchain_openai"))


@pytest.fixture
def lc():
    """The LLM path needs the `agent` extra; the deterministic tests run without it."""
    if not HAVE_LANGCHAIN:
        require("llm", "langchain / langchain-openai not installed (pip install -e '.[agent]')")

LESION_KEYS = ("hypo", "hyper", "iso", "kidney_tumor", "kidney_cyst", "pancreas", "aorta", "ivc")
ORGANS = ("liver", "spleen", "pancreas", "kidney_left", "kidney_right", "duodenum", "stomach", "colon", "small_bowel",
          "gallbladder")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    c = build_case(tmp_path_factory.mktemp("chat") / "case")
    vml = abs(np.linalg.det(c["aff"][:3, :3])) / 1000.0
    lesions = []
    for k in LESION_KEYS:
        m = c["truth"][k]["mask"]
        overlap = {o: int((m & c["masks"][o]).sum()) for o in ORGANS if o in c["masks"]}
        organ = max(overlap, key=overlap.get) if max(overlap.values()) > 0 else None
        lesions.append({"key": k, "volume_ml": float(m.sum() * vml), "organ": organ})
    c["lesions"] = sorted(lesions, key=lambda x: -x["volume_ml"])
    c["liver"] = [x for x in c["lesions"] if x["organ"] == "liver"]
    return c


@pytest.fixture(scope="module")
def findings(case):
    return case["findings"]


# --- helpers ---------------------------------------------------------------------------------------
def close_to(written: str, truth: float) -> bool:
    """written equals truth rounded to the decimals written (independent of the grounding module)."""
    d = len(written.split(".")[1]) if "." in written else 0
    return abs(float(written) - truth) <= 0.5 * 10 ** (-d) + 1e-9


def ml_numbers(text: str) -> list[str]:
    return re.findall(r"(-?\d+(?:\.\d+)?)\s*mL\b", text)


def states_ml(text: str, truth: float) -> bool:
    return any(close_to(n, truth) for n in ml_numbers(text))


def tool_call(name: str, args: dict, call_id: str = "call_1") -> dict:
    return {"content": None, "tool_calls": [{"id": call_id, "type": "function",
                                             "function": {"name": name, "arguments": json.dumps(args)}}]}


def last(body: dict, role: str) -> dict | None:
    return next((m for m in reversed(body["messages"]) if m["role"] == role), None)


def tool_json(body: dict):
    return json.loads(last(body, "tool")["content"])


def session(findings, srv, **kw) -> ChatSession:
    """The free-text answer mode (answer_mode='free_text'): the model writes the final text and the
    grounding check accepts or refuses it. The default structured mode is tested further down."""
    return ChatSession(findings, srv.base_url, srv.model, **{"answer_mode": "free_text", **kw})


# --- scripted server: the agent loop -------------------------------------------------------------------
def test_tool_call_then_grounded_answer_is_accepted(lc, findings, case):
    truth = case["lesions"][0]["volume_ml"]  # L1 = the largest lesion of the study (findings order by volume)

    def model(body, n):
        if body["messages"][-1]["role"] == "user":
            return tool_call("get_lesion", {"lesion_id": "L1"})
        les = tool_json(body)
        return {"content": f"L1 has a volume of {les['volume_ml']:.2f} mL. It lies in the {les['organ']}."}

    with ScriptedServer(model) as srv:
        turn = session(findings, srv).ask("What is the volume of L1?")
    assert turn.engine == "llm" and turn.attempts == 1 and turn.grounding_errors == [] and turn.fallback_reason is None
    assert [c.name for c in turn.tool_calls] == ["get_lesion"] and turn.tool_calls[0].args == {"lesion_id": "L1"}
    assert turn.finding_ids == ["L1"] and turn.model == "scripted-model"
    assert states_ml(turn.text, truth), (turn.text, truth)
    assert turn.answer is not None and turn.answer.subtype == "lesion volume measurement" and close_to(f"{turn.answer.answer}", truth)
    first, second = srv.requests
    assert first["tool_choice"] == "required" and {t["function"]["name"] for t in first["tools"]} == {
        "answer_question", "list_lesions", "get_lesion", "get_organ", "compare", "lookup_medical_knowledge"}
    assert all(t["function"]["strict"] is True for t in first["tools"])
    assert "tool_choice" not in second  # 'auto' after the forced first step
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_lesion"
    assert "[Parsed question: subtype 'lesion volume measurement', lesion_id 'L1'" in first["messages"][-1]["content"]


def test_wrong_number_is_caught_reasked_then_falls_back(lc, findings, case):
    truth = case["lesions"][0]["volume_ml"]

    def model(body, n):
        if n == 1:
            return tool_call("get_lesion", {"lesion_id": "L1"})
        return {"content": "L1 has a volume of 9.99 mL."}

    with ScriptedServer(model) as srv:
        turn = session(findings, srv, max_attempts=3).ask("What is the volume of L1?")
    assert turn.engine == "deterministic" and turn.attempts == 3
    assert "grounding check 3 time(s)" in turn.fallback_reason
    assert len(turn.grounding_errors) == 3
    for errs in turn.grounding_errors:
        assert any("9.99 mL matches no mL value" in e for e in errs), errs
        assert any(e.startswith("answer: the reply does not state the measured answer") for e in errs), errs
    # each re-ask carries the errors verbatim; only the first request forces a tool call
    assert len(srv.requests) == 4
    for body in srv.requests[2:]:
        assert "9.99 mL matches no mL value" in last(body, "user")["content"]
    assert [b.get("tool_choice") for b in srv.requests] == ["required", None, None, None]
    # the fallback is the deterministic answer, and says so
    assert "[Deterministic answer: the model's reply failed the grounding check" in turn.text
    assert states_ml(turn.text, truth) and "9.99" not in turn.text
    assert turn.answer.status == "answered" and close_to(f"{turn.answer.answer}", truth)


def test_grounded_answer_to_another_question_is_reasked_and_corrected(lc, findings, case):
    truth = case["lesions"][0]["volume_ml"]
    l1 = findings.lesion("L1")

    def model(body, n):
        if n == 1:
            return tool_call("get_lesion", {"lesion_id": "L1"})
        if n == 2:  # true, grounded, but not the volume that was asked for
            return {"content": f"L1 has a long axis of {l1.long_axis_mm:.1f} mm."}
        les = next(json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool")
        return {"content": f"L1 has a volume of {les['volume_ml']} mL."}

    with ScriptedServer(model) as srv:
        turn = session(findings, srv).ask("What is the volume of L1?")
    assert turn.engine == "llm" and turn.attempts == 2
    assert turn.grounding_errors == [[f"answer: the reply does not state the measured answer {round(l1.volume_ml, 3):g} mL"]]
    assert states_ml(turn.text, truth)


def test_tool_derived_numbers_are_accepted_invented_ones_are_not(lc, findings):
    """A tumour burden % is derived by answer_question (not a findings fact): stating it is grounded."""
    def model(body, n):
        if body["messages"][-1]["role"] == "user" and n == 1:
            return tool_call("answer_question", {"subtype": "tumor burden percentage", "organ": "pancreas"})
        res = next(json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool")
        return {"content": f"Tumor occupies {res['answer']:.2f} % of the pancreas (L8)."}

    with ScriptedServer(model) as srv:
        turn = session(findings, srv).ask("What percentage of the pancreas is occupied by tumor?")
    a = turn.answer
    assert a.status == "answered" and a.unit == "%"
    pancreas = findings.organ("pancreas")
    assert abs(a.answer - 100 * findings.lesion("L8").volume_ml / pancreas.volume_ml) < 5e-4  # vqa rounds to 3 decimals
    assert turn.engine == "llm", turn.grounding_errors
    assert turn.finding_ids == ["L8", "organ:pancreas"] and turn.tool_calls[0].result["answer"] == a.answer
    # the same % without the tool call behind it is not grounded
    v = Validator(findings)
    text = f"Tumor occupies {a.answer:.2f} % of the pancreas."
    assert check_reply(v, text, ["L8", "organ:pancreas"], [], a)
    assert not check_reply(v, text, ["L8", "organ:pancreas"], [(a.answer, "%")], a)


def test_multi_turn_follow_up_resolves_the_second_largest(lc, findings, case):
    liver = case["liver"]
    assert len(liver) >= 2

    def model(body, n):
        msg = body["messages"][-1]
        if msg["role"] == "user":
            return tool_call("list_lesions", {"organ": "liver"}, f"call_{n}")
        user = last(body, "user")["content"]
        ranked = tool_json(body)["lesions"]
        k = 1 if "second" in user.lower() else 0
        les = ranked[k]
        return {"content": f"The {'second ' if k else ''}largest liver lesion is {les['id']}, {les['volume_ml']} mL."}

    with ScriptedServer(model) as srv:
        s = session(findings, srv)
        t1 = s.ask("What is the largest liver lesion?")
        t2 = s.ask("and the second largest?")
    assert t1.engine == "llm" and t2.engine == "llm", (t1.grounding_errors, t2.grounding_errors)
    assert states_ml(t1.text, liver[0]["volume_ml"]) and states_ml(t2.text, liver[1]["volume_ml"])
    assert not states_ml(t2.text, liver[0]["volume_ml"])
    # the deterministic reading of the follow-up agrees (state: liver, rank 2)
    assert t2.resolved_as.startswith("second largest liver lesion -> ") and s.state.organ == "liver" and s.state.rank == 1
    assert close_to(f"{t2.answer.answer}", liver[1]["volume_ml"])
    # the conversation went to the server: the follow-up request holds the first question and answer
    follow = srv.requests[2]
    contents = [m.get("content") for m in follow["messages"]]
    assert "What is the largest liver lesion?" in contents and t1.text in contents
    assert follow["messages"][-1]["content"].startswith("and the second largest?")
    assert "lesion_id '" + t2.answer.question.lesion_id + "'" in follow["messages"][-1]["content"]


def test_unreachable_server_falls_back(lc, findings, case):
    with ScriptedServer(lambda body, n: 500) as srv:
        turn = session(findings, srv).ask("What is the volume of L1?")
    assert turn.engine == "deterministic" and turn.fallback_reason.startswith("LLM unavailable")
    assert states_ml(turn.text, case["lesions"][0]["volume_ml"]) and "[Deterministic answer: LLM unavailable" in turn.text


def test_astream_yields_tokens_then_final(lc, findings):
    def model(body, n):
        if body["messages"][-1]["role"] == "user":
            return tool_call("get_organ", {"organ": "liver"})
        # the validator's count rule: the organ word sits between the number and 'lesions'
        return {"content": f"There are {tool_json(body)['members'][0]['lesion_count']} liver lesions."}

    async def collect(s):
        return [e async for e in s.astream("How many lesions are in the liver?")]

    with ScriptedServer(model) as srv:
        s = session(findings, srv)
        events = asyncio.run(collect(s))
        events2 = asyncio.run(collect(s))  # a second event loop on the same session
    for evs in (events, events2):
        assert [e["type"] for e in evs[:-1]] == ["token"] * (len(evs) - 1) and evs[-1]["type"] == "final"
        final = evs[-1]
        assert "".join(e["text"] for e in evs[:-1]) == final["text"] == final["turn"]["text"]
        assert final["engine"] == "llm" and final["finding_ids"] == ["organ:liver"]
    assert "3 liver lesions" in events[-1]["text"]


def test_ask_with_llm_multiple_choice(lc, findings):
    l2 = findings.lesion("L2")

    def model(body, n):
        if n == 1:
            return tool_call("get_lesion", {"lesion_id": "L2"})
        return {"content": f"B) L2 has a volume of {tool_json(body)['volume_ml']} mL."}

    choices = ["A) 0.5 mL", f"B) {l2.volume_ml:.1f} mL", "C) 20 mL", "D) 60 mL"]
    with ScriptedServer(model) as srv:
        text, a = ask_with_llm(findings, "What is the volume of lesion L2?", srv.base_url, None, choices, answer_mode="free_text")
    assert a.answer == "B" and a.answer_type == "choice" and text.startswith("B)")
    assert "Options:\nA) 0.5 mL" in srv.requests[0]["messages"][-1]["content"]
    text2, a2 = ask_with_llm(findings, "What is the volume of lesion L2?", None, None, choices)
    assert a2 == a and text2.startswith("B (")


# --- structured final answers (the default mode): numbers only from the tools -------------------------
def structured(body) -> dict | None:
    """The JSON schema of a structured final-answer request, None for an agent (tool) request."""
    rf = body.get("response_format")
    return rf["json_schema"]["schema"] if rf else None


def offered(body) -> dict[str, str]:
    """The facts listed in the final-answer instruction: ref -> text."""
    return dict(re.findall(r"^(F\d+): (.*)$", body["messages"][-1]["content"], re.MULTILINE))


def test_structured_answer_states_tool_facts_with_units(lc, findings, case):
    truth = case["lesions"][0]["volume_ml"]

    def model(body, n):
        schema = structured(body)
        if schema is None:
            return tool_call("get_lesion", {"lesion_id": "L1"})
        return {"content": json.dumps({"intro": "In this study:", "facts": ["F2", "F1"],
                                       "closing": "Values are measured on this CT only."})}

    with ScriptedServer(model) as srv:
        turn = ChatSession(findings, srv.base_url, srv.model).ask("What is the volume of L1?")
    assert turn.engine == "llm" and turn.attempts == 1 and turn.grounding_errors == [], turn.grounding_errors
    assert states_ml(turn.text, truth) and not re.search(r"9\.99", turn.text)
    agent_req, final_req = srv.requests
    assert agent_req["tool_choice"] == "required" and "response_format" not in agent_req
    schema = structured(final_req)
    assert "tools" not in final_req and final_req["response_format"]["json_schema"]["strict"] is True
    facts = offered(final_req)
    assert schema["properties"]["facts"]["items"]["enum"] == list(facts) == ["F1", "F2"]
    # connective words: stock phrases only (an enum): the schema admits no number, id, markup or JSON there
    for part in ("intro", "closing"):
        phrases = schema["properties"][part]["enum"]
        assert "" in phrases and not any(re.search(r"\d|<|\{|\bL\d", p) for p in phrases)
    assert 0 < final_req["max_completion_tokens"] <= 300
    # the deterministic answer is stated first whatever the order chosen; then the lesion summary
    assert turn.text.startswith("In this study: " + facts["F1"]) and facts["F2"] in turn.text
    assert turn.text.endswith("Values are measured on this CT only.") and turn.finding_ids == ["L1"]


def test_structured_refusals_are_never_shown_then_fallback(lc, findings, case):
    truth = case["lesions"][0]["volume_ml"]
    replies = ['<tool_call>{"name": "get_lesion", "arguments": {"lesion_id": "L1"}}</tool_call>',
               json.dumps({"intro": "It is 9.99 mL", "facts": ["F1"], "closing": ""}),
               json.dumps({"intro": "", "facts": ["F7"], "closing": "No metastases"})]

    def model(body, n):
        if structured(body) is None:
            return tool_call("get_lesion", {"lesion_id": "L1"})
        return {"content": replies[n - 2]}

    with ScriptedServer(model) as srv:
        turn = ChatSession(findings, srv.base_url, srv.model, max_attempts=3).ask("What is the volume of L1?")
    assert turn.engine == "deterministic" and len(turn.grounding_errors) == 3
    e1, e2, e3 = turn.grounding_errors
    assert any("tool-call markup" in e for e in e1) and any("only words" in e for e in e2)
    assert any("F7 is not an offered reference" in e for e in e3) and any("'No' could contradict" in e for e in e3)
    for bad in ("<tool_call>", "9.99", "F7", "metastases"):
        assert bad not in turn.text
    assert states_ml(turn.text, truth) and "[Deterministic answer:" in turn.text
    # a re-ask sends the errors, never the refused reply; only one agent (tool) request
    assert [structured(b) is None for b in srv.requests] == [True, False, False, False]
    for i, body in enumerate(srv.requests[2:]):
        sent = json.dumps(body["messages"])
        assert "Your previous answer was refused" in sent and replies[i] not in sent


def test_structured_unmapped_message_answered_from_tool_facts(lc, findings, case):
    """No question type matches; the answer is the facts of the tool the model called."""
    def model(body, n):
        if structured(body) is None:
            return tool_call("get_organ", {"organ": "liver"})
        facts = offered(body)
        return {"content": json.dumps({"intro": "", "facts": [next(iter(facts))], "closing": ""})}

    with ScriptedServer(model) as srv:
        turn = ChatSession(findings, srv.base_url, srv.model).ask("Give me an overview of the liver")
    assert turn.engine == "llm", turn.grounding_errors
    n = len(case["liver"])
    assert f"{n} lesion(s)" in turn.text and turn.text.startswith("liver: ")
    assert turn.finding_ids == ["organ:liver"]


def test_structured_async_path_is_the_same(lc, findings, case):
    """aask (the HTTP route's path) runs the same structured answer: one refusal, then accepted."""
    replies = [json.dumps({"intro": "There are two", "facts": ["F1"], "closing": ""}),
               json.dumps({"intro": "", "facts": ["F1"], "closing": ""})]

    def model(body, n):
        if structured(body) is None:
            return tool_call("list_lesions", {"organ": "liver"})
        return {"content": replies[n - 2]}

    with ScriptedServer(model) as srv:
        turn = asyncio.run(ChatSession(findings, srv.base_url, srv.model).aask("and the second largest liver lesion?"))
    assert turn.engine == "llm" and turn.attempts == 2 and any("number word 'two'" in e for e in turn.grounding_errors[0])
    assert states_ml(turn.text, case["liver"][1]["volume_ml"]) and "two" not in turn.text


def test_free_text_tool_markup_is_never_shown(lc, findings):
    def model(body, n):
        if n == 1:
            return tool_call("get_lesion", {"lesion_id": "L1"})
        return {"content": '<tool_call>\n{"name": "get_lesion", "arguments": {"lesion_id": "L1"}}\n</tool_call>'}

    with ScriptedServer(model) as srv:
        turn = session(findings, srv, max_attempts=2).ask("What is the volume of L1?")
    assert turn.engine == "deterministic" and "<tool_call>" not in turn.text and '"arguments"' not in turn.text
    assert all(errs == [e for e in errs if "tool-call markup" in e] for errs in turn.grounding_errors)


# --- the tools ---------------------------------------------------------------------------------------------
def test_tools_read_findings_only(findings, case):
    t = FindingsTools(findings)
    ll = t.list_lesions("liver")
    assert [round(x["volume_ml"], 3) for x in ll.data["lesions"]] == [round(x["volume_ml"], 3) for x in case["liver"]]
    assert ll.finding_ids == [x["id"] for x in ll.data["lesions"]]
    assert t.get_lesion("L99").error.startswith("no lesion 'L99'")
    org = t.get_organ("kidney")
    assert set(org.finding_ids) == {"organ:kidney_left", "organ:kidney_right"} and org.data["organ"] == "kidney"
    cmp_ = t.compare("L1", "L2", "volume_ml")
    assert cmp_.data["larger"] == "L1" and cmp_.finding_ids == ["L1", "L2"]
    assert abs(cmp_.data["difference"] - round(findings.lesion("L1").volume_ml - findings.lesion("L2").volume_ml, 3)) < 1e-9
    assert t.compare("liver", "spleen", "volume_ml").error  # both truncated: no volume
    kb = t.lookup_medical_knowledge("splenomegaly")
    assert kb.data[0]["key"].startswith("splenomegaly") and (314.5, "mL") in kb.values
    bad = t.answer_question("no such subtype")
    assert bad.error.startswith("invalid question")
    ok = t.answer_question("lesion counting", organ="liver")
    assert ok.answer.answer == len(case["liver"]) and ok.data["unit"] == "lesions"


# --- deterministic session ---------------------------------------------------------------------------------
def test_deterministic_session_and_follow_ups(findings, case):
    liver = case["liver"]
    s = ChatSession(findings)
    t1 = s.ask("What is the largest liver lesion?")
    t2 = s.ask("and the second largest?")
    t3 = s.ask("and its diameter?")
    t4 = s.ask("and the smallest?")
    assert all(t.engine == "deterministic" and t.tool_calls == [] for t in (t1, t2, t3, t4))
    assert states_ml(t1.text, liver[0]["volume_ml"]) and states_ml(t2.text, liver[1]["volume_ml"])
    lid2 = t2.answer.question.lesion_id
    assert t3.answer.subtype == "largest lesion diameter" and t3.answer.finding_ids == [lid2]
    assert abs(t3.answer.answer - findings.lesion(lid2).long_axis_mm) < 1e-9
    assert t4.resolved_as.startswith("smallest liver lesion") and close_to(f"{t4.answer.answer}", findings.lesion(t4.answer.finding_ids[0]).long_axis_mm)
    assert states_ml(s.ask("What is the volume of the second largest liver lesion?").text, liver[1]["volume_ml"])
    none = s.ask(f"What is the {['', 'first', 'second', 'third', 'fourth', 'fifth'][len(liver) + 1]} largest liver lesion?")
    assert none.answer.status == "cannot_be_determined" and f"has {len(liver)} liver lesion" in none.text
    un = s.ask("hello there")
    assert un.answer.status == "unmapped_question" and "Supported question types: PDAC existence" in un.text
    assert "lesion volume measurement" in un.text and un.finding_ids == []
    assert resolve(findings, "and the spleen?", ChatState(), None).answer.status == "unmapped_question"


def test_chat_repl(findings, case, tmp_path):
    from click.testing import CliRunner

    from agent.chat_cli import chat

    p = tmp_path / "findings.json"
    p.write_text(findings.to_json())
    liver = case["liver"]
    lines = ["What is the largest liver lesion?", "and the second largest?", "/lesions", "", "hello", "/help", "/quit",
             "never read"]
    r = CliRunner().invoke(chat, [str(p)], input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.output + str(r.exception)
    out = r.stdout
    answers = [ln for ln in out.splitlines() if ln.startswith("radagent> ")]
    assert len(answers) == 3
    assert states_ml(answers[0], liver[0]["volume_ml"]) and states_ml(answers[1], liver[1]["volume_ml"])
    assert "could not map" in answers[2]
    for les in findings.lesions:  # /lesions lists every lesion
        assert re.search(rf"^\s*{les.id}\s", out, re.MULTILINE), les.id
    assert "lesion volume measurement: What is the volume of the largest liver lesion?" in out  # /help
    assert "never read" not in out
    # EOF ends the REPL too; a bad path is a usage error
    assert CliRunner().invoke(chat, [str(p)], input="").exit_code == 0
    bad = CliRunner().invoke(chat, [str(tmp_path / "missing.json")], input="")
    assert bad.exit_code == 2 and "findings.json not found" in bad.stderr


def test_chat_repl_with_llm(lc, findings, case, tmp_path):
    from click.testing import CliRunner

    from agent.chat_cli import chat

    def model(body, n):  # the CLI runs the default structured mode: the final answer is JSON
        if body["messages"][-1]["role"] == "user" and "response_format" not in body:
            return tool_call("get_lesion", {"lesion_id": "L1"})
        return {"content": json.dumps({"intro": "From the measured findings:", "facts": ["F1"], "closing": ""})}

    p = tmp_path / "findings.json"
    p.write_text(findings.to_json())
    with ScriptedServer(model) as srv:
        r = CliRunner().invoke(chat, [str(p), "--llm", srv.base_url], input="What is the volume of L1?\n/quit\n")
    assert r.exit_code == 0, r.output
    ans = [ln for ln in r.stdout.splitlines() if ln.startswith("radagent> ")]
    assert len(ans) == 1 and states_ml(ans[0], case["lesions"][0]["volume_ml"])
    assert "engine llm" in r.stderr and "get_lesion" in r.stderr


# --- the real vLLM server ----------------------------------------------------------------------------------
@pytest.mark.llm_server
def test_real_server_chat_contract(lc, vllm_server, findings, case):
    """Contract test of the serving path (SmolLM2-135M on vLLM, structured final answers): the 10 chat
    questions of eval/bench_chat_llm.py in one conversation, one attempt each. At least 3 are accepted
    at the first attempt; every turn states the truth from the masks where it is a volume; no
    tool-call markup is ever shown; an accepted text starts with its intro or the deterministic answer."""
    from eval.bench_chat_llm import CHAT_QUESTIONS

    s = ChatSession(findings, vllm_server.base_url, vllm_server.model, max_attempts=1, timeout_s=300)
    turns = [s.ask(q) for q in CHAT_QUESTIONS]
    accepted = [t for t in turns if t.engine == "llm"]
    for q, t in zip(CHAT_QUESTIONS, turns):
        print(f"\n{'ACCEPT' if t.engine == 'llm' else 'reject'} {q!r}: {t.text!r} {t.grounding_errors}")
    print(f"\naccepted at the first attempt: {len(accepted)}/{len(turns)}")
    # tool_choice "required" on the first step: vLLM constrains it to a JSON array of calls, but SmolLM2-135M can
    # run that array past max_tokens (seen once in 10 after the follow-up issue's prompt changes: the turn then
    # had no call and was answered from the deterministic answer alone, correctly): most turns must call a tool
    no_call = [t.message for t in turns if not t.tool_calls]
    assert len(no_call) <= 1, f"the forced first step made no tool call: {no_call}"
    for t in turns:
        assert not re.search(r"<\s*/?\s*tool_(call|response)|\"arguments\"\s*:", t.text), t.text
        assert t.engine == "llm" or t.fallback_reason
    liver = case["liver"]
    assert states_ml(turns[0].text, liver[0]["volume_ml"]) and states_ml(turns[1].text, liver[1]["volume_ml"])
    assert states_ml(turns[9].text, liver[2]["volume_ml"])
    for t in accepted:  # the deterministic answer is stated (by code) in every accepted text
        a = t.answer
        assert a is not None and (a.reason if a.status == "cannot_be_determined" else a.line().split(" -- ")[0]) in t.text
    assert len(accepted) >= 3, [(t.message, t.grounding_errors) for t in turns]
