"""A stage's hook either returns its result as a plain call or returns a coroutine the pipeline
awaits (``pipeline/stage.py``): both kinds mix in one pipeline, in order, with the same rules
for answers, refusals and ``after``."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest
from waypost.core.types import ChatResponse
from waypost.pipeline.body_log import BodyLogStage
from waypost.pipeline.budgets import BudgetStage
from waypost.pipeline.cache import CacheStage
from waypost.pipeline.metering import MeteringStage
from waypost.pipeline.rate_limits import RateLimitStage
from waypost.pipeline.rules.stage import RulesStage
from waypost.pipeline.stage import After, BaseStage, Before, Pipeline
from waypost.pipeline.transforms import TransformStage

ANSWER = ChatResponse(id="a", model="m", content=[], finish_reason="stop")


class Plain(BaseStage):
    """Hooks that return at once."""

    def __init__(self, name: str, calls: list[str], answer: ChatResponse | None = None, refuse: bool = False):
        self.name, self.calls, self.answer, self.refuse = name, calls, answer, refuse

    def before(self, ctx: RequestContext) -> Before:
        self.calls.append(f"before {self.name}")
        if self.refuse:
            raise BadRequest("refused")
        return self.answer

    def after(self, ctx: RequestContext) -> After:
        self.calls.append(f"after {self.name}")
        return None


class Waits(Plain):
    """Hooks that wait (a coroutine each), and record only once they have."""

    def before(self, ctx: RequestContext) -> Before:
        return self._before(ctx)

    async def _before(self, ctx: RequestContext) -> ChatResponse | None:
        await asyncio.sleep(0)
        return super().before(ctx)

    async def after(self, ctx: RequestContext) -> None:
        await asyncio.sleep(0)
        self.calls.append(f"after {self.name}")


def context() -> RequestContext:
    return RequestContext(request_id="r", client_format="openai")


async def test_plain_and_waiting_hooks_run_in_order_and_each_is_awaited() -> None:
    calls: list[str] = []
    pipeline = Pipeline([Plain("a", calls), Waits("b", calls), Plain("c", calls), Waits("d", calls)])
    ctx = context()

    assert await pipeline.before(ctx) is None
    await pipeline.after(ctx)

    assert calls == [*(f"before {n}" for n in "abcd"), *(f"after {n}" for n in "dcba")]
    assert ctx.answered_by is None


@pytest.mark.parametrize("kind", [Plain, Waits])
async def test_an_answer_of_either_kind_ends_the_walk_and_the_stages_entered_settle(
    kind: type[Plain],
) -> None:
    calls: list[str] = []
    answering = kind("b", calls, answer=ANSWER)
    pipeline = Pipeline([Waits("a", calls), answering, Plain("c", calls)])
    ctx = context()

    assert await pipeline.before(ctx) is ANSWER
    await pipeline.after(ctx)

    assert ctx.answered_by == "b"
    assert calls == ["before a", "before b", "after b", "after a"]


@pytest.mark.parametrize("kind", [Plain, Waits])
async def test_a_refusal_of_either_kind_still_settles_the_stages_entered(kind: type[Plain]) -> None:
    calls: list[str] = []
    pipeline = Pipeline([Plain("a", calls), kind("b", calls, refuse=True), Plain("c", calls)])
    ctx = context()

    with pytest.raises(BadRequest):
        await pipeline.before(ctx)
    await pipeline.after(ctx)

    assert calls == ["before a", "before b", "after b", "after a"]


async def test_a_walk_cancelled_while_a_stage_waits_settles_the_stages_entered() -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    class Stuck(Plain):
        async def before(self, ctx: RequestContext) -> ChatResponse | None:
            calls.append("before stuck")
            await gate.wait()
            return None

    pipeline = Pipeline([Plain("a", calls), Stuck("stuck", calls), Plain("c", calls)])
    ctx = context()
    walk = asyncio.create_task(pipeline.before(ctx))
    await asyncio.sleep(0.01)
    walk.cancel()
    with pytest.raises(asyncio.CancelledError):
        await walk
    await pipeline.after(ctx)

    assert calls == ["before a", "before stuck", "after stuck", "after a"]


def test_the_stages_that_never_wait_on_memory_answer_with_plain_calls() -> None:
    # What the hooks of the built-in stages are: plain calls, which return a coroutine only when
    # they have to wait (Redis, a store read); the cache's lookup always may.
    for stage in (MeteringStage, BudgetStage, RulesStage, RateLimitStage, BodyLogStage, CacheStage):
        assert not inspect.iscoroutinefunction(stage.after), stage
    for stage in (MeteringStage, BudgetStage, RulesStage, RateLimitStage, BodyLogStage, TransformStage):
        assert not inspect.iscoroutinefunction(stage.before), stage
