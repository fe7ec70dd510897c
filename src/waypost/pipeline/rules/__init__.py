"""The rules engine (docs/policy.md, "Rules"): rules compiled from their definitions
(``settings_rules.RuleSpec``), held in memory (``book``), evaluated per request by the stage after
metering (``stage``), tried on a sample request (``trial``) or replayed over the audit log
(``replay``) without sending anything."""

from __future__ import annotations

from waypost.pipeline.rules.book import RuleBook, RuleSet
from waypost.pipeline.rules.stage import APPLIED_HEADER, RulesStage

__all__ = ["APPLIED_HEADER", "RuleBook", "RuleSet", "RulesStage"]
