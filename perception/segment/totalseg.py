"""TotalSegmentator backend: organs, sub-segments, vessels and a few lesion tasks, through its Python API.

Which TotalSegmentator task gives what, which nnU-Net dataset folder each needs, and which tasks are
absent from the pinned version are plain data here (``TASKS``, ``DATASETS``, ``UNAVAILABLE``), read
by the code, the CLI and the tests. The pinned TotalSegmentator is 2.18.0 with nnunetv2 2.5.2 and
dynamic-network-architectures 0.3.1 (TotalSegmentator asks for nnunetv2 >= 2.3.1): nnunetv2 >= 2.6
pulls timm and torchvision, whose PyPI build does not import beside CPU torch 2.13.0 (``operator
torchvision::nms does not exist``, measured here with torchvision 0.28.0), see
../shared/docs/PERCEPTION_NOTES.md.

Weights: ``weights_dir`` (TOTALSEG_WEIGHTS_PATH), else ``home_dir``/nnunet/results
(TOTALSEG_HOME_DIR), else TotalSegmentator's own default (~/.totalsegmentator). TotalSegmentator
downloads a dataset folder only when it is missing; with ``allow_download=False`` (or when the
download fails) a WeightsMissingError says which task needs which folder and how to install it
offline. nnU-Net reads its results path once, at import: the environment is set before the first
import, and a later call that asks for another weights folder in the same process is refused
rather than silently using the first one.

Input and output: the CT is written to a temporary NIfTI, each task's multilabel output is read
back onto the CT grid by ``perception.masks.load_multilabel`` (geometry checked), and every Mask's
source says ``totalseg:<task>[/fast]#<label id>``. Each task run is recorded in ``runs`` (task,
TotalSegmentator version, dataset folders with their checkpoint's SHA-256, seconds, or why it was
skipped): Findings' provenance and ``segmentation`` block come from it.

Follow-up tasks (``FOLLOW_UP``): a task whose host organs ``total`` did not find on this CT (no
liver, no kidney, no lung) is skipped and recorded as such, after ``total`` ran in the same call;
``DEFAULT_TASKS`` is what a no-mask analyze runs (abdomen: liver segments, liver lesions, kidney
cysts; chest: lung nodules).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import registry
from ..masks import LabelSet, load_multilabel
from ..volume import CTVolume
from .common import relabel, select_device
from .errors import (
    BackendUnavailableError,
    SegmentError,
    WeightsMissingError,
    missing_package_message,
)

log = logging.getLogger("radagent.segment.totalseg")

TOTALSEG_VERSION = "2.18.0"
_RELEASES = "https://github.com/wasserth/TotalSegmentator/releases/download"


@dataclass(frozen=True)
class DatasetWeights:
    """One nnU-Net model folder TotalSegmentator loads (facts from totalsegmentator 2.18.0 map_tasks_config.py)."""

    dataset_id: int
    folder: str  # <weights dir>/<folder>/<trainer>__nnUNetPlans__<configuration>/fold_0/checkpoint_final.pth
    trainer: str
    spacing_mm: tuple[float, float, float] | None  # resampling before the model (x, y, z); None = native
    release: str  # the GitHub release tag holding <folder>.zip
    configuration: str = "3d_fullres"

    def checkpoint(self, root: Path) -> Path:
        return Path(root) / self.folder / f"{self.trainer}__nnUNetPlans__{self.configuration}" / "fold_0" / "checkpoint_final.pth"

    @property
    def url(self) -> str:
        return f"{_RELEASES}/{self.release}/{self.folder}.zip"


DATASETS: dict[int, DatasetWeights] = {d.dataset_id: d for d in [
    DatasetWeights(291, "Dataset291_TotalSegmentator_part1_organs_1559subj", "nnUNetTrainerNoMirroring", (1.5,) * 3, "v2.0.0-weights"),
    DatasetWeights(292, "Dataset292_TotalSegmentator_part2_vertebrae_1532subj", "nnUNetTrainerNoMirroring", (1.5,) * 3, "v2.0.0-weights"),
    DatasetWeights(293, "Dataset293_TotalSegmentator_part3_cardiac_1559subj", "nnUNetTrainerNoMirroring", (1.5,) * 3, "v2.0.0-weights"),
    DatasetWeights(294, "Dataset294_TotalSegmentator_part4_muscles_1559subj", "nnUNetTrainerNoMirroring", (1.5,) * 3, "v2.0.0-weights"),
    DatasetWeights(295, "Dataset295_TotalSegmentator_part5_ribs_1559subj", "nnUNetTrainerNoMirroring", (1.5,) * 3, "v2.0.0-weights"),
    DatasetWeights(297, "Dataset297_TotalSegmentator_total_3mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring", (3.0,) * 3, "v2.0.0-weights"),
    DatasetWeights(298, "Dataset298_TotalSegmentator_total_6mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring", (6.0,) * 3, "v2.0.0-weights"),
    DatasetWeights(570, "Dataset570_ct_liver_segments", "nnUNetTrainerNoMirroring", (0.8046879768371582, 0.8046879768371582, 1.5), "v2.5.0-weights"),
    DatasetWeights(8, "Dataset008_HepaticVessel", "nnUNetTrainer", None, "v2.4.0-weights"),
    DatasetWeights(789, "Dataset789_kidney_cyst_501subj", "nnUNetTrainer_DASegOrd0_NoMirroring", (1.5,) * 3, "v2.5.0-weights"),
    DatasetWeights(913, "Dataset913_lung_nodules", "nnUNetTrainer_MOSAIC_1k_QuarterLR_NoMirroring", (1.5,) * 3, "v2.5.0-weights"),
    DatasetWeights(591, "Dataset591_ct_liver_lesions_842subj", "nnUNetTrainer", (0.75, 0.75, 1.0), "v2.5.0-weights",
                   "3d_fullres_high"),
]}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    what: str
    datasets: tuple[int, ...]  # full mode
    fast_datasets: tuple[int, ...] | None = None  # None: the task has no fast mode
    crop_dataset: int | None = None  # the `total` model run first to crop around the organ (6 mm; 3 mm when robust)
    download_name: str | None = None  # `totalseg_download_weights -t <name>`
    hosts: tuple[str, ...] = ()  # organs of `total` this task looks inside (its crop); none found -> skipped

    def needed(self, fast: bool) -> tuple[int, ...]:
        own = self.fast_datasets if (fast and self.fast_datasets) else self.datasets
        return own + ((self.crop_dataset,) if self.crop_dataset else ())

    def mode(self, fast: bool) -> str:
        return "fast" if (fast and self.fast_datasets) else "full"


TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("total", "117 organs, vessels, bones and muscles", (291, 292, 293, 294, 295), (297,), None, "total"),
    TaskSpec("liver_segments", "Couinaud liver segments 1-8", (570,), None, 298, "liver_segments", ("liver",)),
    TaskSpec("liver_lesions", "liver lesions (nnU-Net 591, 0.75 x 0.75 x 1 mm, liver crop from the 3 mm model)", (591,),
             None, 297, "liver_lesions", ("liver",)),
    TaskSpec("liver_vessels", "hepatic vessels and liver tumour", (8,), None, 298, "liver_vessels", ("liver",)),
    TaskSpec("kidney_cysts", "left/right kidney cysts", (789,), None, 298, "kidney_cysts", ("kidney_left", "kidney_right")),
    TaskSpec("lung_nodules", "lung and lung nodules", (913,), None, 298, "lung_nodules",
             ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
              "lung_lower_lobe_right")),
]}
# What a no-mask analyze runs: `total`, then the lesion tasks (and liver segments) of the organs it found.
DEFAULT_TASKS: tuple[str, ...] = ("total", "liver_segments", "liver_lesions", "kidney_cysts", "lung_nodules")

# Tasks radagent would use that it cannot run with the pinned TotalSegmentator.
UNAVAILABLE: dict[str, str] = {
    "renal_arteries": (f"task 'renal_arteries' (celiac trunk, SMA, renal arteries) is licence-gated in TotalSegmentator "
                       f"{TOTALSEG_VERSION} (map_to_binary.commercial_models, dataset 710) and runs only on an image "
                       "already cropped to the aorta (aorta_report); vessel involvement uses the vessels of task 'total' "
                       "(aorta, portal/splenic vein, IVC)"),
}

# Licence-gated ("commercial") tasks of TotalSegmentator 2.18.0 (map_to_binary.commercial_models);
# the installed package's own list is preferred when it is importable.
_LICENCE_GATED = ("heartchambers_highres", "appendicular_bones", "appendicular_bones_mr", "tissue_types",
                  "tissue_types_mr", "tissue_4_types", "face", "face_mr", "brain_structures", "thigh_shoulder_muscles",
                  "thigh_shoulder_muscles_mr", "coronary_arteries", "coronary_arteries_LEGACY", "aortic_sinuses",
                  "renal_arteries", "aorta_annulus", "aortic_dissection", "pulmonary_artery_landmarks")


def licence_gated_tasks() -> tuple[str, ...]:
    try:
        from totalsegmentator.map_to_binary import commercial_models
    except ImportError:
        return _LICENCE_GATED
    return tuple(commercial_models)


def task_problem(task: str) -> str | None:
    """Why ``task`` cannot run here (absent from the pinned version, licence-gated, unknown with a
    "did you mean"), or None for a task of ``TASKS``. Read by TotalSegSegmenter and SegmentRequest."""
    if task in TASKS:
        return None
    if task in UNAVAILABLE:
        return UNAVAILABLE[task]
    if task in licence_gated_tasks():
        return (f"task {task!r} is licence-gated in TotalSegmentator (a commercial model: free academic "
                f"licence at https://backend.totalsegmentator.com/license-academic/); radagent does not use it. "
                f"Tasks radagent runs: {', '.join(TASKS)}")
    close = difflib.get_close_matches(task, list(TASKS) + list(UNAVAILABLE), n=1)
    return f"unknown task {task!r}; expected one of {', '.join(TASKS)}" + (f" (did you mean {close[0]!r}?)" if close else "")


def available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "totalsegmentator", "nnunetv2"))


def _ts_device(device: str) -> str:
    """radagent/torch device -> TotalSegmentator's spelling (gpu, gpu:N, cpu, mps)."""
    if device.startswith("cuda"):
        return "gpu" + device[4:]
    return device


def default_weights_dir(home_dir: Path | None = None) -> Path:
    """TotalSegmentator's rule: TOTALSEG_WEIGHTS_PATH, else <home>/nnunet/results, home from
    TOTALSEG_HOME_DIR or ~/.totalsegmentator."""
    if home_dir is not None:
        return Path(home_dir) / "nnunet" / "results"
    if os.environ.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    home = Path(os.environ["TOTALSEG_HOME_DIR"]) if os.environ.get("TOTALSEG_HOME_DIR") else (
        (Path("/tmp") if str(Path.home()) == "/" else Path.home()) / ".totalsegmentator")
    return home / "nnunet" / "results"


@dataclass
class TotalSegSegmenter:
    """TotalSegmentator as a radagent backend.

    tasks: TotalSegmentator task names (see TASKS). fast: 3 mm model for `total` (other tasks have one
    mode); None = fast on CPU, full on GPU. weights_dir / home_dir: where the nnU-Net dataset folders
    are (TOTALSEG_WEIGHTS_PATH / TOTALSEG_HOME_DIR). allow_download: let TotalSegmentator fetch
    missing weights (else fail fast with instructions). usage_stats: TotalSegmentator's anonymous
    usage statistics (off by default: radagent runs offline).
    """

    tasks: Sequence[str] = ("total",)
    fast: bool | None = None
    device: str = "auto"
    weights_dir: Path | None = None
    home_dir: Path | None = None
    allow_download: bool = True
    license_number: str | None = None
    usage_stats: bool = False
    tol_mm: float = 0.01
    name: str = "totalseg"
    _last_stdout: str = field(default="", repr=False)
    runs: list = field(default_factory=list, repr=False)  # ModelRun per task of the last segment() call

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = (self.tasks,)
        self.tasks = tuple(dict.fromkeys(str(t).strip() for t in self.tasks))
        if not self.tasks:
            raise BackendUnavailableError(f"totalseg: no task given; expected one or more of {', '.join(TASKS)}")
        for t in self.tasks:
            problem = task_problem(t)
            if problem is not None:
                raise BackendUnavailableError(f"totalseg: {problem}")
        if not available():
            raise BackendUnavailableError(missing_package_message("the totalseg backend",
                                                                  f"TotalSegmentator=={TOTALSEG_VERSION}, nnunetv2 and torch"))
        self.device = select_device(self.device)
        if self.fast is None:
            self.fast = not self.device.startswith("cuda")
            log.info("totalseg: %s mode on %s", "fast (3 mm)" if self.fast else "full (1.5 mm)", self.device)
        self.weights_dir = Path(self.weights_dir).resolve() if self.weights_dir else None
        self.home_dir = Path(self.home_dir).resolve() if self.home_dir else None

    # --- declared outputs and weights ------------------------------------------------------------
    @property
    def outputs(self) -> tuple[str, ...]:
        maps = registry.totalseg_class_maps()
        names: list[str] = []
        for t in self.tasks:
            names += [registry.canonical_name(n) for n in maps[t].values()]
        return tuple(dict.fromkeys(names))

    @property
    def weights_root(self) -> Path:
        return self.weights_dir if self.weights_dir else default_weights_dir(self.home_dir)

    def required_weights(self) -> list[tuple[str, DatasetWeights]]:
        out, seen = [], set()
        for t in self.tasks:
            for d in TASKS[t].needed(bool(self.fast)):
                if d not in seen:
                    seen.add(d)
                    out.append((t, DATASETS[d]))
        return out

    def missing_weights(self) -> list[tuple[str, DatasetWeights]]:
        root = self.weights_root
        return [(t, d) for t, d in self.required_weights() if not (root / d.folder).is_dir()]

    def weights_message(self, missing: list[tuple[str, DatasetWeights]], reason: str) -> str:
        root = self.weights_root
        lines = [f"TotalSegmentator weights missing in {root} ({reason}):"]
        for t, d in missing:
            lines.append(f"  task {t!r} ({TASKS[t].mode(bool(self.fast))}) needs {d.folder}/ "
                         f"(nnU-Net dataset {d.dataset_id}, trainer {d.trainer}; {d.url})")
        dl = sorted({TASKS[t].download_name + ("_fast" if t == "total" and self.fast else "") for t, _ in missing})
        lines += [
            "To install them offline:",
            (f"  1. on a machine with internet access: TOTALSEG_WEIGHTS_PATH=/tmp/ts-weights totalseg_download_weights -t TASK "
             f"(TASK: {', '.join(dl)}; the crop models Dataset297/298 come with -t total_fast / total), "
             "or download the .zip files above;"),
            (f"  2. copy the dataset folders (or unzip the .zip files) into {root}/ on this machine, or point radagent at "
             "another folder with --totalseg-weights DIR (TOTALSEG_WEIGHTS_PATH)."),
        ]
        return "\n".join(lines)

    # --- running ---------------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        env = {}
        if self.home_dir:
            env["TOTALSEG_HOME_DIR"] = str(self.home_dir)
        if self.weights_dir:
            env["TOTALSEG_WEIGHTS_PATH"] = str(self.weights_dir)
        elif self.home_dir:
            env["TOTALSEG_WEIGHTS_PATH"] = str(self.home_dir / "nnunet" / "results")
        return env

    def _check_nnunet_paths(self) -> None:
        paths = sys.modules.get("nnunetv2.paths")
        if paths is None:
            return
        have = getattr(paths, "nnUNet_results", None)
        if have is None or Path(have).resolve() != self.weights_root.resolve():
            raise SegmentError(
                f"totalseg: nnU-Net was already imported in this process with nnUNet_results={have!r}; it reads that "
                f"path once, so the weights in {self.weights_root} cannot be used here. Run radagent in a fresh process, "
                f"or use the same weights folder for every TotalSegmentator call of this process.")

    def segment(self, ct: CTVolume) -> LabelSet:
        missing = self.missing_weights()
        if missing and not self.allow_download:
            raise WeightsMissingError(self.weights_message(missing, "downloads disabled"))
        old = {k: os.environ.get(k) for k in ("TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH")}
        os.environ.update(self._environment())
        try:
            self._check_nnunet_paths()
            return self._run(ct, missing)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _prepare_config(self) -> None:
        from totalsegmentator.config import set_config_key, setup_totalseg

        from .trainers import register_totalseg_trainers

        setup_totalseg()
        register_totalseg_trainers()  # no nnU-Net trainer search: it would import timm/torchvision
        set_config_key("statistics_disclaimer_shown", True)
        if not self.usage_stats:
            set_config_key("send_usage_stats", False)

    def _weights_records(self, task: str) -> list:
        from .runs import WeightsRecord, sha256_file

        out = []
        for d in TASKS[task].needed(bool(self.fast)):
            w = DATASETS[d]
            ck = w.checkpoint(self.weights_root)
            out.append(WeightsRecord(folder=w.folder, trainer=w.trainer, configuration=w.configuration,
                                     checkpoint=str(ck), sha256=sha256_file(ck)))
        return out

    def _skip_reason(self, task: str, found: LabelSet | None) -> str | None:
        """Why a follow-up task need not run: ``total`` ran in this call and found none of its host organs."""
        hosts = TASKS[task].hosts
        if found is None or not hosts or task == "total":
            return None
        if any(h in found.masks and not found.masks[h].empty for h in hosts):
            return None
        return f"task 'total' found no {' / '.join(hosts)} on this CT: nothing to search"

    def _run(self, ct: CTVolume, missing: list[tuple[str, DatasetWeights]]) -> LabelSet:
        try:
            from totalsegmentator.python_api import totalsegmentator
        except ImportError as e:
            raise BackendUnavailableError(missing_package_message("the totalseg backend", f"TotalSegmentator=={TOTALSEG_VERSION}")) from e
        from .runs import TASK_COST, ModelRun, TaskProgress

        self._prepare_config()
        maps = registry.totalseg_class_maps()
        out = LabelSet(ct.shape)
        buf = io.StringIO()
        # `total` first: the follow-up tasks of organs it did not find are skipped
        order = sorted(self.tasks, key=lambda t: t != "total")
        cost = {t: TASK_COST.get("total/full" if t == "total" and not self.fast else t, 1.0) for t in order}
        progress = TaskProgress([(t, cost[t]) for t in order])
        self.runs = []
        total_found: LabelSet | None = None
        with tempfile.TemporaryDirectory(prefix="radagent-totalseg-") as tmp:
            tmpd = Path(tmp)
            ct_path = tmpd / "ct.nii.gz"
            hu = ct.hu if ct.hu.dtype.kind in "iu" else ct.hu.astype(np.float32)
            nib.save(nib.Nifti1Image(hu, ct.affine), str(ct_path))
            for task in order:
                spec = TASKS[task]
                fast = bool(self.fast) and spec.fast_datasets is not None
                skip = self._skip_reason(task, total_found)
                if skip is not None:
                    log.info("totalseg: task %s skipped: %s", task, skip)
                    self.runs.append(ModelRun("totalseg", task, TOTALSEG_VERSION, "skipped", reason=skip,
                                              mode=spec.mode(bool(self.fast)), device=self.device))
                    progress.finish(task, "skipped")
                    continue
                seg_path = tmpd / f"{task}.nii.gz"
                log.info("totalseg: task %s (%s) on %s", task, spec.mode(bool(self.fast)), self.device)
                progress.start(task)
                t0 = time.perf_counter()
                try:
                    with contextlib.redirect_stdout(buf):
                        totalsegmentator(input=ct_path, output=seg_path, ml=True, task=task, fast=fast,
                                         device=_ts_device(self.device), quiet=True, nr_thr_resamp=1, nr_thr_saving=1,
                                         license_number=self.license_number, crop_path=tmpd)
                except SystemExit as e:  # TotalSegmentator exits on licence problems
                    raise BackendUnavailableError(f"totalseg: task {task!r} stopped: {buf.getvalue().strip()[-500:]}") from e
                except Exception as e:
                    still = [(t, d) for t, d in missing if t == task and not (self.weights_root / d.folder).is_dir()]
                    if still:
                        raise WeightsMissingError(self.weights_message(still, f"download failed: {type(e).__name__}: {e}")) from e
                    raise
                finally:
                    self._last_stdout = buf.getvalue()
                    if self._last_stdout.strip():
                        log.debug("TotalSegmentator output:\n%s", self._last_stdout)
                if not seg_path.exists():
                    raise SegmentError(f"totalseg: task {task!r} wrote no output at {seg_path}")
                ls = load_multilabel(seg_path, ct, maps[task], tol_mm=self.tol_mm)
                ls = relabel(ls, f"totalseg:{task}" + ("/fast" if fast else ""))
                if task == "total":
                    total_found = ls
                self.runs.append(ModelRun("totalseg", task, TOTALSEG_VERSION, "ran", round(time.perf_counter() - t0, 2),
                                          mode=spec.mode(bool(self.fast)), device=self.device,
                                          weights=self._weights_records(task)))
                progress.finish(task)
                out.warnings += [f"totalseg {task}: {w}" for w in ls.warnings]
                out.unknown.update(ls.unknown)
                for m in ls.masks.values():
                    if m.name in out.masks and m.empty:
                        continue
                    out.add(m)
        return out
