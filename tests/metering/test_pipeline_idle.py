"""The pipeline skips a stage that is idle (no rule, no limit defined) without calling its hooks,
and decides that once per request: a stage idle when the request came gets no ``after`` even if
it has work by then, and one that ran ``before`` always gets its ``after``."""

from __future__ import annotations

from waypost.core.context import RequestContext
from waypost.pipeline.stage import BaseStage, Pipeline, Reply


class Recording(BaseStage):
    def __init__(self, name: str, calls: list[str], idle: bool | None = None) -> None:
        self.name = name
        self.calls = calls
        self.is_idle = idle

    async def before(self, ctx: RequestContext) -> Reply | None:
        self.calls.append(f"before {self.name}")
        return None

    async def after(self, ctx: RequestContext) -> None:
        self.calls.append(f"after {self.name}")


class MayIdle(Recording):
    def idle(self) -> bool:
        return bool(self.is_idle)


async def test_an_idle_stage_is_skipped_and_the_others_run_in_order() -> None:
    calls: list[str] = []
    stages = [Recording("a", calls), MayIdle("b", calls, idle=True), MayIdle("c", calls, idle=False)]
    pipeline = Pipeline(stages)
    ctx = RequestContext(request_id="r", client_format="openai")

    assert await pipeline.before(ctx) is None
    await pipeline.after(ctx)

    assert calls == ["before a", "before c", "after c", "after a"]


async def test_idleness_is_decided_once_per_request() -> None:
    calls: list[str] = []
    busy_then_idle = MayIdle("x", calls, idle=False)
    idle_then_busy = MayIdle("y", calls, idle=True)
    pipeline = Pipeline([busy_then_idle, idle_then_busy])
    ctx = RequestContext(request_id="r", client_format="openai")

    await pipeline.before(ctx)
    busy_then_idle.is_idle, idle_then_busy.is_idle = True, False  # e.g. a reload meanwhile
    await pipeline.after(ctx)

    # x reserved something in ``before``: it settles it; y checked nothing: it counts nothing.
    assert calls == ["before x", "after x"]
