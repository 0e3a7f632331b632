"""Hostile NIfTI/DICOM input (issue 11): every bad file is a clean InputError naming the file and
the header field, before it costs unbounded memory or time; valid files still load identically."""

from __future__ import annotations

import gzip
import os
import socket
import struct
import warnings
import zlib

import nibabel as nib
import numpy as np
import pytest

from perception.errors import CTLoadError, InputError, MaskError
from perception.io import MAX_VOXEL_BYTES_ENV, load_ct, raw_data, read_nifti
from perception.masks import load_masks
from tests.conftest import data_path

AFF = np.diag([0.8, 0.8, 2.5, 1.0])


def ct_array(shape=(12, 10, 6)) -> np.ndarray:
    a = np.full(shape, -1000, np.int16)
    a[3:9, 3:8, 1:5] = 40
    return a


def nifti_bytes(arr, aff=AFF, **fields) -> bytearray:
    """A single-file NIfTI-1 with header ``fields`` patched after nibabel wrote it (no validation)."""
    img = nib.Nifti1Image(arr, aff)
    img.header.set_qform(aff, 1)
    img.header.set_sform(aff, 1)
    hdr = img.header
    hdr["vox_offset"] = 352
    for k, v in fields.items():
        hdr[k] = v
    return bytearray(hdr.binaryblock + b"\x00" * 4 + np.asarray(arr).tobytes(order="F"))


def write(path, raw, gz=True):
    path.write_bytes(gzip.compress(bytes(raw), 1) if gz else bytes(raw))
    return path


def refuse(exc, fn, *args, needles=()):
    with pytest.raises(exc) as ei:
        fn(*args)
    msg = str(ei.value)
    assert isinstance(ei.value, InputError)
    assert str(args[0]) in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


@pytest.fixture
def ct(tmp_path):
    p = write(tmp_path / "ct.nii.gz", nifti_bytes(ct_array()))
    return load_ct(p)


# ---- geometry -------------------------------------------------------------------------------------

def test_zero_pixdim_qform_only_is_refused_not_read_as_1mm(tmp_path):
    pix = np.array([1, 0, 0, 0, 1, 1, 1, 1], np.float32)
    p = write(tmp_path / "ct.nii.gz", nifti_bytes(ct_array(), qform_code=1, sform_code=0, pixdim=pix))
    refuse(CTLoadError, load_ct, p, needles=("pixdim[1,2,3]", "qform", "expected finite positive"))


@pytest.mark.parametrize("bad", [-0.8, np.nan, np.inf])
def test_negative_or_nonfinite_pixdim_refused(tmp_path, bad):
    pix = np.array([1, 0.8, bad, 2.5, 1, 1, 1, 1], np.float32)
    p = write(tmp_path / "ct.nii.gz", nifti_bytes(ct_array(), qform_code=0, sform_code=0, pixdim=pix))
    refuse(CTLoadError, load_ct, p, needles=("pixdim[2]",))


def test_sform_nan_or_zero_column_refused(tmp_path):
    p = write(tmp_path / "nan.nii.gz", nifti_bytes(ct_array(), srow_y=np.array([0, np.nan, 0, 0], np.float32)))
    refuse(CTLoadError, load_ct, p, needles=("sform", "srow", "finite"))
    p = write(tmp_path / "zero.nii.gz", nifti_bytes(ct_array(), srow_x=[0.8, 0, 0, 0], srow_y=[0, 0, 0, 0],
                                                    srow_z=[0, 0, 2.5, 0]))
    refuse(CTLoadError, load_ct, p, needles=("sform", "non-zero voxel sizes"))


def test_singular_sform_refused(tmp_path):
    p = write(tmp_path / "ct.nii.gz", nifti_bytes(ct_array(), srow_x=[1, 1, 0, 0], srow_y=[1, 1, 0, 0],
                                                  srow_z=[0, 0, 2.5, 0]))
    refuse(CTLoadError, load_ct, p, needles=("affine", "invertible"))


def test_zero_pixdim_mask_refused_as_mask_error(tmp_path, ct):
    d = tmp_path / "masks"
    d.mkdir()
    m = (ct_array() > 0).astype(np.uint8)
    pix = np.array([1, 0, 0, 0, 1, 1, 1, 1], np.float32)
    p = write(d / "liver.nii.gz", nifti_bytes(m, qform_code=1, sform_code=0, pixdim=pix))
    msg = refuse(MaskError, load_masks, d, ct, needles=("pixdim", "mask"))
    assert str(p) in msg


# ---- memory and time budget -----------------------------------------------------------------------

def test_declared_size_over_budget_refused_before_inflating(tmp_path, monkeypatch):
    raw = nifti_bytes(ct_array())
    p = write(tmp_path / "big.nii.gz", raw)
    monkeypatch.setenv(MAX_VOXEL_BYTES_ENV, "1000")
    refuse(CTLoadError, load_ct, p, needles=("too large", "(12, 10, 6)", MAX_VOXEL_BYTES_ENV))
    monkeypatch.setenv(MAX_VOXEL_BYTES_ENV, "2000")
    assert load_ct(p).hu.shape == (12, 10, 6)


def test_absurd_dims_refused_without_allocating(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.int16)
    hdr.set_zooms((1, 1, 1))
    p = write(tmp_path / "huge.nii.gz", hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1000)
    refuse(CTLoadError, load_ct, p, needles=("too large", "GiB"))


def test_gzip_bomb_past_declared_size_inflates_only_declared_bytes(tmp_path):
    """Voxel data beyond what the header declares is never inflated (4 MB declared, 256 MB streamed)."""
    arr = ct_array((100, 100, 200))
    raw = nifti_bytes(arr)
    co = zlib.compressobj(1, zlib.DEFLATED, 31)
    blob = co.compress(bytes(raw)) + b"".join(co.compress(b"\x00" * (1 << 24)) for _ in range(16)) + co.flush()
    p = tmp_path / "bomb.nii.gz"
    p.write_bytes(blob)
    img = read_nifti(p)
    np.testing.assert_array_equal(raw_data(img), arr)


def test_fifo_refused_without_hanging(tmp_path):
    p = tmp_path / "ct.nii.gz"
    os.mkfifo(p)
    refuse(CTLoadError, load_ct, p, needles=("regular", "FIFO"))


def test_symlink_to_dev_zero_refused(tmp_path):
    p = tmp_path / "ct.nii.gz"
    os.symlink("/dev/zero", p)
    refuse(CTLoadError, load_ct, p, needles=("regular", "character device", "/dev/zero"))


def test_socket_refused(tmp_path):
    p = tmp_path / "s.nii"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(p))
        refuse(CTLoadError, load_ct, p, needles=("socket",))
    finally:
        s.close()


def test_truncated_gzip_still_refused(tmp_path):
    blob = gzip.compress(bytes(nifti_bytes(ct_array())))
    p = tmp_path / "ct.nii.gz"
    p.write_bytes(blob[: len(blob) // 2])
    refuse(CTLoadError, load_ct, p, needles=("truncated",))


# ---- multi-member gzip ----------------------------------------------------------------------------

def test_multi_member_gzip_reads_like_single_member(tmp_path):
    src = data_path("totalseg", "example_ct_sm.nii.gz")
    raw = gzip.decompress(src.read_bytes())
    step = 64 << 10  # bgzip-style blocks of 64 KiB
    p = tmp_path / "bgzip.nii.gz"
    p.write_bytes(b"".join(gzip.compress(raw[i:i + step], 1) for i in range(0, len(raw), step)))
    single, multi = load_ct(src), load_ct(p)
    assert multi.hu.dtype == single.hu.dtype
    np.testing.assert_array_equal(multi.hu, single.hu)
    np.testing.assert_array_equal(multi.affine, single.affine)


# ---- odd data types and headers -------------------------------------------------------------------

def test_rgb24_ct_refused(tmp_path):
    rgb = np.zeros((8, 8, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    p = tmp_path / "rgb.nii.gz"
    nib.save(nib.Nifti1Image(rgb, AFF), str(p))
    refuse(CTLoadError, load_ct, p, needles=("datatype", "RGB", "expected integer or real"))


def test_complex64_ct_refused(tmp_path):
    p = tmp_path / "c.nii.gz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nib.save(nib.Nifti1Image(ct_array().astype(np.complex64), AFF), str(p))
    refuse(CTLoadError, load_ct, p, needles=("datatype", "complex"))


def test_dim0_of_9_refused(tmp_path):
    raw = nifti_bytes(ct_array())
    raw[40:42] = struct.pack("<h", 9)
    p = write(tmp_path / "d9.nii.gz", raw)
    refuse(CTLoadError, load_ct, p, needles=("dim[0]", "1..7", "found 9"))


def test_unknown_datatype_code_refused(tmp_path):
    raw = nifti_bytes(ct_array())
    raw[70:72] = struct.pack("<h", 1234)
    p = write(tmp_path / "dt.nii", raw, gz=False)
    refuse(CTLoadError, load_ct, p, needles=("datatype",))


def test_mask_label_2e9_refused(tmp_path, ct):
    m = np.zeros(ct.shape, np.int32)
    m[2:4, 2:4, 2:4] = 2_000_000_000
    p = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(m, AFF), str(p))
    refuse(MaskError, load_masks, p, ct, needles=("label ids up to 65535", "2000000000"))


def test_valid_ct_loads_identically_to_nibabel():
    src = data_path("totalseg", "example_ct_sm.nii.gz")
    ref = nib.load(str(src))
    ct = load_ct(src)
    np.testing.assert_array_equal(ct.hu, np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(ct.affine, ref.affine)


def test_uncompressed_nifti_loads(tmp_path):
    p = write(tmp_path / "ct.nii", nifti_bytes(ct_array()), gz=False)
    np.testing.assert_array_equal(load_ct(p).hu, ct_array())


# ---- DICOM decoder noise --------------------------------------------------------------------------

def test_corrupt_jpeg2000_slice_refused_in_one_line(tmp_path, capfd):
    pydicom = pytest.importorskip("pydicom")
    from perception.dicom import load_dicom_series
    from tests.test_dicom import hcc_consecutive

    for f in hcc_consecutive(3):
        ds = pydicom.dcmread(f)
        ds.compress(pydicom.uid.JPEG2000Lossless)
        ds.save_as(tmp_path / f.name)
    bad = sorted(tmp_path.iterdir())[1]
    b = bytearray(bad.read_bytes())
    i = b.find(b"\xff\x4f\xff\x51")
    b[i + 4:i + 60] = b"\xff" * 56
    bad.write_bytes(bytes(b))
    with pytest.raises(CTLoadError) as ei:
        load_dicom_series(tmp_path)
    msg = str(ei.value)
    assert str(bad) in msg and "JPEG 2000" in msg and "\n" not in msg
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Traceback" not in out


@pytest.mark.parametrize("name", ["ct.dcm", "ct", "ct.img"])
def test_fifo_or_device_as_dicom_refused_without_hanging(tmp_path, name):
    from perception.dicom import load_dicom_series

    fifo, dev = tmp_path / "fifo", tmp_path / "dev"
    fifo.mkdir()
    dev.mkdir()
    os.mkfifo(fifo / name)
    os.symlink("/dev/zero", dev / name)
    refuse(CTLoadError, load_ct, fifo / name, needles=("regular", "FIFO"))
    refuse(CTLoadError, load_dicom_series, dev / name, needles=("regular", "character device"))


def test_fifo_mask_file_refused_as_mask_error(tmp_path, ct):
    p = tmp_path / "liver.nii.gz"
    os.mkfifo(p)
    refuse(MaskError, load_masks, p, ct, needles=("regular", "FIFO"))


def test_fifo_in_mask_folder_refused_not_skipped(tmp_path, ct):
    d = tmp_path / "masks"
    d.mkdir()
    write(d / "liver.nii.gz", nifti_bytes((ct_array() > 0).astype(np.uint8)))
    os.mkfifo(d / "spleen.nii.gz")
    msg = refuse(MaskError, load_masks, d, ct, needles=("FIFO",))
    assert str(d / "spleen.nii.gz") in msg
