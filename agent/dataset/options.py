"""What a build is asked to do (BuildOptions), what each worker needs (CaseConfig), and the
settings document whose hash decides whether a finished case is still current."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable

from perception import __version__
from perception.findings import Settings
from perception.schema import SCHEMA_VERSION

from .errors import DatasetError

if TYPE_CHECKING:
    from perception.schema import Findings
    from perception.segment.request import SegmentRequest

QAGenerator = Callable[["Findings"], list[dict]]

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
SETTINGS_FILE = ".settings.json"  # the settings document of the last run (to say what a change removes)
LOCK_FILE = ".lock"
# timed stages recorded in case.json (and the t_<stage>_s columns of dataset.parquet, in this order);
# a failed case records the stage it failed in (plus "write" and "worker")
STAGES = ("hash", "load_ct", "load_masks", "measure", "key_images", "segment", "llm", "report", "qa")


def default_qa_generator() -> QAGenerator:
    from reasoning.vqa import generate_qa

    return generate_qa


def generator_name(fn: Callable) -> str:
    """``module:qualname`` of a QA generator: what the settings hash and the card record."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


@dataclass(frozen=True)
class BuildOptions:
    engine: str = "local"
    workers: int | None = None  # local: default os.cpu_count(); ray: default all CPUs of the cluster
    llm_url: str | None = None  # OpenAI-compatible server for the narrative; template narrative without it
    llm_model: str | None = None  # default: the first model the server lists
    llm_concurrency: int = 8  # concurrent LLM requests (one batch)
    llm_api_key: str | None = None
    llm_timeout_s: float = 120.0  # per request (reasoning.client.DEFAULT_TIMEOUT_S); not part of the settings hash
    qa: bool = False
    qa_generator: QAGenerator | None = None  # function(findings) -> list[dict]; default reasoning.vqa.generate_qa
    retry_failed: bool = False
    key_images: bool = True
    style: str = "structured"
    settings: Settings = field(default_factory=Settings)
    max_tasks_per_child: int = 20
    ray_address: str | None = None  # None: start a local Ray; "auto": join the running cluster
    segment: SegmentRequest | None = None  # how to segment cases without masks; None: such cases fail
    # also write dicom/seg.dcm, dicom/sr.dcm, fhir_bundle.json per case (DICOM CT cases only; they carry the
    # source's patient and study identifiers, which a DICOM object needs to reference its study)
    dicom_out: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DatasetError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise DatasetError(f"workers {self.workers!r}: expected an integer >= 1")
        if self.llm_concurrency < 1:
            raise DatasetError(f"llm_concurrency {self.llm_concurrency!r}: expected an integer >= 1")
        if not (isinstance(self.llm_timeout_s, (int, float)) and 0 < self.llm_timeout_s <= 3600):
            raise DatasetError(f"llm_timeout_s {self.llm_timeout_s!r}: expected seconds in (0, 3600]")
        if self.max_tasks_per_child < 1:
            raise DatasetError(f"max_tasks_per_child {self.max_tasks_per_child!r}: expected an integer >= 1")
        if self.style not in STYLES:
            raise DatasetError(f"style {self.style!r}: expected one of {', '.join(STYLES)}")
        if self.qa_generator is not None and not callable(self.qa_generator):
            raise DatasetError(f"qa_generator {self.qa_generator!r}: expected a function(findings) -> list[dict]")
        if self.segment is not None:
            from perception.segment.request import SegmentRequest

            if not isinstance(self.segment, SegmentRequest):
                raise DatasetError(f"segment: expected a SegmentRequest, found {type(self.segment).__name__}")

    def qa_function(self) -> QAGenerator | None:
        if not self.qa:
            return None
        return self.qa_generator or default_qa_generator()


@dataclass(frozen=True)
class CaseConfig:
    """What a worker needs to process a case (picklable: plain values, a frozen request, a function
    referenced by module and name)."""

    out: str
    settings: Settings
    key_images: bool
    style: str
    qa_generator: QAGenerator | None
    llm: bool
    settings_hash: str
    segment: SegmentRequest | None = None
    dicom_out: bool = False


@dataclass
class State:
    """The build's view of every case: status, input hash, latest error record."""

    status: dict[str, str] = field(default_factory=dict)  # case_id -> done | failed | pending
    keys: dict[str, str | None] = field(default_factory=dict)
    errors: dict[str, dict] = field(default_factory=dict)  # latest record per case (from file + this run)


def settings_document(opts: BuildOptions, llm_model: str | None) -> dict:
    """Everything besides the inputs that decides a case's outputs (hashed into settings_hash)."""
    qa = opts.qa_function()
    return {
        "layout_version": LAYOUT_VERSION,
        "radagent_version": __version__,
        "findings_schema_version": SCHEMA_VERSION,
        "measurement": asdict(opts.settings),
        "key_images": opts.key_images,
        "report": {"engine": "llm" if opts.llm_url else "template", "style": opts.style, "model": llm_model,
                   "max_attempts": 3 if opts.llm_url else None},
        "qa": generator_name(qa) if qa else None,
        **({"segment": opts.segment.fingerprint_document()} if opts.segment is not None else {}),
        **({"dicom_out": True} if opts.dicom_out else {}),  # absent when off: earlier builds keep their hash
    }


def fingerprint(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
