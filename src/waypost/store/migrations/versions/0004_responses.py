"""The Responses API's kept conversations: one row per stored response.

Revision ID: 0004_responses
Revises: 0003_policy
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_responses"
down_revision: str | Sequence[str] | None = "0003_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from tables.py: a migration must not change when the
# current table definitions do.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("previous_id", sa.String(128)),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("instructions", sa.Text()),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stored_responses"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_stored_responses_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_stored_responses_user_id_created_at", "stored_responses", ["user_id", "created_at"])
    op.create_index("ix_stored_responses_expires_at", "stored_responses", ["expires_at"])


def downgrade() -> None:
    op.drop_table("stored_responses")
