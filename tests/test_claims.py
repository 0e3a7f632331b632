"""The claim checker (reasoning.claims), one claim type at a time, on the real-CT case with synthetic lesions of
known geometry (tests/cases.py). Every truth is computed here from the case's masks, its painted HU values and its
construction (analytic axes, sector angles), never read from findings.json; the lesion ids are found by overlap of
each truth mask with the lesions' bounding boxes. Each feature is shown accepting a true sentence and refusing a
false or unestablished one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from perception.schema import ContrastPhase, LesionSearch
from reasoning.claims import ClaimChecker, split_sentences
from reasoning.grounding import Validator
from tests.cases import build_case


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("claims_unit") / "case")


@pytest.fixture(scope="module")
def f(case):
    return case["findings"]


@pytest.fixture(scope="module")
def chk(f):
    return ClaimChecker(f)


@pytest.fixture(scope="module")
def ids(case, f):
    """truth lesion name -> finding id: the lesion whose bounding box holds most of the truth mask."""
    out = {}
    for name in ("hypo", "hyper", "iso", "kidney_tumor", "kidney_cyst", "pancreas", "aorta", "ivc"):
        m = case["truth"][name]["mask"]

        def inside(les, m=m):
            (a0, a1), (b0, b1), (c0, c1) = les.bbox_voxel
            return int(m[a0:a1, b0:b1, c0:c1].sum())
        best = max(f.lesions, key=inside)
        assert inside(best) >= 0.9 * m.sum(), name
        out[name] = best.id
    assert len(set(out.values())) == len(out), out
    return out


def verdicts(chk, text, cite=None) -> list[tuple[str, str]]:
    return [(c.type, c.verdict) for c in chk.check_sentence(text, cite).claims]


def ok(chk, text, cite=None) -> bool:
    sc = chk.check_sentence(text, cite)
    return bool(sc.claims) and all(c.verdict == "supported" for c in sc.claims)


def refused(chk, text, cite=None, kind: str | None = None) -> bool:
    sc = chk.check_sentence(text, cite)
    return any(c.verdict == "unsupported" and (kind is None or c.type == kind) for c in sc.claims)


def spacing(case) -> np.ndarray:
    return np.linalg.norm(np.asarray(case["aff"])[:3, :3], axis=0)


def gap_mm(case, a: np.ndarray, b: np.ndarray) -> float:
    return float(ndimage.distance_transform_edt(~b, sampling=spacing(case))[a].min())


# --- measurement ----------------------------------------------------------------------------------
def test_measurement_analytic_axes_and_wrong_sizes(chk, case, ids):
    t = case["truth"]["hypo"]  # semi-axes 15 x 10 mm: RECIST axes 30 x 20 mm
    lid = ids["hypo"]
    assert ok(chk, f"{lid} measures {t['long']:.0f} x {t['short']:.0f} mm.", [lid])
    assert ok(chk, f"{lid} measures {t['long'] / 10:.0f} x {t['short'] / 10:.0f} cm.", [lid])
    assert refused(chk, f"{lid} measures {t['long'] + 20:.0f} x {t['short']:.0f} mm.", [lid], "measurement")
    assert refused(chk, f"{lid} measures 5 cm.", [lid], "measurement")
    # a lesion size equal to the slice thickness is not supported by the slice thickness
    vox = spacing(case)[2]
    assert refused(chk, f"{lid} measures {vox:.1f} mm.", [lid], "measurement")
    assert ok(chk, f"Slice thickness {vox:.1f} mm.", ["study"])
    assert refused(chk, f"Slice thickness {vox + 2:.1f} mm.", ["study"], "measurement")


def test_numbers_glued_to_letters_are_read(chk, case, ids):
    """The two extraction holes of issue 13: 'x99.9mm' and 'slice-t2.0mm' were never extracted."""
    lid = ids["hypo"]
    long = case["truth"]["hypo"]["long"]
    sc = chk.check_sentence(f"{lid} measures {long:.1f}x99.9mm.", [lid])
    assert any(c.verdict == "unsupported" and "99.9" in c.text for c in sc.claims), sc.claims
    sc = chk.check_sentence(f"Hypoattenuating liver lesion: {long:.1f} x99.9mm.")
    assert any(c.verdict == "unsupported" and "99.9" in c.text for c in sc.claims), sc.claims
    sc = chk.check_sentence("Axial images at slice-t2.0mm were reviewed.")
    assert any(c.verdict == "unsupported" and "2.0mm" in c.text for c in sc.claims), sc.claims
    vox = spacing(case)[2]
    assert ok(chk, f"Axial images at slice-t{vox:.1f}mm were reviewed.")


def test_approximate_and_inequality_values(chk, case, ids):
    ivc = case["truth"]["ivc"]["angle"]  # 240 degrees by construction
    ao = case["truth"]["aorta"]["angle"]  # 120 degrees
    assert ok(chk, f"The tumour encases the inferior vena cava (about {ivc:.0f} degrees).")
    assert ok(chk, "Tumour contact with the inferior vena cava exceeds 180 degrees.")
    assert refused(chk, "Tumour contact with the inferior vena cava is less than 90 degrees.", kind="measurement")
    assert ok(chk, "Tumour contact with the aorta is less than 180 degrees.")
    assert refused(chk, "Tumour contact with the aorta exceeds 180 degrees.", kind="measurement")
    assert refused(chk, f"The tumour contacts the IVC over about {ao / 2:.0f} degrees.", kind="measurement")


def test_hu_statistic_named_before_the_number(chk, case, ids):
    """'mean attenuation 20 HU' is checked against means, not against the lesion-minus-host difference."""
    m = case["truth"]["hyper"]["mask"]
    liver = case["masks"]["liver"] & ~case["masks"]["liver_lesion"] & ~case["masks"]["tumor"]
    mean, host = float(case["hu"][m].mean()), float(case["hu"][liver].mean())
    diff = mean - host
    assert diff > 20  # painted host + 60 HU
    lid = ids["hyper"]
    assert ok(chk, f"{lid} has a mean attenuation of about {5 * round(mean / 5):.0f} HU.", [lid])
    assert refused(chk, f"{lid} has a mean attenuation of {diff:.0f} HU.", [lid], "measurement") or \
        abs(diff - mean) < 1


# --- location -------------------------------------------------------------------------------------
def test_segments_sides_and_pancreatic_part(chk, case, ids):
    share7 = case["truth"]["seg7_share"]
    assert 0.1 < share7 < 0.9  # the hypo lesion spans segments 7 and 8 (test-defined split)
    lid = ids["hypo"]
    assert ok(chk, f"{lid} spans segments VII and VIII.", [lid])
    assert refused(chk, f"{lid} is in segment IV.", [lid], "location")
    assert ok(chk, "There is a cyst in the right kidney.")
    assert refused(chk, "There is a cyst in the left kidney.")
    assert refused(chk, "The hyperattenuating renal lesion is in the right kidney.", kind="location")
    assert ok(chk, "A lesion is present in the pancreatic head.")
    assert refused(chk, "The pancreatic lesion is located in the tail of the pancreas.", kind="location")
    # text naming a lesion the sentence does not cite, or one that does not exist
    assert refused(chk, f"{ids['iso']} is in the spleen.", [ids["hypo"]], "citation")
    assert refused(chk, "L99 is in the spleen.", kind="citation")


# --- attenuation ----------------------------------------------------------------------------------
def test_attenuation_words(chk, case, ids):
    hu, masks = case["hu"], case["masks"]
    host = masks["liver"] & ~masks["liver_lesion"] & ~masks["tumor"]
    d = float(hu[case["truth"]["hypo"]["mask"]].mean() - hu[host].mean())
    assert d < -20  # painted host - 45 HU
    lid = ids["hypo"]
    assert ok(chk, f"{lid} is hypoattenuating.", [lid])
    assert refused(chk, f"{lid} is hyperattenuating.", [lid], "attenuation")
    assert refused(chk, f"{lid} is hypoenhancing.", [lid], "attenuation")  # a non-contrast study
    assert ok(chk, "The splenic lesion is isoattenuating.")
    assert refused(chk, "A hyperattenuating lesion is present in the spleen.", kind="attenuation")


# --- vessels --------------------------------------------------------------------------------------
def test_vessel_category_per_clause(chk, case, ids):
    """'abuts the aorta but has no contact with the IVC' is two claims, one per clause (issue 13)."""
    masks, tr = case["masks"], case["truth"]
    assert gap_mm(case, tr["aorta"]["mask"], masks["inferior_vena_cava"]) >= 6.0  # clearly apart
    assert gap_mm(case, tr["ivc"]["mask"], masks["aorta"]) >= 6.0
    a, i = ids["aorta"], ids["ivc"]
    sc = chk.check_sentence(f"{a} abuts the aorta but has no contact with the IVC.", [a])
    assert [c.verdict for c in sc.claims if c.type == "vessel"] == ["supported", "supported"], sc.claims
    sc = chk.check_sentence(f"{a} has no contact with the aorta but abuts the IVC.", [a])
    assert [c.verdict for c in sc.claims if c.type == "vessel"] == ["unsupported", "unsupported"], sc.claims
    assert ok(chk, f"{i} encases the inferior vena cava.", [i])  # 240 degrees > 180
    assert refused(chk, f"{i} abuts the inferior vena cava.", [i], "vessel")
    assert ok(chk, "The tumor encasing the IVC does not contact the aorta.")
    assert refused(chk, "There is no vascular involvement.", kind="vessel")
    assert refused(chk, f"{i} invades the inferior vena cava.", [i], "vessel")  # invasion is never measured
    assert refused(chk, "The pancreatic lesion involves the superior mesenteric artery.", kind="vessel")  # no SMA mask


# --- stage ----------------------------------------------------------------------------------------
def test_stages(chk, case, ids):
    m = case["truth"]["kidney_tumor"]["mask"]
    assert not (m & ~case["masks"]["kidney_left"]).any()  # confined to the kidney
    ext = (np.ptp(np.argwhere(m), axis=0) + 1) * spacing(case)
    assert ext.max() <= 40  # AJCC 8 kidney: T1a <= 40 mm
    lid = ids["kidney_tumor"]
    assert ok(chk, f"{lid} is T1a.", [lid])
    assert refused(chk, f"{lid} is T2.", [lid], "stage")
    assert refused(chk, "The patient is staged T1a N0 M0.", kind="stage")
    assert ok(chk, "N and M stages are not assessed from masks.", ["study"])
    assert refused(chk, "This is stage IV disease.", kind="stage")


# --- count ----------------------------------------------------------------------------------------
def test_counts(chk, case):
    masks, tr = case["masks"], case["truth"]
    organs = ["liver", "spleen", "kidney_left", "kidney_right", "pancreas"]
    hosts = {n: max(organs, key=lambda o: int((tr[n]["mask"] & masks[o]).sum()))
             for n in ("hypo", "hyper", "iso", "kidney_tumor", "kidney_cyst", "pancreas", "ivc")}
    n_liver = sum(1 for h in hosts.values() if h == "liver")
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    assert ok(chk, f"There are {words[n_liver]} liver lesions.")
    assert refused(chk, f"There are {words[n_liver + 1]} liver lesions.", kind="count")
    assert ok(chk, "There is one lesion in the spleen.")
    assert refused(chk, "There are two lesions in the spleen.", kind="count")
    assert refused(chk, "A single lesion is present in the liver.", kind="count")


# --- comparison, diagnosis, recommendation ----------------------------------------------------------
@pytest.mark.parametrize("text,kind", [
    ("The hypoattenuating liver lesion has grown since the prior study.", "comparison"),
    ("The splenic lesion is unchanged compared with the previous CT.", "comparison"),
    ("The left renal lesion is new.", "comparison"),
    ("The hyperattenuating liver lesion is consistent with a benign hemangioma.", "diagnosis"),
    ("The hypoattenuating liver lesion is most likely HCC.", "diagnosis"),
    ("The liver lesions represent metastases.", "diagnosis"),
    ("The splenic lesion is likely benign.", "diagnosis"),
    ("We recommend biopsy of the left renal lesion.", "recommendation"),
    ("No follow-up is needed.", "recommendation"),
    ("MRI is recommended for further characterization.", "recommendation"),
])
def test_clinical_assertions_are_refused(chk, text, kind):
    assert refused(chk, text, kind=kind), verdicts(chk, text)


def test_cyst_typing_is_supported_only_by_the_finding(chk, ids):
    assert ok(chk, f"{ids['kidney_cyst']} is a cyst.", [ids["kidney_cyst"]])  # mask typed kidney_cyst
    assert refused(chk, f"{ids['hyper']} is a cyst.", [ids["hyper"]], "diagnosis")


def test_pancreatic_cyst_resection_rule_from_knowledge(f):
    """A recommendation is supported only by a sourced rule: pancreatic cyst > 3.0 mL or > 30 mm -> resection."""
    panc = next(les for les in f.lesions if les.organ == "pancreas")
    big = panc.model_copy(update={"kind": "cyst", "volume_ml": 4.0})
    small = panc.model_copy(update={"kind": "cyst", "volume_ml": 1.0, "long_axis_mm": 12.0})
    for les, resect in ((big, True), (small, False)):
        g = f.model_copy(update={"lesions": [les if x.id == panc.id else x for x in f.lesions]})
        c = ClaimChecker(g)
        assert ok(c, f"Resection of {panc.id} is recommended.", [panc.id]) is resect
        assert ok(c, f"Surveillance of {panc.id} is recommended.", [panc.id]) is (not resect)


# --- negative findings --------------------------------------------------------------------------
def test_negative_findings(chk, f):
    assert refused(chk, "No distant metastases.", kind="negative")
    assert refused(chk, "No lymphadenopathy.", kind="negative")
    assert refused(chk, "No ascites.", kind="negative")
    assert refused(chk, "The spleen is unremarkable.", kind="negative")
    assert refused(chk, "There is no lesion in the pancreas.", kind="negative")  # it holds one
    gb = f.search_of("gallbladder")
    assert gb is not None and not gb.searched
    assert refused(chk, "There is no lesion in the gallbladder.", kind="negative")  # never searched


def test_no_lesion_needs_a_search_and_the_organ_imaged(f):
    """Without its lesion, the pancreas (searched, completely imaged) may be said to have none; the spleen
    (searched, cut off by the scan edge) only 'in its imaged part'; an organ without a search record never."""
    keep = [les for les in f.lesions if les.organ not in ("pancreas", "spleen")]
    g = f.model_copy(update={"lesions": keep})
    assert g.organ("pancreas").status.value == "measured" and g.search_of("pancreas").covers()
    assert g.organ("spleen").status.value == "truncated_by_fov" and g.search_of("spleen").covers()
    c = ClaimChecker(g)
    assert ok(c, "No lesion found in the pancreas.")
    assert refused(c, "No lesion found in the spleen.", kind="negative")
    assert ok(c, "No lesion found in the spleen in its imaged part.")
    h = g.model_copy(update={"lesion_search": [s for s in g.lesion_search if s.organ != "pancreas"]})
    assert refused(ClaimChecker(h), "No lesion found in the pancreas.", kind="negative")
    cyst_only = [s if s.organ != "pancreas" else LesionSearch(organ="pancreas", searched=True, by=["mask x"], kinds=["cyst"])
                 for s in g.lesion_search]
    k = ClaimChecker(g.model_copy(update={"lesion_search": cyst_only}))
    assert ok(k, "No cyst found in the pancreas.") and refused(k, "No lesion found in the pancreas.")


# --- phase ----------------------------------------------------------------------------------------
def test_phase_and_enhancement_patterns(case, chk, f):
    core = ndimage.binary_erosion(case["masks"]["aorta"])
    assert float(np.median(case["hu"][core])) < 80  # non-contrast by the test's own measure
    assert ok(chk, "Non-contrast CT.", ["study"])
    assert ok(chk, "This is an unenhanced CT.")
    assert refused(chk, "Portal venous phase CT.", ["study"], "phase")
    assert refused(chk, "The hyperattenuating liver lesion shows arterial enhancement with washout.", kind="phase")
    assert refused(chk, "The left renal lesion enhances avidly.", kind="phase")
    pv = f.model_copy(update={"study": f.study.model_copy(update={"contrast_phase": ContrastPhase(
        phase="portal_venous", source="header", rule="test")})})
    c = ClaimChecker(pv)
    assert ok(c, "Portal venous phase CT.", ["study"])
    assert refused(c, "Non-contrast CT.", ["study"], "phase")
    assert refused(c, "The liver lesion shows washout.", kind="phase")  # one series: no pattern over phases


# --- organ status -------------------------------------------------------------------------------
def test_organ_status(case, chk, f):
    liver = case["masks"]["liver"]
    ax = 2
    touches = liver.take(0, axis=ax).any() or liver.take(-1, axis=ax).any()
    assert touches  # the liver reaches the first or last slice: cut off by the scan edge
    assert ok(chk, "The liver is incompletely imaged (cut off by the scan edge).", ["organ:liver"])
    assert f.organ("pancreas") is not None
    assert refused(chk, "The pancreas is incompletely imaged.", ["organ:pancreas"], "organ_status")
    assert refused(chk, "Pancreas: not assessed (no mask).", ["study"], "organ_status")
    no_gb = f.model_copy(update={"organs": [o for o in f.organs if o.name != "gallbladder"]})
    assert ok(ClaimChecker(no_gb), "Gallbladder: not assessed (no mask).", ["study"])


# --- unknown clinical words -----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["The liver shows fibrosis.", "There is biliary dilatation.",
                                  "The lesion has spiculated margins.", "Possible early cholangitis."])
def test_unknown_clinical_words_cannot_pass_as_no_claims(chk, text):
    sc = chk.check_sentence(text)
    assert sc.claims and not sc.ok, sc.claims


def test_connective_prose_carries_no_claim(chk):
    sc = chk.check_sentence("The findings are summarised below.")
    assert sc.ok and not sc.claims


# --- the issue's rejected-but-accepted sentences, and the Validator interface ------------------------
def test_the_issue_examples_are_all_rejected(chk):
    for text in ("No distant metastases.", "Consistent with benign hemangioma; no follow-up needed.",
                 "Most likely HCC.", "The lesion has grown since prior.", "Recommend biopsy.",
                 "Arterial enhancement with washout."):
        assert not chk.check_sentence(text).ok, text


def test_validator_interface_backed_by_claims(f, ids):
    v = Validator(f)
    lid = ids["hypo"]
    errs = v.check_sentence(0, f"{lid} is most likely HCC.", [lid])
    assert errs and errs[0].kind == "diagnosis" and str(errs[0]).startswith("sentence 1: [diagnosis]")
    assert not v.check_sentence(0, f"{lid} is hypoattenuating.", [lid])
    errs = v.check_report([(f"{lid} is hypoattenuating.", [lid], "findings")])
    assert {e.kind for e in errs} == {"missing_lesion"}  # the other lesions are not described


def test_split_sentences_of_markdown():
    md = "# Report\n\n## Findings\n- L1 measures 30 mm. It is hypoattenuating.\n\n**Impression:** No change.\n---\n"
    assert split_sentences(md) == ["- L1 measures 30 mm.", "It is hypoattenuating.", "No change."]


def test_history_is_not_checkable_and_limitations_are_supported(chk):
    sc = chk.check_sentence("Indication: abdominal pain, history of colorectal cancer.")
    assert sc.ok and [c.verdict for c in sc.claims] == ["not_checkable"]
    sc = chk.check_sentence("Known liver metastases are stable.")  # the comparison is still checked
    assert not sc.ok and {c.type for c in sc.claims if c.verdict == "unsupported"} == {"comparison"}
    assert ok(chk, "Metastases cannot be assessed from these masks.")
    assert refused(chk, "HCC cannot be excluded.", kind="diagnosis")  # a soft diagnosis, not a limitation


def test_superlatives_by_long_axis(chk, case, ids):
    tr = case["truth"]
    # analytic long axes: hypo 30 mm; the hyper blob (radius 7 mm spheres) and the iso spleen lesion (15 mm) are smaller
    liver_ids = [ids["hypo"], ids["hyper"], ids["ivc"]]
    ext = {n: float((np.ptp(np.argwhere(tr[n]["mask"])[:, :2], axis=0).max() + 1) * spacing(case)[0])
           for n in ("hypo", "hyper", "ivc")}
    order = sorted(("hypo", "hyper", "ivc"), key=lambda n: -ext[n])
    assert ext[order[0]] - ext[order[1]] >= 6 and ext[order[1]] - ext[order[2]] >= 6, ext  # clearly ranked
    assert set(liver_ids) == {ids[n] for n in order}
    assert ok(chk, f"{ids[order[0]]} is the largest liver lesion.")
    assert ok(chk, f"{ids[order[1]]} is the second largest liver lesion.")
    assert refused(chk, f"{ids[order[2]]} is the largest liver lesion.", kind="measurement")


def test_values_belong_to_the_lesion_named_before_them(chk, case, ids):
    """'L1 is 30 mm, L2 is 15 mm' checks each size against its own lesion; swapped sizes are refused, as are an organ
    or a vessel contact that belongs to another lesion of the same sentence."""
    hypo, iso = ids["hypo"], ids["iso"]
    lh = case["truth"]["hypo"]["long"]  # 30 mm analytic
    li = (np.ptp(np.argwhere(case["truth"]["iso"]["mask"])[:, :2], axis=0).max() + 1) * spacing(case)[0]
    assert abs(lh - li) > 10
    assert ok(chk, f"{hypo} is {lh:.0f} mm, {iso} is {li:.0f} mm.")
    assert refused(chk, f"{hypo} is {li:.0f} mm, {iso} is {lh:.0f} mm.", kind="measurement")
    assert refused(chk, f"{hypo} measures {lh:.0f} mm and lies in the spleen.", kind="location")
    a, i = ids["aorta"], ids["ivc"]
    assert ok(chk, f"{a} abuts the aorta and {i} encases the IVC.")
    assert refused(chk, f"{i} abuts the aorta and {a} encases the IVC.", kind="vessel")


def test_renal_hu_ranges_from_knowledge(chk, case, ids):
    """A diagnosis word supported by a sourced rule (knowledge 'renal_mass_hu_ranges': -10..20 HU simple cyst,
    > 20..70 HU indeterminate), from the HU painted into the case's kidney lesions."""
    hu = case["hu"]
    cyst = float(hu[case["truth"]["kidney_cyst"]["mask"]].mean())
    tumor = float(hu[case["truth"]["kidney_tumor"]["mask"]].mean())
    assert -10 + 3 < cyst < 20 - 3 and 20 + 3 < tumor < 70 - 3  # clearly inside the ranges
    c, t = ids["kidney_cyst"], ids["kidney_tumor"]
    assert ok(chk, f"{c} is a simple cyst.")
    assert ok(chk, f"{t} is an indeterminate renal lesion.")
    assert refused(chk, f"{t} is a simple cyst.", kind="diagnosis")
    assert refused(chk, f"{ids['hyper']} is a simple cyst.", kind="diagnosis")  # not a kidney lesion
    assert refused(chk, "The portal vein is patent.", kind="vessel")  # patency is never measured


def test_split_keeps_abbreviations_inside_the_sentence():
    assert split_sentences("L1 measures approx. 42 mm. L2 is e.g. hypoattenuating. No. The end.") == [
        "L1 measures approx. 42 mm.", "L2 is e.g. hypoattenuating.", "No.", "The end."]


def test_telegraphic_style(chk, case):
    vox = spacing(case)[2]
    assert ok(chk, f"Axial {vox:.0f} mm slices.")
    assert refused(chk, f"Axial {vox - 2:.0f} mm slices.", kind="measurement")  # not matched by a zero contact length
    assert refused(chk, "Multiple splenic lesions.", kind="count")  # one spleen lesion by construction
    assert ok(chk, "Multiple liver lesions.")
    assert ok(chk, "Renal lesions: a left-sided hyperdense lesion and a right-sided cyst.")
    assert refused(chk, "Renal lesions: a right-sided hyperdense lesion and a left-sided cyst.")
    long, short = case["truth"]["hypo"]["long"], case["truth"]["hypo"]["short"]
    assert ok(chk, f"Segment 7/8 hypodense liver lesion, {long / 10:.1f} x {short / 10:.1f} cm.")


def test_an_overlong_sentence_is_refused_not_parsed(chk):
    sc = chk.check_sentence("The liver lesion " + "is hypoattenuating and " * 200 + "round")
    assert not sc.ok and sc.claims[0].type == "unknown" and "split it" in sc.claims[0].reason


def test_bare_pancreatic_part_in_a_pancreas_sentence(chk, case):
    share = {p: int((case["truth"]["pancreas"]["mask"] & case["masks"][f"pancreas_{p}"]).sum()) for p in ("head", "tail")}
    assert share["head"] > 0 and share["tail"] == 0  # built in the head by the test's own split
    assert ok(chk, "Pancreas: lesion in the head.")
    assert refused(chk, "Pancreas: lesion in the tail.", kind="location")


def test_size_comparison_between_lesions(chk, case, ids):
    li = (np.ptp(np.argwhere(case["truth"]["iso"]["mask"])[:, :2], axis=0).max() + 1) * spacing(case)[0]
    assert li + 6 < case["truth"]["hypo"]["long"]  # the spleen lesion is clearly the smaller one
    assert ok(chk, "The splenic lesion is smaller than the hypoattenuating liver lesion.")
    assert refused(chk, "The splenic lesion is larger than the hypoattenuating liver lesion.", kind="measurement")
    assert refused(chk, f"{ids['iso']} is larger than {ids['hypo']}.", kind="measurement")
