"""UniT losses: Dice + CE for organ masks, Hungarian-matched Dice + BCE for tumour instances, CE for
existence and tumour type.

Targets per batch: ``organ`` (B, 1, X, Y, Z) class ids (0 background, i + 1 = model.organs[i]),
``tumor`` (B, 1, X, Y, Z) instance ids (0 none), and ``instances``: per sample a list of
``(instance id, organ index, type index or -1 when unknown)``. Tumour instances of organ i are
matched to organ i's K detection queries only (the hierarchy of UniT), one-to-one, by
``scipy.optimize.linear_sum_assignment`` on a cost of existence probability, BCE and Dice evaluated
on sampled voxels (all of the instances' voxels plus uniform ones). Unmatched queries learn
"no tumour" with weight ``train.no_object_weight``. Decoder layers' auxiliary outputs get the same
loss, each matched on its own.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .config import UniTConfig
from .model import UniTOutput

Instances = list[list[tuple[int, int, int]]]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    p = logits.sigmoid()
    return 1.0 - (2.0 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)


@torch.no_grad()
def match_cost(pred: torch.Tensor, gt: torch.Tensor, exist: torch.Tensor, w_bce: float, w_dice: float,
               w_exist: float) -> torch.Tensor:
    """(K, M) cost of assigning query k (mask logits ``pred`` (K, N), existence logit ``exist`` (K,)) to
    ground-truth instance m (``gt`` (M, N) in {0, 1})."""
    pred, gt = pred.float(), gt.float()
    n = pred.shape[1]
    c_bce = (F.softplus(-pred) @ gt.T + F.softplus(pred) @ (1 - gt).T) / n
    p = pred.sigmoid()
    c_dice = 1 - (2 * p @ gt.T + 1) / (p.sum(-1)[:, None] + gt.sum(-1)[None] + 1)
    return w_bce * c_bce + w_dice * c_dice - w_exist * exist.float().sigmoid()[:, None]


def hungarian(cost: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return rows, cols


class UniTLoss:
    def __init__(self, cfg: UniTConfig):
        from monai.losses import DiceCELoss

        self.cfg = cfg
        t = cfg.train
        self.k = cfg.model.queries_per_organ
        self.organ_loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                                     lambda_dice=t.w_organ_dice, lambda_ce=t.w_organ_ce)

    def __call__(self, out: UniTOutput, organ: torch.Tensor, tumor: torch.Tensor, instances: Instances,
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        total, parts = self._stage(out, organ, tumor, instances)
        for a in out.aux:
            total = total + self._stage(a, organ, tumor, instances)[0]
        return total, parts

    def _stage(self, o: UniTOutput, organ, tumor, instances: Instances) -> tuple[torch.Tensor, dict[str, float]]:
        t, K = self.cfg.train, self.k
        dev = o.tumor_logits.device
        l_organ = self.organ_loss(o.organ_logits.float(), organ.long())
        B, Qd = o.exist_logits.shape
        exist_t = torch.zeros(B, Qd, device=dev)
        exist_w = torch.full((B, Qd), float(t.no_object_weight), device=dev)
        bce, dice = [], []
        type_logits, type_t = [], []
        for b in range(B):
            by_organ: dict[int, list[tuple[int, int]]] = {}
            for iid, oi, ti in instances[b]:
                by_organ.setdefault(int(oi), []).append((int(iid), int(ti)))
            if not by_organ:
                continue
            tl = o.tumor_logits[b].flatten(1)
            ids = tumor[b, 0].flatten()
            n = ids.numel()
            for oi, lst in by_organ.items():
                gt = torch.stack([ids == iid for iid, _ in lst]).float()
                qs = slice(oi * K, (oi + 1) * K)
                pred = tl[qs]
                fg = torch.nonzero(gt.any(0)).flatten()
                if fg.numel() > t.match_points:
                    fg = fg[torch.randperm(fg.numel(), device=dev)[: t.match_points]]
                pts = torch.cat([fg, torch.randint(0, n, (min(t.match_points, n),), device=dev)])
                cost = match_cost(pred[:, pts], gt[:, pts], o.exist_logits[b, qs], t.w_mask_bce, t.w_mask_dice, t.w_exist)
                for r, c in zip(*hungarian(cost)):
                    bce.append(F.binary_cross_entropy_with_logits(pred[r].float(), gt[c]))
                    dice.append(dice_loss(pred[r].float(), gt[c]))
                    q = oi * K + int(r)
                    exist_t[b, q] = 1.0
                    exist_w[b, q] = 1.0
                    if lst[c][1] >= 0:
                        type_logits.append(o.type_logits[b, q])
                        type_t.append(lst[c][1])
        zero = o.exist_logits.sum() * 0.0
        l_bce = torch.stack(bce).mean() if bce else zero
        l_dice = torch.stack(dice).mean() if dice else zero
        l_exist = (F.binary_cross_entropy_with_logits(o.exist_logits.float(), exist_t, reduction="none") * exist_w).sum() / exist_w.sum()
        l_type = (F.cross_entropy(torch.stack(type_logits).float(), torch.tensor(type_t, device=dev))
                  if type_t else zero)
        total = l_organ + t.w_mask_bce * l_bce + t.w_mask_dice * l_dice + t.w_exist * l_exist + t.w_type * l_type
        parts = {"organ": float(l_organ.detach()), "mask_bce": float(l_bce.detach()), "mask_dice": float(l_dice.detach()),
                 "exist": float(l_exist.detach()), "type": float(l_type.detach()), "matched": len(bce)}
        return total, parts
