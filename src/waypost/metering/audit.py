"""The audit writer: request rows off the hot path, in batches, losing none.

``record()`` appends a request's rows (its ``request_log`` row, one row per upstream attempt, its
labels) to an in-process list and returns: it never waits and never raises. A background task
writes that list every ``audit.flush_interval`` seconds, or as soon as ``audit.batch_size``
requests wait, ``batch_size`` requests per transaction. Inserts are idempotent (unique request id,
``(request_id, attempt)``, label key), so writing a batch twice adds it once.

When the database cannot take a batch (unreachable, too slow), the batch goes to the spool: one
JSON-lines file per batch in ``audit.spool_dir``, written whole (a temporary name, then renamed),
bounded by ``audit.spool_max_bytes``. While the database is down new batches go straight there;
it is tried again after a back-off, and once it answers the spool is replayed file by file, each
file deleted after its transaction commits (a crash in between replays it again: idempotent). A
full spool drops the batch with an error in the log (counted in ``counts.dropped``).

A batch the database refuses while it answers (a bad value) is written request by request; a
request it still refuses goes to a ``rejected-*.jsonl`` file in the spool directory, which is never
replayed, for an operator to look at — one bad row never holds up the others.

``stop()`` writes everything recorded so far (or spools it) before the server exits. A SIGKILL
loses what was recorded since the last write: at most ``flush_interval`` seconds of requests.

The retention task deletes rows older than ``audit.retention_days``, a few thousand per
transaction, once at start and every hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy.engine import make_url

from waypost.settings import AuditSettings, Settings

log = logging.getLogger("waypost.audit")

Row = dict[str, Any]
Record = tuple[Row, Sequence[Row], Sequence[Row]]  # a request's row, its attempts' rows, its labels

WRITE_TIMEOUT = 15.0  # seconds a batch's transaction may take before the batch is spooled
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds before the database is tried again after a failure
RETENTION_EVERY = 3600.0  # seconds between retention runs
RETENTION_BATCH = 5000  # rows deleted per transaction
RETENTION_PAUSE = 0.05  # seconds between two deleting transactions: other writers get their turn
_DATETIME = "$datetime"  # how a datetime is tagged in spool files


class UsageLogSink(Protocol):
    """Where rows go: ``store.usage_log`` (``store/usage_log.py``)."""

    async def insert(
        self, requests: Sequence[Row], attempts: Sequence[Row], labels: Sequence[Row]
    ) -> None: ...

    async def delete_older_than(self, cutoff: datetime, limit: int) -> int: ...

    async def reachable(self) -> bool: ...


@dataclass
class AuditCounts:
    """What the writer has done since start (for metrics)."""

    recorded: int = 0  # requests handed to record()
    written: int = 0  # requests written to the database from memory
    spooled: int = 0  # requests written to the spool
    replayed: int = 0  # requests written to the database from the spool
    rejected: int = 0  # requests the database refused while answering (kept in rejected-*.jsonl)
    dropped: int = 0  # requests lost: the spool was full or could not be written


def default_spool_dir(settings: Settings) -> Path:
    """``audit.spool_dir``; else ``.waypost/spool`` beside the SQLite file; else in the current
    directory (``load_settings`` makes relative paths relative to the config file)."""
    if settings.audit.spool_dir:
        return Path(settings.audit.spool_dir)
    url = make_url(settings.database.url)
    database = url.database or ""
    if (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
    ):
        return Path(database).parent / ".waypost" / "spool"
    return Path(".waypost") / "spool"


class AuditWriter:
    def __init__(
        self,
        settings: AuditSettings,
        sink: UsageLogSink,
        spool_dir: Path,
        *,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.spool_dir = spool_dir
        self.counts = AuditCounts()
        self._sink = sink
        self._batch_size = settings.batch_size
        self._write_timeout = write_timeout
        self._pending: list[Record] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._retry_at = 0.0  # monotonic time before which the database is not tried (down)
        self._backoff = RETRY_FIRST
        self._spool_waiting = False  # spool files wait to be replayed
        self._names = count()
        # Told (seconds, requests) after each batch written from memory: the metrics' flush latency.
        self.on_write: Callable[[float, int], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, sink: UsageLogSink) -> AuditWriter:
        return cls(settings.audit, sink, default_spool_dir(settings))

    # -- the hot path ---------------------------------------------------------------------------

    def record(self, request: Row, attempts: Sequence[Row], labels: Sequence[Row]) -> None:
        """Queue a request's rows for the next write. Never blocks, never raises."""
        try:
            self.counts.recorded += 1
            if self._closed:  # after stop(): nothing will write memory any more
                self._spool_now([(request, attempts, labels)])
                return
            self._pending.append((request, attempts, labels))
            if len(self._pending) >= self._batch_size:
                self._wake.set()
        except Exception:
            log.exception("audit row not recorded", extra={"request_id": _rid(request)})

    @property
    def pending(self) -> int:
        """Requests recorded and not yet written or spooled."""
        return len(self._pending)

    def spool_bytes(self) -> int:
        """Bytes in the spool directory (batches waiting, and rejected rows); reads the directory."""
        try:
            return _spool_bytes(self.spool_dir)
        except FileNotFoundError:
            return 0

    # -- start and stop -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writing task (and the retention task when ``retention_days`` is set)."""
        self._spool_waiting = any(self._spool_files())
        self._task = asyncio.create_task(self._run(), name="audit-writer")
        if self.settings.retention_days is not None:
            self._retention = asyncio.create_task(self._retain(), name="audit-retention")

    async def stop(self) -> None:
        """Write everything recorded so far, spooling what the database does not take."""
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        else:
            await self.flush()
        self._closed = True
        if self._pending:  # recorded while the last write ran
            self._spool_now(self._pending)
            self._pending = []

    async def flush(self) -> None:
        """Write every pending request now (spooling what cannot be written), then replay the
        spool if the database answers."""
        try:
            while self._pending:
                batch = self._pending[: self._batch_size]
                del self._pending[: self._batch_size]
                await self._write(batch)
            if self._spool_waiting and not self._stopping and not self._down():
                await self._replay()
        except Exception:  # never expected: every step handles its own failures
            log.exception("audit writer failed")

    async def _run(self) -> None:
        interval = self.settings.flush_interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
        await self.flush()

    # -- writing --------------------------------------------------------------------------------

    def _down(self) -> bool:
        return time.monotonic() < self._retry_at

    def _went_down(self, exc: BaseException | None) -> None:
        if not self._down():
            log.error(
                "audit log: the database does not take rows (%s); spooling to %s, trying again in %.0f s",
                _reason(exc),
                self.spool_dir,
                self._backoff,
            )
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(RETRY_MAX, self._backoff * 2)

    def _came_back(self) -> None:
        if self._backoff > RETRY_FIRST:
            log.warning("audit log: the database takes rows again")
        self._retry_at, self._backoff = 0.0, RETRY_FIRST

    async def _insert(self, batch: Sequence[Record]) -> BaseException | None:
        """Insert ``batch`` in one transaction; the failure, or None."""
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._sink.insert(*_columns(batch))
        except Exception as exc:
            return exc
        return None

    async def _write(self, batch: list[Record]) -> None:
        if self._down():
            await self._spool(batch)
            return
        started = time.perf_counter()
        failure = await self._insert(batch)
        if failure is None:
            self._came_back()
            self.counts.written += len(batch)
            if self.on_write is not None:
                self.on_write(time.perf_counter() - started, len(batch))
            return
        if isinstance(failure, TimeoutError) or not await self._sink.reachable():
            self._went_down(failure)
            await self._spool(batch)
            return
        written, done = await self._write_each(batch, failure)
        self.counts.written += written
        if done < len(batch):
            await self._spool(batch[done:])

    async def _write_each(self, batch: list[Record], failure: BaseException) -> tuple[int, int]:
        """The database answers but refused ``batch``: write its requests one by one; the ones it
        refuses alone are set aside. Returns how many were written, and how many of ``batch``
        were dealt with (fewer than all when the database stopped answering)."""
        log.warning("audit log: a batch was refused (%s); writing its requests one by one", _reason(failure))
        written = 0
        for i, record in enumerate(batch):
            failure_one = await self._insert([record])
            if failure_one is None:
                written += 1
                continue
            if isinstance(failure_one, TimeoutError) or not await self._sink.reachable():
                self._went_down(failure_one)
                return written, i
            log.error(
                "audit log: request %s refused by the database (%s); kept in %s",
                _rid(record[0]),
                _reason(failure_one),
                self.spool_dir,
            )
            await self._spool([record], prefix="rejected")
        return written, len(batch)

    async def _replay(self) -> None:
        """Write the spooled batches, oldest first, each file deleted once its rows are in."""
        for path in sorted(self._spool_files()):
            try:
                batch = await asyncio.to_thread(_read, path)
            except FileNotFoundError:  # replayed by another worker sharing the directory
                continue
            except (OSError, ValueError) as exc:
                log.error("audit log: cannot read the spool file %s (%s); left in place", path, exc)
                continue
            written = len(batch)
            failure = await self._insert(batch) if batch else None
            if failure is not None:
                if isinstance(failure, TimeoutError) or not await self._sink.reachable():
                    self._went_down(failure)
                    return
                written, done = await self._write_each(batch, failure)
                if done < len(batch):
                    return  # the file stays; what was written is skipped when it is replayed again
            self._came_back()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self.counts.replayed += written
            if self._pending or self._stopping:
                return  # new rows first; the rest of the spool on a later turn
        self._spool_waiting = False
        log.info("audit log: the spool is replayed")

    # -- the spool ------------------------------------------------------------------------------

    def _spool_files(self) -> Iterable[Path]:
        try:
            with os.scandir(self.spool_dir) as entries:
                return [
                    Path(e.path) for e in entries if e.name.startswith("batch-") and e.name.endswith(".jsonl")
                ]
        except FileNotFoundError:
            return []

    async def _spool(self, batch: Sequence[Record], prefix: str = "batch") -> None:
        lines, failed = _encode(batch)
        await asyncio.to_thread(self._spool_lines, lines, len(batch) - failed, prefix)
        self.counts.dropped += failed

    def _spool_now(self, batch: Sequence[Record]) -> None:
        lines, failed = _encode(batch)
        self._spool_lines(lines, len(batch) - failed, "batch")
        self.counts.dropped += failed

    def _spool_lines(self, lines: list[bytes], n: int, prefix: str) -> None:
        """Write one spool file of ``lines`` (``n`` requests), whole or not at all."""
        if not lines:
            return
        data = b"".join(lines)
        name = f"{prefix}-{time.time_ns():020d}-{os.getpid()}-{next(self._names):06d}.jsonl"
        try:
            self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            used = _spool_bytes(self.spool_dir)
            if used + len(data) > self.settings.spool_max_bytes:
                log.error(
                    "audit log: the spool %s is full (%d of %d bytes); %d request row(s) dropped",
                    self.spool_dir,
                    used,
                    self.settings.spool_max_bytes,
                    n,
                )
                self.counts.dropped += n
                return
            tmp = self.spool_dir / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # rows may hold bodies
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            tmp.rename(self.spool_dir / name)
        except OSError as exc:
            log.error(
                "audit log: cannot write the spool %s (%s); %d request row(s) dropped", self.spool_dir, exc, n
            )
            self.counts.dropped += n
            return
        if prefix == "batch":
            self.counts.spooled += n
            self._spool_waiting = True
        else:
            self.counts.rejected += n

    # -- retention ------------------------------------------------------------------------------

    async def _retain(self) -> None:
        while True:
            try:
                await self.delete_expired()
            except Exception as exc:
                log.warning("audit log: retention run failed (%s); trying again later", _reason(exc))
            await asyncio.sleep(RETENTION_EVERY)

    async def delete_expired(self, now: datetime | None = None) -> int:
        """Delete requests older than ``retention_days`` in short transactions; how many went."""
        days = self.settings.retention_days
        if days is None:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        total = 0
        while True:
            gone = await self._sink.delete_older_than(cutoff, RETENTION_BATCH)
            total += gone
            if gone < RETENTION_BATCH:
                break
            await asyncio.sleep(RETENTION_PAUSE)
        if total:
            log.info("audit log: %d request(s) older than %d day(s) deleted", total, days)
        return total


# -- spool encoding -------------------------------------------------------------------------------


def _columns(batch: Sequence[Record]) -> tuple[list[Row], list[Row], list[Row]]:
    return (
        [request for request, _, _ in batch],
        [row for _, attempts, _ in batch for row in attempts],
        [row for _, _, labels in batch for row in labels],
    )


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    raise TypeError(f"cannot store a {type(value).__name__}")


def _encode(batch: Sequence[Record]) -> tuple[list[bytes], int]:
    """One JSON line per request; and how many could not be encoded (logged)."""
    lines: list[bytes] = []
    failed = 0
    for request, attempts, labels in batch:
        try:
            lines.append(
                orjson.dumps(
                    {"request": request, "attempts": attempts, "labels": labels},
                    default=_default,
                    option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE,
                )
            )
        except TypeError as exc:
            log.error("audit log: request %s cannot be spooled (%s); dropped", _rid(request), exc)
            failed += 1
    return lines, failed


def _decode_row(row: Row) -> Row:
    for key, value in row.items():
        if isinstance(value, dict) and len(value) == 1 and _DATETIME in value:
            row[key] = datetime.fromisoformat(value[_DATETIME])
    return row


def _read(path: Path) -> list[Record]:
    """A spool file's requests."""
    batch: list[Record] = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        item = orjson.loads(line)
        batch.append(
            (
                _decode_row(item["request"]),
                [_decode_row(r) for r in item["attempts"]],
                [_decode_row(r) for r in item["labels"]],
            )
        )
    return batch


def _spool_bytes(directory: Path) -> int:
    total = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                total += entry.stat().st_size
    return total


def _rid(request: Any) -> str:
    return str(request.get("request_id")) if isinstance(request, dict) else "?"


def _reason(exc: BaseException | None) -> str:
    """A short cause for the log: the exception's class and first line, never bound values
    (engines are built with ``hide_parameters``)."""
    if exc is None:
        return "unknown"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
