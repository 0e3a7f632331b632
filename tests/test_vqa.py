"""Deterministic VQA on real CT with synthetic lesions: questions of every DeepTumorVQA subtype are
generated from truth computed here, from the case's masks and HU array (connected components,
voxel counts, numpy means, mask overlaps, distance transforms), independently of reasoning.vqa,
and asked in three forms: subtype + parameters, multiple choice (A-D), free text.

Case A is tests/cases.build_case (30 slices: liver, spleen, kidneys truncated by the scan edge).
Case B is case A padded by two air slices at both ends (no organ touches the edge), the spleen
grown in-plane to > 314.5 mL, the pancreatic lesion typed PDAC, a pancreatic cyst painted at 18 HU
and short SMA / celiac / CHA tubes far from every lesion (so NCCN and T can be assessed).
Case A-contrast is case A's Findings with the phase set to portal venous (model_copy).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import pdist

from agent.case import measure
from eval.synthetic import ellipsoid, organ_center_mm, paint, write_case
from eval.vqa_metrics import VQAMetric
from reasoning.vqa import DEEPTUMORVQA_SUBTYPES, SUBTYPES, Answer, Question, answer
from tests.cases import VOX, build_case

VOX_ML = VOX**3 / 1000.0
CANNOT = "cannot_be_determined"

# the test's own reading of the case's lesion masks: name -> (host organ or family or None, kind)
LESION_MASKS = {
    "liver_lesion": ("liver", "lesion"), "spleen_lesion": ("spleen", "lesion"), "kidney_lesion": ("kidney", "lesion"),
    "kidney_cyst_right": ("kidney_right", "cyst"), "pancreatic_lesion": ("pancreas", "lesion"),
    "pancreatic_pdac": ("pancreas", "pdac"), "pancreatic_cyst": ("pancreas", "cyst"), "tumor": (None, "tumor"),
}
ORGANS = ["liver", "gallbladder", "pancreas", "spleen", "kidney_left", "kidney_right", "adrenal_gland_left",
          "adrenal_gland_right", "stomach", "duodenum", "small_bowel", "colon"]
FAMILY = {"kidney_left": "kidney", "kidney_right": "kidney", "adrenal_gland_left": "adrenal", "adrenal_gland_right": "adrenal"}
SEGMENTS = {"liver": ["liver_segment_7", "liver_segment_8"], "pancreas": ["pancreas_head", "pancreas_body", "pancreas_tail"]}
ROMAN = {7: "VII", 8: "VIII", 4: "IV", 2: "II", 6: "VI"}


def fam(o: str | None) -> str | None:
    return FAMILY.get(o, o) if o else None


# --- truth from the arrays ------------------------------------------------------------------------
def face_points(mask: np.ndarray) -> np.ndarray:
    """Midpoints of the faces between inside and outside voxels (index units)."""
    p = np.pad(mask, 1)
    out = []
    for ax in range(mask.ndim):
        for d in (1, -1):
            face = p & ~np.roll(p, -d, axis=ax)
            idx = np.argwhere(face[(slice(1, -1),) * mask.ndim]).astype(float)
            idx[:, ax] += 0.5 * d
            out.append(idx)
    return np.concatenate(out)


@dataclass
class Comp:
    mask_name: str
    kind: str
    organ: str | None
    vox: np.ndarray
    n: int
    volume: float
    mean: float
    sd: float
    lid: str = ""
    slice_long: dict[int, float] = field(default_factory=dict)

    @property
    def long_axis(self) -> float:
        return max(self.slice_long.values())

    @property
    def long_slices(self) -> set[int]:
        m = self.long_axis
        return {k for k, v in self.slice_long.items() if v >= m - 1e-6}


class Truth:
    def __init__(self, case: dict):
        self.f = case["findings"]
        hu, m = case["hu"].astype(np.float64), case["masks"]
        self.hu, self.m = hu, m
        struct = np.ones((3, 3, 3), bool)
        self.comps: list[Comp] = []
        self.dropped = 0
        for name, (host, kind) in LESION_MASKS.items():
            if name not in m:
                continue
            lab, n = ndimage.label(m[name], structure=struct)
            for k in range(1, n + 1):
                c = lab == k
                cnt = int(c.sum())
                if cnt < 2:  # minimum size: 2 voxels (10 mm3 at 27 mm3 per voxel)
                    self.dropped += 1
                    continue
                if host in ORGANS:
                    organ = host
                else:
                    cands = [o for o in ORGANS if host is None or fam(o) == host]
                    ov = {o: int((c & m[o]).sum()) for o in cands}
                    organ = max(ov, key=ov.get) if max(ov.values()) > 0 else None
                vals = hu[c]
                comp = Comp(name, kind, organ, c, cnt, cnt * VOX_ML, float(vals.mean()), float(vals.std()))
                for z in np.flatnonzero(c.any(axis=(0, 1))):
                    pts = face_points(c[:, :, z])
                    comp.slice_long[int(z)] = float(pdist(pts).max()) * VOX if len(pts) > 1 else 0.0
                self.comps.append(comp)
        self.all_les = np.zeros_like(m["liver"])
        for c in self.comps:
            self.all_les |= c.vox
        # lesion ids: match Findings lesions by voxel count and centroid (ids only, never answers)
        aff = case["aff"]
        for c in self.comps:
            cm = aff[:3, :3] @ np.argwhere(c.vox).mean(0) + aff[:3, 3]
            best = min(self.f.lesions, key=lambda l: np.linalg.norm(np.array(l.centroid_mm) - cm))
            assert best.voxel_count == c.n
            c.lid = best.id
        self.full = {o: m[o] | np.any([c.vox for c in self.comps if c.organ == o] or [np.zeros_like(m[o])], axis=0)
                     for o in ORGANS if o in m}

    # organ level
    def truncated(self, o: str) -> bool:
        a = self.full[o]
        return any(np.take(a, i, axis=ax).any() for ax in range(3) for i in (0, -1))

    def volume(self, o: str) -> float | None:
        return None if self.truncated(o) else self.full[o].sum() * VOX_ML

    def partial(self, o: str) -> float:
        return self.full[o].sum() * VOX_ML

    def host_mean(self, o: str) -> float:
        """Host parenchyma HU as README defines it: organ minus all lesions, eroded by one voxel
        (>= 2 mm at 3 mm voxels; outside the grid counts as outside), uneroded when < 20 voxels remain."""
        host = self.m[o] & ~self.all_les
        core = ndimage.binary_erosion(host, structure=np.ones((3, 3, 3), bool), border_value=0)
        return float(self.hu[core if core.sum() >= 20 else host].mean())

    # lesion level
    def lesions(self, organ: str | None) -> list[Comp]:
        out = [c for c in self.comps if organ is None or c.organ == organ or fam(c.organ) == organ]
        return sorted(out, key=lambda c: -c.n)

    def largest(self, organ: str | None) -> Comp:
        return self.lesions(organ)[0]

    def diff(self, c: Comp) -> float:
        return c.mean - self.host_mean(c.organ)

    def attenuation(self, c: Comp) -> str:
        d = self.diff(c)
        return "hypoattenuating" if d < -10 else "hyperattenuating" if d > 10 else "isoattenuating"

    def shares(self, c: Comp) -> dict[str, float]:
        segs = SEGMENTS.get(fam(c.organ), [])
        return {s: (c.vox & self.m[s]).sum() / c.n for s in segs if s in self.m and (c.vox & self.m[s]).any()}

    def in_segment(self, c: Comp, s: str) -> bool:
        return self.shares(c).get(s, 0.0) > 0.10

    def cystic(self, c: Comp) -> bool:
        return c.kind == "cyst" or (c.mean < 20 and c.sd <= 20)

    def kidney_class(self, c: Comp) -> str:
        if c.kind == "cyst":
            return "cyst"
        if c.kind == "tumor":
            return "tumor"
        return "tumor" if c.mean > 34.8 else "cyst"

    def adjacent(self, c: Comp) -> list[str]:
        dist = ndimage.distance_transform_edt(~c.vox, sampling=(VOX,) * 3)
        near = [(float(dist[self.m[o]].min()), o) for o in ORGANS if o in self.m and fam(o) != fam(c.organ) and self.m[o].any()]
        return [o for d, o in sorted(near) if d <= 3.0]

    def feret(self, c: Comp) -> float:
        return float(pdist(face_points(c.vox)).max()) * VOX


# --- question items -------------------------------------------------------------------------------
@dataclass
class Item:
    subtype: str
    params: dict
    truth: Any  # value, or CANNOT
    text: str
    options: list[str] = field(default_factory=list)  # MC texts, the correct one first (empty for CANNOT)
    accept: set = field(default_factory=set)  # categorical values also accepted (ties)
    tol: float = 0.0  # numeric tolerance for rounding in Findings


def num_options(v: float, unit: str, fmt="{:.2f}") -> list[str]:
    return [f"{fmt.format(v * k)} {unit}".strip() for k in (1.0, 0.5, 1.6, 2.5)]


def int_options(v: int) -> list[str]:
    return [str(v)] + [str(x) for x in ((v + 1, v + 2, v + 3) if v < 2 else (v - 1, v + 1, v + 2))]


def cat_options(truth_label: str, labels: list[str]) -> list[str]:
    return [truth_label] + [l for l in labels if l != truth_label][:3]


YN = {"yes": ["Yes", "No"], "no": ["No", "Yes"]}
ATT = {"hypoattenuating": "Hypoattenuating", "isoattenuating": "Isoattenuating", "hyperattenuating": "Hyperattenuating"}


def seg_label(s: str) -> str:
    return f"Segment {ROMAN[int(s.rsplit('_', 1)[1])]}" if s.startswith("liver_segment_") else s.split("_")[1].capitalize()


def generate(T: Truth, case_name: str) -> list[Item]:
    f = T.f
    items: list[Item] = []
    add = items.append

    def yn(sub, params, truth, text):
        add(Item(sub, params, truth, text, YN[truth] if truth != CANNOT else []))

    # ---------------- recognition
    panc = T.lesions("pancreas")
    pdac = [c for c in panc if c.kind == "pdac"]
    untyped = [c for c in panc if c.kind not in ("pdac", "pnet", "cyst") and not T.cystic(c)]
    yn("PDAC existence", {}, "yes" if pdac else (CANNOT if untyped else "no"),
       "Does the pancreas show a pancreatic ductal adenocarcinoma (PDAC)?")
    yn("PNET existence", {}, CANNOT if untyped else "no", "Is there a pancreatic neuroendocrine tumor in this scan?")
    # "no" only where a search covered the colon (a generic `tumor` mask searches no named organ)
    colon_searched = bool((cs := f.search_of("colon")) and cs.searched)
    yn("colon lesion existence", {}, "yes" if T.lesions("colon") else ("no" if colon_searched else CANNOT),
       "Is there any lesion in the colon?")
    for organ, text in ((None, "Are there any cysts in the kidneys?"), ("kidney_left", "Is there a cyst in the left kidney?")):
        les = T.lesions(organ or "kidney")
        yn("kidney cyst existence", {"organ": organ} if organ else {},
           "yes" if any(T.kidney_class(c) == "cyst" for c in les) else "no", text)
    for organ in ("kidney_right", "kidney_left"):
        yn("kidney lesion existence", {"organ": organ}, "yes" if T.lesions(organ) else "no",
           f"Is there evidence of a lesion in the {organ.split('_')[1]} kidney?")
    for organ in ("kidney_left", "kidney_right"):
        yn("kidney tumor existence", {"organ": organ}, "yes" if any(T.kidney_class(c) == "tumor" for c in T.lesions(organ)) else "no",
           f"Is there a tumor in the {organ.split('_')[1]} kidney?")
    yn("liver lesion existence", {}, "yes" if T.lesions("liver") else "no", "Is there evidence of a lesion in the liver?")
    yn("pancreatic lesion existence", {}, "yes" if panc else "no", "Is there a lesion in the pancreas?")
    sv = T.volume("spleen")
    spleno = ("yes" if sv > 314.5 else "no") if sv is not None else ("yes" if T.partial("spleen") > 314.5 else CANNOT)
    yn("splenomegaly detection", {}, spleno, "Does this patient have splenomegaly?")

    # ---------------- measurement
    L = T.largest("liver")
    add(Item("lesion volume measurement", {"organ": "liver"}, L.volume, "What is the volume of the largest liver lesion in cm³?",
             num_options(L.volume, "cm³", "{:.3f}"), tol=1e-4))
    kc = next(c for c in T.comps if c.mask_name == "kidney_cyst_right")
    add(Item("lesion volume measurement", {"lesion_id": kc.lid}, kc.volume, f"What is the volume of lesion {kc.lid}?",
             num_options(kc.volume, "mL", "{:.3f}"), tol=1e-4))
    tot = sum(c.volume for c in T.lesions("liver"))
    add(Item("lesion volume measurement", {"organ": "liver", "aggregate": "total"}, tot,
             "What is the total volume of all lesions in the liver?", num_options(tot, "mL", "{:.3f}"), tol=1e-3))
    for organ, text in (("spleen", "What is the mean HU value of the spleen?"),
                        ("liver", "What is the average attenuation of the liver in Hounsfield units?"),
                        ("pancreas", "What is the mean CT value of the pancreas in HU?")):
        v = T.host_mean(organ)
        add(Item("organ HU measurement", {"organ": organ}, v, text, num_options(v, "HU"), tol=0.006))
    for a, b, text in (("liver", "spleen", "What is the liver-to-spleen HU ratio?"),
                       ("pancreas", "spleen", "What is the ratio of pancreas to spleen attenuation?")):
        ma, mb = T.host_mean(a), T.host_mean(b)
        if ma <= 0 or mb <= 0:  # a ratio of mean HU is defined for means above 0 HU only (the pancreas here holds fat)
            add(Item("organ HU ratio", {"organs": f"{a},{b}"}, CANNOT, text))
            continue
        r = ma / mb
        add(Item("organ HU ratio", {"organs": f"{a},{b}"}, r, text, num_options(r, "", "{:.3f}"), tol=1e-3 * abs(r) + 1e-4))
    for organ, text in (("liver", "What is the volume of the liver?"), ("gallbladder", "What is the volume of the gallbladder in mL?"),
                        ("kidney_left", "What is the volume of the left kidney?")):
        v = T.volume(organ)
        add(Item("organ volume measurement", {"organ": organ}, CANNOT if v is None else v, text,
                 [] if v is None else num_options(v, "mL", "{:.1f}"), tol=1e-3))
    for organ, text in (("pancreas", "What percentage of the pancreas volume is occupied by lesions?"),
                        ("liver", "What is the tumor burden of the liver as a percentage of liver volume?")):
        v = T.volume(organ)
        if v is None:
            add(Item("tumor burden percentage", {"organ": organ}, CANNOT, text))
        else:
            pct = 100 * sum(c.volume for c in T.lesions(organ)) / v
            add(Item("tumor burden percentage", {"organ": organ}, pct, text, num_options(pct, "%", "{:.2f}"), tol=2e-3))

    # ---------------- visual reasoning
    adj = T.adjacent(L)
    pool = {"Stomach": "stomach", "Spleen": "spleen", "Left kidney": "kidney_left", "Gallbladder": "gallbladder",
            "Pancreas": "pancreas", "Duodenum": "duodenum", "Colon": "colon"}
    names = {"adrenal_gland_right": "Right adrenal gland", "adrenal_gland_left": "Left adrenal gland",
             "kidney_right": "Right kidney", "kidney_left": "Left kidney", "small_bowel": "Small bowel"}
    adj_label = (names.get(adj[0], adj[0].capitalize()) if adj else "None")
    distract = [k for k, v in pool.items() if v not in adj]
    add(Item("adjacent organ", {"organ": "liver"}, adj[0] if adj else "none", "Which organ is adjacent to the largest liver lesion?",
             [adj_label] + distract[:3], accept={adj[0]} if adj else set()))
    kl = sum(c.volume for c in T.lesions("kidney_left"))
    kr = sum(c.volume for c in T.lesions("kidney_right"))
    asym = "symmetric" if (kl == kr == 0 or (min(kl, kr) > 0 and max(kl, kr) < 2 * min(kl, kr))) else \
        ("left kidney" if kl > kr else "right kidney")
    add(Item("bilateral kidney asymmetry", {}, asym, "Which kidney has the greater lesion burden?",
             cat_options({"symmetric": "Symmetric", "left kidney": "Left kidney more affected", "right kidney": "Right kidney more affected"}[asym],
                         ["Symmetric", "Left kidney more affected", "Right kidney more affected"])))
    liver_les = T.lesions("liver")
    cnt = {s: sum(T.in_segment(c, s) for c in liver_les) for s in SEGMENTS["liver"]}
    vol = {s: sum(T.shares(c).get(s, 0.0) * c.volume for c in liver_les) for s in SEGMENTS["liver"]}
    for metric, table, text in (("count", cnt, "Which liver segment has more lesions, segment 7 or segment 8?"),
                                ("volume", vol, "Which segment has the larger lesion volume, segment 7 or segment 8?")):
        s7, s8 = table["liver_segment_7"], table["liver_segment_8"]
        tr = "equal" if s7 == s8 else ("liver_segment_7" if s7 > s8 else "liver_segment_8")
        lab = {"equal": "Equal", "liver_segment_7": "Segment 7", "liver_segment_8": "Segment 8"}
        add(Item("inter-segment comparison", {"organ": "liver", "segments": "liver_segment_7,liver_segment_8", "metric": metric},
                 tr, text, cat_options(lab[tr], list(lab.values()))))
    vl, vr = T.volume("kidney_left"), T.volume("kidney_right")
    kv = CANNOT if vl is None or vr is None else ("left kidney" if vl > vr else "right kidney")
    add(Item("kidney volume comparison", {}, kv, "Which kidney is larger, the left or the right?",
             [] if kv == CANNOT else cat_options({"left kidney": "Left kidney", "right kidney": "Right kidney"}[kv],
                                                 ["Left kidney", "Right kidney", "Both equal"])))
    for organ, text in (("liver", "Compared with the liver, is the largest liver lesion hypoattenuating, isoattenuating, or hyperattenuating?"),
                        ("kidney_left", "Is the largest left kidney lesion hypodense or hyperdense relative to the kidney?")):
        c = T.largest(organ)
        a = T.attenuation(c)
        add(Item("largest lesion attenuation", {"organ": organ}, a, text, cat_options(ATT[a], list(ATT.values()))))
    add(Item("largest lesion diameter", {"organ": "liver"}, L.long_axis, "What is the longest diameter of the largest liver lesion in mm?",
             [f"{L.long_axis / 10 * k:.2f} cm" for k in (1.0, 0.5, 1.6, 2.5)], tol=0.006))
    sh = T.shares(L)
    top = max(sh, key=sh.get)
    add(Item("largest lesion location", {"organ": "liver"}, top, "Which Couinaud segment contains the largest liver lesion?",
             cat_options(seg_label(top), [seg_label(f"liver_segment_{i}") for i in (7, 8, 4, 2)])))
    P = T.largest("pancreas")
    shp = T.shares(P)
    topp = max(shp, key=shp.get)
    add(Item("largest lesion location", {"organ": "pancreas"}, topp,
             "In which part of the pancreas is the largest pancreatic lesion located?",
             cat_options(seg_label(topp), ["Head", "Body", "Tail"])))
    # DeepTumorVQA's definition: the axial slice of largest lesion area, its 0-based index along the axial (third) axis
    areas = L.vox.sum(axis=(0, 1))
    sl = [int(k) for k in np.flatnonzero(areas == areas.max())]
    add(Item("largest lesion slice", {"organ": "liver"}, sl[0], "On which axial slice is the largest liver lesion biggest?",
             [str(sl[0]), str(sl[0] + 6), str(max(sl[0] - 6, 1)), str(sl[0] + 12)], accept=set(sl)))
    for s in SEGMENTS["liver"]:
        n = cnt[s]
        add(Item("lesion count by location", {"location": s}, n, f"How many lesions are located in liver segment {s[-1]}?",
                 int_options(n)))
    for organ, text in (("liver", "How many lesions are in the liver?"), ("kidney", "How many lesions are there in the kidneys?"),
                        ("pancreas", "How many lesions are in the pancreas?")):
        n = len(T.lesions(organ))
        add(Item("lesion counting", {"organ": organ}, n, text, int_options(n)))
    vols = [c.volume for c in liver_les]
    out = "yes" if len(vols) >= 3 and vols[0] >= 3 * vols[1] else "no"
    yn("lesion outlier", {"organ": "liver"}, out, "Is the largest liver lesion an outlier, much larger than the other liver lesions?")
    # DeepTumorVQA's definition counts lesions: each liver lesion in the segment holding most of it
    main = [max(T.shares(c), key=T.shares(c).get) for c in liver_les]
    fr = sorted((main.count(s) / len(main) for s in set(main)), reverse=True) + [0.0]
    clus = "highly clustered" if fr[0] > 0.5 else "somewhat clustered" if fr[0] + fr[1] >= 0.75 else "widely distributed"
    labs = {"highly clustered": "Highly clustered", "somewhat clustered": "Somewhat clustered", "widely distributed": "Widely distributed"}
    add(Item("liver lesion clustering", {}, clus, "Are the liver lesions clustered in one segment or widely distributed?",
             cat_options(labs[clus], list(labs.values()))))
    lv = sum(c.volume for c in T.lesions("liver"))
    kv_ = sum(c.volume for c in T.lesions("kidney"))
    mo = "liver" if lv > kv_ else "kidney"
    add(Item("multi-organ lesion burden comparison", {"organs": "liver,kidney"}, mo,
             "Which organ has the greater lesion burden, the liver or the kidneys?",
             cat_options({"liver": "Liver", "kidney": "Kidneys"}[mo], ["Liver", "Kidneys", "Spleen", "Pancreas"])))
    if vl is None or vr is None:
        add(Item("organ aggregation", {"organs": "kidney_left,kidney_right"}, CANNOT, "What is the combined volume of both kidneys?"))
    else:
        add(Item("organ aggregation", {"organs": "kidney_left,kidney_right"}, vl + vr, "What is the combined volume of both kidneys?",
                 num_options(vl + vr, "mL", "{:.1f}"), tol=2e-3))
    n = len(T.lesions("liver")) + len(T.lesions("kidney"))
    add(Item("organ aggregation", {"organs": "liver,kidney", "measure": "lesion_count"}, n,
             "How many lesions are there in total in the liver and the kidneys?", int_options(n)))
    for organ, thr, text in (("pancreas", 100.0, "Is the pancreas enlarged?"), ("liver", 1800.0, "Is the liver enlarged?"),
                             ("kidney_right", 260.0, "Is the right kidney enlarged?")):
        v = T.volume(organ)
        tr = ("yes" if v > thr else "no") if v is not None else ("yes" if T.partial(organ) > thr else CANNOT)
        yn("organ enlargement", {"organ": organ}, tr, text)
    yn("organ enlargement", {"organ": "spleen"}, spleno, "")
    d = T.diff(L)
    add(Item("tumor organ HU difference", {"organ": "liver"}, d, "What is the HU difference between the largest liver lesion and the surrounding liver?",
             [f"{abs(d) * k:.1f} HU" for k in (1.0, 0.5, 1.6, 2.5)], tol=0.02))

    # ---------------- medical reasoning
    solid = [c for c in panc if not T.cystic(c)]
    P = max(solid, key=lambda c: c.n) if solid else T.largest("pancreas")
    pp = "PDAC" if P.kind == "pdac" else "PNET" if P.kind == "pnet" else ("PDAC" if T.attenuation(P) == "hypoattenuating" else "PNET")
    add(Item("PDAC vs PNET classification", {}, pp, "Is the pancreatic lesion more likely a PDAC or a PNET?", cat_options(pp, ["PDAC", "PNET"])))
    noncon = f.study.contrast_phase.phase == "non_contrast"
    lh, sh_ = T.host_mean("liver"), T.host_mean("spleen")
    ls = lh / sh_
    g = ("G3" if lh < 39 or ls < 0.5 else "G2" if lh < 51 or ls < 0.8 else "G1" if lh < 58 or ls < 1.0 else "G0")
    # fatty liver = Kodama grade G1 or worse: one decision with the grade (issue 10, observation 8)
    yn("fatty liver", {}, ("yes" if g != "G0" else "no") if noncon else CANNOT, "Does the patient have fatty liver?")
    gl = {"G0": "Normal (G0)", "G1": "Mild (G1)", "G2": "Moderate (G2)", "G3": "Severe (G3)"}
    gv = {"G0": "G0 (normal)", "G1": "G1 (mild)", "G2": "G2 (moderate)", "G3": "G3 (severe)"}
    add(Item("hepatic steatosis grading", {}, gv[g] if noncon else CANNOT, "What is the grade of hepatic steatosis?",
             cat_options(gl[g], list(gl.values())) if noncon else []))
    for organ in ("kidney_left", "kidney_right"):
        c = T.largest(organ)
        k = T.kidney_class(c)
        add(Item("lesion type classification", {"organ": organ}, k, f"Is the {organ.split('_')[1]} kidney lesion a cyst or a tumor?",
                 cat_options(k.capitalize(), ["Cyst", "Tumor"])))
    cysts = [c for c in panc if T.cystic(c)]
    if cysts:
        cy = max(cysts, key=lambda c: c.n)
        res = "yes" if cy.volume > 3.0 or cy.long_axis > 30.0 else "no"
        yn("pancreatic cyst resectability", {}, res, "Should the pancreatic cyst be surgically resected?")
        yn("pseudocyst determination", {}, "yes" if cy.mean > 14.5 else "no", "Is the pancreatic cyst a pseudocyst or a mucinous cyst?")
    else:
        yn("pancreatic cyst resectability", {}, CANNOT, "Should the pancreatic cyst be surgically resected?")
        yn("pseudocyst determination", {}, CANNOT, "Is the pancreatic cyst a pseudocyst or a mucinous cyst?")
    arteries = [a for a in ("superior_mesenteric_artery", "celiac_trunk", "common_hepatic_artery") if a in T.m]
    if len(arteries) == 3:
        dist = ndimage.distance_transform_edt(~P.vox, sampling=(VOX,) * 3)
        assert all(dist[T.m[a]].min() > 2.0 for a in arteries + ["portal_vein_and_splenic_vein"]), "no vessel contact by design"
        add(Item("pancreatic lesion resectability", {}, "resectable", "Is the pancreatic tumor resectable?",
                 cat_options("Resectable", ["Resectable", "Borderline resectable", "Locally advanced (unresectable)"])))
        fe = T.feret(P)
        t = "T1" if fe <= 20 else "T2" if fe <= 40 else "T3"
        add(Item("pancreatic tumor staging", {}, t, "What is the AJCC T stage of the pancreatic tumor?", cat_options(t, ["T1", "T2", "T3", "T4"])))
    else:
        add(Item("pancreatic lesion resectability", {}, CANNOT, "Is the pancreatic tumor resectable?"))
        add(Item("pancreatic tumor staging", {}, CANNOT, "What is the AJCC T stage of the pancreatic tumor?"))
    ph, sh2 = T.host_mean("pancreas"), T.host_mean("spleen")
    ps = ("yes" if ph / sh2 < 0.70 else "no") if ph > 0 and sh2 > 0 else CANNOT  # ratio defined for means > 0 HU
    yn("pancreatic steatosis", {}, ps if noncon else CANNOT, "Is there evidence of pancreatic steatosis?")
    yn("portal hypertension assessment", {}, "yes" if spleno == "yes" else CANNOT, "Are there imaging signs of portal hypertension?")
    K = T.largest("kidney")
    v = K.mean
    rm = "fat-containing" if v < -10 else "simple cyst" if v <= 20 else "indeterminate" if v <= 70 else ("hyperdense cyst" if noncon else CANNOT)
    rml = {"simple cyst": "Simple cyst", "indeterminate": "Indeterminate", "hyperdense cyst": "Hyperdense cyst", "fat-containing": "Fat-containing"}
    add(Item("renal mass characterization", {}, rm, "How would you characterize the renal mass based on its attenuation?",
             cat_options(rml[rm], list(rml.values())) if rm != CANNOT else []))
    if sv is None:
        sg = "severe" if T.partial("spleen") > 800 else CANNOT
    else:
        sg = "normal (no splenomegaly)" if sv <= 314.5 else "mild" if sv <= 500 else "moderate" if sv <= 800 else "severe"
    sgl = {"normal (no splenomegaly)": "Normal (no splenomegaly)", "mild": "Mild", "moderate": "Moderate", "severe": "Severe"}
    add(Item("splenomegaly grading", {}, sg, "How would you classify the splenic enlargement based on volume?",
             cat_options(sgl[sg], list(sgl.values())) if sg != CANNOT else []))
    return items


# --- checking -------------------------------------------------------------------------------------
def value_ok(item: Item, a: Answer) -> bool:
    if item.truth == CANNOT:
        return a.status == CANNOT
    if a.status != "answered":
        return False
    if isinstance(item.truth, (int, float)) and not isinstance(item.truth, bool) and not isinstance(item.truth, str):
        if item.accept:
            return a.answer in item.accept
        return abs(float(a.answer) - float(item.truth)) <= item.tol + 1e-9
    return a.answer == item.truth or a.answer in item.accept


def ask_all(case_name: str, findings, items: list[Item], metric: VQAMetric, failures: list[str], seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    status: dict[str, str] = {}
    for i, it in enumerate(items):
        spec = SUBTYPES[it.subtype]
        forms: list[tuple[str, Any, list[str] | None, Any]] = [("api", Question(subtype=it.subtype, **it.params), None, None)]
        if it.text:
            forms.append(("free", it.text, None, None))
        if it.options and it.truth != CANNOT:
            opts = list(it.options)
            rng.shuffle(opts)
            letters = "ABCD"[:len(opts)]
            gold = letters[opts.index(it.options[0])]
            if i % 2 and it.text:  # options inside the text, DeepTumorVQA style "A: ..." or "A) ..."
                sep = ": " if i % 4 == 1 else ") "
                forms.append(("mc", it.text + " " + " ".join(f"{l}{sep}{o}" for l, o in zip(letters, opts)), None, gold))
            else:
                forms.append(("mc", it.text or Question(subtype=it.subtype, **it.params), [f"{l}) {o}" for l, o in zip(letters, opts)], gold))
        elif it.truth == CANNOT and it.text:
            forms.append(("mc", it.text + " A) 1 B) 2 C) 3 D) 4", None, None))
        for form, q, choices, gold in forms:
            a = answer(findings, q, choices)
            ok = (a.status == "answered" and a.answer == gold) if (form == "mc" and gold is not None) else value_ok(it, a)
            if form == "free" and a.subtype != it.subtype:
                ok = False
            if form == "mc" and gold is not None:
                metric.add(it.subtype, spec.group, a.answer if ok else "-", gold, "choice")
            elif spec.answer_type == "numeric" and it.truth != CANNOT and not it.accept:
                metric.add(it.subtype, spec.group, a.answer if ok else None, it.truth, "numeric")
            else:
                metric.add(it.subtype, spec.group, "correct" if ok else "wrong", "correct", "categorical")
            if not ok:
                failures.append(f"[{case_name}/{form}] {it.subtype} {it.params} {q if isinstance(q, str) else ''} "
                                f"choices={choices}: truth {it.truth!r} (gold {gold}) got {a.status} {a.answer!r} "
                                f"[{a.subtype}] value={a.value!r} reason={a.reason}")
            if form == "api":
                prev = status.get(it.subtype)
                status[it.subtype] = "answered" if (prev == "answered" or a.status == "answered") else a.status
    return status


# --- cases ----------------------------------------------------------------------------------------
def with_search(f):
    """Findings as perception records them from schema 1.1.0 on: lesion_search per organ. Where the
    findings do not hold it yet, it is filled from this test's own reading of the lesion masks
    (LESION_MASKS: an organ is searched by its own, its family's and every generic lesion mask), so
    the truth below and the answers read the same coverage."""
    from perception.schema import LesionSearch

    if f.lesion_search:
        return f
    names = sorted(m.name for m in f.masks if m.category == "lesion")
    rows = []
    for o in f.organs:
        by = [f"mask {n}" for n in names if LESION_MASKS.get(n, ("?",))[0] in (None, o.name, fam(o.name))]
        rows.append(LesionSearch(organ=o.name, searched=bool(by), by=by,
                                 reason=None if by else "no lesion mask or tumour model covers it"))
    return f.model_copy(update={"lesion_search": rows})


@pytest.fixture(scope="module")
def case_a(tmp_path_factory):
    c = build_case(tmp_path_factory.mktemp("vqa") / "case_a")
    return {**c, "findings": with_search(c["findings"])}


def _tube(shape, ijk, z0, z1):
    out = np.zeros(shape, bool)
    i, j = ijk
    out[i - 1:i + 2, j - 1:j + 2, z0:z1] = True
    return out


@pytest.fixture(scope="module")
def case_b(case_a, tmp_path_factory):
    hu, aff, masks = case_a["hu"], case_a["aff"].copy(), dict(case_a["masks"])
    pad = 2
    hu = np.pad(hu, ((0, 0), (0, 0), (pad, pad)), constant_values=-1000)
    masks = {k: np.pad(v, ((0, 0), (0, 0), (pad, pad))) for k, v in masks.items()}
    aff[:3, 3] -= aff[:3, 2] * pad
    # spleen grown in-plane into unlabelled voxels until > 314.5 mL (splenomegaly), painted at spleen HU
    sp = masks["spleen"].copy()
    other = np.any([v for k, v in masks.items() if k != "spleen"], axis=0)
    st = np.zeros((3, 3, 3), bool)
    st[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    mean = float(hu[sp & ~masks["spleen_lesion"]].mean())
    it = 0
    while sp.sum() * VOX_ML <= 340.0:
        grown = ndimage.binary_dilation(sp, st) & ~other
        hu = paint(hu, grown & ~sp, mean, 5, seed=10 + it)
        sp, it = grown, it + 1
    masks["spleen"] = sp
    masks["pancreatic_pdac"] = masks.pop("pancreatic_lesion")
    cyst = ellipsoid(hu.shape, aff, organ_center_mm(masks["pancreas_body"], aff), (6.0, 6.0, 6.0)) & masks["pancreas_body"]
    hu = paint(hu, cyst, 18, 3, seed=7)
    masks["pancreatic_cyst"] = cyst
    c = organ_center_mm(masks["stomach"], aff)
    i, j, k = np.round(np.linalg.inv(aff) @ np.r_[c, 1.0])[:3].astype(int)
    for name, di in (("superior_mesenteric_artery", 0), ("celiac_trunk", 4), ("common_hepatic_artery", -4)):
        masks[name] = _tube(hu.shape, (i + di, j), k - 2, k + 2)
    folder = write_case(tmp_path_factory.mktemp("vqa") / "case_b", hu, aff, masks)
    return dict(findings=with_search(measure(folder / "ct.nii.gz", folder)), hu=hu, aff=aff, masks=masks, folder=folder)


@pytest.fixture(scope="module")
def results(case_a, case_b):
    metric, failures, status, counts = VQAMetric(), [], {}, {}
    fa = case_a["findings"]
    contrast = fa.model_copy(update={"study": fa.study.model_copy(update={
        "contrast_phase": fa.study.contrast_phase.model_copy(update={"phase": "portal_venous", "rule": "test: set to portal venous"})})})
    runs = [("A", case_a, fa), ("B", case_b, case_b["findings"]), ("A-contrast", {**case_a, "findings": contrast}, contrast)]
    for name, case, findings in runs:
        items = generate(Truth(case), name)
        if name == "A-contrast":
            items = [i for i in items if i.subtype in ("fatty liver", "hepatic steatosis grading", "pancreatic steatosis",
                                                       "renal mass characterization")]
        counts[name] = len(items)
        st = ask_all(name, findings, items, metric, failures, seed=len(name))
        for k, v in st.items():
            status.setdefault(k, {})[name] = v
    return dict(metric=metric, failures=failures, status=status, counts=counts, contrast=contrast)


# --- tests ----------------------------------------------------------------------------------------
def test_every_question_exactly_right(results):
    agg = results["metric"].aggregate()
    print("\nVQA accuracy per group (all forms, all cases):")
    for g, d in agg["by_group"].items():
        print(f"  {g:20s} {100 * d['accuracy']:6.1f} %  (n={d['n']}, {d['n_subtypes']} subtypes)")
    print(f"  {'overall':20s} {100 * agg['overall']['accuracy']:6.1f} %  (n={agg['overall']['n']})")
    print("status on the cases (API form):")
    for st in DEEPTUMORVQA_SUBTYPES:
        print(f"  {st:38s} " + ", ".join(f"{c}: {s}" for c, s in results["status"].get(st, {}).items()))
    assert not results["failures"], "\n".join(results["failures"])


def test_all_42_subtypes_covered_and_answered(results):
    assert len(DEEPTUMORVQA_SUBTYPES) == 42
    st = results["status"]
    assert set(DEEPTUMORVQA_SUBTYPES) <= set(st), sorted(set(DEEPTUMORVQA_SUBTYPES) - set(st))
    unanswered = [s for s in DEEPTUMORVQA_SUBTYPES if "answered" not in st[s].values()]
    # the cases' pancreas masks hold fat (mean below 0 HU): P/S is undefined there; no lesion search covers the
    # colon (only the generic `tumor` mask reaches it): both answered on edited findings in
    # test_rules_on_edited_findings / test_colon_absence_only_where_searched
    assert set(unanswered) <= {"pancreatic steatosis", "colon lesion existence"}, unanswered
    groups = {SUBTYPES[s].group for s in DEEPTUMORVQA_SUBTYPES}
    assert groups == {"recognition", "measurement", "visual reasoning", "medical reasoning"}
    assert [sum(SUBTYPES[s].group == g for s in DEEPTUMORVQA_SUBTYPES) for g in
            ("recognition", "measurement", "visual reasoning", "medical reasoning")] == [9, 5, 16, 12]


def test_cannot_be_determined_says_why(case_a, results):
    fa = case_a["findings"]
    a = answer(fa, "What is the volume of the liver?")
    assert a.status == CANNOT and a.answer is None and "scan edge" in a.reason and "lower bound" in a.reason
    assert a.finding_ids == ["organ:liver"]
    c = answer(results["contrast"], Question(subtype="hepatic steatosis grading"))
    assert c.status == CANNOT and "non-contrast" in c.reason and "portal_venous" in c.reason
    assert answer(results["contrast"], "Does the patient have fatty liver?").status == CANNOT
    # the MC form keeps the computed value when no option matches, and never picks one
    m = answer(fa, "What is the volume of the gallbladder? A) 1 mL B) 2 mL C) 3 mL D) 4 mL")
    assert m.status == CANNOT and m.answer is None and m.value == fa.organ("gallbladder").volume_ml


def test_colon_absence_only_where_searched(case_a):
    """'No lesion in the colon' only where a search covered the colon; else cannot be determined, saying why."""
    from perception.schema import LesionSearch

    f = case_a["findings"]
    assert not any(l.organ == "colon" for l in f.lesions)
    q = Question(subtype="colon lesion existence")
    a = answer(f, q)
    assert a.status == CANNOT and a.answer is None and a.reason
    rows = [r for r in f.lesion_search if r.organ != "colon"]
    rows.append(LesionSearch(organ="colon", searched=True, by=["mask colon_lesion.nii.gz"]))
    b = answer(f.model_copy(update={"lesion_search": rows}), q)
    assert b.status == "answered" and b.answer == "no"


def test_unmapped_question(case_a):
    a = answer(case_a["findings"], "What is the patient's blood pressure?")
    assert a.status == "unmapped_question" and a.answer is None and a.subtype is None
    # what was understood (nothing measured) and the 3 closest supported questions, each with an example
    assert "understood: nothing radagent measures" in a.reason and a.reason.count("(e.g. '") == 3


def test_rules_on_edited_findings(case_a):
    """Rule branches the cases do not reach, on Findings edited with model_copy (hand-computed)."""
    f = case_a["findings"]
    les = {l.id: l for l in f.lesions}
    liver_ids = f.organ("liver").lesion_ids
    # outlier: largest >= 3x the second, 3 liver lesions
    big = les[liver_ids[0]].model_copy(update={"volume_ml": 3 * les[liver_ids[1]].volume_ml + 0.01})
    f2 = f.model_copy(update={"lesions": [big if l.id == big.id else l for l in f.lesions]})
    assert answer(f2, Question(subtype="lesion outlier", organ="liver")).answer == "yes"
    # splenomegaly grades from a measured spleen: 314.5 is normal, 314.6 mild, 800 moderate, 800.1 severe
    for v, g in ((314.5, "normal (no splenomegaly)"), (314.6, "mild"), (500.0, "mild"), (800.0, "moderate"), (800.1, "severe")):
        sp = f.organ("spleen").model_copy(update={"status": "measured", "volume_ml": v, "touches_edges": []})
        f3 = f.model_copy(update={"organs": [sp if o.name == "spleen" else o for o in f.organs]})
        assert answer(f3, Question(subtype="splenomegaly grading")).answer == g, v
        assert answer(f3, Question(subtype="splenomegaly detection")).answer == ("yes" if v > 314.5 else "no")
    # a truncated spleen whose imaged part already exceeds the threshold answers "yes" from the lower bound
    sp = f.organ("spleen").model_copy(update={"voxel_count": 20000, "imaged_volume_ml": 540.0})  # 540 mL at 27 mm3
    f4 = f.model_copy(update={"organs": [sp if o.name == "spleen" else o for o in f.organs]})
    a = answer(f4, "Does the patient have splenomegaly?")
    assert a.answer == "yes" and "imaged part alone" in a.explanation
    assert answer(f4, Question(subtype="portal hypertension assessment")).answer == "yes"
    assert answer(f4, Question(subtype="splenomegaly grading")).status == CANNOT  # 540 mL: mild..severe
    # Kodama: HU and L/S boundaries
    def grade(liver_hu, spleen_hu):
        orgs = [o.model_copy(update={"mean_hu": liver_hu}) if o.name == "liver" else
                o.model_copy(update={"mean_hu": spleen_hu}) if o.name == "spleen" else o for o in f.organs]
        return answer(f.model_copy(update={"organs": orgs}), Question(subtype="hepatic steatosis grading")).answer
    assert grade(58.0, 50.0) == "G0 (normal)"
    assert grade(57.9, 50.0) == "G1 (mild)"
    assert grade(60.0, 61.0) == "G1 (mild)"  # L/S 0.98
    assert grade(50.9, 40.0) == "G2 (moderate)"
    assert grade(60.0, 121.0) == "G3 (severe)"  # L/S 0.496
    assert grade(38.9, 30.0) == "G3 (severe)"
    # pancreatic steatosis: P/S from positive means; a mean at or below 0 HU makes the ratio undefined
    def ps(panc_hu):
        orgs = [o.model_copy(update={"mean_hu": panc_hu}) if o.name == "pancreas" else
                o.model_copy(update={"mean_hu": 50.0}) if o.name == "spleen" else o for o in f.organs]
        return answer(f.model_copy(update={"organs": orgs}), Question(subtype="pancreatic steatosis"))
    assert ps(30.0).answer == "yes" and ps(40.0).answer == "no"  # 0.6 < 0.70; 0.8 >= 0.70
    assert ps(-8.0).status == CANNOT and "pancreas -8 HU" in ps(-8.0).reason
    # no lesion mask covering an organ: absence cannot be stated
    f5 = f.model_copy(update={"masks": [m for m in f.masks if m.category != "lesion"], "lesions": [],
                              "organs": [o.model_copy(update={"lesion_ids": []}) for o in f.organs],
                              "lesion_search": [s.model_copy(update={"searched": False, "by": [], "reason": "no lesion mask"})
                                                for s in f.lesion_search]})
    a = answer(f5, "Is there a lesion in the liver?")
    assert a.status == CANNOT and "not searched" in a.reason and "absence cannot be stated" in a.reason


def test_question_validation_and_parsing():
    q = Question(subtype="lesion_counting", organ="Left Kidney")
    assert q.subtype == "lesion counting" and q.organ == "kidney_left"
    assert Question(subtype="inter-segment comparison", segments="segment VIII, S7").segments == ("liver_segment_8", "liver_segment_7")
    with pytest.raises(ValueError, match="did you mean 'organ volume measurement'"):
        Question(subtype="organ volum measurement")
    with pytest.raises(ValueError, match="unknown organ"):
        Question(subtype="organ volume measurement", organ="brainstem")
    with pytest.raises(ValueError, match="extra"):
        Question(subtype="lesion counting", colour="red")
    with pytest.raises(ValueError):
        Answer(status="answered", reason="x")
    with pytest.raises(ValueError):
        Answer(status="cannot_be_determined", answer=1, reason="x")


# --- knowledge base -------------------------------------------------------------------------------
def test_knowledge_lookup():
    from reasoning.knowledge import KNOWLEDGE, knowledge, lookup_medical_knowledge

    assert all(e.source and e.rule for e in KNOWLEDGE)
    assert lookup_medical_knowledge("splenomegaly grading")[0].key == "splenomegaly_grades_ml"
    assert lookup_medical_knowledge("L/S ratio fatty liver")[0].key == "liver_spleen_ratio"
    assert lookup_medical_knowledge("pseudocyst")[0].values == (14.5,)
    assert lookup_medical_knowledge("kidney lesion cyst or tumor")[0].values == (34.8,)
    assert lookup_medical_knowledge("splenomegally")  # misspelt
    assert lookup_medical_knowledge("quantum chromodynamics") == []
    assert knowledge("kodama_steatosis_grade").requires_phase == "non_contrast"
    with pytest.raises(KeyError, match="did you mean"):
        knowledge("splenomegaly_volume")


# --- CLI ------------------------------------------------------------------------------------------
def test_cli_ask(case_a, tmp_path):
    from click.testing import CliRunner

    from agent.vqa_cli import ask

    out = tmp_path / "out"
    out.mkdir()
    (out / "findings.json").write_text(case_a["findings"].to_json())
    r = CliRunner()
    res = r.invoke(ask, [str(out), "How many lesions are in the liver?"])
    assert res.exit_code == 0, res.output
    n = len(case_a["findings"].organ("liver").lesion_ids)
    assert res.output.startswith(f"{n} lesions")
    res = r.invoke(ask, [str(out / "findings.json"), "How many lesions are in the liver?", "--json",
                         "-c", f"A) {n + 1}", "-c", f"B) {n}", "-c", f"C) {n + 2}"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["answer"] == "B" and d["value"] == n and d["subtype"] == "lesion counting" and d["answer_type"] == "choice"
    res = r.invoke(ask, [str(out), "--subtype", "organ HU ratio", "-p", "organs=liver,spleen", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["unit"] == "ratio"
    res = r.invoke(ask, [str(out), "What is the volume of the liver?"])
    assert res.exit_code == 0 and res.output.startswith("cannot be determined:")
    res = r.invoke(ask, [str(out), "Who won the match?"])
    assert res.exit_code == 0 and res.output.startswith("unmapped question:")
    for bad in ([str(tmp_path / "nowhere"), "How many lesions are in the liver?"],
                [str(out), "--subtype", "organ volum"],
                [str(out), "--subtype", "organ volume measurement", "-p", "organ"],
                [str(out), "--subtype", "organ volume measurement", "-p", "shape=round"],
                [str(out)],
                [str(out), "q?", "--subtype", "lesion counting"]):
        res = r.invoke(ask, bad)
        assert res.exit_code == 2, (bad, res.output)


# --- metrics --------------------------------------------------------------------------------------
def test_vqa_metrics_hand_computed(tmp_path):
    from eval.vqa_metrics import (BenchQuestion, VQAMetric, read_questions, read_results, relative_accuracy,
                                  result_from_answer, score_answer, score_results, write_results)

    assert relative_accuracy(90.0, 100.0) == pytest.approx(0.9)
    assert relative_accuracy(250.0, 100.0) == 0.0
    assert relative_accuracy(0.0, 0.0) == 1.0 and relative_accuracy(1.0, 0.0) == 0.0
    s = score_answer("93 mL", "100", "numeric")
    assert s.score == pytest.approx(0.93) and not s.hit(0.05) and s.hit(0.10)
    assert score_answer("B", "B", "choice").correct and not score_answer("The answer is C", "B", "choice").correct
    assert score_answer("Yes, there is", "yes", "binary").correct
    assert score_answer("Widely distributed", "widely distributed", "categorical").correct
    m = VQAMetric()
    m.add("organ volume measurement", "measurement", "90", 100, "numeric")   # 0.90, hit 10/20/50
    m.add("organ volume measurement", "measurement", "104", 100, "numeric")  # 0.96, hit 5/10/20/50
    m.add("organ volume measurement", "measurement", None, 100, "numeric")   # unanswered: 0
    m.add("lesion counting", "visual reasoning", "A", "A", "choice")
    m.add("lesion outlier", "visual reasoning", "no", "yes", "binary")
    agg = m.aggregate()
    ov = agg["by_subtype"]["organ volume measurement"]
    assert ov["accuracy"] == pytest.approx((0.9 + 0.96 + 0) / 3, abs=1e-4) and ov["n_unanswered"] == 1
    assert (ov["within_5"], ov["within_10"], ov["within_20"], ov["within_50"]) == (pytest.approx(1 / 3, abs=1e-4),
                                                                                   pytest.approx(2 / 3, abs=1e-4),
                                                                                   pytest.approx(2 / 3, abs=1e-4),
                                                                                   pytest.approx(2 / 3, abs=1e-4))
    assert agg["by_group"]["visual reasoning"]["accuracy"] == 0.5
    assert agg["by_group"]["visual reasoning"]["macro_accuracy"] == 0.5
    assert agg["overall"]["accuracy"] == pytest.approx((0.62 * 3 + 1 + 0) / 5, abs=1e-4)
    # file formats: read tolerantly (v1 names, extra fields), write strictly, score by qid
    qf = tmp_path / "test_qa.json"
    qf.write_text(json.dumps({"version": "x", "questions": [
        {"qid": "q1", "image_id": "BDMAP_1", "question": "How many lesions are in the liver?", "answer": "3",
         "mc_question": "How many ... A: 2 B: 3", "correct_option": "B", "question_type": "visual reasoning",
         "question_subtype": "lesion counting", "organ": "liver"},
        {"question_id": 7, "image_id": "BDMAP_1", "question": "Is the liver enlarged?", "answer": "No",
         "multiple_choice_question": "Is ... A: Yes B: No", "correct_option": "B", "question_type": "visual reasoning",
         "question_subtype": "organ enlargement"}]}))
    qs = read_questions(qf)
    assert [q.qid for q in qs] == ["q1", "7"] and qs[1].mc_question.startswith("Is") and qs[0].organ == "liver"
    ans = Answer(status="answered", answer=3, unit="lesions", answer_type="numeric", subtype="lesion counting",
                 group="visual reasoning", finding_ids=["L1"], explanation="3 lesions")
    cbd = Answer(status="cannot_be_determined", subtype="organ enlargement", reason="liver truncated")
    rows = [result_from_answer(qs[0], ans, "freeform"), result_from_answer(qs[1], cbd, "freeform")]
    rf = write_results(tmp_path / "results.json", rows)
    back = read_results(rf)
    assert back == rows and json.loads(rf.read_text())["results"][1]["pred_answer"] == ""
    sc = score_results(back, qs, "freeform")
    assert sc["by_subtype"]["lesion counting"]["accuracy"] == 1.0
    assert sc["by_subtype"]["organ enlargement"]["accuracy"] == 0.0
    assert sc["overall"]["accuracy"] == 0.5
    assert isinstance(qs[0], BenchQuestion)


def test_ranked_lesions_by_free_text(case_a):
    """'second largest' / 'smallest' pick that lesion, never the largest; truth from the masks."""
    f = case_a["findings"]
    m = case_a["masks"]
    vols = sorted((int(n) * 27 / 1000 for n in np.bincount(ndimage.label(m["liver_lesion"], structure=np.ones((3, 3, 3)))[0].ravel())[1:]
                   if n >= 2 and n * 27 >= 10), reverse=True)  # the minimum component size of the README
    liver_les = sorted((l.volume_ml for l in f.lesions if l.organ == "liver" and l.mask == "liver_lesion"), reverse=True)
    assert liver_les == pytest.approx(vols)
    a = answer(f, "What is the volume of the second largest lesion in the liver?")
    ranked = sorted((l for l in f.lesions if l.organ == "liver"), key=lambda l: -l.volume_ml)
    assert a.status == "answered" and a.finding_ids == [ranked[1].id] and a.answer == pytest.approx(ranked[1].volume_ml, abs=1e-3)
    a = answer(f, "What is the volume of the smallest liver lesion?")
    assert a.finding_ids == [ranked[-1].id]
    a = answer(f, "What is the volume of the fifth largest liver lesion?")
    assert a.status == "cannot_be_determined" and "number 5" in a.reason


def test_generate_qa_rows_are_the_deterministic_answers(case_a):
    from reasoning.vqa import generate_qa

    f = case_a["findings"]
    rows = generate_qa(f)
    assert len({r["subtype"] for r in rows}) >= 38
    assert len({r["qid"] for r in rows}) == len(rows)
    for r in rows:
        a = answer(f, Question(**r["params"]))
        assert (r["status"], r["answer"]) == (a.status, a.answer)
        assert r["status"] == "answered" or r["reason"]
    # the liver is cut off by the scan edge in this 30-slice CT: its volume is never a number
    liver_vol = next(r for r in rows if r["subtype"] == "organ volume measurement" and r["params"].get("organ") == "liver")
    assert liver_vol["status"] == "cannot_be_determined" and liver_vol["answer"] is None
