"""Change claims in report text checked against a Comparison (reasoning.claims with comparison): growth and
shrinkage with their amount (rounded to the decimals written), new and disappeared lesions by organ, stability,
RECIST response categories; without a comparison every change claim stays unsupported. Real-CT pair of
tests/followup_cases.py (liver lesion A grows, liver lesion B shrinks, a left-kidney lesion disappears, a
spleen lesion is new; RECIST: target PR, overall PD by the new lesion)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent import case
from agent.cli import main
from tests.followup_cases import pair_fixture

pair = pair_fixture("followup_claims")


def _pct(t):
    m0, m1 = t.measurements
    return (m1.long_axis_mm - m0.long_axis_mm) / m0.long_axis_mm * 100


def test_change_claims(pair):
    c = pair["comparison"]
    f1 = pair["cases"][1].findings
    t1, t2 = c.tracked("T1"), c.tracked("T2")
    grew = round(_pct(t1))
    shrank_mm = t2.measurements[0].long_axis_mm - t2.measurements[1].long_axis_mm
    true = [f"The liver lesion grew by {grew} % since the prior study.",
            f"T2 shrank by {shrank_mm:.1f} mm.",
            f"T1 increased in size by {t1.measurements[1].long_axis_mm - t1.measurements[0].long_axis_mm:.1f} mm.",
            "A new lesion in the spleen.", "The left kidney lesion has resolved.",
            "Progressive disease.", "Overall response PD by RECIST 1.1.", "Target response: partial response."]
    false = [f"The liver lesion grew by {grew + 10} % since the prior study.",  # wrong amount
             f"T2 grew by {shrank_mm:.1f} mm.",  # wrong direction
             "A new lesion in the liver.", "No new lesions.",  # the new lesion is in the spleen
             "The liver lesion has resolved.", "Partial response.", "Stable disease.", "T2 is stable.",
             "The liver lesions are unchanged.", "The liver lesion has improved since the prior study."]
    for s in true:
        v = case.verify(f1, s, c)
        assert v.ok, (s, [(x.text, x.reason) for x in v.claims if x.verdict == "unsupported"])
        assert any(x.type == "comparison" and x.verdict == "supported" for x in v.claims), s
        assert not case.verify(f1, s).ok, s  # without the comparison: unsupported
    for s in false:
        v = case.verify(f1, s, c)
        assert not v.ok, s
        assert any(x.type == "comparison" and x.verdict == "unsupported" for x in v.claims), s


def test_comparison_of_other_findings_not_used(pair):
    c = pair["comparison"]
    other = c.model_copy(update={"studies": [c.studies[0], c.studies[1].model_copy(update={"n_lesions": 9})]})
    v = case.verify(pair["cases"][1].findings, "A new lesion in the spleen.", other)
    assert not v.ok and any("not made from these findings" in x.reason for x in v.claims)


def test_refused_registration_cannot_rule_out_new_lesions(pair):
    from tests.followup_cases import constructed

    refused = constructed(pair, registration_refused="field-of-view overlap 0.12 < 0.5")
    refused = refused.model_copy(update={"lesions": [t for t in refused.lesions if t.state == "persisting"]})
    assert not case.verify(pair["cases"][1].findings, "No new lesions.", refused).ok


def test_verify_cli_reads_comparison(pair, tmp_path):
    out = pair["dirs"][1]
    text = tmp_path / "r.txt"
    text.write_text("A new lesion in the spleen.\n")
    assert CliRunner().invoke(main, ["verify", str(out), str(text)]).exit_code == 1
    (out / "comparison.json").write_text(pair["comparison"].to_json())
    try:
        r = CliRunner().invoke(main, ["verify", str(out), str(text)])
        assert r.exit_code == 0, r.output
    finally:
        (out / "comparison.json").unlink()


@pytest.mark.parametrize("word", ["grew", "new lesion", "stable", "partial response"])
def test_without_comparison_unsupported(pair, word):
    v = case.verify(pair["cases"][1].findings, f"The liver lesion: {word}.")
    assert not v.ok


def test_earlier_sizes_changes_and_sums(pair):
    """Numbers of the comparison a report may write: earlier sizes (with a prior word or a tracking id), changes
    (with a change word or a sign), RECIST sums (with 'sum'/'target'); a wrong one is unsupported."""
    c = pair["comparison"]
    f1 = pair["cases"][1].findings
    m0, m1 = c.tracked("T1").measurements
    ch, r = c.tracked("T1").change_from_prior, c.recist
    gone = c.tracked("T3").measurements[0].long_axis_mm
    true = [(f"T1 measured {m0.long_axis_mm:.1f} mm at baseline and {m1.long_axis_mm:.1f} mm now "
            f"({ch.long_axis_abs_mm:+.1f} mm, {ch.long_axis_pct:+.1f} %)."),
            f"The left kidney lesion, previously {gone:.1f} mm, has resolved.",
            (f"The sum of target diameters decreased from {r.baseline_sum_mm:.1f} mm to {r.current_sum_mm:.1f} mm "
            f"({r.change_from_baseline_pct:+.1f} %).")]
    false = [f"The left kidney lesion, previously {gone + 8:.1f} mm, has resolved.",
             f"T1 measured {m0.long_axis_mm + 15:.1f} mm at baseline.",
             f"The sum of target diameters decreased from {r.baseline_sum_mm + 10:.1f} mm to {r.current_sum_mm:.1f} mm."]
    for s in true:
        v = case.verify(f1, s, c)
        assert v.ok, (s, [(x.text, x.reason) for x in v.claims if x.verdict == "unsupported"])
        assert not case.verify(f1, s).ok, s
    for s in false:
        v = case.verify(f1, s, c)
        assert [x.type for x in v.claims if x.verdict == "unsupported"] == ["measurement"], s
