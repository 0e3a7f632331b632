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
    """Answer QUESTIONS (DeepTumorVQA format) deterministically from findings and write the results file
    in DeepTumorVQA's format, scored as its scorer scores it (same metric names), plus radagent's count of
    abstentions. A question's subtype field, when present, is the question type (the text gives only
    its parameters); abstentions are written so that scorer can never credit them."""
    from agent import case as case_service
    from eval.vqa_metrics import (
        answer_bench_question,
        no_case_result,
        read_questions,
        score_results,
        write_results,
    )
    from radagent.errors import InputError

    try:
        qs = read_questions(questions)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    cache: dict[str, object] = {}
    results, missing = [], set()
    for q in qs:
        if q.image_id not in cache:
            try:
                cache[q.image_id] = case_service.load(cases_dir / q.image_id).findings
            except InputError:
                cache[q.image_id] = None
                missing.add(q.image_id)
        f = cache[q.image_id]
        if f is None:
            results.append(no_case_result(q, f"no findings.json for {q.image_id} under {cases_dir}"))
            continue
        results.append(answer_bench_question(f, q, fmt))
    metrics = score_results(results, qs, fmt)
    write_results(out, results, metrics)
    if missing:
        click.echo(f"warning: no findings.json for {len(missing)} image ids (e.g. {sorted(missing)[:3]})", err=True)
    click.echo(json.dumps({"overall": metrics["overall"], "by_super_type": metrics["by_super_type"],
                           "radagent": {k: v for k, v in metrics["radagent"].items() if k != "abstained_by_subtype"}},
                          indent=2))
    click.echo(str(out))
