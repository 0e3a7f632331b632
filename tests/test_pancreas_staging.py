"""Pancreatic tumour staging end to end on a real portal-venous DICOM CT (HCC_048, 0.7 x 0.7 x 2.5 mm)
with vessel and tumour masks of known geometry: T stage (AJCC 8), NCCN resectability, computed
head/body/tail. Truth: the geometry defined here (angles, sizes, sides)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

from agent.case import measure
from eval.synthetic import ellipsoid, save_nifti, world_grid
from perception.io import load_ct
from tests.conftest import data_path

# world (RAS mm) positions of vertical vessel centrelines: x (+ = patient right), y (+ = anterior)
VESSELS = {
    "superior_mesenteric_artery": ((0.0, 0.0), 4.0),
    "superior_mesenteric_vein": ((30.0, 0.0), 5.0),
    "aorta": ((0.0, -25.0), 10.0),
    "celiac_trunk": ((-45.0, 35.0), 3.0),
    "common_hepatic_artery": ((45.0, 35.0), 3.0),
}


@pytest.fixture(scope="module")
def grid():
    path = data_path("hcc048_portal_venous")
    ct = load_ct(path)
    xyz = world_grid(ct.shape, ct.affine)
    return dict(path=path, ct=ct, xyz=xyz)


def cylinder(xyz, center, r):
    return (xyz[0] - center[0]) ** 2 + (xyz[1] - center[1]) ** 2 <= r * r


def sector(xyz, center, r, theta, start, r_out, ks):
    d = np.sqrt((xyz[0] - center[0]) ** 2 + (xyz[1] - center[1]) ** 2)
    ang = (np.degrees(np.arctan2(xyz[1] - center[1], xyz[0] - center[0])) - start) % 360
    m = (d > r + 0.5) & (d <= r + r_out) & (ang < theta)
    out = np.zeros_like(m)
    out[:, :, ks] = m[:, :, ks]
    return out


def run_case(grid, tmp_path, lesion):
    xyz, ct = grid["xyz"], grid["ct"]
    folder = tmp_path / "masks"
    masks = {n: cylinder(xyz, c, r) for n, (c, r) in VESSELS.items()}
    masks["pancreas"] = ellipsoid(ct.shape, ct.affine, (20.0, 5.0, float(xyz[2].mean())), (60.0, 15.0, 30.0))
    masks["pancreatic_lesion"] = lesion & ~np.any([masks[v] for v in VESSELS], axis=0)
    for n, m in masks.items():
        save_nifti(m.astype(np.uint8), ct.affine, folder / f"{n}.nii.gz")
    f = measure(grid["path"], folder)
    assert len(f.lesions) == 1
    return f.lesions[0], masks["pancreatic_lesion"]


def feret_bounds(mask, affine):
    """Independent 3D diameter bounds: voxel-centre Feret <= true <= centre Feret + one voxel diagonal."""
    ijk = np.argwhere(mask).astype(float)
    pts = ijk @ affine[:3, :3].T
    hull = pts[ConvexHull(pts).vertices]
    d = pdist(hull).max()
    return d, d + np.linalg.norm(np.linalg.norm(affine[:3, :3], axis=0))


def hints(les):
    return {h.system: h for h in les.staging}


@pytest.mark.parametrize("theta,nccn", [(250.0, "locally advanced"), (100.0, "borderline resectable")])
def test_sma_contact_is_t4(grid, tmp_path, theta, nccn):
    xyz = grid["xyz"]
    les, _ = run_case(grid, tmp_path, sector(xyz, (0.0, 0.0), 4.0, theta, 30.0, 8.0, slice(10, 18)))
    sma = next(c for c in les.vessel_contacts if c.vessel == "superior_mesenteric_artery")
    assert sma.max_angle_deg == pytest.approx(theta, abs=20)
    assert sma.contact_length_mm == pytest.approx(8 * 2.5, abs=2.5)
    h = hints(les)
    assert h["AJCC8 pancreas T"].category == "T4" and "SMA" in h["AJCC8 pancreas T"].rule
    assert h["NCCN pancreas resectability"].category == nccn
    assert "SMA" in h["NCCN pancreas resectability"].rule


def test_smv_encasement_is_borderline(grid, tmp_path):
    xyz = grid["xyz"]
    les, mask = run_case(grid, tmp_path, sector(xyz, (30.0, 0.0), 5.0, 220.0, -20.0, 6.0, slice(12, 18)))
    lo, hi = feret_bounds(mask, grid["ct"].affine)
    assert lo - 1e-6 <= les.max_diameter_3d_mm <= hi + 1e-6
    assert 20.0 < lo and hi < 40.0  # the geometry is T2 whichever way it is measured
    smv = next(c for c in les.vessel_contacts if c.vessel == "superior_mesenteric_vein")
    assert smv.category.value == "encasement" and smv.max_angle_deg == pytest.approx(220, abs=20)
    assert all(c.category.value == "none" for c in les.vessel_contacts if c.vessel != "superior_mesenteric_vein")
    h = hints(les)
    assert h["AJCC8 pancreas T"].category == "T2"
    assert h["NCCN pancreas resectability"].category == "borderline resectable"
    assert "SMV" in h["NCCN pancreas resectability"].rule


def test_small_head_tumour_without_contact_is_resectable(grid, tmp_path):
    ct = grid["ct"]
    centre = (55.0, 8.0, float(grid["xyz"][2].mean()))
    les, mask = run_case(grid, tmp_path, ellipsoid(ct.shape, ct.affine, centre, (8.0, 7.0, 6.0)))
    assert les.long_axis_mm == pytest.approx(16.0, abs=1.5)
    assert les.short_axis_mm == pytest.approx(14.0, abs=1.5)
    h = hints(les)
    assert h["AJCC8 pancreas T"].category == "T1"
    assert "no contact with celiac trunk, SMA, CHA" in h["AJCC8 pancreas T"].rule
    assert h["NCCN pancreas resectability"].category == "resectable"
    # head/body/tail computed from the SMV and aorta (no sub-segment masks given)
    assert les.segments == ["pancreas_head"]
    assert les.segment_shares[0].source == "computed"


def test_body_and_tail_computed_from_vessels(grid, tmp_path):
    ct, xyz = grid["ct"], grid["xyz"]
    z = float(xyz[2].mean())
    # SMV left border x = 25, aortic left border x = -10: body between, tail left of -10
    body = ellipsoid(ct.shape, ct.affine, (12.0, 14.0, z), (5.0, 4.0, 5.0))
    les, _ = run_case(grid, tmp_path, body)
    assert les.segments == ["pancreas_body"]
    tail = ellipsoid(ct.shape, ct.affine, (-35.0, 10.0, z), (6.0, 5.0, 5.0))
    les, _ = run_case(grid, tmp_path / "t", tail)
    assert les.segments == ["pancreas_tail"]
