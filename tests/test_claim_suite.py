"""The claim checker against sentences written independently of it (issue 13): at least 40 unsupported
sentences are rejected and at least 40 true ones accepted, on the real-CT case with synthetic lesions of
known geometry (tests/cases.py). The sentences and their truths live in tests/claim_sentences.py, computed
from the case's masks and construction, never from findings.json.

A true sentence must be accepted *and* carry at least one supported claim (it may not pass merely because
nothing in it was recognised); an unsupported sentence must make the verification fail with at least one
unsupported claim. Failure messages list every wrong verdict with the claims the checker read.
"""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from tests.cases import build_case
from tests.claim_sentences import (
    KINDS,
    Sentence,
    case_facts,
    true_sentences,
    unsupported_sentences,
)

MIN_EACH = 40


def _verify():
    # imported when used: the checker (agent.case.verify) is built alongside this suite
    from agent.case import verify

    return verify


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("claims") / "case")


@pytest.fixture(scope="module")
def facts(case):
    return case_facts(case)


@pytest.fixture(scope="module")
def findings_file(case, tmp_path_factory):
    path = tmp_path_factory.mktemp("claims_out") / "findings.json"
    path.write_text(case["findings"].to_json())
    return path


def _claims(v) -> list:
    return [c for s in v.sentences for c in s.claims]


def _describe(v) -> str:
    parts = [f"{c.type}:{c.verdict} {c.text!r}" + (f" ({c.reason})" if c.reason else "") for c in _claims(v)]
    return "; ".join(parts) or "no claim recognised"


def _wrong_verdicts(findings, sentences: list[Sentence], expect_true: bool) -> list[str]:
    verify = _verify()
    wrong = []
    for s in sentences:
        v = verify(findings, s.text)
        verdicts = [c.verdict for c in _claims(v)]
        if expect_true:
            good = v.ok is True and "supported" in verdicts and "unsupported" not in verdicts
        else:
            good = v.ok is False and "unsupported" in verdicts
        if not good:
            wrong.append(f"[{s.kind}] {s.text!r} (truth: {s.why}) -> ok={v.ok}: {_describe(v)}")
    return wrong


def test_suite_is_large_diverse_and_consistent(facts):
    """The suite itself: >= 40 of each, every claim type of issue 13 covered, no sentence in both lists."""
    true, bad = true_sentences(facts), unsupported_sentences(facts)
    assert len(true) >= MIN_EACH, f"{len(true)} true sentences (the case left some out): {[s.text for s in true]}"
    assert len(bad) >= MIN_EACH, len(bad)
    assert len({s.text for s in true}) == len(true) and len({s.text for s in bad}) == len(bad), "duplicated sentences"
    assert not {s.text for s in true} & {s.text for s in bad}
    kinds_true, kinds_bad = Counter(s.kind for s in true), Counter(s.kind for s in bad)
    assert set(kinds_bad) == set(KINDS), f"unsupported suite misses {set(KINDS) - set(kinds_bad)}"
    need_true = {"measurement", "location", "attenuation", "vessel", "stage", "count", "phase"}
    assert need_true <= set(kinds_true), f"true suite misses {need_true - set(kinds_true)}"


def test_true_sentences_are_accepted(case, facts):
    sentences = true_sentences(facts)
    wrong = _wrong_verdicts(case["findings"], sentences, expect_true=True)
    assert not wrong, (f"true accepted {len(sentences) - len(wrong)}/{len(sentences)}; wrong verdicts:\n"
                       + "\n".join(wrong))


def test_unsupported_sentences_are_rejected(case, facts):
    sentences = unsupported_sentences(facts)
    wrong = _wrong_verdicts(case["findings"], sentences, expect_true=False)
    assert not wrong, (f"unsupported rejected {len(sentences) - len(wrong)}/{len(sentences)}; wrong verdicts:\n"
                       + "\n".join(wrong))


def test_a_true_paragraph_is_accepted_and_one_false_sentence_fails_it(case, facts):
    """Sentences checked together, as in a report: all true -> ok; one unsupported sentence added -> not ok,
    and the verdict names that sentence, not the true ones."""
    verify = _verify()
    first = {}
    for s in true_sentences(facts):
        first.setdefault(s.kind, s.text)  # one true sentence of each kind
    true = list(first.values())
    v = verify(case["findings"], " ".join(true))
    assert v.ok, _describe(v)
    bad = "There is no lesion in the pancreas."
    v = verify(case["findings"], " ".join(true[:3] + [bad] + true[3:]))
    assert v.ok is False, _describe(v)
    flagged = [s.text for s in v.sentences if any(c.verdict == "unsupported" for c in s.claims)]
    assert flagged and all("pancreas" in t for t in flagged), flagged


def test_cli_verify_exit_codes(findings_file, facts, tmp_path):
    """`radagent verify FINDINGS TEXT`: exit 0 on a text of true sentences, 1 once an unsupported one is in it."""
    from agent.cli import main

    true = [s.text for s in true_sentences(facts)]
    pick = [true[0], next(t for t in true if "inferior vena cava" in t), next(t for t in true if "non-contrast" in t)]
    good = tmp_path / "good.md"
    good.write_text("\n".join(pick) + "\n")
    r = CliRunner().invoke(main, ["verify", str(findings_file), str(good)])
    assert r.exit_code == 0, r.output
    bad_sentence = "Recommend biopsy of the left renal lesion."
    bad = tmp_path / "bad.md"
    bad.write_text("\n".join(pick + [bad_sentence]) + "\n")
    r = CliRunner().invoke(main, ["verify", str(findings_file), str(bad)])
    assert r.exit_code == 1, r.output
    assert "biopsy" in r.output.lower(), r.output
