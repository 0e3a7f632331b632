"""Hostile inputs for the fuzz suite (tests/test_fuzz_inputs.py), made from real data in a folder.

Each ``Case`` is one invocation of ``radagent analyze CT --masks MASKS -o OUT``: the CT and masks
paths (relative to the folder the cases are built in, so the API can take them as from-path
references under a data root), the output folder, and the names of which at least one must appear
in the refusal (the hostile file). ``build(root, data)`` writes them all and returns them.
"""

from __future__ import annotations

import gzip
import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

NIFTI_HDR = 348
DATA_OFFSET = 352


@dataclass
class Case:
    id: str
    klass: str
    ct: str
    masks: str
    names: tuple[str, ...]  # at least one of them in the refusal
    out: str = ""
    api: bool = True  # also through the API (from-path)
    known_failing: str = ""  # set by the suite for inputs the loader does not refuse yet (see the test module)
    extra_args: list[str] = field(default_factory=list)


# --- raw NIfTI-1 pieces ---------------------------------------------------------------------------------
def split_nifti(path: Path) -> tuple[np.ndarray, bytes]:
    """(a writable 348-byte header record, the voxel bytes) of a .nii.gz."""
    import nibabel as nib

    raw = gzip.decompress(path.read_bytes())
    hdr = np.frombuffer(bytearray(raw[:NIFTI_HDR]), dtype=nib.nifti1.header_dtype).copy()
    off = int(hdr["vox_offset"][0]) or DATA_OFFSET
    return hdr, raw[off:]


def nifti_bytes(hdr: np.ndarray, data: bytes) -> bytes:
    h = hdr.copy()
    h["vox_offset"] = DATA_OFFSET
    return h.tobytes() + b"\0\0\0\0" + data


def write(path: Path, blob: bytes, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob, compresslevel=1) if gz else blob)
    return path


def zeros_gz(path: Path, hdr: np.ndarray, n_bytes: int) -> Path:
    """A gzip bomb: the header then ``n_bytes`` of zeros, compressed ~1000:1, streamed (never in memory)."""
    h = hdr.copy()
    h["vox_offset"] = DATA_OFFSET
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(co.compress(h.tobytes() + b"\0\0\0\0"))
        for _ in range(n_bytes >> 20):
            fh.write(co.compress(chunk))
        fh.write(co.flush())
    return path


# --- the cases ---------------------------------------------------------------------------------------------
def build(root: Path, data: Path) -> list[Case]:
    """Write every hostile input under ``root`` from the real files in ``data`` (../shared/data)."""
    ts = data / "totalseg"
    ct_src, seg_src, dcm_src = ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz", ts / "example_ct_dicom"
    good = root / "good"
    good.mkdir(parents=True, exist_ok=True)
    shutil.copy(ct_src, good / "ct.nii.gz")
    shutil.copy(seg_src, good / "seg.nii.gz")
    GOOD_CT, GOOD_SEG = "good/ct.nii.gz", "good/seg.nii.gz"
    ct_hdr, ct_data = split_nifti(ct_src)
    seg_hdr, seg_data = split_nifti(seg_src)
    cases: list[Case] = []

    def add(klass: str, name: str, *, ct: str = GOOD_CT, masks: str = GOOD_SEG, names: tuple[str, ...] = (),
            api: bool = True, out: str = "", extra: list[str] | None = None) -> None:
        cid = f"{klass}-{name}"
        bad = ct if ct != GOOD_CT else masks
        nm = names or (Path(bad).name,)
        cases.append(Case(cid, klass, ct, masks, nm, out or f"out/{cid}", api, extra_args=extra or []))

    def hdr_case(klass: str, name: str, edit: Callable[[np.ndarray], None], *, mask: bool = False,
                 data_: bytes | None = None, gz: bool = True) -> None:
        h = (seg_hdr if mask else ct_hdr).copy()
        edit(h)
        rel = f"{klass}/{name}-{'seg' if mask else 'ct'}.nii{'.gz' if gz else ''}"
        write(root / rel, nifti_bytes(h, data_ if data_ is not None else (seg_data if mask else ct_data)), gz)
        add(klass, f"mask-{name}" if mask else name, **({"masks": rel} if mask else {"ct": rel}))

    # geometry: zero / negative / NaN / inf voxel sizes in pixdim, qform and sform; singular affines
    def pix(i: int, v: float, qform: int = 0, sform: int = 0):
        def e(h):
            h["pixdim"][0][i] = v
            h["qform_code"], h["sform_code"] = qform, sform
        return e

    for nm, i, v in (("pixdim-x-zero", 1, 0.0), ("pixdim-y-negative", 2, -3.0), ("pixdim-z-nan", 3, np.nan)):
        hdr_case("geometry", nm, pix(i, v))
    hdr_case("geometry", "qform-zero-pixdim", pix(1, 0.0, qform=1))
    hdr_case("geometry", "qform-nan-quatern", lambda h: (pix(1, 3.0, qform=1)(h), h.__setitem__("quatern_b", np.nan)))

    def srow(which: str, vals, sform: int = 2):
        def e(h):
            h[which][0][:] = vals
            h["sform_code"], h["qform_code"] = sform, 0
        return e

    hdr_case("geometry", "sform-zero-row", srow("srow_x", [0, 0, 0, -177.9]))
    hdr_case("geometry", "sform-nan", srow("srow_y", [0, np.nan, 0, 11.3]))
    hdr_case("geometry", "sform-singular", srow("srow_y", [3, 0, 0, 11.3]))
    hdr_case("geometry", "pixdim-x-zero", pix(1, 0.0), mask=True)
    hdr_case("geometry", "qform-zero-pixdim", pix(2, 0.0, qform=1), mask=True)
    hdr_case("geometry", "sform-nan", srow("srow_x", [np.nan, 0, 0, -177.9]), mask=True)

    # absurd dims (the voxel bytes stay the real ones: the declared size is what is hostile)
    def dims(d):
        def e(h):
            h["dim"][0][:] = d
        return e

    hdr_case("dims", "huge-32767cubed", dims([3, 32767, 32767, 32767, 1, 1, 1, 1]))
    hdr_case("dims", "overflow-7d", dims([7] + [32767] * 7))
    hdr_case("dims", "zero-extent", dims([3, 122, 0, 30, 1, 1, 1, 1]))
    hdr_case("dims", "negative-extent", dims([3, 122, -101, 30, 1, 1, 1, 1]))
    hdr_case("dims", "dim0-zero", dims([0, 122, 101, 30, 1, 1, 1, 1]))
    hdr_case("dims", "dim0-nine", dims([9, 122, 101, 30, 1, 1, 1, 1]))
    hdr_case("dims", "huge-mask", dims([3, 32767, 32767, 32767, 1, 1, 1, 1]), mask=True)
    hdr_case("dims", "huge-uncompressed", dims([3, 4096, 4096, 4096, 1, 1, 1, 1]), gz=False)

    # gzip bombs: small on disk, gigabytes declared and inflating
    for nm, shape, mb, mask in (("ct-4096cubed", (4096, 4096, 4096), 256, False),
                                ("ct-1024x1024x4096", (1024, 1024, 4096), 256, False),
                                ("mask-2048cubed", (2048, 2048, 2048), 256, True)):
        h = (seg_hdr if mask else ct_hdr).copy()
        h["dim"][0][:4] = (3, *shape)
        rel = f"bomb/{nm}.nii.gz"
        (root / "bomb").mkdir(exist_ok=True)
        zeros_gz(root / rel, h, mb << 20)
        add("bomb", nm, **({"masks": rel} if mask else {"ct": rel}))

    # odd dtypes: (datatype code, bitpix, bytes per voxel)
    n = int(np.prod(ct_hdr["dim"][0][1:4]))
    ct16 = np.frombuffer(ct_data[: n * 2], dtype="<i2")

    def dt(code: int, bitpix: int):
        def e(h):
            h["datatype"], h["bitpix"] = code, bitpix
        return e

    hdr_case("dtype", "rgb24", dt(128, 24), data_=np.repeat(ct16.astype(np.uint8), 3).tobytes())
    hdr_case("dtype", "complex64", dt(32, 64),
             data_=np.stack([ct16.astype("<f4"), np.zeros(n, "<f4")], 1).tobytes())
    hdr_case("dtype", "binary-dt1", dt(1, 1), data_=ct_data[: n // 8 + 1])
    hdr_case("dtype", "unknown-dt", dt(9999, 16))
    hdr_case("dtype", "float16-bitpix", dt(16, 16))  # float32 code, 16 bits per voxel: declared size wrong
    seg8 = np.frombuffer(seg_data[:n], dtype=np.uint8)
    lab = seg8.astype("<i8")
    lab[lab == lab.max()] = 2_000_000_000
    hdr_case("dtype", "int64-label-2e9", dt(1024, 64), mask=True, data_=lab.tobytes())
    lab32 = seg8.astype("<i4")
    lab32[lab32 == lab32.max()] = -2_000_000_000
    hdr_case("dtype", "int32-label-neg2e9", dt(8, 32), mask=True, data_=lab32.tobytes())
    soft = (seg8 > 0).astype("<f4") * 0.6
    hdr_case("masks", "soft-float", dt(16, 32), mask=True, data_=soft.tobytes())
    nanmask = (seg8 > 0).astype("<f4")
    nanmask[::7] = np.nan
    hdr_case("masks", "nan-float", dt(16, 32), mask=True, data_=nanmask.tobytes())

    # truncations of the real .nii.gz at several offsets (CT and mask), and of an uncompressed .nii
    blob = ct_src.read_bytes()
    (root / "trunc").mkdir(exist_ok=True)
    for off in (1, 100, 347, 0.1, 0.5, 0.9):
        k = off if isinstance(off, int) else int(len(blob) * off)
        rel = f"trunc/ct-{k}.nii.gz"
        (root / rel).write_bytes(blob[:k])
        add("truncated", f"ct-at-{k}", ct=rel)
    sblob = seg_src.read_bytes()
    for frac in (0.05, 0.5, 0.95):
        k = int(len(sblob) * frac)
        rel = f"trunc/seg-{k}.nii.gz"
        (root / rel).write_bytes(sblob[:k])
        add("truncated", f"seg-at-{k}", masks=rel)
    raw_ct = nifti_bytes(ct_hdr, ct_data)
    for k in (200, len(raw_ct) // 2):
        rel = f"trunc/ct-{k}.nii"
        write(root / rel, raw_ct[:k], gz=False)
        add("truncated", f"nii-at-{k}", ct=rel)
    corrupt = bytearray(blob)
    corrupt[len(blob) // 2: len(blob) // 2 + 64] = os.urandom(64)
    (root / "trunc/ct-corrupt-middle.nii.gz").write_bytes(corrupt)
    add("truncated", "ct-corrupt-middle", ct="trunc/ct-corrupt-middle.nii.gz")

    # not NIfTI at all
    (root / "garbage").mkdir(exist_ok=True)
    (root / "garbage/text.nii.gz").write_text("not a gzip file\n" * 100)
    add("garbage", "text-as-gz", ct="garbage/text.nii.gz")
    write(root / "garbage/gz-text.nii.gz", b"hello, not a NIfTI header " * 100)
    add("garbage", "gzipped-text", ct="garbage/gz-text.nii.gz")
    h = ct_hdr.copy()
    h["magic"] = b"xx1\0"
    write(root / "garbage/bad-magic.nii.gz", nifti_bytes(h, ct_data))
    add("garbage", "bad-magic", ct="garbage/bad-magic.nii.gz")
    h = ct_hdr.copy()
    h["sizeof_hdr"] = 12345
    write(root / "garbage/bad-sizeof.nii.gz", nifti_bytes(h, ct_data))
    add("garbage", "bad-sizeof-hdr", ct="garbage/bad-sizeof.nii.gz")
    write(root / "garbage/random.nii.gz", os.urandom(200_000))
    add("garbage", "random-bytes", ct="garbage/random.nii.gz")

    # empty files, directories where files are expected, missing files
    (root / "empty").mkdir(exist_ok=True)
    (root / "empty/ct.nii.gz").write_bytes(b"")
    add("empty", "ct", ct="empty/ct.nii.gz")
    (root / "empty/seg.nii.gz").write_bytes(b"")
    add("empty", "mask", masks="empty/seg.nii.gz")
    (root / "empty/ct.nii").write_bytes(b"")
    add("empty", "ct-nii", ct="empty/ct.nii")
    (root / "dirs/ct.nii.gz").mkdir(parents=True)
    add("dirs", "ct-is-empty-folder", ct="dirs/ct.nii.gz")
    (root / "dirs/empty-masks").mkdir(parents=True)
    add("dirs", "masks-empty-folder", masks="dirs/empty-masks")
    (root / "dirs/seg.nii.gz").mkdir(parents=True)
    (root / "dirs/seg.nii.gz/liver.nii.gz").mkdir()
    add("dirs", "masks-folder-of-folders", masks="dirs/seg.nii.gz", names=("liver.nii.gz", "seg.nii.gz"))

    # hostile file names (with bad content, so that the name must reach the message)
    (root / "names").mkdir(exist_ok=True)
    for nm in ("bad\nname.nii.gz", "ÿ数据 \u202e-ü.nii.gz"):
        (root / "names" / nm).write_bytes(blob[:1000])
        add("names", nm.encode("unicode_escape").decode()[:20], ct=f"names/{nm}",
            names=(nm, nm.replace("\n", "\\n"), repr(nm)[1:-1], nm.split("\n")[-1]))

    # special files: FIFOs, symlinks to devices (outside the data root: the API refuses them 403)
    (root / "special").mkdir(exist_ok=True)
    os.mkfifo(root / "special/ct-fifo.nii.gz")
    add("special", "ct-fifo", ct="special/ct-fifo.nii.gz")
    os.mkfifo(root / "special/seg-fifo.nii.gz")
    add("special", "mask-fifo", masks="special/seg-fifo.nii.gz")
    (root / "special/fifo-in-masks").mkdir()
    write(root / "special/fifo-in-masks/liver.nii.gz",
          nifti_bytes(seg_hdr, (np.frombuffer(seg_data[:n], dtype=np.uint8) == 5).astype(np.uint8).tobytes()))
    os.mkfifo(root / "special/fifo-in-masks/spleen.nii.gz")
    add("special", "fifo-in-mask-folder", masks="special/fifo-in-masks", names=("spleen.nii.gz",))
    for nm, target in (("ct-devzero.nii.gz", "/dev/zero"), ("ct-devnull.nii.gz", "/dev/null")):
        os.symlink(target, root / "special" / nm)
        add("special", nm.replace(".", "-"), ct=f"special/{nm}")
    os.symlink("/dev/zero", root / "special/seg-devzero.nii.gz")
    add("special", "mask-devzero", masks="special/seg-devzero.nii.gz")

    # mask geometry that does not fit the CT
    h = seg_hdr.copy()
    h["dim"][0][1:4] = (61, 101, 60)
    write(root / "geom/seg-shape.nii.gz", nifti_bytes(h, seg_data), gz=True)
    add("mismatch", "shape", masks="geom/seg-shape.nii.gz")
    h = seg_hdr.copy()
    h["srow_x"][0][3] += 60.0
    write(root / "geom/seg-shifted.nii.gz", nifti_bytes(h, seg_data))
    add("mismatch", "shifted-60mm", masks="geom/seg-shifted.nii.gz")
    h = seg_hdr.copy()
    h["srow_x"][0][:3], h["srow_y"][0][:3] = (0, 3, 0), (3, 0, 0)
    write(root / "geom/seg-swapped.nii.gz", nifti_bytes(h, seg_data))
    add("mismatch", "axes-swapped", masks="geom/seg-swapped.nii.gz")
    h = seg_hdr.copy()
    h["pixdim"][0][1:4] = (1.5, 1.5, 1.5)
    h["srow_x"][0][0], h["srow_y"][0][1], h["srow_z"][0][2] = 1.5, 1.5, 1.5
    write(root / "geom/seg-spacing.nii.gz", nifti_bytes(h, seg_data))
    add("mismatch", "spacing-half", masks="geom/seg-spacing.nii.gz")
    add("masks", "ct-as-masks", masks=GOOD_CT, names=("ct.nii.gz",))

    # DICOM: two series in one folder, pixel data missing, truncated slices, thousands of empty files
    import pydicom

    files = sorted(p for p in dcm_src.iterdir() if p.is_file())

    def dicom_dir(name: str, edit: Callable[[int, "pydicom.Dataset"], "pydicom.Dataset | None"]) -> str:
        d = root / "dicom" / name
        d.mkdir(parents=True)
        for i, f in enumerate(files):
            ds = edit(i, pydicom.dcmread(f))
            if ds is not None:
                ds.save_as(d / f.name)
        return f"dicom/{name}"

    second_series = pydicom.uid.generate_uid()

    def mixed(i, ds):
        if i % 2:
            ds.SeriesInstanceUID = second_series
        return ds

    add("dicom", "two-series", ct=dicom_dir("two-series", mixed), names=("two-series",))

    def no_pixels(i, ds):
        del ds.PixelData
        return ds

    add("dicom", "no-pixel-data", ct=dicom_dir("no-pixel-data", no_pixels), names=("no-pixel-data", files[0].name))

    def one_no_pixels(i, ds):
        if i == len(files) // 2:
            del ds.PixelData
        return ds

    add("dicom", "one-slice-no-pixels", ct=dicom_dir("one-no-pixels", one_no_pixels),
        names=(files[len(files) // 2].name,))
    d = root / "dicom/truncated-slice"
    shutil.copytree(dcm_src, d)
    victim = d / files[3].name
    victim.write_bytes(victim.read_bytes()[:2000])
    add("dicom", "truncated-slice", ct="dicom/truncated-slice", names=(files[3].name,))
    d = root / "dicom/empty-files"
    d.mkdir()
    for i in range(3000):
        (d / f"IM{i:05d}.dcm").touch()
    add("dicom", "3000-empty-files", ct="dicom/empty-files", names=("empty-files",))
    d = root / "dicom/garbage-files"
    d.mkdir()
    for i in range(20):
        (d / f"IM{i:05d}").write_bytes(os.urandom(4096))
    add("dicom", "garbage-files", ct="dicom/garbage-files", names=("garbage-files",))
    (root / "dicom/empty-folder").mkdir()
    add("dicom", "empty-folder", ct="dicom/empty-folder", names=("empty-folder",))

    # unwritable outputs: -o under a regular file, -o an existing file, -o where nothing can be made
    (root / "outfile").write_text("x")
    add("output", "under-a-file", ct=GOOD_CT, masks=GOOD_SEG, out="outfile/out", names=("outfile",), api=False)
    add("output", "is-a-file", ct=GOOD_CT, masks=GOOD_SEG, out="outfile", names=("outfile",), api=False)
    add("output", "in-proc", ct=GOOD_CT, masks=GOOD_SEG, out="/proc/radagent-fuzz/out",
        names=("/proc/radagent-fuzz",), api=False)
    return cases
