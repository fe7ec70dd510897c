"""Persistence: users, groups, permissions, models, tokens and secrets in SQLite or PostgreSQL."""

from __future__ import annotations

from waypost.store.database import Store
from waypost.store.repository import UNCHANGED

__all__ = ["UNCHANGED", "Store"]
