"""Who is calling, once authenticated: what they may do and which models they may use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    email: str
    role: str  # "admin" | "user" | "gateway"
    permissions: frozenset[str]
    models: frozenset[str] | None  # None: every model (admins); else assigned and public names
    token_id: int | None = None  # set when authenticated by an API token
    token_models: frozenset[str] | None = None  # the token's own restriction, if any

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    def may_use(self, model: str) -> bool:
        """Both the user's access and the token's restriction must allow ``model``."""
        if self.models is not None and model not in self.models:
            return False
        return self.token_models is None or model in self.token_models
