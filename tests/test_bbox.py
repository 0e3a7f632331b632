"""Label bounding boxes (perception.masks.label_bboxes) equal scipy's find_objects on the array as
given, whatever its memory order, and the boxes load_multilabel registers equal the extents of
each label's own voxels (np.nonzero), on random and real label volumes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from perception.io import load_ct
from perception.masks import label_bboxes, load_multilabel
from perception.registry import canonical_name, totalseg_class_maps
from tests.conftest import data_path


def _nonzero_boxes(arr: np.ndarray) -> list[tuple[slice, ...] | None]:
    """Independent truth: each label's extent from the indices of its voxels."""
    out: list[tuple[slice, ...] | None] = []
    for lab in range(1, int(arr.max()) + 1 if arr.size else 1):
        idx = np.nonzero(arr == lab)
        out.append(None if idx[0].size == 0 else tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx))
    return out


def _layouts(arr: np.ndarray):
    """The same values in C order, Fortran order, a permuted view and a flipped (negative-stride) view."""
    yield "C", np.ascontiguousarray(arr)
    yield "F", np.asfortranarray(arr)
    perm = np.asfortranarray(arr.transpose(1, 2, 0)).transpose(2, 0, 1)  # strides neither C nor F
    assert np.array_equal(perm, arr) and not perm.flags.c_contiguous and not perm.flags.f_contiguous
    yield "permuted", perm
    flipped = np.asfortranarray(arr[::-1, :, ::-1])[::-1, :, ::-1]
    assert np.array_equal(flipped, arr) and flipped.strides[0] < 0
    yield "flipped", flipped


def _check(arr: np.ndarray) -> None:
    truth = _nonzero_boxes(arr)
    for name, view in _layouts(arr):
        got = label_bboxes(view)
        assert got == ndimage.find_objects(np.ascontiguousarray(arr)), name
        assert got == truth, name


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32])
def test_random_sparse_labels_with_gaps(dtype):
    rng = np.random.default_rng(7)
    arr = np.zeros((23, 17, 11), dtype=dtype)
    lab = rng.choice([0, 1, 2, 5, 9], size=arr.shape, p=[0.9, 0.04, 0.03, 0.02, 0.01]).astype(dtype)
    arr[:] = lab
    assert set(np.unique(arr)) == {0, 1, 2, 5, 9}  # 3, 4, 6, 7, 8 absent
    _check(arr)
    got = label_bboxes(np.asfortranarray(arr))
    assert len(got) == 9 and [i + 1 for i, b in enumerate(got) if b is None] == [3, 4, 6, 7, 8]


def test_blocky_labels_like_a_resampled_segmentation():
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 12, size=(5, 6, 4)).astype(np.uint8)
    arr = np.kron(coarse, np.ones((7, 5, 3), np.uint8))[2:, 1:-2, :]
    _check(arr)


def test_background_only_single_voxel_and_corner_labels():
    arr = np.zeros((9, 8, 7), np.uint8)
    for _, view in _layouts(arr):
        assert label_bboxes(view) == []  # label 0 is background: no boxes at all
    arr[4, 3, 2] = 3  # single voxel, labels 1 and 2 absent
    arr[0, 0, 0] = 1
    arr[-1, -1, -1] = 1  # a label spanning the whole grid through two corners
    _check(arr)
    got = label_bboxes(np.asfortranarray(arr))
    assert got[1] is None
    assert got[2] == (slice(4, 5), slice(3, 4), slice(2, 3))
    assert got[0] == (slice(0, 9), slice(0, 8), slice(0, 7))


@pytest.mark.parametrize("top", [255, 65535, (1 << 16) + 3])
def test_largest_label_ids(top):
    """The top id of the dtype, the largest id load_masks accepts, and one past find_objects' list
    limit (one pass per present id there)."""
    dtype = np.uint8 if top == 255 else np.uint16 if top == 65535 else np.int32
    arr = np.zeros((6, 5, 4), dtype)
    arr[1:3, 2, 0:4] = top
    arr[5, 4, 3] = 2
    got = label_bboxes(np.asfortranarray(arr))
    assert len(got) == top and sum(b is not None for b in got) == 2
    assert got[top - 1] == (slice(1, 3), slice(2, 3), slice(0, 4))
    assert got[1] == (slice(5, 6), slice(4, 5), slice(3, 4))
    if top <= 1 << 16:
        assert got == ndimage.find_objects(arr)
    for _, view in _layouts(arr):
        assert label_bboxes(view) == got


def test_two_dimensional_and_one_dimensional_arrays():
    arr2 = np.asfortranarray(np.array([[0, 2, 0], [0, 0, 1], [2, 0, 0]], np.uint8))
    assert label_bboxes(arr2) == ndimage.find_objects(np.ascontiguousarray(arr2))
    assert label_bboxes(arr2)[1] == (slice(0, 3), slice(0, 2))
    arr1 = np.array([0, 0, 4, 0, 4], np.uint8)
    assert label_bboxes(arr1) == [None, None, None, (slice(2, 5),)]


# --- a real segmentation, through load_multilabel --------------------------------------------------

@pytest.fixture(scope="module")
def real(tmp_path_factory):
    ct = load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))
    src = nib.load(str(data_path("totalseg", "example_seg.nii.gz")))
    seg = np.asanyarray(src.dataobj).astype(np.int16)
    p = tmp_path_factory.mktemp("bbox") / "seg.nii.gz"
    nib.save(nib.Nifti1Image(seg, src.affine), str(p))
    return ct, seg, p


def test_real_totalseg_labels_all_layouts(real):
    _, seg, _ = real
    assert len(set(np.unique(seg).tolist()) - {0}) == 41
    _check(seg)


def test_load_multilabel_boxes_are_each_labels_own_extent(real):
    ct, seg, p = real
    cmap = totalseg_class_maps()["total"]
    ls = load_multilabel(p, ct, cmap)
    truth = _nonzero_boxes(seg)
    seen = 0
    for lab, raw in cmap.items():
        m = ls.masks[canonical_name(raw)]
        sl = truth[lab - 1] if lab <= len(truth) else None
        if sl is None:  # in the class map, no voxels: an absent mask, no box
            assert m.empty
            continue
        seen += 1
        assert m.bbox == tuple((s.start, s.stop) for s in sl)
        assert np.array_equal(m.data, seg[sl] == lab)
        assert m.voxel_count == int(np.count_nonzero(seg == lab))
    assert seen == 41
