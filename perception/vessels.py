"""Vessel involvement: the angle of a vessel's circumference in contact with a tumour.

What is measured (the definition radiologists use for pancreatic-cancer resectability, NCCN):
on each cross-section of the vessel, the part of the vessel circumference that the tumour touches,
as an angle seen from the vessel's centre. Report the maximum angle over the cross-sections, the
length of vessel in contact, and the category none (0 deg), abutment (0 < angle <= 180 deg) or
encasement (> 180 deg).

How it is measured (``vessel_contact``):

* Cross-sections. The vessel is cut by the axial plane (the voxel axis closest to world S-I,
  ``axial_axis``) wherever it runs cranio-caudally. Whether it does is decided per axial vessel
  component: PCA of the vessel voxels inside a ball around the component's centroid gives the local
  centreline direction; the ball's radius is max(10 mm, 1.5 x the component's in-plane semi-major
  axis), capped at 40 mm, so that a wide or flattened vessel (aorta, IVC) is not mistaken for an
  in-plane one. When that direction is more than 45 deg from the axial axis (splenic vein, left
  renal vein), the component is not measured axially. Those components instead form 3D pieces
  (26-connected) measured on planes perpendicular to the vessel: centres stepped along the piece's
  principal axis, over the stretch the lesion can reach, every ``max(min(slice step, 2.5 mm),
  smallest voxel side, 1 mm)``; each centre is re-centred and re-oriented by PCA of the vessel
  voxels in a ball (radius max(10 mm, 2.5 x the piece's radius), capped at 40 mm), and the plane
  resampled (nearest neighbour, i.e. order 0 on masks) on a grid of 0.5 x the smallest voxel side.
  On that plane only the vessel component at (or nearest to) the centre is measured.
* Angle on one cross-section, per vessel component (8-connected in the section): from the
  component's centroid, 360 rays (1 deg apart) are cast in physical mm (anisotropic and sheared
  in-plane axes handled through the affine). Along each ray the vessel wall is where the ray first
  leaves the component. The ray is "in contact" when a lesion voxel lies on the ray between one
  pixel inside that wall (lesion voxels overlapping the vessel's boundary count as contact) and
  ``tolerance_mm`` beyond it. Voxels are treated as their squares, so a lesion voxel adjacent to the
  vessel has a gap of 0 mm whatever the voxel size. The angle is the number of contacted rays in
  degrees. Measuring along the ray (radially) keeps the tolerance from spilling around the edges of
  a tumour: a tumour covering 90 deg of the wall reads about 90 deg, not 90 deg plus a margin.
  Contact is judged within each cross-section (2D), not across neighbouring sections. Because a
  ray counts as soon as it meets any lesion voxel, the angle reads high by up to about one voxel
  of arc in total (voxel side / vessel radius, in radians): ~5-10 deg at 0.8 mm on a 5 mm
  vessel, up to ~20 deg with 3 mm voxels on a 10 mm vessel. The error is on the side of contact.
* Section angle = maximum over its components; ``max_angle_deg`` = maximum over sections;
  ``slice_of_max`` = the axial index of that section (of its centre for a perpendicular section).
* ``contact_length_mm`` = number of sections with angle > 0 x the section step (the slice spacing
  for axial sections, the centreline step for perpendicular ones). Gaps are not bridged, so this is
  the vessel length actually in contact.

Limits: a vessel piece judged in-plane and its axial neighbours are measured by different methods;
at a junction or bend (e.g. the portal/splenic confluence) both may count toward the length.
Sections are not de-duplicated between the two methods.

Cost: everything runs inside the lesion's bounding box expanded by the tolerance plus a 40 mm
margin (clipped to the vessel's box); there is no whole-volume operation. A vessel cross-section
reaching further than that margin from the lesion box is truncated there, which biases its centroid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .errors import GeometryMismatchError
from .measure import section
from .mask import BBox, Mask, expand, intersect
from .schema import ContactCategory, VesselContact
from .volume import axial_axis, voxel_spacing

N_RAYS = 360
MARGIN_MM = 40.0  # vessel cross-section context kept around the lesion box
MIN_WINDOW_MM = 10.0  # smallest PCA window radius
MAX_WINDOW_MM = 40.0  # largest PCA window radius
MAX_AXIAL_TILT_DEG = 45.0  # beyond this the vessel is cut perpendicular to its direction
PCA_GRID_MM = 2.0  # vessel voxels used for PCA are thinned to about this lattice
_COS_MAX_TILT = math.cos(math.radians(MAX_AXIAL_TILT_DEG))
_EIGHT = np.ones((3, 3), dtype=bool)


def category_of(angle_deg: float) -> ContactCategory:
    """none (0), abutment (0 < angle <= 180), encasement (> 180)."""
    if angle_deg <= 0:
        return ContactCategory.none
    return ContactCategory.abutment if angle_deg <= 180.0 else ContactCategory.encasement


@dataclass(frozen=True)
class _Section:
    angle_deg: float
    axial_index: int
    kind: str  # "axial" | "perpendicular"


def vessel_contact(lesion: Mask, vessel: Mask, affine: np.ndarray, *, tolerance_mm: float = 2.0,
                   display_name: str | None = None) -> VesselContact | None:
    """Circumferential contact of ``lesion`` with ``vessel`` (definition in the module docstring).

    Returns None when the vessel mask is empty (nothing to assess), a VesselContact with category
    none, angle 0 and length 0 when the vessel is present but not within ``tolerance_mm`` of the
    lesion (or the lesion is empty). ``display_name`` (default: the vessel mask name) goes into
    ``VesselContact.vessel``.
    """
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"affine: expected a 4x4 matrix, got shape {affine.shape}")
    if lesion.shape != vessel.shape:
        raise GeometryMismatchError(
            f"lesion mask {lesion.name!r} has grid {lesion.shape}, vessel mask {vessel.name!r} has {vessel.shape}")
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ValueError(f"tolerance_mm: expected a finite value >= 0 mm, got {tolerance_mm!r}")
    if vessel.empty:
        return None
    name = display_name or vessel.name
    geo = _Geometry(affine, vessel.shape, tolerance_mm)

    def result(sections: list[_Section]) -> VesselContact:
        kinds = sorted({s.kind for s in sections}) or ["axial"]
        method = f"{'+'.join(kinds)} cross-sections, {N_RAYS} rays, tolerance {tolerance_mm:g} mm"
        if not sections or max(s.angle_deg for s in sections) <= 0:
            return VesselContact(vessel=name, max_angle_deg=0.0, contact_length_mm=0.0,
                                 category=ContactCategory.none, slice_of_max=None, method=method)
        best = max(sections, key=lambda s: s.angle_deg)  # first of equal maxima
        length = sum(geo.step_mm(s.kind) for s in sections if s.angle_deg > 0)
        return VesselContact(vessel=name, max_angle_deg=float(best.angle_deg), contact_length_mm=float(length),
                             category=category_of(best.angle_deg), slice_of_max=int(best.axial_index),
                             method=method)

    if lesion.empty:
        return result([])
    tol_vox = tuple(int(math.ceil(tolerance_mm / s)) + 1 for s in geo.spacing)
    if intersect(expand(lesion.bbox, tol_vox, lesion.shape), vessel.bbox) is None:
        return result([])
    margin = tuple(int(math.ceil((tolerance_mm + MARGIN_MM) / s)) for s in geo.spacing)
    work = intersect(expand(lesion.bbox, margin, lesion.shape), expand(vessel.bbox, tol_vox, vessel.shape))
    if work is None:
        return result([])
    region = _Region(geo, work, vessel.crop(work), lesion.crop(work))
    sections, in_plane = _axial_sections(region)
    if in_plane.any():
        sections += _perpendicular_sections(region, in_plane)
    return result(sections)


class _Geometry:
    """Affine-derived quantities shared by the measurement steps."""

    def __init__(self, affine: np.ndarray, shape: tuple[int, int, int], tolerance_mm: float):
        self.affine = affine
        self.shape = shape
        self.tol = float(tolerance_mm)
        self.lin = affine[:3, :3]
        self.inv_lin = np.linalg.inv(self.lin)
        self.origin = affine[:3, 3]
        self.spacing = voxel_spacing(affine)
        self.ax = axial_axis(affine)
        self.inplane = tuple(a for a in range(3) if a != self.ax)
        self.axial_dir = self.lin[:, self.ax] / self.spacing[self.ax]
        # distance between neighbouring axial planes (differs from the spacing when sheared)
        self.slice_step = 1.0 / float(np.linalg.norm(self.inv_lin[self.ax]))
        # in-plane pixel index -> orthonormal in-plane mm frame (exact distances, any shear)
        _, r = np.linalg.qr(self.lin[:, list(self.inplane)])
        self.axial_to_mm = r
        self.perp_pixel = 0.5 * min(self.spacing)
        # centreline step of perpendicular sections: the slice step (capped at 2.5 mm), at least
        # 1 mm and at least the finest voxel side
        self.perp_step = max(min(self.slice_step, 2.5), min(self.spacing), 1.0)

    def step_mm(self, kind: str) -> float:
        return self.slice_step if kind == "axial" else self.perp_step


class _Region:
    """The work box: cropped vessel and lesion, and (thinned) vessel voxel world coordinates."""

    def __init__(self, geo: _Geometry, box: BBox, vessel: np.ndarray, lesion: np.ndarray):
        self.geo, self.box, self.vessel, self.lesion = geo, box, vessel, lesion
        self.code = vessel.view(np.uint8) | (lesion.view(np.uint8) << 1)  # bit 0 vessel, bit 1 lesion
        self.lo = np.array([a for a, _ in box], dtype=float)
        ax = geo.ax
        # Vessel voxels for the PCA windows, thinned to a lattice of about PCA_GRID_MM (the direction
        # in a >= 10 mm window does not need every voxel), rows sorted by the axial index so that a
        # window's candidates are one contiguous run.
        stride = [max(1, int(round(PCA_GRID_MM / s))) for s in geo.spacing]
        thin = np.zeros_like(vessel)
        sl = tuple(slice((-lo) % st, None, st) for lo, st in zip((a for a, _ in box), stride))
        thin[sl] = vessel[sl]
        idx = np.argwhere(np.moveaxis(thin, ax, 0))
        idx = idx[:, [0 if a == ax else 1 + geo.inplane.index(a) for a in range(3)]]
        self.vessel_k = idx[:, ax]
        self.vessel_world = self.to_world(idx)

    def to_world(self, local_idx: np.ndarray) -> np.ndarray:
        return (np.asarray(local_idx, dtype=float) + self.lo) @ self.geo.lin.T + self.geo.origin

    def to_local(self, world: np.ndarray) -> np.ndarray:
        return (world - self.geo.origin) @ self.geo.inv_lin.T - self.lo

    def axial_index(self, world: np.ndarray) -> int:
        k = self.to_local(world[None])[0, self.geo.ax] + self.lo[self.geo.ax]
        return int(np.clip(round(float(k)), 0, self.geo.shape[self.geo.ax] - 1))

    def ball(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """World coordinates of the vessel voxels within ``radius`` mm of ``centre``."""
        kc = self.to_local(centre[None])[0, self.geo.ax]
        dk = radius / self.geo.slice_step + 1
        a, b = np.searchsorted(self.vessel_k, [kc - dk, kc + dk + 1e-9])
        pts = self.vessel_world[a:b]
        return pts[((pts - centre) ** 2).sum(1) <= radius * radius]


def _principal_axes(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, eigenvalues descending, eigenvectors as columns in the same order)."""
    mean = pts.mean(0)
    x = pts - mean
    w, v = np.linalg.eigh(x.T @ x / max(len(pts) - 1, 1))
    return mean, w[::-1], v[:, ::-1]


def _axial_sections(region: _Region) -> tuple[list[_Section], np.ndarray]:
    """Angles on axial sections; also the mask of vessel components that run in-plane."""
    geo = region.geo
    ax, (p, q) = geo.ax, geo.inplane
    in_plane = np.zeros_like(region.vessel)
    sections: list[_Section] = []
    pad = [int(math.ceil(geo.tol / geo.spacing[a])) + 2 for a in (p, q)]
    lesion_k = np.flatnonzero(region.lesion.any(axis=tuple(geo.inplane)))
    vessel_k = np.flatnonzero(region.vessel.any(axis=tuple(geo.inplane)))
    for k in np.intersect1d(lesion_k, vessel_k):
        v2 = section(region.vessel, k, ax)
        l2 = section(region.lesion, k, ax)
        lab, _ = ndimage.label(v2, structure=_EIGHT)
        angle, touched = 0.0, False
        for lbl, obj in enumerate(ndimage.find_objects(lab), start=1):
            box = tuple(slice(max(0, s.start - m), min(dim, s.stop + m)) for s, m, dim in zip(obj, pad, v2.shape))
            les = l2[box]
            if not les.any():
                continue
            comp = lab[box] == lbl
            offset = np.array([s.start for s in box], dtype=float)
            pix = np.argwhere(comp).astype(float)
            mm = pix @ geo.axial_to_mm.T
            centre_local = np.zeros(3)
            centre_local[ax] = k
            centre_local[[p, q]] = pix.mean(0) + offset
            centre = region.to_world(centre_local[None])[0]
            if _runs_in_plane(region, centre, mm):
                sl = [slice(None)] * 3
                sl[ax], sl[p], sl[q] = k, box[0], box[1]
                in_plane[tuple(sl)] |= comp
                continue
            touched = True
            angle = max(angle, _ray_contact_angle(comp, les, geo.axial_to_mm, geo.tol))
        if touched:
            sections.append(_Section(angle, int(k + region.lo[ax]), "axial"))
    return sections, in_plane


def _runs_in_plane(region: _Region, centre: np.ndarray, comp_mm: np.ndarray) -> bool:
    """Whether the vessel at this axial component runs more than 45 deg from the axial axis."""
    if len(comp_mm) >= 3:
        semi_major = 2.0 * math.sqrt(max(float(np.linalg.eigvalsh(np.cov(comp_mm.T))[-1]), 0.0))
    else:
        semi_major = 0.0
    radius = float(np.clip(1.5 * semi_major, MIN_WINDOW_MM, MAX_WINDOW_MM))
    pts = region.ball(centre, radius)
    if len(pts) < 10:
        return False
    _, _, vecs = _principal_axes(pts)
    return abs(float(vecs[:, 0] @ region.geo.axial_dir)) < _COS_MAX_TILT


def _perpendicular_sections(region: _Region, in_plane: np.ndarray) -> list[_Section]:
    """Angles on planes perpendicular to the vessel, along each in-plane vessel piece."""
    geo = region.geo
    sections: list[_Section] = []
    pieces, _ = ndimage.label(in_plane, structure=np.ones((3, 3, 3), dtype=bool))
    for lbl, obj in enumerate(ndimage.find_objects(pieces), start=1):
        if obj is None:
            continue
        offset = np.array([s.start for s in obj])
        pts = region.to_world(np.argwhere(pieces[obj] == lbl) + offset)
        if len(pts) < 4:
            continue
        mean, w, vecs = _principal_axes(pts)
        axis = vecs[:, 0]
        piece_radius = 2.0 * math.sqrt(max(float(w[1]), 0.0))
        window = float(np.clip(2.5 * piece_radius, MIN_WINDOW_MM, MAX_WINDOW_MM))
        half_size = min(window, 1.5 * piece_radius + 2 * max(geo.spacing))  # section grid: vessel + margin
        t = (pts - mean) @ axis
        order = np.argsort(t)
        t, pts = t[order], pts[order]
        # extent along the piece of the lesion voxels that could reach it
        near = tuple(slice(max(0, s.start - m), s.stop + m) for s, m in
                     zip(obj, (int(math.ceil((geo.tol + half_size) / sp)) for sp in geo.spacing)))
        lesion_idx = np.argwhere(region.lesion[near])
        if len(lesion_idx) == 0:
            continue
        tl = (region.to_world(lesion_idx + np.array([s.start for s in near])) - mean) @ axis
        t0 = max(float(t.min()), float(tl.min()) - geo.tol - geo.perp_step)
        t1 = min(float(t.max()), float(tl.max()) + geo.tol + geo.perp_step)
        half_slab = 0.5 * max(geo.perp_step, max(geo.spacing))
        for ti in np.arange(t0 + 0.5 * geo.perp_step, t1 + 1e-9, geo.perp_step):
            a, b = np.searchsorted(t, [ti - half_slab, ti + half_slab], side="left")
            if b <= a:
                continue
            centre = pts[a:b].mean(0)
            direction = axis
            ball = region.ball(centre, window)  # re-centre on the vessel axis, local direction
            if len(ball) >= 10:
                centre, _, bvecs = _principal_axes(ball)
                direction = bvecs[:, 0]
            angle = _perpendicular_angle(region, centre, direction, half_size)
            if angle is not None:
                sections.append(_Section(angle, region.axial_index(centre), "perpendicular"))
    return sections


def _perpendicular_angle(region: _Region, centre: np.ndarray, direction: np.ndarray, half_size: float) -> float | None:
    """Contact angle on the plane through ``centre`` perpendicular to ``direction``."""
    geo = region.geo
    u = np.cross(direction, geo.axial_dir)
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(direction, np.eye(3)[int(np.argmin(np.abs(direction)))])
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    h = geo.perp_pixel
    m = int(math.ceil((half_size + geo.tol) / h))
    offs = np.arange(-m, m + 1) * h
    c_loc = region.to_local(centre[None])[0]
    u_loc, v_loc = geo.inv_lin @ u, geo.inv_lin @ v
    grid = c_loc + offs[:, None, None] * u_loc + offs[None, :, None] * v_loc  # (2m+1, 2m+1, 3) voxel coords
    codes = _sample_nearest(region.code, grid)
    vs = (codes & 1).astype(bool)
    if not vs.any():
        return None
    ls = (codes >> 1).astype(bool)
    lab, _ = ndimage.label(vs, structure=_EIGHT)
    lbl = lab[m, m]
    if lbl == 0:  # centre fell just outside the vessel: take the nearest vessel pixel's component
        pix = np.argwhere(vs)
        near = pix[np.argmin(((pix - m) ** 2).sum(1))]
        if np.hypot(*(near - m)) * h > half_size:
            return None
        lbl = lab[tuple(near)]
    if not ls.any():
        return 0.0
    return _ray_contact_angle(lab == lbl, ls, np.eye(2) * h, geo.tol, voxel_mm=min(geo.spacing))


def _sample_nearest(arr: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Nearest-neighbour lookup (order 0) of ``arr`` at fractional voxel coordinates ``coords``
    (..., 3); outside the array reads 0."""
    ii = np.rint(coords).astype(np.intp)
    ok = np.all((ii >= 0) & (ii < np.array(arr.shape)), axis=-1)
    out = np.zeros(coords.shape[:-1], dtype=arr.dtype)
    out[ok] = arr[ii[ok, 0], ii[ok, 1], ii[ok, 2]]
    return out


@lru_cache(maxsize=4)
def _unit_circle(n: int) -> np.ndarray:
    theta = np.arange(n) * (2.0 * math.pi / n)
    out = np.stack([np.cos(theta), np.sin(theta)], 1)
    out.setflags(write=False)
    return out


def _ray_contact_angle(comp: np.ndarray, lesion: np.ndarray, to_mm: np.ndarray, tol: float,
                       voxel_mm: float | None = None, n_rays: int = N_RAYS) -> float:
    """Degrees of ``comp``'s circumference with lesion radially within ``tol`` mm beyond its wall.

    ``comp`` (one vessel component) and ``lesion`` are 2D bool arrays on the same pixels; ``to_mm``
    maps a pixel index (i, j) to orthonormal in-plane mm coordinates. ``voxel_mm`` is the resolution
    of the data (default: the smallest pixel side): rays are sampled every quarter of it, and lesion
    voxels up to one voxel inside the vessel wall count as contact.
    """
    pix = np.argwhere(comp)
    if len(pix) == 0:
        return 0.0
    diag = max(float(np.linalg.norm(to_mm @ [1.0, 1.0])), float(np.linalg.norm(to_mm @ [1.0, -1.0])))
    # no lesion pixel within reach of the component's box: no contact, skip the rays
    pad = np.ceil((tol + 2 * diag) * np.linalg.norm(np.linalg.inv(to_mm), axis=1)).astype(int)
    lo_px, hi_px = np.maximum(pix.min(0) - pad, 0), pix.max(0) + pad + 1
    if not lesion[lo_px[0]:hi_px[0], lo_px[1]:hi_px[1]].any():
        return 0.0
    centre = pix.mean(0)
    voxel = float(voxel_mm) if voxel_mm else float(np.linalg.norm(to_mm, axis=0).min())
    step = 0.25 * voxel
    reach = math.sqrt(float((((pix - centre) @ to_mm.T) ** 2).sum(1).max())) + diag + tol + 2 * step
    # Every sample closer to the centre than the nearest non-vessel pixel (less half a pixel
    # diagonal) reads vessel, so rays may start there: same result, far fewer samples.
    outside = np.argwhere(~comp)
    start = 0.0
    if comp[tuple(np.rint(centre).astype(int))]:
        r_in = math.sqrt(float((((outside - centre) @ to_mm.T) ** 2).sum(1).min())) if len(outside) else 0.0
        start = max(0.0, r_in - 0.5 * diag - step)
    radii = np.arange(start, reach, step)
    # one lookup table: bit 0 vessel component, bit 1 lesion; a zero border catches rays leaving it
    code = np.zeros((comp.shape[0] + 2, comp.shape[1] + 2), dtype=np.uint8)
    code[1:-1, 1:-1] = comp
    code[1:-1, 1:-1] |= lesion.view(np.uint8) << 1
    dirs_px = _unit_circle(n_rays) @ np.linalg.inv(to_mm).T  # pixels per mm along each ray
    ii = np.rint(centre[0] + 1 + np.outer(dirs_px[:, 0], radii)).astype(np.intp)
    jj = np.rint(centre[1] + 1 + np.outer(dirs_px[:, 1], radii)).astype(np.intp)
    np.clip(ii, 0, code.shape[0] - 1, out=ii)
    np.clip(jj, 0, code.shape[1] - 1, out=jj)
    samples = code[ii, jj]
    inside = (samples & 1).astype(bool)
    hit = samples >> 1
    n = len(radii)
    has_in = inside.any(1)
    first_in = inside.argmax(1)
    outside_after = ~inside
    outside_after[np.arange(n)[None, :] <= first_in[:, None]] = False
    has_exit = outside_after.any(1)
    exit_ = outside_after.argmax(1)
    lo = np.maximum(exit_ - int(math.ceil(voxel / step)), first_in)
    hi = np.minimum(exit_ + int(math.floor(tol / step)), n - 1)
    csum = np.zeros((n_rays, n + 1), dtype=np.int32)
    np.cumsum(hit, axis=1, out=csum[:, 1:])
    rows = np.arange(n_rays)
    contact = (csum[rows, hi + 1] > csum[rows, lo]) & has_in & has_exit
    return float(np.count_nonzero(contact)) * 360.0 / n_rays
