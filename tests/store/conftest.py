"""A migrated store on a fresh database, once per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from waypost.settings import DatabaseSettings
from waypost.store import Store


@pytest.fixture
async def store(database: dict[str, Any]) -> AsyncIterator[Store]:
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()
