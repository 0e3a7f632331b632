"""Pass 1 of DICOM loading: find the files and read each header without its pixels.

Every file's header is read with ``stop_before_pixels``; for native little-endian data the file offset
where the pixel data element starts is kept, so pass 2 (:mod:`.pixels`) can read pixels straight from
it. Objects that sit beside a CT series without being part of its image stack (RTSTRUCT, SEG, SR,
DICOMDIR...) and files that are not DICOM at all are told apart here, as are truncated images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..errors import CTLoadError

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
