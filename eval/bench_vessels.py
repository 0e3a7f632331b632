"""Benchmark: cost of one vessel-contact measurement (perception.vessels.vessel_contact) on a
full-size grid.

The masks live on a 512 x 512 x 300 grid (0.78 x 0.78 x 1.5 mm) but are stored cropped, as
perception stores them; a call must stay local to them (a whole-volume distance transform alone
takes ~26 s on the dev machine). Two cases: a tumour abutting an aorta that runs cranio-caudally
(axial cross-sections) and one abutting a vein that runs across the slices (cross-sections
perpendicular to the vessel). ``full_size_grid_cases()`` builds them; tests/test_vessels.py checks
the measured values on the same cases, this script reports the time (target ~50 ms a call).

Run: ``python -m eval.bench_vessels [--runs 5]``. Prints one line per case and writes
``eval/results/bench_vessels.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from perception.mask import Mask, bbox_of
from perception.vessels import vessel_contact

RESULTS = Path("eval/results/bench_vessels.json")
SHAPE = (512, 512, 300)


def full_size_grid_cases() -> list[tuple[Mask, Mask, np.ndarray, str]]:
    """(lesion, vessel, affine, expected method) on a 512 x 512 x 300 grid, masks stored cropped."""
    affine = np.diag((0.78, 0.78, 1.5, 1.0))
    affine[:3, 3] = (-200.0, -200.0, -225.0)

    def cropped(name, lo, hi, inside):
        idx = np.indices(tuple(h - l for l, h in zip(lo, hi))).reshape(3, -1).T + np.array(lo)
        w = idx @ affine[:3, :3].T + affine[:3, 3]
        m = inside(w).reshape(tuple(h - l for l, h in zip(lo, hi)))
        bb = bbox_of(m)
        return Mask(name, SHAPE, tuple((a + l, b + l) for (a, b), l in zip(bb, lo)),
                    m[tuple(slice(a, b) for a, b in bb)])

    aorta = cropped("aorta", (220, 220, 0), (300, 300, 300), lambda w: w[:, 0] ** 2 + w[:, 1] ** 2 <= 144)
    tumour = cropped("lesion", (240, 220, 120), (330, 300, 180),
                     lambda w: (w[:, 0] - 33) ** 2 + w[:, 1] ** 2 + w[:, 2] ** 2 <= 400)
    vein = cropped("splenic", (100, 250, 130), (400, 320, 190),
                   lambda w: (w[:, 1] - 40) ** 2 + (w[:, 2] - 30) ** 2 <= 25)
    tumour2 = cropped("lesion2", (200, 250, 130), (300, 330, 200),
                      lambda w: (w[:, 0] + 10) ** 2 + (w[:, 1] - 55) ** 2 + (w[:, 2] - 30) ** 2 <= 225)
    return [(tumour, aorta, affine, "axial"), (tumour2, vein, affine, "perpendicular")]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed calls per case (one untimed warm-up first)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    cases = []
    for les, ves, affine, method in full_size_grid_cases():
        vc = vessel_contact(les, ves, affine)  # warm-up, and the values the times belong to
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            vessel_contact(les, ves, affine)
            times.append(time.perf_counter() - t0)
        rec = {"vessel": ves.name, "lesion": les.name, "method": vc.method, "expected_method": method,
               "max_angle_deg": vc.max_angle_deg, "contact_length_mm": vc.contact_length_mm,
               "category": str(vc.category.value), "seconds_median": round(statistics.median(times), 4),
               "seconds_min": round(min(times), 4), "runs": a.runs}
        print(f"{ves.name:8s} {vc.method}: {rec['seconds_median'] * 1000:.0f} ms median, "
              f"{rec['seconds_min'] * 1000:.0f} ms best of {a.runs} ({vc.max_angle_deg:.0f} deg, "
              f"{vc.contact_length_mm:.1f} mm)", flush=True)
        cases.append(rec)
    out = {"benchmark": "vessel_contact on a 512x512x300 grid, cropped masks", "grid": list(SHAPE),
           "python": sys.version.split()[0], "machine": platform.machine(), "numpy": np.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cases": cases}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(a.out)
    return out


if __name__ == "__main__":
    main()
