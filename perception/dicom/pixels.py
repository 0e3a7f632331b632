"""Pass 2 of DICOM loading: pixel data to stored values and Hounsfield units.

Native little-endian 16-bit pixel data is read straight from the offset found in pass 1 into the
output buffer; any other transfer syntax (JPEG 2000, JPEG lossless, RLE, deflate, big endian) goes
through pydicom's decoders (pylibjpeg plugins), and a missing decoder is named with the packages
that provide it.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ImplicitVRLittleEndian

from ..errors import CTLoadError
from .frames import _Frame
from .headers import _corrupt, _Header, _read_header, _truncated

# Which packages provide a decoder, by transfer syntax (what to tell the user to install).
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle (or use pydicom's built-in RLE decoder)",
}


def _decoder_status(ts: UID) -> tuple[bool, list[str]]:
    """(available, missing-dependency notes) of pydicom's decoder for a transfer syntax."""
    from pydicom.pixels import get_decoder

    try:
        dec = get_decoder(ts)
    except NotImplementedError:
        return False, [f"pydicom has no decoder for {ts}"]
    return bool(dec.is_available), list(dec.missing_dependencies)


def _check_decoder(path: Path, ts: UID) -> None:
    ok, missing = _decoder_status(ts)
    if not ok:
        pkgs = _DECODER_PACKAGES.get(str(ts), "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm)")
        raise CTLoadError(
            f"{path}: pixel data uses transfer syntax {ts.name} ({ts}) and no decoder is installed; "
            f"expected one of: {'; '.join(missing) or 'a pydicom pixel decoder plugin'}. "
            f"Install with: pip install {pkgs}"
        )


def _unused_bits(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    bits_alloc = int(ds.get("BitsAllocated", 16))
    bits_stored = int(ds.get("BitsStored", bits_alloc) or bits_alloc)
    if bits_stored < bits_alloc:
        shift = bits_alloc - bits_stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def _native_fast_ok(h: _Header) -> bool:
    ds = h.ds
    return (
        h.pixel_offset is not None
        and int(ds.get("BitsAllocated", 0) or 0) == 16
        and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        and int(ds.get("NumberOfFrames", 1) or 1) == 1
    )


def _read_native(h: _Header, out: np.ndarray) -> None:
    """Read one native little-endian 16-bit frame into ``out`` (rows, cols), raw stored values."""
    ds = h.ds
    expected = out.size * 2
    try:
        with open(h.path, "rb") as fp:
            fp.seek(h.pixel_offset)  # type: ignore[arg-type]
            head = fp.read(12)
            if len(head) < 12:
                raise CTLoadError(f"{h.path}: expected a pixel data element, found the file ending (truncated)")
            if h.ts == ImplicitVRLittleEndian:
                length = struct.unpack("<I", head[4:8])[0]
                start = h.pixel_offset + 8  # type: ignore[operator]
            else:  # explicit VR OB/OW/UN: 2-byte VR, 2 reserved bytes, 4-byte length
                length = struct.unpack("<I", head[8:12])[0]
                start = h.pixel_offset + 12  # type: ignore[operator]
            if length == 0xFFFFFFFF or length < expected:
                raise CTLoadError(
                    f"{h.path}: expected {expected} bytes of pixel data ({out.shape[1]}x{out.shape[0]} x 16 bit), "
                    f"found a pixel data element of length {length}"
                )
            fp.seek(start)
            n = fp.readinto(memoryview(out).cast("B"))
    except OSError as exc:
        raise CTLoadError(f"{h.path}: expected readable pixel data, found an I/O error ({exc})") from exc
    if n != expected:
        raise CTLoadError(
            f"{h.path}: expected {expected} bytes of pixel data, found {n} (file truncated)"
        )
    _unused_bits(out, ds)


def _pydicom_pixels(h: _Header) -> np.ndarray:
    """Decoded stored pixel values of every frame, shape (frames, rows, cols) or (rows, cols)."""
    if h.ts.is_compressed or h.ts.is_deflated:
        _check_decoder(h.path, h.ts)
    with _captured_output() as notes:
        try:
            ds = pydicom.dcmread(h.path)
            if "PixelData" not in ds:
                raise CTLoadError(
                    f"{h.path}: expected a complete pixel data element (7FE0,0010), found none readable in "
                    f"{h.path.stat().st_size} bytes: truncated or corrupt file"
                )
            arr = ds.pixel_array
        except CTLoadError:
            raise
        except Exception as exc:
            err = _corrupt(h.path, exc, f"decodable {h.ts.name} pixel data")
            msg = " ".join(str(err).split())  # one line: decoder plugins report one error per line
            if notes:
                msg += f" [decoder said: {_one_line(notes)}]"
            raise CTLoadError(msg) from exc
    return arr


class _ListHandler(logging.Handler):
    def __init__(self, notes: list[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


@contextlib.contextmanager
def _captured_output():
    """Collect (instead of printing) the warnings and pydicom log records raised while decoding, so
    a corrupt slice gives one line in the error instead of a traceback on stderr."""
    notes: list[str] = []
    logger = logging.getLogger("pydicom")
    handler = _ListHandler(notes)
    old_propagate, old_handlers = logger.propagate, logger.handlers[:]
    logger.handlers = [handler]
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, *a, **k: notes.append(str(message))
            yield notes
    finally:
        logger.handlers = old_handlers
        logger.propagate = old_propagate


def _one_line(notes: list[str], limit: int = 300) -> str:
    text = "; ".join(dict.fromkeys(" ".join(n.split()) for n in notes if n.strip()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _frame_raw(f: _Frame, buf: np.ndarray, decoded: dict[Path, np.ndarray]) -> np.ndarray:
    """Stored pixel values of one frame (rows, cols); ``buf`` is a reusable uint16 buffer."""
    h = f.header
    if _native_fast_ok(h):
        signed = int(h.ds.get("PixelRepresentation", 0) or 0) == 1
        out = buf.view(np.int16) if signed else buf
        _read_native(h, out)
        return out
    if h.path not in decoded:
        decoded[h.path] = _pydicom_pixels(h)
    arr = decoded[h.path]
    if f.index is not None and arr.ndim == 3:
        arr = arr[f.index]
    if arr.shape != (f.rows, f.cols):
        raise CTLoadError(f"{f.label}: expected {f.rows}x{f.cols} pixels, found decoded shape {arr.shape}")
    return arr


def _load_pixels(frames: list[_Frame]) -> np.ndarray:
    """HU of every frame in sorted order, shape (n, rows, cols).

    int16 when every slope is 1, every intercept an integer and the values fit; else float32.
    """
    n, rows, cols = len(frames), frames[0].rows, frames[0].cols
    buf = np.empty((rows, cols), dtype=np.uint16)
    decoded: dict[Path, np.ndarray] = {}
    if all(f.slope == 1.0 and f.intercept == round(f.intercept) for f in frames):
        out = np.empty((n, rows, cols), dtype=np.int16)
        for k, f in enumerate(frames):
            raw = _frame_raw(f, buf, decoded)
            if raw.dtype.kind not in "iu":
                break
            icpt = int(f.intercept)
            lo, hi = int(raw.min()), int(raw.max())
            if lo + icpt < -32768 or hi + icpt > 32767:
                break
            np.add(raw, np.int32(icpt), out=out[k], casting="unsafe")
        else:
            return out
        del out  # some values do not fit int16: fall through to float32
    out = np.empty((n, rows, cols), dtype=np.float32)
    for k, f in enumerate(frames):
        raw = _frame_raw(f, buf, decoded)
        np.multiply(raw, np.float32(f.slope), out=out[k], casting="unsafe")
        out[k] += np.float32(f.intercept)
    return out



def read_slice_pixels(path: Path) -> np.ndarray:
    """Decoded stored pixel values of one single-frame DICOM file, shape (rows, columns).

    No rescale is applied. Compressed transfer syntaxes decode through pydicom's plugins
    (pylibjpeg); a missing decoder or corrupt data raises CTLoadError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CTLoadError(f"{path}: expected a DICOM file, found {'a folder' if path.exists() else 'nothing'}")
    h = _read_header(path)
    if h is None:
        raise CTLoadError(f"{path}: expected a DICOM file, found a file that is not DICOM")
    if h.looks_truncated:
        raise _truncated(h)
    if not h.is_image:
        raise CTLoadError(
            f"{path}: expected a DICOM image, found a non-image object "
            f"({h.modality or h.sop_class.name or 'unknown type'})"
        )
    if int(h.ds.get("NumberOfFrames", 1) or 1) != 1:
        raise CTLoadError(f"{path}: expected a single-frame image, found NumberOfFrames={h.ds.NumberOfFrames}")
    rows, cols = int(h.ds.Rows), int(h.ds.Columns)
    signed = int(h.ds.get("PixelRepresentation", 0) or 0) == 1
    if _native_fast_ok(h):
        out = np.empty((rows, cols), dtype=np.int16 if signed else np.uint16)
        _read_native(h, out)
        return out
    return _pydicom_pixels(h)
