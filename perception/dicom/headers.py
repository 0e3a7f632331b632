"""Pass 1 of DICOM loading: find the files and read each header without its pixels.

Every file's header is read with ``stop_before_pixels``; for native little-endian data the file offset
where the pixel data element starts is kept, so pass 2 (:mod:`.pixels`) can read pixels straight from
it. Objects that sit beside a CT series without being part of its image stack (RTSTRUCT, SEG, SR,
DICOMDIR...) and files that are not DICOM at all are told apart here, as are truncated images, and
CT images whose pixel values are not Hounsfield units (a derived map such as a perfusion map, or a
RescaleType other than HU) are refused here, like MR, naming the tags and values found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..errors import CTLoadError, ModalityError

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
# Image Type (0008,0008) / Frame Type (0008,9007) values, after value 1 DERIVED, that mark a derived map
# whose pixel values are not Hounsfield units. DICOM PS3.3 C.8.16.1 (Enhanced CT/MR Image Type and Frame
# Type): value 3 defined term PERFUSION; value 4 "Derived Pixel Contrast" defined terms ADDITION,
# DIVISION, MULTIPLICATION, QUANTITY, STD_DEVIATION, SUBTRACTION (projections MAXIMUM/MINIMUM/MEAN keep HU
# and are not listed). Vendors write the perfusion parameter in value 4 (e.g. RCBF in the DICOM sample
# eCT_Supplemental.dcm): the usual CT perfusion parameters are listed too.
DERIVED_MAP_TERMS = frozenset({
    "PERFUSION",
    "ADDITION", "DIVISION", "MULTIPLICATION", "QUANTITY", "STD_DEVIATION", "SUBTRACTION",
    "CBF", "CBV", "MTT", "TTP", "TMAX", "RCBF", "RCBV", "PS", "PERMEABILITY",
})
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



def _values(v) -> list[str]:
    if v is None:
        return []
    items = list(v) if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue" else str(v).split("\\")
    return [str(x).strip().upper() for x in items]


def _first(ds: Dataset, seq: str) -> Dataset | None:
    s = ds.get(seq)
    return s[0] if s else None


def non_hu_reasons(ds: Dataset) -> list[str]:
    """Why this CT image's pixel values are not Hounsfield units (empty: nothing says so). Reads
    Image Type (0008,0008), Frame Type (0008,9007) of the shared / first per-frame functional groups,
    and Rescale Type (0028,1054) at the top level or in the Pixel Value Transformation Sequence."""
    reasons: list[str] = []
    types = [("ImageType (0008,0008)", ds.get("ImageType"))]
    for fg in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        item = _first(ds, fg)
        ft = _first(item, "CTImageFrameTypeSequence") if item is not None else None
        if ft is not None:
            types.append((f"FrameType (0008,9007) in {fg}", ft.get("FrameType")))
    for tag, raw in types:
        vals = _values(raw)
        hit = [v for v in vals[1:] if v in DERIVED_MAP_TERMS]
        if vals and vals[0] == "DERIVED" and hit:
            shown = "\\".join(vals)
            reasons.append(f"{tag} is {shown}: a derived map ({', '.join(hit)}), not Hounsfield units")
            break
    rescale = [("RescaleType (0028,1054)", ds.get("RescaleType"))]
    for fg in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        item = _first(ds, fg)
        pvt = _first(item, "PixelValueTransformationSequence") if item is not None else None
        if pvt is not None:
            rescale.append((f"RescaleType (0028,1054) in {fg}", pvt.get("RescaleType")))
    for tag, raw in rescale:
        v = str(raw or "").strip()
        if v and v.upper() != "HU":
            reasons.append(f"{tag} is {v!r}, expected 'HU'")
            break
    return reasons


def refuse_non_hu(h: "_Header") -> None:
    """ModalityError when a CT image's header says its values are not HU (see non_hu_reasons)."""
    reasons = non_hu_reasons(h.ds)
    if reasons:
        raise ModalityError(f"{h.path}: expected a CT image in Hounsfield units, found " + "; ".join(reasons)
                            + ". Derived maps (perfusion, subtraction, ...) and non-HU images are not supported, "
                              "like MR: give the original CT series.")


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
    h = _Header(path, ds, pixel_offset, ts, has_pixels)
    if h.is_image and h.modality in ("CT", ""):
        refuse_non_hu(h)
    return h


def _list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
