"""Who is calling, once authenticated: what they may do and which models they may use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    email: str
    role: str  # "admin" | "user" | "gateway"
    permissions: frozenset[str]
    models: frozenset[str] | None  # None: every model (admins); else the names assigned to the user
    token_id: int | None = None  # set when authenticated by an API token
    token_models: frozenset[str] | None = None  # the token's own restriction, if any
    # The catalogue's public names: one set shared by every principal (not copied into each, so
    # ten thousand cached callers do not each hold a thousand public names).
    public: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()  # the user's group names, sorted (budgets and reports by group)

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    def may_use(self, model: str) -> bool:
        """Both the user's access and the token's restriction must allow ``model``: set lookups,
        whatever the number of users, groups, assignments and models."""
        if self.models is not None and model not in self.models and model not in self.public:
            return False
        return self.token_models is None or model in self.token_models

    def model_names(self) -> frozenset[str] | None:
        """Every model the user may use (None: every model), the token's restriction aside."""
        return None if self.models is None else self.models | self.public
