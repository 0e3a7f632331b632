"""Lazy imports of the CLI (issue 17): starting `radagent` imports no subcommand's modules and none of the heavy
optional libraries; the NIfTI path of `radagent analyze` never imports pydicom, the DICOM path no requests; the
template report loads no HTTP client; `radagent --help` still lists every command with its own short help. The
import-time bound is a ratio to `python -c pass`, both measured here as CPU time of fresh processes (minimum of
several runs): a structural check that nothing heavy crept back into the start, not a timed test of a feature.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import click
import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from agent.cli import _LAZY, main
from tests.conftest import data_path

ROOT = Path(__file__).resolve().parents[1]
# top-level packages (and our modules) that `import agent.cli` must not load
FORBIDDEN_TOPS = {"pydicom", "httpx", "requests", "fastapi", "starlette", "torch", "openai", "nibabel", "scipy",
                  "numpy", "pylibjpeg", "openjpeg", "gdcm"}
FORBIDDEN_MODULES = {"reasoning.narrative", "agent.case", "agent.api", "perception.segment", "perception.dicom"} | {
    spec.split(":")[0] for spec, _ in _LAZY.values()}

_MODULES_AT_EXIT = ("import atexit, json, sys\n"
                    "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.stderr))\n")


def _modules_after(code: str, *argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run CODE in a fresh interpreter (cwd: the repository); the modules loaded when it exits."""
    proc = subprocess.run([sys.executable, "-c", _MODULES_AT_EXIT + code, *argv], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES=")]
    assert line, proc.stderr[-2000:]
    return proc, set(json.loads(line[-1][len("MODULES="):]))


def _heavy(modules: set[str]) -> set[str]:
    tops = {m.split(".")[0] for m in modules}
    return (tops & FORBIDDEN_TOPS) | {m for m in modules if m.startswith("langchain")} | (modules & FORBIDDEN_MODULES)


def test_import_agent_cli_loads_no_heavy_or_subcommand_module():
    proc, modules = _modules_after("import agent.cli")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "agent.cli" in modules and "click" in modules  # the probe saw the import
    assert _heavy(modules) == set()


def test_help_lists_every_command_without_importing_them():
    proc, modules = _modules_after("import sys; from agent.cli import main; main(['--help'])")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _heavy(modules) == set()
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(_LAZY) | {"report", "schema", "serve-llm"}


@pytest.mark.parametrize("name", sorted(_LAZY))
def test_static_short_help_is_the_commands_own(name):
    """The table `radagent --help` reads is the first paragraph of each command's help, so the listing is the one
    click would print from the loaded command, at any terminal width."""
    cmd = main.get_command(click.Context(main), name)
    assert cmd is not None and cmd.name == name
    first_paragraph = " ".join(click.Command(name, help=cmd.help).help.split("\n\n")[0].split())
    assert _LAZY[name][1] == first_paragraph
    for limit in (30, 45, 80, 300):
        assert click.Command(name, help=_LAZY[name][1]).get_short_help_str(limit) == cmd.get_short_help_str(limit)


def test_unknown_command_is_refused():
    res = CliRunner().invoke(main, ["analyse", "ct.nii.gz"])
    assert res.exit_code == 2 and "No such command 'analyse'" in res.output


def _tiny_case(root: Path) -> tuple[Path, Path, int]:
    """A 24x24x12 CT at 1.5 mm with a liver box of known voxel count."""
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    hu = np.full((24, 24, 12), -1000, np.int16)
    hu[2:22, 2:22, 1:11] = 40
    liver = np.zeros(hu.shape, np.uint8)
    liver[6:16, 5:17, 3:9] = 1
    hu[liver.astype(bool)] = 60
    (root / "masks").mkdir(parents=True)
    ct = root / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, affine), ct)
    nib.save(nib.Nifti1Image(liver, affine), root / "masks" / "liver.nii.gz")
    return ct, root / "masks", int(liver.sum())


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    """`radagent analyze` of the tiny case in a fresh process: (output folder, liver voxel count, modules loaded)."""
    root = tmp_path_factory.mktemp("tiny")
    ct, masks, n_liver = _tiny_case(root)
    proc, modules = _modules_after("import sys; from agent.cli import main; main(sys.argv[1:])",
                                   "analyze", str(ct), "--masks", str(masks), "-o", str(root / "out"), "--no-key-images")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "out", n_liver, modules


def test_analyze_nifti_never_imports_pydicom(analyzed):
    out, n_liver, modules = analyzed
    assert {m.split(".")[0] for m in modules} & {"pydicom", "requests", "httpx", "fastapi", "torch"} == set()
    assert "nibabel" in modules and "agent.analyze_cli" in modules
    assert not {"agent.vqa_cli", "agent.chat_cli", "agent.serve_cli", "reasoning.narrative"} & modules
    findings = json.loads((out / "findings.json").read_text())
    liver = [o for o in findings["organs"] if o["name"] == "liver"]
    assert len(liver) == 1 and liver[0]["voxel_count"] == n_liver
    assert liver[0]["volume_ml"] == pytest.approx(n_liver * 1.5 ** 3 / 1000, rel=1e-3)


def test_template_report_never_imports_httpx(analyzed, tmp_path):
    """The template report (no --llm) loads no HTTP client; the LLM path imports httpx itself
    (tests/test_report_llm.py drives it against a scripted server)."""
    out, _, _ = analyzed
    proc, modules = _modules_after("import sys; from agent.cli import main; main(sys.argv[1:])",
                                   "report", str(out / "findings.json"), "-o", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reasoning.narrative" in modules  # the path that drafts with or without an LLM
    assert {m.split(".")[0] for m in modules} & {"httpx", "requests", "openai", "nibabel", "pydicom"} == set()
    assert "liver" in (tmp_path / "rep" / "report.md").read_text().lower()


def test_pydicom_still_importable_after_nibabel_without_it():
    """nibabel loaded without pydicom parses no NIfTI DICOM extension (kept as raw bytes); pydicom itself stays
    importable for the DICOM path, and loads there without requests (used by pydicom only for its test files)."""
    code = ("from radagent.imports import import_without\n"
            "import_without('nibabel', 'pydicom')\n"
            "import sys, nibabel.nifti1 as n1\n"
            "assert n1.have_dicom is False and 'pydicom' not in sys.modules\n"
            "assert n1.extension_codes.handler[2] is n1.Nifti1Extension\n"
            "import perception.dicom\n"
            "import pydicom, pydicom.data.download as dl\n"
            "assert pydicom.Dataset().__class__.__name__ == 'Dataset' and dl.HAVE_REQUESTS is False\n"
            "import requests\n"  # blocked only while pydicom was imported
            "assert requests.get\n")
    proc, modules = _modules_after(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"pydicom", "requests", "nibabel"} <= modules


def test_import_without_is_a_no_op_once_loaded():
    """A library already imported keeps the behaviour it was first loaded with (nothing re-imported)."""
    code = ("import pydicom, nibabel\n"
            "from radagent.imports import import_without\n"
            "import_without('nibabel', 'pydicom')\n"
            "import sys, nibabel.nifti1 as n1\n"
            "assert n1.have_dicom is True and sys.modules['pydicom'] is pydicom\n")
    proc, _ = _modules_after(code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_dicom_analyze_loads_pydicom_without_requests(tmp_path):
    series, seg = data_path("totalseg", "example_ct_dicom"), data_path("totalseg", "example_seg_dicom.nii.gz")
    proc, modules = _modules_after("import sys; from agent.cli import main; main(sys.argv[1:])",
                                   "analyze", str(series), "--masks", str(seg), "-o", str(tmp_path / "out"),
                                   "--no-key-images")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pydicom" in modules and "perception.dicom" in modules
    assert {m.split(".")[0] for m in modules} & {"requests", "httpx", "fastapi", "torch"} == set()
    assert json.loads((tmp_path / "out" / "findings.json").read_text())["study"]["source_format"] == "dicom"


def _cpu_of(code: str) -> float:
    """CPU seconds (user + system) of a fresh `python -c CODE`, process start included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_import_agent_cli_cost_is_bounded_by_a_ratio_to_python_start():
    """Measured on the issue-17 machine (minima of 5): `python -c pass` 0.04-0.05 s, `import agent.cli` 0.09-0.14 s
    (ratio 1.9-2.6; 1.52 s, ratio ~30, before the lazy imports; numpy alone would add ~0.1 s). Bound: 5x."""
    bare = min(_cpu_of("pass") for _ in range(5))
    cli = min(_cpu_of("import agent.cli") for _ in range(5))
    assert cli < 5 * max(bare, 0.01), (cli, bare)
