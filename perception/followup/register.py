"""Register the current CT to a prior CT: rigid, then affine (SimpleITK), with its quality and a refusal.

Both CTs are block-averaged to about ``REG_MM`` voxels, clamped to [-1000, 1500] HU and registered with
Mattes mutual information (a 2-level pyramid). The transform maps current RAS+ world mm to prior RAS+ world mm.
Quality is measured after registration on what both studies share:

- field-of-view overlap: the fraction of the smaller study's body (HU > -500) that lands inside the other's
  field of view (refused below ``MIN_OVERLAP``: different body region or too little overlap);
- normalized cross-correlation of HU in that common body region (refused below ``MIN_NCC``);
- per organ present in both (organ masks given to analyze): Dice of the registered masks within the common
  field of view and the liver's mean surface distance; refused when the median Dice is below ``MIN_DICE``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .schema import Registration, RegistrationMetric

REG_MM = 3.0  # registration voxel size (block averaging)
MIN_OVERLAP = 0.5
MIN_NCC = 0.6
MIN_DICE = 0.6
BODY_HU = -500.0
SAMPLES = 40_000  # metric samples at the finest level (5 % of the voxels at most)
LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Grid:
    """A volume (any dtype) and its voxel -> RAS+ world affine."""

    data: np.ndarray
    affine: np.ndarray


def block_mean(arr: np.ndarray, affine: np.ndarray, target_mm: float = REG_MM) -> Grid:
    """Average ``arr`` in blocks of about ``target_mm`` (integer factors per axis); the affine follows."""
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    f = [max(1, round(target_mm / s)) for s in sp]
    n = [s // k for s, k in zip(arr.shape, f)]
    if min(n) < 1:
        f = [1, 1, 1]
        n = list(arr.shape)
    a = arr[: n[0] * f[0], : n[1] * f[1], : n[2] * f[2]]
    if f != [1, 1, 1]:
        out = np.zeros(n, dtype=np.float32)
        for i in range(f[0]):  # strided sums: no float copy of the whole volume
            for j in range(f[1]):
                for k in range(f[2]):
                    out += a[i::f[0], j::f[1], k::f[2]]
        out /= float(f[0] * f[1] * f[2])
    else:
        out = a.astype(np.float32)
    scale = np.diag(f + [1]).astype(np.float64)
    scale[:3, 3] = (np.asarray(f) - 1) / 2.0
    return Grid(out, affine @ scale)


def to_sitk(g: Grid):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(g.data.transpose(2, 1, 0)))
    sp = np.linalg.norm(g.affine[:3, :3], axis=0)
    img.SetSpacing([float(s) for s in sp])
    img.SetOrigin([float(x) for x in LPS @ g.affine[:3, 3]])
    img.SetDirection([float(x) for x in (LPS @ (g.affine[:3, :3] / sp)).ravel()])
    return img


def _matrix_lps_to_ras(tx) -> np.ndarray:
    """A SimpleITK transform (fixed LPS point -> moving LPS point) as a 4x4 RAS matrix, same direction."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c = np.asarray(tx.GetCenter())
    t = np.asarray(tx.GetTranslation())
    m[:3, 3] = t + c - m[:3, :3] @ c
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ m @ flip


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (N, 3) mapped by a 4x4 matrix."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
    return (matrix[:3, :3] @ pts.T).T + matrix[:3, 3]  # (3x3 @ 3xN: BLAS; N x 3 @ 3x3 is ~50x slower)


def _run(fixed, moving, initial, stage: str, iterations: int):
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    r.SetMetricSamplingStrategy(r.RANDOM)
    n_vox = int(np.prod(fixed.GetSize()))
    r.SetMetricSamplingPercentage(min(0.05, SAMPLES / max(n_vox, 1)), seed=7)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0 if stage == "rigid" else 1.0, minStep=1e-3,
                                               numberOfIterations=iterations, relaxationFactor=0.5,
                                               gradientMagnitudeTolerance=1e-5)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel([2, 1])
    r.SetSmoothingSigmasPerLevel([1.0, 0.0])
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    r.SetInitialTransform(initial, inPlace=False)
    out = r.Execute(fixed, moving)
    return out, r.GetMetricValue()


def axial_profile(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(world z of each axial slice, per-slice features: body area mm^2 and mean body HU) of a registration grid."""
    from perception.volume import axial_axis

    ax = axial_axis(g.affine)
    body = g.data > BODY_HU
    other = tuple(i for i in range(3) if i != ax)
    area = body.sum(axis=other).astype(np.float64)
    vals = np.where(body, np.clip(g.data, -1000, 1500), 0.0).sum(axis=other) / np.maximum(area, 1)
    sp = np.linalg.norm(g.affine[:3, :3], axis=0)
    area *= sp[other[0]] * sp[other[1]]
    idx = np.zeros((g.data.shape[ax], 3))
    idx[:, ax] = np.arange(g.data.shape[ax])
    z = (idx @ g.affine[:3, :3].T + g.affine[:3, 3])[:, 2]
    order = np.argsort(z)
    return z[order], np.stack([area[order], vals[order]], axis=1)


def z_shift(fixed: Grid, moving: Grid, min_overlap: float = 0.5) -> tuple[float, float]:
    """(shift mm, score): the S-I shift (moving z - fixed z of the same anatomy) that best aligns the two axial
    profiles (body area, mean body HU; mean normalized cross-correlation over the overlapping slices, which
    must cover ``min_overlap`` of the shorter study). Scans with different ranges (a chest-abdomen CT vs an
    abdomen CT) start registration near the right level instead of at the centre of each."""
    zf, pf = axial_profile(fixed)
    zm, pm = axial_profile(moving)
    step = max(1.0, min(np.median(np.diff(zf)) if len(zf) > 1 else 3.0, np.median(np.diff(zm)) if len(zm) > 1 else 3.0))
    ext_f, ext_m = zf[-1] - zf[0], zm[-1] - zm[0]
    shorter = max(min(ext_f, ext_m), step)
    best = (0.0, -np.inf)
    for shift in np.arange(zm[0] - zf[-1], zm[-1] - zf[0] + step, step):
        lo, hi = max(zf[0], zm[0] - shift), min(zf[-1], zm[-1] - shift)
        if hi - lo < min_overlap * shorter:
            continue
        zz = np.arange(lo, hi + 1e-6, step)
        if len(zz) < 4:
            continue
        score = 0.0
        for c in range(pf.shape[1]):
            a = np.interp(zz, zf, pf[:, c])
            b = np.interp(zz + shift, zm, pm[:, c])
            sa, sb = a.std(), b.std()
            score += float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb)) if sa > 0 and sb > 0 else 0.0
        score /= pf.shape[1]
        if score > best[1]:
            best = (float(shift), score)
    return best


def _initial_rigid(fixed, moving, body_f, body_m, shift_z: float):
    """Euler3D transform centred on the fixed body's centroid: x/y from the body centroids, z from ``shift_z``."""
    import SimpleITK as sitk

    def centroid(img, body):
        idx = np.argwhere(body)  # (z, y, x) numpy order of the SimpleITK image
        if idx.size == 0:
            return np.asarray(img.TransformContinuousIndexToPhysicalPoint([s / 2 for s in img.GetSize()]))
        c = idx.mean(0)[::-1]
        return np.asarray(img.TransformContinuousIndexToPhysicalPoint([float(x) for x in c]))

    cf, cm = centroid(fixed, body_f), centroid(moving, body_m)
    t = cm - cf
    t[2] = shift_z  # LPS z = RAS z
    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(x) for x in cf])
    tx.SetTranslation([float(x) for x in t])
    return tx


def register_grids(prior: Grid, current: Grid, prior_organs: dict[str, Grid] | None = None,
                   current_organs: dict[str, Grid] | None = None, *, fixed_tp: int = 0, moving_tp: int = 1,
                   threads: int | None = None) -> Registration:
    """Register ``current`` (moving) to ``prior`` (fixed); both already at registration resolution
    (``block_mean``); organ masks (bool, same grids) for the quality check. Never raises on a failed
    registration: the Registration says refused and why."""
    import SimpleITK as sitk

    t0 = time.perf_counter()
    if threads is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    method = (f"SimpleITK {sitk.Version.VersionString()}: Euler3D rigid then 12-parameter affine, Mattes mutual "
              f"information (32 bins, 5 % random samples), regular-step gradient descent, pyramid shrink 2/1 on "
              f"{REG_MM:.1f} mm block-averaged HU clamped to [-1000, 1500], initialised by the body (HU > {BODY_HU:g}) "
              "centroids in x/y and by the best match of the axial profiles (body area, mean HU) in z")
    f = to_sitk(Grid(np.clip(prior.data, -1000, 1500).astype(np.float32), prior.affine))
    m = to_sitk(Grid(np.clip(current.data, -1000, 1500).astype(np.float32), current.affine))
    body_f = (prior.data > BODY_HU).transpose(2, 1, 0)
    body_m = (current.data > BODY_HU).transpose(2, 1, 0)
    try:
        shift, _ = z_shift(prior, current)
        rigid, _ = _run(f, m, _initial_rigid(f, m, body_f, body_m, shift), "rigid", 100)
        rigid_tx = sitk.Euler3DTransform(rigid.GetNthTransform(0)) if rigid.GetName() == "CompositeTransform" \
            else sitk.Euler3DTransform(rigid)
        aff0 = sitk.AffineTransform(3)
        aff0.SetMatrix(rigid_tx.GetMatrix())
        aff0.SetTranslation(rigid_tx.GetTranslation())
        aff0.SetCenter(rigid_tx.GetCenter())
        affine, _ = _run(f, m, aff0, "affine", 100)
        aff_tx = sitk.AffineTransform(affine.GetNthTransform(0)) if affine.GetName() == "CompositeTransform" \
            else sitk.AffineTransform(affine)
    except RuntimeError as e:  # ITK: e.g. too few samples inside both images
        return Registration(fixed_time_point=fixed_tp, moving_time_point=moving_tp, method=method, status="refused",
                            reason=f"registration failed in SimpleITK: {str(e).strip().splitlines()[-1][:300]}",
                            seconds=time.perf_counter() - t0)
    # ITK maps fixed (prior) points to moving (current) points; we report current -> prior
    prior_to_current = _matrix_lps_to_ras(aff_tx)
    cur_to_prior = np.linalg.inv(prior_to_current)
    rig = np.linalg.inv(_matrix_lps_to_ras(rigid_tx))
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rig[:3, :3]) - 1) / 2, -1.0, 1.0))))
    quality, refusal = assess(prior, current, cur_to_prior, prior_organs or {}, current_organs or {})
    return Registration(fixed_time_point=fixed_tp, moving_time_point=moving_tp, method=method,
                        status="refused" if refusal else "ok", reason=refusal,
                        transform_current_to_prior=None if refusal else [[round(float(x), 6) for x in r] for r in cur_to_prior],
                        rigid_rotation_deg=round(angle, 3),
                        rigid_translation_mm=tuple(round(float(x), 3) for x in rig[:3, 3]),
                        quality=quality, seconds=round(time.perf_counter() - t0, 3))


def sample(g: Grid, world_pts: np.ndarray, order: int = 0, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``g`` at world points (nearest voxel, or trilinear with order 1) and whether each is inside."""
    ijk = apply(np.linalg.inv(g.affine), world_pts)
    inside = np.all((ijk > -0.5) & (ijk < np.asarray(g.data.shape) - 0.5), axis=1)
    if order == 0:
        idx = np.clip(np.rint(ijk).astype(np.intp), 0, np.asarray(g.data.shape) - 1)
        vals = g.data[idx[:, 0], idx[:, 1], idx[:, 2]]
    else:
        from scipy import ndimage

        vals = ndimage.map_coordinates(g.data, ijk.T, order=1, mode="nearest")
    vals = np.where(inside, vals, fill)
    return vals, inside


def world_points(g: Grid, mask: np.ndarray | None = None) -> np.ndarray:
    idx = np.argwhere(mask) if mask is not None else np.indices(g.data.shape).reshape(3, -1).T
    return apply(g.affine, idx)


def _metric(name, value, unit, threshold=None, comparison=None, reason=None) -> RegistrationMetric:
    passed = None
    if value is not None and threshold is not None:
        passed = bool(value >= threshold) if comparison == ">=" else bool(value <= threshold)
    return RegistrationMetric(name=name, value=None if value is None else round(float(value), 4), unit=unit,
                              threshold=threshold, comparison=comparison, passed=passed, reason=reason)


def _surface_distance(a_pts: np.ndarray, b_pts: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    d1, _ = cKDTree(b_pts).query(a_pts)
    d2, _ = cKDTree(a_pts).query(b_pts)
    return float((d1.sum() + d2.sum()) / (len(d1) + len(d2)))


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask)


def assess(prior: Grid, current: Grid, cur_to_prior: np.ndarray, prior_organs: dict[str, Grid],
           current_organs: dict[str, Grid]) -> tuple[list[RegistrationMetric], str | None]:
    """Quality metrics of a registration and the refusal reason (None: accepted)."""
    body_c = current.data > BODY_HU
    body_p = prior.data > BODY_HU
    pc = world_points(current, body_c)
    pp = world_points(prior, body_p)
    # common field of view, measured on the smaller body
    _, c_in_p = sample(prior, apply(cur_to_prior, pc))
    _, p_in_c = sample(current, apply(np.linalg.inv(cur_to_prior), pp))
    vc = body_c.sum() * abs(np.linalg.det(current.affine[:3, :3]))
    vp = body_p.sum() * abs(np.linalg.det(prior.affine[:3, :3]))
    overlap = (c_in_p.mean() if vc <= vp else p_in_c.mean()) if min(len(pc), len(pp)) else 0.0
    quality = [_metric("fov overlap", overlap, "", MIN_OVERLAP, ">=",
                       reason="fraction of the smaller study's body (HU > -500) inside the other's field of view")]
    refusal = None
    if overlap < MIN_OVERLAP:
        refusal = (f"too little overlap after registration: {overlap:.0%} of the smaller study's body lies in the other's "
                   f"field of view (at least {MIN_OVERLAP:.0%} needed; different body region?)")
    # intensity agreement in the common body region (prior grid)
    common = pp[p_in_c]
    ncc = None
    if len(common) > 100:
        vals_c, _ = sample(Grid(current.data, current.affine), apply(np.linalg.inv(cur_to_prior), common), order=1)
        vals_p = prior.data[body_p][p_in_c].astype(np.float64)
        a, b = np.clip(vals_p, -1000, 1500), np.clip(vals_c, -1000, 1500)
        sa, sb = a.std(), b.std()
        ncc = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb)) if sa > 0 and sb > 0 else None
    quality.append(_metric("ncc", ncc, "", MIN_NCC, ">=",
                           reason="normalized cross-correlation of HU in the common body region"
                           if ncc is not None else "too few common body voxels"))
    if refusal is None and (ncc is None or ncc < MIN_NCC):
        refusal = ("the registered images do not agree: normalized cross-correlation of HU in the common body region "
                   f"{'not measurable' if ncc is None else f'{ncc:.2f}'} (at least {MIN_NCC} needed; different body "
                   "region or patient?)")
    # organ masks
    dices = []
    for name in sorted(set(prior_organs) & set(current_organs)):
        mp, mc = prior_organs[name].data, current_organs[name].data
        if mp.sum() < 50 or mc.sum() < 50:
            continue
        # current organ voxels mapped into the prior grid, both restricted to the common field of view
        wc = apply(cur_to_prior, world_points(current, mc))
        hit, inside = sample(Grid(mp, prior.affine), wc)
        ptsp = world_points(prior, mp)
        _, p_inside = sample(current, apply(np.linalg.inv(cur_to_prior), ptsp))
        n_c, n_p = inside.sum() * abs(np.linalg.det(current.affine[:3, :3])), p_inside.sum() * abs(np.linalg.det(prior.affine[:3, :3]))
        back, _ = sample(Grid(mc, current.affine), apply(np.linalg.inv(cur_to_prior), ptsp[p_inside]))
        inter_p = back.sum() * abs(np.linalg.det(prior.affine[:3, :3]))
        inter_c = hit[inside].sum() * abs(np.linalg.det(current.affine[:3, :3]))
        if n_c + n_p == 0:
            continue
        dice = (inter_p + inter_c) / (n_c + n_p)
        dices.append(dice)
        quality.append(_metric(f"dice {name}", dice, "", reason="registered organ masks within the common field of view"))
        if name == "liver":
            sc = apply(cur_to_prior, world_points(current, _surface(mc)))
            sp_ = world_points(prior, _surface(mp))
            _, sc_in = sample(prior, sc)
            _, sp_in = sample(current, apply(np.linalg.inv(cur_to_prior), sp_))
            if sc_in.sum() and sp_in.sum():
                quality.append(_metric("mean surface distance liver", _surface_distance(sc[sc_in], sp_[sp_in]), "mm",
                                       reason="symmetric mean distance between the registered liver surfaces "
                                              "(common field of view; includes the scan-edge cut faces)"))
    if dices:
        med = float(np.median(dices))
        quality.append(_metric("median organ dice", med, "", MIN_DICE, ">=",
                               reason=f"{len(dices)} organ(s) masked in both studies"))
        if refusal is None and med < MIN_DICE:
            refusal = f"organ masks disagree after registration: median Dice {med:.2f} over {len(dices)} organ(s) " \
                      f"(at least {MIN_DICE} needed)"
    else:
        quality.append(_metric("median organ dice", None, "", MIN_DICE, ">=",
                               reason="no organ is masked in both studies: registration checked on the images only"))
    return quality, refusal
