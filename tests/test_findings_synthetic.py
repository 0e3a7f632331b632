"""End-to-end findings on real CT (TotalSegmentator example, 3 mm RAS) with synthetic lesions of
known geometry. Truth comes from the analytic shapes and from counting in the test itself."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from agent.pipeline import analyze
from eval.synthetic import blob, ellipsoid, organ_center_mm, paint, world_grid, write_case
from perception.registry import totalseg_class_maps
from tests.conftest import data_path

VOX = 3.0  # mm, isotropic
TOL = 1.5 * VOX  # diameter tolerance: 1.5 voxels


def rot_z(deg):
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


def sector_around(vessel: np.ndarray, affine, z_slices, theta_deg: float, start_deg: float, r_out_mm=9.0):
    """Voxels within (0, r_out] mm of the vessel whose polar angle about the vessel's per-slice
    centroid lies in [start, start + theta): a tumour wrapping the vessel over theta degrees."""
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    dist = ndimage.distance_transform_edt(~vessel, sampling=sp)
    out = np.zeros_like(vessel)
    xyz = world_grid(vessel.shape, affine)
    for k in z_slices:
        v = vessel[:, :, k]
        if not v.any():
            continue
        cx, cy = xyz[0][:, :, k][v].mean(), xyz[1][:, :, k][v].mean()
        ang = (np.degrees(np.arctan2(xyz[1][:, :, k] - cy, xyz[0][:, :, k] - cx)) - start_deg) % 360.0
        out[:, :, k] = (dist[:, :, k] > 0) & (dist[:, :, k] <= r_out_mm) & (ang < theta_deg)
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ct_img = nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = np.asanyarray(nib.load(data_path("totalseg", "example_seg.nii.gz")).dataobj)
    aff = ct_img.affine
    hu = np.asanyarray(ct_img.dataobj).copy()
    names = totalseg_class_maps()["total"]
    masks = {names[int(l)]: seg == l for l in np.unique(seg) if l}
    liver, spleen, pancreas = masks["liver"], masks["spleen"], masks["pancreas"]
    truth = {}

    # L-a: hypoattenuating rotated ellipsoid deep in the liver (semi-axes 15 x 10 x 7.5 mm)
    c1 = organ_center_mm(liver, aff)
    e1 = ellipsoid(hu.shape, aff, c1, (15.0, 10.0, 7.5), rotation=rot_z(30)) & liver
    liver_mean = hu[liver & ~e1].mean()
    hu = paint(hu, e1, liver_mean - 45, 6, seed=1)
    truth["hypo"] = dict(mask=e1, long=30.0, short=20.0, d3=30.0, analytic_ml=4 / 3 * np.pi * 15 * 10 * 7.5 / 1000)

    # L-b: hyperattenuating irregular blob elsewhere in the liver (analytic Feret from the spheres)
    xyz = world_grid(hu.shape, aff)
    far = liver & (np.sqrt(((xyz - c1.reshape(3, 1, 1, 1)) ** 2).sum(0)) > 35)
    far_core = ndimage.binary_erosion(far, iterations=3)
    c2 = organ_center_mm(far_core, aff)
    e2 = blob(hu.shape, aff, c2, 7.0, n_lobes=3, seed=3) & liver
    hu = paint(hu, e2, liver_mean + 60, 5, seed=2)
    truth["hyper"] = dict(mask=e2)

    # a 1-voxel speck in the liver lesion mask: below the minimum size, dropped and counted
    speck = np.zeros_like(liver)
    idx = np.argwhere(ndimage.binary_erosion(liver, iterations=2) & ~ndimage.binary_dilation(e1 | e2, iterations=4))[0]
    speck[tuple(idx)] = True

    # S: isoattenuating spleen lesion
    c3 = organ_center_mm(spleen, aff)
    e3 = ellipsoid(hu.shape, aff, c3, (7.5, 7.5, 6.0)) & spleen
    spleen_mean = hu[spleen & ~e3].mean()
    hu = paint(hu, e3, spleen_mean + 3, 2, seed=4)
    truth["iso"] = dict(mask=e3)

    # K: left kidney tumour (enhancing 60 HU) and right kidney cyst (5 HU)
    kl, kr = masks["kidney_left"], masks["kidney_right"]
    e4 = ellipsoid(hu.shape, aff, organ_center_mm(kl, aff), (9.0, 9.0, 7.5)) & kl
    hu = paint(hu, e4, 60, 4, seed=5)
    e5 = ellipsoid(hu.shape, aff, organ_center_mm(kr, aff), (7.5, 7.5, 6.0)) & kr
    hu = paint(hu, e5, 5, 3, seed=6)
    truth["kidney_tumor"], truth["kidney_cyst"] = dict(mask=e4), dict(mask=e5)

    # pancreas split into head / body / tail by world x (test-defined planes); lesion in the head
    px = xyz[0][pancreas]
    x1, x2 = np.percentile(px, [33, 66])
    masks["pancreas_head"] = pancreas & (xyz[0] > x2)  # RAS: larger x = patient right = head
    masks["pancreas_body"] = pancreas & (xyz[0] <= x2) & (xyz[0] > x1)
    masks["pancreas_tail"] = pancreas & (xyz[0] <= x1)
    e6 = ellipsoid(hu.shape, aff, organ_center_mm(masks["pancreas_head"], aff), (6.0, 6.0, 6.0)) & masks["pancreas_head"]
    truth["pancreas"] = dict(mask=e6)

    # Couinaud-like split of the liver through lesion L-a: x >= x0 -> segment 7, else segment 8
    x0 = c1[0] - 5.0
    masks["liver_segment_7"] = liver & (xyz[0] >= x0)
    masks["liver_segment_8"] = liver & (xyz[0] < x0)
    truth["seg7_share"] = float((e1 & (xyz[0] >= x0)).sum() / e1.sum())

    # tumours wrapping the aorta over 120 deg and the IVC over 240 deg, on slices where pancreas is absent
    aorta, ivc = masks["aorta"], masks["inferior_vena_cava"]
    zs = [k for k in range(hu.shape[2]) if aorta[:, :, k].any() and ivc[:, :, k].any()]
    za, zi = zs[2:6], zs[-6:-2]
    t_ao = sector_around(aorta, aff, za, 120.0, 100.0) & ~(aorta | ivc | e6)
    t_ivc = sector_around(ivc, aff, zi, 240.0, 180.0) & ~(aorta | ivc | e6 | t_ao)
    truth["aorta"] = dict(mask=t_ao, angle=120.0, length=len(za) * VOX)
    truth["ivc"] = dict(mask=t_ivc, angle=240.0, length=len(zi) * VOX)

    masks["liver_lesion"] = e1 | e2 | speck
    masks["spleen_lesion"] = e3
    masks["kidney_lesion"] = e4
    masks["kidney_cyst_right"] = e5
    masks["pancreatic_lesion"] = e6
    masks["retroperitoneal_tumor_aorta"] = t_ao  # unknown name: warned, not interpreted
    masks["tumor"] = t_ao | t_ivc
    folder = write_case(tmp_path_factory.mktemp("case") / "case01", hu, aff, masks)
    findings = analyze(folder / "ct.nii.gz", folder)
    return dict(findings=findings, hu=hu, aff=aff, masks=masks, truth=truth, folder=folder)


def lesion_for(findings, mask: np.ndarray, aff):
    ijk = np.argwhere(mask).mean(0)
    c = aff[:3, :3] @ ijk + aff[:3, 3]
    best = min(findings.lesions, key=lambda l: np.linalg.norm(np.array(l.centroid_mm) - c))
    assert best.voxel_count == int(mask.sum()), (best, int(mask.sum()))
    return best


def test_hypo_ellipsoid_size_hu_attenuation(case):
    f, t, hu, m = case["findings"], case["truth"]["hypo"], case["hu"], case["masks"]
    les = lesion_for(f, t["mask"], case["aff"])
    assert les.organ == "liver" and les.mask == "liver_lesion" and les.kind == "lesion"
    assert les.volume_ml == pytest.approx(t["mask"].sum() * VOX**3 / 1000, abs=1e-4)
    assert les.volume_ml == pytest.approx(t["analytic_ml"], rel=0.2)
    assert les.long_axis_mm == pytest.approx(t["long"], abs=TOL)
    assert les.short_axis_mm == pytest.approx(t["short"], abs=TOL)
    assert les.max_diameter_3d_mm == pytest.approx(t["d3"], abs=TOL)
    vals = hu[t["mask"]].astype(float)
    assert les.mean_hu == pytest.approx(vals.mean(), abs=0.01)
    assert les.median_hu == pytest.approx(np.median(vals), abs=0.01)
    assert les.sd_hu == pytest.approx(vals.std(), abs=0.01)
    all_les = m["liver_lesion"] | m["tumor"]
    host = m["liver"] & ~all_les
    for name in ("spleen_lesion", "kidney_lesion", "kidney_cyst_right", "pancreatic_lesion"):
        host &= ~m[name]
    assert les.organ_mean_hu == pytest.approx(hu[host].mean(), abs=0.01)
    assert les.hu_difference == pytest.approx(vals.mean() - hu[host].mean(), abs=0.02)
    assert les.attenuation.value == "hypoattenuating"
    assert les.attenuation_term == "hypoattenuating"  # non-contrast study: attenuation, not enhancement
    assert les.recist_measurable
    # the long-axis slice is the central slice of the ellipsoid (+-1)
    zc = np.argwhere(t["mask"]).mean(0)[2]
    assert abs(les.axial_slice - zc) <= 1


def test_segments_shares(case):
    f = case["findings"]
    les = lesion_for(f, case["truth"]["hypo"]["mask"], case["aff"])
    share7 = case["truth"]["seg7_share"]
    expect = ["liver_segment_7", "liver_segment_8"] if share7 >= 0.5 else ["liver_segment_8", "liver_segment_7"]
    assert les.segments == [s for s in expect if (share7 if s.endswith("7") else 1 - share7) > 0.10]
    got = {s.name: s.fraction for s in les.segment_shares}
    assert got["liver_segment_7"] == pytest.approx(share7, abs=1e-3)


def test_hyper_blob_feret_against_union_of_spheres(case):
    f, t, hu = case["findings"], case["truth"]["hyper"], case["hu"]
    les = lesion_for(f, t["mask"], case["aff"])
    assert les.attenuation.value == "hyperattenuating"
    # independent 3D Feret: brute force over all voxel-corner points of the mask, minus one voxel
    ijk = np.argwhere(t["mask"]).astype(float)
    corners = (ijk[:, None, :] + np.array([[dx, dy, dz] for dx in (-.5, .5) for dy in (-.5, .5) for dz in (-.5, .5)])[None]).reshape(-1, 3) * VOX
    from scipy.spatial.distance import pdist
    from scipy.spatial import ConvexHull
    hull = corners[ConvexHull(corners).vertices]
    corner_feret = pdist(hull).max()
    assert corner_feret - np.sqrt(3) * VOX - 1e-6 <= les.max_diameter_3d_mm <= corner_feret + 1e-6
    assert les.long_axis_mm <= les.max_diameter_3d_mm + 1e-6


def test_iso_lesion_in_spleen(case):
    les = lesion_for(case["findings"], case["truth"]["iso"]["mask"], case["aff"])
    assert les.organ == "spleen"
    assert les.attenuation.value == "isoattenuating"
    assert abs(les.hu_difference) <= 10


def test_kidney_side_pole_type_and_staging(case):
    f = case["findings"]
    tum = lesion_for(f, case["truth"]["kidney_tumor"]["mask"], case["aff"])
    assert tum.organ == "kidney_left" and tum.laterality == "left"
    assert tum.kidney_pole in ("upper", "interpolar", "lower")
    t = next(h for h in tum.staging if h.system == "AJCC8 kidney T")
    assert t.category == "T1a" and "<= 40 mm" in t.rule
    cyst = lesion_for(f, case["truth"]["kidney_cyst"]["mask"], case["aff"])
    assert cyst.organ == "kidney_right" and cyst.laterality == "right" and cyst.kind == "cyst"
    assert any(c.startswith("cystic") for c in cyst.components)
    assert cyst.staging[0].category == "not assessed"


def test_pancreas_head(case):
    les = lesion_for(case["findings"], case["truth"]["pancreas"]["mask"], case["aff"])
    assert les.organ == "pancreas"
    assert les.segments == ["pancreas_head"]
    assert les.segment_shares[0].fraction == pytest.approx(1.0)
    systems = {h.system: h for h in les.staging}
    assert systems["AJCC8 pancreas T"].category == "T1"
    # no SMA / celiac / CHA mask in this case: T4 and resectability cannot be excluded, and say so
    assert "T4 not excluded" in systems["AJCC8 pancreas T"].rule
    assert systems["NCCN pancreas resectability"].category == "not assessed"


@pytest.mark.parametrize("key,vessel", [("aorta", "aorta"), ("ivc", "inferior_vena_cava")])
def test_vessel_wrapping(case, key, vessel):
    f, t = case["findings"], case["truth"][key]
    les = lesion_for(f, t["mask"], case["aff"])
    vc = next(v for v in les.vessel_contacts if v.vessel == vessel)
    assert vc.max_angle_deg == pytest.approx(t["angle"], abs=30)
    assert vc.category.value == ("abutment" if t["angle"] <= 180 else "encasement")
    assert vc.contact_length_mm == pytest.approx(t["length"], abs=VOX + 1e-6)


def test_organs_truncated_and_measured(case):
    f, m = case["findings"], case["masks"]
    liver = f.organ("liver")
    assert liver.status.value == "truncated_by_fov" and liver.volume_ml is None and liver.touches_edges
    assert liver.mean_hu is not None
    assert all(fl.status == "not_assessed" for fl in liver.flags if fl.name == "hepatomegaly")
    gb = f.organ("gallbladder")
    assert gb.status.value == "measured"
    assert gb.volume_ml == pytest.approx(m["gallbladder"].sum() * VOX**3 / 1000, abs=1e-3)
    assert gb.mean_hu == pytest.approx(case["hu"][m["gallbladder"]].mean(), abs=0.01)
    # kidneys hold lesions: organ volume counts them, host HU excludes them
    assert sorted(f.organ("kidney_left").lesion_ids) == sorted(l.id for l in f.lesions if l.organ == "kidney_left")


def test_phase_dropped_components_and_warnings(case):
    f, hu, m = case["findings"], case["hu"], case["masks"]
    core = ndimage.binary_erosion(m["aorta"])
    assert np.median(hu[core]) < 80
    assert f.study.contrast_phase.phase == "non_contrast"
    assert f.study.contrast_phase.aorta_hu == pytest.approx(float(np.median(hu[core])))
    assert f.dropped_components == 1
    assert any("retroperitoneal_tumor_aorta" in w for w in f.study.warnings)
    assert {h.system: h.category for h in f.staging} == {"N": "not assessed", "M": "not assessed"}


def test_lesion_ids_ordered_by_volume_and_json_roundtrip(case):
    from perception.schema import Findings

    f = case["findings"]
    vols = [l.volume_ml for l in f.lesions]
    assert vols == sorted(vols, reverse=True)
    assert [l.id for l in f.lesions] == [f"L{i}" for i in range(1, len(vols) + 1)]
    assert Findings.model_validate_json(f.to_json()) == f
    assert json.loads(f.to_json())["schema_version"] == "1.0.0"
