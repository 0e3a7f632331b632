"""What a subtype handler returns (``_Result``: value, unit, evidence, rule, explanation) or
raises (``_Cannot``: why the findings cannot support an answer), and how numbers are written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reasoning.vqa.question import Scalar


@dataclass
class _Result:
    value: Scalar
    unit: str | None
    ids: list[str]
    rule: str
    explanation: str
    accept: set[str] | None = None  # categorical labels an option may carry to be correct
    qualifier: Literal["exact", "lower_bound"] | None = None  # sizes: lower_bound when cut by the scan edge


class _Cannot(Exception):
    def __init__(self, reason: str, ids: list[str] | None = None, rule: str | None = None, value: Scalar | None = None):
        super().__init__(reason)
        self.reason, self.ids, self.rule, self.value = reason, ids or [], rule, value


def _fmt(v: float, nd: int = 2) -> str:
    if not isinstance(v, float):
        return str(v)
    s = f"{v:.{nd}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s  # 120.0 at nd=0 stays '120'
