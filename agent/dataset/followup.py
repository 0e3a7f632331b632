"""Follow-up in a dataset build: a manifest with ``patient_id`` and ``time_point`` columns has each patient's
cases compared in time order (agent.case.compare, as ``radagent compare``): every case after a patient's first
done case is compared with all of that patient's earlier done cases (the priors, oldest first; several priors
give the nadir), and its folder gets ``comparison.json`` and, when it has a report, the report again with the
COMPARISON section (reasoning.comparison) and the key images of each tracked lesion side by side.
``followup.parquet`` has one row per compared case (patient, time point, priors, state counts, RECIST response,
or the error that stopped it).

``time_point``: an integer (visit number) or an ISO date (``2024-03-01``; then the dates are the study dates
and give volume doubling times), one kind per patient, unique per patient; ``time_point`` needs
``patient_id``. Manifests without ``time_point`` build as before (``patient_id`` alone only ties the split).

Resumable like the cases: a comparison whose studies' findings.json SHA-256 are those on disk now (same priors,
same order) is kept; one whose inputs changed is made again. A failed comparison (e.g. a CT moved since) is a
row with status ``failed`` and the message; it does not fail the build.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

from .errors import DatasetError
from .options import CASES_DIR
from .sources import CaseSpec

FOLLOWUP_FILE = "followup.parquet"
_INT = re.compile(r"^[0-9]+$")


def time_key(spec: CaseSpec) -> tuple[str, object] | None:
    """('int', n) or ('date', date) of a case's time_point, None without one; DatasetError when unreadable."""
    tp = spec.metadata.get("time_point")
    if tp is None:
        return None
    if _INT.match(tp):
        return ("int", int(tp))
    try:
        return ("date", date.fromisoformat(tp))
    except ValueError:
        raise DatasetError(f"case {spec.case_id}: time_point {tp!r}: expected a visit number (0, 1, 2, ...) or an ISO "
                           "date (2024-03-01)") from None


def patients(specs: list[CaseSpec], where: str | Path = "manifest") -> dict[str, list[CaseSpec]]:
    """Each patient's cases in time order (patients with a time_point column only); DatasetError naming the cases
    when a time point lacks a patient, repeats within a patient, or mixes numbers and dates."""
    out: dict[str, list[tuple[tuple, CaseSpec]]] = {}
    problems = []
    for s in specs:
        try:
            k = time_key(s)
        except DatasetError as e:
            problems.append(str(e))
            continue
        if k is None:
            continue
        pid = s.metadata.get("patient_id")
        if pid is None:
            problems.append(f"case {s.case_id}: time_point {s.metadata['time_point']!r} without a patient_id")
            continue
        out.setdefault(pid, []).append((k, s))
    for pid, items in out.items():
        kinds = {k[0] for k, _ in items}
        if len(kinds) > 1:
            problems.append(f"patient {pid!r}: time points mix visit numbers and dates "
                            f"({', '.join(s.metadata['time_point'] for _, s in items)})")
            continue
        seen: dict[object, str] = {}
        for k, s in items:
            if k[1] in seen:
                problems.append(f"patient {pid!r}: time point {s.metadata['time_point']!r} of case {s.case_id} repeats "
                                f"case {seen[k[1]]}")
            seen[k[1]] = s.case_id
    if problems:
        raise DatasetError(f"{where}: {len(problems)} problem(s) with the follow-up columns patient_id/time_point:\n  "
                           + "\n  ".join(problems[:20]))
    return {pid: [s for _, s in sorted(items, key=lambda x: x[0][1])] for pid, items in sorted(out.items())}


def _sha(p: Path) -> str | None:
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        return None


def _current(folder: Path, prior_folders: list[Path]) -> bool:
    """The comparison.json in ``folder`` was made from these priors and the findings on disk now."""
    try:
        c = json.loads((folder / "comparison.json").read_text())
        shas = [s["findings_sha256"] for s in c["studies"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return shas == [_sha(f / "findings.json") for f in [*prior_folders, folder]]


def compare_patients(out: Path, specs: list[CaseSpec], status: dict[str, str], where: str | Path = "manifest"
                     ) -> list[dict]:
    """Compare each patient's done cases in time order (see the module docstring); the followup.parquet rows."""
    from agent import case as case_service
    from agent.files import add_files_atomically
    from radagent.errors import RadagentError

    rows = []
    for pid, cases in patients(specs, where).items():
        done = [s for s in cases if status.get(s.case_id) == "done"]
        for i, cur in enumerate(done[1:], start=1):
            priors = done[:i]
            folder = out / CASES_DIR / cur.case_id
            prior_folders = [out / CASES_DIR / s.case_id for s in priors]
            row = {"patient_id": pid, "case_id": cur.case_id, "time_point": cur.metadata["time_point"],
                   "priors": [s.case_id for s in priors], "skipped_priors": [s.case_id for s in cases[:cases.index(cur)]
                                                                         if status.get(s.case_id) != "done"],
                   "status": "done", "error": None, "overall_response": None, "n_persisting": None, "n_new": None,
                   "n_disappeared": None, "n_not_assessable": None, "registrations_refused": None}
            try:
                if _current(folder, prior_folders):
                    from reasoning.comparison import load

                    c = load(folder)
                else:
                    dates = [s.metadata["time_point"] if time_key(s)[0] == "date" else None for s in [*priors, cur]]
                    c = case_service.compare(prior_folders, folder, study_dates=dates)
                    files: dict[str, str | bytes] = {"comparison.json": c.to_json() + "\n"}
                    draft = _draft(folder)
                    if draft is not None:  # the case's own report (template or LLM), now with the COMPARISON section
                        rep = case_service.report(case_service.load(folder), None, draft.style, draft=draft, comparison=c)
                        files.update(rep.files)
                    add_files_atomically(folder, files)
            except (RadagentError, OSError, ValueError) as e:
                rows.append({**row, "status": "failed", "error": f"{type(e).__name__}: {e}"[:2000]})
                continue
            states = [t.state for t in c.lesions]
            rows.append({**row, "overall_response": c.recist.overall_response if c.recist else None,
                         "n_persisting": states.count("persisting"), "n_new": states.count("new"),
                         "n_disappeared": states.count("disappeared"), "n_not_assessable": states.count("not_assessable"),
                         "registrations_refused": sum(g.status == "refused" for g in c.registrations)})
    return rows


def _draft(folder: Path):
    """The case's ReportDraft (report.json without a comparison section), None when it has no report."""
    from reasoning.comparison import report_draft

    try:
        text = (folder / "report.json").read_text()
    except OSError:
        return None
    return report_draft(text)


def write_followup(rows: list[dict], path: Path) -> None:
    """followup.parquet (atomically), or no file when nothing was compared."""
    from .outputs import write_parquet
    from .sources import require_pyarrow

    pa = require_pyarrow()
    text, ints, lists = pa.string(), pa.int64(), pa.list_(pa.string())
    columns = [("patient_id", text), ("case_id", text), ("time_point", text), ("priors", lists), ("skipped_priors", lists),
               ("status", text), ("error", text), ("overall_response", text), ("n_persisting", ints), ("n_new", ints),
               ("n_disappeared", ints), ("n_not_assessable", ints), ("registrations_refused", ints)]
    if rows:
        write_parquet(rows, path, columns)
    elif path.exists():
        path.unlink()
