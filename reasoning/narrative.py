"""The LLM narrative: structured output, placeholder numbers, grounding check, bounded re-asks,
template fallback.

The model answers with JSON matching ``output_schema(findings)``: sentences, each with a section,
an organ group and the finding ids it rests on (an enum of the real ids, so it cannot cite an
invented finding). Numbers may be written as placeholders ``{L1.long_axis_mm}`` which are replaced
by the exact formatted value before validation, so the model never has to copy digits. Every
sentence then goes through reasoning.grounding; errors are sent back verbatim for at most
``max_attempts`` attempts; after that the template narrative is used and the draft says why.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx

from perception.schema import Findings

from .client import DEFAULT_TIMEOUT_S, LLMClient, LLMError, LLMTimeoutError, json_schema_format
from .facts import all_ids
from .grounding import Validator
from .limitations import is_lower_bound, slice_number
from .report import GROUPS, ReportDraft, Sentence, template_draft

PLACEHOLDER_RE = re.compile(r"\{(L\d+|study|organ:[a-z_]+)\.([a-z0-9_]+)\}")

SYSTEM = """You are a board-certified abdominal radiologist drafting a CT report.
Rules:
- Use ONLY the facts given. Never add a measurement, location, vessel, stage, or lesion that is not listed.
- Every sentence cites the finding ids it rests on (finding_ids). Mention each lesion in the FINDINGS section.
- Write numbers as the placeholders shown in the facts, e.g. {L1.long_axis_mm} mm; they are filled in exactly.
- Organs cut off by the scan edge are 'incompletely imaged', never 'normal'. N and M stages are never stated.
- Sizes of lesions reaching the scan edge are lower bounds: write 'at least'. Slices are written as 'image <number>'.
- Never write 'no lesion' for an organ unless the reference draft does (it names what searched that organ).
- Sections: technique (phase, slice thickness), findings (organ by organ, group = organ group), impression
  (actionable findings first, then counts and totals).
Answer with JSON only."""


def _fmt(v: float, unit: str) -> str:
    return f"{v:.0f}" if unit == "deg" else (f"{v:.2f}" if unit == "mL" else f"{v:.1f}")


def placeholder_values(f: Findings) -> dict[str, str]:
    """placeholder -> formatted value, for every numeric field the prompt offers."""
    out = {"{study.slice_thickness_mm}": f"{f.study.slice_thickness_mm:.1f}"}
    for o in f.organs:
        for field, unit in (("volume_ml", "mL"), ("mean_hu", "HU")):
            v = getattr(o, field)
            if v is not None:
                out[f"{{organ:{o.name}.{field}}}"] = _fmt(v, unit)
    for les in f.lesions:
        for field, unit in (("long_axis_mm", "mm"), ("short_axis_mm", "mm"), ("max_diameter_3d_mm", "mm"),
                            ("volume_ml", "mL"), ("mean_hu", "HU"), ("organ_mean_hu", "HU"), ("hu_difference", "HU")):
            v = getattr(les, field)
            if v is not None:
                out[f"{{{les.id}.{field}}}"] = _fmt(v, unit)
        out[f"{{{les.id}.image_number}}"] = str(slice_number(les))  # the image a radiologist opens, not the 0-based index
        for vc in les.vessel_contacts:
            out[f"{{{les.id}.{vc.vessel}_angle_deg}}"] = _fmt(vc.max_angle_deg, "deg")
            out[f"{{{les.id}.{vc.vessel}_contact_mm}}"] = _fmt(vc.contact_length_mm, "mm")
    return out


def facts_digest(f: Findings) -> str:
    ph = placeholder_values(f)
    lines = [f"study: phase {f.study.contrast_phase.phase} ({f.study.contrast_phase.source}); slice thickness "
             f"{{study.slice_thickness_mm}} mm; {len(f.lesions)} lesions"]
    for o in f.organs:
        bits = [o.status.value]
        for field, unit in (("volume_ml", "mL"), ("mean_hu", "HU")):
            key = f"{{organ:{o.name}.{field}}}"
            if key in ph:
                bits.append(f"{field} {key} {unit}")
        bits += [f"{fl.name} positive ({fl.rule})" for fl in o.flags if fl.status == "positive"]
        lines.append(f"organ:{o.name}: " + "; ".join(bits))
    for les in f.lesions:
        p = lambda k: f"{{{les.id}.{k}}}"
        bits = [f"{les.kind} in {les.organ or 'no organ'}", f"size {'at least ' if is_lower_bound(les) else ''}{p('long_axis_mm')} x {p('short_axis_mm')} mm "
                f"on image {p('image_number')}" + (" (sizes are lower bounds: the lesion reaches the scan edge)" if is_lower_bound(les) else ""),
                f"volume {p('volume_ml')} mL", f"mean {p('mean_hu')} HU"]
        if les.organ_mean_hu is not None:
            bits.append(f"{les.attenuation_term}, organ {p('organ_mean_hu')} HU, difference {p('hu_difference')} HU")
        if les.segments:
            bits.append("segments " + ", ".join(les.segments))
        if les.laterality:
            bits.append(f"side {les.laterality}" + (f", {les.kidney_pole} pole" if les.kidney_pole else ""))
        for vc in les.vessel_contacts:
            bits.append(f"vessel {vc.vessel}: {vc.category.value}" + (
                f" {p(vc.vessel + '_angle_deg')} degrees over {p(vc.vessel + '_contact_mm')} mm" if vc.category.value != "none" else ""))
        bits += [f"{h.system}: {h.category}" for h in les.staging if h.category != "not assessed"]
        lines.append(f"{les.id}: " + "; ".join(bits))
    return "\n".join(lines)


def output_schema(f: Findings) -> dict:
    return {
        "type": "object",
        "properties": {"sentences": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {
                "section": {"type": "string", "enum": ["technique", "findings", "impression"]},
                "group": {"type": "string", "enum": GROUPS + [""]},
                "text": {"type": "string"},
                "finding_ids": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": all_ids(f)}},
            },
            "required": ["section", "group", "text", "finding_ids"], "additionalProperties": False}}},
        "required": ["sentences"], "additionalProperties": False,
    }


def fill_placeholders(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    unknown = []

    def sub(m: re.Match) -> str:
        if m.group(0) in values:
            return values[m.group(0)]
        unknown.append(m.group(0))
        return m.group(0)

    return PLACEHOLDER_RE.sub(sub, text), unknown


def parse_reply(content: str | None, f: Findings, values: dict[str, str]) -> tuple[list[Sentence], list[str]]:
    """Sentences from the model's JSON, or the problems that prevent reading it."""
    if not content:
        return [], ["the reply was empty; answer with the JSON object"]
    try:
        data = json.loads(content)
        raw = data["sentences"]
        assert isinstance(raw, list) and raw
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        return [], [f"the reply is not the required JSON object with a non-empty 'sentences' list ({type(e).__name__})"]
    out, errs = [], []
    for i, s in enumerate(raw):
        try:
            text, unknown = fill_placeholders(str(s["text"]), values)
            for u in unknown:
                errs.append(f"sentence {i + 1}: unknown placeholder {u}")
            out.append(Sentence(section=s["section"], group=s.get("group", ""), text=text.strip(),
                                finding_ids=list(s["finding_ids"])))
        except (KeyError, TypeError, ValueError) as e:
            errs.append(f"sentence {i + 1}: malformed ({type(e).__name__}: {e})")
    return out, errs


async def llm_draft(f: Findings, client: LLMClient, *, max_attempts: int = 3, style: str = "structured",
                    http: httpx.AsyncClient | None = None, max_tokens: int = 2000) -> ReportDraft:
    """The LLM narrative if it passes grounding within max_attempts, else the template narrative."""
    t0 = time.perf_counter()
    validator = Validator(f)
    values = placeholder_values(f)
    reference = template_draft(f, style)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "FACTS (finding id: facts):\n" + facts_digest(f)
         + "\n\nREFERENCE DRAFT (correct but terse; rewrite it as a fluent report, keep every fact):\n"
         + "\n".join(f"[{s.section}/{s.group or '-'}] ({', '.join(s.finding_ids)}) {s.text}" for s in reference.sentences
                      if s.section != "limitations")},
    ]
    fmt = json_schema_format("report_draft", output_schema(f))
    errors_seen: list[list[str]] = []
    model = client.model
    for attempt in range(1, max_attempts + 1):
        try:
            msg = await client.chat(messages, response_format=fmt, client=http, max_tokens=max_tokens)
        except LLMError as e:
            errors_seen.append([str(e)])
            reason = (f"LLM timed out after {e.timeout_s:g} s" if isinstance(e, LLMTimeoutError)
                      else f"LLM unavailable: {e}")
            return reference.model_copy(update={"attempts": attempt, "validation_errors": errors_seen, "model": client.model,
                                                "fallback_reason": reason, "seconds": time.perf_counter() - t0})
        model = client.model
        content = msg.get("content")
        sentences, errs = parse_reply(content, f, values)
        if sentences:
            errs += [str(e) for e in validator.check_report([(s.text, s.finding_ids, s.section) for s in sentences])]
        if not errs:
            # the Limitations part is rendered by code, never rewritten by the model
            lim = [s for s in reference.sentences if s.section == "limitations"]
            return ReportDraft(engine="llm", model=model, style=style, attempts=attempt, validation_errors=errors_seen,
                               sentences=[s for s in sentences if s.section != "limitations"] + lim,
                               seconds=time.perf_counter() - t0)
        errors_seen.append(errs)
        messages += [{"role": "assistant", "content": content or ""},
                     {"role": "user", "content": "Your draft has these errors; fix every one and answer with the full corrected JSON:\n- "
                      + "\n- ".join(errs[:40])}]
    return reference.model_copy(update={
        "attempts": max_attempts, "validation_errors": errors_seen, "model": model,
        "fallback_reason": f"the LLM draft failed grounding {max_attempts} times; template narrative used",
        "seconds": time.perf_counter() - t0})


async def llm_drafts(findings: list[Findings], client: LLMClient, *, concurrency: int = 8, max_attempts: int = 3,
                     style: str = "structured") -> list[ReportDraft]:
    """Many narratives through concurrent requests (bounded), so the server can batch them."""
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=client.timeout_s) as http:
        await client.resolve_model(http)

        async def one(f: Findings) -> ReportDraft:
            async with sem:
                return await llm_draft(f, client, max_attempts=max_attempts, style=style, http=http)

        return list(await asyncio.gather(*(one(f) for f in findings)))


def draft_report(f: Findings, llm_url: str | None = None, model: str | None = None, *, style: str = "structured",
                 max_attempts: int = 3, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> ReportDraft:
    """Synchronous entry point: LLM narrative when a server URL is given, template otherwise."""
    if not llm_url:
        return template_draft(f, style)
    return asyncio.run(llm_draft(f, LLMClient(llm_url, model, api_key, timeout_s), max_attempts=max_attempts,
                                 style=style))
