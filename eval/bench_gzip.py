"""Benchmark: NIfTI gzip inflate in perception.io.read_nifti, single- vs multi-member (bgzip-style).

Builds a 512 x 512 x 300 int16 CT by tiling TotalSegmentator's example CT
(``../shared/data/totalseg/example_ct_sm.nii.gz``), writes it as one gzip member and as 64 KiB
members (what ``bgzip`` writes), and times ``read_nifti`` on each (best of ``--runs``), next to
ISA-L's one-shot inflate of the single-member file (the reader before issue 11, which returned only
the first member of a multi-member file) and nibabel's own loader.

``--bomb DIR`` also writes two gzip bombs for measuring peak memory with ``/usr/bin/time -v``:
``bomb_declared.nii.gz`` (header declares 2048 x 2048 x 500 int16 = 4.2 GB; refused by the voxel
budget before inflating) and ``bomb_stream.nii.gz`` (header declares 64 MB, the stream inflates to
4.2 GB; only the declared bytes are inflated).

Run: ``python -m eval.bench_gzip [--runs 3] [--bomb DIR]``. Writes ``eval/results/bench_gzip.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import tempfile
import time
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from perception.io import raw_data, read_nifti

REPO = Path(__file__).resolve().parents[1]
SRC = REPO.parent / "shared" / "data" / "totalseg" / "example_ct_sm.nii.gz"
RESULTS = Path("eval/results/bench_gzip.json")
SHAPE = (512, 512, 300)


def ct_bytes() -> tuple[bytes, np.ndarray]:
    img = nib.load(str(SRC))
    a = np.asanyarray(img.dataobj).astype(np.int16)
    reps = [-(-s // t) for s, t in zip(SHAPE, a.shape)]
    big = np.tile(a, reps)[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    out = nib.Nifti1Image(big, img.affine)
    out.set_data_dtype(np.int16)
    return out.to_bytes(), big


def best(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def write_bombs(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    zeros = b"\x00" * (64 << 20)
    for name, shape, stream in (("bomb_declared", (2048, 2048, 500), 4_194_304_000),
                                ("bomb_stream", (1024, 1024, 32), 4_194_304_000)):
        hdr = nib.Nifti1Header()
        hdr.set_data_shape(shape)
        hdr.set_data_dtype(np.int16)
        hdr.set_zooms((0.8, 0.8, 1.0))
        co = zlib.compressobj(9, zlib.DEFLATED, 31)
        with open(d / f"{name}.nii.gz", "wb") as f:
            f.write(co.compress(hdr.binaryblock + b"\x00" * 4))
            f.writelines(co.compress(zeros) for _ in range(stream // len(zeros)))
            f.write(co.flush())
        print(f"{d / name}.nii.gz: {(d / f'{name}.nii.gz').stat().st_size / 1e6:.1f} MB compressed, "
              f"declares {shape} int16, inflates to {stream / 1e9:.1f} GB")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bomb", type=Path, default=None, help="also write gzip bombs into this folder")
    args = ap.parse_args(argv)
    raw, arr = ct_bytes()
    with tempfile.TemporaryDirectory() as td:
        single, multi = Path(td) / "single.nii.gz", Path(td) / "multi.nii.gz"
        single.write_bytes(gzip.compress(raw, 6))
        step = 64 << 10
        multi.write_bytes(b"".join(gzip.compress(raw[i:i + step], 6) for i in range(0, len(raw), step)))
        assert np.array_equal(raw_data(read_nifti(multi)), arr)
        assert np.array_equal(raw_data(read_nifti(single)), arr)
        from isal import isal_zlib

        res = {
            "shape": list(SHAPE), "dtype": "int16", "uncompressed_mb": round(len(raw) / 1e6, 1),
            "single_member_mb": round(single.stat().st_size / 1e6, 1),
            "multi_member_mb": round(multi.stat().st_size / 1e6, 1),
            "read_nifti_single_s": round(best(lambda: read_nifti(single), args.runs), 3),
            "read_nifti_multi_s": round(best(lambda: read_nifti(multi), args.runs), 3),
            "isal_oneshot_single_s (old reader's inflate)": round(
                best(lambda: isal_zlib.decompress(single.read_bytes(), wbits=31), args.runs), 3),
            "nibabel_single_s": round(best(lambda: np.asanyarray(nib.load(str(single)).dataobj), args.runs), 3),
            "nibabel_multi_s": round(best(lambda: np.asanyarray(nib.load(str(multi)).dataobj), args.runs), 3),
            "machine": platform.processor() or platform.machine(),
        }
    print(json.dumps(res, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    if args.bomb:
        write_bombs(args.bomb)
    return res


if __name__ == "__main__":
    main()
