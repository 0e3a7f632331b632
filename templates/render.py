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


def render_report(findings: Findings, draft, style: str = "structured", key_images: dict[str, bytes] | None = None,
                  comparison=None, comparison_images: dict[str, bytes] | None = None) -> dict[str, str | bytes]:
    """report.md, report.json and report.html (key images embedded, viewable offline as one file).

    ``comparison`` (a perception.followup Comparison): a COMPARISON section (reasoning.comparison.section)
    in all three, with each tracked lesion's key image per time point side by side; ``comparison_images``
    (image name -> PNG bytes, names from reasoning.comparison.image_name) are written beside the report
    (report.md links them) and embedded in report.html. report.json then holds the draft's fields and
    ``comparison`` (the section)."""
    import base64
    import json

    from reasoning.report import GROUP_TITLES, GROUPS

    if style not in STYLES:
        raise ValueError(f"unknown report style {style!r}; expected one of {', '.join(STYLES)}")
    env = environment()
    cmp = None
    cmp_images = comparison_images or {}
    if comparison is not None:
        from reasoning.comparison import section

        cmp = section(comparison, set(cmp_images))
    ctx = {"f": findings, "d": draft, "style": style, "groups": GROUPS, "titles": GROUP_TITLES, "cmp": cmp,
           "studies": comparison.studies if comparison is not None else []}
    images = {lid: base64.b64encode(b).decode() for lid, b in (key_images or {}).items()}
    report_json = draft.model_dump_json(indent=2) + "\n"
    if cmp is not None:
        report_json = json.dumps({**json.loads(report_json), "comparison": cmp.model_dump(mode="json")}, indent=2) + "\n"
    files: dict[str, str | bytes] = {
        "report.md": env.get_template("report.md.j2").render(**ctx),
        "report.json": report_json,
        "report.html": env.get_template("report.html.j2").render(
            images=images, cmp_images={k: base64.b64encode(v).decode() for k, v in cmp_images.items()}, **ctx),
    }
    if cmp is not None:
        files.update({name: data for name, data in cmp_images.items()
                      if any(name in imgs for imgs in cmp.images.values())})
    return files
