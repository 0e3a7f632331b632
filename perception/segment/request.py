"""SegmentRequest: what to segment with, validated once where it is built, frozen, hashable as settings.

It replaces the untyped per-backend options dict that used to cross from the CLI through the case
service into worker processes. Every field is checked at construction (backend names, TotalSegmentator
tasks against ``totalseg.TASKS`` with "did you mean", device spelling, threshold range, the option each
backend needs), so a request that exists can be handed to ``segment_ct`` or pickled to a worker.

    >>> req = SegmentRequest.build(unit_weights="runs/unit/final.pt", tasks=["total"], device="cpu")
    >>> req.backends
    ('totalseg', 'unit')
    >>> req.backend_options("unit")
    {'weights': PosixPath('runs/unit/final.pt')}

``SegmentRequest.build(**fields)`` raises ``SegmentRequestError`` (a ``radagent.errors.RequestError``)
naming each bad field, its CLI option, what was expected and what was found; constructing the model
directly raises pydantic's ``ValidationError`` instead. Paths are not checked for existence here: the
backend that opens them says what is missing (in the process that runs it).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .common import BACKENDS, DEVICE_RE, DEVICE_SPELLINGS, BackendName
from .errors import SegmentRequestError
from .totalseg import DEFAULT_TASKS, TASKS, task_problem


def _opt(option: str) -> dict[str, Any]:
    return {"option": option}


class _Problems(ValueError):
    """Cross-field refusals raised inside validation, each naming its field."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


class SegmentRequest(BaseModel):
    """A validated segmentation request: backends in priority order and each one's options.

    ``backends``: the first listed wins where several segment a structure (default: totalseg, plus
    unit when ``unit_weights`` is given). ``tasks`` (default ``totalseg.DEFAULT_TASKS``: total, then the liver
    segments / liver lesions / kidney cysts / lung nodules of the organs total found)/``fast``/``totalseg_weights``/``totalseg_home``/
    ``allow_download``: TotalSegmentator. ``unit_weights``/``existence_threshold``: the UniT model.
    ``masks``/``class_map``: the masks backend. ``device``: auto | cpu | cuda | cuda:N | mps, checked
    for spelling here and for availability by the backend that runs on it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backends: tuple[BackendName, ...] = Field(("totalseg",), json_schema_extra=_opt("--backend"))
    tasks: tuple[str, ...] = Field(DEFAULT_TASKS, json_schema_extra=_opt("--task"))
    fast: bool | None = Field(None, json_schema_extra=_opt("--fast/--full"))
    totalseg_weights: Path | None = Field(None, json_schema_extra=_opt("--totalseg-weights"))
    totalseg_home: Path | None = Field(None, json_schema_extra=_opt("--totalseg-home"))
    allow_download: bool = Field(True, json_schema_extra=_opt("--no-download"))
    unit_weights: Path | None = Field(None, json_schema_extra=_opt("--weights"))
    existence_threshold: float | None = Field(None, json_schema_extra=_opt("--threshold"))
    nnunet_model: Path | None = Field(None, json_schema_extra=_opt("--nnunet-model"))
    nnunet_labels: Path | None = Field(None, json_schema_extra=_opt("--labels"))
    bundle: Path | None = Field(None, json_schema_extra=_opt("--bundle"))
    masks: Path | None = Field(None, json_schema_extra=_opt("--masks"))
    class_map: Path | None = Field(None, json_schema_extra=_opt("--class-map"))
    device: str = Field("auto", json_schema_extra=_opt("--device"))

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def build(cls, **fields: Any) -> SegmentRequest:
        """The request, or SegmentRequestError listing every bad field (expected vs found)."""
        try:
            return cls(**fields)
        except ValidationError as e:
            problems = _problems(e)
            raise SegmentRequestError(
                "invalid segmentation request: " + "; ".join(f"{_label(f)}: {m}" for f, m in problems), problems
            ) from None

    @classmethod
    def option_of(cls, field: str) -> str | None:
        """The CLI option that sets ``field`` (``unit_weights`` -> ``--weights``)."""
        info = cls.model_fields.get(field)
        extra = info.json_schema_extra if info is not None else None
        return extra.get("option") if isinstance(extra, dict) else None  # type: ignore[return-value]

    @model_validator(mode="before")
    @classmethod
    def _default_backends(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("backends") is None:
            with_unit = data.get("unit_weights") is not None
            data = {**data, "backends": ("totalseg", "unit") if with_unit else ("totalseg",)}
        return data

    @field_validator("backends", mode="before")
    @classmethod
    def _backends_sequence(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("backends")
    @classmethod
    def _backends_once_each(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"expected one or more of {', '.join(BACKENDS)}, found none")
        twice = sorted({b for b in v if v.count(b) > 1})
        if twice:
            raise ValueError(f"expected each backend once, found {', '.join(repr(b) for b in twice)} more than once")
        return v

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_sequence(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = (v,)
        if isinstance(v, (list, tuple)):
            v = tuple(dict.fromkeys(str(t).strip() for t in v))
        return v

    @field_validator("tasks")
    @classmethod
    def _tasks_known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"expected one or more TotalSegmentator tasks of {', '.join(TASKS)}, found none")
        problems = [p for p in (task_problem(t) for t in v) if p is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("existence_threshold")
    @classmethod
    def _threshold_range(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"expected a probability in 0..1, found {v!r}")
        return v

    @field_validator("device", mode="before")
    @classmethod
    def _device_spelling(cls, v: Any) -> Any:
        if isinstance(v, str):
            req = v.strip().lower()
            if not DEVICE_RE.match(req):
                close = difflib.get_close_matches(req, ["auto", "cpu", "cuda", "cuda:0", "mps"], n=1)
                raise ValueError(f"expected {DEVICE_SPELLINGS}, found {v!r}"
                                 + (f" (did you mean {close[0]!r}?)" if close else ""))
            return req
        return v

    @model_validator(mode="after")
    def _backend_needs(self) -> SegmentRequest:
        problems = []
        if "unit" in self.backends and self.unit_weights is None:
            problems.append(("unit_weights", ("backend 'unit' needs --weights CKPT (a checkpoint from "
                                             "`radagent train unit`), found none")))
        if "nnunet" in self.backends and self.nnunet_model is None:
            problems.append(("nnunet_model", ("backend 'nnunet' needs --nnunet-model DIR (an nnU-Net v2 results folder "
                                             "with plans.json, dataset.json, fold_N/checkpoint_final.pth), found none")))
        if "bundle" in self.backends and self.bundle is None:
            problems.append(("bundle", ("backend 'bundle' needs --bundle DIR (a MONAI bundle with configs/inference.json, "
                                       "configs/metadata.json, models/model.pt), found none")))
        if "masks" in self.backends and self.masks is None:
            problems.append(("masks", ("backend 'masks' needs --masks PATH (a folder of NIfTI masks or a "
                                      "multilabel NIfTI), found none")))
        if problems:
            raise _Problems(problems)
        return self

    # --- use ---------------------------------------------------------------------------------------
    def backend_options(self, name: str) -> dict[str, Any]:
        """The keyword arguments of backend ``name``'s constructor (``make_segmenter(name, device, **these)``)."""
        if name not in self.backends:
            raise ValueError(f"backend_options: expected one of the requested backends {', '.join(self.backends)}, "
                             f"found {name!r}")
        if name == "totalseg":
            return {"tasks": list(self.tasks), "fast": self.fast, "weights_dir": self.totalseg_weights,
                    "home_dir": self.totalseg_home, "allow_download": self.allow_download}
        if name == "unit":
            return {"weights": self.unit_weights,
                    **({"existence_threshold": self.existence_threshold} if self.existence_threshold is not None else {})}
        if name == "nnunet":
            return {"model": self.nnunet_model, "labels": self.nnunet_labels}
        if name == "bundle":
            return {"bundle": self.bundle}
        return {"path": self.masks, "class_map": self.class_map}

    def fingerprint_document(self) -> dict[str, Any]:
        """What decides the masks, JSON-safe and stable (paths as given, as strings), for settings hashes:
        ``{"backends": [...], "options": {backend: constructor options}}``.

        The device is left out (as in dataset settings before this request existed): it picks where a
        model runs, not which model; with ``fast`` unset TotalSegmentator's mode follows the device.
        """
        return {"backends": list(self.backends),
                "options": {b: {k: _json_safe(v) for k, v in self.backend_options(b).items()} for b in self.backends}}


def _json_safe(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _label(field: str) -> str:
    opt = SegmentRequest.option_of(field)
    return f"{field} ({opt})" if opt else field


def _problems(e: ValidationError) -> list[tuple[str, str]]:
    """(field, "expected ..., found ...") for each error of a failed SegmentRequest validation."""
    out: list[tuple[str, str]] = []
    for err in e.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _Problems):
            out += cause.problems
            continue
        loc = err.get("loc") or ("request",)
        field = str(loc[0])
        msg, found = err.get("msg", ""), err.get("input")
        if err.get("type") == "extra_forbidden":
            close = difflib.get_close_matches(field, list(SegmentRequest.model_fields), n=1)
            out.append((field, "expected one of the fields " + ", ".join(SegmentRequest.model_fields)
                        + f", found an unknown field {field!r}" + (f" (did you mean {close[0]!r}?)" if close else "")))
        elif err.get("type") == "value_error":
            out.append((field, msg.removeprefix("Value error, ")))
        else:
            hint = ""
            if err.get("type") == "literal_error" and isinstance(found, str):
                close = difflib.get_close_matches(found, BACKENDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            expected = "expected " + msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg
            out.append((field, f"{expected}; found {found!r}{hint}"))
    return out
