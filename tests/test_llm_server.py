"""The production request shapes against a real vLLM server (SmolLM2-135M on CPU, see
tests/llm_fixtures.py): json_schema response format (with a string pattern), a named tool call, a
tool-result round trip, the served context in /v1/models.
Few and short on purpose: each request costs seconds on CPU."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.llm_server

FINDING_SCHEMA = {
    "type": "object",
    "properties": {
        "organ": {"type": "string", "enum": ["liver", "pancreas", "kidney", "lung"]},
        "findings": {"type": "array", "items": {"type": "string", "enum": ["mass", "cyst", "calcification"]},
                     "minItems": 1, "maxItems": 3},
        "malignant": {"type": "boolean"},
    },
    "required": ["organ", "findings", "malignant"],
    "additionalProperties": False,
}

RECORD_LESION = {
    "type": "function",
    "function": {
        "name": "record_lesion",
        "description": "Record one lesion seen on the CT.",
        "parameters": {
            "type": "object",
            "properties": {
                "organ": {"type": "string", "enum": ["liver", "pancreas", "kidney", "lung"]},
                "size_mm": {"type": "integer"},
            },
            "required": ["organ", "size_mm"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def _request(url: str, body: dict | None = None, timeout: float = 120.0) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode("utf-8", "replace")}


def _chat(server, **body) -> dict:
    t0 = time.monotonic()
    status, out = _request(f"{server.base_url}/chat/completions",
                           {"model": server.model, "temperature": 0, **body})
    assert status == 200, out
    out["_seconds"] = time.monotonic() - t0
    return out


def test_models_lists_served_model(vllm_server):
    status, out = _request(f"{vllm_server.base_url}/models")
    assert status == 200
    assert vllm_server.model in [m["id"] for m in out["data"]]
    # the served context the narrative's prompt budget is checked against (reasoning.client)
    assert [m["max_model_len"] for m in out["data"] if m["id"] == vllm_server.model] == [8192]


def test_lead_in_pattern_and_thinking_switch_are_accepted(vllm_server):
    """The narrative's request shape: a string `pattern` (only fact-free connectives) in a json_schema,
    and chat_template_kwargs enable_thinking=false (ignored by a template without thinking)."""
    from reasoning.narrative import LEAD_PATTERN, LEAD_RE, MAX_LEADS

    schema = {"type": "object", "properties": {"leads": {"type": "array", "minItems": 2, "maxItems": MAX_LEADS, "items": {
        "type": "string", "pattern": LEAD_PATTERN}}}, "required": ["leads"], "additionalProperties": False}
    out = _chat(vllm_server, max_tokens=120, chat_template_kwargs={"enable_thinking": False}, messages=[
        {"role": "user", "content": "Write two sentences about a 23 mm liver metastasis, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "leads", "schema": schema, "strict": True}})
    obj = json.loads(out["choices"][0]["message"]["content"])
    assert 2 <= len(obj["leads"]) <= MAX_LEADS and all(LEAD_RE.fullmatch(x) for x in obj["leads"]), obj
    print(f"pattern request: {out['_seconds']:.1f} s, {obj}")


def test_json_schema_response_format_is_enforced(vllm_server):
    out = _chat(vllm_server, max_tokens=80, messages=[
        {"role": "system", "content": "Answer with JSON only."},
        {"role": "user", "content": "CT: a 23 mm cyst in the liver, benign looking. Report it."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "finding", "schema": FINDING_SCHEMA, "strict": True}})
    choice = out["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    obj = json.loads(choice["message"]["content"])
    assert set(obj) == {"organ", "findings", "malignant"}
    assert obj["organ"] in FINDING_SCHEMA["properties"]["organ"]["enum"]
    assert isinstance(obj["findings"], list) and 1 <= len(obj["findings"]) <= 3
    assert all(f in {"mass", "cyst", "calcification"} for f in obj["findings"])
    assert isinstance(obj["malignant"], bool)
    print(f"json_schema request: {out['_seconds']:.1f} s, {out['usage']['completion_tokens']} tokens")


def test_named_tool_choice_returns_tool_call(vllm_server):
    out = _chat(vllm_server, max_tokens=60, tools=[RECORD_LESION],
                tool_choice={"type": "function", "function": {"name": "record_lesion"}},
                messages=[{"role": "user", "content": "Record the 23 mm lesion in the pancreas."}])
    msg = out["choices"][0]["message"]
    calls = msg.get("tool_calls") or []
    assert len(calls) == 1, msg
    assert calls[0]["type"] == "function" and calls[0]["function"]["name"] == "record_lesion"
    args = json.loads(calls[0]["function"]["arguments"])
    assert {"organ", "size_mm"} <= set(args)
    assert args["organ"] in RECORD_LESION["function"]["parameters"]["properties"]["organ"]["enum"]
    assert isinstance(args["size_mm"], int)
    print(f"named tool call: {out['_seconds']:.1f} s")


def test_tool_result_round_trip(vllm_server):
    out = _chat(vllm_server, max_tokens=24, tools=[RECORD_LESION], messages=[
        {"role": "user", "content": "Record the 23 mm lesion in the pancreas, then confirm."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "record_lesion", "arguments": json.dumps({"organ": "pancreas", "size_mm": 23})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"status": "recorded", "lesion_id": 1})},
    ])
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length", "tool_calls")
    print(f"tool round trip: {out['_seconds']:.1f} s")
