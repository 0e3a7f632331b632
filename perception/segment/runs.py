"""What each segmentation backend ran (model, version, weights checksum, seconds), and one progress display.

``ModelRun`` is the record a backend keeps per task it ran or skipped; ``Findings.segmentation`` and
each predicted lesion's provenance are made from these records (``perception.findings``). Backends
append to ``Segmenter.runs``; ``perception.segment.base.segment_ct_runs`` gathers them.

Progress: ``progress_to(callback)`` makes every backend run inside it report ``callback(fraction,
message)``, fraction in 0..1 over all the tasks of the call (weighted by each task's expected cost,
``TASK_COST``). The CLI draws it as one bar with a percentage and an ETA. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ProgressCallback = Callable[[float, str], None]
_PROGRESS: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar("radagent_segment_progress", default=None)

# Relative CPU cost of one call of each TotalSegmentator task (fast `total` = 1), from the timings in
# ../shared/docs/PERCEPTION_NOTES.md (fast total ~4 min, liver_segments 6-8 min on a 512x512x300 CT);
# the lesion tasks resample a crop only, liver_lesions at 0.75 x 0.75 x 1 mm.
TASK_COST = {"total": 1.0, "total/full": 8.0, "liver_segments": 1.7, "liver_lesions": 2.0, "liver_vessels": 1.2,
             "kidney_cysts": 0.8, "lung_nodules": 1.0}


@dataclass
class WeightsRecord:
    """One model folder a task loaded: nnU-Net dataset folder, trainer, configuration, checkpoint SHA-256."""

    folder: str
    trainer: str
    configuration: str
    checkpoint: str
    sha256: str | None  # None: the checkpoint file was not there to hash


@dataclass
class ModelRun:
    """One task of one backend: ran (seconds) or skipped (reason); organs it searched for lesions."""

    backend: str
    task: str
    version: str
    status: str  # "ran" | "skipped"
    seconds: float = 0.0
    mode: str | None = None
    device: str | None = None
    weights: list[WeightsRecord] = field(default_factory=list)
    searched_organs: list[str] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def source_prefix(self) -> str:
        """The head of Mask.source this run's masks carry (``totalseg:liver_lesions``)."""
        return f"{self.backend}:{self.task}" + ("/fast" if self.mode == "fast" else "")


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str | None:
    """SHA-256 of a file (cached by path, size and mtime within the process); None when it is absent."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while b := f.read(chunk):
                h.update(b)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


@contextlib.contextmanager
def progress_to(callback: ProgressCallback | None) -> Iterator[None]:
    """Backends run inside report their progress to ``callback(fraction, message)``."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


class TaskProgress:
    """Progress over a sequence of weighted steps, reported to the callback of ``progress_to`` (if any)."""

    def __init__(self, steps: Sequence[tuple[str, float]]) -> None:
        self.weights = {name: max(float(w), 1e-6) for name, w in steps}
        self.total = sum(self.weights.values()) or 1.0
        self.done = 0.0
        self.callback = _PROGRESS.get()
        self.t0 = time.perf_counter()

    def start(self, name: str) -> None:
        self._report(f"{name} running")

    def finish(self, name: str, note: str = "done") -> None:
        self.done += self.weights.get(name, 0.0)
        self._report(f"{name} {note}")

    def _report(self, message: str) -> None:
        if self.callback is not None:
            self.callback(min(1.0, self.done / self.total), message)


def eta_seconds(fraction: float, elapsed_s: float) -> float | None:
    """Remaining seconds at this rate (None before any progress: unknown, not 0)."""
    if fraction <= 0.0:
        return None
    return max(0.0, elapsed_s * (1.0 - fraction) / fraction)
