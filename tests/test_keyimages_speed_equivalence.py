"""The cropped / cached key-image renderer draws the very same PNG bytes as the whole-slice renderer
it replaced (kept below, verbatim, as the reference), on the real-CT test case in three on-disk
orientations, on an in-plane rotated (oblique) affine, and on lesions at the image border, in a
corner, and sharing a slice (where the cache reuses the resampled slice)."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from PIL import Image, ImageDraw
from scipy import ndimage

from eval.synthetic import write_case
from perception import registry
from perception.findings import Settings, build_findings_with_masks
from perception.io import load_ct
from perception.keyimages import TARGET_PX, render_key_image, render_key_images
from perception.mask import Mask
from perception.masks import load_masks
from perception.measure import section
from perception.schema import Lesion
from perception.volume import CTVolume
from tests.cases import build_case, rot_z


# ---- the whole-slice renderer as it was before the crop (reference; do not optimise) ----
def _old_display_grid(ct, k):
    ax = ct.axial_axis
    inplane = [a for a in range(3) if a != ax]
    A = ct.affine
    M = A[:2][:, inplane]
    off = A[:2, ax] * k + A[:2, 3]
    corners = np.array([[0, 0], [ct.shape[inplane[0]] - 1, 0], [0, ct.shape[inplane[1]] - 1],
                        [ct.shape[inplane[0]] - 1, ct.shape[inplane[1]] - 1]], float)
    xy = corners @ M.T + off
    px = min(np.linalg.norm(A[:3, inplane[0]]), np.linalg.norm(A[:3, inplane[1]]))
    xmax, xmin, ymax, ymin = xy[:, 0].max(), xy[:, 0].min(), xy[:, 1].max(), xy[:, 1].min()
    W = int(np.floor((xmax - xmin) / px)) + 1
    H = int(np.floor((ymax - ymin) / px)) + 1
    cc, rr = np.meshgrid(np.arange(W), np.arange(H))
    X, Y = xmax - cc * px, ymax - rr * px
    inv = np.linalg.inv(M)
    ij = np.tensordot(inv, np.stack([X - off[0], Y - off[1]]), axes=1)

    def to_display(p_vox):
        w = A[:2, :3] @ np.asarray(p_vox, float) + A[:2, 3]
        return ((xmax - w[0]) / px, (ymax - w[1]) / px)

    return ij, to_display, inplane


def _old_render(ct, lesion, mask):
    k = lesion.axial_slice
    ax = ct.axial_axis
    ij, to_display, inplane = _old_display_grid(ct, k)
    sl = section(ct.hu, k, ax).astype(np.float32)
    img = ndimage.map_coordinates(sl, ij, order=1, mode="constant", cval=-1024.0)
    full = np.zeros(sl.shape, bool)
    lo = mask.bbox[ax][0]
    msl = section(mask.data, k - lo, ax)
    (a0, a1), (b0, b1) = mask.bbox[inplane[0]], mask.bbox[inplane[1]]
    full[a0:a1, b0:b1] = msl
    m = ndimage.map_coordinates(full.astype(np.uint8), ij, order=0, mode="constant", cval=0).astype(bool)
    fam = registry.organ_family(lesion.organ) if lesion.organ else "default"
    width, level = registry.WINDOWS.get(fam, registry.WINDOWS["default"])
    g = np.clip((img - (level - width / 2)) / width, 0, 1) * 255
    rgb = np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)
    edge = m & ~ndimage.binary_erosion(m)
    rgb[edge] = (0, 220, 0)
    scale = max(1, int(np.ceil(TARGET_PX / max(rgb.shape[:2]))))
    im = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    for (p, q), colour in ((lesion.long_axis_endpoints_voxel, (255, 40, 40)), (lesion.short_axis_endpoints_voxel, (255, 220, 0))):
        (c0, r0), (c1, r1) = to_display(p), to_display(q)
        d.line([((c0 + 0.5) * scale, (r0 + 0.5) * scale), ((c1 + 0.5) * scale, (r1 + 0.5) * scale)], fill=colour, width=max(1, scale // 2))
    d.text((4, 4), f"{lesion.id} {lesion.long_axis_mm:.1f} x {lesion.short_axis_mm:.1f} mm  slice {k}  W{width:.0f}/L{level:.0f}", fill=(255, 255, 255))
    d.text((4, im.height - 14), "R", fill=(255, 255, 255))
    d.text((im.width - 12, im.height - 14), "L", fill=(255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
# ---- end of reference ----


def _green_count(png: bytes) -> int:
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((a[..., 0] == 0) & (a[..., 1] == 220) & (a[..., 2] == 0)).sum())


def _assert_same(ct, findings, masks):
    _, new = render_key_images(ct, findings, masks)
    assert set(new) == {les.id for les in findings.lesions}
    for les in findings.lesions:
        old = _old_render(ct, les, masks[les.id])
        assert new[les.id] == old, les.id
        assert render_key_image(ct, les, masks[les.id]) == old, les.id  # without the cache too
    return new


@pytest.fixture(scope="module")
def real_case(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("keyimg_case") / "case")


def _pipeline(folder):
    vol = load_ct(folder / "ct.nii.gz")
    s = Settings()
    labels = load_masks(folder, vol, None, tol_mm=s.geometry_tolerance_mm)
    findings, lesion_masks = build_findings_with_masks(vol, labels, s)
    return vol, findings, lesion_masks


@pytest.mark.parametrize("codes", ["RAS", "LPS", "PIL"])
def test_real_case_png_bytes_unchanged_in_any_orientation(real_case, tmp_path, codes):
    hu, aff, masks = real_case["hu"], real_case["aff"], real_case["masks"]
    tr = ornt_transform(io_orientation(aff), axcodes2ornt(codes))
    ct_o = nib.Nifti1Image(hu, aff).as_reoriented(tr)
    m_o = {n: np.asanyarray(nib.Nifti1Image(m.astype(np.uint8), aff).as_reoriented(tr).dataobj).astype(bool)
           for n, m in masks.items()}
    folder = write_case(tmp_path / codes, np.asanyarray(ct_o.dataobj), ct_o.affine, m_o)
    vol, findings, lesion_masks = _pipeline(folder)
    assert len(findings.lesions) >= 5
    new = _assert_same(vol, findings, lesion_masks)
    # the contour is drawn (a test that the comparison is not between two blank outlines)
    assert all(_green_count(png) > 0 for png in new.values())


def test_oblique_affine_png_bytes_unchanged(real_case, tmp_path):
    """An in-plane rotation of 20 degrees: the display grid is no longer the voxel grid."""
    aff = real_case["aff"].copy()
    aff[:3, :3] = rot_z(20) @ aff[:3, :3]
    folder = write_case(tmp_path / "oblique", real_case["hu"], aff, real_case["masks"])
    vol, findings, lesion_masks = _pipeline(folder)
    assert findings.lesions
    _assert_same(vol, findings, lesion_masks)


def _disc_lesion(shape, ctr, r, k, lid, organ="liver"):
    i0, i1 = max(0, ctr[0] - r), min(shape[0], ctr[0] + r + 1)
    j0, j1 = max(0, ctr[1] - r), min(shape[1], ctr[1] + r + 1)
    ii, jj = np.ogrid[i0:i1, j0:j1]
    disc = (ii - ctr[0]) ** 2 + (jj - ctr[1]) ** 2 <= r * r
    data = np.repeat(disc[:, :, None], 3, axis=2)
    mask = Mask(name=lid, shape=shape, bbox=((i0, i1), (j0, j1), (k - 1, k + 2)), data=data)
    les = Lesion.model_construct(
        id=lid, organ=organ, axial_slice=k, long_axis_mm=2.0 * r, short_axis_mm=1.5 * r,
        long_axis_endpoints_voxel=((i0, ctr[1], k), (i1 - 1, ctr[1], k)),
        short_axis_endpoints_voxel=((ctr[0], j0, k), (ctr[0], j1 - 1, k)))
    return les, mask


@pytest.mark.parametrize("affine", [
    np.diag([0.8, 0.8, 2.0, 1.0]),
    np.diag([-0.7, -0.6, 1.5, 1.0]),
    np.vstack([np.hstack([rot_z(33) @ np.diag([0.9, 0.7, 2.5]), [[5.0], [-3.0], [10.0]]]), [0, 0, 0, 1]]),
], ids=["ras", "lps_anisotropic", "oblique"])
def test_border_corner_and_shared_slice_lesions_unchanged(affine):
    shape = (70, 90, 12)
    hu = np.random.default_rng(0).integers(-1000, 1200, size=shape).astype(np.int16)
    ct = CTVolume(hu=hu, affine=affine, source="synthetic", source_format="nifti")
    specs = [((0, 45), 6, 5, "L1", "liver"),      # touches the i = 0 border: erosion meets the image edge
             ((69, 89), 7, 5, "L2", "spleen"),    # in the far corner
             ((30, 30), 4, 5, "L3", "kidney"),    # shares slice 5 with L1 and L2 (cached slice)
             ((35, 60), 10, 8, "L4", None),       # default window
             ((50, 0), 3, 2, "L5", "pancreas")]   # touches the j = 0 border
    pairs = [_disc_lesion(shape, c, r, k, lid, org) for c, r, k, lid, org in specs]
    lesions = [p[0] for p in pairs]
    masks = {p[0].id: p[1] for p in pairs}

    class _F:  # the two fields render_key_images reads and writes
        def __init__(self, lesions):
            self.lesions = lesions

        def model_copy(self, update):
            return _F(update["lesions"])

    new = _assert_same(ct, _F(lesions), masks)
    assert all(_green_count(png) > 0 for png in new.values())
