"""RECIST 1.1 rules (perception.followup.recist) on diameters given in the test: each threshold on both sides
(PD needs +20 % AND +5 mm from the nadir; PR -30 % from baseline), the nadir from an intermediate time point,
target choice (measurable, complete size, 2 per organ, 5 in all, largest first; or the user's), NE, CR, new
lesions, Table 1 and Table 2. Diameters: 0.0 = absent (established), None = not assessable."""

from __future__ import annotations

import pytest

from perception.followup.recist import Track, assess, choose_targets


def tr(tid, organ, *ds, measurable=True, edge=False):
    return Track(tid, organ, list(ds), measurable_at_baseline=measurable, measurable_rule="long axis >= 10 mm",
                 lower_bound_at_baseline=edge)


@pytest.mark.parametrize("current, target", [
    (24.5, "SD"),  # +22.5 % but +4.5 mm: the 5 mm rule stops PD
    (25.0, "PD"),  # +25 %, +5 mm
    (14.0, "PR"),  # -30 % exactly
    (14.2, "SD"),  # -29 %
    (0.0, "CR"),
])
def test_target_thresholds(current, target):
    r = assess([tr("T1", "liver", 20.0, current)], 2)
    assert r.target_response == target, [x.text for x in r.rules_fired]
    assert r.overall_response == target  # no non-targets, no new lesions
    assert r.sum_of_diameters_mm == [20.0, current]


def test_pd_needs_20_percent_even_above_5_mm():
    r = assess([tr("T1", "liver", 100.0, 119.0)], 2)  # +19 mm but +19 %
    assert r.target_response == "SD"
    assert any("PD not met" == x.rule and "+19.0 mm" in x.text for x in r.rules_fired)


def test_nadir_from_an_intermediate_time_point():
    r = assess([tr("T1", "liver", 60.0, 30.0, 40.0), tr("T2", "spleen", 40.0, 20.0, 20.0)], 3)
    # baseline 100, nadir 50 at time point 1, now 60: +20 %, +10 mm from the nadir -> PD although -40 % from baseline
    assert r.nadir_sum_mm == 50.0 and r.nadir_time_point == 1 and r.current_sum_mm == 60.0
    assert r.target_response == "PD" and r.change_from_baseline_pct == -40.0 and r.change_from_nadir_pct == 20.0


def test_target_choice_rules():
    tracks = [tr("a", "liver", 50.0, 50.0), tr("b", "liver", 40.0, 40.0), tr("c", "liver", 60.0, 60.0),
              tr("d", "lung", 30.0, 30.0), tr("e", "lung", 25.0, 25.0), tr("f", "spleen", 20.0, 20.0),
              tr("g", "kidney", 15.0, 15.0), tr("h", "bone", 8.0, 8.0, measurable=False),
              tr("i", "pancreas", 70.0, 70.0, edge=True)]
    targets, _, why_n = choose_targets(tracks)
    assert [t.tracking_id for t in targets] == ["c", "a", "d", "e", "f"]  # 2 liver, 2 lung, then 5 in all
    why = {t.tracking_id: w for t, w in why_n}
    assert "lower bound" in why["i"]  # 70 mm but reaches the scan edge
    assert "2 larger targets" in why["b"]
    assert "5 larger targets" in why["g"]
    assert "not measurable" in why["h"]
    r = assess(tracks, 2)
    assert r.target_response == "SD" and r.non_target_response == "non-CR/non-PD" and r.overall_response == "SD"


def test_user_targets_and_unknown_ids():
    tracks = [tr("a", "liver", 50.0, 20.0), tr("b", "liver", 12.0, 12.0)]
    r = assess(tracks, 2, user_targets=["b"])
    assert r.targets_by == "user" and [t.tracking_id for t in r.targets] == ["b"] and r.target_response == "SD"
    with pytest.raises(ValueError, match="zz"):
        assess(tracks, 2, user_targets=["zz"])


def test_not_assessable_target_is_ne_unless_already_pd():
    r = assess([tr("a", "liver", 20.0, None), tr("b", "spleen", 20.0, 20.0)], 2)
    assert r.target_response == "NE" and r.current_sum_mm is None and r.overall_response == "NE"
    r = assess([tr("a", "liver", 20.0, None), tr("b", "spleen", 20.0, 50.0)], 2)  # 50 vs 40 already: PD
    assert r.target_response == "PD" and "at least" in r.rules_fired[0].text


def test_new_lesion_is_pd_and_table_1():
    new = tr("n", "liver", 0.0, 12.0)  # absent (organ searched) at baseline, 12 mm now
    r = assess([tr("a", "liver", 20.0, 10.0), new], 2)
    assert r.target_response == "PR" and r.new_lesions == ["n"] and r.overall_response == "PD"
    # a lesion never assessable before is not called new
    r = assess([tr("a", "liver", 20.0, 10.0), tr("m", "liver", None, 12.0)], 2)
    assert r.new_lesions == [] and r.overall_response == "PR"
    # CR of targets with a persisting non-target: PR (Table 1)
    r = assess([tr("a", "liver", 20.0, 0.0), tr("s", "bone", 5.0, 5.0, measurable=False)], 2)
    assert r.target_response == "CR" and r.non_target_response == "non-CR/non-PD" and r.overall_response == "PR"


def test_non_target_disease_only_table_2():
    r = assess([tr("s", "bone", 5.0, 0.0, measurable=False)], 2)
    assert r.target_response == "not_applicable" and r.non_target_response == "CR" and r.overall_response == "CR"
    r = assess([tr("s", "bone", 5.0, 6.0, measurable=False)], 2)
    assert r.overall_response == "non-CR/non-PD"
