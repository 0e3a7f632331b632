"""Key images: per lesion, the axial slice through its long axis, in radiological convention
(patient right on image left, anterior up), windowed for the host organ, with the lesion contour
and the RECIST long (red) and short (yellow) axes drawn. Rendered here, in perception, and
referenced from Findings so that templates never touch voxels."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from . import registry
from .mask import Mask
from .measure import section
from .schema import Findings, Lesion
from .volume import CTVolume

TARGET_PX = 512


def _display_grid(ct: CTVolume, k: int, cache: dict | None = None):
    """World-aligned display grid of slice k: returns (ij coords (2, H, W), to_display fn).
    The grid depends on k only through the slice's in-plane offset, so with a ``cache`` dict it is
    computed once per distinct offset (once per case for an axial-aligned affine)."""
    ax = ct.axial_axis
    inplane = [a for a in range(3) if a != ax]
    A = ct.affine
    M = A[:2][:, inplane]  # (x, y) per unit (i, j)
    off = A[:2, ax] * k + A[:2, 3]
    key = ("grid", off.tobytes())
    if cache is not None and key in cache:
        return cache[key]
    corners = np.array([[0, 0], [ct.shape[inplane[0]] - 1, 0], [0, ct.shape[inplane[1]] - 1],
                        [ct.shape[inplane[0]] - 1, ct.shape[inplane[1]] - 1]], float)
    xy = corners @ M.T + off
    px = min(np.linalg.norm(A[:3, inplane[0]]), np.linalg.norm(A[:3, inplane[1]]))
    xmax, xmin, ymax, ymin = xy[:, 0].max(), xy[:, 0].min(), xy[:, 1].max(), xy[:, 1].min()
    W = int(np.floor((xmax - xmin) / px)) + 1
    H = int(np.floor((ymax - ymin) / px)) + 1
    # column c: x = xmax - c*px (patient right on the left); row r: y = ymax - r*px (anterior up)
    cc, rr = np.meshgrid(np.arange(W), np.arange(H))
    X, Y = xmax - cc * px, ymax - rr * px
    inv = np.linalg.inv(M)
    ij = np.tensordot(inv, np.stack([X - off[0], Y - off[1]]), axes=1)

    def to_display(p_vox):
        w = A[:2, :3] @ np.asarray(p_vox, float) + A[:2, 3]
        return ((xmax - w[0]) / px, (ymax - w[1]) / px)

    out = (ij, to_display, inplane)
    if cache is not None:
        cache[key] = out
    return out


def _contour(ij: np.ndarray, mask: Mask, k: int, ax: int, inplane: list[int], shape2: tuple[int, int]) -> np.ndarray:
    """Display-pixel outline of the mask on slice k (bool, the display grid's shape): nearest-neighbour
    resampling of the mask section, minus its erosion. Worked out only on the display rectangle that
    can hold mask pixels (every pixel whose grid coordinates lie within one voxel of the mask's
    in-plane box) plus a one-pixel ring, which gives the same outline as working on the whole grid:
    nearest-neighbour values outside that rectangle are 0, and erosion near its edge sees the same
    zero ring (or the image border, where the rectangle reaches it)."""
    edge = np.zeros(ij.shape[1:], bool)
    (a0, a1), (b0, b1) = mask.bbox[inplane[0]], mask.bbox[inplane[1]]
    near = (ij[0] >= a0 - 1) & (ij[0] <= a1) & (ij[1] >= b0 - 1) & (ij[1] <= b1)
    rows, cols = np.nonzero(near.any(axis=1))[0], np.nonzero(near.any(axis=0))[0]
    if not rows.size:
        return edge
    r0, r1 = max(0, rows[0] - 1), min(edge.shape[0], rows[-1] + 2)
    c0, c1 = max(0, cols[0] - 1), min(edge.shape[1], cols[-1] + 2)
    full = np.zeros(shape2, np.uint8)
    full[a0:a1, b0:b1] = section(mask.data, k - mask.bbox[ax][0], ax)
    m = ndimage.map_coordinates(full, ij[:, r0:r1, c0:c1], order=0, mode="constant", cval=0).astype(bool)
    edge[r0:r1, c0:c1] = m & ~ndimage.binary_erosion(m)
    return edge


def render_key_image(ct: CTVolume, lesion: Lesion, mask: Mask, cache: dict | None = None) -> bytes:
    """PNG of the lesion's key image. ``cache`` (a dict kept across the lesions of one volume) reuses
    the display grid and the resampled slice between lesions; the image is the same with or without it."""
    k = lesion.axial_slice
    ax = ct.axial_axis
    ij, to_display, inplane = _display_grid(ct, k, cache)
    sl = section(ct.hu, k, ax)
    img = cache.get(("slice", k)) if cache is not None else None
    if img is None:
        img = ndimage.map_coordinates(sl.astype(np.float32), ij, order=1, mode="constant", cval=-1024.0)
        if cache is not None:
            cache[("slice", k)] = img
    edge = _contour(ij, mask, k, ax, inplane, sl.shape)
    fam = registry.organ_family(lesion.organ) if lesion.organ else "default"
    width, level = registry.WINDOWS.get(fam, registry.WINDOWS["default"])
    g = np.clip((img - (level - width / 2)) / width, 0, 1) * 255
    rgb = np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)
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


def render_key_images(ct: CTVolume, findings: Findings, masks: dict[str, Mask], folder: str = "key_images"
                      ) -> tuple[Findings, dict[str, bytes]]:
    """PNG bytes per lesion (lesion id -> bytes) and Findings whose lesions name the file each image
    is written to (``key_image``: ``<folder>/<lesion id>.png``, relative to findings.json)."""
    images, lesions, cache = {}, [], {}
    for les in findings.lesions:
        images[les.id] = render_key_image(ct, les, masks[les.id], cache)
        lesions.append(les.model_copy(update={"key_image": f"{folder}/{les.id}.png"}))
    return findings.model_copy(update={"lesions": lesions}), images
