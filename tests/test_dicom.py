"""DICOM loader tests against real data in ../shared/data (see its README.md).

Each test compares with a truth obtained independently of perception.dicom: NIfTI exports of the
same series, headers read directly with pydicom, raw pixel bytes, or analytical geometry.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

import perception.dicom.pixels as dicom_mod
from perception.dicom import load_dicom_series, load_rtstruct, read_slice_pixels
from perception.errors import CTLoadError, DicomSeriesError, InputError, ModalityError
from perception.volume import CTVolume
from tests.require import require_path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

ODD = DATA / "dicom_odd"
SINGLE = ODD / "single_files"
HCC = DATA / "hcc048_portal_venous"
STS = DATA / "ibsi_sts" / "STS_019"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on odd UIDs/VRs


@pytest.fixture(autouse=True, scope="module")
def _shared_data() -> None:
    """Every test here reads ../shared/data (its README.md)."""
    require_path(DATA, "data")


def lps_to_ras(v) -> np.ndarray:
    return np.asarray(v, dtype=float) * np.array([-1.0, -1.0, 1.0])


def reoriented(img: nib.Nifti1Image, target_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NIfTI data and affine flipped/permuted to the axis codes of ``target_affine``."""
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(img.affine), nib.orientations.io_orientation(target_affine)
    )
    data = nib.orientations.apply_orientation(np.asarray(img.dataobj), ornt)
    aff = img.affine @ nib.orientations.inv_ornt_aff(ornt, img.shape)
    return data, aff


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def copy_files(files, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        shutil.copy(f, dest / f.name)
        out.append(dest / f.name)
    return out


def hcc_files() -> list[Path]:
    return sorted(HCC.glob("*.dcm"))


def hcc_consecutive(n: int) -> list[Path]:
    """The n most inferior slices of the HCC series (consecutive positions; file names are not)."""
    z = {f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in hcc_files()}
    return sorted(z, key=z.get)[:n]


# ----------------------------------------------------------------------------------------------
# real series


def test_example_ct_dicom_matches_totalseg_output():
    ct = load_dicom_series(DATA / "totalseg" / "example_ct_dicom")  # decode time: eval/bench_dicom.py
    assert isinstance(ct, CTVolume) and ct.source_format == "dicom"
    assert ct.shape == (512, 512, 20)
    seg_img = nib.load(DATA / "totalseg" / "example_seg_dicom.nii.gz")
    seg, seg_aff = reoriented(seg_img, ct.affine)  # the NIfTI stores rows flipped (LAS vs LPS)
    assert seg.shape == ct.shape
    np.testing.assert_allclose(ct.affine, seg_aff, atol=1e-3)
    # HU plausibility: air at -1024, and the segmentation lands on the right anatomy
    assert ct.hu.dtype == np.int16
    assert ct.hu.min() == -1024 and np.percentile(ct.hu, 5) < -900 and ct.hu.max() < 4000
    total = json.loads((DATA / "totalseg" / "class_map.json").read_text())["total"]
    ids = {v: int(k) for k, v in total.items()}
    liver_hu = float(ct.hu[seg == ids["liver"]].mean())
    aorta_hu = float(ct.hu[seg == ids["aorta"]].mean())
    assert 40 < liver_hu < 200, liver_hu  # contrast-enhanced liver (measured ~89 HU)
    assert aorta_hu > liver_hu + 40, (aorta_hu, liver_hu)  # contrast in the aorta (measured ~177 HU)
    # header facts; the series has no SeriesInstanceUID at all, which is reported
    assert ct.meta["series_uid"] is None and any("SeriesInstanceUID" in w for w in ct.warnings)
    assert ct.meta["slice_thickness_mm"] == 3.0 and ct.spacing[2] == pytest.approx(2.0)
    assert ct.meta["transfer_syntax"] == ["JPEG 2000 Image Compression (Lossless Only)"]


def test_sts019_dicom_equals_nifti_and_ignores_rtstruct():
    ct = load_dicom_series(STS / "dicom" / "image")
    img = nib.load(STS / "CT_image.nii.gz")
    ref, ref_aff = reoriented(img, ct.affine)
    np.testing.assert_allclose(ct.affine, ref_aff, atol=1e-3)
    assert ref.shape == ct.shape == (136, 134, 47)
    assert ct.hu.dtype == np.int16
    np.testing.assert_array_equal(ct.hu, ref)
    # the parent folder also holds RTSTRUCT.dcm: not an image, ignored
    ct2 = load_dicom_series(STS / "dicom")
    np.testing.assert_array_equal(ct2.hu, ct.hu)
    assert ct2.meta["n_files"] == 47


def test_sts019_rtstruct_matches_expert_mask():
    ct = load_dicom_series(STS / "dicom" / "image")
    masks = load_rtstruct(STS / "dicom" / "RTSTRUCT.dcm", ct)
    assert list(masks) == ["GTV_Mass_CT"]
    gtv = masks["GTV_Mass_CT"]
    ref, _ = reoriented(nib.load(STS / "CT_mask.nii.gz"), ct.affine)
    ref = ref > 0
    assert gtv.shape == ct.shape and gtv.dtype == bool
    d = dice(gtv, ref)
    vol_ratio = np.count_nonzero(gtv) / np.count_nonzero(ref)
    # measured: Dice 1.000, 5564 vs 5564 voxels (volume ratio 1.000)
    assert d >= 0.95, d
    assert abs(vol_ratio - 1) <= 0.05, vol_ratio


def test_hcc048_loads_sorted_by_position():
    ct = load_dicom_series(HCC)
    assert ct.shape == (512, 512, 33)
    assert ct.meta["n_files"] == 33  # LICENSE skipped
    np.testing.assert_allclose(ct.spacing, (0.703125, 0.703125, 2.5), atol=1e-6)
    np.testing.assert_allclose(ct.affine[:3, 2], [0, 0, 2.5], atol=1e-6)
    assert ct.meta["gantry_tilt_deg"] == 0.0 and ct.warnings == ()
    # independent ordering: z of ImagePositionPatient (InstanceNumber is not monotonic with z here)
    dss = sorted((pydicom.dcmread(f) for f in hcc_files()), key=lambda d: float(d.ImagePositionPatient[2]))
    for k in (0, 16, 32):
        d = dss[k]
        expect = d.pixel_array.T.astype(np.int32) * int(d.RescaleSlope) + int(d.RescaleIntercept)
        np.testing.assert_array_equal(ct.hu[..., k], expect)
        np.testing.assert_allclose(ct.affine @ [0, 0, k, 1], [*lps_to_ras(d.ImagePositionPatient), 1], atol=1e-4)
    # meta carries acquisition facts and no patient identifiers
    assert set(ct.meta) >= {
        "slice_thickness_mm", "series_description", "contrast_agent", "modality",
        "manufacturer", "kvp", "series_uid", "n_files",
    }
    assert not any("patient" in k.lower() or "date" in k.lower() or "name" in k.lower() for k in ct.meta)
    keys = ("PatientID", "PatientName", "PatientBirthDate", "StudyDate")
    idents = {str(dss[0].get(k)) for k in keys if dss[0].get(k)}
    assert not idents & {str(v) for v in ct.meta.values()}


def test_rescale_slope_gives_float32(tmp_path):
    files = copy_files(hcc_consecutive(3), tmp_path)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.RescaleSlope = "0.5"
        ds.save_as(f)
    ct = load_dicom_series(tmp_path)
    assert ct.hu.dtype == np.float32
    dss = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    np.testing.assert_allclose(ct.hu[..., 0], dss[0].pixel_array.T * 0.5 - 1024)


def test_jpeg2000_series_equals_uncompressed(tmp_path):
    src = hcc_consecutive(3)
    for f in src:
        ds = pydicom.dcmread(f)
        ds.compress(JPEG2000Lossless)
        ds.save_as(tmp_path / f.name)
    native = load_dicom_series(HCC)
    ct = load_dicom_series(tmp_path)
    zs = sorted(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in hcc_files())
    mine = sorted(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in src)
    ks = [zs.index(z) for z in mine]
    assert ct.meta["transfer_syntax"] == ["JPEG 2000 Image Compression (Lossless Only)"]
    np.testing.assert_array_equal(ct.hu, native.hu[..., ks])


def test_missing_decoder_names_transfer_syntax_and_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(dicom_mod, "_decoder_status", lambda ts: (False, ["pylibjpeg - requires pylibjpeg-openjpeg"]))
    with pytest.raises(CTLoadError) as ei:
        load_dicom_series(DATA / "totalseg" / "example_ct_dicom")
    msg = str(ei.value)
    assert "JPEG 2000 Image Compression (Lossless Only)" in msg and "1.2.840.10008.1.2.4.90" in msg
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in msg


# ----------------------------------------------------------------------------------------------
# odd DICOM


def test_gantry_tilt_sheared_affine():
    folder = ODD / "gantry_tilt"
    ct = load_dicom_series(folder)
    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.rglob("*.dcm"))]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    ipp = [np.array(d.ImagePositionPatient, dtype=float) for d in dss]
    # the slice step is the actual IPP difference (not the plane spacing along the normal)
    np.testing.assert_allclose(ct.affine[:3, 2], lps_to_ras(ipp[1] - ipp[0]), atol=1e-6)
    for k, p in enumerate(ipp):
        np.testing.assert_allclose(ct.affine @ [0, 0, k, 1], [*lps_to_ras(p), 1], atol=1e-4)
    step = ipp[1] - ipp[0]
    tilt = math.degrees(math.acos(abs(step @ normal) / np.linalg.norm(step)))
    assert tilt == pytest.approx(14.0, abs=0.05)  # what these files encode
    assert ct.meta["gantry_tilt_deg"] == pytest.approx(tilt, abs=1e-6)
    assert any("gantry tilt" in w and f"{tilt:.2f}" in w for w in ct.warnings)
    # sheared: the slice axis is 14 deg off the normal of the in-plane axes
    a = ct.affine[:3, :3]
    n_ras = np.cross(a[:, 0], a[:, 1])
    shear = math.degrees(math.acos(abs(n_ras @ a[:, 2]) / (np.linalg.norm(n_ras) * np.linalg.norm(a[:, 2]))))
    assert shear == pytest.approx(tilt, abs=1e-6)


def test_missing_slice_refused_with_steps():
    folder = ODD / "missing_slice"
    with pytest.raises(DicomSeriesError) as ei:
        load_dicom_series(folder)
    msg = str(ei.value)
    assert str(folder) in msg
    assert "5, 5, 10 mm" in msg  # the steps found
    assert "IM-0001-0010-0001.dcm" in msg  # the file after the gap


def test_duplicate_positions_refused(tmp_path):
    with zipfile.ZipFile(ODD / "duplicate_positions.zip") as z:
        z.extractall(tmp_path)
    by_pos: dict[tuple, list[str]] = {}
    for f in sorted(tmp_path.rglob("*.dcm")):
        d = pydicom.dcmread(f, stop_before_pixels=True)
        by_pos.setdefault(tuple(float(v) for v in d.ImagePositionPatient), []).append(f.name)
    dups = [names for names in by_pos.values() if len(names) > 1]
    assert len(dups) == 1 and len(dups[0]) == 2  # truth: CT26.dcm and CT28.dcm
    with pytest.raises(DicomSeriesError) as ei:
        load_dicom_series(tmp_path)
    msg = str(ei.value)
    assert "duplicate" in msg and all(name in msg for name in dups[0])


def test_slice_gap_refused():
    folder = ODD / "slice_gap_202mm"
    with pytest.raises(DicomSeriesError) as ei:
        load_dicom_series(folder)
    msg = str(ei.value)
    assert str(folder) in msg and "202.5" in msg and "1.25" in msg


def _as_original_hu_ct(src: Path, dst: Path) -> Path:
    """The enhanced multi-frame sample relabelled as an original CT in HU: the file itself is a derived
    perfusion map (ImageType DERIVED\\PRIMARY\\PERFUSION\\RCBF, RescaleType US), which the loader refuses
    (tests/test_derived_images.py); its multi-frame geometry and pixels are what this test reads."""
    ds = pydicom.dcmread(src)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    shared = ds.SharedFunctionalGroupsSequence[0]
    for item in (shared, *ds.PerFrameFunctionalGroupsSequence):
        if "CTImageFrameTypeSequence" in item:
            item.CTImageFrameTypeSequence[0].FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
        if "PixelValueTransformationSequence" in item:
            item.PixelValueTransformationSequence[0].RescaleType = "HU"
    ds.save_as(dst)
    return dst


def test_enhanced_multiframe_ct(tmp_path):
    path = _as_original_hu_ct(SINGLE / "eCT_Supplemental.dcm", tmp_path / "eCT_original_hu.dcm")
    ct = load_dicom_series(path)
    ds = pydicom.dcmread(path)
    n = int(ds.NumberOfFrames)
    assert n == 2 and ct.shape == (512, 512, n) and ct.meta["multiframe"] is True
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = [
        np.array(f.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    order = np.argsort([p @ normal for p in pos])
    np.testing.assert_allclose(ct.affine[:3, 2], lps_to_ras(pos[order[1]] - pos[order[0]]), atol=1e-6)
    np.testing.assert_allclose(ct.affine[:3, 3], lps_to_ras(pos[order[0]]), atol=1e-6)
    assert ct.spacing == pytest.approx((0.388672, 0.388672, 10.0))
    pvt = shared.PixelValueTransformationSequence[0]
    frames = ds.pixel_array
    for k, idx in enumerate(order):
        expect = frames[idx].T.astype(np.int32) * int(float(pvt.RescaleSlope)) + int(float(pvt.RescaleIntercept))
        np.testing.assert_array_equal(ct.hu[..., k], expect)
    assert ct.meta["slice_thickness_mm"] == 10.0
    # the file as distributed (a derived perfusion map, Rescale Type 'US') is refused
    with pytest.raises(ModalityError, match="RescaleType"):
        load_dicom_series(SINGLE / "eCT_Supplemental.dcm")


def test_jpeg2000_vs_uncompressed_pair():
    j2k = read_slice_pixels(SINGLE / "693_J2KR.dcm")
    unc = read_slice_pixels(SINGLE / "693_UNCI.dcm")
    ds_u = pydicom.dcmread(SINGLE / "693_UNCI.dcm")
    raw = np.frombuffer(ds_u.PixelData, dtype="<i2").reshape(ds_u.Rows, ds_u.Columns)
    np.testing.assert_array_equal(unc, raw)  # native path = raw bytes (14-bit stored, no unused bits set)
    assert j2k.shape == unc.shape == (512, 512) and j2k.dtype == np.int16
    # Reality: 693_UNCI is the decompressed *lossy* J2KI variant (LossyImageCompression 01, ratio ~339),
    # not the source of 693_J2KR (pydicom pairs J2KR with UNCR, absent here): same slice, not identical.
    assert ds_u.LossyImageCompression == "01"
    assert not np.array_equal(j2k, unc)
    assert np.corrcoef(j2k.ravel(), unc.ravel())[0, 1] > 0.99
    assert np.median(np.abs(j2k.astype(int) - unc)) < 50
    for name in ("693_J2KR.dcm", "693_UNCI.dcm"):
        with pytest.raises(DicomSeriesError, match="2D image") as ei:
            load_dicom_series(SINGLE / name)
        assert name in str(ei.value)


def test_explicit_vr_un_headers(monkeypatch):
    path = SINGLE / "explicit_VR-UN.dcm"
    monkeypatch.setattr(pydicom.config, "replace_un_with_known_vr", True)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds["Rows"].VR == "US" and isinstance(ds.Rows, int) and ds.Rows == 512
    assert ds.Modality == "CT" and [float(v) for v in ds.PixelSpacing] == [0.859375, 0.859375]
    monkeypatch.setattr(pydicom.config, "replace_un_with_known_vr", False)
    try:
        raw = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        pass  # pydicom 3.0.2: TypeError decoding the UN SpecificCharacterSet
    else:
        assert raw["Rows"].VR == "UN" and isinstance(raw["Rows"].value, bytes)
    monkeypatch.setattr(pydicom.config, "replace_un_with_known_vr", True)
    px = read_slice_pixels(path)
    assert px.shape == (512, 512) and px.min() == -1024
    with pytest.raises(DicomSeriesError, match="2D image"):
        load_dicom_series(path)


def test_bad_sequence_file(tmp_path):
    path = SINGLE / "bad_sequence.dcm"
    # Reality: the "bad" sequence is CTDIPhantomTypeCodeSequence stored as UN in implicit encoding;
    # pydicom 3 recovers it, so the file is readable and is refused only because it is one slice.
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.CTDIPhantomTypeCodeSequence[0].CodeValue == "113691"
    with pytest.raises(DicomSeriesError, match="2D image") as ei:
        load_dicom_series(path)
    assert "bad_sequence.dcm" in str(ei.value)
    # a sequence that really is malformed (item element length past the end of file) is refused
    b = bytearray(hcc_consecutive(1)[0].read_bytes())
    i = b.find(b"SQ\x00\x00", 132)  # DeidentificationMethodCodeSequence
    assert i > 0 and b[i + 8 : i + 12] == b"\xfe\xff\x00\xe0"
    b[i + 16 : i + 28] = b"\x08\x00\x00\x01OB\x00\x00" + (0x7FFFFFF0).to_bytes(4, "little")
    copy_files(hcc_consecutive(3)[1:], tmp_path)
    bad = tmp_path / "broken_sequence.dcm"
    bad.write_bytes(bytes(b))
    with pytest.raises(CTLoadError) as ei:
        load_dicom_series(tmp_path)
    assert str(bad) in str(ei.value) and "corrupt" in str(ei.value)


def test_ct_small_single_slice_refused():
    with pytest.raises(DicomSeriesError, match="2D image") as ei:
        load_dicom_series(SINGLE / "CT_small.dcm")
    assert "CT_small.dcm" in str(ei.value) and "128x128" in str(ei.value)


# ----------------------------------------------------------------------------------------------
# refusals built from real files


def test_dicomdir_fileset_without_extensions(tmp_path):
    """A media file-set: nested folders, files without extension, and a DICOMDIR (not an image)."""
    from pydicom.fileset import FileSet

    src = hcc_consecutive(3)
    fs = FileSet()
    for f in src:
        ds = pydicom.dcmread(f)
        for kw, dummy in (("StudyDate", "20000101"), ("StudyTime", "000000"), ("StudyID", "1")):
            if not ds.get(kw):  # de-identified; the default record creator needs a value
                setattr(ds, kw, dummy)
        fs.add(ds)
    fs.write(tmp_path / "media")
    written = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert (tmp_path / "media" / "DICOMDIR").is_file() and len(written) == 4
    assert all(p.suffix == "" for p in written)
    ct = load_dicom_series(tmp_path / "media")
    direct = load_dicom_series(copy_files(src, tmp_path / "plain")[0].parent)
    assert ct.meta["n_files"] == 3
    np.testing.assert_array_equal(ct.hu, direct.hu)
    np.testing.assert_allclose(ct.affine, direct.affine)


def test_mr_series_refused(tmp_path):
    for f in copy_files(hcc_consecutive(2), tmp_path):
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    with pytest.raises(ModalityError) as ei:
        load_dicom_series(tmp_path)
    assert "found MR" in str(ei.value) and str(tmp_path) in str(ei.value)


def test_two_series_refused(tmp_path):
    copy_files(sorted((STS / "dicom" / "image").glob("*.dcm"))[:3], tmp_path / "a")
    copy_files(hcc_files()[:4], tmp_path / "b")
    uid_a = str(pydicom.dcmread(next((tmp_path / "a").iterdir()), stop_before_pixels=True).SeriesInstanceUID)
    uid_b = str(pydicom.dcmread(next((tmp_path / "b").iterdir()), stop_before_pixels=True).SeriesInstanceUID)
    with pytest.raises(DicomSeriesError) as ei:
        load_dicom_series(tmp_path)
    msg = str(ei.value)
    assert "found 2 series" in msg
    assert f"{uid_a}: 3 slice(s) in 3 file(s)" in msg and "IBSI_1_STS_019_CT_image" in msg
    assert f"{uid_b}: 4 slice(s) in 4 file(s)" in msg and "LIVER 2 PHASE" in msg


@pytest.mark.parametrize(
    "keyword, value, expected",
    [
        ("PixelSpacing", [0.8, 0.8], "PixelSpacing"),
        ("ImageOrientationPatient", [1, 0, 0, 0, 0.9, -0.4358899], "ImageOrientationPatient"),
        ("Columns", 256, "rows x"),
    ],
)
def test_inconsistent_slices_refused(tmp_path, keyword, value, expected):
    files = copy_files(hcc_consecutive(3), tmp_path)
    ds = pydicom.dcmread(files[2])
    setattr(ds, keyword, value)
    if keyword == "Columns":  # keep the file self-consistent: really 256 columns
        ds.PixelData = ds.pixel_array[:, :256].copy().tobytes()
    ds.save_as(files[2])
    with pytest.raises(DicomSeriesError, match=expected) as ei:
        load_dicom_series(tmp_path)
    assert str(files[2]) in str(ei.value)


def test_empty_and_non_dicom_folders(tmp_path):
    with pytest.raises(CTLoadError, match="empty folder") as ei:
        load_dicom_series(tmp_path)
    assert str(tmp_path) in str(ei.value)
    (tmp_path / "LICENSE").write_text("not dicom\n")
    with pytest.raises(CTLoadError, match="1 non-DICOM file"):
        load_dicom_series(tmp_path)
    with pytest.raises(CTLoadError, match="found nothing"):
        load_dicom_series(tmp_path / "missing")


def test_truncated_file_refused(tmp_path):
    files = copy_files(hcc_consecutive(3), tmp_path)
    victim = files[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    with pytest.raises(CTLoadError) as ei:
        load_dicom_series(tmp_path)
    assert str(victim) in str(ei.value) and "truncated" in str(ei.value)
    victim.write_bytes(data[:300])  # cut inside the header
    with pytest.raises(CTLoadError) as ei:
        load_dicom_series(tmp_path)
    assert str(victim) in str(ei.value)
    assert issubclass(CTLoadError, InputError)


# ----------------------------------------------------------------------------------------------
# RTSTRUCT rasterisation: analytical truth


def _write_rtstruct(path: Path, contours_lps: list[np.ndarray], name: str = "lesion") -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    roi = Dataset()
    roi.ROINumber = 7
    roi.ROIName = name
    ds.StructureSetROISequence = Sequence([roi])
    items = []
    for pts in contours_lps:
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        c.NumberOfContourPoints = len(pts)
        c.ContourData = [f"{v:.4f}" for v in np.asarray(pts, float).ravel()]
        items.append(c)
    rc = Dataset()
    rc.ReferencedROINumber = 7
    rc.ContourSequence = Sequence(items)
    ds.ROIContourSequence = Sequence([rc])
    ds.save_as(path, enforce_file_format=True)


def test_rtstruct_even_odd_fill_with_hole(tmp_path):
    # 2 mm voxels, LPS-aligned grid (RAS affine flips x and y), origin at LPS (10, 20, 30)
    affine = np.array([[-2.0, 0, 0, -10], [0, -2.0, 0, -20], [0, 0, 3.0, 30], [0, 0, 0, 1]])
    ct = CTVolume(np.zeros((20, 16, 4), np.int16), affine, "synthetic", "dicom")

    def square(i0, i1, j0, j1, k):  # corners in voxel coordinates -> LPS points
        vox = np.array([[i0, j0, k, 1], [i1, j0, k, 1], [i1, j1, k, 1], [i0, j1, k, 1]], float)
        ras = (affine @ vox.T).T[:, :3]
        return ras * [-1, -1, 1]

    outer = square(2.5, 12.5, 3.5, 9.5, 2)  # centres i 3..12, j 4..9 -> 10 x 6 = 60
    hole = square(5.5, 8.5, 5.5, 7.5, 2)  # centres i 6..8, j 6..7 -> 3 x 2 = 6
    _write_rtstruct(tmp_path / "rs.dcm", [outer, hole])
    m = load_rtstruct(tmp_path / "rs.dcm", ct)["lesion"]
    expect = np.zeros(ct.shape, bool)
    expect[3:13, 4:10, 2] = True
    expect[6:9, 6:8, 2] = False
    np.testing.assert_array_equal(m, expect)
    assert np.count_nonzero(m) == 54
