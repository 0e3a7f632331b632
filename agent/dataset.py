"""Dataset builder: many CT cases -> one folder of outputs per case + dataset.parquet (issue 6).

Typed API behind ``radagent dataset build`` (agent/dataset_cli.py)::

    build_dataset(source, out, BuildOptions(engine="local", workers=2), observer=None) -> BuildSummary

SOURCE is a folder of cases (AbdomenAtlas layout ``CASE/ct.nii.gz`` + ``CASE/segmentations/*.nii.gz``,
a DICOM series folder per case, or loose ``*.nii.gz`` CTs) or a manifest (``.csv`` / ``.parquet``)
with columns ``case_id``, ``ct``, optional ``masks``, ``class_map``, and any metadata columns (e.g.
``phase``), which are carried to the outputs as ``meta_<column>``. Relative paths in a manifest are
relative to the manifest's folder.

Layout of OUT::

    cases/<case_id>/   findings.json, findings.md, key_images/*.png, report.md, report.json,
                       report.html, qa.json (with --qa), case.json (hashes, inputs, timings)
    dataset.parquet    one row per case of SOURCE (status done | failed | pending), rebuilt from
                       cases/ and errors.jsonl at the end of every run
    qa.parquet         with --qa: one row per question (case_id, qa_index, the generator's fields)
    errors.jsonl       one line per failed case: case_id, stage, error_type, message, traceback
                       (unexpected errors only), input_hash, settings_hash, attempts
    dataset_card.md    counts, lesion statistics, exact versions and settings
    .hashes.json       content-hash cache: real path -> [size, mtime_ns, sha256]
    .lock              flock held while a build runs (a second build on the same OUT is refused)

Resumability and atomicity
- A case is *done* when ``cases/<id>/case.json`` records the current input hash (sha256 of the
  bytes of every input file: CT file or every file of a DICOM folder, every mask NIfTI, the class
  map, plus the manifest metadata) and the current settings hash (radagent and findings-schema
  versions, measurement settings, report engine/model/style, key images, QA generator). Hashing
  reads bytes, but each file once: digests are cached by (real path, size, mtime_ns). Done cases
  are skipped; failed cases (same hashes) are skipped unless ``retry_failed``.
- A case folder is written into a temporary sibling and renamed (agent.pipeline
  .write_outputs_atomically): it exists complete or not at all. Killing the build (even SIGKILL)
  loses at most the cases in flight; leftover temporary folders are removed by the next run.
- errors.jsonl is appended (one fsync'd line per failure) during the run and compacted at the end
  to the latest record of each case that is still failed; a torn last line is ignored on reading.
- dataset.parquet, qa.parquet and the card are rewritten atomically at the end of every run
  (also after Ctrl-C), from the case folders, so they always match them.

Engines
- ``local`` (default): a process pool (forkserver, heavy modules preloaded, each worker recycled
  after ``max_tasks_per_child`` cases), one case per task, at most ``2 x workers`` cases in flight,
  so memory is bounded by ``workers x`` the peak of one case. Workers exit when the parent dies.
  A worker crash (segfault, OOM kill) is retried alone to find the culprit, which is recorded as
  ``WorkerCrashedError``.
- ``ray``: a Ray Data pipeline ``from_items -> map(prepare: load, measure, key images; CPU tasks)
  -> map_batches(LLM actor: batched concurrent requests; only with an LLM) -> map(finish: report,
  QA, atomic write)``; the driver streams the results (progress, errors, hash cache). Every stage
  catches its exceptions, so a bad case never fails the pipeline. Both engines go through the same
  per-case functions, so they write identical case folders and dataset.parquet.
  On a cluster, OUT must be on a filesystem every node sees (NFS, Lustre) and radagent must be
  installed on every node (or shipped with ``runtime_env``)::

      import ray
      ray.init(address="auto")            # join the running cluster (``ray start --head`` first)
      build_dataset("manifest.parquet", "/shared/out", BuildOptions(engine="ray"))
      # CLI: radagent dataset build manifest.parquet -o /shared/out --engine ray --ray-address auto

  Segmentation of CTs without masks will be a GPU actor stage (``map_batches(..., num_gpus=1,
  compute=ActorPoolStrategy(size=n))``) once a segmentation backend exists; until then such cases
  are recorded in errors.jsonl as ``SegmentationUnavailableError`` (stage ``segment``).

De-identification: outputs carry measurements, file paths and mask names only. The CT loader keeps
no DICOM patient identifiers (name, IDs, birth date, study/series dates, UIDs); findings carry the
CT path as given (``study.source``) and mask paths, and manifest metadata columns are copied as
given, so neither file names nor manifest columns may hold identifiers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import csv
import fcntl
import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import os
import pickle
import platform
import re
import shutil
import signal
import statistics
import threading
import time
import traceback
from collections import Counter, deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from perception import __version__
from perception.errors import InputError, RadagentError
from perception.findings import CORE_ORGANS, ORGAN_ORDER, Settings
from perception.schema import SCHEMA_VERSION, Findings

log = logging.getLogger("radagent")

ENGINES = ("local", "ray")
STYLES = ("structured", "narrative")
LAYOUT_VERSION = 1
CASES_DIR = "cases"
CASE_JSON = "case.json"
ERRORS_FILE = "errors.jsonl"
DATASET_FILE = "dataset.parquet"
QA_FILE = "qa.parquet"
CARD_FILE = "dataset_card.md"
HASHES_FILE = ".hashes.json"
LOCK_FILE = ".lock"
DEFAULT_QA_GENERATOR = "reasoning.vqa:generate_qa"
ANALYZE_STAGES = ("load_ct", "load_masks", "measure", "key_images")  # order of agent.pipeline.analyze_case
STAGES = ("hash",) + ANALYZE_STAGES + ("segment", "llm", "report", "qa")  # timed stages recorded in case.json
CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CORE_ORGAN_COLUMNS = sorted(CORE_ORGANS, key=lambda n: (ORGAN_ORDER.index(n) if n in ORGAN_ORDER else 99, n))
# modules the forkserver imports once, so that recycled workers start in milliseconds
_PRELOAD = ["agent.dataset", "agent.pipeline", "perception.findings", "perception.keyimages", "perception.io",
            "perception.dicom", "templates.render", "reasoning.report"]


class DatasetError(InputError):
    """The source, manifest, options or output folder cannot be used (CLI exit code 2)."""


class SegmentationUnavailableError(InputError):
    """A case has no masks and no segmentation backend is available."""


class WorkerCrashedError(RadagentError):
    """The worker process died (crash or out-of-memory kill) while processing this case alone."""


# ------------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class CaseSpec:
    """One case of the source: where its CT and masks are, and its metadata (strings)."""

    case_id: str
    ct: str
    masks: str | None = None
    class_map: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.case_id, str) or not CASE_ID_RE.match(self.case_id):
            raise DatasetError(f"case id {self.case_id!r}: expected 1-128 characters from [A-Za-z0-9._-] starting "
                               "with a letter or digit (it names the case's output folder)")
        if not self.ct:
            raise DatasetError(f"case {self.case_id}: no CT path")


def _nifti_name(p: Path) -> bool:
    return p.name.lower().endswith((".nii", ".nii.gz"))


def _nifti_stem(p: Path) -> str:
    n = p.name
    return n[: -len(".nii.gz")] if n.lower().endswith(".nii.gz") else n[: -len(".nii")]


def discover_cases(source: str | Path, exclude: str | Path | None = None) -> list[CaseSpec]:
    """The cases of a source folder or manifest, sorted by case id; ids must be unique."""
    src = Path(source)
    if not src.exists():
        raise DatasetError(f"{src}: source not found (expected a folder of cases or a manifest .csv/.parquet)")
    if src.is_file():
        low = src.name.lower()
        if low.endswith(".csv"):
            specs = _manifest_specs(_read_csv(src), src)
        elif low.endswith((".parquet", ".pq")):
            specs = _manifest_specs(_read_parquet_rows(src), src)
        else:
            raise DatasetError(f"{src}: unsupported source file {src.suffix!r}; expected a folder of cases, "
                               "a manifest .csv or a manifest .parquet")
    else:
        specs = _folder_specs(src, Path(exclude) if exclude else None)
    dup = [k for k, n in Counter(s.case_id for s in specs).items() if n > 1]
    if dup:
        raise DatasetError(f"{src}: expected unique case ids, found duplicates: {', '.join(sorted(dup)[:10])}")
    if not specs:
        raise DatasetError(f"{src}: no cases found (expected CASE/ct.nii.gz [+ CASE/segmentations/], DICOM series "
                           "folders or *.nii.gz files, or manifest rows)")
    return sorted(specs, key=lambda s: s.case_id)


def _folder_specs(src: Path, exclude: Path | None) -> list[CaseSpec]:
    specs, bad = [], []
    excl = exclude.resolve() if exclude is not None and exclude.exists() else None
    for entry in sorted(src.iterdir()):
        if entry.name.startswith(".") or (excl is not None and entry.resolve() == excl):
            continue
        if entry.is_dir():
            case_id = entry.name
            ct = next((entry / n for n in ("ct.nii.gz", "ct.nii") if (entry / n).exists()), entry)  # else: DICOM folder
            seg = entry / "segmentations"
            masks = str(seg.absolute()) if seg.is_dir() else None
        elif entry.is_file() and _nifti_name(entry):
            case_id, ct, masks = _nifti_stem(entry), entry, None
        else:
            continue
        if not CASE_ID_RE.match(case_id):
            bad.append(case_id)
            continue
        specs.append(CaseSpec(case_id, str(ct.absolute()), masks))
    if bad:
        raise DatasetError(f"{src}: {len(bad)} case folder name(s) cannot be case ids (expected [A-Za-z0-9._-], "
                           f"starting with a letter or digit): {', '.join(map(repr, bad[:10]))}")
    return specs


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read the manifest CSV ({type(e).__name__}: {e})") from e


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        raise DatasetError("the dataset builder writes Parquet with pyarrow, which is not installed: "
                           "pip install 'pyarrow>=15' (or pip install 'radagent[scale]')") from e
    return pyarrow


def _read_parquet_rows(path: Path) -> list[dict[str, Any]]:
    pa = _pyarrow()
    try:
        return pa.parquet.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{path}: cannot read the manifest Parquet ({type(e).__name__}: {e})") from e


def _cell(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip()
    return s or None


def _manifest_specs(rows: list[dict[str, Any]], path: Path) -> list[CaseSpec]:
    cols = list(rows[0].keys()) if rows else []
    missing = [c for c in ("case_id", "ct") if c not in cols]
    if missing:
        raise DatasetError(f"{path}: manifest needs columns case_id and ct (optional: masks, class_map, metadata "
                           f"such as phase); missing {', '.join(missing)}; found {', '.join(map(str, cols)) or 'no rows'}")
    base = path.parent

    def where(v: str | None) -> str | None:
        if v is None:
            return None
        p = Path(v).expanduser()
        return str((p if p.is_absolute() else base / p).absolute())

    specs, problems = [], []
    for i, row in enumerate(rows, start=2 if path.name.lower().endswith(".csv") else 1):
        try:
            cid, ct = _cell(row.get("case_id")), _cell(row.get("ct"))
            if cid is None or ct is None:
                raise DatasetError("empty case_id or ct")
            meta = {str(k): c for k, v in row.items() if k not in ("case_id", "ct", "masks", "class_map")
                    and (c := _cell(v)) is not None}
            specs.append(CaseSpec(cid, where(ct), where(_cell(row.get("masks"))), where(_cell(row.get("class_map"))), meta))
        except DatasetError as e:
            problems.append(f"row {i}: {e}")
    if problems:
        raise DatasetError(f"{path}: {len(problems)} unusable manifest row(s):\n  " + "\n  ".join(problems[:20]))
    return specs


# ------------------------------------------------------------------------------------------------
# content hashes


class HashCache:
    """sha256 of file bytes (160 bits kept), cached by (real path, size, mtime_ns) in OUT/.hashes.json."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.new: dict[str, list] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self.entries = {k: v for k, v in data.get("files", {}).items() if isinstance(v, list) and len(v) == 3}
            except (OSError, ValueError, AttributeError):
                log.warning("%s: unreadable hash cache; hashes will be recomputed", path)

    def digest(self, p: Path) -> str:
        key = os.path.realpath(p)
        st = os.stat(key)
        with self._lock:
            e = self.entries.get(key)
        if e and e[0] == st.st_size and e[1] == st.st_mtime_ns:
            return e[2]
        with open(key, "rb") as f:
            d = hashlib.file_digest(f, "sha256").hexdigest()[:40]  # sha256: hardware-accelerated on x86-64
        with self._lock:
            self.entries[key] = self.new[key] = [st.st_size, st.st_mtime_ns, d]
        return d

    def merge(self, entries: dict[str, list]) -> None:
        with self._lock:
            self.entries.update(entries)

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            data = json.dumps({"version": 1, "files": self.entries}, sort_keys=True)
        _atomic_write(self.path, data.encode())


def case_files(spec: CaseSpec) -> list[tuple[str, Path]]:
    """(role, path) of every file the case's outputs depend on, in a fixed order. Missing paths are
    listed as is (hashing marks them missing; loading reports them properly)."""
    out: list[tuple[str, Path]] = []
    ct = Path(spec.ct)
    if ct.is_dir():
        out += [(f"ct/{f.relative_to(ct).as_posix()}", f) for f in sorted(ct.rglob("*")) if f.is_file()]
    else:
        out.append(("ct", ct))
    if spec.masks:
        m = Path(spec.masks)
        if m.is_dir():
            d = m / "segmentations" if (m / "segmentations").is_dir() else m
            out += [(f"masks/{f.name}", f) for f in sorted(d.iterdir()) if f.is_file() and _nifti_name(f)]
        else:
            out.append(("masks", m))
    if spec.class_map:
        out.append(("class_map", Path(spec.class_map)))
    return out


def input_hash(spec: CaseSpec, cache: HashCache) -> str:
    h = hashlib.sha256()
    for role, p in case_files(spec):
        try:
            d = cache.digest(p)
        except FileNotFoundError:
            d = "missing"
        h.update(f"{role}\0{d}\n".encode())
    h.update(json.dumps(spec.metadata, sort_keys=True).encode())
    return h.hexdigest()[:40]


# ------------------------------------------------------------------------------------------------
# options, settings fingerprint


@dataclass(frozen=True)
class BuildOptions:
    engine: str = "local"
    workers: int | None = None  # local: default os.cpu_count(); ray: default all CPUs of the cluster
    llm_url: str | None = None  # OpenAI-compatible server for the narrative; template narrative without it
    llm_model: str | None = None  # default: the first model the server lists
    llm_concurrency: int = 8  # concurrent LLM requests (one batch)
    llm_api_key: str | None = None
    qa: bool = False
    qa_generator: str = DEFAULT_QA_GENERATOR  # "module:function", function(findings) -> list[dict]
    retry_failed: bool = False
    key_images: bool = True
    style: str = "structured"
    settings: Settings = field(default_factory=Settings)
    max_tasks_per_child: int = 20
    ray_address: str | None = None  # None: start a local Ray; "auto": join the running cluster
    segment: tuple[str, ...] = ()  # backends for cases without masks (perception.segment); empty: such cases fail
    segment_options: dict | None = None  # per-backend options for perception.segment.segment_ct
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DatasetError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise DatasetError(f"workers {self.workers!r}: expected an integer >= 1")
        if self.llm_concurrency < 1:
            raise DatasetError(f"llm_concurrency {self.llm_concurrency!r}: expected an integer >= 1")
        if self.max_tasks_per_child < 1:
            raise DatasetError(f"max_tasks_per_child {self.max_tasks_per_child!r}: expected an integer >= 1")
        if self.style not in STYLES:
            raise DatasetError(f"style {self.style!r}: expected one of {', '.join(STYLES)}")
        if ":" not in self.qa_generator:
            raise DatasetError(f"qa_generator {self.qa_generator!r}: expected 'module:function'")


@dataclass(frozen=True)
class CaseConfig:
    """What a worker needs to process a case (picklable)."""

    out: str
    settings: Settings
    key_images: bool
    style: str
    qa_generator: str | None
    llm: bool
    settings_hash: str
    segment: tuple[str, ...] = ()
    segment_options: dict | None = None
    device: str = "auto"


def settings_document(opts: BuildOptions, llm_model: str | None) -> dict:
    """Everything besides the inputs that decides a case's outputs (hashed into settings_hash)."""
    return {
        "layout_version": LAYOUT_VERSION,
        "radagent_version": __version__,
        "findings_schema_version": SCHEMA_VERSION,
        "measurement": asdict(opts.settings),
        "key_images": opts.key_images,
        "report": {"engine": "llm" if opts.llm_url else "template", "style": opts.style, "model": llm_model,
                   "max_attempts": 3 if opts.llm_url else None},
        "qa": opts.qa_generator if opts.qa else None,
        **({"segment": {"backends": list(opts.segment), "options": json.loads(json.dumps(opts.segment_options or {}, default=str))}}
           if opts.segment else {}),
    }


def fingerprint(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def qa_function(spec: str) -> Callable[[Findings], list[dict]]:
    """Import ``module:function`` lazily; a clear DatasetError when it does not exist (yet)."""
    mod_name, _, fn_name = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            raise DatasetError(f"--qa needs {mod_name}.{fn_name}(findings) -> list[dict] (VQA question generation), "
                               f"but module {mod_name} does not exist in this installation") from e
        raise
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        have = sorted(n for n, v in vars(mod).items() if not n.startswith("_") and callable(v) and not isinstance(v, type)
                      and getattr(v, "__module__", None) == mod.__name__)
        raise DatasetError(f"--qa needs {mod_name}.{fn_name}(findings) -> list[dict], but {mod_name} has no "
                           f"function {fn_name!r} (it has: {', '.join(have[:12]) or 'none'})")
    return fn


# ------------------------------------------------------------------------------------------------
# per-case work (runs in worker processes / Ray tasks)


@dataclass
class CaseTask:
    spec: CaseSpec
    input_hash: str | None = None  # known when the parent had to hash the case to plan it


@dataclass
class CaseOutcome:
    case_id: str
    status: str  # done | failed | prepared (analysis done, narrative pending)
    input_hash: str | None = None
    stage: str | None = None
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time of the process on this case (robust to other load on the machine)
    file_hashes: dict[str, list] = field(default_factory=dict)
    spec: CaseSpec | None = None
    findings: Findings | None = None  # carried only while status == prepared
    files: dict[str, bytes] | None = None
    draft: Any = None


def _failure(o: CaseOutcome, stage: str, e: BaseException) -> CaseOutcome:
    o.status, o.stage, o.error_type = "failed", stage, type(e).__name__
    o.message = str(e) or repr(e)
    if not isinstance(e, InputError):
        frames = traceback.extract_tb(e.__traceback__)[-4:]
        o.traceback = "\n".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}: {f.line}" for f in frames)
    o.findings = o.files = o.draft = None
    return o


def run_case(task: CaseTask, cfg: CaseConfig, finish: bool = True) -> CaseOutcome:
    """Hash, load, measure, key images; then (finish=True) report, QA and the atomic write.
    Never raises for a bad case: the outcome says what failed, where."""
    from agent.pipeline import Timings, analyze_case

    _exit_if_orphaned()  # a queued case of a killed build is not started
    cpu0 = time.process_time()
    spec = task.spec
    o = CaseOutcome(spec.case_id, "prepared", task.input_hash, spec=spec)
    stage = "hash"
    try:
        t = time.perf_counter()
        if o.input_hash is None:
            cache = HashCache()
            o.input_hash = input_hash(spec, cache)
            o.file_hashes = cache.new
        o.timings["hash"] = time.perf_counter() - t
        tm = Timings()
        try:
            findings, files = analyze_case(spec.ct, spec.masks, spec.class_map, cfg.settings, tm,
                                           key_images=cfg.key_images, backends=list(cfg.segment) or None,
                                           segment_options=cfg.segment_options, device=cfg.device)
        finally:
            o.timings.update(tm.seconds)
            stages = ANALYZE_STAGES if spec.masks else tuple("segment" if x == "load_masks" else x for x in ANALYZE_STAGES)
            stage = next((s for s in stages if s not in tm.seconds), "key_images")
        o.findings, o.files = findings, files
    except Exception as e:  # noqa: BLE001 - a bad case is recorded, the build goes on
        return _failure(o, stage, e)
    finally:
        o.cpu_seconds += time.process_time() - cpu0
    return finish_case(o, cfg) if finish else o


def finish_case(o: CaseOutcome, cfg: CaseConfig) -> CaseOutcome:
    """Report (the LLM draft in o.draft, else the template), QA, case.json, atomic write."""
    if o.status != "prepared":
        return o
    from agent.pipeline import write_outputs_atomically
    from reasoning.report import template_draft
    from templates.render import render_findings_md, render_report

    cpu0 = time.process_time()
    stage = "report"
    try:
        f, files = o.findings, dict(o.files or {})
        t = time.perf_counter()
        draft = o.draft if o.draft is not None else template_draft(f, cfg.style)
        if o.draft is not None and getattr(draft, "seconds", None) is not None:
            o.timings["llm"] = float(draft.seconds)
        images = {les.id: files[les.key_image] for les in f.lesions if les.key_image and les.key_image in files}
        files.update(render_report(f, draft, cfg.style, images))
        files["findings.json"] = f.to_json() + "\n"
        files["findings.md"] = render_findings_md(f)
        t = _lap(o.timings, "report", t)
        if cfg.qa_generator:
            stage = "qa"
            qa = qa_function(cfg.qa_generator)(f)
            if not isinstance(qa, list) or not all(isinstance(q, dict) for q in qa):
                raise TypeError(f"{cfg.qa_generator} returned {type(qa).__name__}; expected list[dict]")
            files["qa.json"] = json.dumps(qa, indent=1, ensure_ascii=False, default=str) + "\n"
            t = _lap(o.timings, "qa", t)
        stage = "write"
        spec = o.spec
        record = {
            "case_id": o.case_id, "status": "done", "layout_version": LAYOUT_VERSION,
            "input_hash": o.input_hash, "settings_hash": cfg.settings_hash, "radagent_version": __version__,
            "inputs": {"ct": spec.ct, "masks": spec.masks, "class_map": spec.class_map},
            "metadata": spec.metadata,
            "timings_s": {k: round(v, 6) for k, v in o.timings.items()},
            "files": sorted(files) + [CASE_JSON],
        }
        files[CASE_JSON] = json.dumps(record, indent=1) + "\n"
        folder = write_outputs_atomically(Path(cfg.out) / CASES_DIR / o.case_id, files, force=True)
        os.chmod(folder, 0o777 & ~_umask())  # the temporary folder was created 0700 (tempfile.mkdtemp)
        _lap(o.timings, "write", t)
    except Exception as e:  # noqa: BLE001
        return _failure(o, stage, e)
    finally:
        o.cpu_seconds += time.process_time() - cpu0
    o.status, o.findings, o.files, o.draft = "done", None, None, None
    return o


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def _lap(timings: dict[str, float], stage: str, t0: float) -> float:
    t = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + (t - t0)
    return t


def draft_batch(findings: list[Findings], url: str, model: str | None, concurrency: int, style: str,
                api_key: str | None = None) -> list:
    """LLM narratives for a batch of cases through bounded concurrent requests (template fallback
    per case, inside reasoning.narrative.llm_draft)."""
    from reasoning.client import LLMClient
    from reasoning.narrative import llm_drafts

    return asyncio.run(llm_drafts(findings, LLMClient(url, model, api_key), concurrency=concurrency, style=style))


def _draft_and_finish(batch: list[CaseOutcome], cfg: CaseConfig, opts: BuildOptions, model: str | None) -> list[CaseOutcome]:
    try:
        drafts = draft_batch([o.findings for o in batch], opts.llm_url, model, opts.llm_concurrency, opts.style,
                             opts.llm_api_key)
    except Exception as e:  # noqa: BLE001
        return [_failure(o, "llm", e) for o in batch]
    out = []
    for o, d in zip(batch, drafts):
        o.draft = d
        out.append(finish_case(o, cfg))
    return out


# ------------------------------------------------------------------------------------------------
# the build


@dataclass
class BuildSummary:
    out: Path
    engine: str
    total: int = 0
    done: int = 0
    failed: int = 0
    pending: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    ran: int = 0
    ran_done: int = 0
    ran_failed: int = 0
    seconds: float = 0.0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def cases_per_hour(self) -> float | None:
        return self.ran / self.seconds * 3600.0 if self.ran and self.seconds > 0 else None


class BuildObserver(Protocol):
    def planned(self, total: int, to_run: int, skipped_done: int, skipped_failed: int) -> None: ...

    def case_finished(self, outcome: CaseOutcome) -> None: ...


@dataclass
class _State:
    status: dict[str, str] = field(default_factory=dict)  # case_id -> done | failed | pending
    keys: dict[str, str | None] = field(default_factory=dict)
    errors: dict[str, dict] = field(default_factory=dict)  # latest record per case (from file + this run)


def read_errors(path: Path) -> dict[str, dict]:
    """Latest error record per case id; unreadable lines (a line torn by a kill) are skipped."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
                out[str(rec["case_id"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return out


def _read_case_record(folder: Path) -> dict | None:
    try:
        rec = json.loads((folder / CASE_JSON).read_text())
        return rec if isinstance(rec, dict) and rec.get("status") == "done" else None
    except (OSError, ValueError):
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(out: Path):
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise DatasetError(f"{out}: another `radagent dataset build` is running on this output folder "
                               f"(lock {out / LOCK_FILE} is held)") from e
        yield
    finally:
        os.close(fd)


def _clean_stale(out: Path) -> None:
    """Temporary folders/files left by a killed run (never a complete case)."""
    cases = out / CASES_DIR
    for d in (cases.iterdir() if cases.is_dir() else []):
        if d.name.startswith(".") and (".tmp-" in d.name or ".old-" in d.name):
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
    for f in out.iterdir():
        if f.name.startswith(".") and ".tmp-" in f.name:
            f.unlink(missing_ok=True)


def _resolve_llm_model(opts: BuildOptions) -> str:
    """The served model name (part of the settings hash); fails early when the server is unreachable,
    so that a whole build does not silently fall back to template narratives."""
    import httpx

    from reasoning.client import LLMClient, LLMError

    async def go() -> str:
        async with httpx.AsyncClient(timeout=30.0) as http:
            return await LLMClient(opts.llm_url, opts.llm_model, opts.llm_api_key).resolve_model(http)

    if opts.llm_model:
        return opts.llm_model
    try:
        return asyncio.run(go())
    except LLMError as e:
        raise DatasetError(f"--llm {opts.llm_url}: {e}") from e


def build_dataset(source: str | Path, out: str | Path, options: BuildOptions | None = None,
                  observer: BuildObserver | None = None) -> BuildSummary:
    """Build (or resume) the dataset of SOURCE into OUT. See the module docstring."""
    opts = options or BuildOptions()
    out = Path(out)
    _pyarrow()
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: output path exists and is not a folder")
    src = Path(source)
    if src.is_dir() and out.exists() and src.resolve() == out.resolve():
        raise DatasetError(f"{out}: the output folder must differ from the source folder")
    specs = discover_cases(src, exclude=out)
    if opts.qa:
        qa_function(opts.qa_generator)  # fail before any work when the generator is missing
    model = _resolve_llm_model(opts) if opts.llm_url else None
    sdoc = settings_document(opts, model)
    cfg = CaseConfig(str(out.absolute()), opts.settings, opts.key_images, opts.style,
                     opts.qa_generator if opts.qa else None, bool(opts.llm_url), fingerprint(sdoc),
                     tuple(opts.segment), opts.segment_options, opts.device)
    out.mkdir(parents=True, exist_ok=True)
    (out / CASES_DIR).mkdir(exist_ok=True)
    t0 = time.perf_counter()
    summary = BuildSummary(out=out, engine=opts.engine, total=len(specs))
    with _locked(out):
        _clean_stale(out)
        cache = HashCache(out / HASHES_FILE)
        state = _State(errors=read_errors(out / ERRORS_FILE))
        to_run, to_fail = _plan(specs, out, cfg, cache, state, opts, summary)
        if observer:
            observer.planned(len(specs), len(to_run) + len(to_fail), summary.skipped_done, summary.skipped_failed)
        sink = _Recorder(out, cfg, cache, state, summary, observer)
        try:
            for spec in to_fail:
                o = CaseOutcome(spec.case_id, "failed", state.keys.get(spec.case_id), stage="segment",
                                error_type=SegmentationUnavailableError.__name__, spec=spec,
                                message=f"{spec.ct}: no masks; segmentation backend not available (give masks for "
                                        "this case: a manifest 'masks' column or a CASE/segmentations/ folder)")
                sink(o)
            if to_run:
                if opts.engine == "ray":
                    _run_ray(to_run, cfg, opts, model, sink)
                else:
                    _run_local(to_run, cfg, opts, model, sink)
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            summary.seconds = time.perf_counter() - t0
            _finalize(out, specs, state, cfg, opts, sdoc, cache, summary)
    return summary


def _plan(specs, out, cfg, cache, state, opts, summary) -> tuple[list[CaseTask], list[CaseSpec]]:
    records = {s.case_id: _read_case_record(out / CASES_DIR / s.case_id) for s in specs}
    need = [s for s in specs if records[s.case_id] or s.case_id in state.errors or not s.masks]

    def key(s: CaseSpec) -> str | None:
        try:
            return input_hash(s, cache)
        except OSError as e:
            log.warning("%s: cannot hash its inputs (%s)", s.case_id, e)
            return None

    with cf.ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (opts.workers or os.cpu_count() or 2)))) as tp:
        for s, k in zip(need, tp.map(key, need)):
            state.keys[s.case_id] = k
    to_run, to_fail = [], []
    for s in specs:
        cid, rec, err = s.case_id, records[s.case_id], state.errors.get(s.case_id)
        k = state.keys.get(cid)
        if rec and k and rec.get("input_hash") == k and rec.get("settings_hash") == cfg.settings_hash:
            state.status[cid] = "done"
            summary.skipped_done += 1
        elif (err and err.get("input_hash") == k and err.get("settings_hash") == cfg.settings_hash
              and not opts.retry_failed):
            state.status[cid] = "failed"
            summary.skipped_failed += 1
        else:
            state.status[cid] = "pending"
            if not s.masks and not opts.segment:
                to_fail.append(s)
            else:
                to_run.append(CaseTask(s, k))
    return to_run, to_fail


class _Recorder:
    """Parent-side bookkeeping of each finished case: errors.jsonl, hash cache, counts, observer."""

    def __init__(self, out, cfg, cache, state, summary, observer) -> None:
        self.out, self.cfg, self.cache, self.state, self.summary, self.observer = out, cfg, cache, state, summary, observer
        self._last_save = time.monotonic()
        self._n = 0

    def __call__(self, o: CaseOutcome) -> None:
        st, cid = self.state, o.case_id
        if o.input_hash is not None:
            st.keys[cid] = o.input_hash
        if o.file_hashes:
            self.cache.merge(o.file_hashes)
        self.summary.ran += 1
        if o.status == "done":
            st.status[cid] = "done"
            st.errors.pop(cid, None)
            self.summary.ran_done += 1
        else:
            prev = st.errors.get(cid)
            rec = {"case_id": cid, "stage": o.stage, "error_type": o.error_type, "message": o.message}
            if o.traceback:
                rec["traceback"] = o.traceback
            rec.update(input_hash=st.keys.get(cid), settings_hash=self.cfg.settings_hash,
                       attempts=int(prev.get("attempts", 1)) + 1 if prev else 1)
            with open(self.out / ERRORS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
                f.flush()
                os.fsync(f.fileno())
            st.errors[cid] = rec
            st.status[cid] = "failed"
            self.summary.ran_failed += 1
            stale = self.out / CASES_DIR / cid
            if stale.exists():  # outputs of older inputs/settings: the case folder must mean "done now"
                tomb = stale.with_name(f".{cid}.old-{os.getpid()}")
                os.rename(stale, tomb)
                shutil.rmtree(tomb, ignore_errors=True)
        self._n += 1
        if self._n % 50 == 0 or time.monotonic() - self._last_save > 30:
            self.cache.save()
            self._last_save = time.monotonic()
        if self.observer:
            self.observer.case_finished(o)


# ------------------------------------------------------------------------------------------------
# local engine


_PARENT_PID: int | None = None  # set in local-engine workers


def _exit_if_orphaned() -> None:
    if _PARENT_PID is None:
        return
    try:
        os.kill(_PARENT_PID, 0)
    except ProcessLookupError:
        os._exit(3)  # the build was killed: do not outlive it
    except PermissionError:
        pass


def _worker_init(parent_pid: int) -> None:
    global _PARENT_PID
    _PARENT_PID = parent_pid
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle

    def watch() -> None:
        while True:
            time.sleep(0.2)
            _exit_if_orphaned()

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class _LLMStage:
    """Prepared cases wait here; batches of llm_concurrency go to one thread that runs them as
    concurrent requests (reasoning.narrative.llm_drafts), then renders and writes them."""

    def __init__(self, cfg: CaseConfig, opts: BuildOptions, model: str | None) -> None:
        self.cfg, self.opts, self.model = cfg, opts, model
        self.buf: list[CaseOutcome] = []
        self.fut: cf.Future | None = None
        self.ex = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")

    def backlog(self) -> int:
        return len(self.buf) + (self.opts.llm_concurrency if self.fut else 0)

    def flush(self, force: bool) -> None:
        if self.fut is None and self.buf and (force or len(self.buf) >= self.opts.llm_concurrency):
            batch, self.buf = self.buf[: self.opts.llm_concurrency], self.buf[self.opts.llm_concurrency:]
            self.fut = self.ex.submit(_draft_and_finish, batch, self.cfg, self.opts, self.model)


def _run_local(tasks: list[CaseTask], cfg: CaseConfig, opts: BuildOptions, model: str | None,
               record: Callable[[CaseOutcome], None]) -> None:
    workers = opts.workers or os.cpu_count() or 1
    llm = _LLMStage(cfg, opts, model) if cfg.llm else None
    try:
        suspects = _pool_pass(tasks, cfg, opts, workers, 2 * workers, llm, record)
        if suspects:
            log.warning("a worker died; retrying the %d case(s) it may have held one at a time", len(suspects))
        for t in suspects:  # alone in a fresh pool: a crash now is this case's
            for t2 in _pool_pass([t], cfg, opts, 1, 1, llm, record):
                o = CaseOutcome(t2.spec.case_id, "failed", t2.input_hash, spec=t2.spec)
                record(_failure(o, "worker", WorkerCrashedError(
                    f"{t2.spec.ct}: the worker process died while processing this case alone "
                    "(crash or out-of-memory kill)")))
    finally:
        if llm:
            llm.ex.shutdown(wait=True, cancel_futures=True)


def _pool_pass(tasks, cfg, opts, workers, window, llm: _LLMStage | None, record) -> list[CaseTask]:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    pending, inflight, crashed = deque(tasks), {}, []
    ex: cf.ProcessPoolExecutor | None = None
    try:
        while pending or inflight or (llm and (llm.buf or llm.fut)):
            if ex is None and pending:
                ex = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),),
                                            max_tasks_per_child=opts.max_tasks_per_child)
            while pending and len(inflight) < window and (llm is None or llm.backlog() < 2 * opts.llm_concurrency):
                t = pending.popleft()
                inflight[ex.submit(run_case, t, cfg, llm is None)] = t
            if llm:
                llm.flush(force=not pending and not inflight)
            waitset = set(inflight) | ({llm.fut} if llm and llm.fut else set())
            if not waitset:
                continue
            done, _ = cf.wait(waitset, timeout=5.0, return_when=cf.FIRST_COMPLETED)
            broken = False
            for fut in done:
                if llm and fut is llm.fut:
                    llm.fut = None
                    for o in fut.result():
                        record(o)
                    continue
                t = inflight.pop(fut)
                try:
                    o = fut.result()
                except BrokenProcessPool:
                    crashed.append(t)
                    broken = True
                    continue
                except Exception as e:  # noqa: BLE001 - e.g. an outcome that cannot be pickled
                    o = _failure(CaseOutcome(t.spec.case_id, "failed", t.input_hash, spec=t.spec), "worker", e)
                if o.status == "prepared":
                    llm.buf.append(o)
                else:
                    record(o)
            if broken:
                crashed += list(inflight.values())
                inflight.clear()
                ex.shutdown(wait=False, cancel_futures=True)
                ex = None
    finally:
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
    return crashed


# ------------------------------------------------------------------------------------------------
# Ray engine


def _ray_prepare(row: dict, cfg: CaseConfig, finish: bool) -> dict:
    task = pickle.loads(row["task"])
    return {"outcome": pickle.dumps(run_case(task, cfg, finish))}


def _ray_finish(row: dict, cfg: CaseConfig) -> dict:
    return {"outcome": pickle.dumps(finish_case(pickle.loads(row["outcome"]), cfg))}


class RayLLMStage:
    """Ray Data actor: one batch of cases -> LLM drafts through bounded concurrent requests."""

    def __init__(self, url: str, model: str | None, concurrency: int, style: str, api_key: str | None = None) -> None:
        self.url, self.model, self.concurrency, self.style, self.api_key = url, model, concurrency, style, api_key

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        outs = [pickle.loads(b) for b in batch["outcome"]]
        todo = [o for o in outs if o.status == "prepared"]
        if todo:
            try:
                drafts = draft_batch([o.findings for o in todo], self.url, self.model, self.concurrency, self.style,
                                     self.api_key)
                for o, d in zip(todo, drafts):
                    o.draft = d
            except Exception as e:  # noqa: BLE001
                for o in todo:
                    _failure(o, "llm", e)
        return {"outcome": np.array([pickle.dumps(o) for o in outs], dtype=object)}


def _run_ray(tasks: list[CaseTask], cfg: CaseConfig, opts: BuildOptions, model: str | None,
             record: Callable[[CaseOutcome], None]) -> None:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise DatasetError("--engine ray needs Ray Data: pip install 'ray[data]>=2.30' (or 'radagent[scale]')") from e
    for name in ("ray", "ray.data"):  # Ray Data logs every execution plan at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    started = False
    if not ray.is_initialized():
        if opts.ray_address:
            ray.init(address=opts.ray_address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=opts.workers or os.cpu_count(), include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
        started = True
    try:
        dctx = ray.data.DataContext.get_current()
        dctx.enable_progress_bars = False
        dctx.enable_operator_progress_bars = False
        compute = ray.data.TaskPoolStrategy(size=opts.workers) if opts.workers else None
        ds = ray.data.from_items([{"task": pickle.dumps(t)} for t in tasks], override_num_blocks=len(tasks))
        # cases without masks are segmented inside this stage: with --segment on a cluster that has
        # GPUs, each such task holds one GPU (TotalSegmentator / UniT load their weights per case)
        gpu = cfg.segment and cfg.device != "cpu" and float(ray.cluster_resources().get("GPU", 0)) > 0
        ds = ds.map(_ray_prepare, fn_kwargs={"cfg": cfg, "finish": not cfg.llm}, num_cpus=1, compute=compute,
                    **({"num_gpus": 1} if gpu else {}))
        if cfg.llm:
            ds = ds.map_batches(RayLLMStage, batch_size=opts.llm_concurrency, num_cpus=0,
                                compute=ray.data.ActorPoolStrategy(size=1),
                                fn_constructor_kwargs={"url": opts.llm_url, "model": model,
                                                       "concurrency": opts.llm_concurrency, "style": opts.style,
                                                       "api_key": opts.llm_api_key})
            ds = ds.map(_ray_finish, fn_kwargs={"cfg": cfg}, num_cpus=1, compute=compute)
        try:
            for row in ds.iter_rows():
                record(pickle.loads(row["outcome"]))
        except (RadagentError, KeyboardInterrupt):
            raise
        except Exception as e:  # the pipeline itself failed (cluster lost, ...): finished cases are kept
            raise DatasetError(f"the Ray pipeline stopped ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                               "finished cases are kept: run the same command again to resume") from e
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------------
# dataset.parquet, qa.parquet, errors.jsonl compaction, dataset card


TIMING_COLUMNS = [f"t_{s}_s" for s in STAGES] + ["t_total_s"]


def _columns(pa, meta_keys: list[str]) -> list[tuple[str, Any]]:
    s, f, i, ls = pa.string(), pa.float64(), pa.int64(), pa.list_(pa.string())
    cols = [("case_id", s), ("status", s), ("input_hash", s), ("settings_hash", s), ("radagent_version", s),
            ("ct", s), ("masks", s), ("class_map", s),
            ("error_stage", s), ("error_type", s), ("error_message", s),
            ("source_format", s), ("shape", pa.list_(i)), ("spacing_mm", pa.list_(f)), ("slice_thickness_mm", f),
            ("orientation", s), ("phase", s), ("phase_source", s), ("phase_estimated", s), ("aorta_hu", f),
            ("portal_vein_hu", f),
            ("n_lesions", i), ("n_recist_measurable", i), ("dropped_components", i), ("total_lesion_volume_ml", f),
            ("lesion_organs", ls),
            ("largest_lesion_id", s), ("largest_lesion_organ", s), ("largest_lesion_kind", s),
            ("largest_lesion_long_axis_mm", f), ("largest_lesion_short_axis_mm", f),
            ("largest_lesion_max_diameter_3d_mm", f), ("largest_lesion_volume_ml", f), ("largest_lesion_mean_hu", f),
            ("largest_lesion_attenuation", s), ("largest_lesion_segments", ls), ("lesions_json", s)]
    for organ in CORE_ORGAN_COLUMNS:
        cols += [(f"{organ}_status", s), (f"{organ}_volume_ml", f), (f"{organ}_mean_hu", f)]
    cols += [("positive_flags", ls), ("n_organs", i), ("n_warnings", i), ("warnings", ls),
             ("report_engine", s), ("report_model", s), ("report_attempts", i), ("report_fallback", s),
             ("report_md", s), ("impression", s), ("n_qa", i)]
    cols += [(c, f) for c in TIMING_COLUMNS]
    cols += [(f"meta_{k}", s) for k in meta_keys]
    return cols


def _base_row(spec: CaseSpec, status: str, key: str | None, settings_hash: str) -> dict:
    row = {"case_id": spec.case_id, "status": status, "input_hash": key, "settings_hash": settings_hash,
           "radagent_version": __version__, "ct": spec.ct, "masks": spec.masks, "class_map": spec.class_map}
    row.update({f"meta_{k}": v for k, v in spec.metadata.items()})
    if "phase" in spec.metadata:
        row["phase"], row["phase_source"] = spec.metadata["phase"], "manifest"
    return row


def case_row(spec: CaseSpec, folder: Path) -> tuple[dict, list[dict]]:
    """The dataset row of a done case and its QA rows, read back from the case folder only."""
    rec = json.loads((folder / CASE_JSON).read_text())
    f = Findings.model_validate_json((folder / "findings.json").read_text())
    report = json.loads((folder / "report.json").read_text())
    row = _base_row(spec, "done", rec["input_hash"], rec["settings_hash"])
    st = f.study
    row.update(source_format=st.source_format, shape=list(st.shape), spacing_mm=[round(v, 6) for v in st.spacing_mm],
               slice_thickness_mm=st.slice_thickness_mm, orientation=st.orientation,
               phase_estimated=st.contrast_phase.phase, aorta_hu=st.contrast_phase.aorta_hu,
               portal_vein_hu=st.contrast_phase.portal_vein_hu)
    if "phase" not in row:
        row["phase"], row["phase_source"] = st.contrast_phase.phase, st.contrast_phase.source
    les = f.lesions
    row.update(n_lesions=len(les), n_recist_measurable=sum(x.recist_measurable for x in les),
               dropped_components=f.dropped_components, total_lesion_volume_ml=round(sum(x.volume_ml for x in les), 6),
               lesion_organs=[x.organ or "" for x in les])
    if les:
        big = max(les, key=lambda x: (x.volume_ml, -les.index(x)))
        row.update(largest_lesion_id=big.id, largest_lesion_organ=big.organ, largest_lesion_kind=big.kind,
                   largest_lesion_long_axis_mm=big.long_axis_mm, largest_lesion_short_axis_mm=big.short_axis_mm,
                   largest_lesion_max_diameter_3d_mm=big.max_diameter_3d_mm, largest_lesion_volume_ml=big.volume_ml,
                   largest_lesion_mean_hu=big.mean_hu,
                   largest_lesion_attenuation=big.attenuation.value if big.attenuation else None,
                   largest_lesion_segments=list(big.segments))
    row["lesions_json"] = json.dumps([{"id": x.id, "organ": x.organ, "kind": x.kind, "long_axis_mm": x.long_axis_mm,
                                       "short_axis_mm": x.short_axis_mm, "volume_ml": x.volume_ml,
                                       "mean_hu": x.mean_hu, "segments": x.segments,
                                       "recist_measurable": x.recist_measurable} for x in les])
    for organ in CORE_ORGAN_COLUMNS:
        o = f.organ(organ)
        row[f"{organ}_status"] = o.status.value if o else None
        row[f"{organ}_volume_ml"] = o.volume_ml if o else None
        row[f"{organ}_mean_hu"] = o.mean_hu if o else None
    row.update(positive_flags=[f"{o.name}:{fl.name}" for o in f.organs for fl in o.flags if fl.status == "positive"],
               n_organs=len(f.organs), n_warnings=len(st.warnings), warnings=list(st.warnings))
    row.update(report_engine=report.get("engine"), report_model=report.get("model"),
               report_attempts=report.get("attempts"), report_fallback=report.get("fallback_reason"),
               report_md=(folder / "report.md").read_text(),
               impression=" ".join(s["text"] for s in report.get("sentences", []) if s.get("section") == "impression"))
    qa_rows: list[dict] = []
    if (folder / "qa.json").exists():
        qa = json.loads((folder / "qa.json").read_text())
        row["n_qa"] = len(qa)
        for i, q in enumerate(qa):
            qa_rows.append({"case_id": spec.case_id, "qa_index": i,
                            **{str(k): v if isinstance(v, str) or v is None else json.dumps(v, sort_keys=True)
                               for k, v in q.items() if k not in ("case_id", "qa_index")}})
    timings = rec.get("timings_s", {})
    for s_ in STAGES:
        row[f"t_{s_}_s"] = timings.get(s_)
    row["t_total_s"] = round(sum(v for k, v in timings.items() if k != "write"), 6)
    return row, qa_rows


def dataset_rows(specs: list[CaseSpec], out: Path, state: _State, settings_hash: str) -> tuple[list[dict], list[dict]]:
    rows, qa_rows = [], []
    for spec in specs:
        status = state.status.get(spec.case_id, "pending")
        if status == "done":
            try:
                r, q = case_row(spec, out / CASES_DIR / spec.case_id)
                rows.append(r)
                qa_rows += q
                continue
            except (OSError, ValueError, KeyError) as e:  # a folder damaged by hand since it was written
                log.warning("%s: case folder unreadable (%s); listed as pending", spec.case_id, e)
                status = "pending"
        row = _base_row(spec, status, state.keys.get(spec.case_id), settings_hash)
        if status == "failed":
            err = state.errors.get(spec.case_id, {})
            row.update(error_stage=err.get("stage"), error_type=err.get("error_type"), error_message=err.get("message"))
        rows.append(row)
    return rows, qa_rows


def write_parquet(rows: list[dict], path: Path, columns: list[tuple[str, Any]] | None = None) -> None:
    pa = _pyarrow()
    if columns is None:  # qa.parquet: the generator decides the fields; all stored as strings
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        columns = [(k, pa.int64() if k == "qa_index" else pa.string()) for k in (keys or ["case_id", "qa_index"])]
    schema = pa.schema([pa.field(n, t) for n, t in columns])
    table = pa.Table.from_pylist([{n: r.get(n) for n, _ in columns} for r in rows], schema=schema)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pa.parquet.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _finalize(out: Path, specs, state: _State, cfg: CaseConfig, opts: BuildOptions, sdoc: dict, cache: HashCache,
              summary: BuildSummary) -> None:
    cache.save()
    failed = {s.case_id for s in specs if state.status.get(s.case_id) == "failed"}
    lines = [json.dumps(state.errors[c]) + "\n" for c in sorted(failed) if c in state.errors]
    _atomic_write(out / ERRORS_FILE, "".join(lines).encode())
    rows, qa_rows = dataset_rows(specs, out, state, cfg.settings_hash)
    meta_keys = sorted({k for s in specs for k in s.metadata})
    write_parquet(rows, out / DATASET_FILE, _columns(_pyarrow(), meta_keys))
    if opts.qa:
        write_parquet(qa_rows, out / QA_FILE)
    elif (out / QA_FILE).exists():
        (out / QA_FILE).unlink()  # a QA table of an older build would not match the case folders
    counts = Counter(r["status"] for r in rows)
    summary.done, summary.failed, summary.pending = counts["done"], counts["failed"], counts["pending"]
    summary.errors_by_type = dict(Counter(r["error_type"] for r in rows if r["status"] == "failed"))
    _atomic_write(out / CARD_FILE, dataset_card(rows, qa_rows, sdoc, cfg, opts, out).encode())


def versions(engine: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"radagent": __version__, "findings schema": SCHEMA_VERSION, "python": platform.python_version(),
           "platform": platform.platform()}
    pkgs = ["numpy", "scipy", "nibabel", "pydicom", "pydantic", "connected-components-3d", "pillow", "jinja2",
            "pyarrow", "httpx"] + (["ray"] if engine == "ray" else [])
    for p in pkgs:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def _q(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{med:.1f} [{q1:.1f}-{q3:.1f}]"


def dataset_card(rows: list[dict], qa_rows: list[dict], sdoc: dict, cfg: CaseConfig, opts: BuildOptions,
                 out: Path) -> str:
    done = [r for r in rows if r["status"] == "done"]
    counts = Counter(r["status"] for r in rows)
    lesions = [les for r in done for les in json.loads(r["lesions_json"])]
    L = ["# Dataset card", "",
         f"Built with `radagent dataset build` (radagent {__version__}, findings schema {SCHEMA_VERSION}). "
         "Measurements follow radagent's DESIGN.md / README 'Measurement definitions'; every row of "
         f"`{DATASET_FILE}` links to its case folder `cases/<case_id>/`.", "",
         "## Cases", "", "| status | cases |", "|---|---|"]
    L += [f"| {s} | {counts.get(s, 0)} |" for s in ("done", "failed", "pending")] + [f"| total | {len(rows)} |", ""]
    errs = Counter((r.get("error_stage"), r.get("error_type")) for r in rows if r["status"] == "failed")
    if errs:
        L += ["Failures (details in `errors.jsonl`):", "", "| stage | error type | cases |", "|---|---|---|"]
        L += [f"| {st} | {et} | {n} |" for (st, et), n in sorted(errs.items(), key=lambda kv: (-kv[1], str(kv[0])))]
        L.append("")
    L += ["## Lesions", "",
          f"{len(lesions)} lesions in {sum(1 for r in done if r['n_lesions'])} of {len(done)} cases; "
          f"{sum(1 for x in lesions if x['recist_measurable'])} RECIST-measurable (long axis >= 10 mm).", "",
          "| organ | lesions | long axis mm, median [IQR] | volume mL, median [IQR] |", "|---|---|---|---|"]
    by_organ: dict[str, list[dict]] = {}
    for x in lesions:
        by_organ.setdefault(x["organ"] or "(no organ)", []).append(x)
    for organ, xs in sorted(by_organ.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        L.append(f"| {organ} | {len(xs)} | {_q([x['long_axis_mm'] for x in xs])} | {_q([x['volume_ml'] for x in xs])} |")
    L += ["", "## Contrast phase", "", "| phase | source | cases |", "|---|---|---|"]
    L += [f"| {p} | {s} | {n} |" for (p, s), n in sorted(Counter((r.get("phase"), r.get("phase_source")) for r in done).items(),
                                                          key=lambda kv: -kv[1])]
    L += ["", "## Core organs", "", "| organ | " + " | ".join(("measured", "truncated_by_fov", "absent", "not present")) + " |",
          "|---|---|---|---|---|"]
    for organ in CORE_ORGAN_COLUMNS:
        c = Counter(r.get(f"{organ}_status") or "not present" for r in done)
        L.append(f"| {organ} | {c['measured']} | {c['truncated_by_fov']} | {c['absent']} | {c['not present']} |")
    eng = Counter((r.get("report_engine"), bool(r.get("report_fallback"))) for r in done)
    L += ["", "## Reports", ""]
    L += [f"- {e} narrative{' (LLM fell back to the template)' if fb else ''}: {n} cases" for (e, fb), n in sorted(eng.items(), key=str)]
    if opts.qa:
        L += ["", "## Questions", "", f"{len(qa_rows)} question-answer pairs in `{QA_FILE}` from `{opts.qa_generator}`."]
    L += ["", "## Settings", "", f"settings hash `{cfg.settings_hash}` (a case is recomputed when it changes)", "",
          "```json", json.dumps(sdoc, indent=1, sort_keys=True), "```", "",
          "## Versions (of the last run)", "", "| component | version |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in versions(opts.engine).items()]
    L += [f"| engine | {opts.engine} |", "",
          "## De-identification", "",
          "Outputs hold measurements, mask names and input file paths only: no DICOM patient name, IDs, birth "
          "date, study/series dates or UIDs (the CT loader keeps none). File paths and manifest metadata columns "
          "(`meta_*`) are copied as given: they must not contain identifiers.", "",
          "## Files", "",
          f"- `{DATASET_FILE}`: one row per case (status, key findings, organ volumes, report text, stage timings `t_*_s`)",
          f"- `cases/<case_id>/`: findings.json (schema {SCHEMA_VERSION}), findings.md, report.md/.json/.html, "
          "key_images/, case.json" + (", qa.json" if opts.qa else ""),
          f"- `{ERRORS_FILE}`: one line per failed case", ""]
    return "\n".join(L)
