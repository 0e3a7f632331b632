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
from .measure import section
from .mask import Mask
from .schema import Findings, Lesion
from .volume import CTVolume

TARGET_PX = 512


def _display_grid(ct: CTVolume, k: int):
    """World-aligned display grid of slice k: returns (ij coords (2, H, W), to_display fn)."""
    ax = ct.axial_axis
    inplane = [a for a in range(3) if a != ax]
    A = ct.affine
    M = A[:2][:, inplane]  # (x, y) per unit (i, j)
    off = A[:2, ax] * k + A[:2, 3]
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

    return ij, to_display, inplane


def render_key_image(ct: CTVolume, lesion: Lesion, mask: Mask) -> bytes:
    k = lesion.axial_slice
    ax = ct.axial_axis
    ij, to_display, inplane = _display_grid(ct, k)
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


def render_key_images(ct: CTVolume, findings: Findings, masks: dict[str, Mask], folder: str = "key_images"
                      ) -> tuple[Findings, dict[str, bytes]]:
    """PNG bytes per lesion (lesion id -> bytes) and Findings whose lesions name the file each image
    is written to (``key_image``: ``<folder>/<lesion id>.png``, relative to findings.json)."""
    images, lesions = {}, []
    for les in findings.lesions:
        images[les.id] = render_key_image(ct, les, masks[les.id])
        lesions.append(les.model_copy(update={"key_image": f"{folder}/{les.id}.png"}))
    return findings.model_copy(update={"lesions": lesions}), images
