"""Dataset builder: many CT cases -> one folder of outputs per case + dataset.parquet.

Typed API behind ``radagent dataset build`` (agent/dataset_cli.py)::

    build_dataset(source, out, BuildOptions(engine="local", workers=2), observer=None) -> BuildSummary

SOURCE is a folder of cases (AbdomenAtlas layout ``CASE/ct.nii.gz`` + ``CASE/segmentations/*.nii.gz``,
a DICOM series folder per case, or loose ``*.nii.gz`` CTs) or a manifest (``.csv`` / ``.parquet``)
with columns ``case_id``, ``ct``, optional ``masks``, ``class_map``, ``mask_label`` (what a single
mask file holds, as ``radagent analyze --mask-label``; part of the input hash), ``split`` (train /
val / test, patient-level: with a ``patient_id`` column one patient's cases share one split), and any
metadata columns (e.g. ``phase``), which are carried to the outputs as ``meta_<column>``. Relative
paths in a manifest are relative to the manifest's folder; dataset.parquet gives paths relative to
the source folder (or the manifest's folder) where inside it, and the provenance of every mask
(``mask_sources``: file, model task and version, synthetic).

Modules (one job each): ``sources`` (cases of a folder or manifest), ``hashing`` (input content
hashes), ``options`` (BuildOptions, CaseConfig, the settings document and its hash), ``case`` (one
case in a worker, through the case service agent.case), ``local_engine`` / ``ray_engine``,
``outputs`` (dataset.parquet, qa.parquet, the card), ``build`` (plan, run, record, finish).

Layout of OUT::

    cases/<case_id>/   findings.json, findings.md, key_images/*.png, report.md, report.json,
                       report.html, qa.json (with --qa), case.json (hashes, inputs, timings)
    dataset.parquet    one row per case of SOURCE (status done | failed | pending), rebuilt from
                       cases/ and errors.jsonl at the end of every run
    qa.parquet         with --qa: one row per question (case_id, qa_index, the generator's fields)
    followup.parquet   with manifest columns patient_id + time_point (a visit number or an ISO date): one row
                       per case compared with its patient's earlier cases (agent/dataset/followup.py); such a
                       case folder also holds comparison.json and its report has the COMPARISON section
    errors.jsonl       one line per failed case: case_id, stage, error_type, message, traceback
                       (unexpected errors only), input_hash, settings_hash, attempts
    dataset_card.md    counts, lesion statistics, exact versions and settings
    .hashes.json       content-hash cache: real path -> [size, mtime_ns, inode, ctime_ns, sha256]
    .lock              flock held while a build runs (a second build on the same OUT is refused)

Resumability and atomicity
- A case is *done* when ``cases/<id>/case.json`` records the current input hash (sha256 of the
  bytes of every input file: CT file or every file of a DICOM folder, every mask NIfTI, the class
  map, plus the manifest metadata and mask_label) and the current settings hash (radagent and findings-schema
  versions, measurement settings, report engine/model/style, key images, QA generator, the
  SegmentRequest of cases without masks). Hashing
  reads bytes, but each file once: digests are cached by (real path, size, mtime_ns). Done cases
  are skipped; failed cases (same hashes) are skipped unless ``retry_failed``.
- A case folder is written into a temporary sibling and renamed (agent.case.write): it exists
  complete or not at all. Killing the build (even SIGKILL)
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

  Cases without masks are segmented inside the prepare stage when the build has a SegmentRequest
  (``--segment``); on a cluster with GPUs each such task holds one GPU. Without one, they are
  recorded in errors.jsonl as ``SegmentationUnavailableError`` (stage ``segment``).
- A failed case records the stage it failed in (hash, load_ct, load_masks, segment, measure,
  key_images, llm, report, qa, write, or worker), set before each stage runs.

De-identification: outputs carry measurements, file paths and mask names only. The CT loader keeps
no DICOM patient identifiers (name, IDs, birth date, study/series dates, study/series UIDs); the one
UID kept is each lesion's key slice SOP Instance UID (``Lesion.key_slice.sop_instance_uid``), so a
radiologist can open that image (perception.findings.Settings.sop_instance_uids=False leaves it out).
Findings carry the CT path as given (``study.source``) and mask paths, and manifest metadata columns
are copied as given, so neither file names nor manifest columns may hold identifiers.
"""

from .build import BuildObserver, BuildSummary, build_dataset, read_errors
from .case import CaseOutcome, CaseTask, finish_case, run_case
from .errors import DatasetError, DatasetOutputError, SegmentationUnavailableError, WorkerCrashedError
from .hashing import HashCache, case_files, input_hash
from .options import CASE_JSON, CASES_DIR, DATASET_FILE, ERRORS_FILE, QA_FILE, STAGES, BuildOptions, CaseConfig
from .sources import CaseSpec, discover_cases

__all__ = ["BuildObserver", "BuildOptions", "BuildSummary", "CASE_JSON", "CASES_DIR", "CaseConfig", "CaseOutcome",
           "CaseSpec", "CaseTask", "DATASET_FILE", "DatasetError", "DatasetOutputError", "ERRORS_FILE", "HashCache", "QA_FILE", "STAGES",
           "SegmentationUnavailableError", "WorkerCrashedError", "build_dataset", "case_files", "discover_cases",
           "finish_case", "input_hash", "read_errors", "run_case"]
