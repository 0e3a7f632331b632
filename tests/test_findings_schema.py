"""Findings valid by construction: the JSON Schema snapshot, 1.0.0 files still load, each validator refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from perception.schema import SCHEMA_VERSION, Findings, Organ, Status, json_schema
from tests.cases import build_case

GOLDEN = Path(__file__).parent / "golden" / "findings_schema.json"
REFRESH = ("refresh on purpose (a schema change is a version bump, documented in README): "
           ".venv/bin/python -c \"import json; from perception.schema import json_schema; "
           "open('tests/golden/findings_schema.json','w').write(json.dumps(json_schema(), indent=1, sort_keys=True) + '\\n')\"")


def test_json_schema_snapshot():
    now = json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"
    assert GOLDEN.read_text() == now, f"perception.schema.json_schema() differs from {GOLDEN}; {REFRESH}"


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    return build_case(tmp_path_factory.mktemp("schema") / "case")["findings"]


def _dump(f: Findings) -> dict:
    return json.loads(f.to_json())


def test_round_trip(findings):
    assert Findings.model_validate_json(findings.to_json()) == findings


def test_old_1_0_0_file_loads(findings):
    d = _dump(findings)
    d["schema_version"] = "1.0.0"
    for k in ("lesion_search", "ignored_masks"):
        d.pop(k)
    for o in d["organs"]:
        for k in ("imaged_volume_ml", "hu_region", "plausibility"):
            o.pop(k)
    for les in d["lesions"]:
        for k in ("size_qualifier", "key_slice", "nodule_type", "nodule_type_rule", "laterality_rule",
                  "attenuation_reason", "composition_rule", "max_area_slice"):
            les.pop(k)
    old = Findings.model_validate(d)
    assert old.schema_version == "1.0.0" and old.lesion_search == [] and len(old.lesions) == len(findings.lesions)
    assert all(l.size_qualifier == ("lower_bound" if l.touches_edges else "complete") for l in old.lesions)
    assert old.search_of("liver") is None  # nothing recorded: absence cannot be stated
    # the imaged volume is filled on reading (voxel count x voxel volume from the affine): readers never re-derive it
    assert [o.imaged_volume_ml for o in old.organs] == [o.imaged_volume_ml for o in findings.organs]


def test_refuses_unknown_version(findings):
    d = _dump(findings)
    d["schema_version"] = "9.0.0"
    with pytest.raises(ValidationError, match="schema_version '9.0.0'"):
        Findings.model_validate(d)


def test_refuses_duplicate_lesion_ids(findings):
    d = _dump(findings)
    d["lesions"][1]["id"] = d["lesions"][0]["id"]
    with pytest.raises(ValidationError, match="lesion ids must be unique"):
        Findings.model_validate(d)


def test_refuses_organ_lesion_id_that_names_no_lesion(findings):
    d = _dump(findings)
    d["organs"][0]["lesion_ids"] = ["L999"]
    with pytest.raises(ValidationError, match="name no lesion"):
        Findings.model_validate(d)


def test_refuses_measured_organ_without_volume():
    with pytest.raises(ValidationError, match="status measured but no volume_ml"):
        Organ(name="liver", status=Status.measured, mask="liver.nii.gz", voxel_count=10, volume_ml=None, mean_hu=50.0,
              median_hu=50.0, sd_hu=5.0, touches_edges=[])
    with pytest.raises(ValidationError, match="volume_ml given but status is truncated_by_fov"):
        Organ(name="liver", status=Status.truncated_by_fov, mask="liver.nii.gz", voxel_count=10, volume_ml=1.0,
              mean_hu=50.0, median_hu=50.0, sd_hu=5.0, touches_edges=["axis2_max"])


def test_refuses_key_slice_and_size_qualifier_inconsistent(findings):
    d = _dump(findings)
    les = next(l for l in d["lesions"] if not l["touches_edges"])
    les["key_slice"]["index"] = les["axial_slice"] + 1
    with pytest.raises(ValidationError, match="key_slice.index"):
        Findings.model_validate(d)
    d = _dump(findings)
    les = next(l for l in d["lesions"] if not l["touches_edges"])
    les["size_qualifier"] = "lower_bound"
    with pytest.raises(ValidationError, match="size_qualifier"):
        Findings.model_validate(d)


def test_refuses_two_search_entries_for_one_organ(findings):
    d = _dump(findings)
    d["lesion_search"].append(d["lesion_search"][0])
    with pytest.raises(ValidationError, match="one entry per organ"):
        Findings.model_validate(d)


def test_current_version_written(findings):
    assert findings.schema_version == SCHEMA_VERSION == "1.3.0"


def test_old_1_1_0_file_loads_without_max_area_slice(findings):
    d = _dump(findings)
    d["schema_version"] = "1.1.0"
    for les in d["lesions"]:
        les.pop("max_area_slice")
    old = Findings.model_validate(d)
    assert old.schema_version == "1.1.0" and all(l.max_area_slice is None for l in old.lesions)
    assert [l.key_slice for l in old.lesions] == [l.key_slice for l in findings.lesions]


def test_refuses_max_area_slice_outside_the_lesion(findings):
    d = _dump(findings)
    ax = d["study"]["axial_axis"]
    les = d["lesions"][0]
    les["max_area_slice"]["index"] = les["bbox_voxel"][ax][1]  # one past the last slice holding the lesion
    with pytest.raises(ValidationError, match="max_area_slice.index"):
        Findings.model_validate(d)


def test_max_area_index_is_the_slice_of_most_voxels_on_the_full_grid():
    import numpy as np

    from perception.measure import max_area_index

    # a stepped pyramid along axis 2: slice areas 1, 9, 25, 9 (x 1) from full-grid index 10; the largest is index 12
    comp = np.zeros((5, 5, 4), bool)
    for k, r in enumerate((0, 1, 2, 1)):
        comp[2 - r:3 + r, 2 - r:3 + r, k] = True
    bbox = ((3, 8), (7, 12), (10, 14))
    assert max_area_index(comp, bbox, 2) == 12
    # equal areas: the first (lowest index); another axial axis
    two = np.zeros((3, 4, 4), bool)
    two[0, :2, :2] = two[2, :2, :2] = True
    assert max_area_index(two, ((5, 8), (0, 4), (0, 4)), 0) == 5
