"""The translation matrix: every scenario for every (client format x provider) pair.

A cell the target declares unsupported ("no") must degrade the documented way: the request
succeeds and the feature is dropped (the scenario's own assertion fails), never a 5xx. A cell
that starts passing must be marked supported in targets.py, so docs/compatibility.md stays true.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from tests.conformance.scenarios import MODEL, SCENARIOS, Scenario, Session
from tests.conformance.targets import TARGETS, Target
from tests.harness import GATEWAY_KEY, serve, settings

CLIENTS = ["openai", "anthropic"]


@pytest.fixture
async def session(request: pytest.FixtureRequest) -> AsyncIterator[Session]:
    target: Target = request.node.callspec.params["target"]
    client: str = request.node.callspec.params["client"]
    async with target.start() as fake:
        entry = {
            "name": MODEL,
            **target.entry(fake),
            "retry": {"max_retries": 0},
            "timeouts": {"first_byte": 0.5},
        }
        async with serve(settings(entry)) as url:
            oai = openai.AsyncOpenAI(
                base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            ant = anthropic.AsyncAnthropic(
                base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            try:
                yield Session(client, target, fake, oai, ant)
            finally:
                await oai.close()
                await ant.close()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
@pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_conformance(scenario: Scenario, client: str, target: Target, session: Session) -> None:
    if target.supports(scenario.name).level != "no":
        await scenario.run(session)
        return
    try:
        await scenario.run(session)
    except AssertionError:
        return  # dropped, as documented
    pytest.fail(
        f"{scenario.name} now works with {target.name}: mark it supported in tests/conformance/targets.py"
    )
