"""The COMPARISON section of report.md / report.json / report.html, with each tracked lesion's prior and
current key images side by side (the PNGs analyze wrote, byte for byte), on a real-CT pair."""

from __future__ import annotations

import base64
import json
import re

from click.testing import CliRunner

from agent import case
from agent.cli import main
from reasoning import comparison as rc
from tests.followup_cases import constructed, pair_fixture

pair = pair_fixture("followup_report")


def test_section_sentences(pair):
    c = pair["comparison"]
    sec = rc.section(c)
    lesion = {s.finding_ids[0]: s.text for s in sec.sentences if s.kind == "lesion"}
    t1 = c.tracked("T1")
    m0, m1 = t1.measurements
    assert f"{m0.long_axis_mm:.1f} mm at the baseline study" in lesion["T1"] and f"{m1.long_axis_mm:.1f} mm now" in lesion["T1"]
    assert f"{m1.long_axis_mm - m0.long_axis_mm:+.1f} mm" in lesion["T1"]
    assert "disappeared" in lesion["T3"] and "new since" in lesion["T4"]
    recist = next(s.text for s in sec.sentences if s.kind == "recist")
    assert "overall response PD (progressive disease)" in recist and "new lesions T4" in recist
    assert any(s.kind == "rule" and "PD: new lesion" in s.text for s in sec.sentences)
    refused = constructed(pair, registration_refused="field-of-view overlap 0.12 < 0.5")
    assert any("refused: field-of-view overlap 0.12 < 0.5" in s.text for s in rc.section(refused).sentences)
    assert "RECIST 1.1 response not assessed: registration refused" in \
        rc.section(c.model_copy(update={"recist": None, "warnings": ["registration refused"]})).sentences[-2].text


def test_report_files_side_by_side(pair, tmp_path):
    c = pair["comparison"]
    cur = pair["cases"][1]
    rep = case.report(cur, comparison=c)
    files = rep.files
    # key images: the PNG bytes analyze wrote for the matched lesion at each time point
    for t in c.lesions:
        for s in c.studies:
            m = t.at(s.time_point)
            name = rc.image_name(t.tracking_id, s.time_point)
            if m.lesion_id is None:
                assert name not in files
                continue
            folder = pair["dirs"][s.time_point]
            png = (folder / "key_images" / f"{m.lesion_id}.png").read_bytes()
            assert files[name] == png
    md = files["report.md"]
    assert "## COMPARISON" in md
    assert "| T1 | ![T1, time point 0](comparison/T1_tp0.png) | ![T1, time point 1](comparison/T1_tp1.png) |" in md
    assert "| T4 | (no key image: not seen or not rendered) | ![T4, time point 1](comparison/T4_tp1.png) |" in md
    html = files["report.html"]
    pair_div = re.search(r'<div class="pair" id="cmp-T1">(.*?)</div>', html, re.DOTALL).group(1)
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', pair_div)
    assert [base64.b64decode(x) for x in imgs] == [files["comparison/T1_tp0.png"], files["comparison/T1_tp1.png"]]
    rj = json.loads(files["report.json"])
    assert rj["comparison"]["images"]["T3"] == ["comparison/T3_tp0.png", None]
    assert rj["sentences"] == json.loads(rep.draft.model_dump_json())["sentences"]
    assert rc.report_draft(files["report.json"]) == rep.draft  # the draft reads back without the section
    # without a comparison the report is unchanged: no COMPARISON section, no extra file
    plain = case.report(cur).files
    assert set(plain) == {"report.md", "report.json", "report.html"} and "COMPARISON" not in plain["report.md"]


def test_prior_changed_gives_no_image(pair, tmp_path):
    """A prior folder whose findings.json is not the one compared gives no images (they may show other lesions)."""
    c = pair["comparison"]
    s0 = c.studies[0].model_copy(update={"findings_sha256": "0" * 64})
    imgs = case.comparison_images(c.model_copy(update={"studies": [s0, c.studies[1]]}), pair["cases"][1])
    assert imgs and all(name.endswith("_tp1.png") for name in imgs)


def test_report_cli_reads_comparison(pair):
    out = pair["dirs"][1]
    (out / "comparison.json").write_text(pair["comparison"].to_json())
    try:
        r = CliRunner().invoke(main, ["report", str(out)])
        assert r.exit_code == 0, r.output
        assert "## COMPARISON" in (out / "report.md").read_text()
        prior_id = pair["comparison"].tracked("T1").measurements[0].lesion_id
        assert (out / "comparison" / "T1_tp0.png").read_bytes() == \
            (pair["dirs"][0] / "key_images" / f"{prior_id}.png").read_bytes()
        (out / "comparison.json").write_text("{not json")
        r = CliRunner().invoke(main, ["report", str(out)])
        assert r.exit_code == 2 and "comparison.json" in r.output
    finally:
        (out / "comparison.json").unlink()
