"""UniT inference: CT -> model grid -> sliding window -> instances -> masks on the CT grid -> LabelSet.

1. The CT goes to the model grid with MONAI (Orientation RAS, Spacing ``data.spacing_mm``) and is
   HU-windowed as in training.
2. ``monai.inferers.sliding_window_inference`` (``data.patch_size`` windows, ``infer.overlap``,
   gaussian blending) assembles three voxel maps from ``UniTModel.predict_maps``: organ
   probabilities, tumour probability per organ (existence x mask probability of the organ's best
   detection query) and tumour-type probabilities.
3. Post-processing: organ labels = argmax; tumour voxels = tumour probability >=
   ``infer.existence_threshold``, labelled with the organ whose queries found them; instances =
   26-connected components of each organ's tumour voxels, at least ``infer.min_lesion_mm3``; each
   instance gets a score (max probability) and type probabilities (mean over its voxels).
4. Label maps go back to the CT grid (nearest neighbour, MONAI SpatialResample) and become a
   LabelSet: one mask per organ, one per organ and lesion kind (``liver_tumor``,
   ``kidney_cyst_left``, ...; kind from ``infer.kind_of_type``), each source naming the checkpoint
   and the instances with their scores and types. Declared structures with nothing found are
   empty masks (absent).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cc3d
import numpy as np

from ... import registry
from ...mask import Mask
from ...masks import LabelSet
from ...volume import CTVolume
from ..common import nifti_bytes, select_device
from ..errors import BackendUnavailableError, missing_package_message
from .config import UniTConfig

log = logging.getLogger("radagent.segment.unit")

_ADJECTIVE = {"pancreas": "pancreatic"}


def lesion_mask_name(organ: str, kind: str) -> str:
    """Registry name of a lesion mask of ``kind`` (tumor, cyst, lesion) in ``organ``: liver_tumor,
    pancreatic_cyst, kidney_tumor_left, ... (falls back to <organ family>_lesion)."""
    base, side = organ, ""
    for s in ("_left", "_right"):
        if organ.endswith(s):
            base, side = organ[: -len(s)], s
    for cand in (f"{_ADJECTIVE.get(base, base)}_{kind}{side}", f"{base}_{kind}{side}",
                 f"{registry.organ_family(organ)}_lesion{side}", f"{registry.organ_family(organ)}_lesion"):
        st = registry.classify(cand)
        if st is not None and st.category == "lesion" and st.family is not None and (
                st.family == organ or registry.organ_family(st.family) == registry.organ_family(organ)):
            return cand
    return "lesion"


@dataclass
class LesionInstance:
    id: int
    organ: str
    mask_name: str
    voxel_count: int  # on the CT grid
    volume_ml: float
    score: float  # max existence x mask probability
    type: str
    type_probs: dict[str, float]


@dataclass
class UniTResult:
    organ_labels: np.ndarray  # uint8 on the CT grid, 0 background, i + 1 = organs[i]
    instance_labels: np.ndarray  # int32 on the CT grid, instance ids
    instances: list[LesionInstance]
    labelset: LabelSet
    seconds: dict[str, float] = field(default_factory=dict)


def _kinds(cfg: UniTConfig) -> list[str]:
    kinds = [cfg.infer.kind_of_type.get(t, "lesion") for t in cfg.model.tumor_types]
    return list(dict.fromkeys(kinds))


def declared_outputs(cfg: UniTConfig) -> tuple[str, ...]:
    names = list(cfg.model.organs)
    for o in cfg.model.organs:
        names += [lesion_mask_name(o, k) for k in _kinds(cfg)]
    return tuple(dict.fromkeys(names))


def to_model_grid(ct: CTVolume, cfg: UniTConfig):
    """(windowed image MetaTensor (1, X, Y, Z) on the model grid, whether it differs from the CT grid)."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, Spacing

    from .data import RAS_LABELS, window

    img = MetaTensor(torch.from_numpy(np.asarray(ct.hu, dtype=np.float32)[None].copy()),
                     affine=torch.as_tensor(np.asarray(ct.affine, dtype=np.float64)))
    same = ct.orientation == "RAS" and np.allclose(ct.spacing, cfg.data.spacing_mm, atol=1e-3) and \
        np.allclose(ct.affine[:3, :3], np.diag(np.diag(ct.affine[:3, :3])), atol=1e-6)
    if not same:
        img = Orientation(axcodes="RAS", labels=RAS_LABELS)(img)
        if not np.allclose(np.linalg.norm(np.asarray(img.affine)[:3, :3], axis=0), cfg.data.spacing_mm, atol=1e-3):
            img = Spacing(pixdim=cfg.data.spacing_mm, mode="bilinear", dtype=np.float32)(img)
    return window(img, cfg), not same


def sliding_maps(model, image, cfg: UniTConfig, device: str, output_device: str | None = None) -> dict:
    """Organ / tumour / type maps (torch, on output_device) for a (1, X, Y, Z) windowed image."""
    import torch
    from monai.inferers import sliding_window_inference

    amp = None
    if device.startswith("cuda") and cfg.train.amp != "off":
        amp = torch.bfloat16 if (cfg.train.amp in ("auto", "bf16") and torch.cuda.is_bf16_supported()) else torch.float16
    x = image.as_tensor()[None] if hasattr(image, "as_tensor") else image[None]

    def predictor(w):
        with torch.autocast(device_type="cuda", dtype=amp, enabled=amp is not None):
            return model.predict_maps(w)

    with torch.no_grad():
        return sliding_window_inference(x, roi_size=cfg.data.patch_size, sw_batch_size=cfg.infer.sw_batch_size,
                                        predictor=predictor, overlap=cfg.infer.overlap, mode=cfg.infer.blend,
                                        sw_device=device, device=output_device or device)


def postprocess(maps: dict, cfg: UniTConfig, voxel_mm3: float) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(organ labels, instance labels, instance rows) on the model grid."""
    organ_p = maps["organ"][0]
    organ_lab = organ_p.argmax(0).to("cpu").numpy().astype(np.uint8)
    tp = maps["tumor"][0]
    best_p, best_o = tp.max(0)
    best_p, best_o = best_p.float().cpu().numpy(), best_o.cpu().numpy()
    fg = best_p >= cfg.infer.existence_threshold
    lab = np.where(fg, best_o + 1, 0).astype(np.uint16)
    comps = cc3d.connected_components(lab, connectivity=26)
    stats = cc3d.statistics(comps)
    min_vox = max(1, int(np.ceil(cfg.infer.min_lesion_mm3 / voxel_mm3)))
    inst = np.zeros(comps.shape, dtype=np.int32)
    rows = []
    types = maps["type"][0]
    for c in range(1, len(stats["voxel_counts"])):
        n = int(stats["voxel_counts"][c])
        if n < min_vox:
            continue
        sl = stats["bounding_boxes"][c]
        m = comps[sl] == c
        oi = int(np.bincount(best_o[sl][m]).argmax())
        iid = len(rows) + 1
        inst[sl][m] = iid
        mt = np.asarray(m)
        tprobs = types[(slice(None),) + tuple(sl)].float().cpu().numpy()[:, mt].mean(1)
        rows.append({"id": iid, "organ": oi, "score": float(best_p[sl][m].max()),
                     "type_probs": {t: float(p) for t, p in zip(cfg.model.tumor_types, tprobs)}})
    return organ_lab, inst, rows


def _back_to_ct(labels: np.ndarray, grid_affine: np.ndarray, ct: CTVolume) -> np.ndarray:
    import torch
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    mt = MetaTensor(torch.from_numpy(labels.astype(np.float32)[None]), affine=torch.as_tensor(np.asarray(grid_affine, dtype=np.float64)))
    out = SpatialResample(mode="nearest", padding_mode="zeros", dtype=np.float32)(
        mt, dst_affine=torch.as_tensor(np.asarray(ct.affine, dtype=np.float64)), spatial_size=ct.shape)
    return np.rint(np.asarray(out[0])).astype(labels.dtype)


def predict_ct(model, cfg: UniTConfig, ct: CTVolume, device: str, checkpoint_name: str = "unit",
               output_device: str | None = None) -> UniTResult:
    secs: dict[str, float] = {}
    t = time.perf_counter()
    img, resampled = to_model_grid(ct, cfg)
    grid_affine = np.asarray(img.affine, dtype=np.float64)
    secs["to_model_grid"] = time.perf_counter() - t
    t = time.perf_counter()
    maps = sliding_maps(model, img, cfg, device, output_device)
    secs["sliding_window"] = time.perf_counter() - t
    t = time.perf_counter()
    vox = float(abs(np.linalg.det(grid_affine[:3, :3])))
    organ_lab, inst, rows = postprocess(maps, cfg, vox)
    if resampled:
        organ_lab, inst = _back_to_ct(organ_lab, grid_affine, ct), _back_to_ct(inst, grid_affine, ct)
    secs["postprocess"] = time.perf_counter() - t
    result = build_result(organ_lab, inst, rows, cfg, ct, checkpoint_name)
    result.seconds = secs
    return result


def build_result(organ_lab: np.ndarray, inst: np.ndarray, rows: list[dict], cfg: UniTConfig, ct: CTVolume,
                 checkpoint_name: str) -> UniTResult:
    organs, src = cfg.model.organs, f"unit:{checkpoint_name}"
    ls = LabelSet(ct.shape)
    for i, o in enumerate(organs):
        ls.masks[o] = Mask.from_dense(o, organ_lab == i + 1, f"{src}#organ")
    counts = np.bincount(inst.ravel(), minlength=len(rows) + 1)
    instances: list[LesionInstance] = []
    for r in rows:
        n = int(counts[r["id"]])
        if n == 0:  # vanished when resampled back to a coarser CT grid
            continue
        ty = max(r["type_probs"], key=r["type_probs"].get)
        organ = organs[r["organ"]]
        name = lesion_mask_name(organ, cfg.infer.kind_of_type.get(ty, "lesion"))
        instances.append(LesionInstance(r["id"], organ, name, n, round(n * ct.voxel_volume_mm3 / 1000.0, 4),
                                        round(r["score"], 4), ty, {k: round(v, 4) for k, v in r["type_probs"].items()}))
    for name in declared_outputs(cfg)[len(organs):]:
        mine = [x for x in instances if x.mask_name == name]
        if not mine:
            ls.masks[name] = Mask(name, ct.shape, None, None, f"{src}#{name}")
            continue
        desc = "; ".join(f"instance {x.id} p={x.score:.2f} {x.type} {x.type_probs[x.type]:.2f}" for x in mine)
        ls.masks[name] = Mask.from_dense(name, np.isin(inst, [x.id for x in mine]), f"{src}#{name} [{desc}]")
    extra = sorted({x.mask_name for x in instances} - set(ls.masks))
    for name in extra:  # a fallback name ("lesion") not among the declared ones
        mine = [x for x in instances if x.mask_name == name]
        ls.masks[name] = Mask.from_dense(name, np.isin(inst, [x.id for x in mine]), f"{src}#{name}")
    return UniTResult(organ_lab, inst, instances, ls)


def result_files(result: UniTResult, ct: CTVolume, checkpoint: str) -> dict[str, bytes | str]:
    """unit/instances.nii.gz (instance ids on the CT grid) and unit/instances.json (organ, mask, score, type
    per id), in a subfolder so that the mask folder holds only structure masks."""
    doc = {"checkpoint": checkpoint, "ct": ct.source, "instances": [asdict(x) for x in result.instances],
           "seconds": {k: round(v, 3) for k, v in result.seconds.items()}}
    return {"unit/instances.nii.gz": nifti_bytes(result.instance_labels.astype(np.int16), ct.affine),
            "unit/instances.json": json.dumps(doc, indent=2) + "\n"}


@dataclass
class UniTSegmenter:
    """The UniT model as a radagent backend (``weights``: a checkpoint from ``radagent train unit``)."""

    weights: Path
    device: str = "auto"
    existence_threshold: float | None = None
    overlap: float | None = None
    sw_batch_size: int | None = None
    output_device: str | None = None  # where sliding-window maps are assembled (default: the device)
    name: str = "unit"
    last_result: UniTResult | None = field(default=None, repr=False)
    runs: list = field(default_factory=list, repr=False)  # ModelRun of the last segment() call

    def __post_init__(self) -> None:
        import importlib.util

        if any(importlib.util.find_spec(m) is None for m in ("torch", "monai")):
            raise BackendUnavailableError(missing_package_message("the unit backend", "torch and monai"))
        from .model import load_model

        self.weights = Path(self.weights)
        self.device = select_device(self.device)
        self.model, self.cfg, self.meta = load_model(self.weights, self.device)
        inf = self.cfg.infer
        if self.existence_threshold is not None:
            inf.existence_threshold = float(self.existence_threshold)
        if self.overlap is not None:
            inf.overlap = float(self.overlap)
        if self.sw_batch_size is not None:
            inf.sw_batch_size = int(self.sw_batch_size)
        from .config import validate

        validate(self.cfg)

    @property
    def outputs(self) -> tuple[str, ...]:
        return declared_outputs(self.cfg)

    def segment(self, ct: CTVolume) -> LabelSet:
        from ... import __version__
        from ..runs import ModelRun, TaskProgress, WeightsRecord, sha256_file

        progress = TaskProgress([(self.weights.name, 1.0)])
        progress.start(self.weights.name)
        t0 = time.perf_counter()
        self.last_result = predict_ct(self.model, self.cfg, ct, self.device, self.weights.name, self.output_device)
        self.runs = [ModelRun("unit", self.weights.name, f"radagent {__version__}", "ran", round(time.perf_counter() - t0, 2),
                              device=self.device, weights=[WeightsRecord(self.weights.name, None, None, str(self.weights),
                                                                         sha256_file(self.weights))])]
        progress.finish(self.weights.name)
        log.info("unit: %d tumour instance(s); %s", len(self.last_result.instances),
                 ", ".join(f"{k} {v:.1f} s" for k, v in self.last_result.seconds.items()))
        return self.last_result.labelset

    @property
    def detections(self) -> tuple[np.ndarray, dict[int, dict]] | None:
        """(instance ids on the CT grid, {id: {"score", "type_probs"}}) of the last call, for each lesion's
        detection score and type probabilities in Findings; None before a call."""
        if self.last_result is None:
            return None
        return (self.last_result.instance_labels,
                {x.id: {"score": x.score, "type_probs": dict(x.type_probs)} for x in self.last_result.instances})

    def files(self, ct: CTVolume) -> dict[str, bytes | str]:
        if self.last_result is None:
            return {}
        return result_files(self.last_result, ct, str(self.weights))
