"""Follow-up reading on real CT (issue 16): pairs made from TotalSegmentator's example CT with a known rigid
motion of the patient and synthetic lesions grown, shrunk, added and removed by known amounts
(eval/bench_followup.py). Truth is analytic: the motion (so where every lesion must map), each lesion's
long axis 2 * max(in-plane semi-axes) and volume 4/3 pi abc, and the RECIST 1.1 category those sizes imply."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from agent import case
from eval.bench_followup import PRIOR, SCENARIOS, make_series, rigid, sod
from radagent.errors import InputError
from tests.conftest import data_path

VOX = 3.0

DATES = ["2025-01-10", "2025-04-10"]  # 90 days


def _sod(lesions):
    return sod(lesions)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    data_path("totalseg", "example_ct_sm.nii.gz")  # skips (or fails in CI) without the shared data
    from eval.bench_followup import base_case
    from eval.synthetic import organ_center_mm

    _, aff, seg, ids = base_case()
    centre = organ_center_mm(seg == ids["liver"], aff)
    root = tmp_path_factory.mktemp("followup")
    followups = [(rigid(centre, m[0], m[1]), les)
                 for m, les, _, _ in SCENARIOS.values()]
    studies = make_series(root, PRIOR, followups)
    outs = []
    for s in studies:
        a = case.analyze(s.folder / "ct.nii.gz", s.folder / "masks", key_images=False)
        outs.append(case.write(a, None, root / f"out_{s.folder.name}"))
    comps = {name: case.compare([outs[0]], outs[i + 1], study_dates=DATES) for i, name in enumerate(SCENARIOS)}
    return {"root": root, "studies": studies, "outs": outs, "comps": comps}


def _lesion_at(findings, centre_mm, tol=VOX):
    """The lesion whose centroid is within tol of a truth centre (None if none)."""
    best = min(findings.lesions, key=lambda x: np.linalg.norm(np.asarray(x.centroid_mm) - centre_mm), default=None)
    return best if best is not None and np.linalg.norm(np.asarray(best.centroid_mm) - centre_mm) <= tol else None


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_registration_recovers_the_known_motion(series, name):
    i = list(SCENARIOS).index(name) + 1
    st = series["studies"][i]
    reg = series["comps"][name].registrations[0]
    assert reg.status == "ok", reg.reason
    T = np.asarray(reg.transform_current_to_prior)
    # every lesion centre of the follow-up maps onto where the motion puts it (truth: the motion itself)
    for n, c in st.centers_mm.items():
        truth = st.cur_to_base[:3, :3] @ c + st.cur_to_base[:3, 3]
        est = T[:3, :3] @ c + T[:3, 3]
        assert np.linalg.norm(est - truth) < 2.0, (n, est, truth)
    q = {m.name: m for m in reg.quality}
    assert q["median organ dice"].value >= 0.9 and q["median organ dice"].passed
    assert q["fov overlap"].value >= 0.9
    assert q["mean surface distance liver"].value < 3.0


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_lesion_matched_with_its_state(series, name):
    i = list(SCENARIOS).index(name) + 1
    prior, cur = series["studies"][0], series["studies"][i]
    comp = series["comps"][name]
    f0 = case.load(series["outs"][0]).findings
    f1 = case.load(series["outs"][i]).findings
    expected = {}
    for n in set(prior.lesions) | set(cur.lesions):
        l0 = _lesion_at(f0, prior.centers_mm[n]) if n in prior.lesions else None
        l1 = _lesion_at(f1, cur.centers_mm[n]) if n in cur.lesions else None
        assert (l0 is not None) == (n in prior.lesions) and (l1 is not None) == (n in cur.lesions), n
        expected[n] = (l0.id if l0 else None, l1.id if l1 else None)
    got = {(t.measurements[0].lesion_id, t.measurements[1].lesion_id): t for t in comp.lesions}
    assert set(got) == set(expected.values()), (got.keys(), expected)
    for n, ids in expected.items():
        t = got[ids]
        want = "persisting" if all(ids) else ("new" if ids[1] else "disappeared")
        assert t.state == want, (n, t.state, t.state_reason)
        if want == "persisting":
            # a 7 mm lesion is ~7 voxels at 3 mm: its overlap is coarse, its confidence lower
            assert t.match_confidence is not None and t.match_confidence >= (0.8 if prior.lesions[n].long_axis_mm >= 15 else 0.5)
        # long-axis and volume change against the analytic sizes
        if want == "persisting":
            a, b = prior.lesions[n], cur.lesions[n]
            ch = t.change_from_prior
            assert abs(ch.long_axis_abs_mm - (b.long_axis_mm - a.long_axis_mm)) <= 1.5 * VOX, (n, ch)
            v_pct = 100 * (b.volume_ml - a.volume_ml) / a.volume_ml
            assert abs(ch.volume_pct - v_pct) <= max(15.0, 0.15 * abs(v_pct)), (n, ch.volume_pct, v_pct)
        if want == "disappeared":
            assert t.change_from_prior.long_axis_pct == -100.0 and t.measurements[1].status == "absent"
        if want == "new":
            assert t.measurements[0].status == "absent" and "searched" in t.measurements[0].reason


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_recist_category(series, name):
    _, lesions, target, overall = SCENARIOS[name]
    r = series["comps"][name].recist
    assert r.target_response == target and r.overall_response == overall, [x.text for x in r.rules_fired]
    # targets by the rules: the three measurable lesions (L4, 7 mm, is a non-target)
    assert len(r.targets) == 3 and len(r.non_targets) == 1
    assert "not measurable" in r.non_targets[0].why
    assert abs(r.baseline_sum_mm - _sod(PRIOR)) <= 3 * VOX
    assert abs(r.current_sum_mm - _sod({n: s for n, s in lesions.items() if n in ("L1", "L2", "L3")})) <= 3 * VOX
    fired = " | ".join(x.rule for x in r.rules_fired)
    if name == "PD_size":
        assert "PD: sum +20 % and +5 mm from nadir" in fired
    if name == "PD_new":
        assert "new lesion -> PD" in fired and len(r.new_lesions) == 1
    if name == "PR":
        assert r.non_target_response == "CR" and "PR: sum -30 % from baseline" in fired


def test_nadir_from_an_intermediate_prior(series):
    """Three time points: baseline, the PR study, the regrown study. Tracks chain through all three; the nadir
    is the PR study's sum, and the regrowth from it is PD although the sum is still below baseline."""
    names = list(SCENARIOS)
    outs = series["outs"]
    comp = case.compare([outs[0], outs[names.index("PR") + 1]], outs[names.index("regrow") + 1],
                        study_dates=["2025-01-10", "2025-04-10", "2025-07-10"])
    assert [r.status for r in comp.registrations] == ["ok", "ok"]
    r = comp.recist
    truth = [_sod(PRIOR), _sod(SCENARIOS["PR"][1]), _sod(SCENARIOS["regrow"][1])]  # 68, 41, 56 mm
    assert r.nadir_time_point == 1 and abs(r.nadir_sum_mm - truth[1]) <= 3 * VOX
    assert all(abs(a - b) <= 3 * VOX for a, b in zip(r.sum_of_diameters_mm, truth)), (r.sum_of_diameters_mm, truth)
    assert r.target_response == "PD" and r.overall_response == "PD", [x.text for x in r.rules_fired]
    assert r.change_from_baseline_pct < 0  # below baseline, still PD from the nadir
    targets = [comp.tracked(t.tracking_id) for t in r.targets]
    assert all(all(m.lesion_id for m in t.measurements) for t in targets)  # seen at all three time points
    removed = [t for t in comp.lesions if t.organ == "kidney_left"]  # L4: gone at the PR study, still gone
    assert len(removed) == 1 and [m.status for m in removed[0].measurements] == ["seen", "absent", "absent"]
    assert removed[0].state == "disappeared"


def test_doubling_time_from_dates(series):
    t = next(t for t in series["comps"]["PD_size"].lesions if t.organ == "spleen")
    a, b = PRIOR["L3"], SCENARIOS["PD_size"][1]["L3"]
    truth = math.log(2) * 90 / math.log(b.volume_ml / a.volume_ml)
    assert t.doubling_time.days == pytest.approx(truth, rel=0.35)
    shrinking = next(t for t in series["comps"]["PR"].lesions if t.organ == "spleen")
    assert shrinking.doubling_time.days is None and "did not grow" in shrinking.doubling_time.reason


def test_comparison_json_roundtrip_and_schema(series, tmp_path):
    from perception.followup.schema import Comparison, json_schema

    comp = series["comps"]["SD"]
    out = case.write_comparison(comp, tmp_path / "cmp")
    again = Comparison.from_file(out / "comparison.json")
    assert again == comp
    assert "recist" in json_schema()["properties"]
    uids = {t.tracking_uid for t in comp.lesions}
    assert len(uids) == len(comp.lesions) and all(u.startswith("2.25.") for u in uids)


# --- refusals -----------------------------------------------------------------------------------------------
def test_registration_refused_for_a_different_body_region(series, tmp_path):
    """The current 'study' is the pelvis of the same patient's CT (slices 1-30 of example_ct; the prior,
    example_ct_sm, is its slices 83-112, the upper abdomen): registration must be refused, nothing compared."""
    import nibabel as nib

    from eval.synthetic import save_nifti

    img = nib.load(data_path("totalseg", "example_ct.nii.gz"))
    hu = np.asanyarray(img.dataobj)[:, :, 0:30]
    aff = img.affine
    folder = tmp_path / "pelvis"
    save_nifti(hu.astype(np.int16), aff, folder / "ct.nii.gz")
    save_nifti(np.zeros(hu.shape, np.uint8), aff, folder / "masks" / "liver_lesion.nii.gz")
    a = case.analyze(folder / "ct.nii.gz", folder / "masks", key_images=False)
    out = case.write(a, None, tmp_path / "out_pelvis")
    comp = case.compare([series["outs"][0]], out)
    reg = comp.registrations[0]
    assert reg.status == "refused" and reg.transform_current_to_prior is None
    assert "overlap" in reg.reason or "do not agree" in reg.reason
    assert all(t.state == "not_assessable" for t in comp.lesions)
    assert comp.recist.overall_response == "NE"
    assert any("refused" in w for w in comp.warnings)


def test_not_searched_organ_is_not_assessable(series, tmp_path):
    """A spleen lesion appears, but the prior's spleen was never searched: 'new' cannot be said."""
    src = series["studies"][0].folder
    prior = tmp_path / "t0"
    shutil.copytree(src, prior)
    (prior / "masks" / "spleen_lesion.nii.gz").unlink()
    a = case.analyze(prior / "ct.nii.gz", prior / "masks", key_images=False)
    out = case.write(a, None, tmp_path / "out_t0")
    comp = case.compare([out], series["outs"][1])
    spleen = [t for t in comp.lesions if t.organ == "spleen"]
    assert len(spleen) == 1 and spleen[0].state == "not_assessable"
    assert "spleen was not searched" in spleen[0].state_reason


def test_refuses_changed_or_missing_inputs(series, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(series["outs"][1], out)
    (out / "inputs.json").unlink()
    with pytest.raises(InputError, match="inputs.json"):
        case.compare([series["outs"][0]], out)
    with pytest.raises(InputError, match="at least one prior"):
        case.compare([], series["outs"][1])
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        case.compare([series["outs"][0]], series["outs"][1], study_dates=["2025-01-01", "April"])
    with pytest.raises(InputError, match="increasing"):
        case.compare([series["outs"][0]], series["outs"][1], study_dates=["2025-05-01", "2025-01-01"])
    # the CT changed since analyze: refused naming it, expected vs found hash
    out2 = tmp_path / "copy2"
    shutil.copytree(series["outs"][1], out2)
    import json

    rec = json.loads((out2 / "inputs.json").read_text())
    ct2 = tmp_path / "ct_changed.nii.gz"
    shutil.copy(series["studies"][2].folder / "ct.nii.gz", ct2)
    rec["ct"] = str(ct2)
    (out2 / "inputs.json").write_text(json.dumps(rec))
    with pytest.raises(InputError, match="changed since"):
        case.compare([series["outs"][0]], out2)


def test_registration_finds_the_level_of_a_longer_scan():
    """example_ct_sm is slices 83-112 of example_ct, stored with the same origin (checked here voxel for voxel):
    the true transform from example_ct's world to example_ct_sm's is a shift of -82 slices * 3 mm = -246 mm in z,
    more than the centre-to-centre offset a centroid initialisation starts from (123 mm)."""
    import nibabel as nib

    from perception.followup.register import block_mean, register_grids

    full, sm = nib.load(data_path("totalseg", "example_ct.nii.gz")), nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    a, b = np.asanyarray(full.dataobj), np.asanyarray(sm.dataobj)
    assert np.array_equal(a[:, :, 82:112], b) and np.allclose(full.affine, sm.affine)
    reg = register_grids(block_mean(b, sm.affine), block_mean(a, full.affine))
    assert reg.status == "ok", reg.reason
    T = np.asarray(reg.transform_current_to_prior)
    truth = np.eye(4)
    truth[2, 3] = -246.0
    probe = np.array([[x, y, z] for x in (-150, -60) for y in (40, 140) for z in (340, 400)], dtype=float)  # in the sm FOV
    err = np.linalg.norm((T[:3, :3] @ probe.T).T + T[:3, 3] - ((truth[:3, :3] @ probe.T).T + truth[:3, 3]), axis=1)
    assert err.max() < 3.0, err


def test_segmented_study_is_matched_by_position_only(series, tmp_path):
    """A study whose masks came from a model (inputs.json: masks null): no lesion voxels and no organ masks to
    check the registration with; lesions are still matched by registered position, and the comparison says so."""
    import json

    names = list(SCENARIOS)
    out = tmp_path / "seg"
    shutil.copytree(series["outs"][names.index("SD") + 1], out)
    rec = json.loads((out / "inputs.json").read_text())
    rec.update(masks=None, masks_sha256=None, segmented=True)
    (out / "inputs.json").write_text(json.dumps(rec))
    comp = case.compare([series["outs"][0]], out)
    reg = comp.registrations[0]
    q = {m.name: m for m in reg.quality}
    assert reg.status == "ok" and q["median organ dice"].value is None and "images only" in q["median organ dice"].reason
    assert any("position only" in w for w in comp.warnings)
    assert sorted(t.state for t in comp.lesions) == ["persisting"] * 4
    assert all(t.measurements[1].match_overlap is None for t in comp.lesions)
    assert comp.recist.overall_response == "SD"


def test_tracking_uids_kept_across_comparisons(series, tmp_path):
    """t0 -> PR written into the PR study's folder, then PR -> regrow: each lesion keeps the UID it got first."""
    names = list(SCENARIOS)
    pr = tmp_path / "pr"
    shutil.copytree(series["outs"][names.index("PR") + 1], pr)
    first = case.compare([series["outs"][0]], pr)
    case.write_comparison(first, pr)
    second = case.compare([pr], series["outs"][names.index("regrow") + 1])
    uid_of = {t.measurements[1].lesion_id: t.tracking_uid for t in first.lesions if t.measurements[1].lesion_id}
    persisting = [t for t in second.lesions if t.state == "persisting"]
    assert len(persisting) == 3
    for t in persisting:
        assert t.tracking_uid == uid_of[t.measurements[0].lesion_id]
    # a comparison.json made from other findings is not trusted: UIDs derived afresh
    (pr / "findings.json").write_text((pr / "findings.json").read_text() + " ")
    third = case.compare([pr], series["outs"][names.index("regrow") + 1])
    assert not {t.tracking_uid for t in third.lesions} & set(uid_of.values())
