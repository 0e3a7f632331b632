"""Vessel contact angle (perception.vessels) against analytic geometry and real CT vessel masks.

Truth is built independently of the code under test: lesions are annular sectors defined on voxel
centres in world coordinates (distance from the vessel axis, polar angle around it), so the true
angle of contact is the sector's angle. The measured angle treats voxels as squares, which adds up
to about one voxel of arc in total (the tolerances below allow for it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from eval.bench_vessels import full_size_grid_cases
from perception.errors import GeometryMismatchError
from perception.mask import Mask
from perception.schema import ContactCategory
from perception.vessels import vessel_contact
from tests.require import require_path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TOTALSEG = DATA / "totalseg"

SPACING = (0.8, 0.8, 2.5)
RADIUS = 5.0


def _affine(kind: str) -> np.ndarray:
    """Grids with 0.8 x 0.8 mm pixels and 2.5 mm slices in several orientations."""
    a = np.eye(4)
    if kind == "RAS":
        a[:3, :3] = np.diag(SPACING)
        a[:3, 3] = (-32.0, -32.0, -50.0)
    elif kind == "LPS":  # flipped in-plane axes
        a[:3, :3] = np.diag((-SPACING[0], -SPACING[1], SPACING[2]))
        a[:3, 3] = (32.0, 32.0, -50.0)
    elif kind == "slices_first_rotated":  # axial axis is voxel axis 0; in-plane axes rotated 30 deg
        c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
        a[:3, 0] = (0.0, 0.0, SPACING[2])
        a[:3, 1] = (-SPACING[0] * c, -SPACING[0] * s, 0.0)
        a[:3, 2] = (-SPACING[1] * s, SPACING[1] * c, 0.0)
        a[:3, 3] = -(a[:3, :3] @ (np.array([40, 80, 80]) / 2 - 0.5))  # grid centred on the origin
    else:
        raise ValueError(kind)
    return a


def _shape(kind: str) -> tuple[int, int, int]:
    return (40, 80, 80) if kind == "slices_first_rotated" else (80, 80, 40)


def _world(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    idx = np.indices(shape).reshape(3, -1).T.astype(float)
    return (idx @ affine[:3, :3].T + affine[:3, 3]).reshape(*shape, 3)


def _tube_case(shape, affine, direction, *, theta_deg, along=(-10.0, 10.0), phi0_deg=30.0,
               inner_mm=RADIUS + 0.5, outer_mm=RADIUS + 10.0, point=(0.3, -0.2, 0.4)):
    """A straight vessel of radius RADIUS through ``point`` along ``direction`` and a lesion shell
    ``inner_mm``..``outer_mm`` from its axis, spanning ``theta_deg`` of polar angle, over ``along``
    (mm along the axis). Returns (lesion, vessel) masks."""
    w = _world(shape, affine) - np.asarray(point)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    t = w @ d
    radial = w - t[..., None] * d
    dist = np.linalg.norm(radial, axis=-1)
    e1 = np.cross(d, (0.0, 0.0, 1.0)) if abs(d[2]) < 0.9 else np.cross(d, (1.0, 0.0, 0.0))
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    phi = np.degrees(np.arctan2(radial @ e2, radial @ e1))
    in_sector = ((phi - phi0_deg) % 360.0) <= theta_deg if theta_deg < 360 else np.ones_like(dist, bool)
    lesion = (dist >= inner_mm) & (dist <= outer_mm) & in_sector & (t >= along[0]) & (t <= along[1])
    vessel = dist <= RADIUS
    return Mask.from_dense("lesion", lesion), Mask.from_dense("vessel", vessel)


def _expected_category(theta: float) -> ContactCategory:
    if theta == 0:
        return ContactCategory.none
    return ContactCategory.abutment if theta <= 180 else ContactCategory.encasement


# ---- 1. vessel along the axial axis -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["RAS", "LPS", "slices_first_rotated"])
@pytest.mark.parametrize("theta", [0, 90, 170, 190, 270, 360])
def test_cranio_caudal_vessel_angle_category_length(kind, theta):
    affine = _affine(kind)
    if theta == 0:  # a full shell 5 mm away from the wall: no contact
        lesion, vessel = _tube_case(_shape(kind), affine, (0, 0, 1), theta_deg=360,
                                    inner_mm=RADIUS + 5.0, outer_mm=RADIUS + 15.0)
    else:
        lesion, vessel = _tube_case(_shape(kind), affine, (0, 0, 1), theta_deg=theta)
    vc = vessel_contact(lesion, vessel, affine, tolerance_mm=2.0)
    assert vc is not None
    assert vc.category == _expected_category(theta)
    assert abs(vc.max_angle_deg - theta) <= 15.0, (theta, vc.max_angle_deg)
    assert vc.method.startswith("axial") and "2 mm" in vc.method
    if theta == 0:
        assert vc.contact_length_mm == 0.0 and vc.slice_of_max is None
    else:
        assert abs(vc.contact_length_mm - 20.0) <= SPACING[2] + 1e-6, vc.contact_length_mm
        ax = int(np.argmax(np.abs(affine[2, :3])))
        lo, hi = lesion.bbox[ax]
        assert lo <= vc.slice_of_max < hi


# ---- 2. vessel running in the axial plane or obliquely: perpendicular sections -----------------

@pytest.mark.parametrize("kind", ["RAS", "LPS"])
@pytest.mark.parametrize("direction", [(1, 0, 0), (1, 1, 0), (1, 0, 0.577)], ids=["x", "xy", "tilt60"])
@pytest.mark.parametrize("theta", [120, 240])
@pytest.mark.parametrize("phi0", [0.0, 100.0])
def test_in_plane_vessel_perpendicular_sections(kind, direction, theta, phi0):
    affine = _affine(kind)
    lesion, vessel = _tube_case(_shape(kind), affine, direction, theta_deg=theta, phi0_deg=phi0)
    vc = vessel_contact(lesion, vessel, affine)
    assert vc.method.startswith("perpendicular"), vc.method
    assert abs(vc.max_angle_deg - theta) <= 20.0, (theta, vc.max_angle_deg)
    assert vc.category == _expected_category(theta)
    # 20 mm of vessel in contact, sections every 2.5 mm along the centreline
    assert abs(vc.contact_length_mm - 20.0) <= 2 * 2.5, vc.contact_length_mm


def test_in_plane_vessel_out_of_reach_is_none():
    affine = _affine("RAS")
    lesion, vessel = _tube_case(_shape("RAS"), affine, (1, 0, 0), theta_deg=360,
                                inner_mm=RADIUS + 5.0, outer_mm=RADIUS + 15.0)
    vc = vessel_contact(lesion, vessel, affine)
    assert vc.category == ContactCategory.none and vc.max_angle_deg == 0.0


# ---- contact rules -----------------------------------------------------------------------------

def test_lesion_overlapping_the_vessel_wall_counts_as_contact():
    affine = _affine("RAS")
    lesion, vessel = _tube_case(_shape("RAS"), affine, (0, 0, 1), theta_deg=90,
                                inner_mm=RADIUS - 1.5, outer_mm=RADIUS + 6.0)
    assert lesion.overlap_count(vessel) > 0
    vc = vessel_contact(lesion, vessel, affine)
    assert abs(vc.max_angle_deg - 90) <= 15.0 and vc.category == ContactCategory.abutment


def test_tolerance_is_the_gap_between_wall_and_tumour():
    """A full ring 3.5 mm from the axis-side voxel edge: out of reach at 2 mm, in reach at 5 mm."""
    affine = _affine("RAS")
    lesion, vessel = _tube_case(_shape("RAS"), affine, (0, 0, 1), theta_deg=360,
                                inner_mm=RADIUS + 3.5, outer_mm=RADIUS + 8.0)
    assert vessel_contact(lesion, vessel, affine, tolerance_mm=2.0).category == ContactCategory.none
    vc = vessel_contact(lesion, vessel, affine, tolerance_mm=5.0)
    assert vc.category == ContactCategory.encasement and vc.max_angle_deg == 360.0
    assert "5 mm" in vc.method


def test_touching_voxels_count_at_coarse_resolution():
    """3 mm voxels, lesion voxels face-adjacent to the vessel: a 0 mm gap, contact at any tolerance."""
    shape = (30, 30, 10)
    vessel = np.zeros(shape, bool)
    vessel[12:17, 12:17, :] = True
    lesion = np.zeros(shape, bool)
    lesion[17:20, 12:17, 3:6] = True  # one face of the square vessel
    affine = np.diag((3.0, 3.0, 3.0, 1.0))
    vc = vessel_contact(Mask.from_dense("l", lesion), Mask.from_dense("v", vessel), affine, tolerance_mm=0.0)
    # the face of a 5-voxel square seen from its centre spans 2*atan(1) = 90 deg
    assert abs(vc.max_angle_deg - 90.0) <= 10.0 and vc.contact_length_mm == 9.0


def test_empty_and_distant_masks():
    affine = _affine("RAS")
    lesion, vessel = _tube_case(_shape("RAS"), affine, (0, 0, 1), theta_deg=90)
    empty = Mask.from_dense("vessel", np.zeros(_shape("RAS"), bool))
    assert vessel_contact(lesion, empty, affine) is None
    vc = vessel_contact(empty, vessel, affine, display_name="superior mesenteric vein")
    assert vc.vessel == "superior mesenteric vein" and vc.category == ContactCategory.none
    far = np.zeros(_shape("RAS"), bool)
    far[0:3, 0:3, 0:3] = True
    vc = vessel_contact(Mask.from_dense("lesion", far), vessel, affine)
    assert (vc.vessel, vc.max_angle_deg, vc.contact_length_mm, vc.slice_of_max) == ("vessel", 0.0, 0.0, None)


def test_invalid_inputs():
    affine = _affine("RAS")
    lesion, vessel = _tube_case(_shape("RAS"), affine, (0, 0, 1), theta_deg=90)
    other = Mask.from_dense("vessel", np.ones((4, 4, 4), bool))
    with pytest.raises(GeometryMismatchError, match="grid"):
        vessel_contact(lesion, other, affine)
    with pytest.raises(ValueError, match="tolerance_mm"):
        vessel_contact(lesion, vessel, affine, tolerance_mm=-1.0)
    with pytest.raises(ValueError, match="4x4"):
        vessel_contact(lesion, vessel, affine[:3])


def _on_own_grid(mask: Mask, lo: tuple[int, int, int], shape: tuple[int, int, int]) -> Mask:
    """``mask`` moved onto a grid of ``shape`` whose voxel (0, 0, 0) is voxel ``lo`` of its own grid."""
    return Mask(mask.name, shape, tuple((a - o, b - o) for (a, b), o in zip(mask.bbox, lo)), mask.data)


def test_full_size_grid_with_cropped_masks():
    """Masks stored cropped on a 512 x 512 x 300 grid: the expected method and category, and the
    very result the same masks give on a grid just large enough to hold them with a margin (the computation
    depends on the masks, not on the grid around them). Its cost is eval/bench_vessels.py's figure
    (~50 ms here, where a whole-volume distance transform alone takes ~26 s)."""
    for les, ves, affine, method in full_size_grid_cases():
        vc = vessel_contact(les, ves, affine)
        assert vc.method.startswith(method) and vc.category == ContactCategory.abutment
        assert 0.0 < vc.max_angle_deg <= 180.0 and vc.contact_length_mm > 0.0
        pad = 8  # voxels of margin, so that the small grid's edge is not the masks' edge
        lo = tuple(max(0, min(a[0], b[0]) - pad) for a, b in zip(les.bbox, ves.bbox))
        hi = tuple(min(n, max(a[1], b[1]) + pad) for a, b, n in zip(les.bbox, ves.bbox, les.shape))
        small = tuple(h - l for l, h in zip(lo, hi))
        aff = affine.copy()
        aff[:3, 3] = affine[:3, :3] @ np.array(lo, float) + affine[:3, 3]
        vs = vessel_contact(_on_own_grid(les, lo, small), _on_own_grid(ves, lo, small), aff)
        assert (vs.max_angle_deg, vs.contact_length_mm, vs.category, vs.method) == (
            vc.max_angle_deg, vc.contact_length_mm, vc.category, vc.method)
        assert vs.slice_of_max + lo[2] == vc.slice_of_max


# ---- 3. real CT vessel masks (TotalSegmentator example) ------------------------------------------

@pytest.fixture(scope="module")
def totalseg():
    seg_path = TOTALSEG / "example_seg.nii.gz"
    ct_path = TOTALSEG / "example_ct_sm.nii.gz"
    require_path(seg_path, "data")
    seg = nib.load(seg_path)
    ct = nib.load(ct_path)
    assert seg.shape == ct.shape and np.allclose(seg.affine, ct.affine)
    labels = np.asarray(seg.dataobj)
    world = _world(labels.shape, seg.affine)
    return labels, seg.affine, world


def _sector_lesion(vessel, target, world, affine, slices, theta, phi0):
    """Voxels 0.5-8 mm from ``target`` (the vessel component wrapped) whose polar angle around the
    per-slice centroid of ``target`` lies in [phi0, phi0 + theta], on the given axial slices."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    dist = ndimage.distance_transform_edt(~target, sampling=spacing)  # small test grid only
    lesion = np.zeros_like(vessel)
    for k in slices:
        c = world[:, :, k][target[:, :, k]].mean(0)
        rel = world[:, :, k] - c
        phi = np.degrees(np.arctan2(rel[..., 1], rel[..., 0]))
        lesion[:, :, k] = ((dist[:, :, k] > 0.5) & (dist[:, :, k] <= 8.0) & (((phi - phi0) % 360) <= theta)
                           & ~vessel[:, :, k])
    return lesion


def _component_near(vessel, slices, ij):
    """Per axial slice, the 8-connected vessel component whose centroid is nearest voxel ``ij``."""
    out = np.zeros_like(vessel)
    for k in slices:
        lab, n = ndimage.label(vessel[:, :, k], structure=np.ones((3, 3)))
        cents = ndimage.center_of_mass(vessel[:, :, k], lab, range(1, n + 1))
        best = 1 + int(np.argmin([math.hypot(c[0] - ij[0], c[1] - ij[1]) for c in cents]))
        out[:, :, k] = lab == best
    return out


# label ids of TotalSegmentator `total` (class_map.json); slices where the vessel runs cranio-caudally
REAL_CASES = [
    ("aorta", 52, range(10, 15), None, 120, 90.0),
    ("aorta", 52, range(10, 15), None, 240, 200.0),
    ("inferior_vena_cava", 63, range(10, 15), None, 120, 300.0),
    ("inferior_vena_cava", 63, range(10, 15), None, 240, 0.0),
    # slices 11-12: the portal-vein trunk (a second, smaller branch of this mask lies ~12 voxels away)
    ("portal_vein_and_splenic_vein", 64, range(11, 13), (56, 63), 120, 60.0),
    ("portal_vein_and_splenic_vein", 64, range(11, 13), (56, 63), 240, 150.0),
]


@pytest.mark.parametrize("name,label,slices,near,theta,phi0", REAL_CASES,
                         ids=[f"{c[0]}-{c[4]}" for c in REAL_CASES])
def test_real_vessel_wrapped_by_synthetic_tumour(totalseg, name, label, slices, near, theta, phi0):
    labels, affine, world = totalseg
    assert json.loads((TOTALSEG / "class_map.json").read_text())["total"][str(label)] == name
    vessel = labels == label
    target = vessel if near is None else _component_near(vessel, slices, near)
    lesion = _sector_lesion(vessel, target, world, affine, slices, theta, phi0)
    vc = vessel_contact(Mask.from_dense("lesion", lesion), Mask.from_dense(name, vessel), affine)
    assert vc.method.startswith("axial")
    assert abs(vc.max_angle_deg - theta) <= 25.0, (name, theta, vc.max_angle_deg)
    assert vc.category == _expected_category(theta)
    assert abs(vc.contact_length_mm - 3.0 * len(slices)) <= 3.0, vc.contact_length_mm
    assert vc.slice_of_max in slices
