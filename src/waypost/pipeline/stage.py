"""The stage interface, and the pipeline that runs the stages in their one order.

Every data-plane request takes one path (``api/dataplane.py``): authenticate, decode, then the
stages' ``before`` in order, then the router (unless a stage answered), then ``after`` in reverse
order. A stage is a small object built once at start from the settings:

* ``before(ctx)``: look at the request before routing and change it (``ChatRequest.edit``, so the
  edit reaches a same-format upstream too), answer it (return a canonical response: the path
  encodes it in the caller's format and no upstream is called), or reject it (raise a
  ``GatewayError``, which the caller gets in its own format). ``None``: go on.
* ``progress(ctx, usage)``: while a stream runs, its usage so far (each time the upstream reports
  some). Return a ``GatewayError`` to end the stream with it (a budget crossed mid-stream).
* ``after(ctx)``: the outcome, once the answer has been sent or has failed: ``ctx.status``,
  ``ctx.usage``, ``ctx.cost``, ``ctx.error``, ``ctx.attempts``. Runs for every stage whose
  ``before`` ran, whatever happened after it (a reservation made is always settled or released).
  It must not raise: a failure is logged and the other stages' ``after`` still run.

A hook that has nothing to wait for returns its result as a plain call; one that has to wait (a
Redis call, a store read) returns a coroutine, which the pipeline awaits (``async def`` hooks
always do). Creating and awaiting a coroutine costs about a microsecond a hook, and most requests
go through every stage's two hooks without waiting for anything: memory counters, compiled rules,
a row queued for the audit writer.

The order is fixed and documented in docs/metering.md ("The pipeline"): metering first (it reads
the request's tags and refuses unpriced models before anything is reserved for them), budgets
after it.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from types import CoroutineType
from typing import Any, Protocol, TypeAlias, cast

from waypost.core.context import RequestContext
from waypost.core.errors import GatewayError
from waypost.core.types import ChatResponse, EmbeddingResponse, Usage

log = logging.getLogger("waypost.pipeline")

Reply = ChatResponse | EmbeddingResponse
# What a hook returns: its result, or a coroutine that gives it once awaited.
Before: TypeAlias = Reply | Coroutine[Any, Any, Reply | None] | None
After: TypeAlias = Coroutine[Any, Any, None] | None

ENTERED = "pipeline.entered"  # ctx.state key: how many stages' ``before`` ran
SKIPPED = "pipeline.skipped"  # ctx.state key: of those, the idle ones (a bit per stage)


class Stage(Protocol):
    name: str

    def idle(self) -> bool: ...

    def before(self, ctx: RequestContext) -> Before: ...

    def progress(self, ctx: RequestContext, usage: Usage) -> GatewayError | None: ...

    def after(self, ctx: RequestContext) -> After: ...


class BaseStage:
    """Default do-nothing hooks, so a stage writes only the ones it needs."""

    name = "stage"

    def idle(self) -> bool:
        """Whether the stage has nothing to do for any request now (no rule, no limit defined):
        the pipeline then skips both its hooks for a request, without calling them."""
        return False

    def before(self, ctx: RequestContext) -> Before:
        return None

    def progress(self, ctx: RequestContext, usage: Usage) -> GatewayError | None:
        return None

    def after(self, ctx: RequestContext) -> After:
        return None


class Pipeline:
    """The stages, in order. Built once per app (``app.build_container``)."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        # Stages that may be idle, by position: asked before each request (a call, not a coroutine).
        self._may_idle = tuple(type(s).idle is not BaseStage.idle for s in self.stages)
        # Only stages that override ``progress`` are called while a stream runs.
        self._watching = tuple(s for s in self.stages if type(s).progress is not BaseStage.progress)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    async def before(self, ctx: RequestContext) -> Reply | None:
        """Each stage's ``before`` in order; the first answer ends the walk."""
        entered = skipped = 0
        may_idle = self._may_idle
        try:
            for i, stage in enumerate(self.stages):
                entered = i + 1
                if may_idle[i] and stage.idle():
                    skipped |= 1 << i
                    continue
                reply = stage.before(ctx)
                if reply is None:
                    continue
                if type(reply) is CoroutineType:  # the stage waits for something
                    reply = await reply
                    if reply is None:
                        continue
                ctx.answered_by = stage.name
                return cast(Reply, reply)
            return None
        finally:  # however the walk ended (an answer, a refusal, a cancellation): for ``after``
            state = ctx.state
            state[ENTERED] = entered
            if skipped:
                state[SKIPPED] = skipped

    def progress(self, ctx: RequestContext, usage: Usage) -> GatewayError | None:
        for stage in self._watching:
            err = stage.progress(ctx, usage)
            if err is not None:
                return err
        return None

    @property
    def watches_streams(self) -> bool:
        return bool(self._watching)

    async def after(self, ctx: RequestContext) -> None:
        """``after`` of every stage whose ``before`` ran, in reverse order; never raises."""
        entered = ctx.state.get(ENTERED, 0)
        skipped = ctx.state.get(SKIPPED, 0)
        for i in range(entered - 1, -1, -1):
            if skipped & (1 << i):  # idle when the request came: nothing to settle
                continue
            stage = self.stages[i]
            try:
                waits = stage.after(ctx)
                if waits is not None:
                    await waits
            except Exception:
                log.exception(
                    "pipeline stage failed after the request",
                    extra={"request_id": ctx.request_id, "stage": stage.name},
                )
