"""End-to-end findings on real CT (TotalSegmentator example, 3 mm RAS) with synthetic lesions of
known geometry. Truth comes from the analytic shapes and from counting in the test itself."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from perception.schema import SCHEMA_VERSION
from tests.cases import VOX, build_case

TOL = 1.5 * VOX  # diameter tolerance: 1.5 voxels


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("case") / "case01")


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
    # host HU region (deliberate change, issue 10): organ minus lesions, eroded by one 3 mm voxel per axis
    host = ndimage.binary_erosion(host, np.ones((3, 3, 3), bool), border_value=0)
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
    gb_core = ndimage.binary_erosion(m["gallbladder"], np.ones((3, 3, 3), bool), border_value=0)  # eroded 1 voxel
    assert gb.mean_hu == pytest.approx(case["hu"][gb_core].mean(), abs=0.01)
    assert gb.imaged_volume_ml == gb.volume_ml and "eroded by 1/1/1 voxels" in gb.hu_region
    # kidneys hold lesions: organ volume counts them, host HU excludes them
    assert sorted(f.organ("kidney_left").lesion_ids) == sorted(l.id for l in f.lesions if l.organ == "kidney_left")


def test_phase_dropped_components_and_warnings(case):
    f, hu, m = case["findings"], case["hu"], case["masks"]
    # lumen HU: axial sections every 5 mm (every 2nd 3-mm slice from the aorta's first), eroded in-plane
    ks = np.flatnonzero(m["aorta"].any(axis=(0, 1)))
    vals = np.concatenate([hu[:, :, k][ndimage.binary_erosion(m["aorta"][:, :, k])] for k in range(ks[0], ks[-1] + 1, 2)])
    assert np.median(vals) < 80
    assert f.study.contrast_phase.phase == "non_contrast"
    assert f.study.contrast_phase.aorta_hu == pytest.approx(float(np.median(vals)))
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
    assert json.loads(f.to_json())["schema_version"] == SCHEMA_VERSION == "1.3.0"
