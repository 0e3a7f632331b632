"""Cost of deciding "done" by content on a resume: sha256 of every input file (no cache) vs the hash
cache (a stat per file; key size, mtime_ns, inode, ctime_ns), on N small cases (default 1,000 copies of
one synthetic example case: ct.nii.gz + 12-14 masks, every file a real copy with its own inode).

    .venv/bin/python -m eval.bench_resume [--cases 1000] [--threads 8]

Prints seconds for the whole set and per 1,000 cases; the hashes run in a thread pool like the
build's planning step (agent.dataset.build._plan)."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import shutil
import tempfile
import time
from pathlib import Path

from agent.dataset import CaseSpec, HashCache, input_hash
from eval.bench_dataset import make_synthetic_cases


def timed(specs: list[CaseSpec], cache: HashCache, threads: int) -> float:
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=threads) as tp:
        list(tp.map(lambda s: input_hash(s, cache), specs))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_resume_"))
    try:
        base = make_synthetic_cases(tmp / "base", 1)[0]
        src = tmp / "src"
        for i in range(args.cases):
            shutil.copytree(base, src / f"case_{i:05d}")
        specs = [CaseSpec(d.name, str(d / "ct.nii.gz"), str(d / "segmentations")) for d in sorted(src.iterdir())]
        nfiles = 1 + len(list((base / "segmentations").iterdir()))
        mb = sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) / 1e6
        cache_path = tmp / "hashes.json"
        c = HashCache(cache_path)
        full = timed(specs, c, args.threads)  # page cache warm (files just written): the hashing CPU cost
        c.save()
        t = time.perf_counter()
        c2 = HashCache(cache_path)
        load = time.perf_counter() - t
        cached = timed(specs, c2, args.threads)
        assert not c2.new, "a cached file was hashed again"
        k = 1000 / args.cases
        print(f"{args.cases} cases x {nfiles} files ({mb:.2f} MB per case), {args.threads} threads:")
        print(f"  sha256 of every file (no cache):   {full:.3f} s  ({full * k:.3f} s per 1,000 cases)")
        print(f"  cache (stat: size, mtime, ino, ctime): {cached + load:.3f} s  ({(cached + load) * k:.3f} s per 1,000 "
              f"cases; loading .hashes.json {load:.3f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
