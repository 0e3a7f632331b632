"""Organ-aware characterization: the HU region of a host organ, its plausibility, whether a lesion's
attenuation may be called against it, which composition rules apply to a lesion, lung-nodule type
and side. Pure functions on arrays, spacing and the affine; every threshold and the organs each rule
applies to are data in :mod:`perception.registry`, with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import registry
from .measure import HUStats, hu_stats, world
from .schema import Check, Plausibility

# --- host organ HU region ---------------------------------------------------------------------

def erosion_radius(spacing: tuple[float, float, float], mm: float = registry.HOST_EROSION_MM) -> tuple[int, int, int]:
    """Half-width in voxels per axis of the erosion box: >= ``mm`` and >= 1 voxel."""
    return tuple(max(1, int(np.ceil(mm / s - 1e-9))) for s in spacing)  # type: ignore[return-value]


def erode_box(data: np.ndarray, radius: tuple[int, ...]) -> np.ndarray:
    """``data`` (bool) eroded by a box of half-width ``radius`` voxels; outside the array counts as outside.

    Separable: per axis, a voxel stays when all 2r+1 voxels of its window are set. The window AND is
    built by doubling (AND with itself shifted by 1, 2, 4, ..., then by the remainder), about
    log2(2r+1) + 1 byte-wise ANDs per axis between two buffers (``data`` is only read), instead of a
    min filter over every window position; the same array as
    ``ndimage.minimum_filter(..., mode="constant", cval=0)`` (tests/test_speed_erosion.py).
    """
    data = np.asarray(data, dtype=bool)
    bufs = (np.empty(data.shape, bool), np.empty(data.shape, bool))
    src = data
    for ax, r in enumerate(radius):
        if r > 0:
            src = _erode_axis(src, bufs, ax, int(r))
    return data.copy() if src is data else src


def _erode_axis(src: np.ndarray, bufs: tuple[np.ndarray, np.ndarray], ax: int, r: int) -> np.ndarray:
    """``src`` eroded along ``ax`` by half-width ``r``, written into one of ``bufs`` (the one returned)."""
    n, w = src.shape[ax], 2 * r + 1

    def other(x):
        return bufs[1] if x is bufs[0] else bufs[0]

    def sl(lo, hi):
        return (slice(None),) * ax + (slice(lo, hi),)

    dst = other(src)
    if n < w:  # no window fits: nothing survives
        dst[...] = False
        return dst
    # m_k[i] = AND src[i .. i+k-1], valid for i <= n-k; doubling k up to the largest power of two <= w
    k = 1
    while 2 * k <= w:
        np.logical_and(src[sl(0, n - k)], src[sl(k, n)], out=dst[sl(0, n - k)])
        src, dst = dst, other(dst)
        k *= 2
    # k <= w < 2k: windows [i, i+k) and [i+w-k, i+w) cover [i, i+w); written centred: res[i] = m_w[i - r]
    np.logical_and(src[sl(0, n - w + 1)], src[sl(w - k, n - k + 1)], out=dst[sl(r, n - r)])
    dst[sl(0, r)] = False
    dst[sl(n - r, n)] = False
    return dst


@dataclass(frozen=True)
class HostRegion:
    stats: HUStats | None
    region: str  # in words, for Organ.hu_region
    fat_fraction: float | None  # share of the region's voxels in the adipose HU range


def host_region(hu_crop: np.ndarray, host: np.ndarray, spacing: tuple[float, float, float],
                lesions_removed: bool) -> HostRegion:
    """HU statistics of a host organ: ``host`` (organ minus lesions, bool over ``hu_crop``) eroded by a box
    of >= 2 mm / >= 1 voxel per axis; the uneroded host when erosion leaves too few voxels (said so)."""
    minus = " minus all lesions" if lesions_removed else ""
    if not host.any():
        return HostRegion(None, f"organ mask{minus}: no voxel left", None)
    r = erosion_radius(spacing)
    core = erode_box(host, r)
    n = int(np.count_nonzero(core))
    mm = " x ".join(f"{ri * s:.1f}" for ri, s in zip(r, spacing))
    if n >= registry.HOST_MIN_ERODED_VOXELS:
        vals = hu_crop[core]
        region = f"organ mask{minus}, eroded by {r[0]}/{r[1]}/{r[2]} voxels ({mm} mm) per axis: {n} voxels"
    else:
        vals = hu_crop[host]
        region = (f"organ mask{minus}, not eroded (erosion by {mm} mm leaves {n} < {registry.HOST_MIN_ERODED_VOXELS} "
                  f"voxels): {vals.size} voxels, partial volume included")
    lo, hi = registry.FATTY_HOST["fat_hu"]
    fat = float(np.mean((vals >= lo) & (vals <= hi))) if vals.size else None
    return HostRegion(hu_stats(vals), region, fat)


# --- plausibility -------------------------------------------------------------------------------

def plausibility(organ: str, stats: HUStats | None, complete_volume_ml: float | None,
                 imaged_volume_ml: float | None) -> Plausibility | None:
    """Checks of an organ mask against the ranges of ``registry.PLAUSIBILITY``; None for organs without ranges."""
    rng = registry.PLAUSIBILITY.get(organ)
    if rng is None or stats is None:
        return None
    checks = []
    lo, hi = rng["mean_hu"]
    checks.append(Check(name="mean_hu", passed=lo <= stats.mean <= hi,
                        detail=f"mean {stats.mean:.0f} HU, expected {lo:.0f}..{hi:.0f} HU"))
    checks.append(Check(name="sd_hu", passed=stats.sd <= rng["max_sd_hu"],
                        detail=f"SD {stats.sd:.0f} HU, expected <= {rng['max_sd_hu']:.0f} HU"))
    vlo, vhi = rng["volume_ml"]
    if complete_volume_ml is not None:
        checks.append(Check(name="volume_ml", passed=vlo <= complete_volume_ml <= vhi,
                            detail=f"volume {complete_volume_ml:.1f} mL, expected {vlo:g}..{vhi:g} mL"))
    elif imaged_volume_ml is not None:  # incompletely imaged: only the upper bound can fail
        checks.append(Check(name="imaged_volume_ml", passed=imaged_volume_ml <= vhi,
                            detail=f"imaged volume {imaged_volume_ml:.1f} mL (organ cut by the scan edge), "
                                   f"expected <= {vhi:g} mL"))
    return Plausibility(plausible=all(c.passed for c in checks), checks=checks)


def implausible_reason(organ: str, p: Plausibility | None) -> str | None:
    """"liver mask implausible: mean -137 HU, expected -50..250 HU; ..." or None when plausible/unchecked."""
    if p is None or p.plausible:
        return None
    return f"{organ} mask implausible: " + "; ".join(c.detail for c in p.checks if not c.passed)


def fatty_reason(organ: str, region: HostRegion | None) -> str | None:
    """Why no attenuation is called against a host whose HU region holds fat, or None."""
    if region is None or region.fat_fraction is None or region.fat_fraction <= registry.FATTY_HOST["max_fraction"]:
        return None
    lo, hi = registry.FATTY_HOST["fat_hu"]
    return (f"{organ} HU region holds fat: {100 * region.fat_fraction:.0f} % of its voxels at {lo:.0f}..{hi:.0f} HU "
            f"(> {100 * registry.FATTY_HOST['max_fraction']:.0f} %); attenuation not called against a fat/parenchyma mean")


def ratio_reason(num_name: str, num: float | None, den_name: str, den: float | None) -> str | None:
    """Why an HU ratio cannot be read (an operand missing or outside its range), or None."""
    if num is None or den is None:
        missing = num_name if num is None else den_name
        return f"no {missing} HU"
    lo, hi = registry.RATIO_OPERAND_HU["numerator"]
    if not lo < num <= hi:
        return f"{num_name} mean {num:.1f} HU outside {lo:.0f}..{hi:.0f} HU: an HU ratio is not defined there"
    lo, hi = registry.RATIO_OPERAND_HU["denominator"]
    if not lo <= den <= hi:
        return f"{den_name} mean {den:.1f} HU outside {lo:.0f}..{hi:.0f} HU: an HU ratio is not defined there"
    return None


# --- lesion composition -------------------------------------------------------------------------

def composition(family: str | None, vals: np.ndarray, st: HUStats) -> tuple[list[str], str]:
    """Composition flags that apply to a lesion in ``family`` (None: no host organ), and the rule said in words."""
    th = registry.THRESHOLDS
    if family is None:
        rules = registry.COMPOSITION_NO_HOST
    else:
        rules = tuple(r for r, d in registry.COMPOSITION_RULES.items() if family in d["applies_to"])
    out = []
    if "fat" in rules and st.mean < th["fat_max_hu"]["value"]:
        out.append(f"fat: mean {st.mean:.0f} HU < {th['fat_max_hu']['value']:.0f}")
    elif "cystic" in rules and st.mean < th["cystic_max_hu"]["value"] and st.sd <= 20.0:
        out.append(f"cystic: mean {st.mean:.0f} HU < 20 and SD {st.sd:.0f} <= 20")
    if "calcified" in rules:
        calc = float(np.mean(vals > th["calcified_min_hu"]["value"]))
        if calc >= 0.05:
            out.append(f"calcified: {100 * calc:.0f} % of voxels > 130 HU")
    skipped = [r for r in registry.COMPOSITION_RULES if r not in rules]
    where = f"host {family}" if family else "no host organ"
    if skipped:
        why = "; ".join(f"{r}: {registry.COMPOSITION_RULES[r]['why_not']}" for r in skipped)
        rule = f"{where}: {', '.join(rules) or 'no'} rules applied; not assessed: {why}"
    else:
        rule = f"{where}: {', '.join(rules)} rules applied"
    return out, rule


# --- lung nodules -------------------------------------------------------------------------------

def nodule_type(hu_crop: np.ndarray, comp: np.ndarray, axial: int, long_axis_mm: float, slice_mm: float
                ) -> tuple[str | None, str]:
    """solid / part_solid / ground_glass by the voxel HU shares of ``registry.NODULE_TYPE``, or None with the reason."""
    t = registry.NODULE_TYPE
    min_long = max(t["min_long_axis_mm"], t["min_slices"] * slice_mm)
    if long_axis_mm < min_long:
        return None, (f"not typed: long axis {long_axis_mm:.1f} mm < {min_long:.1f} mm (6 mm and 3 x {slice_mm:.1f} mm "
                      "slices): partial volume with lung decides its attenuation")
    solid = comp & (hu_crop >= t["solid_min_hu"])
    gg = comp & (hu_crop >= t["aerated_max_hu"]) & (hu_crop < t["solid_min_hu"])
    if solid.any():
        size = [3, 3, 3]
        size[axial] = 1
        rim = ndimage.binary_dilation(solid, np.ones(size, bool), iterations=int(t["rim_pixels"]))
        gg &= ~rim
    n_s, n_g = int(solid.sum()), int(gg.sum())
    if n_s + n_g == 0:
        return None, "not typed: every voxel of the mask is aerated lung (< -750 HU)"
    share = n_s / (n_s + n_g)
    kind = ("solid" if share >= t["solid_min_share"] else
            "ground_glass" if share <= t["ground_glass_max_share"] else "part_solid")
    return kind, (f"{kind.replace('_', '-')}: solid share {100 * share:.0f} % of non-aerated voxels "
                  f"({n_s} >= -400 HU, {n_g} at -750..-400 HU beyond the solid rim); {t['rule']}")


def lung_side_from_midline(centroid_vox: np.ndarray, midline: dict[str, np.ndarray], affine: np.ndarray
                           ) -> tuple[str | None, str | None]:
    """Side of a lung lesion from its centroid against the midline (median world x of midline-structure masks'
    voxels: spinal cord, trachea, sternum, esophagus, vertebrae). RAS: larger x = patient right."""
    if not midline:
        return None, None
    xs = [float(np.median(world(v, affine)[:, 0])) for v in midline.values()]
    x_mid = float(np.median(xs))
    x = float(world(centroid_vox[None], affine)[0, 0])
    d = x - x_mid
    names = ", ".join(sorted(midline))
    if abs(d) < registry.LATERALITY_MIN_OFFSET_MM:
        return None, (f"side not determined: centroid x {x:.1f} mm within {registry.LATERALITY_MIN_OFFSET_MM:.0f} mm "
                      f"of the midline (x {x_mid:.1f} mm from {names})")
    side = "right" if d > 0 else "left"
    return side, f"{side}: centroid x {x:.1f} mm vs midline x {x_mid:.1f} mm (median of {names}; RAS, +x = patient right)"
