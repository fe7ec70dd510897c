"""Records each matrix cell's outcome so docs/compatibility.md can be regenerated from a run.

A plugin of the root conftest rather than a conftest of its own: under xdist only the controller
sees every worker's reports, and it loads the root conftest alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).with_name(".results.json")
# The tests that are cells, and the prefix of their cells' names.
CELLS = {"test_matrix.py::test_conformance[": "", "test_quirks.py::test_quirk[": "quirk:"}
_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    prefix = next((p for test, p in CELLS.items() if test in report.nodeid), None)
    if prefix is None:
        return
    # "<scenario>-from-<client>-<target>", or "quirk:<quirk>-from-<client>-<body|stream>"
    cell = prefix + report.nodeid.split("[", 1)[1].rstrip("]")
    if (report.when == "call" or report.outcome == "failed") and _outcomes.get(cell) != "failed":
        _outcomes[cell] = report.outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    # Under xdist the controller receives every worker's reports: only it writes the file.
    if _outcomes and not hasattr(session.config, "workerinput"):
        RESULTS.write_text(json.dumps(_outcomes, indent=1, sort_keys=True))
