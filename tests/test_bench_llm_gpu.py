"""eval/bench_llm_gpu.py without a GPU: its arguments, and its measurement loop against the scripted
OpenAI-compatible server, where what each request gets is known, so every rate is known."""

from __future__ import annotations

import asyncio
import json

import pytest

from eval import bench_llm_gpu as bench
from reasoning.client import LLMClient
from tests.cases import build_case
from tests.scripted_openai import (
    ScriptedServer,
    default_arrangement,
    echo_default,
    reply,
)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    syn = build_case(tmp_path_factory.mktemp("bench") / "case")["findings"]
    return {"full": syn, "one_lesion": syn.model_copy(update={"lesions": syn.lesions[:1]})}


def test_arguments():
    a = bench.parse_args(["--model", "/models/Qwen3-8B"])
    assert a.concurrency == [8, 32] and a.budget_s == 600 and a.out == bench.DEFAULT_OUT and a.url is None
    a = bench.parse_args(["--url", "http://h:8000/v1", "--concurrency", "2", "4", "--server-arg=--reasoning-parser=qwen3"])
    assert a.concurrency == [2, 4] and a.model is None
    for bad in ([], ["--model", "m", "--url", "u"], ["--url", "u", "--concurrency", "0"], ["--url", "u", "--budget-s", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def _refuse_one_lesion_case(body, n):
    """Arranges the full case correctly; leaves the required L1 sentence out of the one-lesion case."""
    a = default_arrangement(body)
    user = body["messages"][1]["content"]
    if "L2:" not in user:
        a["findings"] = [x for x in a["findings"] if f"\n{x} [liver] (REQUIRED) L1: " not in user]
    return reply(a)


def test_measurement_loop_counts_what_the_server_did(cases):
    with ScriptedServer(_refuse_one_lesion_case) as srv:
        out = asyncio.run(bench.measure_reports(cases, LLMClient(srv.base_url), concurrency=2, n_reports=4,
                                                max_attempts=2))
    # reports cycle full, one_lesion, full, one_lesion: two accepted at once, two refused twice
    assert out["reports"] == 4 and out["acceptance"] == 0.5 and out["accepted_first_attempt"] == 0.5
    assert out["attempt_outcomes"] == {"accepted": 2, "rejected": 4} and out["mean_attempts"] == 1.5
    assert out["fallback_classes"] == {"rejected": 2}
    assert out["grounding_rate"] == 0.5 and out["content_rule_rate"] == 0.5
    assert len(srv.requests) == 6 and out["concurrency"] == 2 and out["seconds_per_report"] > 0


def test_server_errors_are_counted_by_class(cases):
    with ScriptedServer(lambda body, n: (400, "maximum context length is 10 tokens")) as srv:
        out = asyncio.run(bench.measure_reports(cases, LLMClient(srv.base_url), concurrency=1, n_reports=2,
                                                max_attempts=3))
    assert out["acceptance"] == 0 and out["fallback_classes"] == {"context_overflow": 2}
    assert len(srv.requests) == 2  # an overflow is not re-asked


def test_tool_choice_accuracy(cases):
    wrong = {"Which is larger, L1 or L2?", "Is the pancreas fully imaged?"}
    expected = dict(bench.TOOL_QUESTIONS)

    def handler(body, n):
        q = body["messages"][-1]["content"]
        assert body["tool_choice"] == "required" and all(t["function"]["strict"] for t in body["tools"])
        name = "answer_question" if q in wrong else expected[q]
        return {"content": None, "tool_calls": [{"id": f"c{n}", "type": "function",
                                                 "function": {"name": name, "arguments": "{}"}}]}

    with ScriptedServer(handler) as srv:
        out = asyncio.run(bench.measure_tool_choice(LLMClient(srv.base_url), cases["full"]))
    _, names = bench.tool_specs()
    asked = [q for q, t in bench.TOOL_QUESTIONS if t in names]
    assert out["questions"] == len(asked) == len(srv.requests)
    assert out["accuracy"] == (len(asked) - len(wrong & set(asked))) / len(asked)


def test_one_command_against_a_running_server(tmp_path):
    """--url: the whole run against the scripted server writes the results file."""
    def handler(body, n):
        if "tools" in body:
            return {"content": None, "tool_calls": [{"id": "c", "type": "function",
                                                     "function": {"name": "list_lesions", "arguments": "{}"}}]}
        return echo_default(body, n)

    out = tmp_path / "llm_gpu.json"
    with ScriptedServer(handler) as srv:
        assert bench.main(["--url", srv.base_url, "--concurrency", "2", "--out", str(out), "--max-attempts", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["gpu_run"] is False and res["model"] == "scripted-model" and res["skipped"] == []
    assert res["single"]["acceptance"] == 1.0 and res["single"]["reports"] == len(res["cases"])
    assert [t["concurrency"] for t in res["throughput"]] == [2] and res["throughput"][0]["reports"] == 2
    assert res["tool_choice"]["accuracy"] == sum(t == "list_lesions" for _, t in bench.TOOL_QUESTIONS) / res["tool_choice"]["questions"]
