"""The translation matrix: every scenario for every (client format x provider) pair.

A cell the target declares unsupported ("no") must degrade the documented way: the request
succeeds and the feature is dropped (the scenario's own assertion fails), never a 5xx. A cell
that starts passing must be marked supported in targets.py, so docs/compatibility.md stays true.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anthropic
import openai
import pytest
import pytest_asyncio

from tests.conformance.scenarios import CLIENTS, MODEL, SCENARIOS, SHORT_TIMEOUT_MODEL, Scenario, Session
from tests.conformance.targets import TARGETS, Target
from tests.fakes import FakeUpstream
from tests.harness import GATEWAY_KEY, serve, settings

# Every cell of the module shares one event loop, so one gateway per target serves all its cells.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Stage:
    """One target's fake upstream, the gateway in front of it and the SDK clients pointed at it."""

    fake: FakeUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


class Stages:
    """Starts each target's stage on first use and keeps it until the module ends: starting a
    gateway per cell cost more than the cells themselves."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._stages: dict[str, Stage] = {}

    async def get(self, target: Target) -> Stage:
        if target.name not in self._stages:
            self._stages[target.name] = await self._start(target)
        stage = self._stages[target.name]
        stage.fake.reset()
        return stage

    async def _start(self, target: Target) -> Stage:
        fake = await self._stack.enter_async_context(target.start())
        base = {**target.entry(fake), "retry": {"max_retries": 0}}
        # Only the timeout scenario's model has a short first-byte timeout: on a loaded machine a
        # slow cell must not turn into a 504.
        config = settings(
            {"name": MODEL, **base, "timeouts": {"first_byte": 60}},
            {"name": SHORT_TIMEOUT_MODEL, **base, "timeouts": {"first_byte": 0.5}},
        )
        url = await self._stack.enter_async_context(serve(config))
        oai = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        self._stack.push_async_callback(oai.close)
        ant = anthropic.AsyncAnthropic(
            base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        self._stack.push_async_callback(ant.close)
        return Stage(fake, oai, ant)

    async def close(self) -> None:
        await self._stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stages() -> AsyncIterator[Stages]:
    started = Stages()
    try:
        yield started
    finally:
        await started.close()


@pytest_asyncio.fixture(loop_scope="module")
async def session(request: pytest.FixtureRequest, stages: Stages) -> Session:
    target: Target = request.node.callspec.params["target"]
    client: str = request.node.callspec.params["client"]
    stage = await stages.get(target)
    return Session(client, target, stage.fake, stage.openai, stage.anthropic)


CELLS = [
    pytest.param(scenario, client, target, id=f"{scenario.name}-from-{client}-{target.name}")
    for scenario in SCENARIOS
    for client in CLIENTS
    if client in scenario.clients
    for target in TARGETS
]


@pytest.mark.parametrize(("scenario", "client", "target"), CELLS)
async def test_conformance(scenario: Scenario, client: str, target: Target, session: Session) -> None:
    if target.supports(scenario.name, client).level != "no":
        await scenario.run(session)
        return
    try:
        await scenario.run(session)
    except AssertionError:
        return  # dropped, as documented
    pytest.fail(
        f"{scenario.name} now works with {target.name}: mark it supported in tests/conformance/targets.py"
    )
