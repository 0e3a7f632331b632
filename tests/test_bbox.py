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


# --- merge and HU statistics -----------------------------------------------------------------------

def test_merge_is_the_voxelwise_or_of_its_parts():
    from perception.mask import Mask
    from perception.masks import merge

    rng = np.random.default_rng(11)
    shape = (30, 26, 20)
    dense = []
    for box in [(slice(2, 9), slice(3, 20), slice(0, 5)), (slice(5, 30), slice(0, 4), slice(10, 20)),
                (slice(6, 8), slice(10, 12), slice(2, 4)), (slice(20, 21), slice(25, 26), slice(19, 20))]:
        d = np.zeros(shape, bool)
        d[box] = rng.random(d[box].shape) < 0.6
        d[box][0, 0, 0] = d[box][-1, -1, -1] = True  # the box is the part's own extent
        dense.append(d)
    parts = [Mask.from_dense(f"p{i}", d, f"s{i}") for i, d in enumerate(dense)]
    parts.insert(1, Mask("empty", shape, None, None, "e"))  # an empty part adds nothing
    m = merge("all", parts)
    truth = np.logical_or.reduce(dense)
    assert np.array_equal(m.dense(), truth)
    idx = np.nonzero(truth)
    assert m.bbox == tuple((int(i.min()), int(i.max()) + 1) for i in idx)
    assert m.source == "s0+s1+s2+s3" and m.voxel_count == int(truth.sum())
    for p in parts:  # the parts are not modified
        assert p.empty or np.array_equal(p.dense(), dense[int(p.name[1:])])
    assert merge("none", [Mask("e1", shape, None, None, "x")]).empty


@pytest.mark.parametrize("vals", [[-32768, 32767, 0], [-1024, -1024, 3071, 40, 41], [65535, 0, 65534], [5]])
def test_hu_stats_integer_histogram_equals_float_statistics(vals):
    """The histogram path is exact over the whole range of the dtype (int16 -32768..32767 spans 65535
    levels: an offset computed in int16 would wrap and be refused by bincount)."""
    from perception.measure import hu_stats

    dtype = np.uint16 if max(vals) > 32767 else np.int16
    v = np.array(vals, dtype)
    st = hu_stats(v)
    f = np.array(vals, np.float64)
    assert st.n == len(vals) and st.median == float(np.median(f))
    assert st.mean == pytest.approx(float(f.mean()), rel=1e-12, abs=1e-9)
    assert st.sd == pytest.approx(float(f.std()), rel=1e-12, abs=1e-9)


def test_hu_stats_huge_integer_range_takes_the_float_path():
    from perception.measure import hu_stats

    v = np.array([-(2 ** 40), 2 ** 40, 0, 1], np.int64)  # a histogram would need 2^41 bins
    st = hu_stats(v)
    f = v.astype(np.float64)
    assert (st.mean, st.median, st.sd, st.n) == (float(f.mean()), float(np.median(f)), float(f.std()), 4)
    assert hu_stats(np.array([], np.int16)) is None
