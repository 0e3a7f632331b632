"""The LLM narrative path over real HTTP with a scripted OpenAI-compatible server: acceptance,
each failure class caught and re-asked with the exact errors, fallback, concurrency."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from reasoning.client import LLMClient
from reasoning.narrative import llm_draft, llm_drafts, placeholder_values
from reasoning.report import template_draft
from tests.cases import build_case
from tests.scripted_openai import ScriptedServer, reply


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("llm") / "case")["findings"]


def good_sentences(f, use_placeholders=True):
    """A correct draft as an LLM would write it: the template's facts, numbers as placeholders."""
    values = {v: k for k, v in placeholder_values(f).items()}
    out = []
    for s in template_draft(f).sentences:
        text = s.text
        if use_placeholders:
            # replace a few exact values by their placeholders (the fill-in must restore them)
            for les in f.lesions:
                key = f"{{{les.id}.long_axis_mm}}"
                val = placeholder_values(f)[key]
                text = text.replace(f"{val} x", f"{key} x", 1) if les.id in s.finding_ids else text
        out.append({"section": s.section, "group": s.group, "text": text, "finding_ids": s.finding_ids})
    del values
    return out


def run(f, handler, **kw):
    with ScriptedServer(handler) as srv:
        d = asyncio.run(llm_draft(f, LLMClient(srv.base_url), **kw))
    return d, srv


def test_accepts_a_grounded_draft_and_fills_placeholders(findings):
    d, srv = run(findings, lambda body, n: reply(good_sentences(findings)))
    assert d.engine == "llm" and d.attempts == 1 and d.validation_errors == [] and d.model == "scripted-model"
    assert d.fallback_reason is None
    l1 = findings.lesion("L1")
    assert any(f"{l1.long_axis_mm:.1f} x" in s.text for s in d.sentences if "L1" in s.finding_ids)
    assert not any("{" in s.text for s in d.sentences)
    body = srv.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    ids = schema["properties"]["sentences"]["items"]["properties"]["finding_ids"]["items"]["enum"]
    assert set(ids) == {"study"} | {f"organ:{o.name}" for o in findings.organs} | {l.id for l in findings.lesions}
    assert "guided_json" not in body and "guided_json" not in json.dumps(body.get("extra_body", {}))


def corrupt(findings, kind):
    s = good_sentences(findings, use_placeholders=False)
    i = next(k for k, x in enumerate(s) if x["finding_ids"] == ["L1"] and "x" in x["text"] and "(long x short axis, image" in x["text"])
    l1 = findings.lesion("L1")
    if kind == "number":
        s[i]["text"] = s[i]["text"].replace(f"{l1.long_axis_mm:.1f} x", f"{l1.long_axis_mm + 7:.1f} x")
    elif kind == "segment":
        k = next(k for k, x in enumerate(s) if re.search(r"in segments? [IVX]+", x["text"]))
        les = findings.lesion(s[k]["finding_ids"][0])
        wrong = next(r for n, r in ((1, "I"), (2, "II"), (3, "III")) if f"liver_segment_{n}" not in les.segments)
        s[k]["text"] = re.sub(r"in segments? [IVX]+( and [IVX]+)?", f"in segment {wrong}", s[k]["text"], count=1)
    elif kind == "invented_lesion":
        s.append({"section": "findings", "group": "liver", "text": "L9: a second hypoattenuating lesion, 12.0 x 8.0 mm.", "finding_ids": ["L1"]})
    elif kind == "vessel":
        k = next(k for k, x in enumerate(s) if "no contact with the aorta" in x["text"])
        s[k]["text"] = s[k]["text"].replace("has no contact with the aorta", "encases the aorta")
    elif kind == "missing_lesion":
        s = [x for x in s if not (x["section"] == "findings" and "L2" in x["finding_ids"])]
    return s


@pytest.mark.parametrize("kind,expect", [("number", "[number]"), ("segment", "[segment]"), ("invented_lesion", "L9"),
                                         ("vessel", "[vessel]"), ("missing_lesion", "[missing_lesion]")])
def test_each_failure_class_is_caught_and_reasked(findings, kind, expect):
    def handler(body, n):
        return reply(corrupt(findings, kind) if n == 1 else good_sentences(findings))

    d, srv = run(findings, handler)
    assert d.engine == "llm" and d.attempts == 2, d.validation_errors
    assert any(expect in e for e in d.validation_errors[0]), d.validation_errors
    # the re-ask carries the exact errors back to the model
    reask = srv.requests[1]["messages"][-1]["content"]
    assert all(e in reask for e in d.validation_errors[0][:40])


def test_falls_back_to_template_after_bounded_attempts(findings):
    d, srv = run(findings, lambda body, n: reply(corrupt(findings, "number")), max_attempts=3)
    assert d.engine == "template" and d.attempts == 3 and len(d.validation_errors) == 3
    assert "failed grounding 3 times" in d.fallback_reason
    assert len(srv.requests) == 3
    assert [s.text for s in d.sentences] == [s.text for s in template_draft(findings).sentences]


def test_malformed_json_and_server_errors_fall_back(findings):
    d, _ = run(findings, lambda body, n: {"content": "Sure! Here is the report: ..."}, max_attempts=2)
    assert d.engine == "template" and "not the required JSON" in d.validation_errors[0][0]
    d, _ = run(findings, lambda body, n: 500, max_attempts=2)
    assert d.engine == "template" and "HTTP 500" in d.fallback_reason


def test_unreachable_server_falls_back(findings):
    d = asyncio.run(llm_draft(findings, LLMClient("http://127.0.0.1:9/v1", "m", timeout_s=2)))
    assert d.engine == "template" and d.fallback_reason.startswith("LLM unavailable")


def test_many_narratives_run_concurrently_with_a_bound(findings):
    # together=3: the first three requests are answered only once all three are open at once
    with ScriptedServer(lambda body, n: reply(good_sentences(findings)), together=3) as srv:
        drafts = asyncio.run(llm_drafts([findings] * 6, LLMClient(srv.base_url), concurrency=3))
    assert all(d.engine == "llm" for d in drafts)
    assert len(srv.requests) == 6 and srv.max_in_flight == 3  # concurrent (the barrier) and bounded
