"""Benchmark: time to load a compressed DICOM series (perception.dicom.load_dicom_series).

The series is TotalSegmentator's example CT as DICOM (``../shared/data/totalseg/example_ct_dicom``:
512 x 512 x 20, JPEG 2000 lossless), decoded with pylibjpeg-openjpeg; ~0.7 s on the dev machine.
tests/test_dicom.py checks what the loader returns for it (geometry, HU, header facts); this script
reports how long it takes, cold (first load in the process) and warm.

Run: ``python -m eval.bench_dicom [--runs 3] [--series FOLDER]``. Writes
``eval/results/bench_dicom.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO.parent / "shared" / "data" / "totalseg" / "example_ct_dicom"
RESULTS = Path("eval/results/bench_dicom.json")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="warm loads after the cold one")
    ap.add_argument("--series", type=Path, default=SERIES)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if not a.series.is_dir():
        ap.error(f"series folder not found: {a.series} (the shared data, see ../shared/data/README.md)")
    t0 = time.perf_counter()
    from perception.dicom import load_dicom_series
    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    ct = load_dicom_series(a.series)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        load_dicom_series(a.series)
        warm.append(time.perf_counter() - t0)
    rec = {"benchmark": "load_dicom_series", "series": str(a.series), "shape": list(ct.shape),
           "transfer_syntax": ct.meta.get("transfer_syntax"), "import_s": round(t_import, 3),
           "cold_s": round(cold, 3), "warm_s_median": round(statistics.median(warm), 3) if warm else None,
           "runs": a.runs, "python": sys.version.split()[0], "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"{a.series.name} {tuple(ct.shape)} {rec['transfer_syntax']}: cold {cold:.2f} s, warm "
          f"{rec['warm_s_median']} s median of {a.runs} (import {t_import:.2f} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(a.out)
    return rec


if __name__ == "__main__":
    main()
