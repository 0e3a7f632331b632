"""The LLM narrative against the real vLLM OpenAI-compatible server (SmolLM2-135M on CPU).

A contract test of the serving path, not a measure of report quality: a 135M model mostly keeps
the default arrangement it is shown. What it proves on the real server: the request shapes are
accepted (json_schema with enums, a lead-in `pattern`, minItems/maxItems; chat_template_kwargs),
the served context is read from /v1/models and the prompt counted by /tokenize, the reply is
accepted at the first attempt and passes grounding and the content rules, and the report holds
only values from findings.json (scanned independently). Slow: the server takes minutes to start on
2 shared cores and a report 1-4 minutes."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest

from agent.case import measure
from reasoning.client import LLMClient, LLMContextOverflowError
from reasoning.grounding import Validator
from reasoning.narrative import (
    content_errors,
    facts_of,
    max_tokens_for,
    narrate,
    output_schema,
)
from templates.render import render_report
from tests.cases import build_case
from tests.conftest import data_path
from tests.test_report_template import allowed_numbers

pytestmark = pytest.mark.llm_server


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return {"synthetic": build_case(tmp_path_factory.mktemp("vllm") / "case")["findings"],
            "demo": measure(data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz"))}


def _numbers_only_from_findings(f, d) -> None:
    md = render_report(f, d)["report.md"]
    allowed = allowed_numbers(json.loads(f.to_json()))
    md = "\n".join(line for line in md.splitlines() if not line.startswith("_Narrative"))
    # ids, staging systems, list numbers and mask references (example_seg.nii.gz#23: a label in a file) are no values
    body = re.sub(r"\bL\d+\b|AJCC8|RECIST 1\.1|^\d+\. |[\w.-]+#\d+", " ", md, flags=re.MULTILINE)
    for m in re.finditer(r"(?<![\w.])-?\d+(?:\.\d+)?", body):
        assert m.group(0) in allowed, m.group(0)


@pytest.mark.parametrize("name", ["synthetic", "demo"])
def test_model_arrangement_accepted_at_first_attempt(vllm_server, cases, name):
    f = cases[name]
    client = LLMClient(vllm_server.base_url, vllm_server.model, timeout_s=900)
    t0 = time.perf_counter()
    r = asyncio.run(narrate(f, client, max_attempts=1))
    took = time.perf_counter() - t0
    a = r.attempts[0]
    print(f"\n{name}: engine {r.draft.engine}, outcome {a.outcome}, prompt {a.prompt_tokens} + max_tokens "
          f"{a.max_tokens} of {client.context_tokens}, {took:.0f} s, errors {r.draft.validation_errors[:1]}")
    assert r.draft.engine == "llm" and r.draft.attempts == 1, (r.draft.fallback_reason, r.draft.validation_errors)
    assert r.grounding_ok and r.content_ok and r.draft.model == vllm_server.model
    # the budget: the context came from /v1/models, the prompt was counted by the server's /tokenize
    assert client.context_tokens == 8192 and client._can_tokenize is True
    assert a.max_tokens == max_tokens_for(output_schema(facts_of(f)))
    assert a.prompt_tokens + a.max_tokens <= client.context_tokens
    s = r.draft.sentences
    assert Validator(f).check_report([(x.text, x.finding_ids, x.section) for x in s]) == []
    assert content_errors(f, s) == []
    _numbers_only_from_findings(f, r.draft)


def test_context_overflow_is_named_by_the_client_and_by_the_server(vllm_server):
    client = LLMClient(vllm_server.base_url, vllm_server.model, timeout_s=120)
    long = [{"role": "user", "content": "liver " * 9000}]

    async def go(check: bool):
        async with httpx.AsyncClient(timeout=120) as http:
            return await client.chat(long, max_tokens=16, client=http, check_context=check)

    with pytest.raises(LLMContextOverflowError) as e:  # counted before sending
        asyncio.run(go(True))
    assert e.value.prompt_tokens > 8192 and "counted by the server" in str(e.value)
    with pytest.raises(LLMContextOverflowError) as e:  # sent: vLLM's 400 is read as an overflow
        asyncio.run(go(False))
    assert e.value.status == 400
