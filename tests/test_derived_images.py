"""Derived / non-HU DICOM images are refused like MR (issue 10, observation 7).

Before: ``dicom_odd/single_files/eCT_Supplemental.dcm`` (ImageType DERIVED\\PRIMARY\\PERFUSION\\RCBF,
RescaleType US: a cerebral blood flow map) loaded, with only a warning, and was measured "in HU".
Now the loader refuses it (ModalityError, exit 2, no output) naming the tags and the values found.
Truth is read here with pydicom, independently of perception.dicom. A DERIVED image that is still a
CT in HU (ImageType DERIVED\\PRIMARY\\AXIAL, e.g. a reformatted series) keeps loading.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from agent.cli import main
from perception.dicom import load_dicom_series
from perception.dicom.headers import DERIVED_MAP_TERMS, non_hu_reasons
from perception.errors import ModalityError
from perception.io import load_ct
from tests.conftest import data_path

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on odd UIDs/VRs


def _series_copy(tmp_path: Path, n: int = 4, **tags) -> Path:
    """The first ``n`` slices of the real HCC_048 portal-venous series, with ``tags`` set on each."""
    src = data_path("hcc048_portal_venous")
    slices = []
    for p in sorted(src.rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        slices.append((float(ds.ImagePositionPatient[2]), p.name, ds))
    slices.sort(key=lambda t: t[0])  # n neighbouring slices (file names are not in position order)
    dst = tmp_path / "series"
    dst.mkdir()
    kept = 0
    for _, name, ds in slices[:n]:
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(dst / name)
        kept += 1
    assert kept == n
    return dst


def test_perfusion_map_refused_naming_tags():
    path = data_path("dicom_odd", "single_files", "eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    image_type = [str(v) for v in ds.ImageType]
    rescale = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0].RescaleType
    assert image_type[0] == "DERIVED" and "PERFUSION" in image_type and rescale == "US"  # what the file says
    for load in (load_dicom_series, load_ct):
        with pytest.raises(ModalityError) as ei:
            load(path)
        msg = str(ei.value)
        assert str(path) in msg
        assert "ImageType (0008,0008)" in msg and "\\".join(image_type) in msg and "PERFUSION" in msg
        assert "RescaleType (0028,1054)" in msg and "'US'" in msg and "expected 'HU'" in msg


def test_cli_refuses_derived_map_exit_2_no_output(tmp_path):
    path = data_path("dicom_odd", "single_files", "eCT_Supplemental.dcm")
    mask = data_path("ibsi_sts", "STS_019", "CT_mask.nii.gz")  # never read: the CT is refused first
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["analyze", str(path), "--masks", str(mask), "-o", str(out)])
    assert r.exit_code == 2, r.output
    flat = " ".join(r.output.split())
    assert "eCT_Supplemental.dcm" in flat and "PERFUSION" in flat and "RescaleType" in flat
    assert not out.exists()


def test_classic_series_with_non_hu_rescale_type_refused(tmp_path):
    folder = _series_copy(tmp_path, RescaleType="US")
    with pytest.raises(ModalityError, match=r"RescaleType \(0028,1054\) is 'US', expected 'HU'"):
        load_ct(folder)


def test_classic_series_derived_subtraction_refused(tmp_path):
    folder = _series_copy(tmp_path, ImageType=["DERIVED", "SECONDARY", "AXIAL", "SUBTRACTION"])
    with pytest.raises(ModalityError, match=r"DERIVED\\SECONDARY\\AXIAL\\SUBTRACTION: a derived map \(SUBTRACTION\)"):
        load_ct(folder)


def test_derived_but_hu_series_still_loads(tmp_path):
    """DERIVED alone (a reformat, a reconstruction) is not a map: the HU values are measured."""
    folder = _series_copy(tmp_path, ImageType=["DERIVED", "PRIMARY", "AXIAL"], RescaleType="HU")
    ct = load_ct(folder)
    assert ct.shape[2] == 4
    (tmp_path / "ref").mkdir()
    assert (load_ct(_series_copy(tmp_path / "ref", n=4)).hu == ct.hu).all()


def test_reasons_are_data():
    assert {"PERFUSION", "SUBTRACTION", "QUANTITY"} <= DERIVED_MAP_TERMS
    assert "AXIAL" not in DERIVED_MAP_TERMS and "MAXIMUM" not in DERIVED_MAP_TERMS
    ds = pydicom.Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PERFUSION"]  # the source images of a perfusion study are HU
    assert non_hu_reasons(ds) == []
    ds.RescaleType = "hu"
    assert non_hu_reasons(ds) == []


@pytest.mark.parametrize("rel", [("hcc048_portal_venous",), ("totalseg", "example_ct_dicom"),
                                 ("ibsi_sts", "STS_019", "dicom"), ("dicom_odd", "gantry_tilt")])
def test_normal_ct_series_still_load(rel):
    ct = load_ct(data_path(*rel))
    assert ct.hu.ndim == 3 and ct.source_format == "dicom"
