"""`radagent eval vqa`: answer a DeepTumorVQA question file from analyzed cases and score it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group("eval")
def eval_group() -> None:
    """Benchmarks: run radagent on a benchmark's question file and score it."""


@eval_group.command("vqa")
@click.argument("questions", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--cases", "cases_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder holding one analyze output per image_id: CASES/<image_id>/findings.json "
                   "(a `radagent dataset build` OUT/cases folder works as is).")
@click.option("--format", "fmt", type=click.Choice(["mc", "freeform"]), default="mc", show_default=True,
              help="mc: answer mc_question with a letter; freeform: answer the question text.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), default=Path("vqa_results.json"), show_default=True)
def eval_vqa(questions: Path, cases_dir: Path, fmt: str, out: Path) -> None:
    """Answer QUESTIONS (DeepTumorVQA format) deterministically from findings, write the results
    file in DeepTumorVQA's format with radagent's scores per subtype and group."""
    from agent import case as case_service
    from eval.vqa_metrics import read_questions, result_from_answer, score_results, write_results
    from radagent.errors import InputError

    try:
        qs = read_questions(questions)
    except (ValueError, json.JSONDecodeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    cache: dict[str, object] = {}
    results, missing = [], set()
    for q in qs:
        if q.image_id not in cache:
            folder = cases_dir / q.image_id
            try:
                cache[q.image_id] = case_service.load(folder).findings
            except InputError:
                cache[q.image_id] = None
                missing.add(q.image_id)
        f = cache[q.image_id]
        text = (q.mc_question or q.question) if fmt == "mc" else q.question
        if f is None:
            from eval.vqa_metrics import BenchResult

            results.append(BenchResult(qid=q.qid, image_id=q.image_id, question_subtype=q.question_subtype,
                                       question_type=q.question_type, raw_output=f"no findings.json for {q.image_id}",
                                       pred_answer="", correct_option=q.correct_option,
                                       answer=None if q.answer is None else str(q.answer), status="no_case"))
            continue
        results.append(result_from_answer(q, case_service.ask(f, text), fmt))
    metrics = score_results(results, qs, fmt)
    write_results(out, results, metrics)
    if missing:
        click.echo(f"warning: no findings.json for {len(missing)} image ids (e.g. {sorted(missing)[:3]})", err=True)
    overall = metrics.get("overall", {})
    click.echo(json.dumps({"n": len(results), "overall": overall, "by_group": metrics.get("by_group", {})}, indent=2))
    click.echo(str(out))
