"""The UniT-style model: one query-based mask transformer for organs, tumour instances and tumour types.

After "Towards a Single Unified Model for Effective Detection, Segmentation, and Diagnosis of Eight
Major Cancers Using a Large Collection of CT Scans" (UniT), built from MONAI parts:

    CT patch (B, 1, X, Y, Z), HU windowed to [0, 1]
      -> encoder: MONAI SegResNet encoder (strides 1..8) or SwinUNETR encoder (strides 1..32)
      -> pixel decoder (FPN): per-voxel mask features (mask_dim, stride 1) and d_model memories at
         the strides in model.memory_strides
      -> transformer decoder (Mask2Former-style layers: masked cross-attention, self-attention, FFN),
         three query groups:
           organ queries       1 background + 1 per organ; organ masks = softmax over them
           detection queries   K per organ; each cross-attends only inside its organ's predicted
                               mask (dilated); gives an instance mask and an existence score
           diagnosis queries   one per detection query; self-attention lets it read only its
                               detection query and its organ query, cross-attention only inside its
                               detection's predicted mask; gives tumour type logits
      -> outputs (``UniTOutput``): organ_logits (B, 1+O, ...), tumor_logits (B, O*K, ...),
         exist_logits (B, O*K), type_logits (B, O*K, T), and aux (the same per decoder layer).

Axis contract: spatial axes are the model grid's (RAS-oriented, ``data.spacing_mm``), in the order
of the tensor; nothing here knows about world coordinates.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .config import ModelConfig, UniTConfig

CHECKPOINT_FORMAT = "radagent-unit/1"


# --- encoders -------------------------------------------------------------------------------------

class SegResNetEncoder(nn.Module):
    """The encoder half of MONAI's SegResNet: features at strides 1, 2, 4, 8 (widths w, 2w, 4w, 8w)."""

    def __init__(self, in_channels: int, width: int, blocks: tuple[int, ...]):
        super().__init__()
        from monai.networks.nets import SegResNet

        net = SegResNet(spatial_dims=3, init_filters=width, in_channels=in_channels, out_channels=1,
                        blocks_down=tuple(blocks), blocks_up=(1,) * (len(blocks) - 1), use_conv_final=False,
                        norm=("GROUP", {"num_groups": math.gcd(8, width)}))
        self.conv_init = net.convInit
        self.down_layers = net.down_layers
        self.channels = [width * 2 ** i for i in range(len(blocks))]
        self.strides = [2 ** i for i in range(len(blocks))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv_init(x)
        feats = []
        for down in self.down_layers:
            x = down(x)
            feats.append(x)
        return feats


class SwinUNETREncoder(nn.Module):
    """The encoder half of MONAI's SwinUNETR: Swin transformer stages + UNETR residual blocks,
    strides 1..32 (widths w, w, 2w, 4w, 8w, 16w)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        from monai.networks.nets import SwinUNETR

        net = SwinUNETR(in_channels=in_channels, out_channels=1, feature_size=width, spatial_dims=3)
        self.swin = net.swinViT
        self.normalize = net.normalize
        self.enc0, self.enc1, self.enc2, self.enc3, self.enc5 = net.encoder1, net.encoder2, net.encoder3, net.encoder4, net.encoder10
        self.channels = [width, width, 2 * width, 4 * width, 8 * width, 16 * width]
        self.strides = [1, 2, 4, 8, 16, 32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        hs = self.swin(x, self.normalize)
        return [self.enc0(x), self.enc1(hs[0]), self.enc2(hs[1]), self.enc3(hs[2]), hs[3], self.enc5(hs[4])]


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, ch), ch)


class PixelDecoder(nn.Module):
    """FPN from the coarsest encoder level to stride 1: d_model channels at strides >= 4, mask_dim below."""

    def __init__(self, channels: list[int], strides: list[int], d_model: int, mask_dim: int):
        super().__init__()
        self.strides = strides
        self.widths = [d_model if s >= 4 else mask_dim for s in strides]
        self.lateral = nn.ModuleList(nn.Conv3d(c, w, 1) for c, w in zip(channels, self.widths))
        self.out = nn.ModuleList(nn.Sequential(nn.Conv3d(w, w, 3, padding=1, bias=False), _norm(w), nn.ReLU(inplace=True))
                                 for w in self.widths)
        self.top_down = nn.ModuleList(
            nn.Identity() if self.widths[i + 1] == self.widths[i] else nn.Conv3d(self.widths[i + 1], self.widths[i], 1)
            for i in range(len(strides) - 1))
        self.mask_proj = nn.Conv3d(self.widths[0], mask_dim, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        outs: dict[int, torch.Tensor] = {}
        y = None
        for i in range(len(feats) - 1, -1, -1):
            lat = self.lateral[i](feats[i])
            if y is not None:
                up = F.interpolate(self.top_down[i](y), size=lat.shape[2:], mode="trilinear", align_corners=False)
                lat = lat + up
            y = self.out[i](lat)
            outs[self.strides[i]] = y
        return outs, self.mask_proj(y)


# --- transformer decoder ---------------------------------------------------------------------------

def sine_position_3d(shape: tuple[int, int, int], dim: int, device, dtype) -> torch.Tensor:
    """(X*Y*Z, dim) sine/cosine position code of a 3D grid (coordinates normalised to [0, 2*pi])."""
    return _sine_position_cpu(tuple(int(s) for s in shape), int(dim)).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _sine_position_cpu(shape: tuple[int, int, int], dim: int) -> torch.Tensor:
    device = "cpu"
    per = max(2, (dim // 3) // 2 * 2)
    freqs = 10000 ** (torch.arange(per // 2, device=device, dtype=torch.float32) * 2 / per)
    codes = []
    for n in shape:
        c = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n * 2 * math.pi
        a = c[:, None] / freqs[None]
        codes.append(torch.stack([a.sin(), a.cos()], -1).flatten(1))  # (n, per)
    gx, gy, gz = torch.meshgrid(*[torch.arange(n, device=device) for n in shape], indexing="ij")
    pos = torch.cat([codes[0][gx.flatten()], codes[1][gy.flatten()], codes[2][gz.flatten()]], 1)
    if pos.shape[1] < dim:
        pos = F.pad(pos, (0, dim - pos.shape[1]))
    return pos[:, :dim].contiguous()


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.cross = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, q, qpos, mem, mpos, cross_mask, self_mask):
        q = self.n1(q + self.cross(q + qpos, mem + mpos, mem, attn_mask=cross_mask, need_weights=False)[0])
        qq = q + qpos
        q = self.n2(q + self.self_attn(qq, qq, q, attn_mask=self_mask, need_weights=False)[0])
        return self.n3(q + self.ffn(q))


class MLP(nn.Sequential):
    def __init__(self, d_in: int, d_hidden: int, d_out: int, layers: int = 3):
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(d_in if i == 0 else d_hidden, d_out if i == layers - 1 else d_hidden))
            if i < layers - 1:
                mods.append(nn.ReLU(inplace=True))
        super().__init__(*mods)


@dataclass
class UniTOutput:
    organ_logits: torch.Tensor  # (B, 1 + O, X, Y, Z): background first
    tumor_logits: torch.Tensor  # (B, O*K, X, Y, Z): detection query j belongs to organ j // K
    exist_logits: torch.Tensor  # (B, O*K)
    type_logits: torch.Tensor  # (B, O*K, T): diagnosis query j reads detection query j
    aux: list["UniTOutput"] = field(default_factory=list)


class UniTModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        O, K, T, d = len(cfg.organs), cfg.queries_per_organ, len(cfg.tumor_types), cfg.d_model
        self.n_organs, self.k, self.n_types = O, K, T
        self.q_org, self.q_det = O + 1, O * K
        self.n_queries = self.q_org + 2 * self.q_det
        if cfg.encoder == "swinunetr":
            self.encoder = SwinUNETREncoder(cfg.in_channels, cfg.encoder_width)
        else:
            self.encoder = SegResNetEncoder(cfg.in_channels, cfg.encoder_width, cfg.encoder_blocks)
        self.pixel_decoder = PixelDecoder(self.encoder.channels, self.encoder.strides, d, cfg.mask_dim)
        self.memory_strides = list(cfg.memory_strides)
        self.level_embed = nn.Embedding(len(self.memory_strides), d)
        self.query_feat = nn.Embedding(self.n_queries, d)
        self.query_pos = nn.Embedding(self.n_queries, d)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.decoder_layers))
        self.out_norm = nn.LayerNorm(d)
        self.organ_embed = MLP(d, d, cfg.mask_dim)
        self.tumor_embed = MLP(d, d, cfg.mask_dim)
        self.exist_head = nn.Linear(d, 1)
        self.type_head = nn.Linear(d, T)
        self.register_buffer("self_mask", self._self_attention_mask(), persistent=False)
        self.register_buffer("det_organ", torch.arange(self.q_det) // K, persistent=False)

    # query index ranges
    @property
    def det_slice(self) -> slice:
        return slice(self.q_org, self.q_org + self.q_det)

    @property
    def diag_slice(self) -> slice:
        return slice(self.q_org + self.q_det, self.n_queries)

    def _self_attention_mask(self) -> torch.Tensor:
        """(Q, Q) bool, True = blocked. Organ and detection queries see each other, not diagnosis queries;
        diagnosis query j sees itself, detection query j and the organ query of its organ."""
        m = torch.zeros(self.n_queries, self.n_queries, dtype=torch.bool)
        diag = self.diag_slice
        m[: diag.start, diag] = True
        for j in range(self.q_det):
            row = diag.start + j
            m[row, :] = True
            m[row, row] = False
            m[row, self.q_org + j] = False
            m[row, 1 + j // self.k] = False
        return m

    def check_input(self, x: torch.Tensor) -> None:
        div = max(self.encoder.strides)
        if x.ndim != 5 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"UniT expects input (B, {self.cfg.in_channels}, X, Y, Z), found {tuple(x.shape)}")
        if any(s % div for s in x.shape[2:]):
            raise ValueError(f"UniT ({self.cfg.encoder}) expects spatial sizes divisible by {div}, found {tuple(x.shape[2:])}")

    def forward(self, x: torch.Tensor, aux: bool | None = None) -> UniTOutput:
        self.check_input(x)
        aux = self.training if aux is None else aux
        levels, mask_features = self.pixel_decoder(self.encoder(x))
        B = x.shape[0]
        mems, mposs, shapes = [], [], []
        for i, s in enumerate(self.memory_strides):
            f = levels[s]
            shapes.append(tuple(f.shape[2:]))
            mems.append(f.flatten(2).transpose(1, 2) + self.level_embed.weight[i][None, None])
            mposs.append(sine_position_3d(shapes[-1], f.shape[1], f.device, f.dtype)[None])
        q = self.query_feat.weight[None].expand(B, -1, -1)
        qpos = self.query_pos.weight[None].expand(B, -1, -1)
        outs = []
        pred, attn = self._predict(q, mask_features, shapes[0], full=aux)
        if aux:
            outs.append(pred)
        for i, layer in enumerate(self.layers):
            lv = i % len(self.memory_strides)
            q = layer(q, qpos, mems[lv], mposs[lv], attn, self.self_mask)
            last = i == len(self.layers) - 1
            nxt = shapes[(i + 1) % len(self.memory_strides)]
            pred, attn = self._predict(q, mask_features, nxt, full=aux or last, need_attn=not last)
            if aux or last:
                outs.append(pred)
        final = outs[-1]
        final.aux = outs[:-1] if aux else []
        return final

    def _predict(self, q, mask_features, level_shape, full: bool, need_attn: bool = True):
        qn = self.out_norm(q)
        org_e = self.organ_embed(qn[:, : self.q_org])
        det_e = self.tumor_embed(qn[:, self.det_slice])
        exist = self.exist_head(qn[:, self.det_slice]).squeeze(-1)
        types = self.type_head(qn[:, self.diag_slice])
        out = None
        if full:
            out = UniTOutput(torch.einsum("bqc,bcxyz->bqxyz", org_e, mask_features),
                             torch.einsum("bqc,bcxyz->bqxyz", det_e, mask_features), exist, types)
        attn = self._attention_mask(org_e, det_e, mask_features, level_shape) if need_attn else None
        return out, attn

    @torch.no_grad()
    def _attention_mask(self, org_e, det_e, mask_features, level_shape) -> torch.Tensor:
        """(B*heads, Q, S) bool, True = blocked, from the current predictions at the memory level's size."""
        mf = F.adaptive_avg_pool3d(mask_features, level_shape)
        p_org = torch.einsum("bqc,bcxyz->bqxyz", org_e, mf).float().softmax(1)
        allow_org = p_org >= 0.5
        region = allow_org[:, 1:].float()
        if self.cfg.organ_dilation > 0:
            k = 2 * self.cfg.organ_dilation + 1
            region = F.max_pool3d(region, k, stride=1, padding=self.cfg.organ_dilation)
        allow_det = region.bool().flatten(2)[:, self.det_organ]  # (B, O*K, S): inside its organ
        allow_diag = (torch.einsum("bqc,bcxyz->bqxyz", det_e, mf).float() >= 0).flatten(2)  # sigmoid >= 0.5
        empty = ~allow_diag.any(-1, keepdim=True)
        allow_diag = torch.where(empty, allow_det, allow_diag)  # no predicted tumour yet: its organ
        allow = torch.cat([allow_org.flatten(2), allow_det, allow_diag], 1)
        allow = allow | ~allow.any(-1, keepdim=True)  # a query with nothing to see sees everything
        return (~allow).repeat_interleave(self.cfg.heads, 0)

    @torch.no_grad()
    def predict_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Voxel maps for sliding-window inference: organ probabilities (B, 1+O), tumour probability per
        organ (B, O) = max over its detection queries of existence x mask probability, and tumour type
        probabilities (B, T) weighted by those detection probabilities."""
        out = self.forward(x, aux=False)
        organ = out.organ_logits.float().softmax(1)
        w = out.tumor_logits.float().sigmoid() * out.exist_logits.float().sigmoid()[..., None, None, None]
        B = w.shape[0]
        tumor = w.view(B, self.n_organs, self.k, *w.shape[2:]).amax(2)
        types = out.type_logits.float().softmax(-1)
        type_map = torch.einsum("bqxyz,bqt->btxyz", w, types) / (w.sum(1, keepdim=True) + 1e-6)
        return {"organ": organ, "tumor": tumor, "type": type_map}


def count_parameters(model: nn.Module) -> dict[str, int]:
    parts = {"encoder": model.encoder, "pixel_decoder": model.pixel_decoder, "transformer_decoder": model.layers}
    out = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
    out["total"] = sum(p.numel() for p in model.parameters())
    out["queries_and_heads"] = out["total"] - sum(out[k] for k in parts)
    return out


# --- checkpoints -------------------------------------------------------------------------------------

def save_checkpoint(path: Path, model: UniTModel, cfg: UniTConfig, **state: Any) -> Path:
    """Atomic save of {format, config, model, **state} (optimizer, scaler, step, history, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "model": model.state_dict(), **state}, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: UniT checkpoint not found (train one with `radagent train unit --data DIR`)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt / foreign files
        raise CheckpointError(f"{path}: not a readable UniT checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        found = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"{path}: expected a radagent UniT checkpoint (format {CHECKPOINT_FORMAT!r}), found {found!r}")
    return ck


def load_model(path: Path, device: str = "cpu") -> tuple[UniTModel, UniTConfig, dict]:
    """Model (eval mode, on device), its config and the checkpoint's other entries."""
    ck = read_checkpoint(path)
    cfg = UniTConfig.from_dict(ck["config"])
    model = UniTModel(cfg.model)
    missing, unexpected = model.load_state_dict(ck["model"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model its config describes "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.to(device).eval()
    return model, cfg, {k: v for k, v in ck.items() if k not in ("model", "config")}
