"""What a build leaves beside the case folders: dataset.parquet (one row per case, read back from
the case folders only), qa.parquet, and the dataset card."""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from perception import __version__
from perception.findings import CORE_ORGANS, ORGAN_ORDER
from perception.schema import SCHEMA_VERSION, Findings

from .options import (CASE_JSON, CASES_DIR, DATASET_FILE, ERRORS_FILE, QA_FILE, STAGES, BuildOptions,
                      CaseConfig, State, generator_name)
from .sources import CaseSpec, relative_to_root, require_pyarrow

log = logging.getLogger("radagent")

CORE_ORGAN_COLUMNS = sorted(CORE_ORGANS, key=lambda n: (ORGAN_ORDER.index(n) if n in ORGAN_ORDER else 99, n))
TIMING_COLUMNS = [f"t_{s}_s" for s in STAGES] + ["t_total_s"]


def columns(pa, meta_keys: list[str]) -> list[tuple[str, Any]]:
    s, f, i, ls = pa.string(), pa.float64(), pa.int64(), pa.list_(pa.string())
    cols = [("case_id", s), ("status", s), ("input_hash", s), ("settings_hash", s), ("radagent_version", s),
            ("ct", s), ("masks", s), ("class_map", s), ("mask_label", s), ("split", s), ("mask_sources", ls),
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


def _model_version(backend: str) -> str | None:
    if backend == "totalseg":
        try:
            from perception.segment.totalseg import TOTALSEG_VERSION
        except ImportError:
            return None
        return f"TotalSegmentator {TOTALSEG_VERSION}"
    if backend == "unit":
        return f"radagent UniT {__version__}"
    return None


MODEL_BACKENDS = ("totalseg", "unit")


def mask_source(name: str, source: str, root: Path | None) -> str:
    """``name=kind:detail`` for one mask of findings.json: ``file:<path relative to the source root>[#label]``
    (the user's file), ``model:<backend>:<task>[/fast] (<model and version>)`` (a segmentation backend),
    ``synthetic:<detail>`` (a mask written by a synthesis step, source ``synthetic:...``)."""
    backend = source.split(":", 1)[0] if ":" in source else ""
    if backend == "synthetic":
        return f"{name}={source}"
    if backend in MODEL_BACKENDS:
        what = source.split("#", 1)[0]
        ver = _model_version(backend)
        return f"{name}=model:{what}" + (f" ({ver})" if ver else "")
    path, _, label = source.partition("#")
    return f"{name}=file:{relative_to_root(path, root)}" + (f"#{label}" if label else "")


def _base_row(spec: CaseSpec, status: str, key: str | None, settings_hash: str, root: Path | None = None) -> dict:
    row = {"case_id": spec.case_id, "status": status, "input_hash": key, "settings_hash": settings_hash,
           "radagent_version": __version__, "ct": relative_to_root(spec.ct, root),
           "masks": relative_to_root(spec.masks, root), "class_map": relative_to_root(spec.class_map, root),
           "mask_label": spec.mask_label, "split": spec.split}
    row.update({f"meta_{k}": v for k, v in spec.metadata.items()})
    if "phase" in spec.metadata:
        row["phase"], row["phase_source"] = spec.metadata["phase"], "manifest"
    return row


def case_row(spec: CaseSpec, folder: Path, root: Path | None = None) -> tuple[dict, list[dict]]:
    """The dataset row of a done case and its QA rows, read back from the case folder only (paths
    relative to the source ``root`` where inside it)."""
    rec = json.loads((folder / CASE_JSON).read_text())
    f = Findings.model_validate_json((folder / "findings.json").read_text())
    report = json.loads((folder / "report.json").read_text())
    row = _base_row(spec, "done", rec["input_hash"], rec["settings_hash"], root)
    row["mask_sources"] = [mask_source(m.name, m.source, root) for m in f.masks]
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


def dataset_rows(specs: list[CaseSpec], out: Path, state: State, settings_hash: str, root: Path | None = None
                 ) -> tuple[list[dict], list[dict]]:
    rows, qa_rows = [], []
    for spec in specs:
        status = state.status.get(spec.case_id, "pending")
        if status == "done":
            try:
                r, q = case_row(spec, out / CASES_DIR / spec.case_id, root)
                rows.append(r)
                qa_rows += q
                continue
            except (OSError, ValueError, KeyError) as e:  # a folder damaged by hand since it was written
                log.warning("%s: case folder unreadable (%s); listed as pending", spec.case_id, e)
                status = "pending"
        row = _base_row(spec, status, state.keys.get(spec.case_id), settings_hash, root)
        if status == "failed":
            err = state.errors.get(spec.case_id, {})
            row.update(error_stage=err.get("stage"), error_type=err.get("error_type"), error_message=err.get("message"))
        rows.append(row)
    return rows, qa_rows


def write_parquet(rows: list[dict], path: Path, columns: list[tuple[str, Any]] | None = None) -> None:
    pa = require_pyarrow()
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
    L += ["", "## Label provenance", "",
          "Column `mask_sources` lists every mask of a case as `name=kind:detail`: `file:<path>` (a mask file given "
          "with the case, `#<id>` for a label of a multilabel map), `model:<backend>:<task> (<model version>)` (a "
          "segmentation model's output), `synthetic:<detail>` (a synthesised mask). Paths (`ct`, `masks`, "
          "`class_map`, `mask_sources`) are relative to the source folder or the manifest's folder when inside it.", "",
          "| kind | masks | cases |", "|---|---|---|"]
    kinds: Counter = Counter()
    kind_cases: dict[str, set] = {}
    for r in done:
        for ms in r.get("mask_sources") or []:
            k = ms.split("=", 1)[1].split(":", 1)[0]
            kinds[k] += 1
            kind_cases.setdefault(k, set()).add(r["case_id"])
    L += [f"| {k} | {n} | {len(kind_cases[k])} |" for k, n in sorted(kinds.items())] or ["| - | 0 | 0 |"]
    splits = Counter(r.get("split") or "(none)" for r in rows)
    if any(r.get("split") for r in rows):
        L += ["", "## Splits", "", "Patient-level split from the manifest's `split` column (train / val / test; with a "
              "`patient_id` column, one patient's cases share one split).", "", "| split | cases | done |", "|---|---|---|"]
        L += [f"| {sp} | {n} | {sum(1 for r in done if (r.get('split') or '(none)') == sp)} |"
              for sp, n in sorted(splits.items())]
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
    timed_out = sum((r.get("report_fallback") or "").startswith("LLM timed out") for r in done)
    not_asked = sum((r.get("report_fallback") or "").startswith("LLM not asked") for r in done)
    if timed_out or not_asked:
        L += ["", f"The LLM server timed out on {timed_out} case(s)" + (
            f"; after {3} consecutive timeouts the build stopped sending to it: {not_asked} case(s) were not sent "
            "and use the template narrative" if not_asked else "") + " (column `report_fallback`)."]
    if opts.qa:
        L += ["", "## Questions", "", f"{len(qa_rows)} question-answer pairs in `{QA_FILE}` from `{generator_name(opts.qa_function())}`."]
    L += ["", "## Settings", "", f"settings hash `{cfg.settings_hash}` (a case is recomputed when it changes)", "",
          "```json", json.dumps(sdoc, indent=1, sort_keys=True), "```", "",
          "## Versions (of the last run)", "", "| component | version |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in versions(opts.engine).items()]
    L += [f"| engine | {opts.engine} |", "",
          "## De-identification", "",
          "Outputs hold measurements, mask names and input file paths only: no DICOM patient name, IDs, birth "
          "date, study/series dates or study/series UIDs (the CT loader keeps none; the key slice of each lesion keeps its SOP Instance UID). File paths and manifest metadata columns "
          "(`meta_*`) are copied as given: they must not contain identifiers.", "",
          "## Files", "",
          f"- `{DATASET_FILE}`: one row per case (status, inputs relative to the source, `mask_label`, `split`, "
          "`mask_sources`, key findings, organ volumes, report text, stage timings `t_*_s`)",
          f"- `cases/<case_id>/`: findings.json (schema {SCHEMA_VERSION}), findings.md, report.md/.json/.html, "
          "key_images/, case.json" + (", qa.json" if opts.qa else ""),
          f"- `{ERRORS_FILE}`: one line per failed case", ""]
    return "\n".join(L)
