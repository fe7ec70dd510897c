"""Shared test configuration: plugins every test directory can use, and the CI rule on skips."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

pytest_plugins = ["tests.fakes.fixtures", "tests.conformance.results"]

# .ci/run sets this: in CI a test that would skip (a missing server, package or tool) fails instead.
REQUIRE_ALL = os.environ.get("WAYPOST_REQUIRE_SERVICES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "optional_tool(name): skipped without the tool, in CI too")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    # A test marked ``optional_tool`` checks with a program this machine may lack (``docker
    # compose``): its skip stays a skip, since no service CI starts can stand in for it.
    optional = item.get_closest_marker("optional_tool") is not None
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail") and not optional:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which CI does not allow (WAYPOST_REQUIRE_SERVICES=1): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_ALL and report.skipped:  # a whole module skipped, e.g. by pytest.importorskip
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which CI does not allow (WAYPOST_REQUIRE_SERVICES=1): {reason}"


@pytest.fixture
async def database() -> Any:
    """A ``database`` settings section for an empty database of this run's backend: SQLite, or
    PostgreSQL with ``WAYPOST_TEST_DATABASE=postgresql`` (``make test`` runs the suites on both)."""
    from tests.dbs import DEFAULT_BACKEND, fresh_database

    async with fresh_database(DEFAULT_BACKEND) as section:
        yield section
