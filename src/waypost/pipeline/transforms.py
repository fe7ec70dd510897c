"""The transformations stage (docs/policy.md, "Transformations"): the global ``regex_replace``
transformations, applied once to the request before routing, after the rules (which see the
request as the client sent it) and before rate limits, budgets and the cache (which see it as it
will be sent: the cache keys on the masked text).

The rest of what changes on the way out is applied where it can only be: a model's own
``regex_replace`` on each attempt at that model, the JSONPath transformations on the body in the
upstream's format, and header rules on the upstream call (``providers/outbound.py``). This stage
is in the pipeline only when a global ``regex_replace`` is enabled.
"""

from __future__ import annotations

from collections.abc import Sequence

from waypost.core.context import RequestContext
from waypost.core.types import ChatRequest, EmbeddingRequest
from waypost.pipeline.stage import BaseStage, Before
from waypost.providers.outbound import rewrite
from waypost.settings import RegexReplace, TransformSettings


class TransformStage(BaseStage):
    name = "transformations"

    def __init__(self, rules: Sequence[RegexReplace]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_settings(cls, settings: TransformSettings) -> TransformStage | None:
        """The stage, or None when no global ``regex_replace`` is enabled (then it costs nothing)."""
        return cls(settings.text) if settings.text else None

    def before(self, ctx: RequestContext) -> Before:
        req = ctx.req
        if isinstance(req, ChatRequest | EmbeddingRequest):
            changed = rewrite(req, self.rules)  # BadRequest naming the rule that emptied a text
            if changed is not None:
                req.edit(**changed)  # so a same-format upstream gets the edited text too
        return None
