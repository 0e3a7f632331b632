"""Measurement kernels against analytic geometry, in any orientation (RAS, LPS, oblique, sheared)."""

from __future__ import annotations

import numpy as np
import pytest

from eval.synthetic import ellipsoid
from perception.mask import Mask
from perception.measure import axial_diameters, boundary_points, feret_3d
from perception.volume import axial_axis


def rot_z(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


def affines():
    ras = np.diag([0.7, 0.7, 2.5, 1.0])
    lps = np.diag([-0.8, -0.8, 2.0, 1.0])
    lps[:3, 3] = [100, 50, -300]
    obl = np.eye(4)
    obl[:3, :3] = rot_z(30) @ np.diag([0.75, 0.75, 2.0])
    # axial axis stored first (i = S-I), in-plane axes second and third
    perm = np.zeros((4, 4))
    perm[:3, :3] = np.array([[0, 0.8, 0], [0, 0, 0.8], [1.5, 0, 0]])
    perm[3, 3] = 1
    return {"ras": ras, "lps": lps, "oblique": obl, "axial_first": perm}


def measure(mask_dense, affine):
    m = Mask.from_dense("x", mask_dense)
    ax = axial_axis(affine)
    d = axial_diameters(m.data, m.bbox, affine, ax)
    return d, feret_3d(m.data, m.bbox, affine), m


@pytest.mark.parametrize("name", list(affines()))
def test_ellipsoid_axes_any_orientation(name):
    aff = affines()[name]
    shape = (80, 80, 40) if name != "axial_first" else (40, 80, 80)
    center = aff[:3, :3] @ (np.array(shape) / 2.0) + aff[:3, 3]
    # semi-axes 20 (x), 12 (y), 9 (z) mm, rotated 25 deg in the axial plane
    semi = (20.0, 12.0, 9.0)
    dense = ellipsoid(shape, aff, center, semi, rotation=rot_z(25))
    d, feret, m = measure(dense, aff)
    inplane = max(np.linalg.norm(aff[:3, :3], axis=0)[[i for i in range(3) if i != axial_axis(aff)]])
    sz = np.linalg.norm(aff[:3, axial_axis(aff)])
    assert d.long_axis_mm == pytest.approx(40.0, abs=1.5 * inplane)
    assert d.short_axis_mm == pytest.approx(24.0, abs=1.5 * inplane)
    assert feret == pytest.approx(40.0, abs=1.5 * inplane)
    vol = m.voxel_count * abs(np.linalg.det(aff[:3, :3]))
    assert vol == pytest.approx(4 / 3 * np.pi * np.prod(semi), rel=0.05)
    # the long-axis slice is the one through the centre (within one slice)
    ax = axial_axis(aff)
    centre_idx = np.linalg.solve(aff[:3, :3], center - aff[:3, 3])[ax]
    assert abs(d.slice_index - centre_idx) <= 1.0 + 1e-9
    # endpoints lie on that slice and are long_axis_mm apart
    p0, p1 = (aff[:3, :3] @ np.array(p) + aff[:3, 3] for p in d.long_endpoints)
    assert np.linalg.norm(p1 - p0) == pytest.approx(d.long_axis_mm)
    assert d.long_endpoints[0][ax] == d.slice_index
    del sz


def test_long_axis_is_in_plane_not_3d():
    """A cigar along S-I: RECIST long axis is the axial width, the 3D diameter is the length."""
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    dense = ellipsoid((40, 40, 80), aff, (20, 20, 40), (6.0, 4.0, 30.0))
    d, feret, _ = measure(dense, aff)
    assert d.long_axis_mm == pytest.approx(12.0, abs=1.5)
    assert d.short_axis_mm == pytest.approx(8.0, abs=1.5)
    assert feret == pytest.approx(60.0, abs=1.5)


def test_sheared_gantry_tilt_grid():
    """On a sheared grid (gantry tilt) world geometry, not voxel counts, decides the diameters."""
    aff = np.eye(4)
    aff[:3, :3] = np.array([[0.8, 0, 0], [0, 0.8, 0.9], [0, 0, 2.5]])  # each slice shifted 0.9 mm in y
    dense = ellipsoid((70, 70, 30), aff, (28, 40, 37), (15.0, 15.0, 15.0))
    d, feret, m = measure(dense, aff)
    assert d.long_axis_mm == pytest.approx(30.0, abs=1.5)
    assert feret == pytest.approx(30.0, abs=2.5)
    assert m.voxel_count * abs(np.linalg.det(aff[:3, :3])) == pytest.approx(4 / 3 * np.pi * 15**3, rel=0.05)


def test_single_voxel_and_rectangle_exact():
    aff = np.diag([0.5, 0.7, 3.0, 1.0])
    one = np.zeros((5, 5, 3), bool)
    one[2, 2, 1] = True
    d, feret, _ = measure(one, aff)
    assert d.long_axis_mm == pytest.approx(0.7)  # face midpoints: one voxel (0.7 mm) along y
    rect = np.zeros((20, 20, 5), bool)
    rect[2:12, 5:9, 1:4] = True  # 10 x 4 voxels = 5.0 x 2.8 mm, 3 slices = 9 mm
    d, feret, _ = measure(rect, aff)
    # outline = face midpoints: farthest pair spans the full length along one axis and one voxel less across
    assert d.long_axis_mm == pytest.approx(np.hypot(5.0, 2.8 - 0.7), abs=1e-9)
    assert d.short_axis_mm > 2.0 and d.short_axis_mm < 3.5


def test_boundary_points_are_face_midpoints():
    m = np.zeros((3, 4), bool)
    m[1, 1:3] = True
    pts = {tuple(p) for p in boundary_points(m)}
    assert pts == {(0.5, 1.0), (0.5, 2.0), (1.5, 1.0), (1.5, 2.0), (1.0, 0.5), (1.0, 2.5)}
