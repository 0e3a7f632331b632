"""UniT benchmark: inference time and peak GPU memory on a 512x512x300 volume (random weights), and
training step time at the default patch size.

    python -m eval.bench_segment                      # full on a GPU, reduced on CPU
    python -m eval.bench_segment --device cpu --full  # the full sizes on CPU (slow: tens of minutes)

Inference runs the real path (`predict_ct`: model grid, sliding window with the config's patch size,
overlap and gaussian blending, post-processing into instances, LabelSet) on a synthetic CT of the
given shape whose voxels are already at the model spacing (1.5 mm), so no resampling is timed. A
training step is forward + loss (Hungarian matching included) + backward + AdamW step on a batch
of ``train.batch_size`` synthetic patches of ``data.patch_size`` with organs and tumour instances,
in the mixed precision the config asks for. Nothing here needs a GPU: on CPU the sizes are reduced
(volume 128x128x96, patch 64^3, batch 1) and the output says so.

Writes a JSON record: eval/results/bench_segment_<gpu>.json (e.g. _h100), _cpu_reduced.json, or --out.

`python -m eval.bench_segment totalseg [CT ...]`: seconds of each TotalSegmentator task of the default no-mask
analyze with random-weight models on the shared CTs (eval/results/bench_segment_totalseg_cpu.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

REDUCED_SHAPE = (128, 128, 96)
REDUCED_PATCH = (64, 64, 64)


def synthetic_ct(shape, spacing, seed=0):
    from perception.volume import CTVolume
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    small = rng.normal(size=tuple(max(4, s // 16) for s in shape)).astype(np.float32)
    body = ndimage.zoom(small, [s / n for s, n in zip(shape, small.shape)], order=1)[: shape[0], : shape[1], : shape[2]]
    hu = np.clip(40 + 80 * body + rng.normal(0, 15, size=shape).astype(np.float32), -1000, 1500).astype(np.int16)
    aff = np.diag([*spacing, 1.0])
    return CTVolume(hu=hu, affine=aff, source=f"synthetic {shape}", source_format="nifti")


def synthetic_batch(cfg, batch, patch, device, seed=0):
    import torch

    rng = np.random.default_rng(seed)
    O = len(cfg.model.organs)
    img = torch.rand(batch, 1, *patch, device=device)
    organ = torch.zeros(batch, 1, *patch, dtype=torch.long, device=device)
    tumor = torch.zeros_like(organ)
    instances = []
    grid = np.stack(np.meshgrid(*[np.arange(p) for p in patch], indexing="ij"), 0)
    for b in range(batch):
        inst = []
        for o in range(O):
            c = rng.uniform(0.25, 0.75, size=3) * np.array(patch)
            r = rng.uniform(0.12, 0.25) * min(patch)
            m = ((grid - c.reshape(3, 1, 1, 1)) ** 2).sum(0) <= r * r
            organ[b, 0][torch.from_numpy(m).to(device)] = o + 1
            if o < 2:
                t = ((grid - c.reshape(3, 1, 1, 1)) ** 2).sum(0) <= (r / 3) ** 2
                iid = len(inst) + 1
                tumor[b, 0][torch.from_numpy(t).to(device)] = iid
                inst.append((iid, o, int(rng.integers(len(cfg.model.tumor_types)))))
        instances.append(inst)
    return img, organ, tumor, instances


def bench_inference(model, cfg, shape, device, output_device, reps):
    import torch

    from perception.segment.unit.infer import predict_ct

    ct = synthetic_ct(shape, cfg.data.spacing_mm)
    warm = synthetic_ct(tuple(min(s, p * 2) for s, p in zip(shape, cfg.data.patch_size)), cfg.data.spacing_mm, seed=1)
    predict_ct(model, cfg, warm, device, "bench", output_device)  # cudnn autotune, allocator warm-up
    gpu = device.startswith("cuda")
    times, res = [], None
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(reps):
        t = time.perf_counter()
        res = predict_ct(model, cfg, ct, device, "bench", output_device)
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    step = [max(1, int(p * (1 - cfg.infer.overlap))) for p in cfg.data.patch_size]
    windows = int(np.prod([1 + max(0, int(np.ceil((s - p) / st))) for s, p, st in zip(shape, cfg.data.patch_size, step)]))
    out = {"shape": list(shape), "spacing_mm": list(cfg.data.spacing_mm), "patch_size": list(cfg.data.patch_size),
           "overlap": cfg.infer.overlap, "windows": windows, "sw_batch_size": cfg.infer.sw_batch_size,
           "output_device": output_device or device, "seconds": [round(t, 3) for t in times],
           "seconds_median": round(float(np.median(times)), 3), "stages_last_run_s": {k: round(v, 3) for k, v in res.seconds.items()},
           "instances_found_random_weights": len(res.instances)}
    if gpu:
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
        out["peak_gpu_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2 ** 30, 2)
    return out


def bench_training(cfg, device, batch, patch, steps, warmup):
    import torch

    from perception.segment.unit.losses import UniTLoss
    from perception.segment.unit.model import UniTModel
    from perception.segment.unit.train import amp_mode

    amp = amp_mode(cfg.train.amp, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    model = UniTModel(cfg.model).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    loss_fn = UniTLoss(cfg)
    x, organ, tumor, inst = synthetic_batch(cfg, batch, patch, device)
    gpu = device.startswith("cuda")
    times, parts = [], {}
    for i in range(warmup + steps):
        if gpu:
            torch.cuda.synchronize()
            if i == warmup:
                torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        with torch.autocast(device_type="cuda" if gpu else "cpu", dtype=dtype, enabled=dtype is not None):
            o = model(x, aux=cfg.train.aux_loss)
        loss, parts = loss_fn(o, organ, tumor, inst)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()
        if gpu:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    out = {"batch_size": batch, "patch_size": list(patch), "amp": amp, "aux_loss": cfg.train.aux_loss,
           "steps_timed": steps, "seconds_per_step": [round(t, 3) for t in times],
           "seconds_per_step_median": round(float(np.median(times)), 3), "last_loss_parts": parts}
    if gpu:
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description="UniT inference / training benchmark (random weights)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--config", type=Path, default=None, help="UniT config (default: the built-in one)")
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300], help="inference volume (voxels)")
    ap.add_argument("--full", action="store_true", help="full sizes even on CPU")
    ap.add_argument("--reps", type=int, default=2, help="timed inference repetitions")
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--output-device", default=None, help="where sliding-window maps are assembled (default: the device)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON record (default eval/results/bench_segment_<gpu or cpu_reduced>.json)")
    a = ap.parse_args(argv)

    import torch

    from perception.segment.base import select_device
    from perception.segment.unit.config import UniTConfig
    from perception.segment.unit.model import UniTModel, count_parameters

    device = select_device(a.device)
    cfg = UniTConfig.load(a.config) if a.config else UniTConfig()
    reduced = device == "cpu" and not a.full
    shape = tuple(a.shape)
    batch, patch, steps, warmup = cfg.train.batch_size, tuple(cfg.data.patch_size), a.train_steps, 2
    if reduced:
        shape = tuple(min(s, r) for s, r in zip(shape, REDUCED_SHAPE))
        cfg.data.patch_size = REDUCED_PATCH
        batch, patch, steps, warmup = 1, REDUCED_PATCH, min(steps, 2), 1
        a.reps = 1
        print(f"REDUCED benchmark (no GPU): inference on {shape} instead of {tuple(a.shape)}, training patch "
              f"{patch} batch 1, {steps} steps; figures are NOT comparable with the GPU ones. --full runs the full sizes.",
              flush=True)
    torch.manual_seed(0)
    model = UniTModel(cfg.model).to(device).eval()
    rec = {
        "benchmark": "UniT (perception.segment.unit), random weights", "reduced": reduced, "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "python": sys.version.split()[0],
        "parameters": count_parameters(model),
        "model": {k: v for k, v in cfg.to_dict()["model"].items() if k not in ("organs", "tumor_types")} | {
            "organs": len(cfg.model.organs), "tumor_types": len(cfg.model.tumor_types)},
        "amp": cfg.train.amp, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"device {rec['device_name']} ({device}); {rec['parameters']['total']:,} parameters", flush=True)
    rec["inference"] = bench_inference(model, cfg, shape, device, a.output_device, a.reps)
    inf = rec["inference"]
    print(f"inference {tuple(shape)}: {inf['seconds_median']:.2f} s ({inf['windows']} windows of {tuple(cfg.data.patch_size)})"
          + (f", peak GPU memory {inf['peak_gpu_memory_gib']} GiB" if "peak_gpu_memory_gib" in inf else ""), flush=True)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    rec["training"] = bench_training(cfg, device, batch, patch, steps, warmup)
    tr = rec["training"]
    print(f"training step (batch {batch}, patch {tuple(patch)}, amp {tr['amp']}): {tr['seconds_per_step_median']:.3f} s"
          + (f", peak GPU memory {tr['peak_gpu_memory_gib']} GiB" if "peak_gpu_memory_gib" in tr else ""), flush=True)
    if a.out is None:
        tag = "cpu_reduced" if reduced else "cpu"
        if device.startswith("cuda"):
            m = re.search(r"(H100|H200|B200|A100|A10G|L40S|L4|V100|T4|RTX ?\w+)", rec["device_name"])
            tag = (m.group(1) if m else "cuda").replace(" ", "").lower()
        a.out = Path("eval/results") / f"bench_segment_{tag}.json"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(a.out)
    return rec


# --- TotalSegmentator tasks (issue 14): `python -m eval.bench_segment totalseg [CT ...]` --------------------------

TOTALSEG_CTS = ("../shared/data/totalseg/example_ct_sm.nii.gz", "../shared/data/hcc048_portal_venous")


def bench_totalseg(argv: list[str]) -> dict:
    """Seconds of each TotalSegmentator task of the default no-mask analyze (total, then liver segments, liver
    lesions, kidney cysts, lung nodules where total found the organ) on CPU with random-weight models (tiny
    networks: the figures time TotalSegmentator's pipeline here, resampling, crops, nnU-Net's sliding window and
    export, not a real network's compute). One child process per CT (nnU-Net reads its paths once per process);
    eval/results/bench_segment_totalseg_cpu.json."""
    import resource
    import subprocess

    ap = argparse.ArgumentParser(prog="python -m eval.bench_segment totalseg")
    ap.add_argument("cts", nargs="*", default=list(TOTALSEG_CTS))
    ap.add_argument("--home", type=Path, default=Path(".cache/bench-totalseg-home"))
    ap.add_argument("--out", type=Path, default=Path("eval/results/bench_segment_totalseg_cpu.json"))
    a = ap.parse_args(argv)
    from perception.segment.totalseg_fake import ensure_fake_weights

    ensure_fake_weights(a.home / "nnunet" / "results", [297, 298, 570, 591, 789, 913])
    code = ("import json, sys, time; from agent import case; from perception.segment.request import SegmentRequest; "
            "t = time.perf_counter(); req = SegmentRequest.build(totalseg_home=sys.argv[2], allow_download=False, device='cpu'); "
            "c = case.analyze(sys.argv[1], segment=req, key_images=False); "
            "print(json.dumps({'seconds_total': round(time.perf_counter() - t, 2), 'shape': list(c.findings.study.shape), "
            "'spacing_mm': list(c.findings.study.spacing_mm), 'lesions': len(c.findings.lesions), "
            "'runs': [r.model_dump() for r in c.findings.segmentation.runs]}))")
    rec = {"benchmark": "TotalSegmentator tasks of the default no-mask analyze, random-weight models (features 4..32)",
           "device": "cpu", "machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "cases": []}
    for ct in a.cts:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run([sys.executable, "-c", code, ct, str(a.home.resolve())], capture_output=True, text=True,
                           check=False, timeout=3600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            raise SystemExit(f"{ct}: analyze failed:\n{r.stderr[-3000:]}")
        case = json.loads(r.stdout.strip().splitlines()[-1])
        case["ct"] = ct
        case["cpu_seconds_process"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1)
        for run in case["runs"]:
            run.pop("weights", None)
        rec["cases"].append(case)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(rec, indent=2) + "\n")  # after each CT: a run stopped later keeps what it measured
        print(ct, case["shape"], ", ".join(f"{x['task']} {x['status']} {x['seconds']:.1f} s" for x in case["runs"]),
              f"(whole analyze {case['seconds_total']:.1f} s, CPU {case['cpu_seconds_process']} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(a.out)
    return rec


if __name__ == "__main__":
    if sys.argv[1:2] == ["totalseg"]:
        bench_totalseg(sys.argv[2:])
    else:
        main()
