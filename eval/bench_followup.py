"""Follow-up pairs of known truth, and the registration + matching benchmark (issue 16).

``make_series``: a prior and follow-up studies made from one real CT with its TotalSegmentator masks
(../shared/data/totalseg/example_ct_sm + example_seg): each follow-up is the prior moved by a known rigid motion
of the patient (rotation + translation, resampled into the same grid, organ masks moved with it by nearest
neighbour) with synthetic lesions painted at the moved positions, grown / shrunk / added / removed by known
amounts (axis-aligned ellipsoids in world mm: long axis = 2 * the larger in-plane semi-axis, volume 4/3 pi abc).

``python -m eval.bench_followup`` times registration + matching on two 512x512x300 CTs synthesized from the same
real CT (trilinear upsampling to 0.75 x 0.75 x 1.12 mm, a known motion applied) on one core, and writes
eval/results/bench_followup.json.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from eval.synthetic import ellipsoid, paint, save_nifti

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totalseg"
ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "stomach", "pancreas", "gallbladder", "aorta")
LESION_MASK = {"liver": "liver_lesion", "spleen": "spleen_lesion", "kidney_left": "kidney_lesion"}
LESION_HU = {"liver": -45.0, "spleen": -40.0, "kidney_left": -60.0}  # relative to the organ mean (hypoattenuating)


def rotation(axis: str, deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array({"z": [[c, -s, 0], [s, c, 0], [0, 0, 1]], "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
                     "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]]}[axis], dtype=np.float64)


def rigid(center_mm, rot_deg=(0.0, 0.0, 0.0), shift_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 world transform: rotate about ``center_mm`` by (x, y, z) degrees, then shift."""
    r = rotation("z", rot_deg[2]) @ rotation("y", rot_deg[1]) @ rotation("x", rot_deg[0])
    c = np.asarray(center_mm, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(shift_mm, dtype=np.float64)
    return m


def resample(arr: np.ndarray, affine: np.ndarray, cur_to_prior: np.ndarray, order: int, cval: float) -> np.ndarray:
    """The follow-up's voxels: value of ``arr`` (prior) at cur_to_prior(x) for each follow-up voxel centre x."""
    m = np.linalg.inv(affine) @ cur_to_prior @ affine
    return ndimage.affine_transform(arr, m[:3, :3], m[:3, 3], order=order, cval=cval, output_shape=arr.shape)


@dataclass(frozen=True)
class LesionSpec:
    name: str  # truth label (test side), e.g. "L1"
    organ: str
    semi_axes_mm: tuple[float, float, float]  # (x, y, z) world

    @property
    def long_axis_mm(self) -> float:
        return 2 * max(self.semi_axes_mm[0], self.semi_axes_mm[1])

    @property
    def volume_ml(self) -> float:
        a, b, c = self.semi_axes_mm
        return 4 / 3 * np.pi * a * b * c / 1000


@dataclass
class Study:
    folder: Path
    cur_to_base: np.ndarray  # this study's world -> the prior's world (truth)
    lesions: dict[str, LesionSpec]
    centers_mm: dict[str, np.ndarray] = field(default_factory=dict)  # lesion name -> centre in this study's world


def base_case():
    """The real CT (int16 HU), its affine and the organ masks used (bool)."""
    img = nib.load(DATA / "example_ct_sm.nii.gz")
    seg = np.asanyarray(nib.load(DATA / "example_seg.nii.gz").dataobj)
    from perception.registry import totalseg_class_maps

    names = totalseg_class_maps()["total"]
    ids = {n: int(k) for k, n in names.items()}
    return np.asanyarray(img.dataobj).astype(np.int16), img.affine, seg, ids


def write_study(folder: Path, hu: np.ndarray, affine: np.ndarray, seg: np.ndarray, ids: dict[str, int],
                lesions: dict[str, LesionSpec], centers: dict[str, np.ndarray]) -> Path:
    """ct.nii.gz + masks/<organ>.nii.gz + masks/<organ lesion>.nii.gz (lesion masks always written: organs searched)."""
    hu = hu.copy()
    organ_masks = {o: seg == ids[o] for o in ORGANS}
    lesion_masks = {v: np.zeros(hu.shape, bool) for v in LESION_MASK.values()}
    for name, spec in lesions.items():
        host = organ_masks[spec.organ]
        m = ellipsoid(hu.shape, affine, centers[name], spec.semi_axes_mm) & host
        hu = paint(hu, m, float(hu[host & ~m].mean()) + LESION_HU[spec.organ], 5.0, seed=len(name))
        lesion_masks[LESION_MASK[spec.organ]] |= m
    save_nifti(hu, affine, folder / "ct.nii.gz")
    for n, m in {**organ_masks, **lesion_masks}.items():
        save_nifti(m.astype(np.uint8), affine, folder / "masks" / f"{n}.nii.gz")
    return folder


def place_lesions(affine, seg, ids, specs: dict[str, list[LesionSpec]], margin_mm: float = 3.0,
                  gap_mm: float = 12.0) -> dict[str, np.ndarray]:
    """Centres (prior world) for lesions by name, each given with all its sizes over the series: the deepest organ
    point with room for its largest size plus ``margin_mm``, at least ``gap_mm`` from the other lesions' surfaces."""
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    depth = {}
    centres: dict[str, np.ndarray] = {}
    radii: dict[str, float] = {}
    xyz = None
    for name, sizes in specs.items():
        organ = sizes[0].organ
        if organ not in depth:
            depth[organ] = ndimage.distance_transform_edt(np.pad(seg == ids[organ], 1), sampling=sp)[1:-1, 1:-1, 1:-1]
        r = max(max(s.semi_axes_mm) for s in sizes)
        ok = depth[organ] >= r + margin_mm
        if xyz is None:
            ijk = np.indices(seg.shape).reshape(3, -1)
            xyz = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape((3,) + seg.shape)
        for other, c in centres.items():
            ok &= np.sqrt(((xyz - c.reshape(3, 1, 1, 1)) ** 2).sum(0)) >= r + radii[other] + gap_mm
        if not ok.any():
            raise ValueError(f"no room for lesion {name} ({r} mm) in {organ}")
        d = np.where(ok, depth[organ], -1.0)
        ijk = np.array(np.unravel_index(int(np.argmax(d)), seg.shape), dtype=np.float64)
        centres[name], radii[name] = affine[:3, :3] @ ijk + affine[:3, 3], r
    return centres


def make_series(root: Path, prior_lesions: dict[str, LesionSpec], followups: list[tuple[np.ndarray, dict[str, LesionSpec]]]
                ) -> list[Study]:
    """The prior (time point 0) and each follow-up (cur_to_prior motion, its lesions by the same names: a name
    missing is a removed lesion, a new name an added one). Lesions are placed in the prior's organs
    (``place_lesions``) and painted at the moved positions. Returns the studies with their truth."""
    hu, aff, seg, ids = base_case()
    sizes: dict[str, list[LesionSpec]] = {}
    for spec in [*prior_lesions.values(), *(s for _, les in followups for s in les.values())]:
        sizes.setdefault(spec.name, []).append(spec)
    centers = place_lesions(aff, seg, ids, sizes)
    out = [Study(write_study(root / "t0", hu, aff, seg, ids, prior_lesions, centers), np.eye(4), prior_lesions,
                 {n: centers[n] for n in prior_lesions})]
    for i, (motion, lesions) in enumerate(followups, start=1):
        m_hu = np.rint(resample(hu.astype(np.float32), aff, motion, 1, -1024.0)).astype(np.int16)
        m_seg = resample(seg, aff, motion, 0, 0)
        inv = np.linalg.inv(motion)
        c_cur = {n: inv[:3, :3] @ centers[n] + inv[:3, 3] for n in lesions}
        out.append(Study(write_study(root / f"t{i}", m_hu, aff, m_seg, ids, lesions, c_cur), motion, lesions, c_cur))
    return out


# --- the test pairs (tests/test_followup_compare.py) and their accuracy ---------------------------------------
PRIOR = {"L1": LesionSpec("L1", "liver", (15, 12, 7.5)),  # 30 mm
         "L2": LesionSpec("L2", "liver", (10, 8, 6)),  # 20 mm
         "L3": LesionSpec("L3", "spleen", (9, 8, 6)),  # 18 mm
         "L4": LesionSpec("L4", "kidney_left", (3.5, 3.5, 3.5))}  # 7 mm: not measurable -> non-target

# scenario -> (motion (rotation deg about x, y, z; shift mm), follow-up lesions, expected target / overall response)
SCENARIOS = {
    "PR": (((2, 0, 5), (6, -4, 3)),
           {"L1": LesionSpec("L1", "liver", (9, 7, 5)), "L2": LesionSpec("L2", "liver", (6, 5, 4)),
            "L3": LesionSpec("L3", "spleen", (5.5, 5, 4))}, "PR", "PR"),  # 68 -> 41 mm (-40 %), L4 removed
    "SD": (((0, 2, -4), (-5, 3, 2)),
           {"L1": LesionSpec("L1", "liver", (16, 13, 8)), "L2": LesionSpec("L2", "liver", (10.5, 8, 6)),
            "L3": LesionSpec("L3", "spleen", (9, 8, 6)), "L4": PRIOR["L4"]}, "SD", "SD"),  # 68 -> 71 mm (+4 %)
    "PD_size": (((-3, 0, 3), (4, 6, -3)),
                {"L1": LesionSpec("L1", "liver", (21, 17, 9)), "L2": LesionSpec("L2", "liver", (13, 10, 7)),
                 "L3": LesionSpec("L3", "spleen", (11, 9, 6)), "L4": PRIOR["L4"]}, "PD", "PD"),  # 68 -> 90 (+32 %)
    "PD_new": (((1, 1, -6), (-6, -3, 4)),
               {**PRIOR, "L5": LesionSpec("L5", "liver", (6, 6, 5))}, "SD", "PD"),  # same sizes + a new 12 mm lesion
    # regrown from the PR sizes: vs the baseline alone SD (68 -> 56 mm, -18 %); with the PR study as a second
    # prior the nadir is 41 mm and 56 mm is +37 %, +15 mm: PD (test_nadir_from_an_intermediate_prior)
    "regrow": (((-2, 1, 2), (3, 5, -2)),
               {"L1": LesionSpec("L1", "liver", (12, 10, 6)), "L2": LesionSpec("L2", "liver", (8.5, 7, 5)),
                "L3": LesionSpec("L3", "spleen", (7.5, 6, 5))}, "SD", "SD"),
}


def sod(lesions: dict[str, LesionSpec]) -> float:
    """Analytic sum of target diameters (L1-L3; L4 is the non-measurable non-target, L5 a new lesion)."""
    return sum(s.long_axis_mm for n, s in lesions.items() if n in ("L1", "L2", "L3"))


def _lesion_at(findings, centre_mm, tol=3.0):
    best = min(findings.lesions, key=lambda x: np.linalg.norm(np.asarray(x.centroid_mm) - centre_mm), default=None)
    return best if best is not None and np.linalg.norm(np.asarray(best.centroid_mm) - centre_mm) <= tol else None


def accuracy(root: Path) -> dict:
    """The test pairs end to end (analyze, compare): registration error at the lesion centres (truth: the motion),
    matching (lesion ids found at the truth centres), long-axis change error vs the analytic sizes, RECIST
    categories vs the expected ones; plus the three-time-point nadir case."""
    from agent import case
    from eval.synthetic import organ_center_mm

    _, aff, seg, ids = base_case()
    centre = organ_center_mm(seg == ids["liver"], aff)
    studies = make_series(root, PRIOR, [(rigid(centre, m[0], m[1]), les) for m, les, _, _ in SCENARIOS.values()])
    outs = [case.write(case.analyze(s.folder / "ct.nii.gz", s.folder / "masks", key_images=False), None,
                       root / f"out_{s.folder.name}") for s in studies]
    f0 = case.load(outs[0]).findings
    rows, n_ok, n_all, errs = {}, 0, 0, []
    for i, (name, (_, lesions, target, overall)) in enumerate(SCENARIOS.items(), start=1):
        t0 = time.perf_counter()
        comp = case.compare([outs[0]], outs[i], study_dates=["2025-01-10", "2025-04-10"])
        secs = time.perf_counter() - t0
        st, f1 = studies[i], case.load(outs[i]).findings
        reg = comp.registrations[0]
        T = np.asarray(reg.transform_current_to_prior)
        tre = [float(np.linalg.norm(T[:3, :3] @ c + T[:3, 3] - (st.cur_to_base[:3, :3] @ c + st.cur_to_base[:3, 3])))
               for c in st.centers_mm.values()]
        got = {(t.measurements[0].lesion_id, t.measurements[1].lesion_id): t for t in comp.lesions}
        ok = 0
        for n in set(PRIOR) | set(lesions):
            l0 = _lesion_at(f0, studies[0].centers_mm[n]) if n in PRIOR else None
            l1 = _lesion_at(f1, st.centers_mm[n]) if n in lesions else None
            t = got.get((l0.id if l0 else None, l1.id if l1 else None))
            want = "persisting" if l0 and l1 else ("new" if l1 else "disappeared")
            ok += t is not None and t.state == want
            n_all += 1
            if t is not None and want == "persisting":
                errs.append(abs(t.change_from_prior.long_axis_abs_mm - (lesions[n].long_axis_mm - PRIOR[n].long_axis_mm)))
        n_ok += ok
        q = {m.name: m.value for m in reg.quality}
        r = comp.recist
        rows[name] = {"registration": reg.status, "tre_mm_max": round(max(tre), 2), "tre_mm_mean": round(float(np.mean(tre)), 2),
                      "median_organ_dice": q.get("median organ dice"), "liver_msd_mm": q.get("mean surface distance liver"),
                      "lesions_matched_with_right_state": f"{ok}/{len(set(PRIOR) | set(lesions))}",
                      "sum_mm_truth": [sod(PRIOR), sod(lesions)], "sum_mm_measured": r.sum_of_diameters_mm,
                      "target": [r.target_response, target], "overall": [r.overall_response, overall],
                      "compare_seconds": round(secs, 2)}
    names = list(SCENARIOS)
    comp3 = case.compare([outs[0], outs[names.index("PR") + 1]], outs[names.index("regrow") + 1])
    rows["three_time_points_PR_then_regrow"] = {
        "sum_mm_truth": [sod(PRIOR), sod(SCENARIOS["PR"][1]), sod(SCENARIOS["regrow"][1])],
        "sum_mm_measured": comp3.recist.sum_of_diameters_mm, "nadir_time_point": comp3.recist.nadir_time_point,
        "overall": [comp3.recist.overall_response, "PD"]}
    right = sum(v["overall"][0] == v["overall"][1] for v in rows.values())
    return {"what": "test pairs of tests/test_followup_compare.py (example_ct_sm + synthetic lesions, known rigid motions)",
            "scenarios": rows, "lesions_matched_with_right_state": f"{n_ok}/{n_all}",
            "long_axis_change_abs_error_mm": {"mean": round(float(np.mean(errs)), 2), "max": round(float(np.max(errs)), 2),
                                              "n": len(errs)},
            "recist_overall_right": f"{right}/{len(rows)}"}


# --- benchmark ---------------------------------------------------------------------------------------------
def big_pair(root: Path, shape=(512, 512, 300)) -> tuple[Path, Path, np.ndarray]:
    """Two CTs of ``shape`` upsampled from example_ct (112 slices at 3 mm), the second moved by a known motion."""
    img = nib.load(DATA / "example_ct.nii.gz")
    hu = np.asanyarray(img.dataobj).astype(np.float32)
    zoom = np.array(shape) / np.array(hu.shape)
    aff = img.affine.copy()
    aff[:3, :3] = img.affine[:3, :3] @ np.diag(1 / zoom)
    aff[:3, 3] = img.affine[:3, 3] + img.affine[:3, :3] @ ((1 / zoom - 1) / 2)
    big = ndimage.zoom(hu, zoom, order=1, output=np.float32, grid_mode=True, mode="nearest")
    centre = aff[:3, :3] @ (np.array(shape) / 2) + aff[:3, 3]
    motion = rigid(centre, (2.0, 0.0, 5.0), (6.0, -4.0, 8.0))
    moved = resample(big, aff, motion, 1, -1024.0)
    a = save_nifti(np.rint(big).astype(np.int16), aff, root / "prior.nii.gz")
    b = save_nifti(np.rint(moved).astype(np.int16), aff, root / "current.nii.gz")
    return a, b, motion


def bench(out_json: Path | None = None) -> dict:
    import tempfile

    from perception.followup.match import LesionGeometry, match
    from perception.followup.register import apply, block_mean, register_grids
    from perception.io import load_ct

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pa, pb, motion = big_pair(Path(tmp))
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        va, vb = load_ct(pa), load_ct(pb)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        ga, gb = block_mean(va.hu, va.affine), block_mean(vb.hu, vb.affine)
        t_down = time.perf_counter() - t0
        t0 = time.perf_counter()
        reg = register_grids(ga, gb, threads=1)
        t_reg = time.perf_counter() - t0
        # matching: 20 lesions per study at known positions (the current ones moved by the inverse motion)
        rng = np.random.default_rng(0)
        centre = va.affine[:3, :3] @ (np.array(va.shape) / 2) + va.affine[:3, 3]
        pts = centre + rng.uniform(-80, 80, size=(20, 3)) * np.array([1, 1, 0.5])
        inv = np.linalg.inv(motion)
        prior = [LesionGeometry(f"p{i}", "liver", p, 20.0, 4.0) for i, p in enumerate(pts)]
        cur = [LesionGeometry(f"c{i}", "liver", apply(inv, p)[0], 20.0, 4.0) for i, p in enumerate(pts)]
        t0 = time.perf_counter()
        T = np.asarray(reg.transform_current_to_prior) if reg.status == "ok" else np.eye(4)
        ms = match(prior, cur, T, use_overlap=False)
        t_match = time.perf_counter() - t0
        ok = sum(m.a[1:] == m.b[1:] for m in ms)
        probe = va.affine[:3, :3] @ (np.argwhere(va.hu > -500)[::5000]).T + va.affine[:3, 3:4]
        tre = np.linalg.norm(apply(T, apply(inv, probe.T)) - probe.T, axis=1)
    res = {
        "what": "registration (rigid + affine) + matching, two 512x512x300 int16 CTs upsampled from "
                "../shared/data/totalseg/example_ct.nii.gz, the second moved by 5 deg about z, 2 deg about x and "
                "(6, -4, 8) mm; one thread (SimpleITK global threads = 1)",
        "shape": list(va.shape), "spacing_mm": [round(float(x), 4) for x in va.spacing],
        "seconds": {"synthesize": round(t_make, 2), "load_two_cts": round(t_load, 2),
                    "block_mean_two": round(t_down, 2), "register": round(t_reg, 2), "match_20": round(t_match, 4),
                    "register_plus_match_plus_downsample": round(t_down + t_reg + t_match, 2)},
        "goal_seconds": 30.0,
        "registration_status": reg.status, "registration_reason": reg.reason,
        "quality": {q.name: q.value for q in reg.quality},
        "tre_body_mm": {"mean": round(float(tre.mean()), 3), "max": round(float(tre.max()), 3),
                        "n_points": len(tre)},
        "matched_correctly": f"{ok}/{len(pts)}",
        "cpu": __import__("platform").processor() or __import__("platform").machine(),
    }
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    results = Path(__file__).parent / "results"
    if sys.argv[1:2] == ["--accuracy"]:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            res = accuracy(Path(tmp))
        (results / "followup_accuracy.json").write_text(json.dumps(res, indent=1) + "\n")
        print(json.dumps(res, indent=1))
    else:
        print(json.dumps(bench(results / "bench_followup.json"), indent=1))
