"""GPU smoke test of `radagent train unit` and UniT inference (no data needed: synthetic CT cases).

Makes three AbdomenAtlas-style cases (a synthetic abdomen: liver and spleen ellipsoids in soft
tissue, one hypoattenuating liver tumour each), trains the default-size UniT for a few steps on the
given device through the real loop (DataLoader workers, mixed precision, checkpoint, resume), then
segments one case with the checkpoint. Prints what ran; exits non-zero on failure.

    python scripts/unit_gpu_smoke.py --device cuda --out /tmp/unit-smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_cases(root: Path, n: int = 3, shape=(128, 128, 96), spacing=1.5) -> None:
    from eval.synthetic import ellipsoid, paint, write_case

    aff = np.diag([spacing, spacing, spacing, 1.0])
    rng = np.random.default_rng(0)
    c = np.array(shape) * spacing / 2
    for i in range(n):
        hu = rng.normal(40, 12, size=shape).astype(np.float32)
        body = ellipsoid(shape, aff, c, (85.0, 80.0, 200.0))
        hu[~body] = -1000
        liver = ellipsoid(shape, aff, c + np.array([-30.0, 5.0, 0.0]), (45.0, 40.0, 50.0))
        spleen = ellipsoid(shape, aff, c + np.array([45.0, 10.0, 0.0]), (20.0, 25.0, 30.0))
        hu = paint(hu, liver, 110, 10, seed=i)
        hu = paint(hu, spleen, 120, 10, seed=i + 10)
        les = ellipsoid(shape, aff, c + np.array([-30.0 + rng.uniform(-10, 10), 5.0, rng.uniform(-15, 15)]), (12.0, 10.0, 9.0)) & liver
        hu = paint(hu, les, 55, 8, seed=i + 20)
        write_case(root / f"case{i}", hu.astype(np.int16), aff, {"liver": liver, "spleen": spleen, "liver_tumor": les})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("/tmp/unit-smoke"))
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args(argv)
    from perception.io import load_ct
    from perception.segment.unit.config import UniTConfig
    from perception.segment.unit.infer import UniTSegmenter
    from perception.segment.unit.train import train_unit

    data = a.out / "data"
    make_cases(data)
    cfg = UniTConfig.from_dict({"model": {"organs": ["liver", "spleen"]},
                                "data": {"type_of_name": {"liver_tumor": "hypovascular"}},
                                "train": {"steps": a.steps // 2, "batch_size": 2, "num_workers": 2, "log_every": 5,
                                          "checkpoint_every": 5, "warmup_steps": 5, "lr": 3e-4}})
    t = time.perf_counter()
    r1 = train_unit(data, a.out / "run", cfg, device=a.device)
    cfg.train.steps = a.steps
    r2 = train_unit(data, a.out / "run", cfg, device=a.device, resume=True)
    assert r2.resumed_from == a.steps // 2 and r2.steps == a.steps, (r2.resumed_from, r2.steps)
    seg = UniTSegmenter(weights=r2.checkpoint, device=a.device)
    ct = load_ct(data / "case0" / "ct.nii.gz")
    ls = seg.segment(ct)
    rep = {"device": r2.device, "amp": r2.amp, "steps": r2.steps, "resumed_from": r2.resumed_from,
           "train_seconds": round(r1.seconds + r2.seconds, 1), "loss_first": r1.first_loss, "loss_last": r2.last_loss,
           "infer_seconds": {k: round(v, 2) for k, v in seg.last_result.seconds.items()},
           "instances": len(seg.last_result.instances),
           "liver_voxels": ls.masks["liver"].voxel_count, "total_seconds": round(time.perf_counter() - t, 1)}
    print(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
