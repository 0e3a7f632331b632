"""What the segmentation factory (``base``) and every backend share, so that no backend imports ``base``.

- ``BACKENDS`` / ``BackendName``: the backend names, as data (the factory, the request and the CLI
  choices read them).
- ``DEVICE_RE`` and ``select_device``: the device spelling and the choice of a torch device.
- ``relabel``: a LabelSet whose masks name the backend that made them (provenance).
- ``nifti_bytes``: a mask or label map as the bytes of a ``.nii.gz`` file.

Import graph (module level): ``common`` and ``errors`` import no other module of this package;
``totalseg``, ``unit.*`` and ``request`` import them; ``base`` imports ``common``, ``errors`` and
``request``, and the backends only lazily, by name, in its factory.
"""

from __future__ import annotations

import gzip
import re
from typing import Literal, get_args

import nibabel as nib
import numpy as np

from ..mask import Mask
from ..masks import LabelSet
from .errors import DeviceError

BackendName = Literal["masks", "totalseg", "unit", "nnunet", "bundle"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_SPELLINGS = "auto, cpu, cuda, cuda:N or mps"


def select_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; an explicit device is checked.

    Without torch installed, ``auto`` and ``cpu`` give ``cpu``; asking for a GPU raises DeviceError.
    """
    req = str(requested).strip().lower()
    if not DEVICE_RE.match(req):
        raise DeviceError(f"device {requested!r} not understood: expected {DEVICE_SPELLINGS}")
    try:
        import torch
    except ImportError:
        torch = None
    if req == "auto":
        return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    if req == "cpu":
        return "cpu"
    if torch is None:
        raise DeviceError(f"device {requested!r} requested but torch is not installed (only cpu is available)")
    if req.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        idx = int(req.split(":")[1]) if ":" in req else 0
        if idx >= n:
            raise DeviceError(f"device {requested!r} requested but torch sees {n} CUDA device(s)"
                              + (f" (valid: {', '.join(f'cuda:{i}' for i in range(n))})" if n else "; use --device cpu or auto"))
        return req
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"device {requested!r} requested but MPS is not available on this machine")
    return "mps"


def relabel(ls: LabelSet, source: str) -> LabelSet:
    """Copy of ls whose masks' source is ``source`` + the original label suffix (``#5``)."""
    out = LabelSet(ls.shape, unknown=dict(ls.unknown), warnings=list(ls.warnings), ignored=list(ls.ignored))
    for n, m in ls.masks.items():
        suffix = m.source[m.source.rfind("#"):] if "#" in m.source else ""
        out.masks[n] = Mask(m.name, m.shape, m.bbox, m.data, source + suffix)
    return out


def nifti_bytes(arr: np.ndarray, affine: np.ndarray) -> bytes:
    """A .nii.gz file's bytes (gzip level 1: masks compress well anyway)."""
    img = nib.Nifti1Image(np.asarray(arr), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=1)
