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
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .errors import CTLoadError, DicomSeriesError, MaskError, ModalityError
from .volume import CTVolume

__all__ = ["load_dicom_series", "read_slice_pixels", "load_rtstruct"]

# Objects that can sit beside a CT series and are not part of its image stack.
_NON_IMAGE_MODALITIES = frozenset(
    {"RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "RTIMAGE", "SEG", "SR", "PR", "KO", "REG", "DOC", "FID", "PLAN", "RWV"}
)
_NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan
    "1.2.840.10008.5.1.4.1.1.66",  # Raw data, Spatial Registration, Segmentation...
    "1.2.840.10008.5.1.4.1.1.88",  # Structured reports
    "1.2.840.10008.5.1.4.1.1.11",  # Presentation states
    "1.2.840.10008.5.1.4.1.1.104",  # Encapsulated documents
)
_NATIVE_LE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})
_PIXEL_DATA_TAG_LE = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_ORIENT_TOL = 1e-4  # direction cosines
_DUP_TOL_MM = 0.01  # two slices closer than this along the normal share a position
_TILT_REPORT_DEG = 0.01

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


# --------------------------------------------------------------------------------------------
# pass 1: headers


@dataclass
class _Header:
    path: Path
    ds: Dataset  # everything before the pixel data
    pixel_offset: int | None  # file offset of the (7FE0,0010) element, native little endian only
    ts: UID
    has_pixels: bool | None  # a pixel data element follows the header (None: unknown, deflated)

    @property
    def modality(self) -> str:
        return str(self.ds.get("Modality", "") or "").strip().upper()

    @property
    def series_uid(self) -> str:
        return str(self.ds.get("SeriesInstanceUID", "") or "").strip()

    @property
    def sop_class(self) -> UID:
        meta = getattr(self.ds, "file_meta", None)
        uid = self.ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else "") or ""
        return UID(str(uid))

    @property
    def is_non_image(self) -> bool:
        """An object that is never part of an image stack (RTSTRUCT, SEG, SR, DICOMDIR...)."""
        if self.modality in _NON_IMAGE_MODALITIES:
            return True
        return self.sop_class == "1.2.840.10008.1.3.10" or str(self.sop_class).startswith(_NON_IMAGE_SOP_PREFIXES)

    @property
    def is_image(self) -> bool:
        return (
            not self.is_non_image
            and "Rows" in self.ds
            and "Columns" in self.ds
            and self.has_pixels is not False
        )

    @property
    def looks_truncated(self) -> bool:
        """Claims to be an image (image SOP class, or Rows present) but the pixel data is missing."""
        if self.is_non_image or self.is_image:
            return False
        name = self.sop_class.name if self.sop_class else ""
        return "Image Storage" in name or "Rows" in self.ds


@dataclass
class _Frame:
    header: _Header
    index: int | None  # frame number (0-based) in a multi-frame file; None for a single-frame file
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient: row cosine (3), column cosine (3)
    pixel_spacing: tuple[float, float]  # DICOM order: (between rows, between columns)
    rows: int
    cols: int
    slope: float
    intercept: float
    thickness: float | None

    @property
    def label(self) -> str:
        return str(self.header.path) if self.index is None else f"{self.header.path} [frame {self.index + 1}]"


def _corrupt(path: Path, exc: BaseException, what: str = "a readable DICOM file") -> CTLoadError:
    return CTLoadError(f"{path}: expected {what}, found a corrupt or truncated file ({type(exc).__name__}: {exc})")


def _truncated(h: _Header) -> CTLoadError:
    missing = [n for n, ok in (("Rows/Columns", "Rows" in h.ds), ("Pixel Data", h.has_pixels is not False)) if not ok]
    return CTLoadError(
        f"{h.path}: expected a complete {h.sop_class.name or 'DICOM image'} (Rows, Columns, Pixel Data), "
        f"found {' and '.join(missing)} missing after {len(h.ds)} header element(s) "
        f"({h.path.stat().st_size} bytes): truncated or corrupt file"
    )


def _read_header(path: Path) -> _Header | None:
    """Header of one file (pixel data not read), or None when the file is not DICOM at all."""
    try:
        fp = open(path, "rb")
    except OSError as exc:
        raise CTLoadError(f"{path}: expected a readable file, found an I/O error ({exc})") from exc
    with fp:
        try:
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                # No 128-byte preamble + 'DICM': accept only raw datasets that start like one
                # (group 0x0002/0x0008, little endian); anything else (LICENSE, README) is not DICOM.
                fp.seek(0)
                head = fp.read(4)
                if len(head) < 4 or head[:2] not in (b"\x08\x00", b"\x02\x00"):
                    return None
                fp.seek(0)
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            offset = fp.tell()
            meta = getattr(ds, "file_meta", None)
            ts = UID(str((meta.get("TransferSyntaxUID") if meta else None) or ImplicitVRLittleEndian))
            pixel_offset = None
            has_pixels: bool | None = None
            if not ts.is_deflated:
                fp.seek(offset)
                peek = fp.read(4)
                # stop_before_pixels only stops at a pixel data tag; nothing left means none
                has_pixels = len(peek) == 4
                if ts in _NATIVE_LE and peek == _PIXEL_DATA_TAG_LE:
                    pixel_offset = offset
        except Exception as exc:  # pydicom raises many types on malformed input (EOFError, ValueError...)
            raise _corrupt(path, exc) from exc
    if not isinstance(ds, Dataset) or (len(ds) == 0 and not getattr(ds, "file_meta", None)):
        return None
    return _Header(path, ds, pixel_offset, ts, has_pixels)


def _list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _floats(value: Any, n: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except Exception as exc:
        raise DicomSeriesError(f"{where}: expected {n} numbers in {what}, found {value!r}") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DicomSeriesError(f"{where}: expected {n} finite numbers in {what}, found {value!r}")
    return arr


def _first_item(ds: Dataset | None, seq: str) -> Dataset | None:
    if ds is None:
        return None
    s = ds.get(seq)
    return s[0] if s else None


def _fg_attr(per_frame: Dataset | None, shared: Dataset | None, seq: str, attr: str) -> Any:
    """An attribute from a functional group: per-frame first, then shared."""
    for group in (per_frame, shared):
        item = _first_item(group, seq)
        if item is not None and attr in item and item.get(attr) not in (None, ""):
            return item.get(attr)
    return None


def _opt_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rescale(value: Any, default: float, what: str, where: str) -> float:
    if value is None or value == "":
        return default
    f = _opt_float(value)
    if f is None or (what == "RescaleSlope" and f == 0):
        raise DicomSeriesError(f"{where}: expected a finite {what}, found {value!r}")
    return f


def _frames_of(h: _Header) -> list[_Frame]:
    """Geometry of every frame of one image file (one frame for a classic single-frame file)."""
    ds = h.ds
    where = str(h.path)
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence")
        if n_frames > 1 or per_frame_seq:
            shared = _first_item(ds, "SharedFunctionalGroupsSequence")
            if not per_frame_seq or len(per_frame_seq) != n_frames:
                found = len(per_frame_seq) if per_frame_seq else 0
                raise DicomSeriesError(
                    f"{where}: multi-frame file with NumberOfFrames={n_frames}; expected one "
                    f"PerFrameFunctionalGroupsSequence item per frame (enhanced CT), found {found}"
                )
            frames = []
            for idx, pf in enumerate(per_frame_seq):
                fwhere = f"{where} [frame {idx + 1}]"
                pos = _fg_attr(pf, shared, "PlanePositionSequence", "ImagePositionPatient")
                ori = _fg_attr(pf, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
                sp = _fg_attr(pf, shared, "PixelMeasuresSequence", "PixelSpacing")
                for name, val, seq in (
                    ("ImagePositionPatient", pos, "PlanePositionSequence"),
                    ("ImageOrientationPatient", ori, "PlaneOrientationSequence"),
                    ("PixelSpacing", sp, "PixelMeasuresSequence"),
                ):
                    if val is None:
                        raise DicomSeriesError(
                            f"{fwhere}: expected {name} in the per-frame or shared {seq}, found none"
                        )
                slope = _fg_attr(pf, shared, "PixelValueTransformationSequence", "RescaleSlope")
                icpt = _fg_attr(pf, shared, "PixelValueTransformationSequence", "RescaleIntercept")
                thick = _fg_attr(pf, shared, "PixelMeasuresSequence", "SliceThickness")
                spacing = _floats(sp, 2, "PixelSpacing", fwhere)
                frames.append(
                    _Frame(
                        h,
                        idx,
                        _floats(pos, 3, "ImagePositionPatient", fwhere),
                        _floats(ori, 6, "ImageOrientationPatient", fwhere),
                        (float(spacing[0]), float(spacing[1])),
                        rows,
                        cols,
                        _rescale(slope, 1.0, "RescaleSlope", fwhere),
                        _rescale(icpt, 0.0, "RescaleIntercept", fwhere),
                        _opt_float(thick),
                    )
                )
            return frames
        for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if ds.get(name) is None:
                raise DicomSeriesError(f"{where}: expected {name} in a CT slice, found none")
        spacing = _floats(ds.PixelSpacing, 2, "PixelSpacing", where)
        return [
            _Frame(
                h,
                None,
                _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", where),
                _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", where),
                (float(spacing[0]), float(spacing[1])),
                rows,
                cols,
                _rescale(ds.get("RescaleSlope"), 1.0, "RescaleSlope", where),
                _rescale(ds.get("RescaleIntercept"), 0.0, "RescaleIntercept", where),
                _opt_float(ds.get("SliceThickness")),
            )
        ]
    except (DicomSeriesError, CTLoadError):
        raise
    except Exception as exc:  # lazily converted elements (e.g. VR UN, malformed sequences) fail here
        raise _corrupt(h.path, exc, "a DICOM header with valid image attributes") from exc


# --------------------------------------------------------------------------------------------
# geometry checks


def _fmt(x: float) -> str:
    return f"{round(float(x), 3):g}"


def _fmt_list(values: list[float], limit: int = 12) -> str:
    s = [_fmt(v) for v in values]
    if len(s) > limit:
        s = s[: limit // 2] + ["..."] + s[-limit // 2 :]
    return ", ".join(s)


def _sort_and_check(frames: list[_Frame], where: str) -> tuple[list[_Frame], np.ndarray, np.ndarray]:
    """Sort frames along the slice normal and check the stack is a regular grid.

    Returns (sorted frames, normal, step vector in LPS mm).
    """
    if len(frames) < 2:
        f = frames[0]
        raise DicomSeriesError(
            f"{where}: expected a 3D CT series (at least 2 slices), found a 2D image "
            f"(1 slice of {f.cols}x{f.rows} pixels in {f.label})"
        )
    ref = frames[0]
    row_c, col_c = ref.orientation[:3], ref.orientation[3:]
    if (
        abs(np.linalg.norm(row_c) - 1) > 1e-3
        or abs(np.linalg.norm(col_c) - 1) > 1e-3
        or abs(float(row_c @ col_c)) > 1e-3
    ):
        raise DicomSeriesError(
            f"{ref.label}: expected orthonormal ImageOrientationPatient cosines, found {ref.orientation.tolist()}"
        )
    for f in frames[1:]:
        if f.rows != ref.rows or f.cols != ref.cols:
            raise DicomSeriesError(
                f"{where}: expected every slice to have {ref.rows} rows x {ref.cols} columns "
                f"(as {ref.label}), found {f.rows} x {f.cols} in {f.label}"
            )
        if not np.allclose(f.orientation, ref.orientation, atol=_ORIENT_TOL):
            raise DicomSeriesError(
                f"{where}: expected one ImageOrientationPatient for the series, found "
                f"{ref.orientation.tolist()} in {ref.label} and {f.orientation.tolist()} in {f.label}"
            )
        if not np.allclose(f.pixel_spacing, ref.pixel_spacing, rtol=1e-4, atol=1e-5):
            raise DicomSeriesError(
                f"{where}: expected one PixelSpacing for the series, found "
                f"{list(ref.pixel_spacing)} in {ref.label} and {list(f.pixel_spacing)} in {f.label}"
            )
    row_c = row_c / np.linalg.norm(row_c)
    col_c = col_c / np.linalg.norm(col_c)
    normal = np.cross(row_c, col_c)
    d = np.array([float(f.position @ normal) for f in frames])
    order = np.argsort(d, kind="stable")
    frames = [frames[i] for i in order]
    d = d[order]
    pos = np.array([f.position for f in frames])

    dd = np.diff(d)
    dup = np.flatnonzero(dd < _DUP_TOL_MM)
    if dup.size:
        a, b = frames[dup[0]], frames[dup[0] + 1]
        raise DicomSeriesError(
            f"{where}: expected one slice per position, found a duplicate position: {a.label} and {b.label} "
            f"both at {_fmt_list(list(a.position))} mm (LPS), {_fmt(d[dup[0]])} mm along the slice normal; "
            f"{dup.size} duplicate pair(s) in {len(frames)} slices"
        )
    steps = np.diff(pos, axis=0)  # LPS step vectors
    typical = np.median(steps, axis=0)  # robust reference: names the odd step, not every step
    tol = max(0.01, 0.01 * float(np.linalg.norm(typical)))
    bad = np.flatnonzero(np.linalg.norm(steps - typical, axis=1) > tol)
    if bad.size:
        lens = np.linalg.norm(steps, axis=1)
        uniq, counts = np.unique(np.round(dd, 3), return_counts=True)
        summary = ", ".join(f"{_fmt(u)} mm x{c}" for u, c in zip(uniq, counts))
        first = bad[0]
        raise DicomSeriesError(
            f"{where}: expected uniform slice steps (within {_fmt(tol)} mm), found steps along the slice normal "
            f"of {_fmt_list(list(dd))} mm ({summary}); positions along the normal {_fmt_list(list(d))} mm; "
            f"first irregular step {_fmt(lens[first])} mm between {frames[first].label} and "
            f"{frames[first + 1].label} (missing slice or gap?)"
        )
    step = (pos[-1] - pos[0]) / (len(frames) - 1)  # mean step: exact for a regular stack
    return frames, normal, step


# --------------------------------------------------------------------------------------------
# pass 2: pixels


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
        raise _corrupt(h.path, exc, f"decodable {h.ts.name} pixel data") from exc
    return arr


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


# --------------------------------------------------------------------------------------------
# public API


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


def load_dicom_series(path: Path) -> CTVolume:
    """Load one CT series from a folder (searched recursively) or one enhanced multi-frame CT file.

    Raises CTLoadError (missing/empty/corrupt input, missing decoder), ModalityError (not CT),
    DicomSeriesError (several series, 2D, duplicate positions, non-uniform steps, inconsistent
    orientation/size/spacing).
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise CTLoadError(f"{path}: expected a DICOM folder or file, found nothing at this path")
    if path.is_dir():
        files = _list_files(path)
        if not files:
            raise CTLoadError(f"{path}: expected a folder holding one DICOM CT series, found an empty folder")
    else:
        files = [path]

    headers: list[_Header] = []
    n_not_dicom = 0
    for f in files:
        h = _read_header(f)
        if h is None:
            n_not_dicom += 1
            continue
        if h.looks_truncated:
            raise _truncated(h)
        headers.append(h)
    images = [h for h in headers if h.is_image]
    if not images:
        kinds = sorted({h.modality or "?" for h in headers})
        raise CTLoadError(
            f"{path}: expected DICOM CT images, found {len(files)} file(s): {len(headers)} DICOM "
            f"object(s) without image data{(' (' + ', '.join(kinds) + ')') if kinds else ''} and "
            f"{n_not_dicom} non-DICOM file(s)"
        )

    groups: dict[str, list[_Header]] = {}
    for h in images:
        groups.setdefault(h.series_uid, []).append(h)
    if len(groups) > 1:
        lines = []
        for uid, hs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            desc = str(hs[0].ds.get("SeriesDescription", "") or "").strip()
            mods = "/".join(sorted({x.modality or "?" for x in hs}))
            n_slices = sum(int(x.ds.get("NumberOfFrames", 1) or 1) for x in hs)
            lines.append(
                f"  {uid or '(no SeriesInstanceUID)'}: {n_slices} slice(s) in {len(hs)} file(s), {mods}, "
                f"description {desc!r}"
            )
        raise DicomSeriesError(
            f"{path}: expected one DICOM series, found {len(groups)} series:\n" + "\n".join(lines)
        )
    (series_uid, hs), = groups.items()

    modalities = sorted({h.modality for h in hs})
    if modalities != ["CT"]:
        raise ModalityError(
            f"{path}: expected modality CT, found {', '.join(m or '(missing Modality)' for m in modalities)}"
        )

    frames = [fr for h in hs for fr in _frames_of(h)]
    frames, normal, step = _sort_and_check(frames, where)

    stack = _load_pixels(frames)
    hu = stack.transpose(2, 1, 0)  # (n, rows, cols) -> hu[i=col, j=row, k=slice]; F-contiguous view

    ref = frames[0]
    row_sp, col_sp = ref.pixel_spacing
    row_c = ref.orientation[:3] / np.linalg.norm(ref.orientation[:3])
    col_c = ref.orientation[3:] / np.linalg.norm(ref.orientation[3:])
    lps = np.eye(4)
    lps[:3, 0] = row_c * col_sp  # i: along a row, one column step
    lps[:3, 1] = col_c * row_sp  # j: down a column, one row step
    lps[:3, 2] = step
    lps[:3, 3] = ref.position
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps

    warnings: list[str] = []
    step_len = float(np.linalg.norm(step))
    cos_t = min(1.0, abs(float(step @ normal)) / step_len)
    tilt = math.degrees(math.acos(cos_t))
    if tilt > _TILT_REPORT_DEG:
        warnings.append(
            f"gantry tilt {tilt:.2f} deg: slices step {_fmt(step_len)} mm at {tilt:.2f} deg from the slice "
            f"normal ({_fmt(step_len * cos_t)} mm between planes); the affine is sheared, not resampled"
        )
    ds0 = hs[0].ds
    if not series_uid:
        warnings.append("SeriesInstanceUID missing: all image files in the folder were taken as one series")
    rescale_types = set()
    for h in hs:
        shared = _first_item(h.ds, "SharedFunctionalGroupsSequence")
        rt = _fg_attr(None, shared, "PixelValueTransformationSequence", "RescaleType") or h.ds.get("RescaleType")
        rescale_types.add(str(rt or "").strip())
    rescale_types.discard("")
    if rescale_types and rescale_types != {"HU"}:
        warnings.append(
            f"RescaleType is {', '.join(sorted(rescale_types))}, not HU: values may not be Hounsfield units "
            f"(ImageType {list(ds0.get('ImageType', []))})"
        )

    thickness = ref.thickness
    contrast = str(ds0.get("ContrastBolusAgent", "") or "").strip() or None
    if contrast is None and ds0.get("ContrastBolusAgentSequence"):
        item = ds0.ContrastBolusAgentSequence[0]
        contrast = str(item.get("CodeMeaning", "") or "").strip() or None
    kvp = _opt_float(ds0.get("KVP"))
    if kvp is None:
        per = ds0.get("PerFrameFunctionalGroupsSequence")
        kvp = _opt_float(
            _fg_attr(per[0] if per else None, _first_item(ds0, "SharedFunctionalGroupsSequence"),
                     "CTXRayDetailsSequence", "KVP")
        )
    meta: dict[str, Any] = {
        "slice_thickness_mm": thickness,
        "series_description": str(ds0.get("SeriesDescription", "") or "").strip() or None,
        "contrast_agent": contrast,
        "modality": "CT",
        "manufacturer": str(ds0.get("Manufacturer", "") or "").strip() or None,
        "kvp": kvp,
        "series_uid": series_uid or None,
        "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", "") or "").strip() or None,
        "n_files": len(hs),
        "n_slices": len(frames),
        "multiframe": any(fr.index is not None for fr in frames),
        "transfer_syntax": sorted({h.ts.name for h in hs}),
        "slice_step_mm": step_len,
        "gantry_tilt_deg": tilt if tilt > _TILT_REPORT_DEG else 0.0,
    }
    return CTVolume(hu=hu, affine=affine, source=where, source_format="dicom", meta=meta, warnings=tuple(warnings))


# --------------------------------------------------------------------------------------------
# RTSTRUCT


def _fill_polygon(poly: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Even-odd fill of a polygon given in continuous (u, v) pixel coordinates.

    Pixel (u, v) is inside when its centre (integer coordinates) is inside. Returns the filled
    bool array over the polygon's bounding box and the box origin, or None when it covers no centre.
    """
    u, v = poly[:, 0], poly[:, 1]
    v_lo = max(0, int(math.ceil(v.min())))
    v_hi = min(shape[1] - 1, int(math.floor(v.max())))
    u_lo = max(0, int(math.ceil(u.min())))
    u_hi = min(shape[0] - 1, int(math.floor(u.max())))
    if v_lo > v_hi or u_lo > u_hi:
        return None
    u0, v0 = u, v
    u1, v1 = np.roll(u, -1), np.roll(v, -1)
    ys = np.arange(v_lo, v_hi + 1, dtype=float)[:, None]  # scanlines through pixel centres
    # half-open rule: an edge crosses scanline y when exactly one endpoint is above it
    crosses = (v0[None, :] > ys) != (v1[None, :] > ys)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = u0[None, :] + (ys - v0[None, :]) * (u1 - u0)[None, :] / (v1 - v0)[None, :]
    r, e = np.nonzero(crosses)
    # a crossing at x toggles the parity of every centre with u > x
    start = np.floor(x[r, e]).astype(np.int64) + 1 - u_lo
    width = u_hi - u_lo + 1
    start = np.clip(start, 0, width)
    toggles = np.zeros((ys.shape[0], width + 1), dtype=np.int32)
    np.add.at(toggles, (r, start), 1)
    inside = (np.cumsum(toggles[:, :width], axis=1) & 1).astype(bool)
    return inside.T, (u_lo, v_lo)  # (u, v) order


def load_rtstruct(rtstruct_path: Path, ct: CTVolume) -> dict[str, np.ndarray]:
    """Rasterise each ROI's CLOSED_PLANAR contours onto the CT grid.

    Contour points (LPS mm) are mapped to voxel coordinates through the inverse of ``ct.affine``;
    each contour must lie in one voxel plane (within a quarter voxel). Polygons are filled at voxel
    centres with the even-odd rule, and several contours of one ROI on one plane combine by XOR
    (so an inner contour is a hole). Returns ROI name -> bool array of ``ct.shape``; an ROI
    without closed planar contours maps to an all-False mask. Errors raise MaskError.
    """
    rtstruct_path = Path(rtstruct_path)
    try:
        ds = pydicom.dcmread(rtstruct_path)
    except FileNotFoundError as exc:
        raise MaskError(f"{rtstruct_path}: expected an RTSTRUCT file, found nothing at this path") from exc
    except Exception as exc:
        raise MaskError(
            f"{rtstruct_path}: expected a readable RTSTRUCT file, found a corrupt or non-DICOM file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    modality = str(ds.get("Modality", "") or "")
    if modality != "RTSTRUCT":
        raise MaskError(f"{rtstruct_path}: expected modality RTSTRUCT, found {modality or '(missing Modality)'}")
    ct_for = ct.meta.get("frame_of_reference_uid")
    rt_fors = {str(it.get("FrameOfReferenceUID", "")) for it in ds.get("ReferencedFrameOfReferenceSequence", [])}
    rt_fors.discard("")
    if ct_for and rt_fors and ct_for not in rt_fors:
        raise MaskError(
            f"{rtstruct_path}: expected contours in the CT's frame of reference {ct_for}, "
            f"found {', '.join(sorted(rt_fors))}"
        )

    names = {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}
    inv = np.linalg.inv(ct.affine)
    shape = ct.shape
    out: dict[str, np.ndarray] = {}
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        name = names.get(number, f"ROI_{number}")
        mask = out.setdefault(name, np.zeros(shape, dtype=bool))
        for ci, c in enumerate(roi.get("ContourSequence", []) or []):
            if str(c.get("ContourGeometricType", "")).upper() != "CLOSED_PLANAR":
                continue
            pts = np.asarray([float(v) for v in c.ContourData], dtype=float)
            if pts.size < 9 or pts.size % 3:
                raise MaskError(
                    f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected >= 3 (x, y, z) points, "
                    f"found {pts.size} numbers"
                )
            lps = pts.reshape(-1, 3)
            ras = np.c_[-lps[:, 0], -lps[:, 1], lps[:, 2], np.ones(len(lps))]
            vox = (inv @ ras.T).T[:, :3]
            spread = vox.max(axis=0) - vox.min(axis=0)
            axis = int(np.argmin(spread))
            plane = float(np.mean(vox[:, axis]))
            k = int(round(plane))
            if spread[axis] > 0.25 or abs(plane - k) > 0.25:
                raise MaskError(
                    f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected points on one CT voxel plane, "
                    f"found voxel coordinate {_fmt(plane)} (spread {_fmt(spread[axis])}) along axis {axis}"
                )
            if not 0 <= k < shape[axis]:
                raise MaskError(
                    f"{rtstruct_path}: ROI {name!r} contour {ci + 1}: expected a plane inside the CT "
                    f"(0..{shape[axis] - 1} along axis {axis}), found {k}; is this the RTSTRUCT of this CT?"
                )
            in_plane = [a for a in range(3) if a != axis]
            filled = _fill_polygon(vox[:, in_plane], (shape[in_plane[0]], shape[in_plane[1]]))
            if filled is None:
                continue
            arr, (u0, v0) = filled
            index: list[Any] = [slice(None)] * 3
            index[axis] = k
            index[in_plane[0]] = slice(u0, u0 + arr.shape[0])
            index[in_plane[1]] = slice(v0, v0 + arr.shape[1])
            mask[tuple(index)] ^= arr
    return out
