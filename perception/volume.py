"""CTVolume: HU voxels on a grid described by a RAS affine.

Axis contract: ``hu[i, j, k]`` is the voxel whose world position (RAS+, mm) is
``affine @ [i, j, k, 1]``. The affine may be oblique or sheared (gantry tilt);
measurements always go through it and never assume an axis order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

from .errors import CTLoadError


def axcodes(affine: np.ndarray) -> str:
    return "".join(nib.aff2axcodes(affine))


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Length in mm of one step along each voxel axis."""
    return tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to world superior-inferior (largest |S| cosine)."""
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(cols[2])))


@dataclass(frozen=True)
class CTVolume:
    """A 3D CT in Hounsfield units.

    ``hu`` keeps its stored dtype (int16 where the file is integer, float32
    otherwise) to stay close to the I/O floor; measurements cast locally.
    """

    hu: np.ndarray
    affine: np.ndarray
    source: str
    source_format: str  # "nifti" | "dicom"
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise CTLoadError(f"{self.source}: expected a 3D image, found shape {self.hu.shape}")
        if self.affine.shape != (4, 4) or not np.all(np.isfinite(self.affine)):
            raise CTLoadError(f"{self.source}: expected a finite 4x4 affine, found {self.affine!r}")
        if abs(np.linalg.det(self.affine[:3, :3])) < 1e-6:
            raise CTLoadError(f"{self.source}: affine is singular (zero voxel size): {self.affine.tolist()}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def orientation(self) -> str:
        return axcodes(self.affine)

    @property
    def axial_axis(self) -> int:
        return axial_axis(self.affine)

    @property
    def slice_thickness_mm(self) -> float:
        """Slice thickness from the header where known, else the spacing along the axial axis."""
        t = self.meta.get("slice_thickness_mm")
        return float(t) if t else self.spacing[self.axial_axis]
