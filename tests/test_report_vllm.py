"""The LLM narrative against the real vLLM OpenAI-compatible server (SmolLM2-135M on CPU).

A 135M model writes poor reports: this exercises structured output, the grounding validator,
re-asks and the template fallback on real replies. Whatever engine wins, the final text must
hold only facts from findings.json (checked independently)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from reasoning.client import LLMClient
from reasoning.grounding import Validator
from reasoning.narrative import llm_draft
from templates.render import render_report
from tests.cases import build_case
from tests.test_report_template import allowed_numbers

pytestmark = pytest.mark.llm_server


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("vllm") / "case")["findings"]


def test_llm_narratives_on_real_server_are_grounded_or_fall_back(vllm_server, findings):
    import re

    client = LLMClient(vllm_server.base_url, vllm_server.model, timeout_s=600)
    # two cases: the full synthetic case and the same case reduced to its largest lesion
    small = findings.model_copy(update={"lesions": findings.lesions[:1]})
    results = []
    for f in (small, findings):
        t0 = time.perf_counter()
        d = asyncio.run(llm_draft(f, client, max_attempts=2, max_tokens=600))
        results.append((d.engine, d.attempts, round(time.perf_counter() - t0, 1)))
        assert d.engine in ("llm", "template")
        if d.engine == "template":
            assert d.fallback_reason and len(d.validation_errors) == d.attempts
        else:
            assert d.model == vllm_server.model
        # the accepted text passes the validator, and an independent scan finds only findings values
        assert Validator(f).check_report([(s.text, s.finding_ids, s.section) for s in d.sentences]) == []
        md = render_report(f, d)["report.md"]
        allowed = allowed_numbers(json.loads(f.to_json()))
        md = "\n".join(line for line in md.splitlines() if not line.startswith("_Narrative"))
        body = re.sub(r"\bL\d+\b|AJCC8|RECIST 1\.1|^\d+\. ", " ", md, flags=re.M)
        for m in re.finditer(r"(?<![\w.])-?\d+(?:\.\d+)?", body):
            assert m.group(0) in allowed, m.group(0)
    print("\nLLM narratives (engine, attempts, seconds):", results)
