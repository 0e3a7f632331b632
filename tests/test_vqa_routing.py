"""Question understanding (issue 12): entities read first, a question type only when it uses every
entity named, vessel / time / diagnosis / recommendation questions never answered by another rule,
DeepTumorVQA's own prompt builders around a question change nothing, options written inside the
question, the unit asked is the unit answered, lower bounds at the scan edge, refusals.

Truth: the real-CT case of tests/cases.py (lesions of known analytic geometry; mask voxel counts for
volumes) and the same case cut by the scan edge through the hypoattenuating liver ellipsoid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from reasoning.vqa import SUBTYPES, answer, parse_question
from reasoning.vqa.entities import extract_entities, strip_prompt
from reasoning.vqa.parse import understand
from tests.cases import build_case
from tests.test_vqa_paraphrase import cut_case

ANSWERED, CANNOT, UNMAPPED = "answered", "cannot_be_determined", "unmapped_question"
VENDOR_SRC = Path(__file__).resolve().parents[2] / "shared" / "vendor" / "deeptumorvqa" / "src"
VESSEL_TYPES = {"vessel involvement", "vessel contact category", "vessel contact angle", "vessel contact length", "involved vessels"}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("routing_main"))


@pytest.fixture(scope="module")
def cut(case, tmp_path_factory):
    return cut_case(case, tmp_path_factory.mktemp("routing_cut"))


def _voxel_ml(c) -> float:
    return float(abs(np.linalg.det(c["aff"][:3, :3]))) / 1000.0


def _lesion_of(c, mask) -> str:
    """The Findings id of the lesion the test's own mask made (same voxel count, overlapping centroid)."""
    n = int(mask.sum())
    ml = n * _voxel_ml(c)
    best = min(c["findings"].lesions, key=lambda l: abs(l.volume_ml - ml))
    assert abs(best.volume_ml - ml) < 0.5 * _voxel_ml(c) + 1e-9, (best.id, best.volume_ml, ml)
    return best.id


# --- entities -------------------------------------------------------------------------------------
def test_entities_are_read_first():
    e = extract_entities("Does the pancreatic tumor contact the aorta, and is it abutment or encasement?")
    assert e.organs == ["pancreas"] and e.vessels == ["aorta"] and e.lesion and e.lesion_kind == "tumor"
    assert "contact_category" in e.measures
    e = extract_entities("How many degrees of the SMA does lesion L3 contact?")
    assert e.vessels == ["superior_mesenteric_artery"] and e.lesion_ids == ["L3"] and "angle" in e.measures
    assert "count" not in e.measures and e.unit == "deg"
    # vessel words are not organs: the hepatic artery is not the liver, the splenic vein not the spleen
    e = extract_entities("Is the common hepatic artery or the splenic vein involved?")
    assert e.organs == [] and e.vessels == ["common_hepatic_artery", "splenic_vein"]
    e = extract_entities("How many lesions are in segment VIII, S7 and the eighth segment of the right kidney?")
    assert e.segments == ["liver_segment_8", "liver_segment_7"] and e.organs == ["kidney_right"] and "count" in e.measures
    e = extract_entities("Is the second largest left renal lesion larger than 2.5 cm?")
    assert e.organs == ["kidney_left"] and e.rank == 2 and e.threshold_mm == 25.0 and e.comparison == "larger"
    assert e.unit is None  # the cm belongs to the threshold
    e = extract_entities("What is the total lesion volume in the liver in litres?")
    assert e.aggregate == "total" and e.unit == "L" and "volume" in e.measures
    e = extract_entities("Has the smallest liver lesion grown since the prior scan?")
    assert e.rank == -1 and {"grown", "since", "prior"} <= set(e.time)
    assert extract_entities("Any liver metastases?").diagnosis == "metastasis"
    assert extract_entities("Is the kidney lesion benign?").diagnosis == "benign"
    assert extract_entities("Should the liver lesion be biopsied?").recommendation
    assert extract_entities("Is there fatty change of the liver?").time == []  # 'fatty change' is not a time reference
    assert extract_entities("Any lesion in the prostate?").organs == ["prostate"]
    assert extract_entities("Any lesion in the breast?").other_anatomy == ["breast"]
    assert extract_entities("Tumour of the pancreatic head?").segments == ["pancreas_head"]


def test_prompt_wrappers_stripped():
    text = ("You are given the full 3D abdominal CT volume (NIfTI, native voxel spacing).\n"
            "Patient: sex=F, age=61, scanner=GE, contrast=portal venous.\n"
            "Voxel spacing (mm): [0.8, 0.8, 5.0].  Volume shape: [512, 512, 100].\n"
            "Is there a lesion in the liver?\nAnswer with 'yes' or 'no'.")
    assert strip_prompt(text) == "Is there a lesion in the liver?"
    e = extract_entities(text)
    assert "volume" not in e.measures and "phase" not in e.measures and e.unit is None


# --- routing --------------------------------------------------------------------------------------
def test_vessel_questions_answered_by_vessel_rules(case):
    f, t = case["findings"], case["truth"]
    ao, ivc = _lesion_of(case, t["aorta"]["mask"]), _lesion_of(case, t["ivc"]["mask"])
    a = answer(f, f"Does lesion {ao} contact the aorta, and is it abutment or encasement?")
    assert a.subtype == "vessel contact category" and a.answer == "abutment"  # 120 deg by construction
    a = answer(f, f"Does lesion {ivc} abut or encase the IVC?")
    assert a.subtype == "vessel contact category" and a.answer == "encasement"  # 240 deg
    a = answer(f, f"How many degrees of the aorta does lesion {ao} contact?")
    assert a.subtype == "vessel contact angle" and a.unit == "deg" and abs(a.answer - t["aorta"]["angle"]) <= 30
    a = answer(f, f"Over what length does lesion {ivc} contact the inferior vena cava?")
    assert a.subtype == "vessel contact length" and abs(a.answer - t["ivc"]["length"]) <= 6.0  # two 3 mm slices
    a = answer(f, f"Does lesion {ao} touch the aorta?")
    assert a.subtype == "vessel involvement" and a.answer == "yes"
    a = answer(f, f"Which vessels does lesion {ivc} involve?")
    assert a.subtype == "involved vessels" and "inferior_vena_cava" in a.answer.replace(" ", "_")
    # the misroutes: never 'adjacent organ' or lesion counting
    assert answer(f, "Does the pancreatic tumor contact the aorta, and is it abutment or encasement?").subtype == \
        "vessel contact category"
    assert answer(f, "How many degrees of the aorta does the tumor contact?").subtype == "vessel contact angle"
    # a question naming a vessel is answered by a vessel rule or refused, never by another type
    for q in ("What is the HU of the aorta?", "Is the portal vein enlarged?", "How many lesions touch the SMA or the SMV?",
              "Does the tumor compress the IVC?", "What is the volume of the aorta?", "Is the aorta thrombosed?",
              "Which organ is next to the superior mesenteric artery?"):
        a = answer(f, q)
        assert a.subtype in VESSEL_TYPES or a.status == UNMAPPED, (q, a.subtype, a.status)
        assert not (a.status == ANSWERED and a.subtype not in VESSEL_TYPES), q
    two = answer(f, "Does the tumor contact the SMA or the SMV?")
    assert two.status == UNMAPPED and "more than one vessel" in two.reason
    # the vessel rules read one lesion: 'any lesion' (the aorta-wrapping one is not the largest) is not answered for the largest
    for q in ("Does any lesion touch the aorta?", "Is the aorta abutted?"):
        a = answer(f, q)
        assert a.status == UNMAPPED and "no one lesion named" in a.reason, (q, a.answer)
    assert answer(f, "Does the pancreatic lesion contact any vessel?").subtype == "vessel involvement"


def test_every_named_entity_used_or_unmapped(case):
    f = case["findings"]
    for q, missing in (("What is the volume of the liver lesion in segment 8?", "sub-segment liver_segment_8"),
                       ("How many liver lesions are in segments 7 and 8?", "more than one sub-segment"),
                       ("What is the diameter of the largest liver lesion in inches?", "unit inch"),
                       ("Is there a lesion larger than 2 cm in the liver?", "threshold"),
                       ("What is the total diameter of the liver lesions?", "aggregate"),
                       ("What is the volume of the liver in degrees?", "unit deg"),
                       ("How many lesions are in the breast?", "body part without a measurement: breast")):
        a = answer(f, q)
        assert a.status == UNMAPPED and a.answer is None, (q, a.status, a.subtype)
        assert missing in a.reason and "understood:" in a.reason and a.reason.count("(e.g. '") == 3, (q, a.reason)
    u = understand("What is the volume of the liver lesion in segment 8?")
    assert u.question is None and u.subtype == "lesion volume measurement" and len(u.closest) == 3
    assert all(s in SUBTYPES for s in u.closest)


def test_time_diagnosis_recommendation_refused(case):
    f = case["findings"]
    for q, sub in (("Has the liver lesion grown since the prior scan?", "change over time"),
                   ("Is the kidney lesion stable compared with the previous CT?", "change over time"),
                   ("Are there new liver lesions?", "change over time"),
                   ("Any liver metastases?", "diagnosis"), ("Is the splenic lesion benign?", "diagnosis"),
                   ("Is the liver lesion a hemangioma?", "diagnosis"), ("Is there HCC?", "diagnosis"),
                   ("Should the liver lesion be biopsied?", "recommendation"),
                   ("What follow-up do you recommend for the kidney lesion?", "recommendation")):
        a = answer(f, q)
        assert a.subtype == sub and a.status == CANNOT and a.answer is None and a.reason, (q, a.subtype, a.status)
    # DeepTumorVQA types that are themselves such rules keep their type
    assert parse_question("Should the pancreatic cyst be surgically resected?").subtype == "pancreatic cyst resectability"
    assert parse_question("Is the pancreatic lesion more likely PDAC or PNET?").subtype == "PDAC vs PNET classification"
    assert parse_question("Is the pancreatic cyst a pseudocyst?").subtype == "pseudocyst determination"
    # unknown organs and nonsense: never a confident answer
    for q in ("How many lesions are in the prostate?", "Brain lesion count?", "Is the liver spot happy?",
              "What is the patient's blood pressure?"):
        assert answer(f, q).status in (CANNOT, UNMAPPED), q


def test_caller_given_subtype_reads_only_parameters(case):
    f = case["findings"]
    q = parse_question("Is there a lesion in the left kidney?", subtype="lesion_counting")
    assert q.subtype == "lesion counting" and q.organ == "kidney_left"
    # a text the router would send elsewhere (the benchmark's 3D blurb says 'volume') keeps the given type
    text = "You are given the full 3D abdominal CT volume (NIfTI, native voxel spacing).\nHow many lesions are in the liver?"
    a = answer(f, text, subtype="lesion counting")
    n = len(f.organ("liver").lesion_ids)
    assert a.subtype == "lesion counting" and a.answer == n


# --- DeepTumorVQA's own prompt builders ---------------------------------------------------------------
def _build_prompt():
    if not VENDOR_SRC.is_dir():
        pytest.skip(f"vendored DeepTumorVQA missing: {VENDOR_SRC}")
    if str(VENDOR_SRC) not in sys.path:
        sys.path.insert(0, str(VENDOR_SRC))
    from deeptumorvqa.data.prompt import build_prompt

    return build_prompt


def test_vendored_prompt_builders_change_nothing(case):
    build_prompt = _build_prompt()
    f = case["findings"]
    n_liver = len(f.organ("liver").lesion_ids)
    hypo = _lesion_of(case, case["truth"]["hypo"]["mask"])
    hypo_long = next(l.long_axis_mm for l in f.lesions if l.id == hypo)
    recs = [
        ("liver lesion existence", "Is there a lesion in the liver?", "A: No B: Yes", "B"),
        ("lesion counting", "How many lesions are in the liver?",
         " ".join(f"{x}: {v}" for x, v in zip("ABCD", (n_liver + 2, n_liver, n_liver + 1, n_liver + 3))), "B"),
        ("kidney cyst existence", "Is there a cyst in the right kidney?", "A) Yes B) No", "A"),
        ("largest lesion diameter", "What is the diameter of the second largest liver lesion?",
         f"(A) {hypo_long * 2:.1f} mm (B) {hypo_long / 2:.1f} mm (C) {hypo_long:.1f} mm (D) {hypo_long * 4:.1f} mm", "C"),
        ("largest lesion slice", "On which slice is the second largest liver lesion largest?", None, None),
    ]
    for sub, question, opts, letter in recs:
        bare = answer(f, question)
        assert bare.subtype == sub, (question, bare.subtype)
        rec = {"question": question, "mc_question": f"{question}\n{opts}" if opts else question, "question_subtype": sub,
               "spacing": [3.0, 3.0, 3.0], "shape": list(case["hu"].shape), "sex": "F", "age": 61, "contrast": "portal venous",
               "scanner": "GE"}
        for mode in ("2d_image", "2d_video", "3d_volume"):
            p = build_prompt(rec, mode, "freeform")
            a = answer(f, p)
            assert (a.subtype, a.status, a.answer) == (bare.subtype, bare.status, bare.answer), (mode, p, a.reason)
            assert answer(f, p, subtype=sub).answer == bare.answer
            if opts:
                m = answer(f, build_prompt(rec, mode, "mc"))
                assert m.subtype == sub and m.answer == letter and m.answer_type == "choice", (mode, m.reason)


# --- options inside the question ----------------------------------------------------------------------
def test_inline_options(case):
    f = case["findings"]
    n = len(f.organ("liver").lesion_ids)
    assert answer(f, "Is there a lesion in the liver? A: No B: Yes").answer == "B"
    assert answer(f, f"How many lesions are in the liver? A) {n + 1} B) {n - 1} C) {n}").answer == "C"
    assert answer(f, f"How many lesions are in the liver? (A) {n} (B) {n + 1}").answer == "A"
    a = answer(f, f"How many lesions are in the liver?\nA. {n + 1}\nB. {n + 2}")
    assert a.status == CANNOT and a.answer is None and a.value == n  # no option holds the count: never a letter
    # renal-mass option synonyms: the right kidney cyst is painted at 5 HU (simple cyst), the left tumour at 60 HU
    opts = "A) Enhancing solid mass (RCC) B) Simple cyst (Bosniak I) C) Fat-containing (angiomyolipoma) D) Hyperdense cyst"
    assert answer(f, f"How would you characterize the renal mass in the right kidney? {opts}").answer == "B"
    assert answer(f, f"How would you characterize the renal mass in the left kidney? {opts}").answer == "A"


# --- units ------------------------------------------------------------------------------------------
def test_unit_asked_is_unit_answered(case):
    f = case["findings"]
    hypo = case["truth"]["hypo"]
    mm = answer(f, "What is the diameter of the second largest liver lesion?")
    cm = answer(f, "What is the longest diameter in cm of the second largest liver lesion?")
    assert mm.unit == "mm" and cm.unit == "cm" and cm.answer == pytest.approx(round(mm.answer / 10, 2))
    assert abs(cm.answer * 10 - hypo["long"]) <= 3.5  # analytic 30 mm, 3 mm voxels
    assert f"{cm.answer} cm" in cm.line() or f"{cm.answer:g} cm" in cm.line()
    ml = hypo["mask"].sum() * _voxel_ml(case)  # the test's own voxel count
    for q, unit, factor in (("in mL", "mL", 1.0), ("in cm3", "cm3", 1.0), ("in cubic centimetres", "cm3", 1.0),
                            ("in litres", "L", 1e-3), ("in mm3", "mm3", 1e3)):
        a = answer(f, f"What is the volume of the second largest liver lesion {q}?")
        assert a.status == ANSWERED and a.unit == unit, (q, a)
        assert a.answer == pytest.approx(ml * factor, rel=1e-3), (q, a.answer, ml)
    # a unit of another kind is not answered
    assert answer(f, "What is the volume of the second largest liver lesion in cm?").status == UNMAPPED
    # options in other units are still converted
    a = answer(f, "What is the volume of the second largest liver lesion?", choices=[f"A) {ml * 3:.3f} cm³", f"B) {ml:.3f} cm³",
                                                                                    f"C) {ml / 3:.4f} cm³"])
    assert a.answer == "B"


# --- lower bounds at the scan edge --------------------------------------------------------------------
def test_lower_bound_sizes(cut):
    f = cut["findings"]
    (les,) = [l for l in f.lesions if l.organ == "liver"]
    assert les.size_qualifier == "lower_bound"
    a = answer(f, "What is the diameter of the largest liver lesion in cm?")
    assert a.status == ANSWERED and a.qualifier == "lower_bound" and a.unit == "cm"
    assert a.explanation.startswith(f"at least {a.answer:g} cm, cut by the scan edge")
    assert a.answer * 10 <= cut["truth"]["hypo"]["long"] + 3.5  # a bound never above the true size (+ voxel)
    assert answer(f, "Is the largest liver lesion larger than 2 cm?").answer == "yes"  # the bound decides
    b = answer(f, "Is the largest liver lesion larger than 4 cm?")  # the bound does not
    assert b.status == CANNOT and b.answer is None
    v = les.long_axis_mm
    dec = answer(f, f"What is the diameter of the largest liver lesion? A) {v / 3:.1f} mm B) {v / 2:.1f} mm C) {v * 1.3:.1f} mm")
    assert dec.answer == "C"  # the only option not below the bound
    und = answer(f, f"What is the diameter of the largest liver lesion? A) {v:.1f} mm B) {v * 1.5:.1f} mm C) {v / 3:.1f} mm")
    assert und.status == CANNOT and und.answer is None and "A, B" in und.reason
    # asked the other way round: 'truncated?' is yes when not completely imaged
    assert answer(f, "Is the liver lesion truncated by the scan edge?").answer == "yes"
    assert answer(f, "Is the liver lesion completely imaged?").answer == "no"


def test_kind_words_choose_or_refuse(case):
    """'the kidney cyst' is the lesion classed cyst, not the largest kidney lesion; a count of cysts is not a lesion count."""
    f, t = case["findings"], case["truth"]
    cyst, tumor = _lesion_of(case, t["kidney_cyst"]["mask"]), _lesion_of(case, t["kidney_tumor"]["mask"])
    cyst_hu = float(case["hu"][t["kidney_cyst"]["mask"]].mean())  # painted at 5 HU
    a = answer(f, "What is the average density of the kidney cyst?")
    assert a.status == ANSWERED and a.finding_ids[:1] == [cyst] and abs(a.answer - cyst_hu) < 0.5, (a.finding_ids, a.answer)
    assert answer(f, "What is the mean HU of the kidney tumour?").finding_ids[:1] == [tumor]
    # the right kidney holds only the cyst: 'the right kidney tumour' names no lesion
    r = answer(f, "What is the volume of the right kidney tumour?")
    assert r.status == CANNOT and "classed tumor" in r.reason
    assert answer(f, "How many cysts are in the liver?").status == UNMAPPED
    assert answer(f, "How many tumours are in the kidneys?").status == UNMAPPED


def test_unmeasured_relations_refused(case):
    f = case["findings"]
    for q in ("How far is the liver lesion from the IVC?", "Does the liver lesion invade the IVC?",
              "Does the tumour extend into the aorta?", "What is the mean HU of the liver lesion on the arterial phase?",
              "What is the diameter of the liver lesion in the right lobe?", "Which organ has the most lesions?"):
        a = answer(f, q)
        assert a.status == UNMAPPED and a.answer is None, (q, a.subtype, a.answer)
    # completeness asked the other way round, with 'not'
    ids = [l.id for l in f.lesions if l.size_qualifier == "complete"][:1]
    assert ids, "the main case has completely imaged lesions"
    assert answer(f, f"Is lesion {ids[0]} not completely imaged?").answer == "no"
    assert answer(f, f"Is lesion {ids[0]} completely imaged?").answer == "yes"
    # existence asked as absence
    assert answer(f, "Is the spleen free of lesions?").answer == "no"  # the spleen lesion painted by the case


def test_every_type_example_routes_to_its_type():
    """The 'closest supported questions' an unmapped answer suggests must themselves be understood as that type."""
    wrong = {}
    for name, spec in SUBTYPES.items():
        q = parse_question(spec.example)
        if q is None or q.subtype != name:
            wrong[name] = (spec.example, q.subtype if q else None)
    assert not wrong, wrong
