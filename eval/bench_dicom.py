"""Benchmark: time to load a compressed DICOM series (perception.dicom.load_dicom_series).

The series is TotalSegmentator's example CT as DICOM (``../shared/data/totalseg/example_ct_dicom``:
512 x 512 x 20, JPEG 2000 lossless), decoded with pylibjpeg-openjpeg; ~0.7 s on the dev machine.
tests/test_dicom.py checks what the loader returns for it (geometry, HU, header facts); this script
reports how long it takes, cold (first load in the process) and warm.

Issue 17 asked whether slices can be decoded in parallel threads: that helps only where the decoder
releases the GIL. ``gil_probe`` measures it for each installed JPEG 2000 plugin of pydicom: a Python
thread counts loop iterations while the main thread decodes the series, against the same count
while the main thread sleeps (GIL free); a share near 1 means the decoder releases the GIL, near 0
that it holds it. The decode is also timed with 1 and 2 worker threads (wall and process CPU).
Measured (2026-12-02, 2-core shared host): pylibjpeg-openjpeg 2.6 and Pillow 13 both hold the GIL
(pylibjpeg-openjpeg's ``Decode`` is called without ``nogil`` and reads through Python callbacks;
Pillow runs its JPEG 2000 decoder, a ``pulls_fd`` decoder, without ``ImagingSectionEnter``), so
load_dicom_series decodes in one thread: threads would add overhead, not speed.

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


def _decode_all(files: list[Path], plugin: str, threads: int) -> list:
    from concurrent.futures import ThreadPoolExecutor

    from pydicom.pixels import pixel_array

    if threads == 1:
        return [pixel_array(f, decoding_plugin=plugin) for f in files]
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda f: pixel_array(f, decoding_plugin=plugin), files))


def gil_probe(files: list[Path], plugin: str) -> dict:
    """Share of a spinning Python thread's speed kept while ``plugin`` decodes ``files`` (vs sleeping)."""
    import threading

    def spin_rate(work) -> float:
        stop, count = threading.Event(), [0]

        def spin():
            n = 0
            while not stop.is_set():
                n += 1
            count[0] = n

        th = threading.Thread(target=spin)
        t0 = time.perf_counter()
        th.start()
        work()
        stop.set()
        th.join()
        return count[0] / (time.perf_counter() - t0)

    free = spin_rate(lambda: time.sleep(1.0))
    busy = spin_rate(lambda: _decode_all(files, plugin, 1))
    out = {"spin_share_while_decoding": round(busy / free, 3)}
    for threads in (1, 2):
        c0, t0 = time.process_time(), time.perf_counter()
        _decode_all(files, plugin, threads)
        out[f"threads_{threads}"] = {"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(time.process_time() - c0, 3)}
    return out


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
    files = sorted(p for p in a.series.iterdir() if p.is_file())
    probes = {}
    for plugin in ("pylibjpeg", "pillow"):
        try:
            probes[plugin] = gil_probe(files, plugin)
        except (RuntimeError, ValueError, ImportError) as exc:  # plugin missing or unable: say so
            probes[plugin] = {"error": " ".join(str(exc).split())[:200]}
        print(f"  {plugin}: {probes[plugin]}", flush=True)
    rec = {"benchmark": "load_dicom_series", "series": str(a.series), "shape": list(ct.shape),
           "transfer_syntax": ct.meta.get("transfer_syntax"), "import_s": round(t_import, 3),
           "cold_s": round(cold, 3), "warm_s_median": round(statistics.median(warm), 3) if warm else None,
           "runs": a.runs, "decoders": probes,
           "note": ("decoders: spin_share_while_decoding = a Python thread's loop rate while the plugin decodes the "
                    "series / its rate while the main thread sleeps (near 1: the decoder releases the GIL; near 0: it "
                    "holds it); threads_1/2: the series decoded by 1 or 2 worker threads, wall and process CPU"),
           "python": sys.version.split()[0], "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"{a.series.name} {tuple(ct.shape)} {rec['transfer_syntax']}: cold {cold:.2f} s, warm "
          f"{rec['warm_s_median']} s median of {a.runs} (import {t_import:.2f} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(a.out)
    return rec


if __name__ == "__main__":
    main()
