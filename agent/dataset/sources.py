"""Cases of a source: a folder of case folders / CT files, or a manifest (.csv / .parquet)."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatasetError

CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SPLITS = ("train", "val", "test")  # values of the manifest's optional `split` column
RESERVED_COLUMNS = ("case_id", "ct", "masks", "class_map", "mask_label", "split")


@dataclass(frozen=True)
class CaseSpec:
    """One case of the source: where its CT and masks are, what a single mask file holds
    (``mask_label``, as ``radagent analyze --mask-label``), its split and its metadata (strings)."""

    case_id: str
    ct: str
    masks: str | None = None
    class_map: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    mask_label: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.case_id, str) or not CASE_ID_RE.match(self.case_id):
            raise DatasetError(f"case id {self.case_id!r}: expected 1-128 characters from [A-Za-z0-9._-] starting "
                               "with a letter or digit (it names the case's output folder)")
        if not self.ct:
            raise DatasetError(f"case {self.case_id}: no CT path")
        if self.split is not None and self.split not in SPLITS:
            raise DatasetError(f"case {self.case_id}: split {self.split!r}: expected one of {', '.join(SPLITS)} "
                               "(or an empty cell)")
        if self.mask_label is not None:
            from perception.errors import MaskError
            from perception.masks import check_mask_label

            if self.masks is None:
                raise DatasetError(f"case {self.case_id}: mask_label {self.mask_label!r} without masks")
            try:
                check_mask_label(self.mask_label)
            except MaskError as e:
                raise DatasetError(f"case {self.case_id}: {e}") from None



def nifti_name(p: Path) -> bool:
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
        elif entry.is_file() and nifti_name(entry):
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


def require_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        raise DatasetError("the dataset builder writes Parquet with pyarrow, which is not installed: "
                           "pip install 'pyarrow>=15' (or pip install 'radagent[scale]')") from e
    return pyarrow


def _read_parquet_rows(path: Path) -> list[dict[str, Any]]:
    pa = require_pyarrow()
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
        raise DatasetError(f"{path}: manifest needs columns case_id and ct (optional: masks, class_map, mask_label, "
                           f"split, metadata such as phase or patient_id); missing {', '.join(missing)}; found "
                           f"{', '.join(map(str, cols)) or 'no rows'}")
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
            meta = {str(k): c for k, v in row.items() if k not in RESERVED_COLUMNS
                    and (c := _cell(v)) is not None}
            split = _cell(row.get("split"))
            specs.append(CaseSpec(cid, where(ct), where(_cell(row.get("masks"))), where(_cell(row.get("class_map"))), meta,
                                  mask_label=_cell(row.get("mask_label")), split=split.lower() if split else None))
        except DatasetError as e:
            problems.append(f"row {i}: {e}")
    if problems:
        raise DatasetError(f"{path}: {len(problems)} unusable manifest row(s):\n  " + "\n  ".join(problems[:20]))
    _check_patient_splits(specs, path)
    return specs


def _check_patient_splits(specs: list[CaseSpec], path: Path) -> None:
    """The split is patient-level: with a ``patient_id`` column, one patient's cases share one split."""
    by_patient: dict[str, set[str]] = {}
    for s in specs:
        pid = s.metadata.get("patient_id")
        if pid is not None and s.split is not None:
            by_patient.setdefault(pid, set()).add(s.split)
    leaks = {p: sorted(v) for p, v in by_patient.items() if len(v) > 1}
    if leaks:
        shown = "; ".join(f"patient {p!r} in {', '.join(v)}" for p, v in sorted(leaks.items())[:10])
        raise DatasetError(f"{path}: expected one split per patient (column patient_id), found {len(leaks)} patient(s) "
                           f"in several splits: {shown}")


def source_root(source: str | Path) -> Path:
    """The folder paths in dataset.parquet are relative to: the source folder, or the manifest's folder."""
    src = Path(source).absolute()
    return src if src.is_dir() else src.parent


def relative_to_root(p: str | None, root: Path | None) -> str | None:
    """``p`` relative to ``root`` when it lies inside it (POSIX separators), else as given (absolute)."""
    if p is None or root is None:
        return p
    try:
        return Path(p).relative_to(root).as_posix() or "."
    except ValueError:
        return p


# ------------------------------------------------------------------------------------------------
# content hashes
