"""Segmentation backends without torch: protocol, device choice, merging with provenance, the masks
backend, writing mask folders, and the TotalSegmentator task table's refusals (runs in the light venv)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from perception.io import load_ct
from perception.mask import Mask
from perception.masks import LabelSet, load_masks
from perception.registry import totalseg_class_maps
from perception.segment import (BACKENDS, BackendUnavailableError, DeviceError, MasksSegmenter, Segmenter,
                                labelset_files, make_segmenter, merge_labelsets, segment_ct, select_device)
from tests.conftest import data_path


@pytest.fixture(scope="module")
def ct():
    return load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))


def _box_mask(name, shape, lo, hi, source):
    d = np.zeros(shape, dtype=bool)
    d[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return Mask.from_dense(name, d, source)


def test_masks_backend_is_the_existing_loader(ct):
    seg = data_path("totalseg", "example_seg.nii.gz")
    backend = make_segmenter("masks", path=seg)
    assert isinstance(backend, Segmenter) and backend.device == "cpu" and backend.outputs == ()
    got, want = backend.segment(ct), load_masks(seg, ct)
    assert set(got.masks) == set(want.masks)
    assert got.masks["liver"].voxel_count == want.masks["liver"].voxel_count > 30000
    # segment_ct with one backend gives the same LabelSet
    ls = segment_ct(ct, ["masks"], options={"masks": {"path": seg}})
    assert ls.masks["liver"].source == want.masks["liver"].source
    assert ls.masks["spleen"].voxel_count == want.masks["spleen"].voxel_count


def test_merge_keeps_first_backend_and_provenance():
    shape = (10, 10, 10)
    a, b = LabelSet(shape), LabelSet(shape)
    a.masks["liver"] = _box_mask("liver", shape, (0, 0, 0), (5, 5, 5), "totalseg:total/fast#5")
    b.masks["liver"] = _box_mask("liver", shape, (0, 0, 0), (6, 6, 6), "unit:final.pt#organ")
    a.masks["spleen"] = Mask("spleen", shape, None, None, "totalseg:total/fast#1")  # looked for, absent
    b.masks["spleen"] = _box_mask("spleen", shape, (7, 7, 7), (9, 9, 9), "unit:final.pt#organ")
    b.masks["liver_tumor"] = _box_mask("liver_tumor", shape, (1, 1, 1), (3, 3, 3), "unit:final.pt#liver_tumor")
    a.masks["pancreas"] = Mask("pancreas", shape, None, None, "totalseg:total/fast#7")
    m = merge_labelsets([("totalseg", a), ("unit", b)])
    assert m.masks["liver"].source.startswith("totalseg:") and m.masks["liver"].voxel_count == 125  # not unioned
    assert m.masks["spleen"].source.startswith("unit:") and m.masks["spleen"].voxel_count == 8  # the backend that found it
    assert m.masks["liver_tumor"].source.startswith("unit:")
    assert m.masks["pancreas"].empty  # absent stays absent
    assert any("liver (totalseg kept over unit)" in w for w in m.warnings)
    pref = merge_labelsets([("totalseg", a), ("unit", b)], prefer={"liver": "unit"})
    assert pref.masks["liver"].source.startswith("unit:") and pref.masks["liver"].voxel_count == 216
    with pytest.raises(ValueError, match="different grids"):
        merge_labelsets([("a", LabelSet((2, 2, 2))), ("b", LabelSet((3, 3, 3)))])


def test_device_selection():
    assert select_device("cpu") == "cpu"
    auto = select_device("auto")
    assert auto in ("cpu", "cuda")
    with pytest.raises(DeviceError, match="expected auto, cpu, cuda"):
        select_device("gpu0")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        assert auto == "cpu"
        with pytest.raises(DeviceError, match="cuda"):
            select_device("cuda:3")


def test_unknown_backend_and_options_are_refused(ct):
    with pytest.raises(BackendUnavailableError, match="did you mean 'totalseg'"):
        make_segmenter("totalseg2")
    with pytest.raises(BackendUnavailableError, match="options given for backends not requested"):
        segment_ct(ct, ["masks"], options={"masks": {"path": "x"}, "unit": {"weights": "w.pt"}})
    assert set(BACKENDS) == {"masks", "totalseg", "unit", "nnunet", "bundle"}


@pytest.mark.parametrize("task, pattern", [
    ("renal_arteries", r"celiac trunk, SMA, renal arteries\) is licence-gated in TotalSegmentator 2\.18\.0"),
    ("aortic_dissection", "licence-gated"),
    ("tissue_types", "licence-gated"),
    ("liver_segment", "did you mean 'liver_segments'"),
])
def test_totalseg_task_refusals_name_the_reason(task, pattern):
    from perception.segment.totalseg import TotalSegSegmenter

    with pytest.raises(BackendUnavailableError, match=pattern):
        TotalSegSegmenter(tasks=[task])


def test_totalseg_task_table_matches_class_maps():
    from perception.segment.totalseg import DATASETS, TASKS

    maps = totalseg_class_maps()
    for name, spec in TASKS.items():
        assert name in maps, name
        for d in spec.needed(True) + spec.needed(False):
            assert DATASETS[d].folder.startswith(f"Dataset{d:03d}_")
    assert TASKS["total"].needed(True) == (297,)
    assert TASKS["liver_segments"].needed(False) == (570, 298)
    # liver_lesions (TotalSegmentator 2.18.0 map_tasks_config): nnU-Net 591, 3d_fullres_high, 0.75 x 0.75 x 1 mm,
    # cropped by the robust 3 mm model (297)
    assert TASKS["liver_lesions"].needed(False) == (591, 297)
    assert DATASETS[591].configuration == "3d_fullres_high" and DATASETS[591].spacing_mm == (0.75, 0.75, 1.0)
    assert DATASETS[591].checkpoint("/w").as_posix() == ("/w/Dataset591_ct_liver_lesions_842subj/"
                                                        "nnUNetTrainer__nnUNetPlans__3d_fullres_high/fold_0/checkpoint_final.pth")


def test_labelset_files_round_trip_through_load_masks(ct, tmp_path):
    seg = data_path("totalseg", "example_seg.nii.gz")
    ls = load_masks(seg, ct)
    files = labelset_files(ls, ct)
    for name, content in files.items():
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    back = load_masks(tmp_path, ct)
    assert set(back.masks) == set(ls.masks)
    for n in ("liver", "spleen", "aorta"):
        assert back.masks[n].voxel_count == ls.masks[n].voxel_count
    assert back.masks["brain"].empty  # empty file = looked for, absent
    prov = json.loads(files["provenance.json"])
    assert prov["structures"]["liver"]["category"] == "organ"
    assert nib.load(tmp_path / "liver.nii.gz").get_data_dtype() == np.uint8
    assert isinstance(MasksSegmenter(tmp_path).segment(ct), LabelSet)
