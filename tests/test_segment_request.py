"""SegmentRequest (perception.segment.request) and the shared click options (agent.segment_options).

What a valid request holds, each refusal naming its field (and option) with expected vs found, the
frozen model, the settings fingerprint, and one set of click options for every command. Runs in the
light venv (no torch, no TotalSegmentator).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import get_args

import click
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from agent.segment_options import (MASKS_OPTION_NAMES, OPTION_NAMES, segment_request_from_options,
                                   segment_request_options)
from perception.segment import BACKENDS, MasksSegmenter, SegmentRequest, make_segmenters, segment_ct
from perception.segment.common import BackendName
from perception.segment.totalseg import TASKS
from radagent.errors import RequestError
from tests.conftest import data_path

# --- valid requests --------------------------------------------------------------------------------


def test_defaults_totalseg_then_unit_when_weights_given():
    r = SegmentRequest.build()
    assert r.backends == ("totalseg",) and r.device == "auto" and r.allow_download
    # a no-mask analyze: total, then the lesion tasks (and liver segments) of the organs total finds
    assert r.tasks == ("total", "liver_segments", "liver_lesions", "kidney_cysts", "lung_nodules")
    assert SegmentRequest.build(unit_weights="final.pt").backends == ("totalseg", "unit")
    assert SegmentRequest.build(backends=["unit"], unit_weights="final.pt").backends == ("unit",)  # explicit wins
    assert SegmentRequest.build(backends="totalseg").backends == ("totalseg",)


def test_values_are_normalised_once():
    r = SegmentRequest.build(tasks=["total", " liver_segments", "total"], device=" CUDA:1 ", unit_weights="w.pt",
                             existence_threshold="0.4")
    assert r.tasks == ("total", "liver_segments")  # order kept, duplicates dropped
    assert r.device == "cuda:1"  # spelling checked, availability is the backend's business
    assert r.unit_weights == Path("w.pt") and r.existence_threshold == 0.4
    for ok in ("auto", "cpu", "cuda", "cuda:0", "mps"):
        assert SegmentRequest.build(device=ok).device == ok


def test_backend_options_are_the_constructors_keywords():
    r = SegmentRequest.build(backends=["totalseg", "unit", "masks"], tasks=["liver_vessels"], fast=True,
                             totalseg_weights="/w", totalseg_home="/h", allow_download=False, unit_weights="u.pt",
                             existence_threshold=0.3, masks="segs", class_map="map.json")
    assert r.backend_options("totalseg") == {"tasks": ["liver_vessels"], "fast": True, "weights_dir": Path("/w"),
                                             "home_dir": Path("/h"), "allow_download": False}
    assert r.backend_options("unit") == {"weights": Path("u.pt"), "existence_threshold": 0.3}
    assert r.backend_options("masks") == {"path": Path("segs"), "class_map": Path("map.json")}
    assert SegmentRequest.build(unit_weights="u.pt").backend_options("unit") == {"weights": Path("u.pt")}
    with pytest.raises(ValueError, match="expected one of the requested backends totalseg, found 'unit'"):
        SegmentRequest.build().backend_options("unit")


def test_backend_names_are_one_list():
    assert set(get_args(BackendName)) == set(BACKENDS) == {"masks", "totalseg", "unit", "nnunet", "bundle"}
    for name in SegmentRequest.model_fields:
        assert SegmentRequest.option_of(name), name  # every field says which CLI option sets it


# --- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, field, pattern", [
    ({"backends": ["unit"]}, "unit_weights", r"unit_weights \(--weights\): backend 'unit' needs --weights"),
    ({"backends": ["masks"]}, "masks", r"masks \(--masks\): backend 'masks' needs --masks PATH"),
    ({"tasks": ["liver_segment"]}, "tasks", r"unknown task 'liver_segment'.*did you mean 'liver_segments'"),
    ({"tasks": ["renal_arteries"]}, "tasks", r"licence-gated in TotalSegmentator 2\.18\.0"),
    ({"tasks": ["tissue_types"]}, "tasks", r"licence-gated"),
    ({"tasks": []}, "tasks", r"expected one or more TotalSegmentator tasks .*found none"),
    ({"device": "gpu0"}, "device", r"device \(--device\): expected auto, cpu, cuda, cuda:N or mps, found 'gpu0'"),
    ({"device": "cuda:x"}, "device", r"found 'cuda:x' \(did you mean 'cuda:0'\?\)"),
    ({"existence_threshold": 1.5}, "existence_threshold", r"--threshold\): expected a probability in 0\.\.1, found 1\.5"),
    ({"existence_threshold": -0.1}, "existence_threshold", r"expected a probability in 0\.\.1, found -0\.1"),
    ({"existence_threshold": float("nan")}, "existence_threshold", r"found nan"),
    ({"weights": "w.pt"}, "weights", r"unknown field 'weights' \(did you mean 'unit_weights'\?\)"),
    ({"backends": ["totalsegg"]}, "backends", r"expected 'masks', 'totalseg', 'unit', 'nnunet' or 'bundle'; found 'totalsegg' "
                                              r"\(did you mean 'totalseg'\?\)"),
    ({"backends": []}, "backends", r"expected one or more of masks, totalseg, unit, nnunet, bundle, found none"),
    ({"backends": ["totalseg", "totalseg"]}, "backends", r"expected each backend once, found 'totalseg'"),
    ({"fast": "maybe"}, "fast", r"fast \(--fast/--full\): expected a valid boolean.*found 'maybe'"),
])
def test_refusals_name_the_field_expected_and_found(fields, field, pattern):
    with pytest.raises(RequestError, match=pattern) as ei:
        SegmentRequest.build(**fields)
    assert str(ei.value).startswith("invalid segmentation request: ")
    assert [f for f, _ in ei.value.problems] == [field]
    with pytest.raises(ValidationError):  # the model itself refuses too (build only rewords it)
        SegmentRequest(**fields)


def test_every_cross_field_refusal_is_reported():
    with pytest.raises(RequestError) as ei:
        SegmentRequest.build(backends=["unit", "masks"])
    assert [f for f, _ in ei.value.problems] == ["unit_weights", "masks"]


def test_request_is_frozen_and_hashable():
    r = SegmentRequest.build(unit_weights="w.pt")
    with pytest.raises(ValidationError, match="frozen"):
        r.device = "cuda"  # type: ignore[misc]
    assert hash(r) == hash(SegmentRequest.build(unit_weights="w.pt"))
    assert pickle.loads(pickle.dumps(r)) == r  # crosses into worker processes as it is


# --- fingerprint -------------------------------------------------------------------------------------


def test_fingerprint_is_json_and_stable():
    r = SegmentRequest.build(tasks=["total"], totalseg_home=Path("/ts"), allow_download=False, unit_weights="runs/final.pt")
    doc = r.fingerprint_document()
    # the document dataset settings hashed before SegmentRequest existed: existing datasets keep their hash
    assert doc == {"backends": ["totalseg", "unit"],
                   "options": {"totalseg": {"tasks": ["total"], "fast": None, "weights_dir": None, "home_dir": "/ts",
                                            "allow_download": False},
                               "unit": {"weights": "runs/final.pt"}}}
    text = json.dumps(doc, sort_keys=True)
    same = SegmentRequest.build(unit_weights=Path("runs/final.pt"), allow_download=False, totalseg_home="/ts",
                                device="cuda", tasks=("total", "total"))
    assert json.dumps(same.fingerprint_document(), sort_keys=True) == text  # device and spelling do not count
    assert json.loads(text) == doc
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert digest == hashlib.sha256(json.dumps(pickle.loads(pickle.dumps(r)).fingerprint_document(),
                                               sort_keys=True).encode()).hexdigest()
    changed = SegmentRequest.build(tasks=["total"], totalseg_home="/ts", allow_download=False,
                                   unit_weights="runs/final.pt", existence_threshold=0.5)
    assert changed.fingerprint_document()["options"]["unit"] == {"weights": "runs/final.pt", "existence_threshold": 0.5}


# --- segment_ct with a request ----------------------------------------------------------------------


def test_segment_ct_takes_a_request():
    from perception.io import load_ct

    ct = load_ct(data_path("totalseg", "example_ct_sm.nii.gz"))
    seg = data_path("totalseg", "example_seg.nii.gz")
    req = SegmentRequest.build(backends=["masks"], masks=seg, device="cpu")
    (only,) = make_segmenters(req)
    assert isinstance(only, MasksSegmenter) and only.path == seg
    ls = segment_ct(ct, req)
    old = segment_ct(ct, ["masks"], options={"masks": {"path": seg}})  # the older form still works
    assert set(ls.masks) == set(old.masks) and ls.masks["liver"].voxel_count == old.masks["liver"].voxel_count > 0
    with pytest.raises(TypeError, match="expected no device= or options="):
        segment_ct(ct, req, device="cpu")
    with pytest.raises(TypeError, match="expected a SegmentRequest"):
        make_segmenters({"backends": ["masks"]})  # type: ignore[arg-type]


# --- click options ---------------------------------------------------------------------------------------


def _command(name: str, include_masks_backend: bool = False, own: tuple = ()) -> click.Command:
    """A tiny command with its own options plus the shared ones; prints the request it built."""

    def run(**kwargs):
        seg = {k: v for k, v in kwargs.items() if k in OPTION_NAMES + MASKS_OPTION_NAMES}
        click.echo(segment_request_from_options(**seg).model_dump_json())

    cmd = segment_request_options(run, include_masks_backend=include_masks_backend)
    for o in own:
        cmd = o(cmd)
    return click.command(name)(cmd)


def _shape(cmd: click.Command, names) -> list[tuple]:
    out = []
    for p in cmd.params:
        if p.name in names:
            choices = tuple(p.type.choices) if isinstance(p.type, click.Choice) else None
            out.append((p.name, tuple(p.opts), tuple(p.secondary_opts), p.multiple, p.default, p.help, choices))
    return out


ANALYZE = _command("analyze", own=(click.option("--masks", type=click.Path(path_type=Path)),
                                    click.argument("ct")))
BUILD = _command("build", own=(click.option("--qa", is_flag=True), click.argument("source")))
SEGMENT = _command("segment", include_masks_backend=True, own=(click.argument("ct"),))


def test_analyze_and_dataset_commands_get_the_same_options():
    assert _shape(ANALYZE, OPTION_NAMES) == _shape(BUILD, OPTION_NAMES)
    assert [n for n, *_ in _shape(ANALYZE, OPTION_NAMES)] == list(OPTION_NAMES)
    assert _shape(SEGMENT, OPTION_NAMES)[1:] == _shape(ANALYZE, OPTION_NAMES)[1:]  # all but --backend's choices
    by_name = {p.name: p for p in SEGMENT.params}
    assert list(by_name["backends"].type.choices) == ["totalseg", "unit", "nnunet", "bundle", "masks"]
    assert list({p.name: p for p in ANALYZE.params}["backends"].type.choices) == [b for b in BACKENDS if b != "masks"]
    assert list(by_name["tasks"].type.choices) == list(TASKS)  # the backend's own task table
    assert set(MASKS_OPTION_NAMES) <= set(by_name) and "class_map" not in {p.name for p in BUILD.params}


@pytest.mark.parametrize("cmd, lead", [(ANALYZE, ["ct.nii.gz"]), (BUILD, ["cases/"])])
def test_same_arguments_give_the_same_request(cmd, lead):
    args = ["--backend", "unit", "--backend", "totalseg", "--weights", "w.pt", "--task", "total", "--task",
            "liver_segments", "--full", "--totalseg-home", "/ts", "--no-download", "--threshold", "0.25",
            "--device", "cpu"]
    r = CliRunner().invoke(cmd, lead + args)
    assert r.exit_code == 0, r.output
    got = SegmentRequest.model_validate_json(r.output)
    assert got == SegmentRequest.build(backends=["unit", "totalseg"], unit_weights="w.pt",
                                       tasks=["total", "liver_segments"], fast=False, totalseg_home="/ts",
                                       allow_download=False, existence_threshold=0.25, device="cpu")
    r = CliRunner().invoke(cmd, lead)
    assert r.exit_code == 0 and SegmentRequest.model_validate_json(r.output) == SegmentRequest.build()


def test_cli_refusals_name_the_option():
    r = CliRunner().invoke(ANALYZE, ["ct.nii.gz", "--backend", "unit"])
    assert r.exit_code == 2 and "--weights: backend 'unit' needs --weights" in r.output
    r = CliRunner().invoke(BUILD, ["cases/", "--threshold", "2"])
    assert r.exit_code == 2 and "--threshold: expected a probability in 0..1, found 2.0" in r.output
    r = CliRunner().invoke(BUILD, ["cases/", "--device", "gpu"])
    assert r.exit_code == 2 and "--device: expected auto, cpu, cuda, cuda:N or mps, found 'gpu'" in r.output
    r = CliRunner().invoke(SEGMENT, ["ct.nii.gz", "--backend", "masks"])
    assert r.exit_code == 2 and "--masks: backend 'masks' needs --masks PATH" in r.output
    r = CliRunner().invoke(ANALYZE, ["ct.nii.gz", "--task", "renal_arteries"])  # not a choice: click refuses it
    assert r.exit_code == 2 and "liver_lesions" in r.output
    r = CliRunner().invoke(SEGMENT, ["ct.nii.gz", "--backend", "masks", "--masks", "segs", "--class-map", "m.json"])
    assert r.exit_code == 0, r.output
    assert SegmentRequest.model_validate_json(r.output).backend_options("masks") == {"path": Path("segs"),
                                                                                     "class_map": Path("m.json")}
