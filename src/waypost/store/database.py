"""The store: one engine and the repositories over it."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from waypost.settings import DatabaseSettings
from waypost.store import migrate
from waypost.store.access import AssignmentRepo, ModelRepo
from waypost.store.admin_trail import AdminTrailRepo
from waypost.store.budgets import BudgetRepo
from waypost.store.credentials import FlowRepo, RefreshRepo, TokenRepo
from waypost.store.engine import create_engine
from waypost.store.migrate import Migration
from waypost.store.people import GrantRepo, GroupRepo, UserRepo
from waypost.store.rate_limits import RateLimitRepo
from waypost.store.responses import ResponseRepo
from waypost.store.rules import RuleRepo
from waypost.store.usage_latency import LatencyReportRepo
from waypost.store.usage_log import UsageLogRepo
from waypost.store.usage_reports import UsageReportRepo
from waypost.store.vault import KvRepo, SecretRepo

PING_TIMEOUT = 3.0  # seconds


class Store:
    """Persistence for identity and access; every method is one transaction."""

    def __init__(self, engine: AsyncEngine, *, schema: str | None = None) -> None:
        self.engine = engine
        self._schema = schema
        self.users = UserRepo(engine)
        self.groups = GroupRepo(engine)
        self.grants = GrantRepo(engine)
        self.models = ModelRepo(engine)
        self.assignments = AssignmentRepo(engine)
        self.tokens = TokenRepo(engine)
        self.refresh = RefreshRepo(engine)
        self.secrets = SecretRepo(engine)
        self.flows = FlowRepo(engine)
        self.kv = KvRepo(engine)
        self.budgets = BudgetRepo(engine)  # definitions; the counters are in the state backend
        self.rate_limits = RateLimitRepo(engine)  # definitions; the counters are in the state backend
        self.rules = RuleRepo(engine)  # policy rules; the engine holds them compiled in memory
        self.admin_trail = AdminTrailRepo(engine)  # who changed what, as a hash chain
        self.usage_reports = UsageReportRepo(engine)  # read-only reports over the audit log
        self.usage_latency = LatencyReportRepo(engine)  # latency percentiles over the audit log
        self.usage_log = UsageLogRepo(engine)  # written by the audit writer (metering/audit.py)
        self.responses = ResponseRepo(engine)  # the Responses API's kept conversations

    @classmethod
    def from_settings(cls, db: DatabaseSettings) -> Store:
        """Build the engine; nothing connects until the first query."""
        return cls(create_engine(db), schema=db.postgres_schema)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    async def upgrade(self) -> None:
        """Migrate to the newest schema (creating the PostgreSQL schema if missing)."""
        await migrate.upgrade(self.engine, self._schema)

    async def migrate_to_head(self, *, wait: bool = True) -> Migration:
        """``upgrade``, saying what it found; ``wait=False``: ``MigrationBusy`` when another
        process is migrating (PostgreSQL)."""
        return await migrate.migrate(self.engine, self._schema, wait=wait)

    async def revision(self) -> str | None:
        return await migrate.current_revision(self.engine, self._schema)

    async def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` within a few seconds."""
        try:
            async with asyncio.timeout(PING_TIMEOUT), self.engine.connect() as conn:
                await conn.execute(sa.select(1))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
