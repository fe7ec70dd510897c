"""Policy: rules, rate limits, and the cost a cache hit saved.

Revision ID: 0003_policy
Revises: 0002_metering
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_policy"
down_revision: str | Sequence[str] | None = "0002_metering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from tables.py: a migration must not change when the
# current table definitions do.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
NO_REUSE = {"sqlite_autoincrement": True}


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, sa.Identity(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rules",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("mode", sa.String(16), nullable=False, server_default="enforce"),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
        sa.UniqueConstraint("name", name="uq_rules_name"),
        **NO_REUSE,
    )
    op.create_table(
        "rate_limits",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(320)),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rate_limits"),
        sa.UniqueConstraint("name", name="uq_rate_limits_name"),
        **NO_REUSE,
    )
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("saved_micros", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("saved_micros")
    for table in ("rate_limits", "rules"):
        op.drop_table(table)
