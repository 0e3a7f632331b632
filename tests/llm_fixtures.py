"""Session fixture `vllm_server`: a real vLLM OpenAI-compatible server on 127.0.0.1.

Import it from tests/conftest.py (`from tests.llm_fixtures import vllm_server  # noqa`). It needs
the server's own venv and the converted test model (`bash scripts/setup_llm_env.sh`, i.e.
`make llm-env`); without them the tests that use it skip through require("llm", ...), and fail
where RADAGENT_REQUIRE names llm (CI; tests/require.py). Tests using it carry the `llm_server`
marker (deselect: -m "not llm_server"), which also makes them slow (tests/conftest.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent import llm_server
from tests.require import require

SERVED_NAME = llm_server.TEST_SERVED_NAME
START_TIMEOUT_S = float(os.environ.get("RADAGENT_LLM_START_TIMEOUT", "600"))


@dataclass(frozen=True)
class LLMServer:
    base_url: str          # http://127.0.0.1:PORT/v1
    model: str             # served model name
    log_path: Path
    startup_seconds: float


def _missing(reason: str) -> None:
    require("llm", f"{reason}; create it with `{llm_server.SETUP_COMMAND}` (or `make llm-env`)")


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory):
    python = Path(os.environ.get("RADAGENT_LLM_PYTHON", llm_server.DEFAULT_PYTHON))
    model_dir = Path(os.environ.get("RADAGENT_LLM_MODELS", llm_server.DEFAULT_MODELS)) / llm_server.TEST_MODEL_NAME
    if not python.exists():
        _missing(f"the LLM server's venv is missing ({python})")
    if not llm_server.model_is_complete(model_dir):
        _missing(f"the converted test model is missing ({model_dir})")
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    try:
        handle = llm_server.start_server(model_dir, python=python, served_name=SERVED_NAME,
                                         chat_template=llm_server.CHAT_TEMPLATE, log_path=log_path,
                                         timeout=START_TIMEOUT_S)
    except llm_server.ServerStartError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield LLMServer(handle.base_url, handle.model, handle.log_path, handle.startup_seconds)
    finally:
        handle.stop()
