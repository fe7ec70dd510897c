"""The quirks of OpenAI-compatible servers: every case of ``quirks.py`` from both client formats,
streamed and not, against one fake OpenAI server whose models each show one quirk. Rendered in
docs/compatibility.md (``render.py``) from the same list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anthropic
import openai
import pytest
import pytest_asyncio

from tests.conformance.quirks import QUIRK_CASES, QuirkCase, QuirkSession
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, serve, settings

CLIENTS = ["openai", "anthropic"]
MODES = ["body", "stream"]
KEY = "sk-conformance-quirks"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def model_name(case: QuirkCase) -> str:
    return f"quirk-{case.quirk}"


@dataclass
class Stage:
    fake: OpenAIUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage() -> AsyncIterator[Stage]:
    """One fake with a model per quirk, and one gateway with a model entry per case."""
    async with AsyncExitStack() as stack:
        fake = OpenAIUpstream(api_key=KEY, quirks={case.quirk: {case.quirk} for case in QUIRK_CASES})
        await stack.enter_async_context(fake)
        entries = [
            {
                "name": model_name(case),
                "provider": "openai",
                "base_url": fake.url + "/v1",
                "api_key": KEY,
                "upstream_model": case.quirk,
                "retry": {"max_retries": 0},
                **case.entry,
            }
            for case in QUIRK_CASES
        ]
        url = await stack.enter_async_context(serve(settings(*entries)))
        oai = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        stack.push_async_callback(oai.close)
        ant = anthropic.AsyncAnthropic(
            base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        stack.push_async_callback(ant.close)
        yield Stage(fake, oai, ant)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])
@pytest.mark.parametrize("case", QUIRK_CASES, ids=[c.quirk for c in QUIRK_CASES])
async def test_quirk(case: QuirkCase, client: str, mode: str, stage: Stage) -> None:
    stage.fake.reset()
    session = QuirkSession(
        case.quirk, client, mode == "stream", model_name(case), stage.fake, stage.openai, stage.anthropic
    )
    await case.run(session)
