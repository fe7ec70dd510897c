"""How the gateway's database engine hands out connections."""

from __future__ import annotations

from pathlib import Path

from waypost.settings import DatabaseSettings
from waypost.store.engine import create_engine


async def test_sqlite_file_connections_are_reused_last_in_first_out(tmp_path: Path) -> None:
    # The audit writer's flushes come one at a time: each should find the connection used last,
    # whose page cache holds the pages it wrote, not the one idle longest (bench/RESULTS.md,
    # "The audit log's own cost in SQLite").
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'w.db'}", pool_size=3))
    try:
        first = await engine.connect()
        second = await engine.connect()
        first_driver = (await first.get_raw_connection()).driver_connection
        second_driver = (await second.get_raw_connection()).driver_connection
        await first.close()
        await second.close()  # returned last
        again = await engine.connect()
        driver = (await again.get_raw_connection()).driver_connection
        assert driver is second_driver
        assert driver is not first_driver
        await again.close()
    finally:
        await engine.dispose()
