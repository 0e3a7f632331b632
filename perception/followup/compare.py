"""compare: analyze output folders (priors, current) -> Comparison."""

from __future__ import annotations

from pathlib import Path

from .schema import Comparison


def compare(prior_dirs: list[Path], current_dir: Path) -> Comparison:
    """Register the current study to each prior, match lesions, assess RECIST 1.1."""
    raise NotImplementedError
