"""Issue 10, perception: what each characterization refuses. Real CT (TotalSegmentator example, LIDC,
the DICOM example series) with synthetic lesions or edited HU; truth computed here with numpy/pydicom."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from agent.case import measure
from eval.synthetic import ellipsoid, organ_center_mm, paint, write_case
from perception.registry import totalseg_class_maps
from tests.conftest import data_path
from tests.test_findings_dicom import dicom_case  # noqa: F401  (module fixture: lesion painted into the DICOM series)


def _example():
    ct = nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = np.asanyarray(nib.load(data_path("totalseg", "example_seg.nii.gz")).dataobj)
    names = totalseg_class_maps()["total"]
    masks = {names[int(l)]: seg == l for l in np.unique(seg) if l}
    return np.asanyarray(ct.dataobj).copy(), ct.affine, masks


# --- Obs 3: composition rules say where they apply; lung nodules typed by HU -------------------------

@pytest.fixture(scope="module")
def lidc_0001(tmp_path_factory):
    cmap = tmp_path_factory.mktemp("lidc") / "class_map.json"
    cmap.write_text(json.dumps({"1": "lung_nodule"}))
    img = data_path("lidc_nodules", "VOIs", "image", "LIDC-IDRI-0001_R_1.nii.gz")
    return measure(img, data_path("lidc_nodules", "VOIs", "nodule_mask", img.name), cmap)


def test_lidc_0001_no_fat_no_calcium_typed_solid(lidc_0001):
    """LIDC-IDRI-0001 nodule 1: readers' consensus Calcification 'Absent', Texture 'Solid' (spreadsheet).
    Before: components 'fat: mean -162 HU', 'calcified: 8 % of voxels > 130 HU'."""
    (les,) = lidc_0001.lesions
    assert les.organ == "lung" and les.components == []
    assert "not assessed" in les.composition_rule and "fat" in les.composition_rule
    assert les.nodule_type == "solid" and "-400 HU" in les.nodule_type_rule
    assert les.attenuation is None and "nodule_type" in les.attenuation_reason
    # no lung / midline mask in a VOI: side is not guessed
    assert les.laterality is None and les.laterality_rule.startswith("side not determined")


def test_small_lidc_nodule_not_typed(tmp_path):
    cmap = tmp_path / "class_map.json"
    cmap.write_text(json.dumps({"1": "lung_nodule"}))
    img = data_path("lidc_nodules", "VOIs", "image", "LIDC-IDRI-0005_R_1.nii.gz")  # 5.3 mm, 2.5 mm slices
    (les,) = measure(img, data_path("lidc_nodules", "VOIs", "nodule_mask", img.name), cmap).lesions
    assert les.nodule_type is None and les.nodule_type_rule.startswith("not typed: long axis")


@pytest.fixture(scope="module")
def lung_case(tmp_path_factory):
    """Nodules painted into the lung bases of the real CT: solid (40 HU) in the right lower lobe,
    ground-glass (-600 HU) in the left lower lobe; a kidney lesion painted -60 HU (fat applies there)."""
    hu, aff, masks = _example()
    rl, ll = masks["lung_lower_lobe_right"], masks["lung_lower_lobe_left"]
    def deepest(m):  # world position of the lobe voxel farthest from its boundary
        ijk = np.unravel_index(np.argmax(ndimage.distance_transform_edt(m)), m.shape)
        return aff[:3, :3] @ np.array(ijk, float) + aff[:3, 3]

    n_r = ellipsoid(hu.shape, aff, deepest(rl), (7.0, 7.0, 7.0)) & rl
    n_l = ellipsoid(hu.shape, aff, deepest(ll), (7.0, 7.0, 7.0)) & ll
    assert n_r.sum() > 30 and n_l.sum() > 30
    hu = paint(hu, n_r, 40, 3, seed=1)
    hu = paint(hu, n_l, -600, 10, seed=2)
    kl = masks["kidney_left"]
    fat = ellipsoid(hu.shape, aff, organ_center_mm(kl, aff), (7.5, 7.5, 6.0)) & kl
    hu = paint(hu, fat, -60, 5, seed=3)
    out = {}
    full = dict(masks, lung_nodules=n_r | n_l, kidney_lesion=fat)
    out["lobes"] = measure(*_paths(write_case(tmp_path_factory.mktemp("lung") / "a", hu, aff, full)))
    no_lobes = {k: v for k, v in full.items() if not k.startswith("lung_") or k == "lung_nodules"}
    out["midline"] = measure(*_paths(write_case(tmp_path_factory.mktemp("lung") / "b", hu, aff, no_lobes)))
    return out, n_r, n_l, fat, aff


def _paths(folder):
    return folder / "ct.nii.gz", folder


def _lesion(f, mask, aff):
    c = aff[:3, :3] @ np.argwhere(mask).mean(0) + aff[:3, 3]
    les = min(f.lesions, key=lambda l: np.linalg.norm(np.array(l.centroid_mm) - c))
    assert les.voxel_count == int(mask.sum())
    return les


def test_lung_nodule_type_side_and_lobe(lung_case):
    out, n_r, n_l, fat, aff = lung_case
    f = out["lobes"]
    r, l = _lesion(f, n_r, aff), _lesion(f, n_l, aff)
    assert (r.nodule_type, l.nodule_type) == ("solid", "ground_glass")
    assert r.laterality == "right" and r.segments == ["lung_lower_lobe_right"] and "lobe mask" in r.laterality_rule
    assert l.laterality == "left" and l.segments == ["lung_lower_lobe_left"]
    assert r.components == [] and l.components == []  # -600 HU is not "fat" in a lung
    k = _lesion(f, fat, aff)
    assert k.organ == "kidney_left" and any(c.startswith("fat") for c in k.components)  # valid in the kidney
    # without lobe masks: side from the centroid vs the midline (spinal cord, vertebrae masks), said so
    g = out["midline"]
    r2, l2 = _lesion(g, n_r, aff), _lesion(g, n_l, aff)
    assert (r2.laterality, l2.laterality) == ("right", "left")
    assert "midline" in r2.laterality_rule and "spinal_cord" in r2.laterality_rule


# --- Obs 5 and 9: no ratio of negative HU; no call against a fatty or implausible host ---------------

@pytest.fixture(scope="module")
def host_cases(tmp_path_factory):
    hu, aff, masks = _example()
    pan, liver = masks["pancreas"], masks["liver"]
    # pancreas lesion at 30 HU; 30 % of the rest of the pancreas turned to fat (-100 HU)
    les = ellipsoid(hu.shape, aff, organ_center_mm(pan, aff), (6.0, 6.0, 6.0)) & pan
    rest = np.argwhere(pan & ~les)
    rng = np.random.default_rng(0)
    fatvox = np.zeros_like(pan)
    fatvox[tuple(rest[rng.random(len(rest)) < 0.3].T)] = True
    h1 = paint(paint(hu, les, 30, 2, seed=1), fatvox, -100, 10, seed=2)
    # liver painted as a failed segmentation would read: mean -137 HU, SD 555; a lesion in it
    lv = ellipsoid(hu.shape, aff, organ_center_mm(liver, aff), (12.0, 10.0, 8.0)) & liver
    h2 = paint(paint(hu, liver & ~lv, -137, 555, seed=3), lv, 20, 3, seed=4)
    # pancreas mean below 0 HU (P/S would be negative)
    h3 = paint(hu, pan, -20, 5, seed=5)
    a = measure(*_paths(write_case(tmp_path_factory.mktemp("h") / "fat", h1, aff, dict(masks, pancreatic_lesion=les))))
    b = measure(*_paths(write_case(tmp_path_factory.mktemp("h") / "bad", h2, aff, dict(masks, liver_lesion=lv))))
    c = measure(*_paths(write_case(tmp_path_factory.mktemp("h") / "neg", h3, aff, masks)))
    return a, b, c, les, lv, aff


def test_no_attenuation_call_against_fatty_host(host_cases):
    a, _, _, les_mask, _, aff = host_cases
    les = _lesion(a, les_mask, aff)
    assert les.mean_hu == pytest.approx(30, abs=2)  # its own measurement stays
    assert les.attenuation is None and les.hu_difference is None
    assert "pancreas HU region holds fat" in les.attenuation_reason


def test_implausible_liver_flagged_nothing_derived(host_cases):
    _, b, _, _, lv, aff = host_cases
    liver = b.organ("liver")
    assert liver.plausibility is not None and not liver.plausibility.plausible
    failed = [c for c in liver.plausibility.checks if not c.passed]
    assert {c.name for c in failed} >= {"sd_hu"}
    assert all(fl.status == "not_assessed" and "liver mask implausible" in fl.reason for fl in liver.flags)
    les = _lesion(b, lv, aff)
    assert les.mean_hu == pytest.approx(20, abs=2) and les.volume_ml > 0
    assert les.attenuation is None and les.organ_mean_hu is None and "liver mask implausible" in les.attenuation_reason
    assert b.organ("spleen").plausibility.plausible  # the other organs are still measured and checked


def test_ratio_of_negative_hu_not_assessed(host_cases):
    """Before: 'pancreatic_steatosis' positive with P/S -0.24 (pancreas -8 HU)."""
    _, _, c, _, _, _ = host_cases
    p = c.organ("pancreas")
    assert p.mean_hu < 0
    (ps,) = [fl for fl in p.flags if fl.name == "pancreatic_steatosis"]
    assert ps.status == "not_assessed" and ps.value is None and "outside" in ps.reason and "pancreas mean" in ps.reason


# --- Obs 6: key slice as the image a radiologist opens -----------------------------------------------

def test_dicom_key_slice_is_instance_number_and_table_position(dicom_case):  # noqa: F811
    f = dicom_case["findings"]
    (les,) = f.lesions
    ks = les.key_slice
    assert ks.index == les.axial_slice and ks.instance_number is not None and ks.sop_instance_uid
    src = f.study.source
    files = {}
    for p in sorted(__import__("pathlib").Path(src).iterdir()):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        files[int(ds.InstanceNumber)] = ds
    ds = files[ks.instance_number]
    assert str(ds.SOPInstanceUID) == ks.sop_instance_uid
    assert ks.image_number == ks.instance_number
    # DICOM LPS z and RAS z are the same axis and sign (S positive): table position = ImagePositionPatient z
    assert ks.table_position_mm == pytest.approx(float(ds.ImagePositionPatient[2]), abs=0.01)
    # that image holds the lesion: the truth mask (LAS grid) has voxels on the slice at that z
    aff, lesion = dicom_case["aff"], dicom_case["lesion"]
    k = int(round((ks.table_position_mm - aff[2, 3]) / aff[2, 2]))
    assert lesion[:, :, k].any()
    # sorted by position, not InstanceNumber: the 0-based index is not the image number
    order = sorted(files, key=lambda n: float(files[n].ImagePositionPatient[2]))
    assert order[ks.index] == ks.instance_number and ks.index + 1 != ks.instance_number


def test_nifti_key_slice_one_based_and_world_z(lung_case):
    out, n_r, _, _, aff = lung_case
    les = _lesion(out["lobes"], n_r, aff)
    ks = les.key_slice
    assert ks.image_number == ks.index + 1 and ks.instance_number is None and ks.sop_instance_uid is None
    assert ks.table_position_mm == pytest.approx(aff[2, 2] * ks.index + aff[2, 3], abs=1e-3)


# --- lesion-search coverage and ignored masks --------------------------------------------------------

def test_total_output_searches_only_what_its_labels_search():
    """TotalSegmentator `total`: organs, no lesion task; its kidney_cyst labels (23, 24) searched the kidneys for cysts."""
    f = measure(data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz"))
    s = {x.organ: x for x in f.lesion_search}
    assert {"liver", "pancreas", "spleen", "kidney_left", "kidney_right"} <= set(s)
    for organ, x in s.items():
        if organ.startswith("kidney_"):
            assert x.searched and x.kinds == ["cyst"] and x.by[0].startswith("mask example_seg.nii.gz#2")
        else:
            assert not x.searched and x.by == [] and "no lesion mask" in x.reason, x


def test_organ_masks_only_nothing_searched_and_empty_lesion_mask_searches(tmp_path):
    hu, aff, masks = _example()
    organs = {k: masks[k] for k in ("liver", "spleen", "pancreas", "kidney_left", "kidney_right")}
    f = measure(*_paths(write_case(tmp_path / "o", hu, aff, organs)))
    assert f.lesion_search and all(not x.searched for x in f.lesion_search)
    g = measure(*_paths(write_case(tmp_path / "e", hu, aff, dict(organs, liver_lesion=np.zeros_like(organs["liver"]),
                                                                   tumor=np.zeros_like(organs["liver"])))))
    s = {x.organ: x for x in g.lesion_search}
    assert s["liver"].searched and s["liver"].by == ["mask liver_lesion.nii.gz"] and g.lesions == []
    assert not s["pancreas"].searched and "generic lesion masks (tumor)" in s["pancreas"].reason


def test_unknown_mask_is_an_ignored_mask(tmp_path):
    hu, aff, masks = _example()
    f = measure(*_paths(write_case(tmp_path / "u", hu, aff, {"liver": masks["liver"], "livr": masks["spleen"]})))
    (im,) = [m for m in f.ignored_masks if m.name == "livr"]
    assert im.reason and "liver" in im.did_you_mean and im.source.endswith("livr.nii.gz")
