"""Benchmark of `radagent dataset build` (local engine): cases per hour with N = 1, 2 workers, the
per-stage time shares, and a projection to 10,000 CTs on a GPU cluster.

Two case sets, both real CT with synthetic lesions of known geometry (eval.synthetic):

- ``small``: TotalSegmentator's example upper-abdomen CT at its native 3 mm (122 x 101 x 30) with
  12 organ/vessel masks of its ``total`` segmentation; every case gets its own random lesion set
  (0-3 lesions in liver / spleen / kidneys / pancreas, 4-12 mm radius, hypo/iso/hyper HU), so every
  case has different bytes and different findings. ``make_synthetic_cases`` also builds the test
  cases of tests/test_dataset.py.
- ``full``: the realistic-size case of eval/bench_findings.py (the same CT and labels resampled to
  512 x 512 x 300, 25 AbdomenAtlas-named masks, 5 lesions), replicated under many case ids by
  symlinks (cheap to make; every case is still hashed and analysed in full: a new case is hashed by
  its worker, from the page cache here, so first-read disk time is reported separately).

Per configuration the build runs in-process (build_dataset) into a fresh OUT; wall time covers
planning, the pool start, all cases and the final dataset.parquet/card. Stage shares are sums of the
per-case stage timings the workers record (seconds of work, not wall time).

Run: ``python -m eval.bench_dataset [--small 200] [--full 40] [--workers 1 2]``.
Writes ``eval/results/bench_dataset.json`` and prints the projection.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "eval" / "results" / "bench_dataset.json"

STRUCTURES = ["liver", "spleen", "pancreas", "kidney_left", "kidney_right", "gallbladder", "stomach", "aorta",
              "inferior_vena_cava", "portal_vein_and_splenic_vein", "adrenal_gland_left", "adrenal_gland_right"]
LESION_MASK = {"liver": "liver_lesion", "spleen": "spleen_lesion", "kidney_left": "kidney_lesion",
               "kidney_right": "kidney_lesion", "pancreas": "pancreatic_lesion"}


# ------------------------------------------------------------------------------------------------
# case generation


def _base():
    from perception.registry import totalseg_class_maps

    ct_img = nib.load(str(DATA / "totalseg" / "example_ct_sm.nii.gz"))
    seg = np.asanyarray(nib.load(str(DATA / "totalseg" / "example_seg.nii.gz")).dataobj)
    names = totalseg_class_maps()["total"]
    masks = {names[int(v)]: seg == v for v in np.unique(seg) if v and names[int(v)] in STRUCTURES}
    return np.asanyarray(ct_img.dataobj).copy(), ct_img.affine, masks


def make_synthetic_cases(root: Path, n: int, seed: int = 0, prefix: str = "case") -> list[Path]:
    """n AbdomenAtlas case folders (ct.nii.gz + segmentations/) from the real example CT, each with its
    own random lesions. Deterministic for a seed. About 0.1 s per case."""
    from scipy import ndimage

    from eval.synthetic import ellipsoid, paint, write_case

    hu0, aff, masks = _base()
    cores = {o: np.argwhere(ndimage.binary_erosion(masks[o], iterations=2)) for o in LESION_MASK}
    means = {o: float(hu0[masks[o]].mean()) for o in LESION_MASK}
    out = []
    for i in range(n):
        rng = np.random.default_rng(seed * 100_003 + i)
        hu = hu0.copy()
        lesion_masks: dict[str, np.ndarray] = {}
        for j in range(int(rng.integers(0, 4))):
            organ = str(rng.choice(list(LESION_MASK)))
            ijk = cores[organ][int(rng.integers(len(cores[organ])))]
            center = aff[:3, :3] @ ijk + aff[:3, 3]
            r = float(rng.uniform(4.0, 12.0))
            t = np.deg2rad(rng.uniform(0, 180))
            rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])
            m = ellipsoid(hu.shape, aff, center, (r, r * rng.uniform(0.6, 1.0), r * rng.uniform(0.5, 0.9)), rotation=rot)
            m &= masks[organ]
            if m.sum() < 3:
                continue
            hu = paint(hu, m, means[organ] + float(rng.choice([-45.0, 0.0, 55.0])), 5.0, seed=int(rng.integers(1 << 30)))
            name = LESION_MASK[organ]
            lesion_masks[name] = lesion_masks[name] | m if name in lesion_masks else m
        out.append(write_case(root / f"{prefix}_{i:04d}", hu, aff, {**masks, **lesion_masks}))
    return out


def corrupt_case(folder: Path) -> Path:
    """Truncate ct.nii.gz to half its bytes (a download cut short)."""
    p = folder / "ct.nii.gz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return folder


def mismatch_case(folder: Path) -> Path:
    """Replace the liver mask by one on a grid with one slice fewer (a mask from another series)."""
    p = folder / "segmentations" / "liver.nii.gz"
    img = nib.load(str(p))
    arr = np.asanyarray(img.dataobj)[:, :, :-1].copy()
    nib.save(nib.Nifti1Image(arr, img.affine), str(p))
    return folder


def replicate(base: Path, root: Path, n: int, prefix: str = "full") -> list[Path]:
    """n case folders whose ct.nii.gz and segmentations/ are symlinks to base's."""
    out = []
    for i in range(n):
        d = root / f"{prefix}_{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "ct.nii.gz").symlink_to(base / "ct.nii.gz")
        (d / "segmentations").symlink_to(base / "segmentations", target_is_directory=True)
        out.append(d)
    return out


def full_size_case() -> Path:
    """The 512 x 512 x 300 AbdomenAtlas case of eval.bench_findings (built once into .cache/bench).
    Built in a subprocess: importing eval.bench_findings pins its process to one core."""
    code = "from eval.bench_findings import get_case; f, _ = get_case(); print(f)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return Path(r.stdout.strip().splitlines()[-1]) / "atlas"


# ------------------------------------------------------------------------------------------------
# measuring


class _Collect:
    def __init__(self) -> None:
        self.outcomes = []

    def planned(self, *a) -> None:
        pass

    def case_finished(self, o) -> None:
        self.outcomes.append(o)


def run_build(source: Path, out: Path, workers: int) -> dict:
    from agent.dataset import BuildOptions, build_dataset

    if out.exists():
        shutil.rmtree(out)
    col = _Collect()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    s = build_dataset(source, out, BuildOptions(engine="local", workers=workers), observer=col)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    stages: dict[str, float] = {}
    for o in col.outcomes:
        for k, v in o.timings.items():
            stages[k] = stages.get(k, 0.0) + v
    work = sum(stages.values())
    done = [o for o in col.outcomes if o.status == "done"]
    bad = [o for o in col.outcomes if o.status != "done"]
    if bad:  # every bench case is valid: a failure means the code under test is broken
        raise SystemExit(f"bench: {len(bad)} case(s) failed, e.g. {bad[0].case_id} at {bad[0].stage}: "
                         f"{bad[0].error_type}: {bad[0].message}")
    per_case = [sum(o.timings.values()) for o in done]
    cpu = [o.cpu_seconds for o in done]
    return {
        "workers": workers, "cases": s.total, "done": s.done, "failed": s.failed, "wall_s": round(wall, 2),
        "cases_per_hour": round(s.total / wall * 3600.0, 1),
        "work_s_per_case_median": round(float(np.median(per_case)), 3) if per_case else None,
        "cpu_s_per_case_median": round(float(np.median(cpu)), 3) if cpu else None,
        "stage_seconds": {k: round(v, 2) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
        "stage_share": {k: round(v / work, 4) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])} if work else {},
        "overhead_share_of_wall": round(max(0.0, 1 - work / (wall * workers)), 4),
        "loadavg_1min_before_after": [round(load0, 2), round(load1, 2)],
    }


def projection(cpu_s_per_case: float, n_cases: int = 10_000, gpus: int = 8, cpu_cores: int = 64,
               seg_s_range=(30.0, 60.0), llm_gpu_s_per_report: float = 0.25, llm_gpus: int = 1,
               read_gb_per_case: float = 0.15, storage_gb_s: float = 1.0) -> dict:
    """Wall time of a streamed Ray pipeline = its slowest stage (stages overlap)."""
    seg_h = [n_cases * s / gpus / 3600.0 for s in seg_s_range]
    cpu_h = n_cases * cpu_s_per_case / cpu_cores / 3600.0
    llm_h = n_cases * llm_gpu_s_per_report / llm_gpus / 3600.0
    io_h = n_cases * read_gb_per_case / storage_gb_s / 3600.0
    return {
        "n_cases": n_cases,
        "cluster": f"{gpus} GPUs for segmentation + {llm_gpus} GPU for the vLLM narrative server + {cpu_cores} CPU cores",
        "assumptions": {
            "segmentation_s_per_case_per_gpu": list(seg_s_range),
            "segmentation_source": "PLACEHOLDER: TotalSegmentator 'total' on one GPU, order of magnitude of its "
                                   "published GPU run times (30-60 s per abdominal CT incl. pre/post-processing); "
                                   "replace by the segmentation issue's measurement",
            "cpu_s_per_case": round(cpu_s_per_case, 2),
            "cpu_source": "measured here: median CPU time (time.process_time, robust to other load on this shared "
                          "VM) of one 512x512x300 case with 1 worker (load, masks, measure, key images, template "
                          "report, write) + hashing its inputs uncached (page cache); assumes cluster cores as fast as "
                          "this VM's",
            "llm_gpu_s_per_report": llm_gpu_s_per_report,
            "llm_source": "ASSUMPTION: ~500 output tokens per grounded narrative (x1.3 for re-asks) at ~2,500 output "
                          "tokens/s aggregate for a 7-8B model on one H100 with vLLM batching; not measured here",
            "io": f"{read_gb_per_case} GB read per case (CT + masks) at {storage_gb_s} GB/s shared storage",
            "pipelining": "Ray Data streams cases through the stages, so wall time ~ the slowest stage",
        },
        "stage_hours": {"segmentation": [round(h, 1) for h in seg_h], "cpu": round(cpu_h, 2), "llm": round(llm_h, 2),
                        "io": round(io_h, 2)},
        "wall_hours": [round(max(h, cpu_h, llm_h, io_h), 1) for h in seg_h],
        "bottleneck": "segmentation" if min(seg_h) >= max(cpu_h, llm_h, io_h) else "other",
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=200, help="cases of the small set (0: skip)")
    ap.add_argument("--full", type=int, default=40, help="cases of the 512x512x300 set (0: skip)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args(argv)
    if not (DATA / "totalseg" / "example_ct_sm.nii.gz").exists():
        sys.exit(f"bench: real data not found under {DATA} (expected ../shared/data next to the repository)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    res: dict = {"benchmark": "eval/bench_dataset.py", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform(), "numpy": np.__version__},
                 "sets": {}}
    try:
        if args.small:
            t = time.perf_counter()
            src = tmp / "small"
            make_synthetic_cases(src, args.small, seed=1)
            res["sets"]["small"] = {"description": "native 122x101x30 example CT, 3 mm, 12 masks, 0-3 random lesions "
                                                   "per case, every case distinct", "cases": args.small,
                                    "build_cases_s": round(time.perf_counter() - t, 1),
                                    "runs": [run_build(src, tmp / f"out_small_{w}", w) for w in args.workers]}
            _print_set("small", res["sets"]["small"])
        if args.full:
            base = full_size_case()
            src = tmp / "full"
            replicate(base, src, args.full)
            from agent.dataset import CaseSpec, HashCache, input_hash

            spec = CaseSpec("x", str(base / "ct.nii.gz"), str(base / "segmentations"))
            hash_s = []
            for _ in range(2):  # first: maybe cold files (disk read + hash); second: page cache (hash CPU)
                t = time.perf_counter()
                input_hash(spec, HashCache())
                hash_s.append(time.perf_counter() - t)
            res["sets"]["full"] = {"description": "512x512x300 resampled example CT (eval/bench_findings.py case), "
                                                  "25 AbdomenAtlas masks, 5 lesions, replicated by symlinks",
                                   "cases": args.full, "uncached_hash_s_per_case": {"first_read": round(hash_s[0], 3),
                                                                                    "page_cache": round(hash_s[1], 3)},
                                   "input_mb_per_case": round(sum(p.stat().st_size for p in base.rglob("*.nii.gz")) / 1e6, 1),
                                   "runs": [run_build(src, tmp / f"out_full_{w}", w) for w in args.workers]}
            _print_set("full", res["sets"]["full"])
            one = next(r for r in res["sets"]["full"]["runs"] if r["workers"] == min(args.workers))
            cpu = one["cpu_s_per_case_median"] + hash_s[1]
            res["projection_10k"] = projection(cpu)
            _print_projection(res["projection_10k"])
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")


def _print_set(name: str, s: dict) -> None:
    print(f"\n[{name}] {s['description']}: {s['cases']} cases")
    for r in s["runs"]:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in r["stage_share"].items())
        print(f"  N={r['workers']}: {r['cases_per_hour']:,.0f} cases/h (wall {r['wall_s']} s, {r['done']} done, "
              f"{r['failed']} failed; median per case: {r['work_s_per_case_median']} s wall, {r['cpu_s_per_case_median']} s "
              f"CPU; load avg {r['loadavg_1min_before_after']}); stages: {shares}")


def _print_projection(p: dict) -> None:
    a = p["assumptions"]
    print(f"\nprojection to {p['n_cases']:,} CTs on {p['cluster']}:")
    print(f"  segmentation {a['segmentation_s_per_case_per_gpu']} s/case/GPU (placeholder) -> "
          f"{p['stage_hours']['segmentation']} h; CPU stages {a['cpu_s_per_case']} s/case -> {p['stage_hours']['cpu']} h; "
          f"LLM {a['llm_gpu_s_per_report']} GPU-s/report (assumed) -> {p['stage_hours']['llm']} h; I/O {p['stage_hours']['io']} h")
    print(f"  wall ~ {p['wall_hours'][0]}-{p['wall_hours'][1]} h (streamed; bottleneck: {p['bottleneck']})")


if __name__ == "__main__":
    main()
