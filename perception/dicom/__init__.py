"""DICOM CT input: one series in a folder (or one enhanced multi-frame file), and RTSTRUCT masks.

Geometry contract (same as :mod:`perception.volume`): ``hu[i, j, k]`` with ``i`` = column index,
``j`` = row index, ``k`` = slice index after sorting along the slice normal, and
``affine @ [i, j, k, 1]`` = RAS+ position in mm. DICOM patient coordinates are LPS, so the first two
rows of the LPS affine are negated. Column 2 of the affine is the measured position step between
consecutive slices, so a gantry-tilted series gets an exact sheared affine (never a resampled grid
or a wrong spacing).

Loading is two-pass, to stay near pydicom's floor: every file's header is read with
``stop_before_pixels`` (the file offset where pixel data starts is kept), slices are grouped,
sorted and checked, and only then are pixels read. Native little-endian pixel data is read
straight from that offset into the output buffer; any other transfer syntax (JPEG 2000, JPEG
lossless, RLE, deflate, big endian) goes through pydicom's decoders (pylibjpeg plugins).

The modules, one noun each: :mod:`.headers` (pass 1: files and headers), :mod:`.frames` (frame
geometry, classic and enhanced multi-frame), :mod:`.geometry` (sorting and grid checks),
:mod:`.pixels` (pass 2: decoding), :mod:`.series` (``load_dicom_series``), :mod:`.rtstruct`
(``load_rtstruct``).
"""

from __future__ import annotations

from radagent.imports import import_without

import_without("pydicom", "requests")  # before the modules below import it: pydicom without requests

from .pixels import read_slice_pixels
from .rtstruct import load_rtstruct
from .series import load_dicom_series

__all__ = ["load_dicom_series", "load_rtstruct", "read_slice_pixels"]
