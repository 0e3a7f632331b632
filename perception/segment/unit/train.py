"""Training loop for UniT: AdamW with warm-up and polynomial decay, mixed precision on GPU, checkpoints
and resume.

``out_dir`` holds ``config.yaml`` (the config used), ``last.pt`` (every ``train.checkpoint_every``
steps and at the end: model, optimizer, scheduler, grad scaler, step, loss history), ``final.pt``
(the same at the end) and ``history.json``. Resume (the default) continues from ``last.pt`` when the
config's model section matches; the data stream is reseeded from (seed, step), so a resumed run does
not replay the same patches.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..common import select_device
from ..errors import CheckpointError
from .config import UniTConfig
from .data import PatchStream, collate, find_cases
from .losses import UniTLoss
from .model import UniTModel, count_parameters, read_checkpoint, save_checkpoint

log = logging.getLogger("radagent.segment.unit")


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    parameters: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"
    amp: str = "off"
    resumed_from: int | None = None

    @property
    def first_loss(self) -> float | None:
        return self.history[0]["loss"] if self.history else None

    @property
    def last_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None


def amp_mode(cfg_amp: str, device: str) -> str:
    if not device.startswith("cuda") or cfg_amp == "off":
        return "off"
    if cfg_amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return cfg_amp


def lr_lambda(cfg: UniTConfig) -> Callable[[int], float]:
    t = cfg.train

    def f(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / max(1, t.warmup_steps)
        frac = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
        return max(0.0, 1.0 - frac) ** 0.9

    return f


def train_unit(data_dir: str | Path, out_dir: str | Path, cfg: UniTConfig, device: str = "auto", resume: bool = True,
               progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Train (or continue training) a UniT model on the cases under ``data_dir``; write checkpoints to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = select_device(device)
    amp = amp_mode(cfg.train.amp, dev)
    t = cfg.train
    torch.manual_seed(t.seed)
    np.random.seed(t.seed % (2 ** 32))
    records = find_cases(data_dir)
    model = UniTModel(cfg.model).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    loss_fn = UniTLoss(cfg)
    step, history, resumed = 0, [], None
    last = out / "last.pt"
    if resume and last.exists():
        ck = read_checkpoint(last)
        if ck["config"]["model"] != cfg.to_dict()["model"]:
            raise CheckpointError(f"{last}: its model config differs from the one given; use another --out or --no-resume")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        step, history, resumed = int(ck["step"]), list(ck.get("history", [])), int(ck["step"])
        log.info("resuming from %s at step %d", last, step)
    cfg.dump(out / "config.yaml")
    params = count_parameters(model)
    log.info("UniT: %d cases, %s parameters, device %s, amp %s", len(records), f"{params['total']:,}", dev, amp)
    stream = PatchStream(records, cfg, seed=t.seed * 100_003 + step, synth=True,
                         patches_per_case=cfg.data.patches_per_case, cache_cases=cfg.data.cache_cases)
    workers = t.num_workers
    loader = torch.utils.data.DataLoader(stream, batch_size=t.batch_size, num_workers=workers, collate_fn=collate,
                                         pin_memory=dev.startswith("cuda"), persistent_workers=workers > 0)
    it = iter(loader)
    model.train()
    t0 = time.perf_counter()
    run_start = step
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def state() -> dict:
        return {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if amp == "fp16" else {}, "step": step, "history": history}

    while step < t.steps:
        if t.max_seconds is not None and time.perf_counter() - t0 > t.max_seconds:
            log.info("stopping at step %d: train.max_seconds %.0f reached", step, t.max_seconds)
            break
        batch = next(it)
        x = batch["image"].to(dev, non_blocking=True)
        organ = batch["organ"].to(dev, non_blocking=True)
        tumor = batch["tumor"].to(dev, non_blocking=True)
        with torch.autocast(device_type="cuda" if dev.startswith("cuda") else "cpu", dtype=dtype, enabled=dtype is not None):
            o = model(x, aux=t.aux_loss)
        loss, parts = loss_fn(o, organ, tumor, batch["instances"])
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"UniT training: loss is {loss_value} at step {step} (parts {parts}); lower train.lr")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if t.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        step += 1
        rec = {"step": step, "loss": round(loss_value, 5), **{k: round(v, 5) for k, v in parts.items()},
               "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 2)}
        history.append(rec)
        if progress is not None:
            progress(rec)
        if step % t.log_every == 0 or step == run_start + 1:
            log.info("step %d loss %.4f (organ %.3f, mask %.3f/%.3f, exist %.3f, type %.3f, matched %d)", step, rec["loss"],
                     parts["organ"], parts["mask_bce"], parts["mask_dice"], parts["exist"], parts["type"], parts["matched"])
        if step % t.checkpoint_every == 0:
            save_checkpoint(last, model, cfg, **state())
    save_checkpoint(last, model, cfg, **state())
    final = save_checkpoint(out / "final.pt", model, cfg, **state())
    (out / "history.json").write_text(json.dumps(history) + "\n")
    return TrainResult(out, final, step, time.perf_counter() - t0, history, params, dev, amp, resumed)
