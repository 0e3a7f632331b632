"""`radagent dataset build` (agent/dataset.py): 20 real-CT cases with synthetic lesions (one with a
truncated CT, one with a mask on another grid), built cleanly, killed with SIGKILL midway and
resumed, re-run (no-op), retried, with the Ray engine, from DICOM series for de-identification,
with an LLM narrative server and with a QA generator."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.dataset import CASE_JSON, BuildOptions, DatasetError, build_dataset, discover_cases
from eval.bench_dataset import corrupt_case, make_synthetic_cases, mismatch_case
from tests.conftest import REPO, data_path

import pyarrow as pa  # noqa: E402  (the test extra)
import pyarrow.parquet as pq  # noqa: E402

N_CASES = 20
BAD = {"case_0005": ("load_ct", "CTLoadError"), "case_0009": ("load_masks", "GeometryMismatchError")}


# ------------------------------------------------------------------------------------------------
# helpers


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.dataset_cli", "build", *args, "--no-progress"], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def table(out: Path) -> list[dict]:
    """dataset.parquet rows without the timing columns (which legitimately differ between runs)."""
    rows = pq.read_table(out / "dataset.parquet").to_pylist()
    return sorted(({k: v for k, v in r.items() if not k.startswith("t_")} for r in rows), key=lambda r: r["case_id"])


def errors(out: Path) -> dict[str, dict]:
    return {r["case_id"]: r for r in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


def done_folders(out: Path) -> list[Path]:
    return sorted(p for p in (out / "cases").iterdir() if not p.name.startswith("."))


def assert_complete(folder: Path) -> None:
    rec = json.loads((folder / CASE_JSON).read_text())
    for name in rec["files"]:
        assert (folder / name).is_file(), f"{folder.name}: {name} missing"


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = st.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(st.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Collect:
    def __init__(self) -> None:
        self.outcomes = []
        self.plan = None

    def planned(self, *a) -> None:
        self.plan = a

    def case_finished(self, o) -> None:
        self.outcomes.append(o)


def fake_generate_qa(findings) -> list[dict]:
    """Stands in for reasoning.vqa.generate_qa in these tests."""
    qa = [{"subtype": "lesion_count", "question": "How many lesions are there?", "answer": len(findings.lesions)}]
    qa += [{"subtype": "lesion_size", "question": f"What is the long axis of {les.id}?", "answer": les.long_axis_mm,
            "unit": "mm"} for les in findings.lesions]
    return qa


def crashing_generate_qa(findings) -> list[dict]:
    if "case_0003" in findings.study.source:
        os._exit(7)  # a worker dying mid-case (segfault, OOM kill)
    return fake_generate_qa(findings)


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    data_path("totalseg", "example_ct_sm.nii.gz")
    root = tmp_path_factory.mktemp("ds") / "src"
    cases = make_synthetic_cases(root, N_CASES, seed=0)
    corrupt_case(cases[5])
    mismatch_case(cases[9])
    return root


@pytest.fixture(scope="module")
def clean(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    r = cli(str(source), "-o", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    return out


# ------------------------------------------------------------------------------------------------
# tests


def test_clean_build_writes_every_output(clean, source):
    rows = table(clean)
    assert [r["case_id"] for r in rows] == [f"case_{i:04d}" for i in range(N_CASES)]
    assert {r["case_id"]: r["status"] for r in rows if r["status"] != "done"} == {c: "failed" for c in BAD}
    errs = errors(clean)
    assert {c: (e["stage"], e["error_type"]) for c, e in errs.items()} == BAD
    assert str(source / "case_0005" / "ct.nii.gz") in errs["case_0005"]["message"]
    assert "traceback" not in errs["case_0005"]  # InputErrors are expected errors: message only
    folders = done_folders(clean)
    assert [p.name for p in folders] == [r["case_id"] for r in rows if r["status"] == "done"]
    for folder, row in zip(folders, [r for r in rows if r["status"] == "done"]):
        assert_complete(folder)
        f = json.loads((folder / "findings.json").read_text())
        assert row["n_lesions"] == len(f["lesions"])
        assert {"findings.md", "report.md", "report.json", "report.html"} <= {p.name for p in folder.iterdir()}
        assert len(list((folder / "key_images").glob("*.png")) if f["lesions"] else []) == len(f["lesions"])
        assert row["report_md"] == (folder / "report.md").read_text() and row["report_engine"] == "template"
        if f["lesions"]:
            big = max(f["lesions"], key=lambda x: x["volume_ml"])
            assert (row["largest_lesion_organ"], row["largest_lesion_long_axis_mm"]) == (big["organ"], big["long_axis_mm"])
        liver = next(o for o in f["organs"] if o["name"] == "liver")
        assert (row["liver_status"], row["liver_volume_ml"]) == (liver["status"], liver["volume_ml"])
        assert row["phase"] == f["study"]["contrast_phase"]["phase"]
    assert sum(r["n_lesions"] or 0 for r in rows) > 10  # the generator made varied lesion sets
    raw = pq.read_table(clean / "dataset.parquet").to_pylist()
    assert all(r["t_load_ct_s"] and r["t_measure_s"] and r["t_total_s"] for r in raw if r["status"] == "done")
    card = (clean / "dataset_card.md").read_text()
    assert "| done | 18 |" in card and "| failed | 2 |" in card and "GeometryMismatchError" in card
    assert re.search(r"\| numpy \| \d+\.\d+", card) and "settings hash" in card and "min_lesion_volume_mm3" in card
    assert not [p for p in (clean / "cases").iterdir() if p.name.startswith(".")]


def test_sigkill_midway_then_resume_equals_a_clean_run(clean, source, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "agent.dataset_cli", "build", str(source), "-o", str(out), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = len(done_folders(out)) if (out / "cases").is_dir() else 0
        if n >= 3:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert n >= 3, "the build was too slow to reach 3 cases in 120 s"
    kids = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert kids, "the build ran no worker processes"
    t = time.monotonic() + 15  # workers notice the parent's death and exit (at most the case in flight ends)
    while any(alive(k) for k in kids) and time.monotonic() < t:
        time.sleep(0.05)
    assert not [k for k in kids if alive(k)]
    before = {p.name: (p / CASE_JSON).stat().st_mtime_ns for p in done_folders(out)}
    assert n <= len(before) <= n + 3, "orphaned workers went on after the kill"
    assert len(before) < N_CASES - len(BAD), "the kill must land midway"
    assert not (out / "dataset.parquet").exists()
    for p in done_folders(out):  # whatever the moment of the kill: no half-written case folder
        assert_complete(p)

    r = cli(str(source), "-o", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} already done" in r.stderr
    assert table(out) == table(clean)
    assert errors(out).keys() == BAD.keys()
    after = {p.name: (p / CASE_JSON).stat().st_mtime_ns for p in done_folders(out)}
    assert all(after[c] == m for c, m in before.items()), "cases finished before the kill were recomputed"
    assert not [p for p in (out / "cases").iterdir() if p.name.startswith(".")]


def test_rerun_is_a_noop(clean, source):
    stamps = {p.name: (p.stat().st_ino, (p / CASE_JSON).stat().st_mtime_ns) for p in done_folders(clean)}
    before = table(clean)
    r = cli(str(source.parent / "no_such_source"), "-o", str(clean))  # refused, nothing touched
    assert r.returncode == 2 and "source not found" in r.stderr
    r = cli(str(source), "-o", str(clean))
    assert r.returncode == 0, r.stderr
    assert "0 to process, 18 already done, 2 failed before" in r.stderr
    assert "this run processed 0" in r.stderr
    assert {p.name: (p.stat().st_ino, (p / CASE_JSON).stat().st_mtime_ns) for p in done_folders(clean)} == stamps
    assert table(clean) == before
    assert errors(clean).keys() == BAD.keys() and all(e["attempts"] == 1 for e in errors(clean).values())


def test_changed_inputs_rerun_and_retry_failed(clean, source, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    shutil.copytree(source, src)
    col = Collect()
    build_dataset(src, out, BuildOptions(workers=2), observer=col)
    assert col.plan[1] == N_CASES
    # repair the corrupt CT (regenerate it): its content hash changes, so it runs again without --retry-failed
    fresh = make_synthetic_cases(tmp_path / "regen", 6, seed=0)[5]
    shutil.copyfile(fresh / "ct.nii.gz", src / "case_0005" / "ct.nii.gz")
    # touching a file without changing its bytes does not make a done case run again
    os.utime(src / "case_0001" / "ct.nii.gz")
    col = Collect()
    s = build_dataset(src, out, BuildOptions(workers=2), observer=col)
    assert [o.case_id for o in col.outcomes] == ["case_0005"] and col.outcomes[0].status == "done"
    assert s.skipped_failed == 1 and errors(out).keys() == {"case_0009"}
    col = Collect()
    s = build_dataset(src, out, BuildOptions(workers=2, retry_failed=True), observer=col)
    assert [o.case_id for o in col.outcomes] == ["case_0009"]
    assert errors(out)["case_0009"]["attempts"] == 2 and s.failed == 1 and s.done == N_CASES - 1
    # a different setting changes the settings hash: every case is recomputed
    col = Collect()
    build_dataset(src, out, BuildOptions(workers=2, key_images=False), observer=col)
    assert col.plan[1] == N_CASES  # done and failed cases alike
    assert not list((out / "cases").glob("*/key_images"))


def test_local_and_ray_engines_agree(clean, source, tmp_path):
    out = tmp_path / "ray"
    r = cli(str(source), "-o", str(out), "--engine", "ray", "--workers", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    assert table(out) == table(clean)
    assert errors(out) == errors(clean)
    for case in ("case_0000", "case_0013"):
        for name in ("findings.json", "report.md", "report.html"):
            assert (out / "cases" / case / name).read_bytes() == (clean / "cases" / case / name).read_bytes()


def test_ray_engine_llm_stage(source, tmp_path):
    from tests.scripted_openai import ScriptedServer

    src = tmp_path / "src"
    for i in (0, 1, 2, 5):
        shutil.copytree(source / f"case_{i:04d}", src / f"case_{i:04d}")
    with ScriptedServer(echo_reference, hold_s=0.2) as srv:  # requests stay open: an overrun would show
        r = cli(str(src), "-o", str(tmp_path / "out"), "--engine", "ray", "--workers", "2", "--llm", srv.base_url,
                "--llm-concurrency", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {x["case_id"]: x for x in table(tmp_path / "out")}
    assert {c: (x["status"], x["report_engine"]) for c, x in rows.items()} == {
        "case_0000": ("done", "llm"), "case_0001": ("done", "llm"), "case_0002": ("done", "llm"),
        "case_0005": ("failed", None)}
    assert len(srv.requests) == 3 and srv.max_in_flight <= 2


def test_dicom_outputs_carry_no_patient_identifiers(tmp_path):
    import nibabel as nib
    import numpy as np
    import pydicom

    from eval.synthetic import ellipsoid
    from perception.io import load_ct

    hcc = data_path("hcc048_portal_venous")
    ts = data_path("totalseg", "example_ct_dicom")
    ts_seg = data_path("totalseg", "example_seg_dicom.nii.gz")
    # identifiers as the DICOM files hold them
    tags = ["PatientName", "PatientID", "PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
            "AccessionNumber", "InstitutionName", "ReferringPhysicianName", "StudyID", "StudyInstanceUID",
            "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"]
    secrets = set()
    for folder in (hcc, ts):
        for p in sorted(folder.iterdir()):
            if p.name.startswith("LICENSE"):
                continue
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            secrets |= {str(ds.get(t, "") or "").strip() for t in tags}
    secrets.discard("")
    assert {"Patient_01", "20010812", "20221208"} <= secrets

    # masks on the HCC_048 grid: a stand-in "liver" region and a lesion in it
    ct = load_ct(hcc)
    c = ct.affine[:3, :3] @ (np.array(ct.shape) / 2) + ct.affine[:3, 3]
    liver = ellipsoid(ct.shape, ct.affine, c + [-60.0, 0, 0], (70.0, 60.0, 30.0)) & (ct.hu > -100)
    lesion = ellipsoid(ct.shape, ct.affine, c + [-60.0, 0, 0], (12.0, 10.0, 8.0)) & liver
    masks = tmp_path / "manifest" / "hcc_masks"
    masks.mkdir(parents=True)
    for name, m in (("liver", liver), ("liver_lesion", lesion)):
        nib.save(nib.Nifti1Image(m.astype(np.uint8), ct.affine), str(masks / f"{name}.nii.gz"))
    manifest = tmp_path / "manifest" / "cases.csv"
    manifest.write_text("case_id,ct,masks,phase,site\n"
                        f"ts_dicom,{ts},{ts_seg},portal_venous,A\n"
                        f"hcc048,{hcc},hcc_masks,portal_venous,B\n"  # relative to the manifest
                        f"hcc048_nomask,{hcc},,,B\n")
    out = tmp_path / "out"
    r = cli(str(manifest), "-o", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    rows = {x["case_id"]: x for x in table(out)}
    assert rows["ts_dicom"]["status"] == rows["hcc048"]["status"] == "done"
    assert rows["hcc048"]["n_lesions"] == 1 and rows["ts_dicom"]["source_format"] == "dicom"
    assert rows["hcc048"]["meta_site"] == "B" and rows["hcc048"]["phase_source"] == "manifest"
    err = errors(out)["hcc048_nomask"]
    assert (err["stage"], err["error_type"]) == ("segment", "SegmentationUnavailableError")
    assert "no masks; segmentation backend not available" in err["message"]

    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 15
    for p in files:
        blob = p.read_bytes()
        if p.suffix == ".parquet":
            blob += json.dumps(pq.read_table(p).to_pylist(), default=str).encode()
        # deliberate (issue 10): a lesion's key slice names the image a radiologist opens, its SOP Instance UID
        # (an instance identifier) in `"sop_instance_uid"`; that field alone may hold one, every other place none
        blob = re.sub(rb'"sop_instance_uid": ?"[0-9.]*"', b"", blob)
        found = [s for s in secrets if s.encode() in blob]
        assert not found, f"{p.relative_to(out)} contains DICOM identifiers {found}"


def test_manifest_parquet_relative_paths_and_folder_discovery(source, tmp_path):
    rows = [{"case_id": "a1", "ct": "src/case_0000/ct.nii.gz", "masks": "src/case_0000/segmentations", "phase": "arterial"},
            {"case_id": "a2", "ct": "src/case_0001/ct.nii.gz", "masks": "src/case_0001", "phase": None}]
    shutil.copytree(source / "case_0000", tmp_path / "src" / "case_0000")
    shutil.copytree(source / "case_0001", tmp_path / "src" / "case_0001")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    specs = discover_cases(tmp_path / "m.parquet")
    assert [s.case_id for s in specs] == ["a1", "a2"] and specs[0].metadata == {"phase": "arterial"}
    assert specs[1].metadata == {} and Path(specs[0].ct).is_absolute() and Path(specs[0].ct).exists()
    s = build_dataset(tmp_path / "m.parquet", tmp_path / "out", BuildOptions(workers=1))
    assert (s.done, s.failed) == (2, 0)
    r = {x["case_id"]: x for x in table(tmp_path / "out")}
    assert (r["a1"]["phase"], r["a1"]["phase_source"], r["a1"]["meta_phase"]) == ("arterial", "manifest", "arterial")
    assert r["a2"]["phase_source"] == "estimated" and r["a2"]["meta_phase"] is None

    # folder source: case folders, a DICOM folder, loose NIfTI; hidden folders and other files ignored
    root = tmp_path / "folder"
    (root / "c1").mkdir(parents=True)
    shutil.copyfile(source / "case_0000" / "ct.nii.gz", root / "c1" / "ct.nii.gz")
    (root / "c1" / "segmentations").mkdir()
    (root / "dcm").mkdir()
    (root / "dcm" / "x.dcm").write_bytes(b"")
    shutil.copyfile(source / "case_0000" / "ct.nii.gz", root / "loose.nii.gz")
    (root / ".hidden").mkdir()
    (root / "README.txt").write_text("x")
    got = {s.case_id: s for s in discover_cases(root)}
    assert sorted(got) == ["c1", "dcm", "loose"]
    assert got["c1"].masks.endswith("segmentations") and got["dcm"].ct.endswith("dcm") and got["loose"].masks is None
    (root / "bad name").mkdir()
    with pytest.raises(DatasetError, match="cannot be case ids"):
        discover_cases(root)
    bad = tmp_path / "dup.csv"
    bad.write_text("case_id,ct\nx,a.nii.gz\nx,b.nii.gz\n")
    with pytest.raises(DatasetError, match="duplicates: x"):
        discover_cases(bad)
    bad.write_text("id,ct\nx,a.nii.gz\n")
    with pytest.raises(DatasetError, match="missing case_id"):
        discover_cases(bad)


def test_qa_hook(source, tmp_path):
    # the generator is a function (pickled by reference into the workers); anything else is refused
    with pytest.raises(DatasetError, match="expected a function"):
        BuildOptions(qa=True, qa_generator="reasoning.vqa:generate_qa")

    src = tmp_path / "src"
    for c in ("case_0000", "case_0001", "case_0002", "case_0005"):
        shutil.copytree(source / c, src / c)
    out = tmp_path / "out"
    s = build_dataset(src, out, BuildOptions(workers=2, qa=True, qa_generator=fake_generate_qa))
    assert (s.done, s.failed) == (3, 1)
    rows = {r["case_id"]: r for r in table(out)}
    qa = pq.read_table(out / "qa.parquet").to_pylist()
    for c in ("case_0000", "case_0001", "case_0002"):
        items = json.loads((out / "cases" / c / "qa.json").read_text())
        assert len(items) == rows[c]["n_qa"] == 1 + rows[c]["n_lesions"]
        assert [q["qa_index"] for q in qa if q["case_id"] == c] == list(range(len(items)))
    assert {q["answer"] for q in qa if q["subtype"] == "lesion_count"} == {str(rows[c]["n_lesions"]) for c in rows if rows[c]["status"] == "done"}
    # building again without --qa changes the settings: QA outputs go away with the recomputed cases
    build_dataset(src, out, BuildOptions(workers=2))
    assert not (out / "qa.parquet").exists() and not list(out.glob("cases/*/qa.json"))


def test_worker_crash_is_isolated_and_recorded(source, tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        shutil.copytree(source / f"case_{i:04d}", src / f"case_{i:04d}")
    shutil.rmtree(src / "case_0005")
    out = tmp_path / "out"
    s = build_dataset(src, out, BuildOptions(workers=2, qa=True, qa_generator=crashing_generate_qa))
    assert (s.done, s.failed) == (4, 1)
    e = errors(out)["case_0003"]
    assert (e["stage"], e["error_type"]) == ("worker", "WorkerCrashedError") and "alone" in e["message"]


def echo_reference(body, n):
    """A scripted model that rewrites nothing: it answers with the default arrangement of the facts."""
    from tests.scripted_openai import echo_default

    return echo_default(body, n)


def test_llm_narratives_are_batched_with_bounded_concurrency(source, tmp_path):
    from tests.scripted_openai import ScriptedServer

    src = tmp_path / "src"
    for i in range(6):
        shutil.copytree(source / f"case_{i:04d}", src / f"case_{i:04d}")
    with ScriptedServer(echo_reference, together=3) as srv:  # the first batch's 3 requests open at once
        s = build_dataset(src, tmp_path / "out", BuildOptions(workers=2, llm_url=srv.base_url, llm_concurrency=3))
    assert (s.done, s.failed) == (5, 1)
    rows = [r for r in table(tmp_path / "out") if r["status"] == "done"]
    assert {(r["report_engine"], r["report_model"], r["report_fallback"]) for r in rows} == {("llm", "scripted-model", None)}
    assert 2 <= srv.max_in_flight <= 3
    assert len(srv.requests) == 5
    card = (tmp_path / "out" / "dataset_card.md").read_text()
    assert '"model": "scripted-model"' in card
    with pytest.raises(DatasetError, match="could not list the served models"):
        build_dataset(src, tmp_path / "out2", BuildOptions(llm_url="http://127.0.0.1:9/v1"))


def test_stale_temporaries_are_removed_and_concurrent_builds_refused(source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(source / "case_0000", src / "case_0000")
    out = tmp_path / "out"
    (out / "cases" / ".case_0000.tmp-abc").mkdir(parents=True)
    (out / "cases" / ".case_0000.tmp-abc" / "findings.json").write_text("{half")
    (out / "errors.jsonl").write_text('{"case_id": "case_0000", "stage": "load_ct", "error_t')  # torn by a kill
    s = build_dataset(src, out, BuildOptions(workers=1))
    assert s.done == 1 and not (out / "cases" / ".case_0000.tmp-abc").exists()
    assert (out / "errors.jsonl").read_text() == ""
    with open(out / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(DatasetError, match="another `radagent dataset build` is running"):
            build_dataset(src, out, BuildOptions(workers=1))


def test_qa_pairs_from_the_real_generator(tmp_path):
    """--qa with reasoning.vqa.generate_qa: qa.json per case and qa.parquet, answers equal to vqa.answer."""
    import json as _json

    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from agent.cli import main
    from tests.cases import build_case

    src = tmp_path / "src"
    build_case(src / "case_a")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["dataset", "build", str(src), "-o", str(out), "--qa", "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    qa = _json.loads((out / "cases" / "case_a" / "qa.json").read_text())
    rows = qa if isinstance(qa, list) else qa.get("qa", qa.get("pairs", []))
    assert len(rows) >= 40
    t = pq.read_table(out / "qa.parquet").to_pylist()
    assert len(t) == len(rows) and {x["case_id"] for x in t} == {"case_a"}
    by_subtype = {x["subtype"] for x in t}
    assert {"lesion counting", "organ HU measurement", "largest lesion diameter"} <= by_subtype
