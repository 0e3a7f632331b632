"""Real-CT cases with synthetic lesions of known geometry, shared by several test modules."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from agent.case import measure
from eval.synthetic import blob, ellipsoid, organ_center_mm, paint, world_grid, write_case
from perception.registry import totalseg_class_maps
from tests.conftest import data_path

VOX = 3.0  # mm, isotropic (TotalSegmentator example)


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


def build_case(folder):
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
    folder = write_case(folder, hu, aff, masks)
    findings = measure(folder / "ct.nii.gz", folder)
    return dict(findings=findings, hu=hu, aff=aff, masks=masks, truth=truth, folder=folder)


