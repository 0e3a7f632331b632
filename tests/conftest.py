from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm_fixtures import vllm_server  # noqa: F401  (session fixture)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def data_path(*parts: str) -> Path:
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} (expected ../shared/data next to the repository)")
    return p


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return data_path()
