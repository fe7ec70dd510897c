"""The settings sections of policy: ``rules``, ``rate_limits``, ``cache``, ``header_rules`` and
``transformations`` (docs/policy.md, docs/configuration.md). ``waypost.settings`` re-exports them:
import them from there."""

from __future__ import annotations

from waypost.settings_metering import _Strict

__all__ = ["_Strict"]
