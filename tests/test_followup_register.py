"""Registration (perception.followup.register) is independent of how each CT stores its axes: the same real CT
stored RAS and re-stored with flipped and permuted axes (same world coordinates, different affine) registers to
the identity; the S-I level search finds a known shift of the axial profiles."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from perception.followup.register import Grid, block_mean, register_grids, z_shift
from tests.conftest import data_path


def _restored(arr, affine, flips=(0, 1), perm=(2, 0, 1)):
    """The same voxels in another storage order: axes flipped then permuted; the affine follows (same world)."""
    a, m = arr, affine.copy()
    for ax in flips:
        a = np.flip(a, ax)
        f = np.eye(4)
        f[ax, ax], f[ax, 3] = -1, arr.shape[ax] - 1
        m = m @ f
    a = np.transpose(a, perm)
    p = np.zeros((4, 4))
    for new, old in enumerate(perm):
        p[old, new] = 1
    p[3, 3] = 1
    return np.ascontiguousarray(a), m @ p


def test_storage_order_does_not_move_the_patient():
    img = nib.load(data_path("totalseg", "example_ct_sm.nii.gz"))
    hu = np.asanyarray(img.dataobj)
    b, baff = _restored(hu, img.affine)
    # the restored grid holds the same world: a voxel's world position and value agree
    ijk = np.array([10, 20, 5])
    w = img.affine[:3, :3] @ ijk + img.affine[:3, 3]
    jkl = np.rint(np.linalg.solve(baff[:3, :3], w - baff[:3, 3])).astype(int)
    assert hu[tuple(ijk)] == b[tuple(jkl)]
    reg = register_grids(block_mean(hu, img.affine), block_mean(b, baff))
    assert reg.status == "ok", reg.reason
    T = np.asarray(reg.transform_current_to_prior)
    pts = np.array([[x, y, z] for x in (-150, -80) for y in (40, 120) for z in (110, 170)], dtype=float)
    err = np.linalg.norm((T[:3, :3] @ pts.T).T + T[:3, 3] - pts, axis=1)
    assert err.max() < 1.5, err


def test_z_shift_finds_a_known_level():
    img = nib.load(data_path("totalseg", "example_ct.nii.gz"))
    hu = np.asanyarray(img.dataobj).astype(np.float32)
    sub_aff = img.affine.copy()
    sub_aff[:3, 3] = img.affine[:3, :3] @ [0, 0, 40] + img.affine[:3, 3]  # slices 40-79, at their true position
    fixed = Grid(hu[:, :, 40:80], sub_aff)
    moved = img.affine.copy()
    moved[2, 3] += 57.0  # the whole scan stored 57 mm higher: the same anatomy is at z + 57 in it
    shift, score = z_shift(fixed, Grid(hu, moved))
    assert abs(shift - 57.0) <= 3.0 and score > 0.9
