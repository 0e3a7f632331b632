"""Suite-wide switches (tests/require.py has the details):

- ``RADAGENT_REQUIRE=data,llm,browser,seg`` (CI), or ``--require KINDS`` for one run: a missing
  prerequisite fails instead of skipping, and any skip that does not come through tests/require.py
  fails too;
- ``slow`` tests are deselected by default and run with ``RADAGENT_SLOW_TESTS=1``, wherever the
  environment requires something (``RADAGENT_REQUIRE``: CI), or when ``-m`` names the marker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.llm_fixtures import vllm_server  # noqa: F401  (session fixture)
from tests.require import ENV, KINDS, TAG, parse_kinds, require_also, require_path, required_by_env, strict

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SLOW_ENV = "RADAGENT_SLOW_TESTS"

# Slow tests in modules whose owners edit them now (marked here rather than with a decorator there);
# key: node id without parameters; value: why it is slow (seconds measured on the 2-core dev machine).
SLOW_ELSEWHERE = {
    "tests/test_dataset.py::test_local_and_ray_engines_agree": "starts a Ray cluster (15-22 s)",
    "tests/test_dataset.py::test_ray_engine_llm_stage": "starts a Ray cluster (17-22 s)",
}


def data_path(*parts: str) -> Path:
    """A path under ../shared/data, or require("data") naming it."""
    return require_path(DATA.joinpath(*parts), "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return data_path()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require", action="append", default=[], metavar="KINDS",
                     help=f"comma list of {','.join(KINDS)}: fail, not skip, where one is missing (as {ENV} does, "
                          f"without turning on the slow tests)")


def pytest_configure(config: pytest.Config) -> None:
    for text in config.getoption("--require"):
        require_also(parse_kinds(text, f"--require {text}"))


def run_slow(config: pytest.Config) -> bool:
    return (os.environ.get(SLOW_ENV) == "1" or bool(required_by_env())
            or "slow" in (config.getoption("markexpr") or ""))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        why = SLOW_ELSEWHERE.get(item.nodeid.split("[")[0])
        if item.get_closest_marker("llm_server"):
            why = "the real vLLM server: ~50 s to start, then generation on CPU (minutes on 2 cores)"
        if why and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow(reason=why))
    # the vLLM server (a session fixture: a process of ~3 GB with its own CPU threads) starts at its first
    # test and lives until the session ends: its tests go last, so that it is up only while they run on a
    # 2-core machine (a stable sort keeps the order within each group)
    items.sort(key=lambda i: i.get_closest_marker("llm_server") is not None)
    if run_slow(config):
        return
    slow = [i for i in items if i.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if not i.get_closest_marker("slow")]
        config.stash[_SLOW_KEY] = len(slow)


_SLOW_KEY = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    n = config.stash.get(_SLOW_KEY, 0)
    if n:
        terminalreporter.write_line(f"{n} slow test(s) deselected; {SLOW_ENV}=1 runs them (CI does)")


def _unrouted_skip(longrepr) -> str | None:
    """The message of a skip that did not come through tests/require.py, else None."""
    msg = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return None if TAG in msg else msg


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail") and strict():
        msg = _unrouted_skip(rep.longrepr)
        if msg is not None:
            rep.outcome = "failed"
            rep.longrepr = (f"skipped outside tests/require.py while RADAGENT_REQUIRE is set (CI must not skip "
                            f"silently; route it through require(kind, reason)): {msg}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and strict():
        msg = _unrouted_skip(rep.longrepr)
        if msg is not None:
            rep.outcome = "failed"
            rep.longrepr = (f"{collector.nodeid}: module skipped outside tests/require.py while RADAGENT_REQUIRE "
                            f"is set: {msg}")
