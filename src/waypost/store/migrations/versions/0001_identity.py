"""Identity and access: users, groups, grants, models, assignments, tokens, secrets, SSO logins.

Revision ID: 0001_identity
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_identity"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from tables.py: a migration must not change when the
# current table definitions do.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
NO_REUSE = {"sqlite_autoincrement": True}  # ids of deleted rows never come back on SQLite


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, sa.Identity(), nullable=False)


def _owner(
    table: str, referred: str, column: str, nullable: bool = True
) -> tuple[sa.Column[int], sa.ForeignKeyConstraint]:
    return (
        sa.Column(column, Id, nullable=nullable),
        sa.ForeignKeyConstraint(
            [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete="CASCADE"
        ),
    )


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("last_login_at", When),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        **NO_REUSE,
    )
    op.create_table(
        "groups",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.UniqueConstraint("name", name="uq_groups_name"),
        **NO_REUSE,
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_group_members"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name="fk_group_members_group_id_groups", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_group_members_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id"])

    op.create_table(
        "grants",
        _id(),
        *_owner("grants", "users", "user_id"),
        *_owner("grants", "groups", "group_id"),
        sa.Column("permission", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
        sa.CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_grants_one_owner")),
        # Their indexes also serve the foreign keys (the owner column comes first).
        sa.UniqueConstraint("user_id", "permission", name="uq_grants_user_id_permission"),
        sa.UniqueConstraint("group_id", "permission", name="uq_grants_group_id_permission"),
        **NO_REUSE,
    )
    op.create_table(
        "models",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("name", name="uq_models_name"),
        **NO_REUSE,
    )
    op.create_table(
        "model_assignments",
        _id(),
        sa.Column("model_name", sa.String(128), nullable=False),
        *_owner("model_assignments", "users", "user_id"),
        *_owner("model_assignments", "groups", "group_id"),
        sa.PrimaryKeyConstraint("id", name="pk_model_assignments"),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_model_assignments_one_owner")
        ),
        sa.UniqueConstraint("model_name", "user_id", name="uq_model_assignments_model_name_user_id"),
        sa.UniqueConstraint("model_name", "group_id", name="uq_model_assignments_model_name_group_id"),
        **NO_REUSE,
    )
    op.create_index("ix_model_assignments_user_id", "model_assignments", ["user_id"])
    op.create_index("ix_model_assignments_group_id", "model_assignments", ["group_id"])

    op.create_table(
        "api_tokens",
        _id(),
        *_owner("api_tokens", "users", "user_id", nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("models", sa.JSON()),
        sa.Column("expires_at", When),
        sa.Column("last_used_at", When),
        sa.Column("created_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        **NO_REUSE,
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "refresh_tokens",
        _id(),
        *_owner("refresh_tokens", "users", "user_id", nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("revoked_at", When),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        **NO_REUSE,
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])

    op.create_table(
        "secrets",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_secrets"),
        sa.UniqueConstraint("name", name="uq_secrets_name"),
        **NO_REUSE,
    )
    op.create_table(
        "login_flows",
        sa.Column("state", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("redirect_to", sa.Text()),
        sa.Column("expires_at", When, nullable=False),
        sa.PrimaryKeyConstraint("state", name="pk_login_flows"),
    )
    op.create_index("ix_login_flows_expires_at", "login_flows", ["expires_at"])

    op.create_table(
        "kv",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_kv"),
    )


def downgrade() -> None:
    for table in (
        "kv",
        "login_flows",
        "secrets",
        "refresh_tokens",
        "api_tokens",
        "model_assignments",
        "models",
        "grants",
        "group_members",
        "groups",
        "users",
    ):
        op.drop_table(table)
