"""Load a CT (NIfTI file or DICOM series) into a CTVolume, and check it is a usable 3D CT.

Strict about what it accepts: a missing, corrupt or truncated file, a 2D or 4D image, NaN/inf
voxels and non-CT intensities are refused with an InputError that names the file and says what
was expected and what was found.

Hostile files are refused before they cost memory or time (``read_nifti``): only regular files are
opened (FIFOs, devices, sockets and links to them are refused after resolving links); the declared
shape x data type is checked against ``MAX_VOXEL_BYTES`` (default 1 GiB, enough for a 512x512x2000
int16 CT; environment variable ``RADAGENT_MAX_VOXEL_BYTES`` overrides it) before anything is
inflated; gzip is inflated in bounded steps that never produce more than the header declared; voxel
sizes and the affine (pixdim, qform, sform) must be finite, positive and invertible.
"""

from __future__ import annotations

import gzip
import os
import stat
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import CTLoadError, ModalityError
from .volume import CTVolume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_VOXEL_BYTES = 1 << 30  # 1 GiB: a 512x512x2000 int16 CT is 1.0e9 bytes
MAX_VOXEL_BYTES_ENV = "RADAGENT_MAX_VOXEL_BYTES"
MAX_HEADER_BYTES = 16 << 20  # header + extensions before the voxel data (vox_offset)
_READ_CHUNK = 256 << 10  # compressed bytes read per step (small: a member end copies the rest of it)
_INFLATE_STEP = 4 << 20  # most bytes inflated per call (bounds the transient copy)
_SPARSE_CHUNK = 256 << 10  # voxel bytes inflated per step of a sparse (mask) read: stays in cache
_VOXEL_KINDS = "iuf"  # signed/unsigned integers and floats up to 8 bytes; no complex, RGB, structs


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


try:  # Intel ISA-L inflate: ~2.4x faster than zlib on CT-sized gzip streams, identical bytes
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a core dependency; stay correct without it
    _zlib = zlib
_ZERRORS = (zlib.error, _zlib.error)


def max_voxel_bytes() -> int:
    """The voxel-data budget in bytes: ``RADAGENT_MAX_VOXEL_BYTES`` if set, else ``MAX_VOXEL_BYTES``."""
    env = os.environ.get(MAX_VOXEL_BYTES_ENV, "").strip()
    if not env:
        return MAX_VOXEL_BYTES
    try:
        val = int(float(env))
    except ValueError:
        raise CTLoadError(f"{MAX_VOXEL_BYTES_ENV}: expected a number of bytes, found {env!r}") from None
    if val <= 0:
        raise CTLoadError(f"{MAX_VOXEL_BYTES_ENV}: expected a positive number of bytes, found {env!r}")
    return val


def check_regular(path: Path, what: str = "file", folder_ok: bool = False) -> os.stat_result:
    """Refuse (CTLoadError naming the file) anything that is not, after resolving links, a regular
    file (or a folder with ``folder_ok``): FIFOs, devices and sockets never reach ``open``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CTLoadError(f"{path}: {what} file not found") from None
    except OSError as e:
        raise CTLoadError(f"{path}: {what} file not readable ({e.strerror or e})") from e
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return st
        raise CTLoadError(f"{path}: expected a NIfTI file, found a folder")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a character device" if stat.S_ISCHR(st.st_mode)
                else "a block device" if stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a special file")
        real = os.path.realpath(path)
        via = f" ({real})" if real != os.path.abspath(path) else ""
        raise CTLoadError(f"{path}: expected a regular {what} file, found {kind}{via}")
    return st


def open_regular(path: Path, what: str = "file"):
    """Open ``path`` for binary reading if (after resolving links) it is a regular file; FIFOs,
    devices, sockets and folders are refused by name before anything is read (no hang on a FIFO)."""
    check_regular(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise CTLoadError(f"{path}: {what} file not readable ({e.strerror or e})") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
        os.close(fd)
        raise CTLoadError(f"{path}: expected a regular {what} file, found a special file")
    return os.fdopen(fd, "rb")


class _Source:
    """Bytes of a plain or gzip (single or multi-member) file, inflated in bounded steps."""

    def __init__(self, f, path: Path):
        self.f, self.path = f, path
        head = f.read(2)
        self.gz = head == b"\x1f\x8b"
        self.pending = head
        self.d = _zlib.decompressobj(31) if self.gz else None
        self.eof = False

    def _compressed(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        return self.f.read(_READ_CHUNK)

    def readinto(self, mv: memoryview) -> int:
        """Fill ``mv``; returns the bytes filled (fewer only at the end of the data)."""
        pos, n = 0, len(mv)
        if not self.gz:
            if self.pending:
                k = min(len(self.pending), n)
                mv[:k] = self.pending[:k]
                self.pending = self.pending[k:]
                pos = k
            while pos < n:
                k = self.f.readinto(mv[pos:])
                if not k:
                    break
                pos += k
            return pos
        while pos < n and not self.eof:
            data = self.d.unconsumed_tail or self._compressed()
            if not data:
                if self.d.eof or not self.d.unconsumed_tail:
                    self.eof = True
                break
            out = self.d.decompress(data, min(n - pos, _INFLATE_STEP))
            mv[pos:pos + len(out)] = out
            pos += len(out)
            if self.d.eof:  # end of a gzip member: another may follow (bgzip, concatenated gzip)
                rest = self.d.unused_data or self.f.read(_READ_CHUNK)
                while rest and len(rest) < 2:
                    more = self.f.read(_READ_CHUNK)
                    if not more:
                        break
                    rest += more
                if rest[:2] != b"\x1f\x8b":  # end of data (trailing padding is ignored, as gzip does)
                    self.eof = True
                    break
                self.d = _zlib.decompressobj(31)
                self.pending = rest
        return pos


def _header_class(head: bytes, path: Path):
    if head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return nib.Nifti1Image
    if head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return nib.Nifti2Image
    raise CTLoadError(f"{path}: not a NIfTI-1/2 file (no NIfTI magic in the header)")


def check_nifti_geometry(hdr, path: Path, what: str = "image") -> None:
    """Refuse zero, negative or non-finite voxel sizes in the header fields that give the affine
    (pixdim for the qform and the fallback; srow_x/y/z for the sform) and a non-finite or
    non-invertible affine. nibabel would silently read a zero pixdim as 1 mm."""
    qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
    ndim = min(int(hdr["dim"][0]), 3)
    if qcode > 0 or scode == 0:
        pix = np.asarray(hdr["pixdim"][1:1 + ndim], dtype=np.float64)
        bad = [i + 1 for i, v in enumerate(pix) if not np.isfinite(v) or v <= 0]
        if bad:
            field = "qform" if qcode > 0 else "no qform/sform: pixdim fallback"
            raise CTLoadError(f"{path}: {what} header field pixdim[{','.join(map(str, bad))}] ({field}): expected "
                              f"finite positive voxel sizes in mm, found {[float(v) for v in pix]}")
        if qcode > 0:
            q = [float(hdr[k]) for k in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")]
            if not np.isfinite(q).all():
                raise CTLoadError(f"{path}: {what} header qform (quatern_b/c/d, qoffset_x/y/z): expected finite "
                                  f"values, found {q}")
    if scode > 0:
        srow = np.array([hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]], dtype=np.float64)
        if not np.isfinite(srow).all():
            raise CTLoadError(f"{path}: {what} header sform (srow_x/y/z): expected finite values, found {srow.tolist()}")
        sizes = np.linalg.norm(srow[:, :3], axis=0)
        if (sizes <= 0).any():
            raise CTLoadError(f"{path}: {what} header sform (srow_x/y/z): expected non-zero voxel sizes, found "
                              f"column lengths {sizes.round(6).tolist()} mm")
    try:
        aff = np.asarray(hdr.get_best_affine(), dtype=np.float64)
    except Exception as e:  # nibabel raises assorted errors for broken quaternions
        raise CTLoadError(f"{path}: {what} header affine could not be computed ({type(e).__name__}: {e})") from e
    field = "sform" if scode > 0 else "qform" if qcode > 0 else "pixdim"
    if not np.isfinite(aff).all():
        raise CTLoadError(f"{path}: {what} affine (from {field}): expected finite values, found {aff.tolist()}")
    det = float(np.linalg.det(aff[:3, :3]))
    if not np.isfinite(det) or abs(det) < 1e-12:
        raise CTLoadError(f"{path}: {what} affine (from {field}): expected an invertible 3x3 part, found determinant "
                          f"{det:.3g}")


def _read_sparse(src: _Source, head: bytes, offset: int, nbytes: int) -> tuple[bytes, np.ndarray, int]:
    """(header bytes, voxel bytes, bytes read) of a mostly-zero image (a mask): the data is inflated
    in ``_SPARSE_CHUNK`` steps into one small reused buffer and only the steps that hold a non-zero
    byte are copied into the output, which starts as calloc'ed zeros: the pages of the empty slabs
    are never written, so the output costs memory only where the structure is. Every byte is still
    inflated and counted (corrupt and truncated files are refused as by the dense read)."""
    if len(head) < offset:
        hbuf = bytearray(offset)
        hbuf[:len(head)] = head
        got = len(head) + src.readinto(memoryview(hbuf)[len(head):])
        hbuf, prefix = bytes(hbuf[:got]), b""
    else:
        hbuf, prefix = head[:offset], head[offset:offset + nbytes]
        got = offset
    out = np.zeros(nbytes, dtype=np.uint8)
    pos = len(prefix)
    out[:pos] = np.frombuffer(prefix, dtype=np.uint8)
    if got < offset:
        return hbuf, out, got
    chunk = np.empty(min(_SPARSE_CHUNK, nbytes), dtype=np.uint8)
    mv = memoryview(chunk)
    while pos < nbytes:
        want = min(len(chunk), nbytes - pos)
        k = src.readinto(mv[:want])
        if k and chunk[:k].max():  # uint8: non-zero somewhere iff the maximum is; max is ~4x faster than any
            out[pos:pos + k] = chunk[:k]
        pos += k
        if k < want:
            break
    return hbuf, out, got + pos


def read_nifti(path: Path, what: str = "image", max_bytes: int | None = None,
               sparse: bool | None = None) -> nib.Nifti1Image:
    """Read a NIfTI fully into memory; corrupt, truncated, oversized or geometrically invalid files
    raise CTLoadError naming the file and the field.

    The voxel data of the returned image is a zero-copy view of the decompressed bytes
    (``raw_data(img)``); ``img.dataobj`` holds the header only (no voxel data). ``sparse`` (default:
    ``what == "mask"``) reads mostly-zero data without writing its empty slabs (``_read_sparse``):
    the same array, less memory traffic."""
    path = Path(path)
    limit = max_voxel_bytes() if max_bytes is None else max_bytes
    f = open_regular(path, what)
    try:
        with f:
            src = _Source(f, path)
            head = bytearray(540)
            n = src.readinto(memoryview(head))
            head = bytes(head[:n])
            if n < 348:
                raise CTLoadError(f"{path}: truncated NIfTI {what}: expected a header of at least 348 bytes, found {n}")
            klass = _header_class(head, path)
            hsize = 540 if klass is nib.Nifti2Image else 348
            endian = "<" if struct.unpack("<i", head[:4])[0] in (348, 540) else ">"
            dim0 = struct.unpack(endian + ("q" if hsize == 540 else "h"), head[16:24] if hsize == 540 else head[40:42])[0]
            if not 1 <= dim0 <= 7:
                raise CTLoadError(f"{path}: {what} header field dim[0]: expected 1..7 dimensions, found {dim0}")
            try:
                hdr = klass.header_class(head[:hsize], endianness=endian, check=False)
            except Exception as e:
                raise CTLoadError(f"{path}: corrupt NIfTI {what} header ({type(e).__name__}: {e})") from e
            dim0 = int(hdr["dim"][0])
            if not 1 <= dim0 <= 7:
                raise CTLoadError(f"{path}: {what} header field dim[0]: expected 1..7 dimensions, found {dim0}")
            dims = [int(x) for x in hdr["dim"][1:1 + dim0]]
            if any(x < 1 for x in dims):
                raise CTLoadError(f"{path}: {what} header field dim[1..{dim0}]: expected positive sizes, found {dims}")
            try:
                dtype = hdr.get_data_dtype()
            except Exception as e:
                raise CTLoadError(f"{path}: {what} header field datatype ({int(hdr['datatype'])}): unknown "
                                  f"({type(e).__name__}: {e})") from e
            if dtype.kind not in _VOXEL_KINDS or dtype.fields is not None or dtype.itemsize > 8:
                code = int(hdr["datatype"])
                name = nib.nifti1.data_type_codes.label.get(code, str(dtype))
                raise CTLoadError(f"{path}: {what} header field datatype: expected integer or real voxels "
                                  f"(int8..int64, uint8..uint64, float32, float64), found {name} (code {code}, {dtype})")
            nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
            if nbytes > limit:
                raise CTLoadError(f"{path}: {what} too large: header declares shape {tuple(dims)} x {dtype} = "
                                  f"{nbytes / 2**30:.2f} GiB of voxels, above the limit of {limit / 2**30:.2f} GiB "
                                  f"(set {MAX_VOXEL_BYTES_ENV} to raise it)")
            offset = int(float(hdr["vox_offset"]))
            offset = max(offset, hsize + 4)
            if offset > MAX_HEADER_BYTES:
                raise CTLoadError(f"{path}: {what} header field vox_offset: expected at most {MAX_HEADER_BYTES} "
                                  f"bytes of header and extensions, found {offset}")
            check_nifti_geometry(hdr, path, what)
            total = offset + nbytes
            if not src.gz:
                size = os.fstat(f.fileno()).st_size
                if size < total:
                    raise CTLoadError(f"{path}: truncated NIfTI: expected at least {total} bytes of header+data, "
                                      f"found {size}")
            if sparse is None:
                sparse = what == "mask"
            if sparse and nbytes:
                buf, data, got = _read_sparse(src, head, offset, nbytes)
            else:
                buf = bytearray(total)
                buf[:n] = head[: min(n, total)]
                got = n + src.readinto(memoryview(buf)[n:]) if total > n else total
                data = buf
            if got < total:
                raise CTLoadError(f"{path}: truncated NIfTI: expected at least {total} bytes of header+data, found {got}")
        try:
            img = klass.from_bytes(bytes(buf[:offset]))
        except Exception as e:
            raise CTLoadError(f"{path}: corrupt NIfTI {what} header ({type(e).__name__}: {e})") from e
        if data is buf:
            arr = np.frombuffer(buf, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
        else:
            arr = data.view(dtype)
        arr.flags.writeable = False
        img._radagent_raw = arr.reshape(tuple(dims), order="F")
        return img
    except CTLoadError:
        raise
    except MemoryError as e:
        raise CTLoadError(f"{path}: NIfTI {what} does not fit in memory") from e
    except (OSError, EOFError, ValueError, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) + _ZERRORS as e:
        raise CTLoadError(f"{path}: corrupt or truncated NIfTI {what} ({type(e).__name__}: {e})") from e


def raw_data(img: nib.Nifti1Image) -> np.ndarray:
    """The unscaled voxel array of an image from read_nifti (read-only, no copy)."""
    arr = getattr(img, "_radagent_raw", None)
    return arr if arr is not None else np.asanyarray(img.dataobj.get_unscaled())


def nifti_array(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """Voxel array with scaling applied, keeping int16 where the values stay integers."""
    raw = raw_data(img)
    slope, inter = img.dataobj.slope, img.dataobj.inter
    if (slope, inter) == (1.0, 0.0):
        return raw
    if float(slope).is_integer() and float(inter).is_integer() and raw.dtype.kind in "iu":
        lo = raw.min() * slope + inter
        hi = raw.max() * slope + inter
        if min(lo, hi) >= -32768 and max(lo, hi) <= 32767:
            return (raw.astype(np.int32) * int(slope) + int(inter)).astype(np.int16)
    return (raw.astype(np.float32) * np.float32(slope) + np.float32(inter))


def _squeeze_to_3d(arr: np.ndarray, path: Path) -> np.ndarray:
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 4:
        raise CTLoadError(f"{path}: expected a 3D CT, found a 4D image of shape {arr.shape} ({arr.shape[3]} volumes)")
    if arr.ndim != 3:
        raise CTLoadError(f"{path}: expected a 3D CT, found a {arr.ndim}D image of shape {arr.shape}")
    if min(arr.shape) < 2:
        raise CTLoadError(f"{path}: expected a 3D CT with at least 2 voxels along every axis, found shape {arr.shape} (a 2D image)")
    return arr


def load_nifti_ct(path: Path) -> CTVolume:
    img = read_nifti(path, "CT")
    arr = _squeeze_to_3d(nifti_array(img, path), path)
    affine = img.affine.astype(np.float64)
    meta = {"slice_thickness_mm": None, "modality": None, "description": img.header["descrip"].tobytes().split(b"\x00")[0].decode("latin-1")}
    return CTVolume(hu=arr, affine=affine, source=str(path), source_format="nifti", meta=meta)


def load_ct(path: str | Path) -> CTVolume:
    """Load a CT from a .nii/.nii.gz file, a DICOM series folder or an enhanced multi-frame DICOM file."""
    p = Path(path)
    if not p.exists():
        raise CTLoadError(f"{p}: CT not found (expected a .nii/.nii.gz file or a folder holding a DICOM series)")
    check_regular(p, "CT", folder_ok=True)
    if p.is_dir():
        from .dicom import load_dicom_series

        ct = load_dicom_series(p)
    elif is_nifti(p):
        ct = load_nifti_ct(p)
    elif p.suffix.lower() in (".dcm", ".dicom", "") or _has_dicom_preamble(p):
        from .dicom import load_dicom_series

        ct = load_dicom_series(p)
    else:
        raise CTLoadError(f"{p}: unsupported CT file type {p.suffix!r}; expected .nii, .nii.gz, a DICOM file or a DICOM series folder")
    return check_ct(ct)


def _has_dicom_preamble(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM"


def modality_checks(ct: CTVolume) -> list[dict]:
    """Checks that the image is a CT in Hounsfield units. Each: name, passed, detail."""
    hu = ct.hu
    checks = []
    header_modality = ct.meta.get("modality")
    if header_modality:
        checks.append({"name": "header_modality", "passed": header_modality == "CT",
                       "detail": f"DICOM Modality is {header_modality!r} (expected 'CT')"})
    sample = hu[::2, ::2, ::2] if hu.size > 4_000_000 else hu
    lo, hi = float(sample.min()), float(sample.max())
    checks.append({"name": "hu_contains_fat_or_air", "passed": lo <= -200.0,
                   "detail": f"minimum intensity {lo:.0f} (a CT in HU contains air or fat below -200 HU)"})
    # padding outside the reconstruction circle is often -2048 or -3024: allowed
    checks.append({"name": "hu_plausible_range", "passed": lo >= -3100.0 and hi <= 40000.0,
                   "detail": f"intensity range [{lo:.0f}, {hi:.0f}] (expected within -3100..40000 HU)"})
    return checks


def check_ct(ct: CTVolume) -> CTVolume:
    """Refuse NaN/inf and non-CT intensities; record the checks in ct.meta['modality_checks']."""
    if ct.hu.dtype.kind == "f" and not np.isfinite(ct.hu).all():
        bad = int(np.count_nonzero(~np.isfinite(ct.hu)))
        raise CTLoadError(f"{ct.source}: expected finite HU values, found {bad} NaN/inf voxels")
    checks = modality_checks(ct)
    failed = [c for c in checks if not c["passed"]]
    if failed:
        raise ModalityError(f"{ct.source}: this does not look like a CT in Hounsfield units: "
                            + "; ".join(c["detail"] for c in failed)
                            + ". MR or other modalities are not supported.")
    ct.meta["modality_checks"] = checks
    return ct
