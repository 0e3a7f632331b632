"""The radagent question types beyond DeepTumorVQA's 42 (vessels, sizes and bounds, RECIST, composition,
kidney T, contrast phase, completeness, organ status, search coverage, key slice, change over time,
diagnosis, recommendation), and the benchmark's own definitions of 'largest lesion slice' and
'liver lesion clustering'. Truths come from the test case's masks and HU (tests/cases.py), never from
findings; each type also shows what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import pdist

from agent.case import measure
from eval.synthetic import ellipsoid, write_case
from perception.schema import ContactCategory
from reasoning.vqa import Question, answer
from tests.cases import VOX, build_case

ANSWERED, CANNOT = "answered", "cannot_be_determined"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("types") / "case")


def lid(case, mask: np.ndarray) -> str:
    """The Findings lesion made of exactly these voxels (matched by voxel count and centroid; an id, never an answer)."""
    aff = case["aff"]
    cm = aff[:3, :3] @ np.argwhere(mask).mean(0) + aff[:3, 3]
    best = min(case["findings"].lesions, key=lambda l: np.linalg.norm(np.array(l.centroid_mm) - cm))
    assert best.voxel_count == int(mask.sum())
    return best.id


def ask(case, **kw):
    return answer(case["findings"], Question(**kw))


def face_long_axis(sl: np.ndarray) -> float:
    """Longest in-plane distance between voxel-face midpoints of one slice, mm."""
    p = np.pad(sl, 1)
    pts = []
    for ax in range(2):
        d = np.diff(p.astype(np.int8), axis=ax)
        for i in np.argwhere(d != 0):
            q = i.astype(float)
            q[ax] += 0.5
            pts.append(q - 1)
    return float(pdist(np.array(pts)).max()) * VOX


# ---------------------------------------------------------------- vessels

def test_vessel_contact_from_the_wrapping_tumours(case):
    t = case["truth"]
    ivc, ao = lid(case, t["ivc"]["mask"]), lid(case, t["aorta"]["mask"])
    a = ask(case, subtype="vessel involvement", lesion_id=ivc, vessel="IVC")
    assert a.status == ANSWERED and a.answer == "yes" and a.finding_ids == [ivc]
    # the tumours were drawn over 240 deg (IVC) and 120 deg (aorta): encasement > 180 deg, abutment <= 180 deg
    assert ask(case, subtype="vessel contact category", lesion_id=ivc, vessel="inferior_vena_cava").answer == "encasement"
    assert ask(case, subtype="vessel contact category", lesion_id=ao, vessel="aorta").answer == "abutment"
    ang = ask(case, subtype="vessel contact angle", lesion_id=ivc, vessel="inferior_vena_cava")
    assert ang.unit == "deg" and abs(ang.answer - t["ivc"]["angle"]) <= 25  # ray casting reads high by up to ~1 voxel of arc
    assert f"{ang.answer:.0f} deg" in ang.explanation
    assert abs(ask(case, subtype="vessel contact angle", lesion_id=ao, vessel="aorta").answer - t["aorta"]["angle"]) <= 25
    ln = ask(case, subtype="vessel contact length", lesion_id=ivc, vessel="inferior_vena_cava")
    assert ln.unit == "mm" and abs(ln.answer - t["ivc"]["length"]) <= VOX + 1e-6
    inv = ask(case, subtype="involved vessels", lesion_id=ao)
    assert inv.answer == "aorta"
    assert ask(case, subtype="vessel involvement", lesion_id=ao).answer == "yes"  # any assessed vessel


def test_vessel_none_far_and_not_assessed(case):
    m, aff = case["masks"], case["aff"]
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    vessels = [v for v in ("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein") if v in m]
    panc = lid(case, case["truth"]["pancreas"]["mask"])
    dist = {v: ndimage.distance_transform_edt(~m[v], sampling=sp)[case["truth"]["pancreas"]["mask"]].min() for v in vessels}
    near = [v for v, d in dist.items() if d <= 2.0 + VOX]  # tolerance 2 mm plus one voxel
    inv = ask(case, subtype="involved vessels", lesion_id=panc)
    if not near:
        assert inv.answer == "none"
        assert ask(case, subtype="vessel involvement", lesion_id=panc).answer == "no"
    # the left kidney tumour lies far from the aorta: the aorta mask is present, so 'no contact' is established
    kt = case["truth"]["kidney_tumor"]["mask"]
    d_ao = ndimage.distance_transform_edt(~m["aorta"], sampling=sp)[kt].min()
    k = lid(case, kt)
    a = ask(case, subtype="vessel involvement", lesion_id=k, vessel="aorta")
    assert d_ao > 20.0 and a.answer == "no" and "no contact" in a.explanation
    assert ask(case, subtype="vessel contact angle", lesion_id=k, vessel="aorta").answer == 0.0
    # refusals: a vessel without a mask in the study; a vessel question without a vessel
    assert "superior_mesenteric_artery" not in m
    r = ask(case, subtype="vessel involvement", lesion_id=k, vessel="SMA")
    assert r.status == CANNOT and "not assessed" in r.reason and "superior mesenteric artery" in r.reason
    assert ask(case, subtype="vessel contact category", lesion_id=k, vessel="superior mesenteric artery").status == CANNOT
    r = ask(case, subtype="vessel contact angle", lesion_id=k)
    assert r.status == CANNOT and "needs a vessel" in r.reason
    # the portal vein has no mask of its own here, only the combined portal/splenic vein mask: no contact with
    # the whole is no contact with its part; contact with the whole does not say which part (edited findings)
    pv = "portal_vein_and_splenic_vein"
    assert "portal_vein" not in m and pv in m
    d_pv = ndimage.distance_transform_edt(~m[pv], sampling=sp)[kt].min()
    a = ask(case, subtype="vessel involvement", lesion_id=k, vessel="portal vein")
    assert d_pv > 2.0 + VOX and a.answer == "no"
    f = case["findings"]
    touch = [l.model_copy(update={"vessel_contacts": [c.model_copy(update={"category": ContactCategory.abutment, "max_angle_deg": 90.0,
                                                                           "contact_length_mm": 6.0}) if c.vessel == pv else c
                                                      for c in l.vessel_contacts]}) for l in f.lesions]
    ft = f.model_copy(update={"lesions": touch})
    assert any(c.vessel == pv for c in ft.lesion(k).vessel_contacts)
    r = answer(ft, Question(subtype="vessel involvement", lesion_id=k, vessel="portal_vein"))
    assert r.status == CANNOT and "which part" in r.reason
    assert answer(ft, Question(subtype="vessel involvement", lesion_id=k, vessel=pv)).answer == "yes"
    with pytest.raises(ValueError, match="unknown vessel"):
        Question(subtype="vessel involvement", vessel="femoral vein of the moon")


# ---------------------------------------------------------------- sizes

def test_short_axis_3d_and_thresholds(case):
    t = case["truth"]["hypo"]
    h = lid(case, t["mask"])
    s = ask(case, subtype="lesion short axis", lesion_id=h)
    assert s.unit == "mm" and abs(s.answer - t["short"]) <= VOX and s.qualifier == "exact"
    d = ask(case, subtype="lesion 3D diameter", lesion_id=h)
    assert abs(d.answer - t["d3"]) <= VOX and d.qualifier == "exact"
    yes = ask(case, subtype="lesion size threshold", lesion_id=h, threshold_mm=t["long"] - 6)
    no = ask(case, subtype="lesion size threshold", lesion_id=h, threshold_mm=t["long"] + 6)
    small = ask(case, subtype="lesion size threshold", lesion_id=h, threshold_mm=t["long"] - 6, direction="smaller")
    short = ask(case, subtype="lesion size threshold", lesion_id=h, threshold_mm=t["short"] + 6, diameter="short_axis")
    assert (yes.answer, no.answer, small.answer, short.answer) == ("yes", "no", "no", "no")
    r = ask(case, subtype="lesion size threshold", lesion_id=h)
    assert r.status == CANNOT and "threshold" in r.reason
    with pytest.raises(ValueError):
        Question(subtype="lesion size threshold", threshold_mm=-5)
    assert Question(subtype="lesion short axis", unit="cm³").unit == "cm3" and Question(subtype="lesion HU measurement", unit="hu").unit == "HU"
    with pytest.raises(ValueError, match="unit"):
        Question(subtype="lesion short axis", unit="furlongs")


def test_recist_and_completeness(case):
    for key in ("hypo", "iso", "kidney_tumor", "pancreas"):
        mask = case["truth"][key]["mask"]
        i = lid(case, mask)
        long_ = max(face_long_axis(mask[:, :, z]) for z in np.flatnonzero(mask.any(axis=(0, 1))))
        a = ask(case, subtype="RECIST measurability", lesion_id=i)
        assert a.answer == ("yes" if long_ >= 10.0 else "no"), (key, long_)
        edge = any(np.take(mask, j, axis=ax).any() for ax in range(3) for j in (0, -1))
        assert ask(case, subtype="lesion completeness", lesion_id=i).answer == ("no" if edge else "yes")
    r = ask(case, subtype="RECIST measurability", lesion_id="L99")
    assert r.status == CANNOT and "L99" in r.reason


# ---------------------------------------------------------------- composition, kidney T, diagnosis

def test_composition_from_the_painted_hu(case):
    hu = case["hu"]
    for key in ("kidney_cyst", "hyper", "hypo"):
        mask = case["truth"][key]["mask"]
        v = hu[mask].astype(float)
        exp = []
        if v.mean() < -10:
            exp.append("fat-containing")
        elif v.mean() < 20 and v.std() <= 20:
            exp.append("cystic")
        if np.mean(v > 130) >= 0.05:
            exp.append("calcified")
        a = ask(case, subtype="lesion composition", lesion_id=lid(case, mask))
        assert a.answer == (", ".join(exp) or "solid"), key
    # the aorta tumour's host (duodenum) has no composition rules: "solid" cannot be stated
    r = ask(case, subtype="lesion composition", lesion_id=lid(case, case["truth"]["aorta"]["mask"]))
    assert r.status == CANNOT and "solid cannot be stated" in r.reason


def test_kidney_t_stage(case):
    mask = case["truth"]["kidney_tumor"]["mask"]
    pts = np.argwhere(mask) * VOX
    feret = float(pdist(pts).max()) + VOX  # voxel centres plus one voxel: an upper bound of the greatest dimension
    assert feret <= 40.0
    a = ask(case, subtype="kidney tumor staging", lesion_id=lid(case, mask))
    assert a.answer == "T1a" and a.rule == "kidney_t_stage_mm"
    # the same tumour cut by the scan edge (edited findings): T1a from a lower bound is only "at least T1a"
    f = case["findings"]
    k = lid(case, mask)
    cut = f.model_copy(update={"lesions": [l.model_copy(update={"touches_edges": ["axis2_min"], "size_qualifier": "lower_bound"})
                                           if l.id == k else l for l in f.lesions]})
    r = answer(cut, Question(subtype="kidney tumor staging", lesion_id=k))
    assert r.status == CANNOT and "at least T1a" in r.reason
    r = ask(case, subtype="kidney tumor staging", lesion_id=lid(case, case["truth"]["kidney_cyst"]["mask"]))
    assert r.status == CANNOT  # a cyst is not staged
    r = ask(case, subtype="kidney tumor staging", lesion_id=lid(case, case["truth"]["hypo"]["mask"]))
    assert r.status == CANNOT and "not a kidney lesion" in r.reason


def test_diagnosis_only_by_a_sourced_rule(case):
    f, hu = case["findings"], case["hu"]
    cyst = case["truth"]["kidney_cyst"]["mask"]
    v = hu[cyst].astype(float)
    ao = case["masks"]["aorta"]
    assert np.median(hu[ndimage.binary_erosion(ao)]) < 80  # unenhanced aorta: a non-contrast study
    c = lid(case, cyst)
    a = ask(case, subtype="diagnosis", lesion_id=c, diagnosis="benign")
    assert -9 <= v.mean() <= 20 and v.std() <= 20
    assert a.status == ANSWERED and a.answer == "benign" and a.rule == "bosniak_homogeneous_fluid_hu"
    assert ask(case, subtype="diagnosis", lesion_id=c, diagnosis="malignant").answer == "benign"
    # refusals: a liver lesion as metastasis / HCC, the enhancing kidney tumour, the cyst on a contrast study
    for key, word in (("hypo", "metastasis"), ("hyper", "hcc"), ("kidney_tumor", "benign"), ("kidney_tumor", "malignant")):
        r = ask(case, subtype="diagnosis", lesion_id=lid(case, case["truth"][key]["mask"]), diagnosis=word)
        assert r.status == CANNOT and "no sourced rule" in r.reason, (key, word)
    cp = f.study.contrast_phase.model_copy(update={"phase": "portal_venous", "rule": "test"})
    fc = f.model_copy(update={"study": f.study.model_copy(update={"contrast_phase": cp})})
    assert answer(fc, Question(subtype="diagnosis", lesion_id=c, diagnosis="benign")).status == CANNOT


def test_change_and_recommendation_refused(case):
    for kw in ({"organ": "liver"}, {"lesion_id": "L1"}, {}):
        r = ask(case, subtype="change over time", **kw)
        assert r.status == CANNOT and "no prior study" in r.reason
    r = ask(case, subtype="recommendation", lesion_id=lid(case, case["truth"]["kidney_tumor"]["mask"]))
    assert r.status == CANNOT and "not derivable" in r.reason


# ---------------------------------------------------------------- study and organ facts

def test_contrast_phase(case):
    f, hu = case["findings"], case["hu"]
    ao = case["masks"]["aorta"]
    exp = "non_contrast" if np.median(hu[ndimage.binary_erosion(ao)]) < 80 else None
    a = ask(case, subtype="contrast phase")
    assert exp and a.answer == exp
    cp = f.study.contrast_phase.model_copy(update={"phase": "unknown", "source": "unknown", "rule": "no aorta mask"})
    fu = f.model_copy(update={"study": f.study.model_copy(update={"contrast_phase": cp})})
    r = answer(fu, Question(subtype="contrast phase"))
    assert r.status == CANNOT and "no aorta mask" in r.reason


def test_organ_status_and_search_coverage(case):
    m = case["masks"]

    def edge(mask):
        return any(np.take(mask, j, axis=ax).any() for ax in range(3) for j in (0, -1))
    for organ in ("pancreas", "spleen", "gallbladder"):
        exp = "incompletely imaged" if edge(m[organ]) else "measured"
        assert ask(case, subtype="organ status", organ=organ).answer == exp, organ
    assert "urinary_bladder" not in m
    assert ask(case, subtype="organ status", organ="urinary bladder").answer == "not segmented"
    # the pancreas has a lesion mask (pancreatic_lesion); no lesion mask names the gallbladder
    a = ask(case, subtype="lesion search coverage", organ="pancreas")
    assert a.answer == "yes" and "pancreatic_lesion" in a.explanation
    assert ask(case, subtype="lesion search coverage", organ="gallbladder").answer == "no"
    # the right kidney was searched by a cyst mask and the general kidney lesion mask
    assert ask(case, subtype="lesion search coverage", organ="kidney_right", lesion_kind="cyst").answer == "yes"
    old = case["findings"].model_copy(update={"lesion_search": []})
    r = answer(old, Question(subtype="lesion search coverage", organ="pancreas"))
    assert r.status == CANNOT and "1.1.0" in r.reason


# ---------------------------------------------------------------- slices

def test_key_slice_is_the_long_axis_image(case):
    mask = case["truth"]["hypo"]["mask"]
    per = {int(z): face_long_axis(mask[:, :, z]) for z in np.flatnonzero(mask.any(axis=(0, 1)))}
    best = max(per.values())
    a = ask(case, subtype="lesion key slice", lesion_id=lid(case, mask))
    assert a.answer - 1 in {z for z, v in per.items() if v >= best - 1e-6}  # 1-based image number (NIfTI file order)


def test_largest_lesion_slice_is_the_slice_of_largest_area(case):
    for key in ("hypo", "hyper", "kidney_tumor"):
        mask = case["truth"][key]["mask"]
        areas = mask.sum(axis=(0, 1))
        a = ask(case, subtype="largest lesion slice", lesion_id=lid(case, mask))
        assert areas[a.answer] == areas.max(), key  # 0-based index along the axial (third) axis, DeepTumorVQA's convention
        assert a.line().startswith(f"axial slice index {a.answer} (0-based)")
    f = case["findings"]
    old = f.model_copy(update={"lesions": [l.model_copy(update={"max_area_slice": None}) for l in f.lesions]})
    r = answer(old, Question(subtype="largest lesion slice", organ="liver"))
    assert r.status == CANNOT and "1.2.0" in r.reason


def test_clustering_counts_lesions_per_segment(case):
    f, m = case["findings"], case["masks"]
    liver_ids = [l.id for l in f.lesions if l.organ == "liver"]
    segs = ("liver_segment_7", "liver_segment_8")
    main = []
    for l in f.lesions:
        if l.organ != "liver":
            continue
        lab = np.zeros_like(m["liver"])
        (x0, x1), (y0, y1), (z0, z1) = l.bbox_voxel
        lab[x0:x1, y0:y1, z0:z1] = True
        vox = lab & (m["liver_lesion"] | m["tumor"])
        main.append(max(segs, key=lambda s: int((vox & m[s]).sum())))
    share = sorted((main.count(s) / len(main) for s in set(main)), reverse=True) + [0.0]
    exp = "highly clustered" if share[0] > 0.5 else "somewhat clustered" if share[0] + share[1] >= 0.75 else "widely distributed"
    a = ask(case, subtype="liver lesion clustering")
    assert a.answer == exp and sorted(a.finding_ids) == sorted(liver_ids)


# ---------------------------------------------------------------- bounds: a lesion cut by the scan edge

@pytest.fixture(scope="module")
def edge_case(case, tmp_path_factory):
    """Case A plus a liver tumour ellipsoid (semi-axes 15 x 15 x 9 mm) centred on the last (or first) axial slice
    the liver reaches at the scan edge: its imaged part is cut by the scan edge, its in-plane diameter 30 mm."""
    hu, aff, m = case["hu"], case["aff"], dict(case["masks"])
    liver = m["liver"]
    z = liver.shape[2] - 1 if liver[:, :, -1].any() else 0
    assert liver[:, :, z].any()
    ij = np.argwhere(ndimage.binary_erosion(liver[:, :, z], iterations=5)).mean(0)
    centre = aff[:3, :3] @ np.array([ij[0], ij[1], z]) + aff[:3, 3]
    e = ellipsoid(hu.shape, aff, centre, (15.0, 15.0, 9.0)) & ~(m["liver_lesion"] | m["tumor"])
    m["liver_tumor"] = e
    folder = write_case(tmp_path_factory.mktemp("edge") / "case", hu, aff, m)
    return {"findings": measure(folder / "ct.nii.gz", folder), "mask": e, "aff": aff, "hu": hu}


def test_sizes_of_a_lesion_cut_by_the_scan_edge_are_lower_bounds(edge_case):
    f, e = edge_case["findings"], edge_case["mask"]
    i = lid(edge_case, e)
    long_ = max(face_long_axis(e[:, :, z]) for z in np.flatnonzero(e.any(axis=(0, 1))))
    a = answer(f, Question(subtype="largest lesion diameter", lesion_id=i))
    assert a.status == ANSWERED and a.qualifier == "lower_bound" and abs(a.answer - long_) <= VOX
    assert "at least" in a.explanation and "cut by the scan edge" in a.explanation
    v = answer(f, Question(subtype="lesion volume measurement", lesion_id=i))
    assert v.qualifier == "lower_bound" and abs(v.answer - e.sum() * VOX ** 3 / 1000) < 1e-3
    assert answer(f, Question(subtype="lesion short axis", lesion_id=i)).qualifier == "lower_bound"
    assert answer(f, Question(subtype="lesion completeness", lesion_id=i)).answer == "no"
    assert answer(f, Question(subtype="lesion completeness", lesion_id=i, negated=True)).answer == "yes"  # "is it cut off?"
    with pytest.raises(ValueError, match="negated"):
        Question(subtype="lesion volume measurement", negated=True)
    # the bound decides "larger than 2 cm" (yes) and "smaller than 2 cm" (no); "larger than 4 cm" stays open
    assert long_ > 20.0 and long_ < 40.0
    thr = {t: answer(f, Question(subtype="lesion size threshold", lesion_id=i, threshold_mm=t, direction=d))
           for t, d in ((20.0, "larger"), (40.0, "larger"))}
    assert thr[20.0].answer == "yes" and thr[20.0].qualifier == "lower_bound"
    assert thr[40.0].status == CANNOT and "either side" in thr[40.0].reason
    small = answer(f, Question(subtype="lesion size threshold", lesion_id=i, threshold_mm=20.0, direction="smaller"))
    assert small.answer == "no"
    open_small = answer(f, Question(subtype="lesion size threshold", lesion_id=i, threshold_mm=40.0, direction="smaller"))
    assert open_small.status == CANNOT


def test_pancreatic_cyst_rule_decided_by_a_lower_bound(case):
    """The cyst resection rule (> 3 mL or > 30 mm) on a cyst cut by the scan edge: a bound above a threshold decides,
    a bound below both does not (sizes set by the test on edited findings)."""
    f = case["findings"]
    p = lid(case, case["truth"]["pancreas"]["mask"])

    def edited(volume_ml, long_mm):
        les = [l.model_copy(update={"kind": "cyst", "touches_edges": ["axis2_min"], "size_qualifier": "lower_bound",
                                    "volume_ml": volume_ml, "long_axis_mm": long_mm}) if l.id == p else l for l in f.lesions]
        return f.model_copy(update={"lesions": les})
    big = answer(edited(1.0, 35.0), Question(subtype="pancreatic cyst resectability", lesion_id=p))
    assert big.answer == "yes" and big.qualifier == "lower_bound" and "at least" in big.explanation
    rec = answer(edited(1.0, 35.0), Question(subtype="recommendation", lesion_id=p))
    assert rec.answer == "resection" and rec.rule == "pancreatic_cyst_resection"
    small = answer(edited(1.0, 25.0), Question(subtype="pancreatic cyst resectability", lesion_id=p))
    assert small.status == CANNOT and "either side" in small.reason


def _cut_lesions(f, ids):
    """Findings with these lesions marked as cut by the scan edge (their sizes become lower bounds)."""
    return f.model_copy(update={"lesions": [l.model_copy(update={"touches_edges": ["axis2_min"], "size_qualifier": "lower_bound"})
                                            if l.id in ids else l for l in f.lesions]})


def test_comparisons_decided_only_when_the_bounds_decide(case):
    f, m, t = case["findings"], case["masks"], case["truth"]
    ml = VOX ** 3 / 1000
    # the liver's lesions: the two painted ones and the IVC-wrapping tumour, whose largest organ overlap is the liver
    organs = ("liver", "spleen", "pancreas", "kidney_left", "kidney_right", "stomach", "duodenum", "colon", "small_bowel")
    ivc = t["ivc"]["mask"]
    assert max((o for o in organs if o in m), key=lambda o: int((ivc & m[o]).sum())) == "liver"
    liver_vox = [t["hypo"]["mask"], t["hyper"]["mask"], ivc]
    liver_ml = sorted((v.sum() * ml for v in liver_vox), reverse=True)
    kidney_ml = {s: t[k]["mask"].sum() * ml for s, k in (("left", "kidney_tumor"), ("right", "kidney_cyst"))}
    liver_ids = [lid(case, v) for v in sorted(liver_vox, key=lambda v: -v.sum())]
    # multi-organ burden: the liver total is larger; a lower bound on the liver side keeps that, one on the kidneys does not
    assert sum(liver_ml) > sum(kidney_ml.values())
    q = Question(subtype="multi-organ lesion burden comparison", organs=("liver", "kidney"))
    assert answer(_cut_lesions(f, {liver_ids[0]}), q).answer == "liver"
    assert answer(_cut_lesions(f, {lid(case, t["kidney_tumor"]["mask"])}), q).status == CANNOT
    # lesion outlier: a cut second-largest lesion leaves the ranking open
    r = answer(_cut_lesions(f, {liver_ids[1]}), Question(subtype="lesion outlier", organ="liver"))
    assert len(liver_ml) >= 3 and r.status == CANNOT and "lower bound" in r.reason
    top = answer(_cut_lesions(f, {liver_ids[0]}), Question(subtype="lesion outlier", organ="liver"))
    assert (top.answer == "yes") if liver_ml[0] >= 3 * liver_ml[1] else (top.status == CANNOT)
    # kidney asymmetry: the measured volumes are within 2x (symmetric); a bound on either side leaves it open
    lo, hi = sorted(kidney_ml.values())
    assert hi < 2 * lo
    assert ask(case, subtype="bilateral kidney asymmetry").answer == "symmetric"
    for mask in (t["kidney_tumor"]["mask"], t["kidney_cyst"]["mask"]):
        assert answer(_cut_lesions(f, {lid(case, mask)}), Question(subtype="bilateral kidney asymmetry")).status == CANNOT
    # summed lesion volumes are lower bounds when a lesion is cut
    agg = answer(_cut_lesions(f, {liver_ids[0]}), Question(subtype="organ aggregation", organs=("liver", "kidney"),
                                                          measure="lesion_volume"))
    assert agg.qualifier == "lower_bound" and abs(agg.answer - (sum(liver_ml) + sum(kidney_ml.values()))) < 1e-3
    tot = answer(_cut_lesions(f, {liver_ids[0]}), Question(subtype="lesion volume measurement", organ="liver", aggregate="total"))
    assert tot.qualifier == "lower_bound" and abs(tot.answer - sum(liver_ml)) < 1e-3 and "at least" in tot.explanation
