"""`radagent serve` settings and the limits of the HTTP API."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

CASE_ID_RE = re.compile(r"[0-9a-f]{32}")
SESSION_ID_RE = re.compile(r"[0-9a-f]{32}")
LESION_ID_PATTERN = r"^L[0-9]{1,5}$"
MiB = 1024 * 1024
UPLOAD_FIELDS = {"ct": (".nii.gz", ".nii"), "masks": (".nii.gz", ".nii", ".zip"), "class_map": (".json",)}
VALUE_FIELDS = {"mask_label": 200}  # plain-text form fields and their largest size in bytes
MAX_ZIP_MEMBERS = 5000
MAX_PATH_ENTRIES = 20000
CHUNK = 1 << 20


class ServerSettings(BaseModel):
    """What `radagent serve` is started with. Paths are resolved once, here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_root: Path = Field(description="server-side folder that path references must stay inside")
    token: str = Field(repr=False, description="bearer token every API call must send")
    cases_dir: Path | None = Field(None, validate_default=True,
                                   description="where case folders are kept (default: DATA_ROOT/.radagent-cases)")
    max_upload_mb: float = Field(256.0, gt=0, description="largest request body accepted (MiB); a 512x512x1000 "
                                                           "CT .nii.gz with its masks is well under it")
    max_unzipped_mb: float | None = Field(None, gt=0, description="largest total size of a masks zip once unpacked "
                                                                  "(MiB; default 2 x max_upload_mb)")
    llm_url: str | None = Field(None, description="OpenAI-compatible server for the chat agent and LLM reports")
    model: str | None = None
    workers: int = Field(1, ge=1, le=64, description="analyses run at once")
    max_queued: int = Field(8, ge=0, le=1000, description="analyses waiting for a worker; past it new cases are "
                                                          "answered 503 with Retry-After")
    analysis_timeout_s: float = Field(600.0, gt=0, description="an analysis running longer is marked failed (its "
                                                               "late result is discarded)")
    llm_timeout_s: float = Field(120.0, gt=0, le=3600, description="how long one LLM request may take (reports, chat)")
    max_chat_sessions: int = Field(256, ge=1)

    @field_validator("data_root")
    @classmethod
    def _root(cls, v: Path) -> Path:
        p = Path(v).expanduser()
        if not p.is_dir():
            raise ValueError(f"{p}: expected an existing folder, found {'a file' if p.exists() else 'nothing'}")
        return p.resolve()

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        v = v.strip()
        if len(v) < 8 or any(c.isspace() for c in v):
            raise ValueError(f"expected a token of at least 8 characters without spaces, got {len(v)} characters")
        return v

    @field_validator("cases_dir")
    @classmethod
    def _cases(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        root = info.data.get("data_root")
        if v is None:
            return None if root is None else root / ".radagent-cases"
        p = Path(v).expanduser().resolve()
        if root is not None and p == root:
            raise ValueError(f"{p}: the case storage must not be the data root itself (use a sub-folder or another folder)")
        if p.exists() and not p.is_dir():
            raise ValueError(f"{p}: expected a folder, found a file")
        return p

    @model_validator(mode="after")
    def _zip_default(self) -> "ServerSettings":
        if self.max_unzipped_mb is None:
            object.__setattr__(self, "max_unzipped_mb", 2 * self.max_upload_mb)
        return self

    @property
    def cases(self) -> Path:
        assert self.cases_dir is not None  # set by the validator
        return self.cases_dir
