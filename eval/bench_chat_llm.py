"""Chat on a real OpenAI-compatible server: how many of 10 chat questions (one conversation, with
follow-ups) are accepted at the first attempt, per answer mode.

    python eval/bench_chat_llm.py FINDINGS --llm URL [--model NAME] [--mode structured|free_text]

Each question runs with max_attempts=1, so "accepted" means the model's first reply passed the
check; otherwise the turn fell back to the deterministic answer. Prints one line per question and
a JSON summary (accepted, seconds, fallback reasons). The same 10 questions are the contract test
in tests/test_agent_chat.py (CHAT_QUESTIONS).
"""

from __future__ import annotations

import argparse
import json
import time

CHAT_QUESTIONS = (
    "What is the volume of the largest liver lesion?",
    "and the second largest?",
    "How many lesions are in the liver?",
    "What is the mean HU of the largest liver lesion?",
    "What is the diameter of L3?",
    "Is there a lesion in the spleen?",
    "Which segment contains the largest liver lesion?",
    "Is the kidney lesion a cyst or a tumor?",
    "What is the T stage of the pancreatic tumor?",
    "What is the volume of the third largest liver lesion?",
)


def run(findings, url: str, model: str | None, mode: str, timeout_s: float = 300.0) -> dict:
    from reasoning.agent import ChatSession

    s = ChatSession(findings, url, model, max_attempts=1, answer_mode=mode, timeout_s=timeout_s)
    rows = []
    for q in CHAT_QUESTIONS:
        t0 = time.perf_counter()
        turn = s.ask(q)
        rows.append({"question": q, "accepted": turn.engine == "llm", "seconds": round(time.perf_counter() - t0, 1),
                     "tools": [c.name for c in turn.tool_calls], "errors": turn.grounding_errors[:1], "text": turn.text})
        print(f"{'ACCEPT' if turn.engine == 'llm' else 'reject'} {rows[-1]['seconds']:6.1f}s {q!r}: {turn.text[:160]!r}",
              flush=True)
    return {"mode": mode, "model": s.model, "accepted": sum(r["accepted"] for r in rows), "asked": len(rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("findings")
    ap.add_argument("--llm", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--mode", default="structured", choices=("structured", "free_text"))
    ap.add_argument("--out", default=None, help="write the JSON summary here")
    a = ap.parse_args()
    from agent import case as case_service

    res = run(case_service.load(a.findings).findings, a.llm, a.model, a.mode)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
