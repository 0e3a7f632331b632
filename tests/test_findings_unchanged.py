"""Findings do not change when the code gets faster (issue 17).

tests/golden/findings/<case>.json.gz hold the findings of four cases as the code measured them before
the speed work (generated from a clean worktree of commit c980688 with ``python -m
tests.test_findings_unchanged OUTDIR``). The test measures the same inputs with the current code and
compares every value exactly: every key, every string, every float to the last bit (JSON floats
round-trip exactly). Only what legitimately varies is normalised: the absolute folders the inputs live
in (replaced by ``<CASE>`` / ``<DATA>``) and ``radagent_version``.

Cases: (a) tests/cases.py::build_case (real CT, AbdomenAtlas-style folder of 54 mask files, synthetic
lesions of known geometry); (b) the demo (eval/demo.py: the TotalSegmentator example with its label map,
and its copy with three synthetic lesions as a mask folder); (c) the DICOM series of the same example
measured by tests/test_template_validates.py (``demo_dicom``).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, data_path

GOLDEN = Path(__file__).parent / "golden" / "findings"
CASES = ("build_case", "demo_example", "demo_synthetic_lesions", "demo_dicom")
VARIES = ("radagent_version",)


def _measure_case(name: str, tmp: Path) -> tuple[object, Path | None]:
    """(Findings, the case folder that stands in for <CASE>, or None)."""
    from agent.case import measure

    if name == "build_case":
        from tests.cases import build_case

        folder = tmp / "case"
        return build_case(folder)["findings"], folder
    ct, seg = data_path("totalseg", "example_ct_sm.nii.gz"), data_path("totalseg", "example_seg.nii.gz")
    if name == "demo_example":
        return measure(ct, seg), None
    if name == "demo_synthetic_lesions":
        from eval.demo import build_synthetic_case

        folder = build_synthetic_case(ct, seg, tmp / "demo_case")
        return measure(folder / "ct.nii.gz", folder), folder
    if name == "demo_dicom":
        return measure(data_path("totalseg", "example_ct_dicom"), data_path("totalseg", "example_seg_dicom.nii.gz")), None
    raise KeyError(name)


def _normalise(x, subs: list[tuple[str, str]]):
    if isinstance(x, dict):
        return {k: _normalise(v, subs) for k, v in x.items() if k not in VARIES}
    if isinstance(x, list):
        return [_normalise(v, subs) for v in x]
    if isinstance(x, str):
        for old, new in subs:
            x = x.replace(old, new)
    return x


def findings_dict(name: str, tmp: Path) -> dict:
    """The case's findings as plain JSON values, with the varying parts normalised."""
    f, folder = _measure_case(name, tmp)
    subs = [(str(folder.resolve()), "<CASE>"), (str(folder), "<CASE>")] if folder is not None else []
    subs += [(str(DATA.resolve()), "<DATA>"), (str(DATA), "<DATA>")]
    return _normalise(json.loads(f.model_dump_json()), subs)


def _diff(a, b, path="$", out=None, limit=20):
    """Paths where ``a`` and ``b`` differ (first ``limit``)."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: {'missing now' if k not in b else 'new'}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items before, {len(b)} now")
        for i, (u, v) in enumerate(zip(a, b)):
            _diff(u, v, f"{path}[{i}]", out, limit)
    elif type(a) is not type(b) or a != b:
        out.append(f"{path}: {a!r} before, {b!r} now")
    return out


def _golden(name: str) -> dict:
    return json.loads(gzip.decompress((GOLDEN / f"{name}.json.gz").read_bytes()))


@pytest.mark.parametrize("name", CASES)
def test_findings_unchanged(name, tmp_path):
    before = _golden(name)
    now = findings_dict(name, tmp_path)
    assert _diff(before, now) == []
    assert now == before


def test_comparison_sees_a_change_in_the_last_bit():
    """The comparison is exact: one float off by one ulp, one key dropped, one item added all show."""
    import math

    g = _golden("demo_synthetic_lesions")
    les = g["lesions"][0]
    changed = json.loads(json.dumps(g))
    changed["lesions"][0]["volume_ml"] = math.nextafter(les["volume_ml"], math.inf)
    assert _diff(g, changed) == [f"$.lesions[0].volume_ml: {les['volume_ml']!r} before, {changed['lesions'][0]['volume_ml']!r} now"]
    dropped = json.loads(json.dumps(g))
    del dropped["lesions"][0]["long_axis_mm"]
    assert _diff(g, dropped) == ["$.lesions[0].long_axis_mm: missing now"]
    more = json.loads(json.dumps(g))
    more["lesions"].append(more["lesions"][0])
    assert _diff(g, more)[0].startswith("$.lesions: 3 items before, 4 now")


def test_golden_files_hold_measurements():
    """The golden files are real measurements of the cases, not empty shells: the synthetic case has its lesions."""
    g = _golden("build_case")
    assert len(g["lesions"]) >= 6 and len(g["organs"]) >= 10
    assert all("<CASE>" in m["source"] for m in g["masks"])
    assert not any(k in g for k in VARIES)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_sparse_mask_read_is_the_dense_read(tmp_path, dtype):
    """read_nifti's sparse path (masks: only the inflate steps holding non-zero bytes are kept) gives
    the array of the dense path, byte for byte: voxels in the first bytes after the header (read with
    the header), in one late slab, on chunk edges, and none at all; truncated files are refused by both."""
    import nibabel as nib
    import numpy as np

    from perception import io as pio

    shape = (64, 48, 200)  # 0.6 M voxels: several _SPARSE_CHUNK steps at every dtype
    arr = np.zeros(shape, dtype=dtype)
    arr[0, 0, 0] = 1  # inside the bytes read with the header
    arr[10:20, 5:9, 150:153] = 2
    flat = arr.reshape(-1, order="F")
    step = pio._SPARSE_CHUNK // arr.dtype.itemsize
    flat[step - 1] = flat[step] = 3  # both sides of a chunk edge
    arr = flat.reshape(shape, order="F")
    aff = np.diag([0.7, 0.7, 1.5, 1.0])
    for name, a in (("m", arr), ("empty", np.zeros(shape, dtype=dtype))):
        for suffix in (".nii.gz", ".nii"):
            p = tmp_path / f"{name}_{dtype.strip('<>')}{suffix}"
            nib.save(nib.Nifti1Image(a, aff), str(p))
            sp = pio.raw_data(pio.read_nifti(p, "mask"))
            de = pio.raw_data(pio.read_nifti(p, "mask", sparse=False))
            assert sp.dtype == de.dtype and sp.shape == de.shape == shape
            assert np.array_equal(sp, a) and np.array_equal(de, a)
            assert not sp.flags.writeable
    full = (tmp_path / f"m_{dtype.strip('<>')}.nii").read_bytes()
    for cut in (200, 400, len(full) // 2, len(full) - 1):
        bad = tmp_path / f"cut{cut}.nii"
        bad.write_bytes(full[:cut])
        msgs = []
        for sparse in (True, False):
            with pytest.raises(pio.CTLoadError) as e:
                pio.read_nifti(bad, "mask", sparse=sparse)
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1] and "truncated" in msgs[0]
    gz = gzip.compress(full, mtime=0)
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(gz[: len(gz) * 2 // 3])
    for sparse in (True, False):
        with pytest.raises(pio.CTLoadError, match="truncated"):
            pio.read_nifti(bad, "mask", sparse=sparse)


def main(out: Path) -> None:
    """Write the golden files of the current code into ``out``."""
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            d = findings_dict(name, Path(tmp))
        (out / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(d, indent=1).encode(), mtime=0))
        print(name, len(d["lesions"]), "lesions", len(d["organs"]), "organs", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
