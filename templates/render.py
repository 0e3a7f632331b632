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
                             autoescape=lambda name: name is not None and ".html" in name,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = lambda v, nd=1: "n/a" if v is None else f"{v:.{nd}f}"
    from reasoning.limitations import is_lower_bound, size_phrase, slice_phrase

    env.filters["slice_ref"] = slice_phrase  # the image a radiologist opens, never the 0-based index
    env.filters["size_ref"] = size_phrase
    env.filters["lower_bound"] = is_lower_bound
    return env


def render_findings_md(findings: Findings) -> str:
    return environment().get_template("findings.md.j2").render(f=findings)


STYLES = ("structured", "narrative")


def render_report(findings: Findings, draft, style: str = "structured", key_images: dict[str, bytes] | None = None
                  ) -> dict[str, str]:
    """report.md, report.json and report.html (key images embedded, viewable offline as one file)."""
    import base64

    from reasoning.report import GROUP_TITLES, GROUPS

    if style not in STYLES:
        raise ValueError(f"unknown report style {style!r}; expected one of {', '.join(STYLES)}")
    env = environment()
    ctx = dict(f=findings, d=draft, style=style, groups=GROUPS, titles=GROUP_TITLES)
    images = {lid: base64.b64encode(b).decode() for lid, b in (key_images or {}).items()}
    return {
        "report.md": env.get_template("report.md.j2").render(**ctx),
        "report.json": draft.model_dump_json(indent=2) + "\n",
        "report.html": env.get_template("report.html.j2").render(images=images, **ctx),
    }
