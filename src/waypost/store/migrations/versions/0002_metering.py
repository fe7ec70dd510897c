"""Metering: the request log and its attempts, the admin audit trail, budgets.

Revision ID: 0002_metering
Revises: 0001_identity
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_metering"
down_revision: str | Sequence[str] | None = "0001_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from tables.py: a migration must not change when the
# current table definitions do.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
NO_REUSE = {"sqlite_autoincrement": True}


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, sa.Identity(), nullable=False)


def _tokens() -> list[sa.Column[int]]:
    return [
        sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    ]


def upgrade() -> None:
    op.create_table(
        "request_log",
        _id(),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("client_request_id", sa.String(128)),
        sa.Column("created_at", When, nullable=False),
        sa.Column("user_id", Id),
        sa.Column("user_email", sa.String(320)),
        sa.Column("token_id", Id),
        sa.Column("groups", sa.JSON()),
        sa.Column("tags", sa.JSON()),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("client_format", sa.String(32), nullable=False),
        sa.Column("requested_model", sa.String(256)),
        sa.Column("model", sa.String(256)),
        sa.Column("provider", sa.String(64)),
        sa.Column("upstream_model", sa.String(256)),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        *_tokens(),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_breakdown", sa.JSON()),
        sa.Column("priced", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("cache_status", sa.String(16)),
        sa.Column("rules", sa.JSON()),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(512)),
        sa.Column("request_body", sa.Text()),
        sa.Column("response_body", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_request_log"),
        sa.UniqueConstraint("request_id", name="uq_request_log_request_id"),
        **NO_REUSE,
    )
    op.create_index("ix_request_log_created_at", "request_log", ["created_at"])
    op.create_index("ix_request_log_client_request_id", "request_log", ["client_request_id"])
    op.create_index("ix_request_log_user_id_created_at", "request_log", ["user_id", "created_at"])
    op.create_index("ix_request_log_model_created_at", "request_log", ["model", "created_at"])
    op.create_table(
        "request_labels",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "kind", "value", name="pk_request_labels"),
    )
    op.create_index(
        "ix_request_labels_kind_value_created_at", "request_labels", ["kind", "value", "created_at"]
    )
    op.create_table(
        "request_attempts",
        _id(),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("provider", sa.String(64)),
        sa.Column("upstream_model", sa.String(256)),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(64)),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        *_tokens(),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_request_attempts"),
        sa.UniqueConstraint("request_id", "attempt", name="uq_request_attempts_request_id_attempt"),
        **NO_REUSE,
    )
    op.create_index("ix_request_attempts_created_at", "request_attempts", ["created_at"])
    op.create_table(
        "admin_audit",
        _id(),
        sa.Column("created_at", When, nullable=False),
        sa.Column("actor_id", Id),
        sa.Column("actor_email", sa.String(320)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(256)),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("before", sa.JSON()),
        sa.Column("after", sa.JSON()),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_audit"),
        sa.UniqueConstraint("hash", name="uq_admin_audit_hash"),
        **NO_REUSE,
    )
    op.create_index("ix_admin_audit_created_at", "admin_audit", ["created_at"])
    op.create_table(
        "budgets",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(320)),
        sa.Column("limit_micros", sa.BigInteger()),
        sa.Column("limit_tokens", sa.BigInteger()),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("rolling", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("counted_from", When),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
        sa.UniqueConstraint("name", name="uq_budgets_name"),
        **NO_REUSE,
    )


def downgrade() -> None:
    for table in ("budgets", "admin_audit", "request_attempts", "request_labels", "request_log"):
        op.drop_table(table)
