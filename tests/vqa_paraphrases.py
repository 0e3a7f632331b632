"""The paraphrase suite's questions (issue 12, Tests): every question type asked in at least three
wordings (clinical shorthand, lay words, DeepTumorVQA's own phrasing), over the real-CT test case
(tests/cases.build_case) and a copy of it cut by the scan edge through a liver lesion.

Written without reading the parser's patterns (reasoning/vqa/parse.py, entities.py, choices.py):
the questions are how people ask, not how the parser matches. Every expected answer comes from the
test's own reading of the masks and HU array (tests/test_vqa.Truth: connected components, voxel
counts x voxel volume, numpy means, face-point Feret diameters, mask overlaps) and from the case's
truth dict (vessel angles and contact lengths by construction), never from findings.json.
Findings are used for lesion ids only (matched by centroid and voxel count in Truth).

Expectations: :class:`Num` (within a stated tolerance, in the unit the question asks for; lower
bounds must say so), :class:`Cat` (exact after normalising case, spaces, underscores and
punctuation; yes/no are categories), :class:`Letter` (multiple choice) and :class:`Refuse` (the
status must be cannot_be_determined or unmapped_question, never answered).
"""

from __future__ import annotations

import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from tests.test_vqa import Truth

STYLES = ("shorthand", "lay", "benchmark")
CANNOT = ("cannot_be_determined", "unmapped_question")
DTV_SRC = Path(__file__).resolve().parents[2] / "shared" / "vendor" / "deeptumorvqa" / "src"


# --- expectations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    """A number within ``tol`` of ``value`` (or of any of ``accept``), in ``unit``. ``asked``: the
    question names the unit, so the answer must be in it (mL and cm3 are the same unit);
    otherwise the answer's unit is converted. ``lower_bound``: the answer must say it is one."""

    value: float
    tol: float
    unit: str | None = None
    asked: bool = False
    lower_bound: bool = False
    accept: tuple[float, ...] = ()


@dataclass(frozen=True)
class Cat:
    accept: tuple[str, ...]


@dataclass(frozen=True)
class Letter:
    letter: str


@dataclass(frozen=True)
class Refuse:
    why: str


@dataclass(frozen=True)
class Q:
    qtype: str  # the question type (subtype name) the question asks
    style: str  # shorthand / lay / benchmark
    text: str
    expect: Num | Cat | Letter | Refuse
    choices: tuple[str, ...] | None = None
    case: str = "main"  # main / cut


YES, NO = Cat(("yes",)), Cat(("no",))

# unit -> (dimension, factor to the base unit)
UNITS = {"mm": ("len", 1.0), "cm": ("len", 10.0), "m": ("len", 1000.0),
         "ml": ("vol", 1.0), "cm3": ("vol", 1.0), "cc": ("vol", 1.0), "l": ("vol", 1000.0), "mm3": ("vol", 0.001),
         "hu": ("hu", 1.0), "deg": ("deg", 1.0), "%": ("pct", 1.0)}
_UNIT_ALIAS = {"milliliter": "ml", "millilitre": "ml", "ml.": "ml", "cm^3": "cm3", "cm³": "cm3", "mm^3": "mm3",
               "mm³": "mm3", "liter": "l", "litre": "l", "degrees": "deg", "degree": "deg", "°": "deg",
               "percent": "%", "pct": "%"}


def norm_unit(u: str | None) -> str | None:
    if u is None:
        return None
    u = u.strip().lower()
    return _UNIT_ALIAS.get(u, u)


def norm_text(s) -> str:
    s = str(s).lower().replace("_", " ").replace("-", " ").replace("/", " ")
    s = re.sub(r"[^a-z0-9%., ]", " ", s)
    return re.sub(r"\s+", " ", s).strip(" .")


def judge(q: Q, a) -> tuple[bool, str]:
    """Whether Answer ``a`` is right for ``q``, and what was wrong."""
    e = q.expect
    if isinstance(e, Refuse):
        return (a.status in CANNOT, f"expected a refusal ({e.why}), got {a.status} {a.answer!r}")
    if a.status != "answered":
        return False, f"expected an answer, got {a.status}: {(a.reason or '')[:160]}"
    if a.subtype is not None and a.subtype != q.qtype and q.qtype != "unanswerable":
        return False, f"routed to {a.subtype!r} (answered {a.answer!r})"
    if isinstance(e, Letter):
        return (str(a.answer).strip().upper() == e.letter, f"expected letter {e.letter}, got {a.answer!r} ({a.matched_option})")
    if isinstance(e, Cat):
        got = norm_text(a.answer)
        return (got in {norm_text(x) for x in e.accept}, f"expected one of {list(e.accept)}, got {a.answer!r}")
    try:
        v = float(a.answer)
    except (TypeError, ValueError):
        return False, f"expected a number, got {a.answer!r}"
    u = norm_unit(a.unit)
    if e.unit is not None and u is not None and u in UNITS and norm_unit(e.unit) in UNITS:
        (du, fu), (de, fe) = UNITS[u], UNITS[norm_unit(e.unit)]
        if du != de:
            return False, f"unit {a.unit!r}, expected {e.unit}"
        if e.asked and fu != fe:
            return False, f"asked in {e.unit}, answered {a.answer} {a.unit}"
        v = v * fu / fe
    elif e.asked and e.unit is not None and u != norm_unit(e.unit):
        return False, f"asked in {e.unit}, answered {a.answer} {a.unit}"
    targets = (e.value,) + tuple(e.accept)
    if not any(abs(v - t) <= e.tol for t in targets):
        return False, f"expected {e.value:g} +- {e.tol:g} {e.unit or ''}, got {a.answer} {a.unit or ''}"
    qual = getattr(a, "qualifier", None)
    if e.lower_bound and qual != "lower_bound":
        return False, f"a lower bound (lesion cut by the scan edge) answered with qualifier {qual!r}"
    if not e.lower_bound and qual == "lower_bound":
        return False, "a complete lesion answered as a lower bound"
    return True, ""


# --- DeepTumorVQA prompt builders -----------------------------------------------------------------
def _dtv_build_prompt():
    if str(DTV_SRC) not in sys.path:
        sys.path.insert(0, str(DTV_SRC))
    from deeptumorvqa.data.prompt import build_prompt

    return build_prompt


def dtv(question: str, subtype: str, mode: str = "3d_volume", fmt: str = "freeform", options: list[str] | None = None,
        shape=(122, 101, 30)) -> str:
    """The benchmark's own prompt around a question (its builder: modality blurb, patient and spacing
    lines, answer-format instruction); ``fmt="mc"`` writes the options inline as its mc_question."""
    rec = {"question": question, "question_subtype": subtype, "spacing": [3.0, 3.0, 3.0], "shape": list(shape),
           "sex": "F", "age": 63}
    if options:
        rec["mc_question"] = question + " " + " ".join(f"{'ABCD'[i]}: {o}" for i, o in enumerate(options))
    return _dtv_build_prompt()(rec, mode, fmt)


# --- truth bundle ---------------------------------------------------------------------------------
@dataclass
class CaseTruth:
    T: Truth
    truth: dict
    extra: dict = field(default_factory=dict)


def comp_over(T: Truth, mask: np.ndarray):
    """The lesion component that holds most of ``mask`` (the case's own construction mask)."""
    return max(T.comps, key=lambda c: int((c.vox & mask).sum()))


def area_slices(c) -> set[int]:
    """0-based axial indices where the component's cross-sectional area (voxel count) is largest."""
    a = c.vox.sum(axis=(0, 1))
    return {int(k) for k in np.flatnonzero(a == a.max())}


def touches_edge(mask: np.ndarray) -> bool:
    return any(np.take(mask, i, axis=ax).any() for ax in range(3) for i in (0, -1))


def kodama(liver_hu: float, ls: float) -> str:
    """Kodama grade, most severe criterion first (knowledge key kodama_steatosis_grade; Kodama AJR 2007)."""
    if liver_hu < 39 or ls < 0.5:
        return "G3"
    if liver_hu < 51 or ls < 0.8:
        return "G2"
    if liver_hu < 58 or ls < 1.0:
        return "G1"
    return "G0"


HYPO = Cat(("hypoattenuating", "hypodense", "hypo"))
ATT = {"hypoattenuating": HYPO, "isoattenuating": Cat(("isoattenuating", "isodense", "iso")),
       "hyperattenuating": Cat(("hyperattenuating", "hyperdense", "hyper"))}
SEG = {7: Cat(("liver_segment_7", "segment 7", "segment VII", "liver segment VII", "S7", "7")),
       8: Cat(("liver_segment_8", "segment 8", "segment VIII", "liver segment VIII", "S8", "8"))}
HEAD = Cat(("pancreas_head", "head", "pancreatic head", "head of the pancreas", "pancreas head"))


def top_seg(T: Truth, c) -> int:
    """The liver segment number holding the largest share of lesion ``c``."""
    sh = T.shares(c)
    return int(max(sh, key=sh.get)[-1])


# --- the questions --------------------------------------------------------------------------------
def _mc_opts(correct: str, wrong: list[str], rng: random.Random) -> tuple[list[str], str]:
    opts = [correct] + wrong[:3]
    rng.shuffle(opts)
    return opts, "ABCD"[opts.index(correct)]


def _num_opts(v: float, unit: str, rng: random.Random, fmt="{:.2f}") -> tuple[list[str], str]:
    return _mc_opts(f"{fmt.format(v)} {unit}".strip(), [f"{fmt.format(v * k)} {unit}".strip() for k in (0.5, 1.6, 2.5)], rng)


def _inline(text: str, opts: list[str], style: int) -> str:
    if style == 0:
        return text + " " + " ".join(f"{'ABCD'[i]}: {o}" for i, o in enumerate(opts))
    if style == 1:
        return text + "\n" + "\n".join(f"{'ABCD'[i]}) {o}" for i, o in enumerate(opts))
    return text + " Options: " + ", ".join(f"({'ABCD'[i]}) {o}" for i, o in enumerate(opts))


class _Suite:
    """The question list being built, the case truths and the lesions the questions name."""

    def __init__(self, M: CaseTruth, X: CaseTruth):
        T, tr = M.T, M.truth
        self.T, self.tr, self.X = T, tr, X
        self.rng = random.Random(12)
        self.out: list[Q] = []
        liver = T.lesions("liver")
        self.A, self.B, self.S3 = liver[0], liver[1], liver[-1]  # largest, second largest, smallest liver lesion
        self.KL, self.KR = T.largest("kidney_left"), T.largest("kidney_right")
        self.SP, self.PA = T.largest("spleen"), T.largest("pancreas")
        self.AO, self.IV = comp_over(T, tr["aorta"]["mask"]), comp_over(T, tr["ivc"]["mask"])
        assert self.IV is self.A, "the IVC-wrapping tumour is the largest liver lesion by construction"
        assert self.B.n == int((self.B.vox & tr["hypo"]["mask"]).sum()), "the second largest liver lesion is the hypo ellipsoid"
        self.hm = {o: T.host_mean(o) for o in ("liver", "spleen", "pancreas", "kidney_left", "kidney_right")}
        self.XL = X.T.lesions("liver")[0]  # the cut case's liver lesion

    def add(self, qtype, style, text, expect, choices=None, case="main"):
        self.out.append(Q(qtype, style, text, expect, tuple(choices) if choices else None, case))

    def _letter(self, qtype, style, text, opts, letter, inline=None, wrap=None):
        if wrap:
            self.add(qtype, style, dtv(text, qtype, wrap, "mc", opts), Letter(letter))
        elif inline is None:
            self.add(qtype, style, text, Letter(letter), opts)
        else:
            self.add(qtype, style, _inline(text, opts, inline), Letter(letter))

    def mc(self, qtype, style, text, correct, wrong, inline=None, wrap=None):
        """Multiple choice: options via ``choices`` (inline None), inline in the text (0, 1, 2), or the
        benchmark's mc prompt around it (wrap = its input mode)."""
        opts, letter = _mc_opts(correct, wrong, self.rng)
        self._letter(qtype, style, text, opts, letter, inline, wrap)

    def mc_num(self, qtype, style, text, v, unit, inline=None, fmt="{:.2f}"):
        opts, letter = _num_opts(v, unit, self.rng, fmt)
        self._letter(qtype, style, text, opts, letter, inline)

    def yn_mc(self, qtype, style, text, yes: bool, inline=0, wrap=None):
        self._letter(qtype, style, text, ["No", "Yes"], "B" if yes else "A", inline, wrap)


def questions(M: CaseTruth, X: CaseTruth) -> list[Q]:
    """All questions: ``M`` the main case, ``X`` the case cut by the scan edge through a liver lesion."""
    s = _Suite(M, X)
    for section in (_recognition, _measurement, _visual, _medical, _new_types, _second_batch):
        section(s)
    return s.out


def _recognition(s: _Suite) -> None:
    T, add, mc, yn_mc = s.T, s.add, s.mc, s.yn_mc
    B, KL, KR, XL = s.B, s.KL, s.KR, s.XL
    # ---------------- recognition ----------------
    q = "liver lesion existence"
    assert T.lesions("liver")
    add(q, "shorthand", "Liver lesions?", YES)
    add(q, "shorthand", "Any hepatic lesion present?", YES)
    add(q, "lay", "Are there any spots or growths on the liver?", YES)
    add(q, "lay", "Did the scan find anything abnormal in the liver?", YES)
    add(q, "benchmark", "Is there a lesion in the liver?", YES)
    add(q, "benchmark", dtv("Is there evidence of a liver lesion?", q), YES)
    yn_mc(q, "benchmark", "Is there a lesion in the liver?", True, inline=0)
    yn_mc(q, "benchmark", "Is there a liver tumor present?", True, wrap="3d_volume")

    q = "kidney lesion existence"
    add(q, "shorthand", "Renal lesion?", YES)
    add(q, "shorthand", "L kidney lesion present?", YES)
    add(q, "lay", "Is there anything growing in the right kidney?", YES)
    add(q, "lay", "Does either kidney have a spot on it?", YES)
    add(q, "benchmark", "Is there evidence of a lesion in the right kidney?", YES)
    add(q, "benchmark", "Is there a lesion in the left kidney?", YES)
    add(q, "benchmark", dtv("Is there any lesion in the kidneys?", q, "2d_image"), YES)
    yn_mc(q, "benchmark", "Is there evidence of a lesion in the left kidney?", True, inline=1)

    q = "kidney cyst existence"
    # kidney_cyst_right is a cyst by its mask type; the left kidney lesion is untyped at ~60 HU (> 34.8: tumour)
    assert KR.kind == "cyst" and T.kidney_class(KL) == "tumor"
    add(q, "shorthand", "Renal cyst?", YES)
    add(q, "shorthand", "R renal cyst present?", YES)
    add(q, "lay", "Is there a fluid-filled sac in the right kidney?", YES)
    add(q, "lay", "Does the left kidney have a cyst?", NO)
    add(q, "benchmark", "Is there a cyst in the kidneys?", YES)
    add(q, "benchmark", "Is there a cyst in the left kidney?", NO)
    add(q, "benchmark", "Is there a kidney cyst in the right kidney?", YES)
    yn_mc(q, "benchmark", "Is there a cyst in the left kidney?", False, wrap="2d_video")

    q = "kidney tumor existence"
    add(q, "shorthand", "Renal tumor, left?", YES)
    add(q, "shorthand", "Right renal mass (solid tumour)?", NO)
    add(q, "lay", "Is there a solid lump (a tumor) in the left kidney?", YES)
    add(q, "lay", "Does the right kidney have a tumor?", NO)
    add(q, "benchmark", "Is there a tumor in the left kidney?", YES)
    add(q, "benchmark", "Is there a tumor in the right kidney?", NO)
    add(q, "benchmark", "Is there a kidney tumor?", YES)
    yn_mc(q, "benchmark", "Is there a tumor in the right kidney?", False, inline=2)

    q = "pancreatic lesion existence"
    add(q, "shorthand", "Pancreatic lesion?", YES)
    add(q, "shorthand", "Any pancreas mass?", YES)
    add(q, "lay", "Is there something growing in the pancreas?", YES)
    add(q, "benchmark", "Is there a lesion in the pancreas?", YES)
    add(q, "benchmark", dtv("Is there a pancreatic lesion?", q, "3d_volume"), YES)
    yn_mc(q, "benchmark", "Is there a lesion in the pancreas?", True, wrap="2d_image")

    q = "PDAC existence"  # the pancreatic lesion mask is untyped: PDAC cannot be confirmed or excluded
    add(q, "shorthand", "PDAC?", Refuse("untyped pancreatic lesion"))
    add(q, "shorthand", "Pancreatic adenocarcinoma present?", Refuse("untyped pancreatic lesion"))
    add(q, "lay", "Does the patient have pancreatic cancer?", Refuse("untyped pancreatic lesion"))
    add(q, "benchmark", "Is there a PDAC in the pancreas?", Refuse("untyped pancreatic lesion"))
    add(q, "benchmark", _inline("Is there a pancreatic ductal adenocarcinoma (PDAC)?", ["No", "Yes"], 0),
        Refuse("untyped pancreatic lesion"))

    q = "PNET existence"
    add(q, "shorthand", "PNET?", Refuse("untyped pancreatic lesion"))
    add(q, "lay", "Is there a hormone-type (neuroendocrine) tumor in the pancreas?", Refuse("untyped pancreatic lesion"))
    add(q, "benchmark", "Is there a pancreatic neuroendocrine tumor (PNET)?", Refuse("untyped pancreatic lesion"))
    add(q, "benchmark", dtv("Is there a pancreatic neuroendocrine tumor (PNET)?", q, "2d_image"),
        Refuse("untyped pancreatic lesion"))

    q = "colon lesion existence"  # no colon lesion mask: the colon was not searched
    add(q, "shorthand", "Colonic lesion?", Refuse("colon not searched"))
    add(q, "lay", "Is there a growth in the large bowel?", Refuse("colon not searched"))
    add(q, "benchmark", "Is there a lesion in the colon?", Refuse("colon not searched"))
    add(q, "benchmark", dtv("Is there a colon lesion?", q, "3d_volume"), Refuse("colon not searched"))

    q = "splenomegaly detection"  # spleen cut by the scan edge, imaged part below 314.5 mL
    assert T.truncated("spleen") and T.partial("spleen") < 314.5
    add(q, "shorthand", "Splenomegaly?", Refuse("spleen truncated, imaged part below the threshold"))
    add(q, "lay", "Is the spleen swollen?", Refuse("spleen truncated"))
    add(q, "lay", "Is the patient's spleen too big?", Refuse("spleen truncated"))
    add(q, "benchmark", "Does the patient have splenomegaly?", Refuse("spleen truncated"))
    add(q, "benchmark", dtv("Does the patient have splenomegaly?", q, "3d_volume"), Refuse("spleen truncated"))

    q = "lesion existence"
    add(q, "shorthand", "Splenic lesion?", YES)
    add(q, "shorthand", "Gallbladder lesion?", Refuse("gallbladder not searched"))
    add(q, "lay", "Is there a spot on the spleen?", YES)
    add(q, "lay", "Is there anything growing in the stomach?", Refuse("stomach not searched"))
    add(q, "benchmark", "Is there a lesion in the spleen?", YES)
    add(q, "benchmark", "Is there a lesion in the right adrenal gland?", Refuse("adrenal not searched"))
    add(q, "benchmark", "Is there a lesion in the gallbladder?", Refuse("gallbladder not searched"))

    q = "contrast phase"
    aorta = T.m["aorta"]
    aorta_med = float(np.median(T.hu[ndimage.binary_erosion(aorta)]))
    assert aorta_med < 80, "unenhanced blood (30-60 HU): the case is a non-contrast CT"
    phase = Cat(("non_contrast", "non-contrast", "noncontrast", "unenhanced", "non contrast CT", "without contrast",
                 "no contrast"))
    add(q, "shorthand", "Phase?", phase)
    add(q, "shorthand", "Contrast phase of the study?", phase)
    add(q, "lay", "Was dye injected for this scan, and at what stage was the picture taken?", phase)
    add(q, "lay", "Is this scan with or without contrast?", phase)
    add(q, "benchmark", "In which contrast phase was the CT acquired?", phase)
    add(q, "benchmark", "What is the contrast phase of this CT scan?", phase)
    mc(q, "benchmark", "In which contrast phase was the CT acquired?", "Non-contrast",
       ["Arterial", "Portal venous", "Delayed"])

    q = "organ status"
    trunc = Cat(("truncated_by_fov", "incompletely imaged", "truncated", "truncated by the scan edge"))
    meas = Cat(("measured", "completely imaged", "fully imaged"))
    notseg = Cat(("not segmented", "not_segmented"))
    assert touches_edge(T.m["liver"]) and not touches_edge(T.m["pancreas"]) and not touches_edge(T.m["gallbladder"])
    # yes/no-shaped status questions: the status, or the yes/no it implies
    trunc_no, meas_yes = Cat(trunc.accept + ("no",)), Cat(meas.accept + ("yes",))
    add(q, "shorthand", "Liver status?", trunc)
    add(q, "shorthand", "Pancreas: fully in FOV?", meas_yes)
    add(q, "shorthand", "Heart segmentation status?", notseg)
    add(q, "lay", "Is the whole liver inside the scan?", trunc_no)
    add(q, "lay", "Did the scan capture the entire gallbladder?", meas_yes)
    add(q, "benchmark", "Is the whole spleen within the scan?", trunc_no)
    add(q, "benchmark", "What is the organ status of the liver?", trunc)
    add(q, "benchmark", "What is the status of the pancreas in the findings?", meas)
    add(q, "benchmark", "What is the status of the urinary bladder?", notseg)

    q = "lesion search coverage"
    add(q, "shorthand", "Pancreas searched for lesions?", YES)
    add(q, "shorthand", "Gallbladder: lesion search done?", NO)
    add(q, "lay", "Did anyone check the liver for growths?", YES)
    add(q, "lay", "Was the stomach looked at for tumors?", NO)
    add(q, "benchmark", "Was the pancreas checked for lesions?", YES)
    add(q, "benchmark", "Were the kidneys searched for lesions?", YES)
    add(q, "benchmark", "Was the colon checked for lesions?", NO)

    # lesion completeness: main case lesions are inside the grid; the cut case's liver lesion reaches the last slice
    q = "lesion completeness"
    assert not touches_edge(B.vox) and not touches_edge(KL.vox)
    assert touches_edge(XL.vox)
    add(q, "shorthand", "Largest liver lesion fully imaged?", YES)
    add(q, "shorthand", "L kidney lesion: complete in FOV?", YES)
    add(q, "lay", "Can we see the whole of the second largest liver spot on the scan?", YES)
    add(q, "benchmark", "Is the liver lesion completely imaged?", NO, case="cut")
    add(q, "benchmark", "Is the largest lesion in the left kidney completely imaged?", YES)
    add(q, "shorthand", "Liver lesion truncated by FOV?", YES, case="cut")
    add(q, "lay", "Is part of the liver spot cut off at the edge of the scan?", YES, case="cut")
    add(q, "lay", "Is the whole liver spot visible on the scan?", NO, case="cut")
    yn_mc(q, "benchmark", "Is the largest liver lesion completely imaged?", True, inline=0)



def _measurement(s: _Suite) -> None:
    T, add, mc_num = s.T, s.add, s.mc_num
    A, B, KL, KR, SP, PA, hm = s.A, s.B, s.KL, s.KR, s.SP, s.PA, s.hm
    # ---------------- measurement ----------------
    q = "lesion volume measurement"
    va, vb, vk, vs, vp = A.volume, B.volume, KL.volume, SP.volume, PA.volume
    tot = sum(c.volume for c in T.lesions("liver"))

    def tv(v):  # the reported mL are rounded
        return max(0.02, 0.01 * v)

    add(q, "shorthand", "Largest liver lesion volume?", Num(va, tv(va), "mL"))
    add(q, "shorthand", "Vol of largest hepatic lesion in cc?", Num(va, tv(va), "cc", asked=True))
    add(q, "shorthand", "Total liver lesion volume (mL)?", Num(tot, tv(tot), "mL", asked=True))
    add(q, "lay", "How big is the biggest spot on the liver, in millilitres?", Num(va, tv(va), "mL", asked=True))
    add(q, "lay", "How much space does the growth in the left kidney take up?", Num(vk, tv(vk), "mL"))
    add(q, "lay", "What is the size in cubic centimetres of the second biggest liver spot?", Num(vb, tv(vb), "cm3", asked=True))
    add(q, "benchmark", "What is the volume of the largest liver lesion?", Num(va, tv(va), "mL"))
    add(q, "benchmark", "What is the volume of the largest liver lesion in cm3?", Num(va, tv(va), "cm3", asked=True))
    add(q, "benchmark", "What is the volume of the largest liver lesion in mm3?", Num(va * 1000, tv(va) * 1000, "mm3", asked=True))
    add(q, "benchmark", "What is the total volume of all liver lesions?", Num(tot, tv(tot), "mL"))
    add(q, "benchmark", "What is the volume of the second largest liver lesion?", Num(vb, tv(vb), "mL"))
    add(q, "benchmark", "What is the volume of the largest lesion in the spleen?", Num(vs, tv(vs), "mL"))
    add(q, "benchmark", "What is the volume of the pancreatic lesion in mL?", Num(vp, tv(vp), "mL", asked=True))
    add(q, "benchmark", dtv("What is the volume of the largest liver lesion?", q), Num(va, tv(va), "mL"))
    add(q, "benchmark", dtv("What is the volume of the largest kidney lesion?", q, "2d_image"), Num(vk, tv(vk), "mL"))
    mc_num(q, "benchmark", "What is the volume of the largest liver lesion?", va, "mL")
    # ordinals and lesion ids
    S3 = s.S3
    add(q, "shorthand", "Vol. of the 2nd largest liver lesion?", Num(vb, tv(vb), "mL"))
    add(q, "benchmark", "What is the volume of the third largest liver lesion?", Num(S3.volume, tv(S3.volume), "mL"))
    add(q, "lay", "How big is the smallest spot in the liver, in mL?", Num(S3.volume, tv(S3.volume), "mL", asked=True))
    add(q, "benchmark", f"What is the volume of lesion {B.lid}?", Num(vb, tv(vb), "mL"))
    add(q, "benchmark", "What is the volume of the fourth largest liver lesion?", Refuse("the liver has three lesions"))
    mc_num(q, "benchmark", "What is the volume of the largest liver lesion in cm3?", va, "cm3", inline=0)

    q = "organ HU measurement"
    add(q, "shorthand", "Liver attenuation (HU)?", Num(hm["liver"], 1.0, "HU"))
    add(q, "shorthand", "Mean HU spleen?", Num(hm["spleen"], 1.0, "HU"))
    add(q, "shorthand", "Left renal parenchyma mean HU?", Num(hm["kidney_left"], 1.5, "HU"))
    add(q, "lay", "How dense does the spleen look on the scan, in Hounsfield units?", Num(hm["spleen"], 1.0, "HU"))
    add(q, "lay", "What's the average brightness number (HU) of the liver?", Num(hm["liver"], 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU value of the liver?", Num(hm["liver"], 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU of the spleen?", Num(hm["spleen"], 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU of the right kidney?", Num(hm["kidney_right"], 1.5, "HU"))
    add(q, "benchmark", "What is the average Hounsfield unit value of the pancreas?", Num(hm["pancreas"], 2.0, "HU"))
    add(q, "benchmark", "What is the mean HU of the kidney?", Refuse("a kidney mean HU needs a side"))
    add(q, "benchmark", dtv("What is the mean HU value of the spleen?", q), Num(hm["spleen"], 1.0, "HU"))
    mc_num(q, "benchmark", "What is the mean HU value of the liver?", hm["liver"], "HU", inline=1, fmt="{:.1f}")

    q = "organ HU ratio"
    ls, ps = hm["liver"] / hm["spleen"], hm["pancreas"] / hm["spleen"]
    add(q, "shorthand", "L/S ratio?", Num(ls, 0.03))
    add(q, "shorthand", "P/S attenuation ratio?", Num(ps, 0.05))
    add(q, "lay", "How does the liver's density compare to the spleen's, as a ratio?", Num(ls, 0.03))
    add(q, "lay", "Divide the pancreas brightness by the spleen brightness: what number do you get?", Num(ps, 0.05))
    add(q, "benchmark", "What is the liver-to-spleen HU ratio?", Num(ls, 0.03))
    add(q, "benchmark", "What is the spleen-to-liver HU ratio?", Num(1 / ls, 0.03))
    add(q, "benchmark", "What is the ratio of the mean HU of the pancreas to that of the spleen?", Num(ps, 0.05))
    add(q, "benchmark", dtv("What is the liver-to-spleen HU ratio?", q), Num(ls, 0.03))
    mc_num(q, "benchmark", "What is the liver-to-spleen HU ratio?", ls, "")

    q = "organ volume measurement"
    vpan, vgb = T.volume("pancreas"), T.volume("gallbladder")
    assert vpan and vgb and T.volume("liver") is None and T.volume("spleen") is None and T.volume("kidney_left") is None
    add(q, "shorthand", "Pancreatic volume?", Num(vpan, 0.2, "mL"))
    add(q, "shorthand", "Gallbladder vol (cc)?", Num(vgb, 0.3, "cc", asked=True))
    add(q, "shorthand", "Liver volume?", Refuse("liver cut by the scan edge"))
    add(q, "lay", "How large is the pancreas in millilitres?", Num(vpan, 0.2, "mL", asked=True))
    add(q, "lay", "How big is the gallbladder, in litres?", Num(vgb / 1000, 0.0003, "L", asked=True))
    add(q, "lay", "How big is the left kidney in mL?", Refuse("kidney cut by the scan edge"))
    add(q, "benchmark", "What is the volume of the pancreas?", Num(vpan, 0.2, "mL"))
    add(q, "benchmark", "What is the volume of the gallbladder in cm3?", Num(vgb, 0.3, "cm3", asked=True))
    add(q, "benchmark", "What is the volume of the liver?", Refuse("liver cut by the scan edge"))
    add(q, "benchmark", "What is the volume of the spleen?", Refuse("spleen cut by the scan edge"))
    add(q, "benchmark", dtv("What is the volume of the pancreas?", q), Num(vpan, 0.2, "mL"))
    add(q, "benchmark", dtv("What is the volume of the liver?", q, "2d_video"), Refuse("liver cut by the scan edge"))
    mc_num(q, "benchmark", "What is the volume of the gallbladder?", vgb, "mL", inline=2, fmt="{:.1f}")

    q = "tumor burden percentage"
    pct = 100 * PA.volume / vpan
    add(q, "shorthand", "Pancreatic tumor burden (%)?", Num(pct, 0.15, "%"))
    add(q, "shorthand", "Hepatic tumor burden %?", Refuse("liver volume not measured (cut by the scan edge)"))
    add(q, "lay", "What fraction of the pancreas is taken up by the lesion, in percent?", Num(pct, 0.15, "%"))
    add(q, "lay", "How much of the gallbladder is tumour, as a percentage?", Refuse("gallbladder not searched"))
    add(q, "benchmark", "What percentage of the pancreas is occupied by tumor?", Num(pct, 0.15, "%"))
    add(q, "benchmark", "What percentage of the pancreas volume is occupied by lesions?", Num(pct, 0.15, "%"))
    add(q, "benchmark", "What percentage of the liver is occupied by tumor?", Refuse("liver volume not measured"))
    add(q, "benchmark", dtv("What percentage of the pancreas is occupied by tumor?", q), Num(pct, 0.15, "%"))

    q = "lesion HU measurement"
    add(q, "shorthand", "Left renal lesion HU?", Num(KL.mean, 1.0, "HU"))
    add(q, "shorthand", "Splenic lesion mean attenuation (HU)?", Num(SP.mean, 1.0, "HU"))
    add(q, "lay", "How dense is the cyst in the right kidney, in HU?", Num(KR.mean, 1.0, "HU"))
    add(q, "lay", "What is the average HU inside the biggest liver spot?", Num(A.mean, 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU of the largest liver lesion?", Num(A.mean, 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU value of the largest lesion in the left kidney?", Num(KL.mean, 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU of the second largest liver lesion?", Num(B.mean, 1.0, "HU"))
    add(q, "benchmark", "What is the mean HU of the smallest liver lesion?", Num(s.S3.mean, 1.0, "HU"))
    add(q, "shorthand", f"HU of {KL.lid}?", Num(KL.mean, 1.0, "HU"))



def _visual(s: _Suite) -> None:
    T, tr, add, mc, mc_num, yn_mc = s.T, s.tr, s.add, s.mc, s.mc_num, s.yn_mc
    A, B, S3, KL, KR, SP, PA = s.A, s.B, s.S3, s.KL, s.KR, s.SP, s.PA
    att, seg, head = ATT, SEG, HEAD
    vpan, vgb = T.volume("pancreas"), T.volume("gallbladder")
    q = "adjacent organ"
    adj_a, adj_b = T.adjacent(A), T.adjacent(B)
    assert adj_a == ["adrenal_gland_right"] and adj_b == []
    radr = Cat(("adrenal_gland_right", "right adrenal gland", "right adrenal", "adrenal gland right"))
    add(q, "shorthand", "Organ next to the largest liver lesion?", radr)
    add(q, "shorthand", "Largest hepatic lesion: neighbouring organ?", radr)
    add(q, "lay", "Which other organ does the biggest liver spot touch?", radr)
    add(q, "benchmark", "Which organ is adjacent to the largest liver lesion?", radr)
    add(q, "benchmark", "Which organ is adjacent to the second largest liver lesion?", Cat(("none",)))
    add(q, "benchmark", dtv("Which organ is adjacent to the largest liver lesion?", q, "2d_image"), radr)
    mc(q, "benchmark", "Which organ is adjacent to the largest liver lesion?", "Right adrenal gland",
       ["Stomach", "Pancreas", "Gallbladder"])

    q = "bilateral kidney asymmetry"
    r = KL.volume / KR.volume
    assert 1 <= r < 2
    sym = Cat(("symmetric", "symmetrical", "neither", "equal"))
    add(q, "shorthand", "Renal lesion burden: L vs R?", sym)
    add(q, "shorthand", "Kidney lesion burden asymmetry?", sym)
    add(q, "lay", "Which kidney has more growth in it, the left or the right, or are they about the same?", sym)
    add(q, "benchmark", "Which kidney has the greater lesion burden?", sym)
    add(q, "benchmark", dtv("Which kidney has the greater lesion burden?", q, "3d_volume"), sym)
    mc(q, "benchmark", "Which kidney has the greater lesion burden?", "Symmetric", ["Left kidney", "Right kidney"])

    q = "inter-segment comparison"
    cnt7 = sum(T.in_segment(c, "liver_segment_7") for c in T.lesions("liver"))
    cnt8 = sum(T.in_segment(c, "liver_segment_8") for c in T.lesions("liver"))
    assert cnt8 > cnt7
    seg_vol = {k: sum(T.shares(c).get(f"liver_segment_{k}", 0.0) * c.volume for c in T.lesions("liver")) for k in (7, 8)}
    assert seg_vol[8] > seg_vol[7]
    add(q, "shorthand", "Seg 7 vs seg 8: which has more lesions?", seg[8])
    add(q, "shorthand", "More lesions in S7 or S8?", seg[8])
    add(q, "shorthand", "Which has more lesions, segment VII or segment VIII?", seg[8])
    add(q, "lay", "Which part of the liver has more spots, segment 7 or segment 8?", seg[8])
    add(q, "benchmark", "Which liver segment has more lesions, segment 7 or segment 8?", seg[8])
    add(q, "benchmark", "Which liver segment has a larger total lesion volume, segment 7 or segment 8?", seg[8])
    add(q, "benchmark", "Which part of the pancreas has more lesions, the head or the tail?", head)
    add(q, "benchmark", dtv("Which liver segment has more lesions, segment VII or segment VIII?", q), seg[8])
    mc(q, "benchmark", "Which liver segment has more lesions, segment 7 or segment 8?", "Segment 8",
       ["Segment 7", "Equal"], inline=0)

    q = "kidney volume comparison"  # both kidneys cut by the scan edge
    assert T.truncated("kidney_left") and T.truncated("kidney_right")
    add(q, "shorthand", "Larger kidney?", Refuse("both kidneys cut by the scan edge"))
    add(q, "lay", "Which of the two kidneys is bigger?", Refuse("kidneys truncated"))
    add(q, "benchmark", "Which kidney is larger?", Refuse("kidneys truncated"))
    add(q, "benchmark", "Which kidney is smaller by volume?", Refuse("kidneys truncated"))
    add(q, "benchmark", _inline("Which kidney is larger?", ["Left kidney", "Right kidney"], 0), Refuse("kidneys truncated"))

    q = "largest lesion attenuation"
    add(q, "shorthand", "Largest liver lesion: hypo, iso or hyper?", att[T.attenuation(A)])
    add(q, "shorthand", "Attenuation of the splenic lesion?", att[T.attenuation(SP)])
    add(q, "shorthand", "Left renal lesion: hyperdense, isodense or hypodense?", att[T.attenuation(KL)])
    add(q, "lay", "Does the biggest liver spot look darker, brighter or about the same as the liver around it?",
        att[T.attenuation(A)])
    add(q, "lay", "Is the spot in the left kidney darker or brighter than the kidney?", att[T.attenuation(KL)])
    add(q, "benchmark", "Is the largest liver lesion hypoattenuating, isoattenuating or hyperattenuating?", att[T.attenuation(A)])
    add(q, "benchmark", "What is the attenuation of the largest lesion in the right kidney relative to the kidney?",
        att[T.attenuation(KR)])
    add(q, "benchmark", "Is the second largest liver lesion hypoattenuating, isoattenuating or hyperattenuating?",
        att[T.attenuation(B)])
    add(q, "benchmark", "What is the attenuation of the smallest liver lesion compared with the liver?", att[T.attenuation(S3)])
    add(q, "benchmark", "Is the pancreatic lesion hypoattenuating, isoattenuating or hyperattenuating?", att[T.attenuation(PA)])
    add(q, "benchmark", dtv("Is the largest liver lesion hypoattenuating, isoattenuating or hyperattenuating?", q, "2d_image"),
        att[T.attenuation(A)])
    mc(q, "benchmark", "What is the attenuation of the largest spleen lesion?", T.attenuation(SP).capitalize(),
       [x.capitalize() for x in att if x != T.attenuation(SP)], inline=1)

    q = "largest lesion diameter"
    la, lb, lk, lsp = A.long_axis, B.long_axis, KL.long_axis, SP.long_axis
    assert abs(lb - tr["hypo"]["long"]) <= 1.5  # the ellipsoid's analytic long axis, 30 mm
    add(q, "shorthand", "Longest axial diameter of the largest hepatic lesion?", Num(la, 1.0, "mm"))
    add(q, "shorthand", "Long axis of the splenic lesion in cm?", Num(lsp / 10, 0.1, "cm", asked=True))
    add(q, "shorthand", "LAD of the left renal lesion (mm)?", Num(lk, 1.0, "mm", asked=True))
    add(q, "lay", "How wide is the biggest liver spot across, in centimetres?", Num(la / 10, 0.1, "cm", asked=True))
    add(q, "lay", "How long is the second biggest spot in the liver, end to end, in mm?", Num(lb, 1.0, "mm", asked=True))
    add(q, "benchmark", "What is the diameter of the largest liver lesion?", Num(la, 1.0, "mm"))
    add(q, "benchmark", "What is the longest diameter of the largest liver lesion in cm?", Num(la / 10, 0.1, "cm", asked=True))
    add(q, "benchmark", "What is the diameter of the largest lesion in the left kidney?", Num(lk, 1.0, "mm"))
    add(q, "benchmark", "What is the diameter of the second largest liver lesion in millimeters?", Num(lb, 1.0, "mm", asked=True))
    add(q, "benchmark", dtv("What is the diameter of the largest liver lesion?", q), Num(la, 1.0, "mm"))
    add(q, "benchmark", dtv("What is the diameter of the largest liver lesion in cm?", q, "2d_image"),
        Num(la / 10, 0.1, "cm", asked=True))
    mc_num(q, "benchmark", "What is the diameter of the largest liver lesion?", la / 10, "cm")
    add(q, "benchmark", "What is the diameter of the third largest liver lesion?", Num(S3.long_axis, 1.0, "mm"))
    add(q, "shorthand", f"Long axis of {KL.lid} in mm?", Num(lk, 1.0, "mm", asked=True))
    add(q, "lay", "How wide across is the spot in the right kidney, in millimetres?", Num(KR.long_axis, 1.0, "mm", asked=True))
    mc_num(q, "benchmark", "What is the longest diameter of the largest lesion in the left kidney in mm?", lk, "mm", inline=0,
           fmt="{:.1f}")

    q = "largest lesion location"
    sa, sb = top_seg(T, A), top_seg(T, B)
    assert (sa, sb) == (8, 7)
    add(q, "shorthand", "Couinaud segment of the largest liver lesion?", seg[sa])
    add(q, "shorthand", "Largest hepatic lesion: which segment?", seg[sa])
    add(q, "shorthand", "Pancreatic lesion location (head/body/tail)?", head)
    add(q, "lay", "In which part of the liver is the biggest spot?", seg[sa])
    add(q, "lay", "Where in the pancreas is the growth?", head)
    add(q, "benchmark", "Which Couinaud segment contains the largest liver lesion?", seg[sa])
    add(q, "benchmark", "Which liver segment contains the second largest liver lesion?", seg[sb])
    add(q, "benchmark", "Which Couinaud segment contains the smallest liver lesion?", seg[top_seg(T, S3)])
    add(q, "benchmark", "In which part of the pancreas is the largest pancreatic lesion located?", head)
    add(q, "benchmark", dtv("Which Couinaud segment contains the largest liver lesion?", q, "2d_video"), seg[sa])
    mc(q, "benchmark", "Which Couinaud segment contains the largest liver lesion?", "Segment VIII",
       ["Segment VII", "Segment IV", "Segment II"])
    mc(q, "benchmark", "Which liver segment contains the second largest liver lesion?", "Segment 7",
       ["Segment 8", "Segment 4", "Segment 6"], inline=2)

    q = "largest lesion slice"
    # the slice of largest cross-sectional area; its index convention is the benchmark's (0-based index or
    # 1-based number: both accepted, ties in area too)
    def slice_num(c, tol=0.0):
        ks = sorted(area_slices(c))
        acc = tuple(float(k) for k in ks) + tuple(float(k + 1) for k in ks)
        return Num(acc[0], tol, None, accept=acc[1:])
    add(q, "shorthand", "Slice of max area of the largest liver lesion?", slice_num(A))
    add(q, "shorthand", "Left renal lesion: slice of largest cross-section?", slice_num(KL))
    add(q, "lay", "On which slice does the biggest liver spot look largest?", slice_num(A))
    add(q, "benchmark", "On which axial slice is the largest liver lesion biggest?", slice_num(A))
    add(q, "benchmark", "Which axial slice shows the largest cross-sectional area of the largest kidney lesion?", slice_num(KL))
    add(q, "benchmark", dtv("On which axial slice is the largest liver lesion biggest?", q), slice_num(A))

    q = "lesion count by location"
    cnt_tail = sum(T.in_segment(c, "pancreas_tail") for c in T.lesions("pancreas"))
    add(q, "shorthand", "# lesions in segment 8?", Num(cnt8, 0))
    add(q, "shorthand", "Lesions in S7, count?", Num(cnt7, 0))
    add(q, "lay", "How many spots are there in segment 8 of the liver?", Num(cnt8, 0))
    add(q, "lay", "How many growths are in the tail of the pancreas?", Num(cnt_tail, 0))
    add(q, "benchmark", "How many lesions are in liver segment 8?", Num(cnt8, 0))
    add(q, "benchmark", "How many lesions are located in liver segment VII?", Num(cnt7, 0))
    add(q, "benchmark", "How many lesions are located in liver segment VIII?", Num(cnt8, 0))
    add(q, "lay", "How many spots are in segment VII of the liver?", Num(cnt7, 0))
    add(q, "benchmark", "How many lesions are in the pancreatic head?", Num(sum(T.in_segment(c, "pancreas_head")
                                                                          for c in T.lesions("pancreas")), 0))
    add(q, "benchmark", dtv("How many lesions are in liver segment 8?", q, "2d_image"), Num(cnt8, 0))
    mc_num(q, "benchmark", "How many lesions are located in liver segment 7?", cnt7, "", fmt="{:.0f}")

    q = "lesion counting"
    nl, nk = len(T.lesions("liver")), len(T.lesions("kidney"))
    add(q, "shorthand", "# liver lesions?", Num(nl, 0))
    add(q, "shorthand", "No. of renal lesions?", Num(nk, 0))
    add(q, "shorthand", "Splenic lesion count?", Num(len(T.lesions("spleen")), 0))
    add(q, "lay", "How many spots are there on the liver?", Num(nl, 0))
    add(q, "lay", "How many growths are in the kidneys altogether?", Num(nk, 0))
    add(q, "lay", "How many lumps are in the gallbladder?", Refuse("gallbladder not searched"))
    add(q, "benchmark", "How many lesions are in the liver?", Num(nl, 0))
    add(q, "benchmark", "How many lesions are there in the kidneys?", Num(nk, 0))
    add(q, "benchmark", "How many lesions are in the left kidney?", Num(len(T.lesions("kidney_left")), 0))
    add(q, "benchmark", "How many lesions are in the pancreas?", Num(len(T.lesions("pancreas")), 0))
    add(q, "benchmark", "How many lesions are in the stomach?", Refuse("stomach not searched"))
    add(q, "benchmark", dtv("How many lesions are in the liver?", q), Num(nl, 0))
    add(q, "benchmark", dtv("How many lesions are there in the kidneys?", q, "2d_video"), Num(nk, 0))
    mc_num(q, "benchmark", "How many lesions are in the liver?", nl, "", inline=0, fmt="{:.0f}")

    q = "lesion outlier"
    vols = [c.volume for c in T.lesions("liver")]
    outl = len(vols) >= 3 and vols[0] >= 3 * vols[1]
    exp = YES if outl else NO
    add(q, "shorthand", "Liver lesion size outlier?", exp)
    add(q, "shorthand", "Dominant liver lesion (>= 3x the next)?", exp)
    add(q, "lay", "Is the biggest liver spot much, much larger than all the other liver spots?", exp)
    add(q, "benchmark", "Is the largest liver lesion an outlier in size?", exp)
    add(q, "benchmark", dtv("Is the largest liver lesion an outlier in size?", q, "3d_volume"), exp)
    yn_mc(q, "benchmark", "Is the largest liver lesion an outlier in size?", outl, inline=0)

    q = "liver lesion clustering"
    # the benchmark's definition counts lesions per segment: > 50 % in one segment -> highly clustered
    per = {}
    for c in T.lesions("liver"):
        per[top_seg(T, c)] = per.get(top_seg(T, c), 0) + 1
    fr = sorted((n / nl for n in per.values()), reverse=True) + [0.0]
    clus = "highly clustered" if fr[0] > 0.5 else "somewhat clustered" if fr[0] + fr[1] >= 0.75 else "widely distributed"
    add(q, "shorthand", "Liver lesion distribution: clustered or diffuse?", Cat((clus,)))
    add(q, "lay", "Are the liver spots bunched together or spread out across the liver?", Cat((clus,)))
    add(q, "benchmark", "Are the liver lesions clustered or widely distributed?", Cat((clus,)))
    add(q, "benchmark", "How would you describe the distribution of lesions across liver segments?", Cat((clus,)))
    add(q, "benchmark", dtv("Are the liver lesions clustered or widely distributed?", q), Cat((clus,)))
    mc(q, "benchmark", "Are the liver lesions clustered or widely distributed?", clus.capitalize(),
       [x.capitalize() for x in ("highly clustered", "somewhat clustered", "widely distributed") if x != clus], inline=1)

    q = "multi-organ lesion burden comparison"
    bur = {o: sum(c.volume for c in T.lesions(o)) for o in ("liver", "kidney", "spleen", "pancreas")}
    assert bur["liver"] > bur["kidney"] > bur["spleen"] > bur["pancreas"]
    kid = Cat(("kidney", "kidneys"))
    add(q, "shorthand", "Lesion burden liver vs kidneys?", Cat(("liver",)))
    add(q, "shorthand", "Greater lesion volume: spleen or pancreas?", Cat(("spleen",)))
    add(q, "lay", "Which has more tumour in it overall, the kidneys or the pancreas?", kid)
    add(q, "benchmark", "Which organ has the greater lesion burden, the liver or the kidneys?", Cat(("liver",)))
    add(q, "benchmark", "Which organ has the greater lesion burden, the kidneys or the pancreas?", kid)
    add(q, "benchmark", dtv("Which organ has the greater lesion burden, the liver or the kidneys?", q), Cat(("liver",)))
    mc(q, "benchmark", "Which organ has the greater lesion burden, the spleen or the pancreas?", "Spleen",
       ["Pancreas", "Equal"])

    q = "organ aggregation"
    les_lk = sum(c.volume for c in T.lesions("liver")) + sum(c.volume for c in T.lesions("spleen"))
    add(q, "shorthand", "Pancreas + gallbladder volume?", Num(vpan + vgb, 0.4, "mL"))
    add(q, "shorthand", "Total lesion count, liver and kidneys?", Num(nl + nk, 0))
    add(q, "shorthand", "Combined kidney volume?", Refuse("kidneys truncated"))
    add(q, "lay", "If you add the pancreas and the gallbladder together, how much volume is that in mL?",
        Num(vpan + vgb, 0.4, "mL", asked=True))
    add(q, "lay", "How many spots are there in the liver and the spleen put together?",
        Num(nl + len(T.lesions("spleen")), 0))
    add(q, "benchmark", "What is the combined volume of the pancreas and the gallbladder?", Num(vpan + vgb, 0.4, "mL"))
    add(q, "benchmark", "What is the total number of lesions in the liver and the kidneys?", Num(nl + nk, 0))
    add(q, "benchmark", "What is the total lesion volume in the liver and the spleen?", Num(les_lk, 0.1, "mL"))
    add(q, "benchmark", "What is the combined volume of both kidneys?", Refuse("kidneys truncated"))
    add(q, "benchmark", dtv("What is the combined volume of the pancreas and the gallbladder?", q),
        Num(vpan + vgb, 0.4, "mL"))

    q = "organ enlargement"  # liver and spleen cut by the scan edge, imaged parts below their references
    assert T.partial("liver") < 2200 and T.partial("spleen") < 314.5
    add(q, "shorthand", "Hepatomegaly?", Refuse("liver truncated"))
    add(q, "shorthand", "Enlarged spleen?", Refuse("spleen truncated"))
    add(q, "lay", "Is the liver bigger than it should be?", Refuse("liver truncated"))
    add(q, "benchmark", "Is the liver enlarged?", Refuse("liver truncated"))
    add(q, "benchmark", dtv("Is the liver enlarged?", q, "2d_image"), Refuse("liver truncated"))
    add(q, "benchmark", _inline("Is the spleen enlarged?", ["No", "Yes"], 0), Refuse("spleen truncated"))

    q = "tumor organ HU difference"
    add(q, "shorthand", "Largest liver lesion minus liver HU?", Num(T.diff(A), 1.5, "HU"))
    add(q, "shorthand", "Lesion-to-parenchyma HU difference, left kidney?", Num(T.diff(KL), 1.5, "HU"))
    add(q, "lay", "By how many HU does the left kidney spot differ from the kidney tissue around it?", Num(T.diff(KL), 1.5, "HU"))
    add(q, "benchmark", "What is the HU difference between the largest liver lesion and the liver?", Num(T.diff(A), 1.5, "HU"))
    add(q, "benchmark", "What is the HU difference between the largest spleen lesion and the spleen?", Num(T.diff(SP), 1.5, "HU"))
    add(q, "benchmark", "What is the difference in mean HU between the largest left kidney lesion and the left kidney?",
        Num(T.diff(KL), 1.5, "HU"))
    add(q, "benchmark", dtv("What is the HU difference between the largest liver lesion and the liver?", q),
        Num(T.diff(A), 1.5, "HU"))



def _medical(s: _Suite) -> None:
    T, add, mc, yn_mc = s.T, s.add, s.mc, s.yn_mc
    KL, KR, PA, hm = s.KL, s.KR, s.PA, s.hm

    # ---------------- medical reasoning ----------------
    q = "PDAC vs PNET classification"  # untyped lesion: the attenuation heuristic (hypo -> PDAC, iso/hyper -> PNET)
    pp = Cat(("PDAC",)) if T.attenuation(PA) == "hypoattenuating" else Cat(("PNET",))
    add(q, "shorthand", "Pancreatic lesion: PDAC or PNET?", pp)
    add(q, "lay", "Does the pancreas growth look more like the common pancreatic cancer (PDAC) or a neuroendocrine tumor (PNET)?",
        pp)
    add(q, "benchmark", "Is the pancreatic lesion more likely PDAC or PNET?", pp)
    add(q, "benchmark", dtv("Is the pancreatic lesion more likely PDAC or PNET?", q, "2d_image"), pp)

    q = "fatty liver"
    phase_nc = True  # asserted in contrast phase above
    grade = kodama(hm["liver"], hm["liver"] / hm["spleen"])
    fl = YES if phase_nc and grade != "G0" else NO
    add(q, "shorthand", "Fatty liver?", fl)
    add(q, "shorthand", "Hepatic steatosis present?", fl)
    add(q, "lay", "Is there too much fat in the liver?", fl)
    add(q, "benchmark", "Does the patient have fatty liver?", fl)
    add(q, "benchmark", dtv("Does the patient have fatty liver?", q), fl)
    yn_mc(q, "benchmark", "Does the patient have fatty liver?", grade != "G0", inline=0)

    q = "hepatic steatosis grading"
    words = {"G0": "normal", "G1": "mild", "G2": "moderate", "G3": "severe"}
    gcat = Cat((grade, words[grade], f"{grade} {words[grade]}", f"{words[grade]} {grade}", f"grade {grade[1]}"))
    add(q, "shorthand", "Steatosis grade?", gcat)
    add(q, "lay", "How fatty is the liver: not at all, a little, moderately or severely?", gcat)
    add(q, "benchmark", "What is the grade of hepatic steatosis?", gcat)
    add(q, "benchmark", dtv("What is the grade of hepatic steatosis?", q, "2d_image"), gcat)
    mc(q, "benchmark", "What is the grade of hepatic steatosis?", words[grade].capitalize(),
       [w.capitalize() for g, w in words.items() if g != grade])

    q = "lesion type classification"
    kl_t = Cat(("tumor", "tumour"))
    add(q, "shorthand", "Left renal lesion: cyst or tumour?", kl_t)
    add(q, "shorthand", "R kidney lesion: cyst vs tumor?", Cat(("cyst",)))
    add(q, "lay", "Is the spot in the right kidney just a cyst, or a tumor?", Cat(("cyst",)))
    add(q, "benchmark", "Is the kidney lesion in the left kidney a cyst or a tumor?", kl_t)
    add(q, "benchmark", "Is the right kidney lesion a cyst or a tumor?", Cat(("cyst",)))
    mc(q, "benchmark", "Is the left kidney lesion a cyst or a tumor?", "Tumor", ["Cyst"], inline=0)

    q = "pancreatic cyst resectability"  # the pancreatic lesion is not cystic (SD > 20 HU): no pancreatic cyst
    assert not T.cystic(PA)
    add(q, "shorthand", "Pancreatic cyst: resect?", Refuse("no pancreatic cyst"))
    add(q, "lay", "Does the pancreas cyst need an operation?", Refuse("no pancreatic cyst"))
    add(q, "benchmark", "Should the pancreatic cyst be resected?", Refuse("no pancreatic cyst"))
    add(q, "benchmark", dtv("Should the pancreatic cyst be resected?", q), Refuse("no pancreatic cyst"))

    q = "pancreatic lesion resectability"  # NCCN needs SMA / celiac masks: not in this case
    assert "superior_mesenteric_artery" not in T.m
    add(q, "shorthand", "Resectable pancreatic tumor?", Refuse("no SMA / celiac mask"))
    add(q, "shorthand", "NCCN resectability, pancreatic lesion?", Refuse("no SMA / celiac mask"))
    add(q, "lay", "Can the pancreas tumour be removed by surgery?", Refuse("no SMA / celiac mask"))
    add(q, "benchmark", "Is the pancreatic tumor resectable?", Refuse("no SMA / celiac mask"))
    add(q, "benchmark", _inline("What is the resectability status of the pancreatic lesion?",
                                ["Resectable", "Borderline resectable", "Locally advanced", "Metastatic"], 1),
        Refuse("no SMA / celiac mask"))

    q = "pancreatic steatosis"
    pst = YES if hm["pancreas"] / hm["spleen"] < 0.70 and hm["pancreas"] > 0 else NO
    add(q, "shorthand", "Pancreatic steatosis?", pst)
    add(q, "shorthand", "Fatty pancreas?", pst)
    add(q, "lay", "Is there fat build-up in the pancreas?", pst)
    add(q, "benchmark", "Is there pancreatic steatosis?", pst)
    add(q, "benchmark", dtv("Is there pancreatic steatosis?", q), pst)

    q = "pancreatic tumor staging"  # T4 cannot be excluded without SMA / celiac / CHA masks
    add(q, "shorthand", "T stage, pancreatic tumor?", Refuse("T4 not excluded"))
    add(q, "lay", "How advanced is the tumour in the pancreas (its T stage)?", Refuse("T4 not excluded"))
    add(q, "benchmark", "What is the T stage of the pancreatic tumor?", Refuse("T4 not excluded"))
    add(q, "benchmark", dtv("What is the T stage of the pancreatic tumor?", q, "2d_image"), Refuse("T4 not excluded"))

    q = "portal hypertension assessment"  # splenomegaly is the only assessable sign, and it is not established
    add(q, "shorthand", "Portal HTN?", Refuse("splenomegaly not established"))
    add(q, "lay", "Is the blood pressure in the liver's main vein too high?", Refuse("splenomegaly not established"))
    add(q, "benchmark", "Are there signs of portal hypertension?", Refuse("splenomegaly not established"))
    add(q, "benchmark", dtv("Are there signs of portal hypertension?", q), Refuse("splenomegaly not established"))

    q = "pseudocyst determination"
    add(q, "shorthand", "Pancreatic pseudocyst?", Refuse("no pancreatic cyst"))
    add(q, "lay", "Is the pancreas cyst a fake cyst left over from inflammation (a pseudocyst)?", Refuse("no pancreatic cyst"))
    add(q, "benchmark", "Is the pancreatic cyst a pseudocyst?", Refuse("no pancreatic cyst"))

    q = "renal mass characterization"
    def renal(c):
        if c.mean < -10:
            return Cat(("fat-containing", "fat containing"))
        if c.mean <= 20:
            return Cat(("simple cyst",))
        if c.mean <= 70:
            return Cat(("indeterminate",))
        return Cat(("hyperdense cyst",))
    add(q, "shorthand", "Left renal mass characterisation?", renal(KL))
    add(q, "shorthand", "Right renal lesion: simple cyst, indeterminate, hyperdense cyst or fat-containing?", renal(KR))
    add(q, "lay", "Going by its density, does the left kidney spot look like a simple cyst, something unclear "
        "(indeterminate), a dense cyst or a fatty lump?", renal(KL))
    add(q, "benchmark", "How would you characterize the renal mass in the right kidney?", renal(KR))
    add(q, "benchmark", "How would you characterize the renal mass in the left kidney?", renal(KL))
    mc(q, "benchmark", "How would you characterize the renal mass in the right kidney?", "Simple cyst",
       ["Indeterminate", "Hyperdense cyst", "Fat-containing"], inline=0)

    q = "splenomegaly grading"
    add(q, "shorthand", "Splenomegaly grade?", Refuse("spleen truncated"))
    add(q, "lay", "How enlarged is the spleen: not, mildly, moderately or severely?", Refuse("spleen truncated"))
    add(q, "benchmark", "How would you classify the splenic enlargement based on volume?", Refuse("spleen truncated"))
    add(q, "benchmark", dtv("How would you classify the splenic enlargement based on volume?", q), Refuse("spleen truncated"))



def _new_types(s: _Suite) -> None:
    T, tr, X, add, mc, yn_mc = s.T, s.tr, s.X, s.add, s.mc, s.yn_mc
    A, B, KL, KR, SP, PA, AO, XL = s.A, s.B, s.KL, s.KR, s.SP, s.PA, s.AO, s.XL
    ao, iv = tr["aorta"], tr["ivc"]

    def cat_of(ang):
        return "encasement" if ang > 180 else "abutment" if ang > 0 else "none"
    assert (cat_of(ao["angle"]), cat_of(iv["angle"])) == ("abutment", "encasement")
    aid = AO.lid
    # "none" below is said only where the lesion stays a full voxel (> the 2 mm contact tolerance) off the vessel
    gap = {}
    for v in ("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein"):
        dist = ndimage.distance_transform_edt(~T.m[v], sampling=(3.0, 3.0, 3.0))
        gap.update({(c.lid, v): float(dist[c.vox].min()) for c in (A, AO, PA)})
    assert all(gap[(PA.lid, v)] >= 6.0 for v in ("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein"))
    assert gap[(A.lid, "aorta")] >= 6.0 and gap[(A.lid, "portal_vein_and_splenic_vein")] >= 6.0
    assert gap[(AO.lid, "inferior_vena_cava")] >= 6.0 and gap[(AO.lid, "portal_vein_and_splenic_vein")] >= 6.0

    # ---------------- vessels ----------------
    q = "vessel involvement"
    add(q, "shorthand", "IVC involvement by the largest liver lesion?", YES)
    add(q, "shorthand", f"Aortic contact, lesion {aid}?", YES)
    add(q, "shorthand", "Pancreatic lesion: aortic involvement?", NO)
    add(q, "shorthand", "SMA involvement by the pancreatic lesion?", Refuse("SMA not segmented"))
    add(q, "lay", "Is the big vein behind the liver (the IVC) touched by the biggest liver growth?", YES)
    add(q, "lay", f"Is the body's main artery, the aorta, touching lesion {aid}?", YES)
    add(q, "lay", "Does the pancreas growth touch the main artery (the aorta)?", NO)
    add(q, "lay", "Is the artery to the bowel (superior mesenteric artery) wrapped by the pancreas tumor?",
        Refuse("SMA not segmented"))
    add(q, "benchmark", "Does the largest liver lesion contact the inferior vena cava?", YES)
    add(q, "benchmark", f"Does lesion {aid} involve the aorta?", YES)
    add(q, "benchmark", "Does the pancreatic tumor contact the superior mesenteric artery?", Refuse("SMA not segmented"))
    add(q, "benchmark", "Does the pancreatic lesion contact the superior mesenteric vein?", Refuse("SMV not segmented"))
    add(q, "benchmark", "Does the pancreatic lesion involve the portal vein?", NO)
    add(q, "benchmark", "Does the pancreatic lesion contact any vessel?", NO)
    yn_mc(q, "benchmark", "Does the largest liver lesion contact the inferior vena cava?", True, inline=0)

    q = "vessel contact category"
    enc, abut, none = Cat(("encasement",)), Cat(("abutment",)), Cat(("none", "no contact"))
    add(q, "shorthand", "IVC: abutment or encasement by the largest liver lesion?", enc)
    add(q, "shorthand", f"Lesion {aid} vs aorta: abutment/encasement?", abut)
    add(q, "shorthand", "Celiac trunk contact category, pancreatic lesion?", Refuse("celiac trunk not segmented"))
    add(q, "lay", "Does the biggest liver growth just touch the big vein (IVC) or wrap around it?", enc)
    add(q, "lay", f"Does lesion {aid} just touch the aorta or wrap around it?", abut)
    add(q, "benchmark", "Does the largest liver lesion abut or encase the inferior vena cava?", enc)
    add(q, "benchmark", f"Does lesion {aid} abut or encase the aorta?", abut)
    add(q, "benchmark", "Does the pancreatic lesion abut or encase the aorta?", none)
    add(q, "benchmark", "Does the pancreatic tumor contact the aorta, and is it abutment or encasement?", none)
    add(q, "benchmark", "Does the pancreatic lesion abut or encase the superior mesenteric artery?",
        Refuse("SMA not segmented"))
    mc(q, "benchmark", "What is the contact category between the largest liver lesion and the inferior vena cava?",
       "Encasement", ["Abutment", "None"], inline=1)

    q = "vessel contact angle"
    add(q, "shorthand", "IVC contact angle, largest liver lesion?", Num(iv["angle"], 25, "deg"))
    add(q, "shorthand", f"Aortic circumferential contact (deg), {aid}?", Num(ao["angle"], 25, "deg", asked=True))
    add(q, "shorthand", "SMA contact angle of the pancreatic lesion?", Refuse("SMA not segmented"))
    add(q, "lay", "How far around the big vein (IVC) does the biggest liver growth wrap, in degrees?",
        Num(iv["angle"], 25, "deg", asked=True))
    add(q, "lay", f"How much of the aorta's circle is touched by lesion {aid}, in degrees?", Num(ao["angle"], 25, "deg", asked=True))
    add(q, "benchmark", f"How many degrees of the aorta's circumference does lesion {aid} contact?", Num(ao["angle"], 25, "deg"))
    add(q, "benchmark", "How many degrees of the inferior vena cava does the largest liver lesion contact?",
        Num(iv["angle"], 25, "deg"))
    add(q, "benchmark", "What is the maximal contact angle between the largest liver lesion and the inferior vena cava?",
        Num(iv["angle"], 25, "deg"))

    q = "vessel contact length"
    add(q, "shorthand", "IVC contact length, largest liver lesion?", Num(iv["length"], 3.0, "mm"))
    add(q, "shorthand", f"Aortic contact length of {aid} in cm?", Num(ao["length"] / 10, 0.3, "cm", asked=True))
    add(q, "lay", "Over how long a stretch does the biggest liver growth touch the big vein (IVC), in mm?",
        Num(iv["length"], 3.0, "mm", asked=True))
    add(q, "lay", f"Along how much of the aorta does lesion {aid} run?", Num(ao["length"], 3.0, "mm"))
    add(q, "benchmark", "Over what length does the largest liver lesion contact the inferior vena cava?",
        Num(iv["length"], 3.0, "mm"))
    add(q, "benchmark", f"What is the contact length between lesion {aid} and the aorta in millimeters?",
        Num(ao["length"], 3.0, "mm", asked=True))
    add(q, "benchmark", "What is the contact length between the pancreatic lesion and the superior mesenteric vein?",
        Refuse("SMV not segmented"))

    q = "involved vessels"
    ivc_c = Cat(("inferior_vena_cava", "inferior vena cava", "ivc"))
    add(q, "shorthand", "Vessels involved by the largest liver lesion?", ivc_c)
    add(q, "shorthand", f"Vascular involvement, {aid}: which vessels?", Cat(("aorta",)))
    add(q, "lay", "Which blood vessels does the pancreas growth touch?", Cat(("none",)))
    add(q, "lay", "Which blood vessels is the biggest liver growth touching?", ivc_c)
    add(q, "benchmark", "Which vessels does the pancreatic tumor involve?", Cat(("none",)))
    add(q, "benchmark", f"Which vessels does lesion {aid} involve?", Cat(("aorta",)))
    add(q, "benchmark", "Which vessels does the largest liver lesion involve?", ivc_c)

    # ---------------- lesion sizes ----------------
    q = "lesion short axis"
    sb, sk = tr["hypo"]["short"], KL.long_axis  # the ellipsoid's analytic short axis (20 mm); the sphere's is its diameter
    add(q, "shorthand", "Short axis of the second largest liver lesion?", Num(sb, 1.5, "mm"))
    add(q, "shorthand", "SAD of the left renal lesion (mm)?", Num(sk, 1.5, "mm", asked=True))
    add(q, "lay", "How wide is the second biggest liver spot at its narrowest cross-way measurement, in cm?",
        Num(sb / 10, 0.15, "cm", asked=True))
    add(q, "benchmark", "What is the short axis of the second largest liver lesion?", Num(sb, 1.5, "mm"))
    add(q, "benchmark", "What is the short-axis diameter of the largest lesion in the left kidney in cm?",
        Num(sk / 10, 0.15, "cm", asked=True))
    # the cut keeps the ellipsoid's central slices, where its analytic in-plane short axis (20 mm) lies
    add(q, "benchmark", "What is the short axis of the liver lesion?", Num(sb, 1.5, "mm", lower_bound=True), case="cut")

    q = "lesion 3D diameter"
    db, dk = T.feret(B), T.feret(KL)
    assert abs(db - tr["hypo"]["d3"]) <= 1.5
    add(q, "shorthand", "3D diameter, second largest liver lesion?", Num(db, 1.0, "mm"))
    add(q, "shorthand", "Max 3D diameter of the left renal lesion in cm?", Num(dk / 10, 0.1, "cm", asked=True))
    add(q, "lay", "What is the greatest distance across the second biggest liver spot in any direction?", Num(db, 1.0, "mm"))
    add(q, "benchmark", "What is the maximal 3D diameter of the kidney lesion in the left kidney?", Num(dk, 1.0, "mm"))
    add(q, "benchmark", "What is the maximum three-dimensional diameter of the second largest liver lesion in mm?",
        Num(db, 1.0, "mm", asked=True))
    add(q, "benchmark", "What is the maximal 3D diameter of the liver lesion?", Num(X.T.feret(XL), 1.0, "mm", lower_bound=True),
        case="cut")

    q = "lesion size threshold"
    lb_, lk = B.long_axis, KL.long_axis
    xl = XL.long_axis
    assert lb_ > 25 and lk < 25 and 20 < xl < 40
    add(q, "shorthand", "Second largest liver lesion > 2 cm?", YES)
    add(q, "shorthand", "L renal lesion > 3 cm?", NO)
    add(q, "shorthand", "Liver lesion > 2 cm?", YES, case="cut")
    add(q, "shorthand", "Liver lesion > 5 cm?", Refuse("cut lesion: the lower bound does not decide"), case="cut")
    add(q, "lay", "Is the second biggest liver spot bigger than 4 centimetres?", NO)
    add(q, "lay", "Is the spot in the left kidney smaller than 2.5 cm?", YES)
    add(q, "lay", "Is the liver spot bigger than 1 cm?", YES, case="cut")
    add(q, "lay", "Is the liver spot smaller than 1 cm?", NO, case="cut")
    add(q, "benchmark", "Is the second largest liver lesion larger than 2 cm?", YES)
    add(q, "benchmark", "Is the largest lesion in the left kidney larger than 30 mm?", NO)
    add(q, "benchmark", "Is the liver lesion larger than 2 cm?", YES, case="cut")
    add(q, "benchmark", "Is the liver lesion smaller than 4 cm?", Refuse("cut lesion: the lower bound does not decide"),
        case="cut")
    yn_mc(q, "benchmark", "Is the second largest liver lesion larger than 2 cm?", True, inline=0)

    q = "RECIST measurability"
    assert min(B.long_axis, KL.long_axis, PA.long_axis, SP.long_axis) >= 10
    add(q, "shorthand", "RECIST-measurable, pancreatic lesion?", YES)
    add(q, "shorthand", "Splenic lesion measurable per RECIST 1.1?", YES)
    add(q, "lay", "Is the spot in the left kidney big enough to be tracked as a measurable lesion under RECIST?", YES)
    add(q, "benchmark", "Is the liver lesion measurable by RECIST?", YES, case="cut")
    add(q, "benchmark", "Is the second largest liver lesion measurable by RECIST?", YES)

    q = "lesion composition"
    cyst_c, solid = Cat(("cystic",)), Cat(("solid",))
    assert T.cystic(KR) and T.cystic(B) and not T.cystic(SP) and not T.cystic(KL)
    assert -10 < SP.mean < 100 and -10 < KL.mean < 100  # neither fat nor calcified
    add(q, "shorthand", "Right renal lesion: cystic or solid?", cyst_c)
    add(q, "shorthand", "Splenic lesion composition?", solid)
    add(q, "lay", "Is the spot in the left kidney filled with fluid or is it solid tissue?", solid)
    add(q, "lay", "What is the second biggest liver spot made of: fluid, fat, calcium or solid tissue?", cyst_c)
    add(q, "benchmark", "Is the kidney lesion in the left kidney cystic or solid?", solid)
    add(q, "benchmark", "What is the composition of the second largest liver lesion?", cyst_c)
    add(q, "benchmark", "What is the composition of the largest spleen lesion?", solid)
    add(q, "benchmark", f"What is the composition of lesion {aid}?", Refuse("composition rules do not apply to the duodenum"))

    q = "kidney tumor staging"
    kt = Cat(("T1a",)) if T.feret(KL) <= 40 else Cat(("T1b",)) if T.feret(KL) <= 70 else Cat(("T2",))
    add(q, "shorthand", "T stage, left renal tumor?", kt)
    add(q, "shorthand", "AJCC T category, L kidney mass?", kt)
    add(q, "lay", "What stage is the tumour in the left kidney, by its size?", kt)
    add(q, "benchmark", "What is the T stage of the kidney tumor?", kt)
    add(q, "benchmark", "What is the T stage of the right kidney lesion?", Refuse("a cyst is not staged"))

    q = "lesion key slice"
    def key_num(c):
        ks = sorted(c.long_slices)  # RECIST long-axis slice(s) (ties accepted), as 1-based image numbers
        return Num(float(ks[0] + 1), 0, None, accept=tuple(float(k + 1) for k in ks[1:]))
    add(q, "shorthand", "Key image of the largest liver lesion?", key_num(A))
    add(q, "shorthand", "Image no. of the long-axis measurement, left renal lesion?", key_num(KL))
    add(q, "lay", "Which image should I open to see where the biggest liver spot was measured?", key_num(A))
    add(q, "benchmark", "On which image is the long axis of the largest liver lesion measured?", key_num(A))
    add(q, "benchmark", "On which image is the long axis of the second largest liver lesion measured?", key_num(B))

    # ---------------- what cannot be established ----------------
    q = "change over time"
    nop = Refuse("no prior study")
    add(q, "shorthand", "Interval change, liver lesion?", nop)
    add(q, "shorthand", "Progression of the pancreatic lesion vs prior?", nop)
    add(q, "lay", "Has the liver spot grown since the last scan?", nop)
    add(q, "lay", "Is the kidney growth getting smaller?", nop)
    add(q, "benchmark", "Has the liver lesion grown since the prior scan?", nop)
    add(q, "benchmark", "Has the size of the largest kidney lesion changed compared with the previous CT?", nop)
    add(q, "benchmark", _inline("Has the largest liver lesion increased in size since the prior study?", ["No", "Yes"], 0), nop)

    q = "diagnosis"
    dx = Refuse("no sourced diagnostic rule")
    add(q, "shorthand", "Liver mets?", dx)
    add(q, "shorthand", "HCC?", dx)
    add(q, "shorthand", "Left renal lesion: RCC?", dx)
    add(q, "lay", "Is the liver spot cancer?", dx)
    add(q, "lay", "Is the growth in the left kidney harmless?", dx)
    add(q, "lay", "Has the cancer spread to the liver?", dx)
    add(q, "benchmark", "Is the liver lesion a metastasis?", dx)
    add(q, "benchmark", "Is the largest liver lesion a hemangioma?", dx)
    add(q, "benchmark", "Is the spleen lesion benign or malignant?", dx)
    add(q, "benchmark", "Any liver metastases?", dx)
    add(q, "benchmark", _inline("Is the largest liver lesion malignant?", ["No", "Yes"], 0), dx)

    q = "recommendation"
    rec = Refuse("advice is not derivable from measurements")
    add(q, "shorthand", "Biopsy the left renal lesion?", rec)
    add(q, "shorthand", "Follow-up interval for the liver lesion?", rec)
    add(q, "lay", "Should we do a biopsy of the kidney growth?", rec)
    add(q, "lay", "Does the spleen spot need treatment?", rec)
    add(q, "benchmark", "Should the kidney lesion be biopsied?", rec)
    add(q, "benchmark", "What follow-up is recommended for the largest liver lesion?", rec)
    add(q, "benchmark", "Should the patient be referred for surgery for the liver lesion?", rec)

    q = "unanswerable"  # nonsense, organs not segmented, lesions in organs not searched
    nn = Refuse("not derivable")
    add(q, "shorthand", "Heart volume?", nn)
    add(q, "shorthand", "Brain lesion count?", nn)
    add(q, "shorthand", "Lung nodule?", nn)
    add(q, "lay", "What colour is the liver?", nn)
    add(q, "lay", "How old is the patient?", nn)
    add(q, "lay", "Is the liver spot happy?", nn)
    add(q, "lay", "What will the weather be tomorrow?", nn)
    add(q, "benchmark", "What is the mean HU of the thyroid?", nn)
    add(q, "benchmark", "How many lesions are in the prostate?", nn)
    add(q, "benchmark", "Is there a lesion in the lungs?", nn)
    add(q, "benchmark", "What is the volume of the urinary bladder?", nn)

    # lower bounds on the cut case (sizes answer "at least", cut by the scan edge)
    q = "largest lesion diameter"
    add(q, "benchmark", "What is the diameter of the liver lesion?", Num(XL.long_axis, 1.0, "mm", lower_bound=True), case="cut")
    add(q, "shorthand", "Liver lesion long axis in cm?", Num(XL.long_axis / 10, 0.1, "cm", asked=True, lower_bound=True),
        case="cut")
    add(q, "lay", "How wide is the liver spot across?", Num(XL.long_axis, 1.0, "mm", lower_bound=True), case="cut")
    q = "lesion volume measurement"
    add(q, "benchmark", "What is the volume of the liver lesion?", Num(XL.volume, 0.05, "mL", lower_bound=True), case="cut")
    add(q, "lay", "How much space does the liver spot take up, in mL?", Num(XL.volume, 0.05, "mL", asked=True, lower_bound=True),
        case="cut")


def _second_batch(s: _Suite) -> None:
    """More wordings, written after the first batch was committed (so not seen by whoever tuned the
    parser on it): negated and inverted questions, other spellings of vessels and units, more
    laterality, yes/no-shaped questions of categorical types (either the category or the yes/no it
    implies is right)."""
    T, tr, X, add, mc = s.T, s.tr, s.X, s.add, s.mc
    A, B, KL, KR, SP, PA, AO, XL, hm = s.A, s.B, s.KL, s.KR, s.SP, s.PA, s.AO, s.XL, s.hm
    aid, kid_l = AO.lid, KL.lid
    nl, nk = len(T.lesions("liver")), len(T.lesions("kidney"))
    vpan, vgb = T.volume("pancreas"), T.volume("gallbladder")

    def tv(v):
        return max(0.02, 0.01 * v)

    # recognition
    add("liver lesion existence", "benchmark", "Does the liver contain any focal lesions?", YES)
    add("liver lesion existence", "shorthand", "Focal liver lesion: present or absent?", Cat(("yes", "present")))
    add("liver lesion existence", "lay", "Is the liver clear of any spots?", NO)  # negated: it is not clear
    add("kidney lesion existence", "lay", "Are both kidneys free of lesions?", NO)  # negated
    add("kidney lesion existence", "shorthand", "Left renal lesion, y/n?", YES)
    add("pancreatic lesion existence", "shorthand", "Pancreas: any focal lesion?", YES)
    add("kidney cyst existence", "lay", "Are there any cysts in the right kidney?", YES)
    add("lesion existence", "benchmark", "Does the spleen have any lesions?", YES)
    add("lesion existence", "shorthand", "Splenic mass?", YES)
    add("PDAC existence", "shorthand", "Is there PDAC?", Refuse("untyped pancreatic lesion"))
    add("colon lesion existence", "shorthand", "Any colonic mass?", Refuse("colon not searched"))
    add("colon lesion existence", "lay", "Is there a tumour in the large intestine?", Refuse("colon not searched"))
    add("splenomegaly detection", "shorthand", "Spleen enlarged (splenomegaly)?", Refuse("spleen truncated"))
    phase = Cat(("non_contrast", "non-contrast", "noncontrast", "unenhanced", "without contrast", "no contrast"))
    add("contrast phase", "lay", "Was contrast dye given for this scan?", Cat(phase.accept + ("no",)))
    add("contrast phase", "shorthand", "Arterial or portal venous phase?", phase)
    add("contrast phase", "benchmark", "Which phase of contrast enhancement does this CT show?", phase)
    trunc = ("truncated_by_fov", "incompletely imaged", "truncated", "truncated by the scan edge")
    meas = ("measured", "completely imaged", "fully imaged")
    add("organ status", "lay", "Is the liver fully covered by the scan?", Cat(trunc + ("no",)))
    add("organ status", "benchmark", "Is the pancreas completely imaged?", Cat(meas + ("yes",)))
    add("organ status", "lay", "Was the left kidney cut off by the edge of the scan?", Cat(trunc + ("yes",)))  # inverted
    add("organ status", "shorthand", "Gallbladder in FOV entirely?", Cat(meas + ("yes",)))
    add("lesion search coverage", "benchmark", "Were the adrenal glands evaluated for lesions?", NO)
    add("lesion search coverage", "lay", "Has the spleen been screened for lesions?", YES)
    add("lesion search coverage", "shorthand", "Lesion search, lungs?", NO)

    # measurement
    q = "lesion volume measurement"
    add(q, "lay", "How many millilitres is the left kidney lesion?", Num(KL.volume, tv(KL.volume), "mL", asked=True))
    add(q, "shorthand", "Spleen lesion vol (mL)?", Num(SP.volume, tv(SP.volume), "mL", asked=True))
    add(q, "benchmark", "What is the volume of the right kidney cyst in cm3?", Num(KR.volume, tv(KR.volume), "cm3", asked=True))
    tk = KL.volume + KR.volume
    add(q, "benchmark", "What is the total volume of all kidney lesions?", Num(tk, tv(tk), "mL"))
    add(q, "shorthand", "Pancreatic lesion volume in mm3?", Num(PA.volume * 1000, tv(PA.volume) * 1000, "mm3", asked=True))
    q = "organ HU measurement"
    add(q, "shorthand", "Hounsfield units of the liver parenchyma?", Num(hm["liver"], 1.0, "HU"))
    add(q, "benchmark", "What is the attenuation of the pancreas in HU?", Num(hm["pancreas"], 2.0, "HU"))
    add(q, "lay", "How bright is the right kidney on the CT, in HU?", Num(hm["kidney_right"], 1.5, "HU"))
    q = "organ HU ratio"
    ls = hm["liver"] / hm["spleen"]
    add(q, "shorthand", "Liver-spleen attenuation ratio?", Num(ls, 0.03))
    add(q, "benchmark", "What is the ratio of liver HU to spleen HU?", Num(ls, 0.03))
    q = "organ volume measurement"
    add(q, "shorthand", "Volume of the pancreas in litres?", Num(vpan / 1000, 0.0002, "L", asked=True))
    add(q, "lay", "How much room does the pancreas take up, in cubic centimetres?", Num(vpan, 0.2, "cm3", asked=True))
    add(q, "shorthand", "Spleen volume in mL?", Refuse("spleen truncated"))
    add(q, "benchmark", "What is the volume of the right kidney?", Refuse("kidney truncated"))
    q = "tumor burden percentage"
    pct = 100 * PA.volume / vpan
    add(q, "shorthand", "Lesion volume as % of pancreatic volume?", Num(pct, 0.15, "%"))
    add(q, "benchmark", "What percentage of the spleen is occupied by lesions?", Refuse("spleen truncated"))
    q = "lesion HU measurement"
    add(q, "shorthand", "Attenuation of the right renal cyst in HU?", Num(KR.mean, 1.0, "HU"))
    add(q, "benchmark", "What is the mean density of the largest liver lesion in Hounsfield units?", Num(A.mean, 1.0, "HU"))

    # visual reasoning
    radr = Cat(("adrenal_gland_right", "right adrenal gland", "right adrenal", "adrenal gland right"))
    add("adjacent organ", "benchmark", "What organ borders the largest liver lesion?", radr)
    sym = ("symmetric", "symmetrical", "neither", "equal")
    add("bilateral kidney asymmetry", "lay", "Is one kidney much more affected by lesions than the other?", Cat(sym + ("no",)))
    add("inter-segment comparison", "shorthand", "Segment VIII or segment VII: more lesions?", SEG[8])
    add("inter-segment comparison", "benchmark", "Which part of the pancreas has more lesions, the body or the head?", HEAD)
    add("kidney volume comparison", "lay", "Is the left kidney bigger than the right one?", Refuse("kidneys truncated"))
    add("largest lesion attenuation", "shorthand", "Splenic lesion: hypodense, isodense or hyperdense vs spleen?", ATT[T.attenuation(SP)])
    add("largest lesion attenuation", "lay", "Compared with the pancreas around it, is the pancreas spot darker, similar or "
        "brighter?", ATT[T.attenuation(PA)])
    add("largest lesion attenuation", "benchmark", "What is the relative attenuation of the largest liver lesion?",
        ATT[T.attenuation(A)])
    q = "largest lesion diameter"
    add(q, "shorthand", "Largest liver lesion size in cm?", Num(A.long_axis / 10, 0.1, "cm", asked=True))
    add(q, "benchmark", "What is the greatest axial dimension of the spleen lesion?", Num(SP.long_axis, 1.0, "mm"))
    add(q, "lay", "Across its widest point, how big is the right kidney cyst in cm?", Num(KR.long_axis / 10, 0.1, "cm", asked=True))
    q = "largest lesion location"
    add(q, "benchmark", "Which hepatic segment harbours the largest lesion of the liver?", SEG[top_seg(T, A)])
    add(q, "shorthand", "Largest liver lesion in segment 7 or segment 8?", SEG[top_seg(T, A)])
    mc(q, "benchmark", "Where is the largest liver lesion located?", "Segment 8", ["Segment 7"])
    add("largest lesion slice", "benchmark", "Which axial slice has the biggest cross-section of the largest liver lesion?",
        Num(float(min(area_slices(A))), 0, accept=tuple(float(k) for k in area_slices(A))
            + tuple(float(k + 1) for k in area_slices(A))))
    cnt8 = sum(T.in_segment(c, "liver_segment_8") for c in T.lesions("liver"))
    add("lesion count by location", "shorthand", "Count of lesions in hepatic segment 8?", Num(cnt8, 0))
    add("lesion count by location", "lay", "How many lesions does the head of the pancreas contain?",
        Num(sum(T.in_segment(c, "pancreas_head") for c in T.lesions("pancreas")), 0))
    q = "lesion counting"
    add(q, "benchmark", "How many focal liver lesions are there?", Num(nl, 0))
    add(q, "shorthand", "Number of lesions, right kidney?", Num(len(T.lesions("kidney_right")), 0))
    add(q, "lay", "How many kidney lesions does the patient have?", Num(nk, 0))
    add(q, "benchmark", "How many lesions are in the adrenal glands?", Refuse("adrenals not searched"))
    add("lesion outlier", "lay", "Does one liver lesion dominate the others in size?",
        YES if A.volume >= 3 * B.volume and nl >= 3 else NO)
    per: dict[int, int] = {}
    for c in T.lesions("liver"):
        per[top_seg(T, c)] = per.get(top_seg(T, c), 0) + 1
    clus = "highly clustered" if max(per.values()) / nl > 0.5 else None
    assert clus
    add("liver lesion clustering", "shorthand", "Liver lesions: highly clustered, somewhat clustered or widely distributed?",
        Cat((clus,)))
    add("multi-organ lesion burden comparison", "shorthand", "Which carries more lesion volume, the liver or the spleen?",
        Cat(("liver",)))
    q = "organ aggregation"
    add(q, "shorthand", "Sum of pancreas and gallbladder volumes in litres?", Num((vpan + vgb) / 1000, 0.0004, "L", asked=True))
    add(q, "benchmark", "What is the total number of lesions in the liver, the kidneys and the spleen?",
        Num(nl + nk + len(T.lesions("spleen")), 0))
    add("organ enlargement", "benchmark", "Is there hepatomegaly?", Refuse("liver truncated"))
    add("tumor organ HU difference", "shorthand", "HU difference, spleen lesion vs spleen?", Num(T.diff(SP), 1.5, "HU"))

    # medical reasoning
    add("PDAC vs PNET classification", "shorthand", "Pancreatic lesion: adenocarcinoma (PDAC) or neuroendocrine (PNET)?",
        Cat(("PDAC",)) if T.attenuation(PA) == "hypoattenuating" else Cat(("PNET",)))
    grade = kodama(hm["liver"], ls)
    add("fatty liver", "lay", "Is the liver fatty?", YES if grade != "G0" else NO)
    words = {"G0": "normal", "G1": "mild", "G2": "moderate", "G3": "severe"}
    add("hepatic steatosis grading", "shorthand", "Grade the hepatic steatosis.",
        Cat((grade, words[grade], f"{grade} {words[grade]}", f"{words[grade]} {grade}", f"grade {grade[1]}")))
    add("lesion type classification", "shorthand", "Cyst or tumour: the right kidney lesion?", Cat(("cyst",)))
    add("pancreatic steatosis", "lay", "Is the pancreas fatty?", YES if hm["pancreas"] / hm["spleen"] < 0.70 else NO)
    add("renal mass characterization", "benchmark", "How would the right renal lesion be characterized?",
        Cat(("simple cyst",)) if -10 <= KR.mean <= 20 else Cat(("indeterminate",)))
    add("splenomegaly grading", "shorthand", "Grade of splenomegaly?", Refuse("spleen truncated"))

    # vessels: other spellings; encasement asked as yes/no
    add("vessel involvement", "benchmark", "Is the IVC involved by the largest liver lesion?", YES)
    add("vessel involvement", "shorthand", f"{aid} touching the abdominal aorta?", YES)
    add("vessel involvement", "lay", "Does the pancreas spot touch the splenic vein?", NO)  # portal/splenic vein mask: no contact
    add("vessel involvement", "benchmark", "Does the largest liver lesion involve the common hepatic artery?",
        Refuse("hepatic artery not segmented"))
    add("vessel involvement", "shorthand", "Celiac axis involvement, pancreatic lesion?", Refuse("celiac trunk not segmented"))
    add("vessel involvement", "shorthand", f"SMV involvement by {aid}?", Refuse("SMV not segmented"))
    add("vessel contact category", "benchmark", "Is the IVC encased by the largest liver lesion?", Cat(("yes", "encasement")))
    add("vessel contact category", "benchmark", f"Is the aorta encased by lesion {aid}?", Cat(("no", "abutment")))
    add("vessel contact category", "lay", f"Is lesion {aid} wrapped all the way around the aorta?", Cat(("no", "abutment")))
    iv, ao = tr["ivc"], tr["aorta"]
    add("vessel contact angle", "shorthand", "Degrees of IVC circumference in contact with the largest liver lesion?",
        Num(iv["angle"], 25, "deg"))
    add("vessel contact angle", "benchmark", f"What is the circumferential involvement of the aorta by lesion {aid} in degrees?",
        Num(ao["angle"], 25, "deg", asked=True))
    add("vessel contact length", "shorthand", "Craniocaudal length of IVC contact, largest liver lesion, in cm?",
        Num(iv["length"] / 10, 0.3, "cm", asked=True))
    add("involved vessels", "shorthand", f"List the vessels in contact with lesion {aid}.", Cat(("aorta",)))
    add("involved vessels", "benchmark", "Which vessels are abutted or encased by the pancreatic lesion?", Cat(("none",)))

    # sizes, thresholds, RECIST, composition, staging, key slice, completeness
    add("lesion short axis", "shorthand", "Short-axis diameter of the spleen lesion?", Num(SP.long_axis, 1.5, "mm"))
    add("lesion short axis", "benchmark", f"What is the short axis of lesion {kid_l} in cm?", Num(KL.long_axis / 10, 0.15, "cm",
                                                                                              asked=True))
    add("lesion 3D diameter", "shorthand", "Max 3D extent of the spleen lesion in mm?", Num(T.feret(SP), 1.0, "mm", asked=True))
    add("lesion 3D diameter", "benchmark", f"What is the 3D Feret diameter of lesion {kid_l}?", Num(T.feret(KL), 1.0, "mm"))
    assert SP.long_axis > 12 and KR.long_axis > 12 and A.long_axis > 40 and tr["hypo"]["short"] > 15 and X.T.feret(XL) > 27
    q = "lesion size threshold"
    add(q, "shorthand", "Spleen lesion over 1 cm?", YES)
    add(q, "lay", "Is the right kidney cyst under 1 cm across?", NO)
    add(q, "benchmark", "Does the largest liver lesion exceed 5 cm?", NO)
    add(q, "benchmark", "Is the short axis of the second largest liver lesion at least 15 mm?", YES)
    add(q, "benchmark", "Is the 3D diameter of the liver lesion larger than 25 mm?", YES, case="cut")
    add("RECIST measurability", "benchmark", "Does the spleen lesion meet RECIST 1.1 measurability?", YES)
    add("lesion composition", "shorthand", "Tissue composition of the left renal lesion?", Cat(("solid",)))
    add("lesion composition", "benchmark", "Is the spleen lesion cystic, fat-containing, calcified or solid?", Cat(("solid",)))
    add("kidney tumor staging", "benchmark", "What is the AJCC T stage of the left kidney lesion?",
        Cat(("T1a",)) if T.feret(KL) <= 40 else Cat(("T1b",)))
    add("lesion key slice", "benchmark", f"Which image number shows the long axis of lesion {kid_l}?",
        Num(float(min(KL.long_slices) + 1), 0, accept=tuple(float(k + 1) for k in KL.long_slices)))
    add("lesion completeness", "benchmark", "Is the left kidney lesion entirely within the field of view?", YES)
    add("lesion completeness", "lay", "Does the liver spot extend beyond the scanned range?", YES, case="cut")  # inverted
    add("lesion completeness", "shorthand", "Liver lesion fully captured?", NO, case="cut")
    add("lesion size threshold", "lay", "Is the liver spot bigger than 2 cm?", YES, case="cut")

    # what cannot be established
    add("change over time", "benchmark", "Compared with the previous exam, is the spleen lesion stable?", Refuse("no prior"))
    add("change over time", "lay", "Are there any new spots since the last CT?", Refuse("no prior"))
    add("change over time", "shorthand", "Left renal lesion: growing?", Refuse("no prior"))
    add("diagnosis", "benchmark", "Is the pancreatic lesion an IPMN?", Refuse("no sourced rule"))
    add("diagnosis", "shorthand", "Splenic lymphoma?", Refuse("no sourced rule"))
    add("diagnosis", "benchmark", "Is the left kidney lesion renal cell carcinoma?", Refuse("no sourced rule"))
    add("diagnosis", "lay", "Does the patient have liver cancer?", Refuse("no sourced rule"))
    add("recommendation", "lay", "Does the left kidney spot need an MRI?", Refuse("advice"))
    add("recommendation", "shorthand", "Surgery for the pancreatic lesion?", Refuse("advice"))
    add("recommendation", "benchmark", "When should the patient come back for a follow-up scan?", Refuse("advice"))
    add("unanswerable", "lay", "What is the patient's blood pressure?", Refuse("not in the findings"))
    add("unanswerable", "benchmark", "Is the gallbladder inflamed?", Refuse("not in the findings"))
    add("unanswerable", "shorthand", "Cardiac lesion count?", Refuse("heart not segmented"))
    add("unanswerable", "benchmark", "What is the volume of the thyroid?", Refuse("thyroid not segmented"))
    _options_without_truth(s)


def _options_without_truth(s: _Suite) -> None:
    """Multiple choice whose options all miss the measured answer: no letter may be picked (the nearest
    option is not the answer), plus more lower bounds on the cut case."""
    T, X, add, XL = s.T, s.X, s.add, s.XL
    nl = len(T.lesions("liver"))
    la = s.A.long_axis / 10
    miss = Refuse("no option holds the measured answer")
    add("lesion counting", "benchmark", "How many lesions are in the liver?", miss,
        [str(n) for n in (nl + 2, nl + 3, nl + 5, nl + 7)])
    add("lesion counting", "shorthand", _inline("# liver lesions?", [str(n) for n in (nl + 2, nl + 4, nl + 6, nl + 8)], 0), miss)
    att = T.attenuation(s.SP)
    add("largest lesion attenuation", "benchmark", "What is the attenuation of the largest spleen lesion?", miss,
        [x.capitalize() for x in ("hypoattenuating", "isoattenuating", "hyperattenuating") if x != att])
    add("largest lesion diameter", "benchmark", "What is the diameter of the largest liver lesion?", miss,
        [f"{la * k:.1f} cm" for k in (0.25, 0.5, 2.0, 3.0)])
    add("largest lesion diameter", "lay", _inline("How wide is the biggest liver spot?", [f"{la * k:.1f} cm" for k in (0.3, 2.2)],
                                                 1), miss)
    add("organ volume measurement", "benchmark", dtv("What is the volume of the pancreas?", "organ volume measurement",
                                                     "3d_volume", "mc", [f"{T.volume('pancreas') * k:.1f} mL"
                                                                         for k in (0.3, 0.5, 2.0, 3.5)]), miss)
    # the cut case: more lower bounds
    ks = sorted(XL.long_slices)
    add("lesion key slice", "benchmark", "On which image is the long axis of the liver lesion measured?",
        Num(float(ks[0] + 1), 0, accept=tuple(float(k + 1) for k in ks[1:])), case="cut")
    add("lesion volume measurement", "shorthand", "Liver lesion vol in cm3?",
        Num(XL.volume, 0.05, "cm3", asked=True, lower_bound=True), case="cut")
    add("lesion 3D diameter", "lay", "What is the longest distance across the liver spot in any direction, in cm?",
        Num(X.T.feret(XL) / 10, 0.1, "cm", asked=True, lower_bound=True), case="cut")
    add("RECIST measurability", "shorthand", "Liver lesion RECIST-measurable?", YES, case="cut")
    _sourced_diagnosis(s)


def _sourced_diagnosis(s: _Suite) -> None:
    """A diagnosis that a sourced rule does decide (knowledge key bosniak_homogeneous_fluid_hu, Bosniak
    v2019 class II: a homogeneous renal mass of -9..20 HU on non-contrast CT is benign): the right
    kidney cyst, painted at 5 HU with SD 3, on this non-contrast study. The left kidney lesion (~60 HU)
    stays undeterminable."""
    KR, add = s.KR, s.add
    assert -9 <= KR.mean <= 20 and KR.sd <= 20
    benign, not_malignant = Cat(("yes", "benign")), Cat(("no", "benign"))  # the category, or the yes/no it implies
    add("diagnosis", "shorthand", "R renal cyst benign?", benign)
    add("diagnosis", "lay", "Is the cyst in the right kidney harmless?", benign)
    add("diagnosis", "benchmark", "Is the right kidney lesion benign?", benign)
    add("diagnosis", "benchmark", "Is the right kidney lesion malignant?", not_malignant)
    add("diagnosis", "benchmark", _inline("Is the right kidney lesion benign?", ["No", "Yes"], 0), Letter("B"))
    add("diagnosis", "benchmark", "Is the left kidney lesion benign?", Refuse("~60 HU: outside the Bosniak II range"))
