"""Any trained nnU-Net v2 model as a radagent backend: ``--backend nnunet --model DIR --labels JSON``.

``DIR`` is an nnU-Net results folder (``<trainer>__<plans>__<configuration>`` holding ``plans.json``,
``dataset.json`` and ``fold_*/checkpoint_final.pth``); it is loaded by nnU-Net's own predictor
(``nnUNetPredictor.initialize_from_trained_model_folder``) and run on the CT read by nnU-Net's own
reader (``SimpleITKIO``), so preprocessing, sliding window and export are nnU-Net's. ``--labels``
maps the model's label ids to radagent structure names (``{"1": "pancreas", "2": "pancreatic_tumor"}``);
without it the names of the model's ``dataset.json`` are used, and every name is checked against the
registry (a lesion label such as ``liver_lesion`` becomes a lesion mask with that organ). Each Mask's
source is ``nnunet:<dataset folder name>#<label id>``; ``runs`` records the folds' checkpoint SHA-256s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import registry
from ..masks import LabelSet, load_multilabel
from ..volume import CTVolume
from .common import relabel, select_device
from .errors import BackendUnavailableError, SegmentConfigError, missing_package_message


def _version() -> str:
    import importlib.metadata as md

    return md.version("nnunetv2")


@dataclass
class NNUNetSegmenter:
    model: Path
    labels: Path | None = None
    folds: tuple[int, ...] | None = None  # None: every fold_N folder with the checkpoint
    checkpoint: str = "checkpoint_final.pth"
    device: str = "auto"
    tol_mm: float = 0.01
    name: str = "nnunet"
    runs: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        for f in ("plans.json", "dataset.json"):
            if not (self.model / f).is_file():
                raise SegmentConfigError(f"{self.model}: not an nnU-Net results folder (expected {f} and "
                                         f"fold_N/{self.checkpoint}; found {sorted(p.name for p in self.model.iterdir()) if self.model.is_dir() else 'no folder'})")
        if self.folds is None:
            self.folds = tuple(sorted(int(p.parent.name[5:]) for p in self.model.glob(f"fold_*/{self.checkpoint}")
                                      if p.parent.name[5:].isdigit()))
        if not self.folds:
            raise SegmentConfigError(f"{self.model}: no fold_N/{self.checkpoint} found (expected at least one trained fold)")
        self.label_map = self._label_map()
        import importlib.util

        if any(importlib.util.find_spec(m) is None for m in ("torch", "nnunetv2")):
            raise BackendUnavailableError(missing_package_message("the nnunet backend", "nnunetv2 and torch"))
        self.device = select_device(self.device)

    def _label_map(self) -> dict[int, str]:
        if self.labels is not None:
            try:
                raw = json.loads(Path(self.labels).read_text())
            except (OSError, ValueError) as e:
                raise SegmentConfigError(f"{self.labels}: cannot read the label map (expected JSON {{\"1\": \"liver\", ...}}; {e})") from e
            pairs = {str(k): v for k, v in raw.items()}
        else:
            ds = json.loads((self.model / "dataset.json").read_text())
            pairs = {str(v): k for k, v in ds.get("labels", {}).items() if not isinstance(v, list)}
        out: dict[int, str] = {}
        bad = []
        for k, v in pairs.items():
            if not k.isdigit():
                bad.append(f"{k!r} is not a label id")
                continue
            if int(k) == 0:
                continue  # background
            name = registry.canonical_name(str(v))
            if registry.classify(name) is None:
                close = registry.did_you_mean(str(v))
                bad.append(f"label {k}: {v!r} is not a structure radagent knows"
                           + (f" (did you mean {', '.join(close)}?)" if close else ""))
                continue
            out[int(k)] = name
        src = self.labels or self.model / "dataset.json"
        if bad:
            raise SegmentConfigError(f"{src}: " + "; ".join(bad) + " (expected label ids mapped to registry names such as "
                                     "liver, pancreas, liver_lesion, pancreatic_tumor)")
        if not out:
            raise SegmentConfigError(f"{src}: no foreground label (expected ids >= 1 mapped to structure names)")
        return out

    @property
    def task(self) -> str:
        """The model's name in provenance: its dataset folder (``Dataset901_x``) when the results folder sits in one."""
        parent = self.model.resolve().parent.name
        return parent if parent.startswith("Dataset") else self.model.resolve().name

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.label_map.values()))

    def segment(self, ct: CTVolume) -> LabelSet:
        import tempfile

        import nibabel as nib
        import numpy as np
        import torch
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        from .runs import ModelRun, TaskProgress, WeightsRecord, sha256_file
        from .trainers import patch_nnunet_trainer_lookup

        patch_nnunet_trainer_lookup()
        progress = TaskProgress([(self.task, 1.0)])
        progress.start(self.task)
        t0 = time.perf_counter()
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                    device=torch.device(self.device), verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(self.model), use_folds=self.folds, checkpoint_name=self.checkpoint)
        with tempfile.TemporaryDirectory(prefix="radagent-nnunet-") as tmp:
            ct_path, seg_path = Path(tmp) / "ct.nii.gz", Path(tmp) / "seg.nii.gz"
            hu = ct.hu if ct.hu.dtype.kind in "iu" else ct.hu.astype(np.float32)
            nib.save(nib.Nifti1Image(hu, ct.affine), str(ct_path))
            io = SimpleITKIO()
            img, props = io.read_images([str(ct_path)])
            seg = predictor.predict_single_npy_array(img, props, None, None, False)
            io.write_seg(np.asarray(seg).astype(np.uint16), str(seg_path), props)
            ls = load_multilabel(seg_path, ct, self.label_map, tol_mm=self.tol_mm)
        ls = relabel(ls, f"nnunet:{self.task}")
        conf = json.loads((self.model / "plans.json").read_text()).get("plans_name")
        self.runs = [ModelRun("nnunet", self.task, _version(), "ran", round(time.perf_counter() - t0, 2),
                              mode=conf, device=self.device,
                              weights=[WeightsRecord(f"fold_{f}", None, self.model.name.split("__")[-1],
                                                     str(self.model / f"fold_{f}" / self.checkpoint),
                                                     sha256_file(self.model / f"fold_{f}" / self.checkpoint))
                                       for f in self.folds])]
        progress.finish(self.task)
        return ls
