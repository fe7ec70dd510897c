"""The control-plane suites run against a real gateway on a fresh database of the run's backend
(``WAYPOST_TEST_DATABASE``: SQLite by default, PostgreSQL when set; ``make test`` runs both)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control
from tests.harness import model, settings


@pytest.fixture
async def api(database: dict[str, Any]) -> AsyncIterator[Control]:
    """A gateway on a fresh database (one mock model, ``echo``), and its client."""
    async with control(settings(model("echo", "mock"), database=database)) as client:
        yield client
