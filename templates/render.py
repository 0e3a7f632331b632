"""Render jinja2 templates (StrictUndefined) from Findings; templates never touch voxels."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from perception.schema import Findings

TEMPLATE_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = lambda v, nd=1: "n/a" if v is None else f"{v:.{nd}f}"
    return env


def render_findings_md(findings: Findings) -> str:
    return environment().get_template("findings.md.j2").render(f=findings)
