"""Training data for UniT: dataset readers, MONAI preprocessing, patch sampling with synthetic tumours.

Layouts read by ``find_cases``:
- AbdomenAtlas-style case folders: ``DIR/<case>/ct.nii.gz`` + ``DIR/<case>/segmentations/*.nii.gz``
  (one binary mask per structure, TotalSegmentator / AbdomenAtlas names), or one such case folder.
- MSD / nnU-Net raw: ``DIR/dataset.json`` + ``imagesTr/`` + ``labelsTr/`` (multilabel NIfTI, names
  from dataset.json ``labels``: MSD ``{"1": "liver", "2": "cancer"}`` or nnU-Net v2
  ``{"liver": 1, "tumor": 2}``; images ``<case>.nii.gz`` (MSD) or ``<case>_0000.nii.gz`` (nnU-Net)).

Masks go through radagent's own loaders (geometry checked against the CT, names canonicalised), then
become three arrays on the CT grid: organ classes (0 background, i + 1 = model.organs[i]; an organ
includes its tumours), tumour instances (26-connected components of every lesion mask, each with
its organ and type) and the HU image. MONAI transforms then do orientation (RAS), spacing
(data.spacing_mm), padding, crops centred on background / organ / tumour voxels
(RandCropByLabelClassesd with data.crop_weights) and HU windowing (ScaleIntensityRange), with
synthetic tumours inserted into the patch before windowing (synth.py).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import cc3d
import numpy as np
import torch
from scipy import ndimage

from ... import registry
from ...errors import InputError
from ...io import is_nifti, load_ct
from ...mask import Mask
from ...masks import LabelSet, load_mask_folder, load_multilabel, merge
from ...volume import CTVolume
from .config import UniTConfig
from .synth import insert_lesion

log = logging.getLogger("radagent.segment.unit")

PAD_HU = -1024.0
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # nibabel / radagent convention: affines are RAS+


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    image: Path
    labels: Path  # a folder of binary masks, or one multilabel NIfTI
    layout: str  # abdomenatlas | msd | nnunet
    class_map: dict[int, str] | None = None  # multilabel only


def _stem(p: Path) -> str:
    return p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem


def find_cases(data_dir: str | Path) -> list[CaseRecord]:
    """Cases under ``data_dir`` in one of the layouts of the module docstring."""
    d = Path(data_dir)
    if not d.is_dir():
        raise InputError(f"{d}: training data folder not found")
    if (d / "dataset.json").is_file() and (d / "imagesTr").is_dir():
        return _msd_cases(d)
    if (d / "ct.nii.gz").is_file() and (d / "segmentations").is_dir():
        return [CaseRecord(d.name, d / "ct.nii.gz", d / "segmentations", "abdomenatlas")]
    cases = [CaseRecord(c.name, c / "ct.nii.gz", c / "segmentations", "abdomenatlas")
             for c in sorted(d.iterdir()) if (c / "ct.nii.gz").is_file() and (c / "segmentations").is_dir()]
    if not cases:
        raise InputError(f"{d}: no training cases found. Expected AbdomenAtlas-style case folders "
                         "(<case>/ct.nii.gz + <case>/segmentations/*.nii.gz) or an MSD / nnU-Net raw dataset "
                         "(dataset.json + imagesTr/ + labelsTr/)")
    return cases


def _msd_class_map(dj: dict, path: Path) -> dict[int, str]:
    labels = dj.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(f"{path}: expected a 'labels' mapping, found {labels!r}")
    out = {}
    for k, v in labels.items():
        if isinstance(v, (list, tuple)):
            raise InputError(f"{path}: region-based labels ({k}: {v}) are not supported; expected one id per label")
        if str(k).lstrip("-").isdigit():  # MSD: {"1": "liver"}
            out[int(k)] = str(v)
        elif isinstance(v, int):  # nnU-Net v2: {"liver": 1}
            out[int(v)] = str(k)
        else:
            raise InputError(f"{path}: label entry {k!r}: {v!r} is neither MSD ({{'1': 'liver'}}) nor nnU-Net ({{'liver': 1}})")
    out.pop(0, None)
    return out


def _msd_cases(d: Path) -> list[CaseRecord]:
    dj_path = d / "dataset.json"
    try:
        dj = json.loads(dj_path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{dj_path}: not valid JSON ({e})") from e
    channels = dj.get("channel_names") or dj.get("modality") or {"0": "CT"}
    if len(channels) != 1:
        raise InputError(f"{dj_path}: expected one CT channel, found {len(channels)} ({channels})")
    class_map = _msd_class_map(dj, dj_path)
    cases = []
    if isinstance(dj.get("training"), list) and dj["training"] and isinstance(dj["training"][0], dict):
        for e in dj["training"]:  # MSD
            img, lab = d / e["image"], d / e["label"]
            cases.append(CaseRecord(_stem(lab), img, lab, "msd", class_map))
    else:  # nnU-Net v2: imagesTr/<case>_0000.nii.gz
        for lab in sorted(p for p in (d / "labelsTr").iterdir() if is_nifti(p)):
            case = _stem(lab)
            imgs = [p for p in (d / "imagesTr").glob(f"{case}_0000.*") if is_nifti(p)] or \
                   [p for p in (d / "imagesTr").glob(f"{case}.*") if is_nifti(p)]
            if not imgs:
                raise InputError(f"{lab}: no image for case {case!r} in {d / 'imagesTr'} (expected {case}_0000.nii.gz)")
            cases.append(CaseRecord(case, imgs[0], lab, "nnunet", class_map))
    missing = [c.image for c in cases if not c.image.exists()]
    if missing:
        raise InputError(f"{dj_path}: {len(missing)} image file(s) listed but missing, e.g. {missing[0]}")
    if not cases:
        raise InputError(f"{d}: dataset.json lists no training cases")
    return cases


# --- labels -> training targets ---------------------------------------------------------------------

@dataclass
class Targets:
    organ: np.ndarray  # uint8, 0 background, i + 1 = organs[i]
    tumor: np.ndarray  # int32 instance ids
    instances: list[tuple[int, int, int]]  # (id, organ index, type index or -1)
    warnings: list[str] = field(default_factory=list)


def _alias(ls: LabelSet, aliases: dict[str, str]) -> LabelSet:
    out = LabelSet(ls.shape, warnings=list(ls.warnings))
    for n, m in ls.masks.items():
        new = registry.canonical_name(aliases.get(n, n))
        out.add(Mask(new, m.shape, m.bbox, m.data, m.source) if new != n else m)
    return out


def _organ_mask(ls: LabelSet, organ: str) -> Mask | None:
    m = ls.get(organ)
    if m is not None:
        return m
    fam = registry.organ_family(organ)
    parts = [sm for n, sm in ls.masks.items() if not sm.empty and registry.SUBSEGMENTS.get(n) == fam and fam == organ]
    return merge(organ, parts) if parts else None


def targets_from_labelset(ls: LabelSet, cfg: UniTConfig) -> Targets:
    """Organ classes, tumour instances (with organ and type) on the LabelSet's grid."""
    organs, types = cfg.model.organs, cfg.model.tumor_types
    shape = ls.shape
    organ = np.zeros(shape, dtype=np.uint8)
    warnings = []
    for i, o in enumerate(organs):
        m = _organ_mask(ls, o)
        if m is None:
            warnings.append(f"organ {o!r} not annotated: counted as background")
            continue
        organ[tuple(slice(a, b) for a, b in m.bbox)][m.data] = i + 1
    tumor = np.zeros(shape, dtype=np.int32)
    instances: list[tuple[int, int, int]] = []
    for name, m in sorted(ls.masks.items()):
        st = registry.classify(name)
        if st is None or st.category != "lesion" or m.empty:
            continue
        ty_name = cfg.data.type_of_name.get(name) or cfg.data.type_of_kind.get(st.lesion_kind or "")
        ty = types.index(ty_name) if ty_name in types else -1
        labels = cc3d.connected_components(m.data, connectivity=26)
        for lab in range(1, int(labels.max()) + 1):
            comp = labels == lab
            if comp.sum() < cfg.data.min_lesion_voxels:
                continue
            box = tuple(slice(a, b) for a, b in m.bbox)
            full = np.zeros(shape, dtype=bool)
            full[box] = comp
            oi = _lesion_organ(full, st.family, organ, organs)
            if oi is None:
                warnings.append(f"{name} component {lab}: not in any of the model's organs {organs}; ignored")
                continue
            iid = len(instances) + 1
            tumor[full & (tumor == 0)] = iid
            organ[full] = oi + 1  # an organ includes its tumours
            instances.append((iid, oi, ty))
    return Targets(organ, tumor, instances, warnings)


def _lesion_organ(comp: np.ndarray, family: str | None, organ: np.ndarray, organs: tuple[str, ...]) -> int | None:
    cands = [i for i, o in enumerate(organs)
             if family is None or o == family or registry.organ_family(o) == family or registry.organ_family(o) == registry.organ_family(family)]
    if family is not None and family in organs:
        return organs.index(family)
    if not cands:
        return None
    near = organ[ndimage.binary_dilation(comp, iterations=2)]
    counts = {i: int(np.count_nonzero(near == i + 1)) for i in cands}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
        return best
    return cands[0] if len(cands) == 1 and family is not None else None


# --- cases on the model grid -------------------------------------------------------------------------

@dataclass
class Case:
    case_id: str
    image: torch.Tensor  # (1, X, Y, Z) float32 HU, RAS, data.spacing_mm, padded to >= patch size
    organ: torch.Tensor  # (1, ...) float32 class ids (MONAI keeps labels as float)
    tumor: torch.Tensor  # (1, ...) float32 instance ids
    instances: list[tuple[int, int, int]]
    crop_indices: list  # MONAI ClassesToIndices of background / organ / tumour
    warnings: list[str]


def load_labels(rec: CaseRecord, ct: CTVolume, cfg: UniTConfig) -> LabelSet:
    if rec.class_map is not None:
        ls = load_multilabel(rec.labels, ct, rec.class_map)
    else:
        ls = load_mask_folder(rec.labels, ct)
    return _alias(ls, cfg.data.label_aliases)


def preprocess(hu: np.ndarray, affine: np.ndarray, t: Targets, cfg: UniTConfig, case_id: str = "") -> Case:
    """Orientation (RAS) and spacing (MONAI), padding to the patch size, crop-centre indices."""
    from monai.data import MetaTensor
    from monai.transforms import ClassesToIndicesd, Compose, Orientationd, SpatialPadd, Spacingd

    aff = torch.as_tensor(np.asarray(affine, dtype=np.float64))
    d = {"image": MetaTensor(torch.from_numpy(np.asarray(hu, dtype=np.float32)[None].copy()), affine=aff),
         "organ": MetaTensor(torch.from_numpy(t.organ[None].astype(np.float32)), affine=aff),
         "tumor": MetaTensor(torch.from_numpy(t.tumor[None].astype(np.float32)), affine=aff)}
    keys = ["image", "organ", "tumor"]
    tf = [Orientationd(keys=keys, axcodes="RAS", labels=RAS_LABELS)]
    sp = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    if not np.allclose(sp, cfg.data.spacing_mm, atol=1e-3):
        tf.append(Spacingd(keys=keys, pixdim=cfg.data.spacing_mm, mode=("bilinear", "nearest", "nearest"), dtype=np.float32))
    tf += [SpatialPadd(keys=["image"], spatial_size=cfg.data.patch_size, value=PAD_HU),
           SpatialPadd(keys=["organ", "tumor"], spatial_size=cfg.data.patch_size)]
    d = Compose(tf)(d)
    tumor = d["tumor"].round()
    present = set(np.unique(tumor.numpy().astype(np.int64)).tolist()) - {0}
    inst = [x for x in t.instances if x[0] in present]
    crop = (d["organ"] > 0).float() + (tumor > 0).float()
    ci = ClassesToIndicesd(keys="crop", num_classes=3)({"crop": crop.as_tensor() if hasattr(crop, "as_tensor") else crop})
    return Case(case_id, d["image"].as_tensor().float(), d["organ"].round().as_tensor(), tumor.as_tensor(), inst,
                ci["crop_cls_indices"], list(t.warnings))


def load_case(rec: CaseRecord, cfg: UniTConfig) -> Case:
    ct = load_ct(rec.image)
    t = targets_from_labelset(load_labels(rec, ct, cfg), cfg)
    for w in t.warnings:
        log.debug("%s: %s", rec.case_id, w)
    return preprocess(ct.hu, ct.affine, t, cfg, rec.case_id)


# --- patches -------------------------------------------------------------------------------------------

def window(img: np.ndarray | torch.Tensor, cfg: UniTConfig):
    from monai.transforms import ScaleIntensityRange

    lo, hi = cfg.data.hu_window
    return ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(img)


class PatchSampler:
    """Random training patches of one case: MONAI crop around background/organ/tumour, synthetic tumours, window."""

    def __init__(self, cfg: UniTConfig, seed: int):
        from monai.transforms import RandCropByLabelClassesd

        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.crop = RandCropByLabelClassesd(keys=["image", "organ", "tumor"], label_key="crop",
                                            spatial_size=cfg.data.patch_size, ratios=list(cfg.data.crop_weights),
                                            num_classes=3, indices_key="crop_indices", warn=False)
        self.crop.set_random_state(seed=int(seed) % (2 ** 32))
        names = cfg.synth.organs or cfg.model.organs
        self.synth_organs = [cfg.model.organs.index(o) for o in names]

    def __call__(self, case: Case, synth: bool = True) -> dict:
        cfg = self.cfg
        ratios = [w if len(idx) else 0.0 for w, idx in zip(cfg.data.crop_weights, case.crop_indices)]
        self.crop.cropper.ratios = ratios if sum(ratios) > 0 else None
        p = self.crop({"image": case.image, "organ": case.organ, "tumor": case.tumor, "crop": case.organ,
                       "crop_indices": case.crop_indices})[0]
        img = np.asarray(p["image"][0], dtype=np.float32).copy()
        organ = np.asarray(p["organ"][0]).astype(np.uint8)
        tumor = np.asarray(p["tumor"][0]).astype(np.int32)
        ids, counts = np.unique(tumor, return_counts=True)
        keep = {int(i) for i, c in zip(ids, counts) if i and c >= cfg.data.min_lesion_voxels}
        tumor[~np.isin(tumor, list(keep))] = 0
        inst = [x for x in case.instances if x[0] in keep]
        if synth and self.rng.random() < cfg.synth.probability:
            nxt = max([x[0] for x in case.instances] + [0]) + 1
            present = [i for i in self.synth_organs if np.count_nonzero(organ == i + 1) >= 64]
            for _ in range(int(self.rng.integers(1, cfg.synth.max_lesions + 1)) if present else 0):
                oi = present[int(self.rng.integers(len(present)))]
                img, les = insert_lesion(img, organ, oi, cfg.data.spacing_mm, cfg.synth, cfg.model.tumor_types,
                                         self.rng, occupied=tumor > 0)
                if les is None:
                    continue
                tumor[les.mask] = nxt
                inst.append((nxt, oi, les.type))
                nxt += 1
        return {"image": torch.as_tensor(np.asarray(window(img[None], cfg), dtype=np.float32)),
                "organ": torch.from_numpy(organ[None].astype(np.int64)),
                "tumor": torch.from_numpy(tumor[None].astype(np.int64)), "instances": inst}


def collate(samples: list[dict]) -> dict:
    return {"image": torch.stack([s["image"] for s in samples]), "organ": torch.stack([s["organ"] for s in samples]),
            "tumor": torch.stack([s["tumor"] for s in samples]), "instances": [s["instances"] for s in samples]}


class PatchStream(torch.utils.data.IterableDataset):
    """Endless random patches: a random case (kept in a small LRU cache), a few patches from it."""

    def __init__(self, records: list[CaseRecord], cfg: UniTConfig, seed: int, synth: bool = True,
                 patches_per_case: int = 4, cache_cases: int = 32):
        super().__init__()
        self.records, self.cfg, self.seed, self.synth = records, cfg, seed, synth
        self.patches_per_case, self.cache_cases = patches_per_case, cache_cases

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        seed = (self.seed * 1000 + wid) % (2 ** 32)
        rng = np.random.default_rng(seed)
        sampler = PatchSampler(self.cfg, seed)
        cache: OrderedDict[str, Case] = OrderedDict()
        while True:
            rec = self.records[int(rng.integers(len(self.records)))]
            case = cache.get(rec.case_id)
            if case is None:
                case = load_case(rec, self.cfg)
                cache[rec.case_id] = case
                while len(cache) > self.cache_cases:
                    cache.popitem(last=False)
            cache.move_to_end(rec.case_id)
            for _ in range(self.patches_per_case):
                yield sampler(case, self.synth)


