"""UniT configuration: one file (YAML or JSON) for model, data, synthetic tumours, training and inference.

Strict when reading: an unknown key is refused with the valid keys and a did-you-mean; values are
converted to the declared types (lists -> tuples) and checked (the error names the field). The
config travels inside every checkpoint, so a checkpoint alone rebuilds its model.

    radagent train unit --print-config > unit.yaml   # the defaults, to edit
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import registry
from ..errors import SegmentConfigError

CONFIG_VERSION = 1


@dataclass
class ModelConfig:
    organs: tuple[str, ...] = ("liver", "pancreas", "kidney_left", "kidney_right", "spleen")
    tumor_types: tuple[str, ...] = ("cyst", "hypovascular", "hypervascular")
    queries_per_organ: int = 4  # K tumour detection queries (and as many diagnosis queries) per organ
    encoder: str = "segresnet"  # segresnet | swinunetr
    encoder_width: int = 16  # SegResNet init_filters / SwinUNETR feature_size (multiple of 12)
    encoder_blocks: tuple[int, ...] = (1, 2, 2, 4)  # SegResNet blocks_down (strides 1, 2, 4, 8)
    d_model: int = 128
    mask_dim: int = 32  # per-voxel embedding size of the mask features
    heads: int = 8
    decoder_layers: int = 6
    ffn_dim: int = 512
    memory_strides: tuple[int, ...] = (8, 4)  # pixel-decoder levels the queries attend to, round robin
    organ_dilation: int = 1  # voxels (at the memory level) added around an organ for its detection queries
    dropout: float = 0.0
    in_channels: int = 1


@dataclass
class DataConfig:
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    patch_size: tuple[int, int, int] = (96, 96, 96)
    hu_window: tuple[float, float] = (-175.0, 250.0)  # HU -> [0, 1], clipped
    crop_weights: tuple[float, float, float] = (1.0, 2.0, 3.0)  # crop centre on background / an organ / a tumour
    label_aliases: dict[str, str] = field(default_factory=lambda: {"cancer": "tumor", "tumour": "tumor", "lesion": "lesion"})
    type_of_kind: dict[str, str] = field(default_factory=lambda: {"cyst": "cyst"})  # lesion kind -> tumour type
    type_of_name: dict[str, str] = field(default_factory=dict)  # mask name -> tumour type (e.g. pancreatic_pdac -> pdac)
    min_lesion_voxels: int = 3
    patches_per_case: int = 4  # consecutive patches from one loaded case (loading dominates on big CTs)
    cache_cases: int = 32  # loaded cases kept in memory per data worker


@dataclass
class SynthConfig:
    probability: float = 0.8  # a training patch receives synthetic tumours with this probability
    max_lesions: int = 2
    radius_mm: tuple[float, float] = (5.0, 25.0)
    organs: tuple[str, ...] = ()  # empty: every model organ
    type_weights: dict[str, float] = field(default_factory=lambda: {"cyst": 1.0, "hypovascular": 2.0, "hypervascular": 1.0})
    # type -> (low, high) HU; relative to the host organ's mean unless listed in absolute_types
    hu: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "cyst": (0.0, 20.0), "hypovascular": (-70.0, -25.0), "hypervascular": (25.0, 70.0)})
    absolute_types: tuple[str, ...] = ("cyst",)
    texture_sd_hu: tuple[float, float] = (4.0, 14.0)
    irregularity: float = 0.2  # amplitude of the smooth boundary noise (0 = ellipsoid)
    edge_sigma_vox: float = 0.7  # soft blending at the boundary


@dataclass
class TrainConfig:
    steps: int = 50_000
    max_seconds: float | None = None  # stop earlier after this wall time
    batch_size: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    grad_clip: float = 1.0
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU) | off | bf16 | fp16
    checkpoint_every: int = 1000
    log_every: int = 50
    num_workers: int = 4
    seed: int = 0
    aux_loss: bool = True
    w_organ_ce: float = 1.0
    w_organ_dice: float = 1.0
    w_mask_bce: float = 2.0
    w_mask_dice: float = 2.0
    w_exist: float = 1.0
    w_type: float = 1.0
    no_object_weight: float = 0.1
    match_points: int = 8192  # voxels sampled for the Hungarian matching cost


@dataclass
class InferConfig:
    overlap: float = 0.25
    sw_batch_size: int = 1
    blend: str = "gaussian"  # gaussian | constant
    existence_threshold: float = 0.5  # on existence x mask probability
    min_lesion_mm3: float = 20.0
    kind_of_type: dict[str, str] = field(default_factory=lambda: {"cyst": "cyst", "hypovascular": "tumor", "hypervascular": "tumor"})


@dataclass
class UniTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict | None) -> "UniTConfig":
        return _build(cls, d or {}, "")

    @classmethod
    def load(cls, path: str | Path) -> "UniTConfig":
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise SegmentConfigError(f"{p}: config file not readable ({e})") from e
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as e:
                raise SegmentConfigError(f"{p}: reading YAML needs pyyaml (pip install pyyaml), or use a .json config") from e
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise SegmentConfigError(f"{p}: not valid YAML ({e})") from e
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise SegmentConfigError(f"{p}: not valid JSON ({e})") from e
        if data is not None and not isinstance(data, dict):
            raise SegmentConfigError(f"{p}: expected a mapping of sections (model, data, synth, train, infer), found {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except SegmentConfigError as e:
            raise SegmentConfigError(f"{p}: {e}") from e

    def dump(self, path: str | Path | None = None, fmt: str = "yaml") -> str:
        d = self.to_dict()
        if fmt == "yaml":
            try:
                import yaml

                text = yaml.safe_dump(d, sort_keys=False)
            except ImportError:
                text = json.dumps(d, indent=2) + "\n"
        else:
            text = json.dumps(d, indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text


def _build(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise SegmentConfigError(f"{where or 'config'}: expected a mapping, found {type(d).__name__} {d!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in d.items():
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            raise SegmentConfigError(f"unknown config key {where + str(k)!r}; valid keys here: {', '.join(names)}"
                                     + (f" (did you mean {where + close[0]!r}?)" if close else ""))
        kwargs[k] = _convert(hints[k], v, f"{where}{k}")
    try:
        return cls(**kwargs)
    except SegmentConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise SegmentConfigError(f"{where or 'config'}: {e}") from e


def _convert(tp, v, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, v, where + ".")
    if origin is typing.Union or origin is types.UnionType:
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], v, where)
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise SegmentConfigError(f"{where}: expected a list, found {v!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], x, f"{where}[{i}]") for i, x in enumerate(v))
        if len(v) != len(args):
            raise SegmentConfigError(f"{where}: expected {len(args)} values, found {len(v)} ({list(v)})")
        return tuple(_convert(a, x, f"{where}[{i}]") for i, (a, x) in enumerate(zip(args, v)))
    if origin is dict:
        if not isinstance(v, dict):
            raise SegmentConfigError(f"{where}: expected a mapping, found {v!r}")
        return {_convert(args[0], k, where): _convert(args[1], x, f"{where}.{k}") for k, x in v.items()}
    if tp is bool:
        if not isinstance(v, bool):
            raise SegmentConfigError(f"{where}: expected true/false, found {v!r}")
        return v
    if tp in (int, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (tp is int and float(v) != int(v)):
            raise SegmentConfigError(f"{where}: expected {'an integer' if tp is int else 'a number'}, found {v!r}")
        return tp(v)
    if tp is str:
        if not isinstance(v, str):
            raise SegmentConfigError(f"{where}: expected a string, found {v!r}")
        return v
    return v


def validate(c: UniTConfig) -> None:
    m, d, s, t, i = c.model, c.data, c.synth, c.train, c.infer

    def bad(where, expected, found):
        raise SegmentConfigError(f"{where}: expected {expected}, found {found!r}")

    if not m.organs:
        bad("model.organs", "at least one organ", m.organs)
    for o in m.organs:
        st = registry.classify(o)
        if st is None or st.category != "organ":
            sugg = registry.did_you_mean(o)
            bad("model.organs", "organ names of radagent's registry (e.g. liver, pancreas, kidney_left)"
                + (f"; did you mean {sugg[0]!r}" if sugg else ""), o)
    if len(set(m.organs)) != len(m.organs):
        bad("model.organs", "distinct names", m.organs)
    if not m.tumor_types or len(set(m.tumor_types)) != len(m.tumor_types):
        bad("model.tumor_types", "one or more distinct names", m.tumor_types)
    if m.encoder not in ("segresnet", "swinunetr"):
        bad("model.encoder", "segresnet or swinunetr", m.encoder)
    if m.encoder == "swinunetr" and m.encoder_width % 12:
        bad("model.encoder_width", "a multiple of 12 for swinunetr", m.encoder_width)
    if m.encoder == "segresnet" and (len(m.encoder_blocks) < 3 or min(m.encoder_blocks) < 1):
        bad("model.encoder_blocks", "3 or more positive block counts", m.encoder_blocks)
    if m.d_model % m.heads:
        bad("model.d_model", f"a multiple of model.heads ({m.heads})", m.d_model)
    strides = encoder_strides(m)
    for st in m.memory_strides:
        if st not in strides or st < 4:
            bad("model.memory_strides", f"strides >= 4 of the encoder ({[x for x in strides if x >= 4]})", m.memory_strides)
    for k, name in ((m.queries_per_organ, "model.queries_per_organ"), (m.decoder_layers, "model.decoder_layers"),
                    (d.patches_per_case, "data.patches_per_case"), (d.cache_cases, "data.cache_cases"),
                    (m.mask_dim, "model.mask_dim"), (t.batch_size, "train.batch_size"), (t.steps, "train.steps")):
        if k < 1:
            bad(name, "a positive integer", k)
    div = max(strides)
    if any(p % div for p in d.patch_size):
        bad("data.patch_size", f"sizes divisible by {div} (the encoder's coarsest stride)", d.patch_size)
    if m.encoder == "swinunetr" and math.prod(p // div for p in d.patch_size) < 2:
        bad("data.patch_size", "more than one voxel at stride 32 for swinunetr (instance norm), e.g. (64, 64, 32)", d.patch_size)
    if min(d.spacing_mm) <= 0:
        bad("data.spacing_mm", "positive spacings", d.spacing_mm)
    if d.hu_window[0] >= d.hu_window[1]:
        bad("data.hu_window", "(low, high) with low < high", d.hu_window)
    for name, ty in list(d.type_of_kind.items()) + list(d.type_of_name.items()):
        if ty not in m.tumor_types:
            bad(f"data type mapping {name!r}", f"one of model.tumor_types {m.tumor_types}", ty)
    if not 0 <= s.probability <= 1:
        bad("synth.probability", "a probability in [0, 1]", s.probability)
    if not 0 < s.radius_mm[0] <= s.radius_mm[1]:
        bad("synth.radius_mm", "(min, max) with 0 < min <= max", s.radius_mm)
    for o in s.organs:
        if o not in m.organs:
            bad("synth.organs", f"organs of model.organs {m.organs}", o)
    for ty in list(s.type_weights) + list(s.hu):
        if ty not in m.tumor_types:
            bad("synth type", f"one of model.tumor_types {m.tumor_types}", ty)
    if s.probability > 0 and not any(w > 0 for w in s.type_weights.values()):
        bad("synth.type_weights", "at least one positive weight", s.type_weights)
    for ty, w in s.type_weights.items():
        if w > 0 and ty not in s.hu:
            bad(f"synth.hu[{ty!r}]", "an HU range for every synthetic type", None)
    if t.amp not in ("auto", "off", "bf16", "fp16"):
        bad("train.amp", "auto, off, bf16 or fp16", t.amp)
    if i.blend not in ("gaussian", "constant"):
        bad("infer.blend", "gaussian or constant", i.blend)
    if not 0 < i.existence_threshold < 1:
        bad("infer.existence_threshold", "a probability in (0, 1)", i.existence_threshold)
    if not 0 <= i.overlap < 1:
        bad("infer.overlap", "a fraction in [0, 1)", i.overlap)
    for ty in i.kind_of_type:
        if ty not in m.tumor_types:
            bad("infer.kind_of_type", f"keys from model.tumor_types {m.tumor_types}", ty)


def encoder_strides(m: ModelConfig) -> list[int]:
    if m.encoder == "swinunetr":
        return [1, 2, 4, 8, 16, 32]
    return [2 ** i for i in range(len(m.encoder_blocks))]
