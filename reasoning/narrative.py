"""The LLM narrative: code writes every fact, the model arranges them.

What is said is split from how it is said. Every fact-bearing phrase (size with unit, location,
attenuation, vessel contact, stage, slice) is a sentence that code renders from Findings: the
template narrative's sentences (reasoning.report.template_draft), each given an id (``F1``...).
The model's structured output (JSON schema, ``output_schema``) only arranges them: for FINDINGS
and IMPRESSION an ordered list of fact ids (an enum of that section's ids: it chooses order, what
to include beyond the REQUIRED facts, and the IMPRESSION's emphasis), plus at most ``MAX_LEADS``
lead-ins ``{"fact", "lead"}`` whose JSON-schema ``pattern`` admits only the fact-free connectives
of ``LEADS`` (no digit, organ, size or diagnosis word can appear). The schema stays small (a few
tokens per fact) so that ``max_tokens`` follows from it. Technique and Limitations are rendered by
code alone.

Every arrangement is then checked twice, and both rates are kept apart (``NarrativeRun``):
- grounding: reasoning.grounding.Validator over the rendered sentences (as for any text);
- content rules (``content_errors``): each lesion has a FINDINGS sentence with its location and
  size; the IMPRESSION names each actionable lesion (staged, or RECIST-measurable and not a cyst);
  an organ cut off by the scan edge is said to be incompletely imaged; the IMPRESSION is not
  empty; no sentence only echoes ids.
A failed check is re-asked with the error list only (never the failed reply, so the prompt does
not grow), at most ``max_attempts`` times; then the template narrative is used and the draft says
why. ``max_tokens`` follows from the schema (``max_json_chars``: the longest compact JSON the
schema admits; a token is at least one character); prompt + max_tokens is checked against the
served context before sending. Server failures end the attempt loop with a typed reason
(timeout, context overflow, HTTP error, unreachable), never a generic "unavailable".
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perception.schema import Findings

from .client import (
    DEFAULT_TIMEOUT_S,
    LLMClient,
    LLMContextOverflowError,
    LLMError,
    LLMHTTPError,
    LLMTimeoutError,
    LLMTruncatedError,
    LLMUnavailableError,
    json_schema_format,
)
from .facts import organ_id, vessel_display
from .grounding import Validator
from .limitations import size_phrase
from .report import ReportDraft, Sentence, _actionable_rank, _location, template_draft

if TYPE_CHECKING:  # httpx (~0.2 s to import) is loaded by the LLM requests, not by the template path
    import httpx

# Connectives the model may put before a fact: no digit, no organ, size, finding or diagnosis word.
LEADS = ("Also", "In addition", "Additionally", "Of note", "Notably", "Furthermore", "Moreover", "Separately",
         "Elsewhere", "In summary", "Overall")
LEAD_PATTERN = "^(" + "|".join(re.escape(w).replace("\\ ", " ") for w in LEADS) + ")$"
LEAD_RE = re.compile(LEAD_PATTERN)
MODEL_SECTIONS = ("findings", "impression")
MAX_LEADS = 6
TOKEN_MARGIN = 16  # end-of-sequence and the odd special token, beyond the schema's longest JSON

DEFAULT_ANSWER_INTRO = "A valid answer (every fact, in the default order; improve the order and add lead-ins if you wish):"
_ID_RE = re.compile(r"\b(?:L\d+|study|organ:[a-z_]+)\b")
_LOWER_FIRST = ("The", "No", "Incompletely")

SYSTEM = """You arrange a CT report from fact sentences that are already written. You never write a fact.
For the FINDINGS and the IMPRESSION you choose which facts to include and their order. You may give up to
{max_leads} facts a lead-in from this list: {leads}.
Rules:
- Facts marked REQUIRED must be included. Use each fact at most once, only in its own section.
- In the IMPRESSION put the most important finding first.
Answer with JSON only: {{"findings":["F1",...],"impression":[...],"lead_ins":[{{"fact":"F2","lead":"Also"}}]}}."""


@dataclass(frozen=True)
class Fact:
    """One sentence written by code, with the id the model refers to it by."""

    id: str
    sentence: Sentence
    required: bool


def actionable(f: Findings) -> list[str]:
    """Ids of the lesions an impression must name: staged, or RECIST-measurable and not a cyst."""
    return [les.id for les in f.lesions if _actionable_rank(les)[0] < 0]


@dataclass(frozen=True)
class Rule:
    """A content rule: some sentence (of ``section``, if given) citing ``finding_id`` must match
    ``pattern``; ``error`` says what is missing."""

    finding_id: str
    pattern: re.Pattern
    error: str
    section: str | None = None

    def holds(self, s: Sentence) -> bool:
        return ((self.section is None or s.section == self.section) and self.finding_id in s.finding_ids
                and self.pattern.search(s.text) is not None)


def _all_of(*phrases: str) -> re.Pattern:
    return re.compile("".join(f"(?=.*{re.escape(p)})" for p in phrases), re.DOTALL)


def content_rules(f: Findings) -> list[Rule]:
    """What every report of these findings must say (each rule met by at least one sentence)."""
    rules = []
    for les in f.lesions:
        loc, size = _location(les), size_phrase(les)
        rules.append(Rule(les.id, _all_of(loc, size), f"[content] {les.id}: no FINDINGS sentence gives its location "
                          f"('{loc}') and size ('{size}')", "findings"))
        for v in les.vessel_contacts:
            if v.category.value != "none":
                phrase = f"{'encases' if v.category.value == 'encasement' else 'abuts'} the {vessel_display(v.vessel)}"
                rules.append(Rule(les.id, _all_of(phrase), f"[content] {les.id}: '{phrase}' is not stated"))
        for h in les.staging:
            if h.category != "not assessed":
                rules.append(Rule(les.id, re.compile(rf"(?<!\w){re.escape(h.category)}(?!\w)"),
                                  f"[content] {les.id}: its {h.system} category {h.category} is not stated"))
    for lid in actionable(f):
        rules.append(Rule(lid, re.compile(rf"\b{lid}\b"), f"[content] {lid}: actionable lesion not named in the "
                          "IMPRESSION", "impression"))
    for o in f.organs:
        if o.status.value == "truncated_by_fov":
            rules.append(Rule(organ_id(o.name), re.compile("incompletely imaged", re.IGNORECASE),
                              f"[content] {o.name}: cut off by the scan edge but not said to be incompletely imaged"))
    return rules


def facts_of(f: Findings, style: str = "structured") -> list[Fact]:
    """The template narrative's FINDINGS and IMPRESSION sentences as numbered facts; a fact that
    meets a content rule on its own is REQUIRED."""
    rules = content_rules(f)
    out = []
    for s in template_draft(f, style).sentences:
        if s.section in MODEL_SECTIONS:
            out.append(Fact(f"F{len(out) + 1}", s, any(r.holds(s) for r in rules)))
    return out


def output_schema(facts: list[Fact]) -> dict:
    """Per section an ordered list of that section's fact ids; a few lead-ins (fact id, connective)."""
    props = {}
    for sec in MODEL_SECTIONS:
        ids = [x.id for x in facts if x.sentence.section == sec]
        n_req = sum(x.required for x in facts if x.sentence.section == sec)
        props[sec] = {"type": "array", "items": {"type": "string", "enum": ids},
                      "minItems": n_req or (1 if sec == "impression" and ids else 0), "maxItems": len(ids)}
    lead = {"type": "object",
            "properties": {"fact": {"type": "string", "enum": [x.id for x in facts]},
                           "lead": {"type": "string", "pattern": LEAD_PATTERN}},  # xgrammar refuses pattern + maxLength
            "required": ["fact", "lead"], "additionalProperties": False}
    props["lead_ins"] = {"type": "array", "items": lead, "maxItems": MAX_LEADS}
    return {"type": "object", "properties": props, "required": [*MODEL_SECTIONS, "lead_ins"], "additionalProperties": False}


def max_json_chars(schema: dict) -> int:
    """Length of the longest compact JSON text the schema admits (the subset output_schema uses)."""
    t = schema.get("type")
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"])
    if t == "string":
        if "maxLength" in schema:
            return schema["maxLength"] + 2
        m = re.fullmatch(r"\^\(([^()*+{}\[\]]*)\)\??\$", schema.get("pattern", ""))
        if m is None:  # only an anchored alternation of literals has a length bound we can read
            raise ValueError(f"string without maxLength, enum or a literal-alternation pattern has no bound: {schema}")
        return max(len(re.sub(r"\\(.)", r"\1", alt)) for alt in m.group(1).split("|")) + 2
    if t == "array":
        n = schema["maxItems"]
        return 2 + n * max_json_chars(schema["items"]) + max(0, n - 1)
    if t == "object":
        props = schema["properties"]
        return 2 + sum(len(json.dumps(k)) + 1 + max_json_chars(v) for k, v in props.items()) + max(0, len(props) - 1)
    raise ValueError(f"no length bound for schema type {t!r}")


def max_tokens_for(schema: dict) -> int:
    """Tokens enough for any reply the schema admits: each token is at least one character."""
    return max_json_chars(schema) + TOKEN_MARGIN


def facts_prompt(facts: list[Fact]) -> str:
    lines = []
    for sec in MODEL_SECTIONS:
        lines.append(f"{sec.upper()} facts:")
        for x in facts:
            if x.sentence.section == sec:
                where = f"[{x.sentence.group}] " if x.sentence.group else ""
                lines.append(f"{x.id} {where}{'(REQUIRED) ' if x.required else ''}{x.sentence.text}")
        lines.append("")
    default = {sec: [x.id for x in facts if x.sentence.section == sec] for sec in MODEL_SECTIONS} | {"lead_ins": []}
    lines.append(DEFAULT_ANSWER_INTRO)
    lines.append(json.dumps(default, separators=(",", ":")))
    return "\n".join(lines)


def render(item_lead: str, s: Sentence) -> Sentence:
    """The fact sentence with its lead-in prepended (the fact text itself is never changed)."""
    if not item_lead:
        return s
    text = s.text
    first = text.split(" ", 1)[0]
    if first in _LOWER_FIRST:
        text = text[0].lower() + text[1:]
    return s.model_copy(update={"text": f"{item_lead}, {text}"})


def parse_reply(content: str | None, facts: list[Fact]) -> tuple[list[Sentence], list[str]]:
    """The arranged sentences from the model's JSON, or the problems that prevent reading it."""
    if not content:
        return [], ["[format] the reply was empty; answer with the JSON object"]
    try:
        data = json.loads(content)
        if not isinstance(data, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError) as e:
        return [], [f"[format] the reply is not the required JSON object ({type(e).__name__})"]
    by_id = {x.id: x for x in facts}
    errs: list[str] = []
    extra = set(data) - {*MODEL_SECTIONS, "lead_ins"}
    if extra:
        errs.append(f"[format] unknown keys {sorted(extra)}; expected findings, impression, lead_ins")
    leads: dict[str, str] = {}
    raw_leads = data.get("lead_ins", [])
    if not isinstance(raw_leads, list) or len(raw_leads) > MAX_LEADS:
        errs.append(f"[format] 'lead_ins' must be a list of at most {MAX_LEADS} {{\"fact\", \"lead\"}} objects")
        raw_leads = []
    for i, it in enumerate(raw_leads):
        fid, lead = (it.get("fact"), it.get("lead")) if isinstance(it, dict) else (None, None)
        if not isinstance(it, dict) or set(it) != {"fact", "lead"} or not isinstance(fid, str) or fid not in by_id:
            errs.append(f"[format] lead_ins item {i + 1}: expected {{\"fact\": <a fact id>, \"lead\": <a lead-in>}}")
        elif not isinstance(lead, str) or not LEAD_RE.fullmatch(lead):
            errs.append(f"[format] lead_ins item {i + 1}: lead {lead!r} is not one of {', '.join(LEADS)}")
        elif fid in leads:
            errs.append(f"[format] lead_ins item {i + 1}: {fid} has two lead-ins")
        else:
            leads[fid] = lead
    out, seen = [], set()
    for sec in MODEL_SECTIONS:
        items = data.get(sec)
        if not isinstance(items, list):
            errs.append(f"[format] '{sec}' must be a list of {sec} fact ids")
            continue
        for i, fid in enumerate(items):
            where = f"{sec} item {i + 1}"
            x = by_id.get(fid) if isinstance(fid, str) else None
            if x is None or x.sentence.section != sec:
                errs.append(f"[format] {where}: {fid!r} is not a {sec} fact id")
            elif fid in seen:
                errs.append(f"[format] {where}: {fid} is used twice")
            else:
                seen.add(fid)
                out.append(render(leads.get(fid, ""), x.sentence))
    errs += [f"[format] lead-in for {fid}, a fact not included" for fid in leads if fid not in seen]
    missing = [x.id for x in facts if x.required and x.id not in seen]
    if missing:
        errs.append(f"[format] required facts missing: {', '.join(missing)}")
    return out, errs


def content_errors(f: Findings, sentences: list[Sentence]) -> list[str]:
    """The content rules, on any draft's sentences (LLM or template), independent of grounding."""
    errs = [r.error for r in content_rules(f) if not any(r.holds(s) for s in sentences)]
    if not any(s.section == "impression" for s in sentences):
        errs.append("[content] the IMPRESSION is empty")
    for i, s in enumerate(sentences):
        words = re.findall(r"[A-Za-z]{2,}", _ID_RE.sub(" ", s.text))
        if len(words) < 2:
            errs.append(f"[content] sentence {i + 1} ({s.text!r}) only echoes ids")
    return errs


@dataclass
class Attempt:
    """One request: its outcome class and the checks' error counts."""

    outcome: str  # accepted | rejected | truncated | <LLMError.kind>
    grounding_errors: int = 0
    content_errors: int = 0
    format_errors: int = 0
    prompt_tokens: int | None = None
    max_tokens: int = 0
    seconds: float = 0.0


@dataclass
class NarrativeRun:
    """A narrative and how it was reached (what the benchmark and the tests measure)."""

    draft: ReportDraft
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.draft.engine == "llm"

    @property
    def error_class(self) -> str | None:
        """Why the template was used: the typed LLM error kind, 'rejected' (checks), or None."""
        return None if self.accepted else (self.attempts[-1].outcome if self.attempts else "not_asked")

    @property
    def grounding_ok(self) -> bool:
        """The first complete arrangement passed grounding."""
        return any(a.outcome in ("accepted", "rejected") and a.grounding_errors == 0 and a.format_errors == 0
                   for a in self.attempts[:1])

    @property
    def content_ok(self) -> bool:
        """The first complete arrangement passed the content rules."""
        return any(a.outcome in ("accepted", "rejected") and a.content_errors == 0 and a.format_errors == 0
                   for a in self.attempts[:1])


def _reason(e: LLMError, attempt: int) -> str:
    if isinstance(e, LLMTimeoutError):
        return f"LLM timed out after {e.timeout_s:g} s"  # agent.dataset.case.TIMED_OUT is this prefix
    what = {LLMContextOverflowError: "LLM context overflow", LLMUnavailableError: "LLM unavailable",
            LLMHTTPError: "LLM server error"}.get(type(e), "LLM reply unusable")
    return f"{what} ({type(e).__name__}, attempt {attempt}): {e}"


async def narrate(f: Findings, client: LLMClient, *, max_attempts: int = 3, style: str = "structured",
                  http: httpx.AsyncClient | None = None, max_tokens: int | None = None) -> NarrativeRun:
    """The model's arrangement if it passes grounding and the content rules within max_attempts,
    else the template narrative with the reason. ``max_tokens``: default from the schema."""
    t0 = time.perf_counter()
    reference = template_draft(f, style)
    facts = facts_of(f, style)
    validator = Validator(f)
    schema = output_schema(facts)
    limit = max_tokens or max_tokens_for(schema)
    fmt = json_schema_format("report_arrangement", schema)
    base = [{"role": "system", "content": SYSTEM.format(leads=", ".join(LEADS), max_leads=MAX_LEADS)},
            {"role": "user", "content": facts_prompt(facts)}]
    messages = base
    run = NarrativeRun(reference)
    errors_seen: list[list[str]] = []
    model = client.model

    def fallback(reason: str) -> NarrativeRun:
        run.draft = reference.model_copy(update={
            "attempts": len(run.attempts), "validation_errors": errors_seen, "model": model,
            "fallback_reason": reason, "seconds": time.perf_counter() - t0})
        return run

    import httpx

    own = http is None
    http = http or httpx.AsyncClient(timeout=client.timeout_s)
    try:
        for attempt in range(1, max_attempts + 1):
            ta = time.perf_counter()
            rec = Attempt("rejected", max_tokens=limit)
            run.attempts.append(rec)
            try:
                rec.prompt_tokens = await client.check_budget(messages, limit, http)
                msg = await client.chat(messages, response_format=fmt, client=http, max_tokens=limit)
                model = client.model
                if msg.get("finish_reason") == "length":
                    raise LLMTruncatedError(f"the reply ran to max_tokens ({limit}) before the JSON closed", limit)
            except LLMTruncatedError as e:
                rec.outcome, rec.seconds = "truncated", time.perf_counter() - ta
                errs = [f"[truncated] {e}; answer with compact JSON, each fact once"]
            except LLMError as e:
                rec.outcome, rec.seconds = e.kind, time.perf_counter() - ta
                errors_seen.append([f"[{e.kind}] {e}"])
                return fallback(_reason(e, attempt))
            else:
                sentences, errs = parse_reply(msg.get("content"), facts)
                rec.format_errors = len(errs)
                if sentences:
                    g = [str(x) for x in validator.check_report([(s.text, s.finding_ids, s.section) for s in sentences])]
                    c = content_errors(f, sentences)
                    rec.grounding_errors, rec.content_errors = len(g), len(c)
                    errs += g + c
                rec.seconds = time.perf_counter() - ta
                if not errs:
                    rec.outcome = "accepted"
                    head = [s for s in reference.sentences if s.section == "technique"]
                    lim = [s for s in reference.sentences if s.section == "limitations"]
                    run.draft = ReportDraft(engine="llm", model=model, style=style, attempts=attempt,
                                            validation_errors=errors_seen, sentences=head + sentences + lim,
                                            seconds=time.perf_counter() - t0)
                    return run
            errors_seen.append(errs)
            # the re-ask carries the error list, never the failed reply: the prompt does not grow
            messages = base + [{"role": "user", "content": "Your previous answer had these errors; answer again with the "
                                "full JSON, fixing every one:\n- " + "\n- ".join(errs[:30])}]
    finally:
        if own:
            await http.aclose()
    n_g = sum(a.grounding_errors for a in run.attempts)
    n_c = sum(a.content_errors for a in run.attempts)
    n_f = sum(a.format_errors for a in run.attempts)
    return fallback(f"the LLM arrangement failed its checks {max_attempts} times ({n_f} format, {n_g} grounding, "
                    f"{n_c} content-rule errors); template narrative used")


async def llm_draft(f: Findings, client: LLMClient, *, max_attempts: int = 3, style: str = "structured",
                    http: httpx.AsyncClient | None = None, max_tokens: int | None = None) -> ReportDraft:
    """The LLM narrative if it passes the checks within max_attempts, else the template narrative."""
    return (await narrate(f, client, max_attempts=max_attempts, style=style, http=http, max_tokens=max_tokens)).draft


async def narrate_many(findings: list[Findings], client: LLMClient, *, concurrency: int = 8, max_attempts: int = 3,
                       style: str = "structured") -> list[NarrativeRun]:
    """Many narratives through concurrent requests (bounded), so the server can batch them."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=client.timeout_s) as http:
        try:
            await client.resolve_model(http)
        except LLMError:
            pass  # each case falls back with the typed reason

        async def one(f: Findings) -> NarrativeRun:
            async with sem:
                return await narrate(f, client, max_attempts=max_attempts, style=style, http=http)

        return list(await asyncio.gather(*(one(f) for f in findings)))


async def llm_drafts(findings: list[Findings], client: LLMClient, *, concurrency: int = 8, max_attempts: int = 3,
                     style: str = "structured") -> list[ReportDraft]:
    return [r.draft for r in await narrate_many(findings, client, concurrency=concurrency, max_attempts=max_attempts,
                                                style=style)]


def draft_report(f: Findings, llm_url: str | None = None, model: str | None = None, *, style: str = "structured",
                 max_attempts: int = 3, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> ReportDraft:
    """Synchronous entry point: LLM narrative when a server URL is given, template otherwise."""
    if not llm_url:
        return template_draft(f, style)
    return asyncio.run(llm_draft(f, LLMClient(llm_url, model, api_key, timeout_s), max_attempts=max_attempts,
                                 style=style))
