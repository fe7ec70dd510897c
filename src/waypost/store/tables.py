"""Table definitions (SQLAlchemy Core), portable between SQLite and PostgreSQL.

The migrations in ``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# BIGINT identity on PostgreSQL; on SQLite only ``INTEGER PRIMARY KEY`` is the rowid.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out. SQLite keeps no zone: values are stored as UTC wall time
    (fixed-width text, so comparisons in SQL still order correctly) and get UTC back on reading."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        # A naive datetime is taken to be UTC already: everything in the gateway is.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# None is SQL NULL (a token without a model restriction), not the JSON text "null".
Json = sa.JSON(none_as_null=True)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, sa.Identity(), primary_key=True)


def _owner(table: str, nullable: bool = True) -> sa.Column[int]:
    """A foreign key to users or groups whose rows go when the owner goes."""
    return sa.Column(
        f"{table[:-1]}_id", Id, sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=nullable
    )


# ``sqlite_autoincrement``: ids are never reused, so a deleted user's id (the ``sub`` of JWTs still
# in flight) never comes back as somebody else. PostgreSQL identities never reuse values anyway.

users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # stored lower-cased
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("last_login_at", UtcDateTime()),
    sqlite_autoincrement=True,
)

groups = sa.Table(
    "groups",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column(
        "group_id", Id, sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, nullable=False
    ),
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False),
    sa.Index(None, "user_id"),
)

# Exactly one owner per row. A NULL owner never collides in a unique constraint (on both
# backends), so (user_id, permission) and (group_id, permission) are unique each on their own.
grants = sa.Table(
    "grants",
    metadata,
    _id(),
    _owner("users"),
    _owner("groups"),
    sa.Column("permission", sa.String(64), nullable=False),
    sa.CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_owner"),
    sa.UniqueConstraint("user_id", "permission"),
    sa.UniqueConstraint("group_id", "permission"),
    sqlite_autoincrement=True,
)

models = sa.Table(
    "models",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("config", Json, nullable=False),
    sa.Column("public", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

# By model NAME, not a foreign key: models declared in the config file can be assigned too.
model_assignments = sa.Table(
    "model_assignments",
    metadata,
    _id(),
    sa.Column("model_name", sa.String(128), nullable=False),
    _owner("users"),
    _owner("groups"),
    sa.CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_owner"),
    sa.UniqueConstraint("model_name", "user_id"),
    sa.UniqueConstraint("model_name", "group_id"),
    sa.Index(None, "user_id"),
    sa.Index(None, "group_id"),
    sqlite_autoincrement=True,
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    _owner("users", nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("models", Json),
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("last_used_at", UtcDateTime()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index(None, "user_id"),
    sqlite_autoincrement=True,
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    _id(),
    _owner("users", nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime()),
    sa.Index(None, "user_id"),
    sqlite_autoincrement=True,
)

secrets = sa.Table(
    "secrets",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("ciphertext", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

login_flows = sa.Table(
    "login_flows",
    metadata,
    sa.Column("state", sa.String(128), primary_key=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("redirect_to", sa.Text()),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index(None, "expires_at"),  # pruning abandoned logins
)

kv = sa.Table(
    "kv",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

# --- Metering (migration 0002): the audit log, its attempts, the admin trail, budgets. ---
# Request and attempt rows name people and models by id AND by name, without foreign keys: the
# log outlives the users, tokens and models it mentions. Money is integer micro-dollars.

request_log = sa.Table(
    "request_log",
    metadata,
    _id(),
    # The gateway's own id for the request, unique: replays of a row are idempotent, and a caller
    # cannot make two requests one by sending the same X-Request-ID (its id is the next column).
    sa.Column("request_id", sa.String(128), nullable=False, unique=True),
    sa.Column("client_request_id", sa.String(128)),  # the caller's X-Request-ID, when it sent one
    sa.Column("created_at", UtcDateTime(), nullable=False),  # when the request arrived
    sa.Column("user_id", Id),
    sa.Column("user_email", sa.String(320)),
    sa.Column("token_id", Id),
    sa.Column("groups", Json),  # group names
    sa.Column("tags", Json),
    sa.Column("endpoint", sa.String(64), nullable=False),  # chat, messages, completions, embeddings, ...
    sa.Column("client_format", sa.String(32), nullable=False),
    sa.Column("requested_model", sa.String(256)),
    sa.Column("model", sa.String(256)),  # the model (deployment) that served
    sa.Column("provider", sa.String(64)),
    sa.Column("upstream_model", sa.String(256)),
    sa.Column("stream", sa.Boolean(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("error_class", sa.String(64)),
    sa.Column("error_message", sa.Text()),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("ttft_ms", sa.Float()),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),  # uncached
    sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),  # incl. reasoning
    sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("usage_estimated", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("cost_breakdown", Json),  # component -> micro-dollars, and the price source
    sa.Column("priced", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("cache_status", sa.String(16)),
    sa.Column("rules", Json),  # policy decisions: [{"rule", "action", "mode"}, ...]
    sa.Column("client_ip", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("request_body", sa.Text()),  # only with audit.log_bodies, masked
    sa.Column("response_body", sa.Text()),
    # A cache hit: what the upstream call it replaced would have cost (the hit itself costs 0).
    sa.Column("saved_micros", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Index(None, "created_at"),
    sa.Index(None, "client_request_id"),
    sa.Index(None, "user_id", "created_at"),
    sa.Index(None, "model", "created_at"),
    sqlite_autoincrement=True,
)

# A request's tags and its user's groups, one row each, so reports group and filter by them
# with plain SQL on both backends (no JSON functions).
request_labels = sa.Table(
    "request_labels",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True, nullable=False),
    sa.Column("kind", sa.String(8), primary_key=True, nullable=False),  # tag | group
    sa.Column("value", sa.String(128), primary_key=True, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index(None, "kind", "value", "created_at"),
)

request_attempts = sa.Table(
    "request_attempts",
    metadata,
    _id(),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),  # 1, 2, ... in the order they were made
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("model", sa.String(256)),
    sa.Column("provider", sa.String(64)),
    sa.Column("upstream_model", sa.String(256)),
    sa.Column("status", sa.Integer(), nullable=False),  # the upstream's status, 0 when none came
    sa.Column("error_class", sa.String(64)),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default="0"),
    sa.UniqueConstraint("request_id", "attempt"),
    sa.Index(None, "created_at"),
    sqlite_autoincrement=True,
)

admin_audit = sa.Table(
    "admin_audit",
    metadata,
    _id(),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("actor_id", Id),
    sa.Column("actor_email", sa.String(320)),
    sa.Column("action", sa.String(64), nullable=False),  # e.g. user.create, budget.delete
    sa.Column("target_type", sa.String(32), nullable=False),
    sa.Column("target_id", sa.String(256)),
    sa.Column("client_ip", sa.String(64)),
    sa.Column("before", Json),  # secrets removed
    sa.Column("after", Json),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Index(None, "created_at"),
    sqlite_autoincrement=True,
)

budgets = sa.Table(
    "budgets",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("scope", sa.String(16), nullable=False),  # user, group, token, model, tag, global
    sa.Column("target", sa.String(320)),  # the user/group/token id, model name or tag; null for global
    sa.Column("limit_micros", sa.BigInteger()),
    sa.Column("limit_tokens", sa.BigInteger()),
    sa.Column("period", sa.String(16), nullable=False),  # daily, weekly, monthly, quarterly, total
    sa.Column("rolling", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("config", Json, nullable=False),  # action, status, fallback model, alerts, webhook, ...
    sa.Column("counted_from", UtcDateTime()),  # set by a reset that discards the period's usage
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)


rules = sa.Table(
    "rules",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("weight", sa.Integer(), nullable=False, server_default="0"),  # highest first
    sa.Column("mode", sa.String(16), nullable=False, server_default="enforce"),  # enforce, shadow, off
    sa.Column("conditions", Json, nullable=False),  # the condition tree (and/or groups)
    sa.Column("action", Json, nullable=False),  # {"type": "block"|"reroute"|"allow"|"rewrite", ...}
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    _id(),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("scope", sa.String(16), nullable=False),  # token, user, group, model, default
    sa.Column("target", sa.String(320)),  # the token/user/group id or model name; null for default
    sa.Column("config", Json, nullable=False),  # windows (requests/tokens per period), concurrency
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

# --- The Responses API's kept conversations (migration 0004; api/responses_state.py). ---
# One row per response kept (``store``), readable by its user only, until ``expires_at``. The
# bodies are JSON text, masked like audit bodies; ``previous_id`` links a conversation's turns
# (no foreign key: an earlier turn may expire or be deleted first).
stored_responses = sa.Table(
    "stored_responses",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),  # the response id the client got
    sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("previous_id", sa.String(128)),  # the request's ``previous_response_id``
    sa.Column("model", sa.String(256), nullable=False),  # the model asked for
    sa.Column("instructions", sa.Text()),  # JSON text
    sa.Column("input", sa.Text(), nullable=False),  # JSON text: the request's own input items
    sa.Column("response", sa.Text(), nullable=False),  # JSON text: the response object, as sent
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index(None, "user_id", "created_at"),
    sa.Index(None, "expires_at"),  # the purge
)
