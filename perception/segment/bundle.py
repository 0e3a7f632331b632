"""Any MONAI bundle as a radagent backend: ``--backend bundle --bundle DIR``.

``DIR`` is a MONAI bundle (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt``),
read by ``monai.bundle.ConfigParser``: its ``network_def`` with the weights of ``models/model.pt``, its
``preprocessing`` (applied to ``{"image": <the CT as NIfTI>}``) and its ``inferer`` (e.g. a
SlidingWindowInferer) run as the bundle defines them. The argmax label map is brought back onto the CT
grid by nearest-neighbour resampling through the affines (the preprocessed image's MetaTensor affine to
the CT's). Labels come from ``metadata.json`` ``network_data_format.outputs.pred.channel_def``
(``{"1": "pancreas", "2": "pancreatic tumor"}``), each checked against the registry (a tumour label
becomes a lesion mask of its organ). Masks' source: ``bundle:<bundle name>#<label id>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import registry
from ..mask import Mask
from ..masks import LabelSet
from ..volume import CTVolume
from .common import select_device
from .errors import BackendUnavailableError, SegmentConfigError, missing_package_message

REQUIRED = ("configs/inference.json", "configs/metadata.json", "models/model.pt")


@dataclass
class BundleSegmenter:
    bundle: Path
    device: str = "auto"
    name: str = "bundle"
    runs: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.bundle = Path(self.bundle)
        missing = [f for f in REQUIRED if not (self.bundle / f).is_file()]
        if missing:
            raise SegmentConfigError(f"{self.bundle}: not a MONAI bundle (expected {', '.join(REQUIRED)}; missing "
                                     f"{', '.join(missing)})")
        self.meta = json.loads((self.bundle / "configs/metadata.json").read_text())
        self.label_map = self._label_map()
        import importlib.util

        if any(importlib.util.find_spec(m) is None for m in ("torch", "monai")):
            raise BackendUnavailableError(missing_package_message("the bundle backend", "monai and torch"))
        self.device = select_device(self.device)

    def _label_map(self) -> dict[int, str]:
        src = self.bundle / "configs/metadata.json"
        try:
            chans = self.meta["network_data_format"]["outputs"]["pred"]["channel_def"]
        except (KeyError, TypeError) as e:
            raise SegmentConfigError(f"{src}: expected network_data_format.outputs.pred.channel_def (label id -> name); "
                                     f"found none ({e})") from e
        out, bad = {}, []
        for k, v in chans.items():
            if int(k) == 0:
                continue
            name = registry.canonical_name(str(v).replace(" ", "_"))
            if registry.classify(name) is None:
                close = registry.did_you_mean(name)
                bad.append(f"channel {k}: {v!r} is not a structure radagent knows" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            else:
                out[int(k)] = name
        if bad:
            raise SegmentConfigError(f"{src}: " + "; ".join(bad))
        return out

    @property
    def task(self) -> str:
        return str(self.meta.get("name") or self.bundle.resolve().name).replace(" ", "_")

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.label_map.values()))

    def segment(self, ct: CTVolume) -> LabelSet:
        import tempfile

        import nibabel as nib
        import torch
        from monai.bundle import ConfigParser
        from scipy.ndimage import map_coordinates

        from .runs import ModelRun, TaskProgress, WeightsRecord, sha256_file

        progress = TaskProgress([(self.task, 1.0)])
        progress.start(self.task)
        t0 = time.perf_counter()
        parser = ConfigParser()
        parser.read_config(str(self.bundle / "configs/inference.json"))
        parser.read_meta(str(self.bundle / "configs/metadata.json"))
        parser["bundle_root"] = str(self.bundle)
        parser["device"] = f"$torch.device('{self.device}')"
        net = parser.get_parsed_content("network_def")
        state = torch.load(self.bundle / "models/model.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state) if isinstance(state, dict) and "model" in state else state)
        net.to(self.device).eval()
        pre = parser.get_parsed_content("preprocessing")
        inferer = parser.get_parsed_content("inferer")
        with tempfile.TemporaryDirectory(prefix="radagent-bundle-") as tmp:
            ct_path = Path(tmp) / "ct.nii.gz"
            hu = ct.hu if ct.hu.dtype.kind in "iu" else ct.hu.astype(np.float32)
            nib.save(nib.Nifti1Image(hu, ct.affine), str(ct_path))
            data = pre({"image": str(ct_path)})
            img = data["image"]
            with torch.no_grad():
                logits = inferer(img.unsqueeze(0).to(self.device), net)
            lab = torch.argmax(logits, dim=1)[0].cpu().numpy().astype(np.int16)
            model_affine = np.asarray(img.affine, dtype=np.float64)
        # CT voxel -> world -> model-grid voxel, nearest neighbour
        to_model = np.linalg.inv(model_affine) @ np.asarray(ct.affine, dtype=np.float64)
        grid = np.indices(ct.shape, dtype=np.float32).reshape(3, -1)
        coords = to_model[:3, :3] @ grid + to_model[:3, 3:4]
        back = map_coordinates(lab, coords, order=0, mode="constant", cval=0).reshape(ct.shape)
        out = LabelSet(ct.shape)
        src = f"bundle:{self.task}"
        for k, name in self.label_map.items():
            out.masks[name] = Mask.from_dense(name, back == k, f"{src}#{k}")
        self.runs = [ModelRun("bundle", self.task, str(self.meta.get("version", "unknown")), "ran",
                              round(time.perf_counter() - t0, 2), device=self.device,
                              weights=[WeightsRecord("models/model.pt", None, None, str(self.bundle / "models/model.pt"),
                                                     sha256_file(self.bundle / "models/model.pt"))])]
        progress.finish(self.task)
        return out
