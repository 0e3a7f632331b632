"""Benchmark: per-case wall time of analyze (load + measure + write findings.json) on one core.

A realistic-size case (512 x 512 x 300 int16 CT, 41 structures, 5 lesions) is built once from
real data into ``.cache/bench/`` and reused:

- CT and labels: TotalSegmentator's example upper-abdomen CT (``totalseg/example_ct_sm.nii.gz``,
  122 x 101 x 30 at 3 mm) and its ``total`` segmentation (``example_seg.nii.gz``, 41 structures),
  resampled to 512 x 512 x 300 keeping the physical extent (voxel 0.715 x 0.592 x 0.3 mm):
  linear interpolation for the CT (rounded to int16), nearest neighbour for the labels, both
  on the voxel-edge grid the affine describes.
- 5 synthetic lesions of known geometry (``eval.synthetic``: ellipsoid / blob, painted HU) in the
  liver, spleen, both kidneys and the pancreas.
- Saved as (a) ``multilabel/``: ct.nii.gz + one multilabel seg.nii.gz + class_map.json, and (b)
  ``atlas/``: an AbdomenAtlas case folder, ct.nii.gz + segmentations/<name>.nii.gz (one binary
  mask per structure, AbdomenAtlas names where it has one).

Measured per format, 3 runs, median: the I/O floor (nibabel load of the CT and every mask into
numpy, nothing else), analyze()'s stages (load_ct, load_masks, measure; agent.case.Timings)
and writing findings.json (serialise + atomic write). The process is pinned to one core with
BLAS/OpenMP threads set to 1 before numpy is imported; one untimed warm-up run comes first (page
cache). The measure and load_masks stages are profiled with cProfile. Process CPU time is recorded
beside wall time: on a shared host, wall > CPU shows the run was slowed by other load.

Two floors are printed: the nibabel read above, and the fastest decompressor alone (ISA-L inflate of
every file into one reused buffer, ``inflate_floor``). The whole process (a fresh Python importing
radagent, measuring the case and writing findings.json, ``process_run``), the command itself
(``radagent analyze CT --masks ... -o OUT``: key images and findings.md too, ``cli_run``) and a fresh
Python reading the inputs with nibabel (``floor_process_run``) are printed beside the in-process
total (``--no-process`` skips them), each the median of ``--runs`` with its user CPU time; the
issue's targets are judged on the command's user CPU time (``targets`` in the JSON).

Scaling table: ``--scaling`` (lesions 1-100, mask files 5-100, slices 128-600; ``bench_scaling.json``).

Targets (issue): < 2 s per case on one core, within 2x of the I/O floor.

Run: ``make bench`` or ``python -m eval.bench_findings [--runs 3] [--rebuild] [--no-profile]``.
Writes ``eval/results/bench_findings.json``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_v] = "1"
try:
    _CORE = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {_CORE})
except (AttributeError, OSError):  # not Linux
    _CORE = None

import argparse
import cProfile
import io
import json
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / ".cache" / "bench"
RESULTS = REPO / "eval" / "results" / "bench_findings.json"
SHAPE = (512, 512, 300)
CASE_VERSION = 1  # bump when the case recipe changes (invalidates the cache)

LESION_LABELS = {201: "liver_lesion", 202: "spleen_lesion", 203: "kidney_lesion", 204: "pancreatic_lesion"}

# AbdomenAtlas 1.1 file names for the structures the example segmentation has (name -> TotalSegmentator labels)
ATLAS_NAMES = {
    "aorta": ["aorta"], "gall_bladder": ["gallbladder"], "kidney_left": ["kidney_left"], "kidney_right": ["kidney_right"],
    "liver": ["liver"], "pancreas": ["pancreas"], "postcava": ["inferior_vena_cava"], "spleen": ["spleen"],
    "stomach": ["stomach"], "adrenal_gland_left": ["adrenal_gland_left"], "adrenal_gland_right": ["adrenal_gland_right"],
    "colon": ["colon"], "duodenum": ["duodenum"], "intestine": ["small_bowel"],
    "lung_left": ["lung_upper_lobe_left", "lung_lower_lobe_left"],
    "lung_right": ["lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"],
    "portal_vein_and_splenic_vein": ["portal_vein_and_splenic_vein"],
    # not AbdomenAtlas classes, but TotalSegmentator names the pipeline knows: makes 25 structures
    "vertebrae_L1": ["vertebrae_L1"], "vertebrae_L2": ["vertebrae_L2"], "vertebrae_T12": ["vertebrae_T12"],
    "spinal_cord": ["spinal_cord"], "autochthon_left": ["autochthon_left"], "autochthon_right": ["autochthon_right"],
    "iliopsoas_left": ["iliopsoas_left"], "iliopsoas_right": ["iliopsoas_right"],
}


# --- building the case -------------------------------------------------------------------------------

def _edge_grid_coords(n_old: int, n_new: int) -> np.ndarray:
    """Old-grid voxel coordinates of the new voxel centres when both grids span the same extent."""
    return (np.arange(n_new) + 0.5) * (n_old / n_new) - 0.5


def resample_linear(a: np.ndarray, shape) -> np.ndarray:
    """Separable linear interpolation onto ``shape`` (same physical extent), float32."""
    out = a.astype(np.float32)
    for ax in (2, 1, 0):  # smallest growth first keeps the intermediates small
        x = np.clip(_edge_grid_coords(a.shape[ax], shape[ax]), 0, a.shape[ax] - 1)
        i0 = np.floor(x).astype(np.intp)
        i1 = np.minimum(i0 + 1, a.shape[ax] - 1)
        w = (x - i0).astype(np.float32)
        bshape = [1, 1, 1]
        bshape[ax] = -1
        w = w.reshape(bshape)
        out = np.take(out, i0, axis=ax) * (1 - w) + np.take(out, i1, axis=ax) * w
    return out


def resample_nearest(a: np.ndarray, shape) -> np.ndarray:
    idx = [np.clip(np.rint(_edge_grid_coords(n0, n1)).astype(np.intp), 0, n0 - 1) for n0, n1 in zip(a.shape, shape)]
    return a[np.ix_(*idx)]


def resampled_affine(affine: np.ndarray, old_shape, new_shape) -> np.ndarray:
    f = np.array(old_shape, dtype=np.float64) / np.array(new_shape, dtype=np.float64)
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * f  # scale columns
    out[:3, 3] = affine[:3, :3] @ (-0.5 + 0.5 * f) + affine[:3, 3]
    return out


def build_case(folder: Path) -> dict:
    from eval.synthetic import blob, ellipsoid, organ_center_mm, paint, save_nifti
    from perception.registry import totalseg_class_maps

    t0 = time.perf_counter()
    ct_img = nib.load(str(DATA / "totalseg" / "example_ct_sm.nii.gz"))
    seg_img = nib.load(str(DATA / "totalseg" / "example_seg.nii.gz"))
    hu0 = np.asanyarray(ct_img.dataobj)
    seg0 = np.asanyarray(seg_img.dataobj).astype(np.uint8)
    aff0 = ct_img.affine
    assert np.allclose(aff0, seg_img.affine) and hu0.shape == seg0.shape
    names = totalseg_class_maps()["total"]
    label_of = {names[int(v)]: int(v) for v in np.unique(seg0) if v}

    hu = np.rint(resample_linear(hu0, SHAPE)).astype(np.int16)
    seg = resample_nearest(seg0, SHAPE)
    aff = resampled_affine(aff0, hu0.shape, SHAPE)

    def organ(n):
        return seg == label_of[n]

    def centre(n):  # deepest point, computed on the 3 mm grid (same world position, 1000x cheaper)
        return organ_center_mm(seg0 == label_of[n], aff0)

    rng_rot = np.array([[np.cos(0.5), -np.sin(0.5), 0], [np.sin(0.5), np.cos(0.5), 0], [0, 0, 1]])
    liver, spleen, kl, kr, panc = organ("liver"), organ("spleen"), organ("kidney_left"), organ("kidney_right"), organ("pancreas")
    lesions = {
        # name: (mask, label, organ, painted mean HU, sd)
        "liver": (blob(SHAPE, aff, centre("liver"), 12.0, n_lobes=4, seed=3) & liver, 201, "liver", -35.0, 8.0),
        "spleen": (ellipsoid(SHAPE, aff, centre("spleen"), (11.0, 8.0, 7.0), rotation=rng_rot) & spleen, 202, "spleen", 20.0, 6.0),
        "kidney_right": (ellipsoid(SHAPE, aff, centre("kidney_right"), (10.0, 9.0, 8.0)) & kr, 203, "kidney_right", 60.0, 5.0),
        "kidney_left": (ellipsoid(SHAPE, aff, centre("kidney_left"), (7.0, 7.0, 7.0)) & kl, 203, "kidney_left", 5.0, 3.0),
        "pancreas": (ellipsoid(SHAPE, aff, centre("pancreas"), (6.0, 6.0, 6.0)) & panc, 204, "pancreas", 15.0, 5.0),
    }
    for i, (m, _, _, mean, sd) in enumerate(lesions.values()):
        assert m.any()
        hu = paint(hu, m, mean, sd, seed=10 + i)
    vox_mm3 = abs(float(np.linalg.det(aff[:3, :3])))

    # (a) multilabel
    ml = folder / "multilabel"
    save_nifti(hu, aff, ml / "ct.nii.gz")
    seg_l = seg.copy()
    for m, lab, *_ in lesions.values():
        seg_l[m] = lab
    save_nifti(seg_l, aff, ml / "seg.nii.gz")
    cmap = {str(k): v for k, v in names.items()}
    cmap.update({str(k): v for k, v in LESION_LABELS.items()})
    (ml / "class_map.json").write_text(json.dumps(cmap, indent=1))

    # (b) AbdomenAtlas case folder
    at = folder / "atlas"
    (at / "segmentations").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ml / "ct.nii.gz", at / "ct.nii.gz")
    for fname, parts in ATLAS_NAMES.items():
        m = np.isin(seg, [label_of[p] for p in parts if p in label_of])
        save_nifti(m.astype(np.uint8), aff, at / "segmentations" / f"{fname}.nii.gz")
    by_label: dict[int, np.ndarray] = {}
    for m, lab, *_ in lesions.values():
        by_label[lab] = by_label[lab] | m if lab in by_label else m
    for lab, m in by_label.items():
        save_nifti(m.astype(np.uint8), aff, at / "segmentations" / f"{LESION_LABELS[lab]}.nii.gz")

    meta = {
        "version": CASE_VERSION, "shape": list(SHAPE), "spacing_mm": [round(float(v), 5) for v in np.linalg.norm(aff[:3, :3], axis=0)],
        "source": "totalseg/example_ct_sm.nii.gz + example_seg.nii.gz (TotalSegmentator example, CC BY 4.0), resampled",
        "structures_multilabel": len(label_of), "structures_atlas": len(ATLAS_NAMES), "lesion_files_atlas": len(by_label),
        "lesions": {k: {"organ": o, "voxels": int(m.sum()), "volume_ml": round(int(m.sum()) * vox_mm3 / 1000, 3), "mean_hu": mean}
                 for k, (m, _, o, mean, _) in lesions.items()},
        "file_mb": {str(p.relative_to(folder)): round(p.stat().st_size / 1e6, 2) for p in sorted(folder.rglob("*.nii.gz"))},
        "build_s": round(time.perf_counter() - t0, 1),
    }
    (folder / "case.json").write_text(json.dumps(meta, indent=1))
    return meta


def get_case(rebuild: bool = False) -> tuple[Path, dict]:
    folder = CACHE / f"case_v{CASE_VERSION}"
    meta_file = folder / "case.json"
    if not rebuild and meta_file.exists():
        return folder, json.loads(meta_file.read_text())
    for need in ("example_ct_sm.nii.gz", "example_seg.nii.gz"):
        if not (DATA / "totalseg" / need).exists():
            sys.exit(f"bench: real data not found: {DATA / 'totalseg' / need} (expected ../shared/data next to the repository)")
    if folder.exists():
        shutil.rmtree(folder)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="case.tmp-", dir=CACHE))
    print(f"building the benchmark case in {folder} (once) ...", flush=True)
    meta = build_case(tmp)
    os.rename(tmp, folder)
    return folder, meta


# --- measuring ---------------------------------------------------------------------------------------

def inputs(folder: Path, fmt: str) -> tuple[Path, Path, Path | None, list[Path]]:
    if fmt == "multilabel":
        d = folder / "multilabel"
        return d / "ct.nii.gz", d / "seg.nii.gz", d / "class_map.json", [d / "seg.nii.gz"]
    d = folder / "atlas"
    return d / "ct.nii.gz", d, None, sorted((d / "segmentations").glob("*.nii.gz"))


def io_floor(ct: Path, mask_files: list[Path]) -> dict:
    """nibabel load of the CT and every mask into numpy (stored dtype): nothing else."""
    c0, t0 = time.process_time(), time.perf_counter()
    a = np.asanyarray(nib.load(str(ct)).dataobj)
    t1 = time.perf_counter()
    for p in mask_files:
        np.asanyarray(nib.load(str(p)).dataobj)
    t2, c2 = time.perf_counter(), time.process_time()
    del a
    return {"read_ct": t1 - t0, "read_masks": t2 - t1, "total": t2 - t0, "cpu": c2 - c0}


def inflate_floor(ct: Path, mask_files: list[Path], step: int = 256 << 10) -> dict:
    """The fastest decompressor alone (ISA-L inflate, zlib if absent) over the CT and every mask file,
    each inflated in ``step`` pieces into one reused buffer: no allocation, no parsing, nothing kept."""
    try:
        from isal import isal_zlib as z
    except ImportError:  # pragma: no cover
        import zlib as z

    def inflate(p: Path) -> int:
        d, n = z.decompressobj(31), 0
        with open(p, "rb") as f:
            while data := d.unconsumed_tail or f.read(step):
                n += len(d.decompress(data, step))
        return n

    c0, t0 = time.process_time(), time.perf_counter()
    inflate(ct)
    t1 = time.perf_counter()
    for p in mask_files:
        inflate(p)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"read_ct": t1 - t0, "read_masks": t2 - t1, "total": t2 - t0, "cpu": c2 - c0, "decompressor": z.__name__}


_PROCESS = ("import sys; from pathlib import Path; from agent.case import measure; "
            "f = measure(sys.argv[1], sys.argv[2], sys.argv[3] or None); "
            "Path(sys.argv[4]).write_text(f.to_json() + '\\n')")


def _child(cmd: list[str]) -> dict:
    """Wall, user and user+sys CPU time of one child process (same pinning and thread settings)."""
    import resource
    import subprocess

    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    t, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    user = r1.ru_utime - r0.ru_utime
    return {"total": round(t, 3), "user": round(user, 3), "cpu": round(user + r1.ru_stime - r0.ru_stime, 3)}


def process_run(ct: Path, masks: Path, cmap: Path | None, out: Path) -> dict:
    """The whole process a user starts: a fresh Python importing radagent, measuring the case and
    writing findings.json; wall, user and user+sys CPU time."""
    return _child([sys.executable, "-c", _PROCESS, str(ct), str(masks), str(cmap or ""), str(out / "findings.json")])


def cli_run(ct: Path, masks: Path, cmap: Path | None, out: Path) -> dict:
    """``radagent analyze CT --masks ... -o OUT --force`` as a user runs it (findings.json, findings.md,
    key images): the command the issue's whole-process targets are about."""
    cmd = [sys.executable, "-m", "agent.cli", "analyze", str(ct), "--masks", str(masks)]
    if cmap is not None:
        cmd += ["--class-map", str(cmap)]
    return _child([*cmd, "-o", str(out / "cli"), "--force"])


_FLOOR_PROCESS = "import sys, numpy as np, nibabel as nib; [np.asanyarray(nib.load(p).dataobj) for p in sys.argv[1:]]"


def floor_process_run(ct: Path, mask_files: list[Path]) -> dict:
    """The floor of the whole-process target: a fresh Python importing nibabel and reading the CT and
    every mask file into numpy (process start included), nothing else."""
    return _child([sys.executable, "-c", _FLOOR_PROCESS, str(ct), *map(str, mask_files)])


def _median_runs(runs: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def one_run(ct: Path, masks: Path, cmap: Path | None, out_root: Path) -> tuple[dict, object]:
    from agent.case import Timings, measure
    from agent.files import write_outputs_atomically

    tm = Timings()
    c0 = time.process_time()
    findings = measure(ct, masks, cmap, timings=tm)
    t0 = time.perf_counter()
    text = findings.to_json() + "\n"
    write_outputs_atomically(out_root / "out", {"findings.json": text}, force=True)
    w = time.perf_counter() - t0
    s = dict(tm.seconds)
    s["write"] = w
    s["total"] = sum(s[k] for k in ("load_ct", "load_masks", "measure", "write"))
    s["cpu"] = time.process_time() - c0  # CPU time of this process: robust to other load on a shared host
    return s, findings


def _top(pr: cProfile.Profile, top: int) -> dict:
    out = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        out[key] = [ln.rstrip() for ln in buf.getvalue().splitlines() if ln.strip()]
    return out


def profile_stages(ct: Path, masks: Path, cmap: Path | None, top: int = 15) -> dict:
    """cProfile of the measure stage (build_findings), and of load_masks, top functions."""
    from perception.findings import Settings, build_findings
    from perception.io import load_ct
    from perception.masks import load_masks

    c = load_ct(ct)
    pr_l = cProfile.Profile()
    pr_l.enable()
    ls = load_masks(masks, c, cmap)
    pr_l.disable()
    pr_m = cProfile.Profile()
    pr_m.enable()
    build_findings(c, ls, Settings())
    pr_m.disable()
    return {"measure": _top(pr_m, top), "load_masks": _top(pr_l, top)}


def _med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (page cache, allocator)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached case")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-process", dest="process", action="store_false", help="skip the whole-process run")
    ap.add_argument("--formats", default="multilabel,atlas")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--scaling", action="store_true", help="the scaling table (lesions, mask files, slices) instead")
    ap.add_argument("--scaling-kinds", default="lesions,files,slices", help="rows of the scaling table to (re)measure")
    args = ap.parse_args(argv)

    folder, meta = get_case(args.rebuild)
    if args.scaling:
        run_scaling(folder, args.runs, args.out or SCALING_RESULTS, tuple(args.scaling_kinds.split(",")))
        return 0
    args.out = args.out or RESULTS
    t_imp = time.perf_counter()
    import agent.case  # noqa: F401  (import cost reported separately, not in the per-case time)
    import perception.findings  # noqa: F401
    t_imp = time.perf_counter() - t_imp

    results = {}
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=CACHE))
    try:
        for fmt in args.formats.split(","):
            ct, masks, cmap, mask_files = inputs(folder, fmt)
            floors, runs, findings = [], [], None
            for _ in range(args.warmup):
                io_floor(ct, mask_files)
                one_run(ct, masks, cmap, work)
            for _ in range(args.runs):
                floors.append(io_floor(ct, mask_files))
                s, findings = one_run(ct, masks, cmap, work)
                runs.append(s)
            inflate = [inflate_floor(ct, mask_files) for _ in range(args.runs)]
            process = floor_process = cli = None
            if args.process:
                pruns = [process_run(ct, masks, cmap, work) for _ in range(args.runs)]
                cruns = [cli_run(ct, masks, cmap, work) for _ in range(args.runs)]
                fruns = [floor_process_run(ct, mask_files) for _ in range(args.runs)]
                process, cli, floor_process = _median_runs(pruns), _median_runs(cruns), _median_runs(fruns)
                process["runs"], cli["runs"], floor_process["runs"] = pruns, cruns, fruns
            les = [{"id": l.id, "organ": l.organ, "kind": l.kind, "voxels": l.voxel_count, "volume_ml": l.volume_ml,
                        "long_axis_mm": l.long_axis_mm, "max_diameter_3d_mm": l.max_diameter_3d_mm, "mean_hu": l.mean_hu}
                   for l in findings.lesions]
            med = {k: round(_med(runs, k), 3) for k in ("load_ct", "load_masks", "measure", "write", "total", "cpu")}
            floor = {k: round(_med(floors, k), 3) for k in ("read_ct", "read_masks", "total", "cpu")}
            best = {k: round(min(r[k] for r in runs), 3) for k in ("load_ct", "load_masks", "measure", "write", "total")}
            io_s = med["load_ct"] + med["load_masks"] + med["write"]
            res = {
                "mask_files": len(mask_files), "median_s": med, "io_floor_s": floor, "min_s": best,
                "inflate_floor_s": {k: (round(_med(inflate, k), 3) if k != "decompressor" else inflate[0][k])
                                 for k in ("read_ct", "read_masks", "total", "cpu", "decompressor")},
                "process_s": process, "cli_analyze_s": cli, "floor_process_s": floor_process,
                "targets": _targets(fmt, cli, floor_process),
                "io_floor_min_s": round(min(f["total"] for f in floors), 3),
                "io_stage_share": round(io_s / med["total"], 3),  # (load_ct + load_masks + write) / total
                "io_floor_share": round(floor["total"] / med["total"], 3),  # pure read time / total
                "ratio_to_io_floor": round(med["total"] / floor["total"], 2),
                "ratio_to_io_floor_cpu": round(med["cpu"] / floor["cpu"], 2),  # same ratio in CPU time
                "target_under_2s": med["total"] < 2.0, "target_within_2x_io_floor": med["total"] <= 2 * floor["total"],
                "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
                "io_floor_runs": [{k: round(v, 3) for k, v in r.items()} for r in floors],
                "organs": len(findings.organs), "lesions": les, "warnings": list(findings.study.warnings),
            }
            if not args.no_profile:
                res["profile"] = profile_stages(ct, masks, cmap)
            results[fmt] = res
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "benchmark": "eval/bench_findings.py", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu": _cpu_name(), "pinned_core": _CORE, "python": platform.python_version(), "numpy": np.__version__,
                     "nibabel": nib.__version__, "platform": platform.platform()},
        "case": meta, "runs": args.runs, "warmup_runs": args.warmup, "import_s": round(t_imp, 3),
        "note": ("io_floor: nibabel load of CT + all masks into numpy; inflate_floor: the fastest decompressor alone "
              "(ISA-L) over every file into one reused buffer; process_s: a fresh python measuring the case and "
              "writing findings.json (imports included); analyze stages from agent.case.Timings; "
              "write = findings.to_json + atomic write of findings.json; io_stage_share = (load_ct + load_masks + write) / total "
              "(load_masks includes building the cropped masks); io_floor_share = io floor / total; "
              "medians of the timed runs after the warm-up run(s); one core, BLAS/OpenMP threads = 1; cpu = process CPU "
              "time (user+sys), robust to other load on a shared host"),
        "results": results,
        "targets": _target_summary(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    _print(report)
    print("\ntargets (issue 17), measured:")
    for k, v in report["targets"].items():
        print(f"  {k}: {json.dumps(v)}")
    print(f"\nwrote {args.out}")
    return 0


# --- scaling table -------------------------------------------------------------------------------

SCALING_VERSION = 1
SCALING_RESULTS = REPO / "eval" / "results" / "bench_scaling.json"
LESION_COUNTS = (1, 5, 20, 50, 100)
FILE_COUNTS = (5, 25, 50, 100)
SLICE_COUNTS = (128, 300, 600)
_LESION_HOSTS = {"liver": 201, "spleen": 202, "kidney_right": 203, "kidney_left": 203}


def _lesion_free(seg: np.ndarray, label_of: dict[str, int]) -> np.ndarray:
    """The multilabel volume with every lesion voxel given back to the organ most of its shell belongs to."""
    from scipy import ndimage

    out = seg.copy()
    comps, _n = ndimage.label(seg >= min(LESION_LABELS))
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        sl = tuple(slice(max(0, a.start - 2), a.stop + 2) for a in sl)
        comp = comps[sl] == i
        shell = ndimage.binary_dilation(comp, iterations=2) & ~comp
        vals = seg[sl][shell]
        vals = vals[(vals > 0) & (vals < min(LESION_LABELS))]
        out[sl][comp] = np.bincount(vals).argmax() if vals.size else 0
    return out


def _with_lesions(seg: np.ndarray, base: np.ndarray, label_of: dict[str, int], aff: np.ndarray, n: int,
                  seed: int = 0) -> np.ndarray:
    """``base`` (lesion-free) with the case's own lesions kept up to ``n`` (``seg`` holds them), then more
    3-5 mm radius spheres inside liver, spleen and kidneys, >= 4 mm apart from every other lesion, up to ``n``."""
    from scipy import ndimage

    out = base.copy()
    comps, k = ndimage.label(seg >= min(LESION_LABELS))
    for i in range(1, min(n, k) + 1):
        out[comps == i] = seg[comps == i]
    placed = min(n, k)
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    rng = np.random.default_rng(seed)
    organ_vox = {o: np.argwhere(base[::4, ::4, ::4] == label_of[o]) * 4 for o in _LESION_HOSTS}
    tries = 0
    while placed < n:
        tries += 1
        if tries > 100 * n:
            raise RuntimeError(f"could not place {n} lesions")
        organ = list(_LESION_HOSTS)[placed % len(_LESION_HOSTS)]
        c = organ_vox[organ][rng.integers(len(organ_vox[organ]))]
        r_mm = rng.uniform(3.0, 5.0)
        half = np.ceil((r_mm + 4.0) / spacing).astype(int)
        lo, hi = np.maximum(c - half, 0), np.minimum(c + half + 1, out.shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        if (out[sl] >= min(LESION_LABELS)).any():
            continue  # too close to another lesion
        g = np.ogrid[tuple(slice(a - ci, b - ci) for a, b, ci in zip(lo, hi, c))]
        ball = sum((gi * si) ** 2 for gi, si in zip(g, spacing)) <= r_mm ** 2
        ball &= out[sl] == label_of[organ]
        if ball.sum() < 20:
            continue
        out[sl][ball] = _LESION_HOSTS[organ]
        placed += 1
    return out


def build_scaling(case: Path) -> Path:
    """Scaling cases from the bench case (cached in .cache/bench/scaling_v1): lesions_N (multilabel, N
    lesions), files_M (a TotalSegmentator-style folder: the first M of its 117 structure files, empty
    where the structure is not in the scan, + the 4 lesion files) and slices_S (multilabel, 5 lesions,
    CT and labels resampled to S slices over the same extent)."""
    from eval.synthetic import save_nifti
    from perception.registry import totalseg_class_maps

    root = CACHE / f"scaling_v{SCALING_VERSION}"
    if (root / "done").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    ml = case / "multilabel"
    ct_img, seg_img = nib.load(str(ml / "ct.nii.gz")), nib.load(str(ml / "seg.nii.gz"))
    aff, seg = seg_img.affine, np.asarray(seg_img.dataobj).astype(np.uint8)
    names = totalseg_class_maps()["total"]
    label_of = {v: int(k) for k, v in names.items()}
    base = _lesion_free(seg, label_of)
    for n in LESION_COUNTS:
        d = root / f"lesions_{n}"
        d.mkdir(parents=True)
        os.symlink(ml / "ct.nii.gz", d / "ct.nii.gz")
        shutil.copyfile(ml / "class_map.json", d / "class_map.json")
        save_nifti(_with_lesions(seg, base, label_of, aff, n), aff, d / "seg.nii.gz")
    order = [names[k] for k in sorted(names)]
    for m in FILE_COUNTS:
        d = root / f"files_{m}"
        (d / "segmentations").mkdir(parents=True)
        os.symlink(ml / "ct.nii.gz", d / "ct.nii.gz")
        for name in order[:m]:
            save_nifti((base == label_of[name]).astype(np.uint8), aff, d / "segmentations" / f"{name}.nii.gz")
        for lab, lname in LESION_LABELS.items():
            save_nifti((seg == lab).astype(np.uint8), aff, d / "segmentations" / f"{lname}.nii.gz")
    hu = np.asarray(ct_img.dataobj)
    for s_ in SLICE_COUNTS:
        d = root / f"slices_{s_}"
        d.mkdir(parents=True)
        shutil.copyfile(ml / "class_map.json", d / "class_map.json")
        shape = (*SHAPE[:2], s_)
        a2 = resampled_affine(aff, seg.shape, shape)
        if s_ == SHAPE[2]:
            os.symlink(ml / "ct.nii.gz", d / "ct.nii.gz")
            os.symlink(ml / "seg.nii.gz", d / "seg.nii.gz")
            continue
        save_nifti(resample_nearest(hu, shape), a2, d / "ct.nii.gz")
        save_nifti(resample_nearest(seg, shape), a2, d / "seg.nii.gz")
    (root / "done").write_text("ok\n")
    return root


def run_scaling(case: Path, runs: int, out: Path, kinds: tuple[str, ...] = ("lesions", "files", "slices")) -> dict:
    """In-process (median of ``runs``, CPU), whole-process (one fresh python measuring, CPU) and
    ``radagent analyze`` (key images included, user CPU) time per scaling case; rows of kinds not
    rerun are kept from ``out``."""
    root = build_scaling(case)
    old = json.loads(out.read_text())["rows"] if out.exists() else []
    rows = [r for r in old if r["kind"] not in kinds]
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=CACHE))
    try:
        for kind, counts in (("lesions", LESION_COUNTS), ("files", FILE_COUNTS), ("slices", SLICE_COUNTS)):
            if kind not in kinds:
                continue
            for n in counts:
                d = root / f"{kind}_{n}"
                if kind == "files":
                    ct, masks, cmap = d / "ct.nii.gz", d, None
                    files = sorted((d / "segmentations").glob("*.nii.gz"))
                else:
                    ct, masks, cmap = d / "ct.nii.gz", d / "seg.nii.gz", d / "class_map.json"
                    files = [masks]
                one_run(ct, masks, cmap, work)  # warm-up (page cache)
                rs = [one_run(ct, masks, cmap, work) for _ in range(runs)]
                med = {k: round(statistics.median(r[0][k] for r in rs), 3)
                       for k in ("load_ct", "load_masks", "measure", "write", "total", "cpu")}
                f = rs[0][1]
                proc = process_run(ct, masks, cmap, work)
                cli = cli_run(ct, masks, cmap, work)
                row = {"kind": kind, "n": n, "mask_files": len(files),
                           "nonempty_mask_files": sum(1 for p in files if np.asanyarray(nib.load(str(p)).dataobj).any())
                           if kind == "files" else None,
                           "lesions": len(f.lesions), "organs": len(f.organs), "in_process_s": med, "process_s": proc,
                       "cli_analyze_s": cli}
                rows.append(row)
                print(f"{kind:8} {n:4d}: lesions {row['lesions']:3d} organs {row['organs']:3d} | in-process CPU "
                      f"{med['cpu']:6.2f} s (load_ct {med['load_ct']:.2f}, load_masks {med['load_masks']:.2f}, "
                      f"measure {med['measure']:.2f}) | whole process {proc['cpu']:6.2f} s CPU | radagent analyze "
                      f"{cli['user']:6.2f} s user CPU", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows.sort(key=lambda r: (("lesions", "files", "slices").index(r["kind"]), r["n"]))

    def cpu(kind, n, key="cli_analyze_s", field="user"):
        return next(r[key][field] for r in rows if r["kind"] == kind and r["n"] == n)

    ratio = round(cpu("lesions", 100) / cpu("lesions", 5), 2)
    ratio_measure = round(cpu("lesions", 100, "process_s", "cpu") / cpu("lesions", 5, "process_s", "cpu"), 2)
    report = {
        "benchmark": "eval/bench_findings.py --scaling", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu": _cpu_name(), "pinned_core": _CORE, "python": platform.python_version()}, "runs": runs,
        "note": ("CPU time (user+sys) of one core, not wall time: the host is shared by other work. in_process_s: "
              "medians over the runs after one warm-up, of analyze's stages; process_s: one fresh python importing "
              "radagent, measuring and writing findings.json; cli_analyze_s: `radagent analyze` (key images and "
              "findings.md too; user CPU; the target is judged on it; rows measured before it was added lack it). lesions_N: the bench case with N lesions (its own 5, "
              "then 3-5 mm spheres in liver/spleen/kidneys); files_M: the first M of TotalSegmentator's 117 "
              "structure files (empty where not in the scan) + 4 lesion files; slices_S: the bench case "
              "resampled to S slices (nearest), same extent."),
        "target_100_lesions_under_2x_5": {"ratio_radagent_analyze_user_cpu": ratio, "met": ratio < 2.0,
                                          "ratio_measure_process_cpu": ratio_measure},
        "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"100 lesions / 5 lesions, radagent analyze user CPU: {ratio:.2f}x (target < 2x: {'met' if ratio < 2 else 'NOT met'})")
    print(f"wrote {out}")
    return report


def _target_summary(results: dict) -> dict:
    """Every target of issue 17 with its measured figure: the whole-process ones from this run, the
    lesion scaling from eval/results/bench_scaling.json, the build rate from bench_dataset.json."""
    out = {f"{fmt}_whole_process": x.get("targets") for fmt, x in results.items()}
    if SCALING_RESULTS.exists():
        sc = json.loads(SCALING_RESULTS.read_text())
        out["100_lesions_under_2x_5"] = {**sc["target_100_lesions_under_2x_5"], "from": "eval/results/bench_scaling.json",
                                         "date": sc["date"]}
    ds_file = RESULTS.parent / "bench_dataset.json"
    if ds_file.exists():
        ds = json.loads(ds_file.read_text())
        runs = {r["workers"]: r for r in ds.get("sets", {}).get("full", {}).get("runs", [])}
        if 2 in runs:
            r = runs[2]
            cap = round(2 * 3600.0 / r["cpu_s_per_case_median"], 1) if r.get("cpu_s_per_case_median") else None
            out["dataset_build_full_2_workers"] = {
                "limit_cases_per_hour": 1500, "measured_cases_per_hour_wall": r["cases_per_hour"],
                "met_wall": r["cases_per_hour"] >= 1500, "cpu_s_per_case_median": r["cpu_s_per_case_median"],
                "two_free_cores_cases_per_hour": cap,
                "note": "wall rate on the shared 2-core host (load average before/after "
                        f"{r.get('loadavg_1min_before_after')}); two_free_cores = 2 x 3600 / median CPU s per case",
                "from": "eval/results/bench_dataset.json", "date": ds["date"]}
    return out


def _targets(fmt: str, process: dict | None, floor_process: dict | None) -> dict:
    """The issue's whole-process targets beside the measured figures, in user CPU time of the process
    (the host is shared: wall time measures the other engineers' load as much as this code)."""
    if process is None:
        return {}
    limit = {"multilabel": 2.0, "atlas": 3.5}.get(fmt)
    out = {"measure": "user CPU time of the whole process `radagent analyze CT --masks ... -o OUT` (python start, "
                      "imports, read, measure, key images, findings.json/.md)",
           "whole_process_user_cpu_s": process["user"]}
    if limit is not None:
        out["limit_s"] = limit
        out["met"] = process["user"] <= limit
    if fmt == "multilabel" and floor_process:
        ratio = round(process["user"] / floor_process["user"], 2)
        out["ratio_to_nibabel_read_process"] = ratio
        out["nibabel_read_process_user_cpu_s"] = floor_process["user"]
        out["ratio_limit"], out["ratio_met"] = 2.0, ratio <= 2.0
    return out


def _cpu_name() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _print(r: dict) -> None:
    c = r["case"]
    print(f"\ncase: {'x'.join(map(str, c['shape']))} int16 CT, spacing {c['spacing_mm']} mm, "
          f"{c['structures_multilabel']} structures (multilabel) / {c['structures_atlas']} + {c['lesion_files_atlas']} lesion files (atlas), "
          f"{len(c['lesions'])} lesions; {r['machine']['cpu']}, pinned to core {r['machine']['pinned_core']}; "
          f"median of {r['runs']} runs; imports {r['import_s']:.2f} s (not counted)")
    hdr = (f"{'format':11} {'files':>5} {'io floor':>9} {'load_ct':>8} {'load_msk':>8} {'measure':>8} {'write':>7} {'total':>7} "
           f"{'x floor':>7} {'io stg':>6} {'floor':>5}  target <2s / <=2x")
    print(hdr)
    print("-" * len(hdr))
    for fmt, x in r["results"].items():
        m, f = x["median_s"], x["io_floor_s"]
        print(f"{fmt:11} {x['mask_files'] + 1:5d} {f['total']:8.2f}s {m['load_ct']:7.2f}s {m['load_masks']:7.2f}s {m['measure']:7.2f}s "
              f"{m['write']:6.3f}s {m['total']:6.2f}s {x['ratio_to_io_floor']:6.2f}x {100 * x['io_stage_share']:5.0f}% {100 * x['io_floor_share']:4.0f}%  "
              f"{'yes' if x['target_under_2s'] else 'NO'} / {'yes' if x['target_within_2x_io_floor'] else 'NO'}")
        print(f"{'':11} io floor: CT {f['read_ct']:.2f} s + masks {f['read_masks']:.2f} s; fastest run {x['min_s']['total']:.2f} s "
              f"(load_ct {x['min_s']['load_ct']:.2f}, load_masks {x['min_s']['load_masks']:.2f}, measure {x['min_s']['measure']:.2f}), "
              f"fastest io floor {x['io_floor_min_s']:.2f} s")
        print(f"{'':11} CPU time (median): analyze+write {m['cpu']:.2f} s vs io floor {f['cpu']:.2f} s = {x['ratio_to_io_floor_cpu']:.2f}x "
              f"(wall/CPU {m['total'] / max(m['cpu'], 1e-9):.2f}: > 1 means other load on the host)")
        g = x["inflate_floor_s"]
        print(f"{'':11} floors: nibabel read {f['total']:.2f} s (CT {f['read_ct']:.2f} + masks {f['read_masks']:.2f}); "
              f"fastest decompressor ({g['decompressor']}) {g['total']:.2f} s (CT {g['read_ct']:.2f} + masks {g['read_masks']:.2f})")
        if x.get("process_s"):
            p = x["process_s"]
            print(f"{'':11} whole process (fresh python, imports, measure, write): {p['total']:.2f} s wall, {p['cpu']:.2f} s CPU "
                  f"({p['user']:.2f} s user) vs in-process total {m['total']:.2f} s")
            c = x["cli_analyze_s"]
            print(f"{'':11} radagent analyze (CLI, key images included): {c['total']:.2f} s wall, {c['user']:.2f} s user CPU")
            t = x.get("targets") or {}
            if "limit_s" in t:
                print(f"{'':11} target: whole process <= {t['limit_s']:.1f} s user CPU: {t['whole_process_user_cpu_s']:.2f} s "
                      f"({'met' if t['met'] else 'NOT met'})")
            if "ratio_limit" in t:
                print(f"{'':11} target: <= 2x a fresh python reading the inputs with nibabel ({t['nibabel_read_process_user_cpu_s']:.2f} s "
                      f"user): {t['ratio_to_nibabel_read_process']:.2f}x ({'met' if t['ratio_met'] else 'NOT met'})")
    print("(io stg: share of the total in load_ct + load_masks + write; floor: io floor / total)")
    for fmt, x in r["results"].items():
        for stage in ("measure", "load_masks"):
            if "profile" in x:
                print(f"\n{stage} profile ({fmt}), top 15 by own time (cumulative order in the JSON):")
                for ln in x["profile"][stage]["tottime"][3:]:
                    print("  " + ln)


if __name__ == "__main__":
    raise SystemExit(main())
