"""GPU benchmark of the LLM paths: serve a real model with vLLM and measure the narrative and the
chat tool choice on the test cases. One command, at most ``--budget-s`` seconds (default 600):

    python -m eval.bench_llm_gpu --model /models/Qwen3-8B            # starts vLLM on the GPU
    python -m eval.bench_llm_gpu --url http://127.0.0.1:8000/v1      # a server already running

NOT RUN ON A GPU YET: no GPU was lent to the task that wrote it. Its measurement loop and argument
parsing are tested on CPU against the scripted OpenAI-compatible server
(tests/test_bench_llm_gpu.py), and the serving path against the CPU vLLM test server
(tests/test_report_vllm.py). The GPU machine has no network: ``--model`` is a local folder with
the weights (Qwen3-8B, or MedGemma with its own chat template and tool parser via --server-arg).

Measured, written to ``--out`` (eval/results/llm_gpu.json):
- narratives, each case once at concurrency 1: acceptance (engine llm), attempts, error classes
  (accepted, rejected, truncated, timeout, context_overflow, http_error, unavailable), grounding
  rate and content-rule rate of the first arrangement (reasoning.narrative.NarrativeRun);
- seconds per report at concurrency 8 and 32 (the cases cycled to that many reports; wall time
  divided by reports, and the median latency of one report);
- chat tool-choice accuracy: questions with a known right tool (reasoning.chat_tools.TOOL_SPECS as
  strict OpenAI tools, tool_choice "required"); the first call's name against the expected one.
Qwen3 thinking is switched off per request (chat_template_kwargs enable_thinking false, sent by
reasoning.client); ``--server-arg=--reasoning-parser=qwen3`` is the alternative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from perception.schema import Findings
from reasoning.client import LLMClient, LLMError
from reasoning.narrative import NarrativeRun, narrate_many

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "llm_gpu.json"

# (question, the tool that answers it); a tool the chat module no longer has is skipped and listed
TOOL_QUESTIONS: list[tuple[str, str]] = [
    ("List every lesion in the liver.", "list_lesions"),
    ("Which lesions were found?", "list_lesions"),
    ("How large is lesion L1?", "get_lesion"),
    ("What is the mean attenuation of L2?", "get_lesion"),
    ("What is the volume of the spleen?", "get_organ"),
    ("Is the pancreas fully imaged?", "get_organ"),
    ("Which is larger, L1 or L2?", "compare"),
    ("Compare the volume of the liver and the spleen.", "compare"),
    ("What does AJCC T1a mean for a kidney tumour?", "lookup_medical_knowledge"),
    ("What is the RECIST 1.1 definition of a measurable lesion?", "lookup_medical_knowledge"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m eval.bench_llm_gpu", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="local model folder to serve with vLLM (Qwen3-8B, MedGemma)")
    src.add_argument("--url", help="an OpenAI-compatible server already running (…/v1)")
    p.add_argument("--served-name", default=None, help="model name to request (default: the first served)")
    p.add_argument("--python", default=sys.executable, help="interpreter with vllm (CUDA build) installed")
    p.add_argument("--max-model-len", type=int, default=8192)
    p.add_argument("--server-arg", action="append", default=[], help="extra vLLM argument (repeatable)")
    p.add_argument("--structured-backend", default="xgrammar", choices=("xgrammar", "guidance", "auto"))
    p.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--timeout-s", type=float, default=180.0, help="per LLM request")
    p.add_argument("--budget-s", type=float, default=600.0, help="whole run, server start included")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    if any(c < 1 for c in a.concurrency) or a.max_attempts < 1 or a.budget_s <= 0 or a.timeout_s <= 0:
        p.error(f"--concurrency >= 1, --max-attempts >= 1, --budget-s and --timeout-s > 0 expected; got "
                f"{a.concurrency}, {a.max_attempts}, {a.budget_s}, {a.timeout_s}")
    return a


def bench_cases(tmp: Path) -> dict[str, Findings]:
    """The cases the tests use: the real-CT case with synthetic lesions, variants of it, the demo."""
    from agent.case import measure
    from tests.cases import build_case
    from tests.conftest import data_path

    syn = build_case(tmp / "synthetic")["findings"]
    cases = {"synthetic": syn,
             "synthetic_one_lesion": syn.model_copy(update={"lesions": syn.lesions[:1]}),
             "synthetic_no_lesion": syn.model_copy(update={"lesions": []})}
    try:
        cases["demo"] = measure(data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz"))
    except Exception as e:  # noqa: BLE001 - the demo data may be absent on a bare machine: say so, go on
        print(f"demo case skipped: {type(e).__name__}: {e}", file=sys.stderr)
    return cases


def summarize(runs: list[NarrativeRun]) -> dict:
    n = len(runs)
    classes = Counter(a.outcome for r in runs for a in r.attempts)
    return {"reports": n,
            "acceptance": sum(r.accepted for r in runs) / n if n else None,
            "accepted_first_attempt": sum(r.accepted and r.draft.attempts == 1 for r in runs) / n if n else None,
            "mean_attempts": statistics.fmean(len(r.attempts) for r in runs) if n else None,
            "grounding_rate": sum(r.grounding_ok for r in runs) / n if n else None,
            "content_rule_rate": sum(r.content_ok for r in runs) / n if n else None,
            "attempt_outcomes": dict(sorted(classes.items())),
            "fallback_classes": dict(Counter(r.error_class for r in runs if not r.accepted))}


async def measure_reports(cases: dict[str, Findings], client: LLMClient, *, concurrency: int, n_reports: int,
                          max_attempts: int) -> dict:
    """``n_reports`` narratives (the cases cycled) at ``concurrency``: the summary and the timing."""
    names = list(cases)
    batch = [cases[names[i % len(names)]] for i in range(n_reports)]
    t0 = time.perf_counter()
    runs = await narrate_many(batch, client, concurrency=concurrency, max_attempts=max_attempts)
    wall = time.perf_counter() - t0
    out = summarize(runs)
    out.update({"concurrency": concurrency, "wall_s": round(wall, 2),
                "seconds_per_report": round(wall / n_reports, 3),
                "median_report_latency_s": round(statistics.median(r.draft.seconds or 0 for r in runs), 2)})
    return out


def tool_specs() -> tuple[list[dict], list[str]]:
    """reasoning.chat_tools.TOOL_SPECS as strict OpenAI tools, and the tool names."""
    from reasoning.chat_tools import TOOL_SPECS

    tools = [{"type": "function", "function": {"name": name, "description": desc, "strict": True,
                                               "parameters": schema.model_json_schema()}}
             for name, (schema, desc) in TOOL_SPECS.items()]
    return tools, list(TOOL_SPECS)


async def measure_tool_choice(client: LLMClient, findings: Findings, questions=TOOL_QUESTIONS) -> dict:
    """First tool call per question (tool_choice "required") against the expected tool."""
    tools, names = tool_specs()
    asked = [(q, t) for q, t in questions if t in names]
    skipped = [t for _, t in questions if t not in names]
    system = (f"You answer questions about one CT study through tools. The study has {len(findings.lesions)} "
              f"lesions ({', '.join(les.id for les in findings.lesions)}). Call the tool that answers the question.")
    rows = []
    async with httpx.AsyncClient(timeout=client.timeout_s) as http:
        for q, want in asked:
            try:
                msg = await client.chat([{"role": "system", "content": system}, {"role": "user", "content": q}],
                                        tools=tools, tool_choice="required", max_tokens=256, client=http)
                calls = msg.get("tool_calls") or []
                got = calls[0]["function"]["name"] if calls else None
                err = None
            except LLMError as e:
                got, err = None, f"{e.kind}: {e}"
            rows.append({"question": q, "expected": want, "called": got, "correct": got == want, "error": err})
    n = len(rows)
    return {"questions": n, "accuracy": sum(r["correct"] for r in rows) / n if n else None,
            "skipped_tools": sorted(set(skipped)), "rows": rows}


async def run_bench(cases: dict[str, Findings], client: LLMClient, *, concurrency: list[int], max_attempts: int,
                    deadline: float) -> dict:
    """All measurements, each skipped (and said so) when the deadline has passed."""
    out: dict = {"model": client.model, "cases": list(cases), "skipped": []}
    async with httpx.AsyncClient(timeout=client.timeout_s) as http:
        await client.resolve_model(http)
    out["model"], out["context_tokens"] = client.model, client.context_tokens
    out["single"] = await measure_reports(cases, client, concurrency=1, n_reports=len(cases), max_attempts=max_attempts)
    out["throughput"] = []
    for c in concurrency:
        if time.monotonic() > deadline:
            out["skipped"].append(f"concurrency {c}: time budget spent")
            continue
        out["throughput"].append(await measure_reports(cases, client, concurrency=c, n_reports=c,
                                                       max_attempts=max_attempts))
    if time.monotonic() > deadline:
        out["skipped"].append("tool choice: time budget spent")
    else:
        biggest = max(cases.values(), key=lambda f: len(f.lesions))
        out["tool_choice"] = await measure_tool_choice(client, biggest)
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + a.budget_s * 0.9  # leave time to stop the server and write the results
    handle = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cases = bench_cases(Path(tmp))
        url, model = a.url, a.served_name
        if a.model:
            from agent import llm_server

            handle = llm_server.start_server(a.model, python=a.python, served_name=a.served_name,
                                             max_model_len=a.max_model_len, device="cuda",
                                             timeout=max(60.0, a.budget_s * 0.5), extra_args=a.server_arg,
                                             structured_backend=a.structured_backend)
            url, model = handle.base_url, handle.model
        startup = round(time.monotonic() - t_start, 1)
        client = LLMClient(url, model, timeout_s=a.timeout_s)
        res = asyncio.run(run_bench(cases, client, concurrency=a.concurrency, max_attempts=a.max_attempts,
                                    deadline=deadline))
        res.update({"server": f"started by the bench ({a.structured_backend})" if handle else url, "startup_s": startup,
                    "total_s": round(time.monotonic() - t_start, 1), "gpu_run": handle is not None})
    finally:
        if handle is not None:
            handle.stop()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("model", "single", "skipped")}, indent=2, default=str))
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
