"""The audit writer on SQLite and PostgreSQL: batched writes off the hot path, idempotent inserts,
the on-disk spool while the database is unreachable (a missing SQLite directory; a severed TCP
connection in front of PostgreSQL), replayed exactly once, retention."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.dbs import BACKENDS, fresh_database
from tests.tcp_proxy import tcp_proxy
from tests.usage_rows import attempt_row, request_row
from waypost.metering.audit import AuditWriter, default_spool_dir
from waypost.settings import AuditSettings, DatabaseSettings, Settings, load_settings
from waypost.store import Store, tables

WAIT = 60.0  # seconds a test waits for something that should happen long before


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    async with fresh_database(request.param) as section:
        store = Store.from_settings(DatabaseSettings.model_validate(section))
        await store.upgrade()
        try:
            yield store
        finally:
            await store.close()


def make_writer(store: Store, spool: Path, **audit: Any) -> AuditWriter:
    return AuditWriter(AuditSettings.model_validate(audit), store.usage_log, spool)


def one_request(rid: str, **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A request's row, two attempts (a retried one) and its labels, as the metering stage makes them."""
    row = request_row(request_id=rid, tags=["team-a"], groups=["eng"], attempts=2, **fields)
    attempts = [attempt_row(row, 1, status=503, error_class="UpstreamUnavailable"), attempt_row(row, 2)]
    labels = [
        {"request_id": rid, "kind": "tag", "value": "team-a", "created_at": row["created_at"]},
        {"request_id": rid, "kind": "group", "value": "eng", "created_at": row["created_at"]},
    ]
    return row, attempts, labels


async def counts(store: Store) -> tuple[int, int, int]:
    """Rows in request_log, request_attempts, request_labels."""
    async with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            [
                await conn.scalar(sa.select(sa.func.count()).select_from(table))
                for table in (tables.request_log, tables.request_attempts, tables.request_labels)
            ]
        )


async def request_ids(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return list((await conn.scalars(sa.select(tables.request_log.c.request_id))).all())


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT:g} s: {what}")
        await asyncio.sleep(0.02)


def spool_files(spool: Path, prefix: str = "batch-") -> list[Path]:
    return sorted(p for p in spool.glob(f"{prefix}*.jsonl")) if spool.exists() else []


def spooled_lines(spool: Path, prefix: str = "batch-") -> int:
    return sum(len(p.read_bytes().splitlines()) for p in spool_files(spool, prefix))


# -- writing --------------------------------------------------------------------------------------


async def test_record_returns_at_once_and_the_rows_are_written_within_the_flush_interval(
    store: Store, tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path, flush_interval=0.05, batch_size=1000)
    writer.start()
    try:
        for i in range(3):
            writer.record(*one_request(f"r-{i}"))
        assert writer.pending == 3  # nothing written inside record()
        await eventually(lambda: _equals(counts(store), (3, 6, 6)), "3 requests written")
    finally:
        await writer.stop()
    assert writer.counts.written == 3


async def test_json_columns_given_as_json_text_are_stored_as_json(store: Store, tmp_path: Path) -> None:
    """The metering stage hands JSON columns as their text (store/usage_log.py): stored as the
    values themselves, whether the rows take the driver's fast path (every column) or
    SQLAlchemy's (some columns left to their defaults)."""
    whole = request_row(request_id="text-1", tags='["a", "b"]', cost_breakdown='{"input": 5, "source": "x"}')
    partial = {
        k: v
        for k, v in request_row(request_id="text-2", rules='[{"rule": "r"}]').items()
        if k != "saved_micros"
    }
    writer = make_writer(store, tmp_path, flush_interval=0.05)
    writer.start()
    try:
        writer.record(whole, (), ())
        writer.record(partial, (), ())
    finally:
        await writer.stop()
    log = tables.request_log
    async with store.engine.connect() as conn:
        rows = {
            r.request_id: r
            for r in await conn.execute(
                sa.select(log.c.request_id, log.c.tags, log.c.cost_breakdown, log.c.rules)
            )
        }
    assert rows["text-1"].tags == ["a", "b"]
    assert rows["text-1"].cost_breakdown == {"input": 5, "source": "x"}
    assert rows["text-2"].rules == [{"rule": "r"}]


async def test_a_full_batch_is_written_without_waiting_for_the_interval(store: Store, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path, flush_interval=60, batch_size=5)
    writer.start()
    try:
        for i in range(5):
            writer.record(*one_request(f"r-{i}"))
        await eventually(lambda: _equals(counts(store), (5, 10, 10)), "the batch written")
    finally:
        await writer.stop()


async def test_stop_writes_every_request_recorded(store: Store, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path, flush_interval=60, batch_size=500)
    writer.start()
    for i in range(1200):
        writer.record(*one_request(f"r-{i:04d}"))
    await writer.stop()
    assert await counts(store) == (1200, 2400, 2400)
    assert writer.counts.written == 1200 and writer.pending == 0
    assert spool_files(tmp_path) == []


async def test_a_request_recorded_twice_is_stored_once(store: Store, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path, batch_size=1)
    writer.start()
    writer.record(*one_request("same"))
    await eventually(lambda: _equals(counts(store), (1, 2, 2)), "the first copy written")
    writer.record(*one_request("same", cost_micros=999))
    await writer.stop()
    assert await counts(store) == (1, 2, 2)
    async with store.engine.connect() as conn:
        assert await conn.scalar(sa.select(tables.request_log.c.cost_micros)) == 1000  # the first


async def test_a_row_the_database_refuses_is_set_aside_and_the_rest_of_its_batch_is_written(
    store: Store, tmp_path: Path
) -> None:
    writer = make_writer(store, tmp_path / "spool", flush_interval=60, batch_size=100)
    writer.start()
    writer.record(*one_request("good-1"))
    bad, attempts, labels = one_request("bad")
    writer.record({**bad, "no_such_column": 1}, attempts, labels)
    writer.record(None, None, None)  # type: ignore[arg-type]  # never raises, whatever it is given
    writer.record(*one_request("good-2"))
    await writer.stop()
    assert sorted(await request_ids(store)) == ["good-1", "good-2"]
    assert (writer.counts.written, writer.counts.rejected, writer.counts.dropped) == (2, 2, 0)
    assert spool_files(tmp_path / "spool") == []  # nothing to replay: rejected rows are kept apart
    assert spooled_lines(tmp_path / "spool", "rejected-") == 2


# -- retention ------------------------------------------------------------------------------------


async def test_retention_deletes_requests_older_than_retention_days_with_their_attempts_and_labels(
    store: Store, tmp_path: Path
) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    writer = make_writer(store, tmp_path, retention_days=30)
    for i, age in enumerate([40, 31, 31, 29, 1]):
        writer.record(*one_request(f"r-{i}", created_at=now - timedelta(days=age)))
    await writer.flush()
    assert await writer.delete_expired(now) == 3
    assert sorted(await request_ids(store)) == ["r-3", "r-4"]
    assert await counts(store) == (2, 4, 4)
    assert await writer.delete_expired(now) == 0


async def test_retention_deletes_in_batches_of_the_given_size(store: Store, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path)
    old = datetime(2020, 1, 1, tzinfo=UTC)
    for i in range(5):
        writer.record(*one_request(f"r-{i}", created_at=old))
    await writer.flush()
    cutoff = datetime(2021, 1, 1, tzinfo=UTC)
    assert [await store.usage_log.delete_older_than(cutoff, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert await counts(store) == (0, 0, 0)


async def test_without_retention_days_nothing_is_deleted(store: Store, tmp_path: Path) -> None:
    writer = make_writer(store, tmp_path)
    writer.record(*one_request("r", created_at=datetime(2000, 1, 1, tzinfo=UTC)))
    await writer.flush()
    assert await writer.delete_expired() == 0
    assert await counts(store) == (1, 2, 2)


# -- the spool (SQLite: the database file's directory is missing) ---------------------------------


@pytest.fixture
async def unreachable(tmp_path: Path) -> AsyncIterator[Store]:
    """A store whose SQLite database cannot be opened (its directory does not exist yet)."""
    store = Store.from_settings(DatabaseSettings(url=f"sqlite:///{tmp_path}/later/waypost.db"))
    try:
        yield store
    finally:
        await store.close()


async def make_reachable(tmp_path: Path) -> None:
    (tmp_path / "later").mkdir()
    migrated = Store.from_settings(DatabaseSettings(url=f"sqlite:///{tmp_path}/later/waypost.db"))
    await migrated.upgrade()
    await migrated.close()


async def test_while_the_database_is_unreachable_rows_are_spooled_then_written_once_when_it_returns(
    unreachable: Store, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    writer = make_writer(unreachable, spool, flush_interval=0.05, batch_size=3)
    writer.start()
    try:
        for i in range(10):
            writer.record(*one_request(f"r-{i:02d}"))
        await eventually(lambda: _true(writer.counts.spooled == 10), "10 requests spooled")
        assert spooled_lines(spool) == 10
        await make_reachable(tmp_path)
        await eventually(lambda: _true(not spool_files(spool)), "the spool replayed")
        assert sorted(await request_ids(unreachable)) == [f"r-{i:02d}" for i in range(10)]
        assert await counts(unreachable) == (10, 20, 20)
    finally:
        await writer.stop()
    assert (writer.counts.replayed, writer.counts.dropped) == (10, 0)


async def test_stop_while_the_database_is_unreachable_spools_everything_for_the_next_start(
    unreachable: Store, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    writer = make_writer(unreachable, spool, flush_interval=60)
    writer.start()
    for i in range(7):
        writer.record(*one_request(f"r-{i}"))
    await writer.stop()
    assert spooled_lines(spool) == 7
    writer.record(*one_request("after-stop"))  # a request that ends after the writer stopped
    assert spooled_lines(spool) == 8

    await make_reachable(tmp_path)
    again = make_writer(unreachable, spool, flush_interval=0.05)
    again.start()  # the next start replays what the last one left
    try:
        await eventually(lambda: _true(not spool_files(spool)), "the spool replayed")
    finally:
        await again.stop()
    assert await counts(unreachable) == (8, 16, 16)


async def test_a_spooled_batch_already_in_the_database_is_not_written_twice(
    unreachable: Store, tmp_path: Path
) -> None:
    # As when a commit succeeded but its answer was lost, or the process died before deleting
    # the spool file: replaying it must add nothing.
    spool = tmp_path / "spool"
    writer = make_writer(unreachable, spool)
    records = [one_request(f"r-{i}") for i in range(4)]
    for record in records:
        writer.record(*record)
    await writer.stop()
    await make_reachable(tmp_path)
    await unreachable.usage_log.insert(*[[row for r in records for row in part(r)] for part in _parts()])
    again = make_writer(unreachable, spool)
    again.start()
    await again.stop()  # nothing recorded: stop() alone does not replay...
    assert spool_files(spool)
    again = make_writer(unreachable, spool, flush_interval=0.05)
    again.start()  # ...a running writer does
    try:
        await eventually(lambda: _true(not spool_files(spool)), "the spool replayed")
    finally:
        await again.stop()
    assert await counts(unreachable) == (4, 8, 8)


async def test_a_full_spool_drops_rows_and_says_so(
    unreachable: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    writer = make_writer(unreachable, spool, batch_size=1, spool_max_bytes=4096)
    for i in range(10):
        writer.record(*one_request(f"r-{i}"))
    await writer.stop()
    spooled = spooled_lines(spool)
    assert 0 < spooled < 10
    assert sum(p.stat().st_size for p in spool.iterdir()) <= 4096
    assert (writer.counts.spooled, writer.counts.dropped) == (spooled, 10 - spooled)
    assert any("the spool" in r.getMessage() and "is full" in r.getMessage() for r in caplog.records)


async def test_spool_files_are_readable_by_their_owner_only(unreachable: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writer = make_writer(unreachable, spool)
    writer.record(*one_request("r"))
    await writer.stop()
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in spool.iterdir()] == [0o600]


def test_the_spool_is_beside_the_sqlite_file_unless_configured(tmp_path: Path) -> None:
    sqlite = Settings.model_validate({"database": {"url": f"sqlite:///{tmp_path}/db/waypost.db"}})
    assert default_spool_dir(sqlite) == tmp_path / "db" / ".waypost" / "spool"
    postgres = Settings.model_validate({"database": {"url": "postgresql://u@h/db"}})
    assert default_spool_dir(postgres) == Path(".waypost/spool")
    configured = Settings.model_validate({"audit": {"spool_dir": str(tmp_path / "s")}})
    assert default_spool_dir(configured) == tmp_path / "s"


def test_a_config_files_relative_spool_is_beside_it_wherever_the_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool found in another directory at the next start would never be replayed."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = tmp_path / "etc" / "waypost.yaml"
    config.write_text("audit:\n  spool_dir: spool\n")
    assert default_spool_dir(load_settings(config, {})) == tmp_path / "etc" / "spool"
    # With PostgreSQL there is no SQLite file to keep it beside: beside the config file then.
    config.write_text("database:\n  url: postgresql://u@h/db\n")
    assert default_spool_dir(load_settings(config, {})) == tmp_path / "etc" / ".waypost" / "spool"


# -- a real outage: PostgreSQL behind a TCP proxy that is severed, then restored ------------------


async def test_a_severed_database_connection_then_recovery_writes_every_row_exactly_once(
    tmp_path: Path,
) -> None:
    async with fresh_database("postgresql") as section:
        direct = Store.from_settings(DatabaseSettings.model_validate(section))
        await direct.upgrade()
        url = make_url(section["url"])
        async with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied_url = url.set(port=proxy.port).render_as_string(hide_password=False)
            proxied = Store.from_settings(DatabaseSettings.model_validate({**section, "url": proxied_url}))
            spool = tmp_path / "spool"
            writer = make_writer(proxied, spool, flush_interval=0.05, batch_size=10)
            writer.start()
            try:
                for i in range(25):  # before: written through the proxy, connections pooled
                    writer.record(*one_request(f"before-{i:02d}"))
                await eventually(lambda: _true(writer.counts.written == 25), "25 requests written")
                assert proxy.connections > 0

                proxy.sever()
                for i in range(40):  # during: the database is gone mid-connection
                    writer.record(*one_request(f"during-{i:02d}"))
                    await asyncio.sleep(0.005)
                await eventually(lambda: _true(writer.pending == 0 and writer.counts.spooled > 0), "spooled")
                assert (await counts(direct))[0] < 65

                proxy.restore()
                for i in range(15):  # after: new rows while the spool is replayed
                    writer.record(*one_request(f"after-{i:02d}"))
                await eventually(lambda: _true(not spool_files(spool)), "the spool replayed")
                await eventually(lambda: _equals(counts(direct), (80, 160, 160)), "every row written")
            finally:
                await writer.stop()
                await proxied.close()
        ids = await request_ids(direct)
        await direct.close()
    assert len(ids) == len(set(ids)) == 80
    assert writer.counts.dropped == 0 and writer.counts.rejected == 0
    assert writer.counts.written + writer.counts.replayed >= 80


# -- helpers --------------------------------------------------------------------------------------


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _true(value: bool) -> bool:
    return value


def _parts() -> list[Callable[[Any], list[dict[str, Any]]]]:
    return [lambda r: [r[0]], lambda r: r[1], lambda r: r[2]]


async def test_sqlite_rows_split_over_statements_by_its_parameter_limit(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite takes a slice of rows in as few statements as its parameter limit allows (one row
    per statement here), each row once, duplicates within the batch included."""
    from waypost.store import usage_log

    monkeypatch.setattr(usage_log, "SQLITE_VARIABLES", 80)  # fewer than two rows' columns
    writer = make_writer(store, tmp_path, flush_interval=60, batch_size=500)
    writer.start()
    for i in range(70):
        writer.record(*one_request(f"r-{i:03d}"))
    writer.record(*one_request("r-005"))  # again, in the same batch
    await writer.stop()
    assert await counts(store) == (70, 140, 140)


async def test_unix_times_are_stored_as_the_times_they_are(store: Store, tmp_path: Path) -> None:
    """The metering stage hands times over as Unix times; each is stored as the instant it is
    (to the microsecond, rounded as ``datetime.fromtimestamp`` rounds), through the driver's fast
    path and through SQLAlchemy's (a row without every column), and one whose microseconds round
    up into the next second is in that second."""
    times = [1_767_225_599.9999996, 1_767_225_600.25, 1_767_225_600.0000004, 1_764_900_000.123456]
    writer = make_writer(store, tmp_path, flush_interval=60)
    writer.start()
    for i, when in enumerate(times):
        request, attempts, labels = one_request(f"t-{i}", created_at=when)
        writer.record(request, [{**a, "created_at": when + 0.5} for a in attempts], labels)
    partial = {
        k: v for k, v in request_row(request_id="t-partial", created_at=times[1]).items() if k != "rules"
    }
    writer.record(partial, [], [])
    await writer.stop()
    async with store.engine.connect() as conn:
        stored = dict(
            (
                await conn.execute(
                    sa.select(tables.request_log.c.request_id, tables.request_log.c.created_at)
                )
            ).all()
        )
        tried = (
            await conn.execute(
                sa.select(tables.request_attempts.c.request_id, tables.request_attempts.c.created_at)
            )
        ).all()
        labelled = (
            await conn.execute(
                sa.select(tables.request_labels.c.request_id, tables.request_labels.c.created_at)
            )
        ).all()
    expected = {f"t-{i}": datetime.fromtimestamp(when, UTC) for i, when in enumerate(times)}
    assert stored == {**expected, "t-partial": datetime.fromtimestamp(times[1], UTC)}
    assert stored["t-0"] == datetime(2026, 1, 1, tzinfo=UTC)  # .9999996 rounds up into the new year
    assert {(rid, at) for rid, at in tried} == {
        (rid, datetime.fromtimestamp(times[int(rid[2:])] + 0.5, UTC)) for rid in expected
    }
    assert all(at == expected[rid] for rid, at in labelled) and len(labelled) == 2 * len(times)
