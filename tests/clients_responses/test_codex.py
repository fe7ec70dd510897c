"""The Codex CLI (``codex exec``, non-interactive) through the gateway: the fake model has it run a
shell command in its workspace, then answers. Codex sends its own full request (developer prompt,
its tool set, ``store: false``, encrypted reasoning, ``prompt_cache_key``) and needs the typed event
stream back (items from ``response.output_item.done``, the turn ended by ``response.completed``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients_responses import codex
from tests.clients_responses.conftest import Gateway, model_for
from tests.fakes import Reply
from tests.harness import GATEWAY_KEY, serve, settings

pytestmark = pytest.mark.skipif(
    not codex.installed(), reason=f"no Codex CLI at {codex.CODEX}: run scripts/install-codex (make test does)"
)

# Codex offers the model OpenAI's hosted web search by default; a provider that does not speak the
# Responses API cannot run it, so users of such models turn it off (docs/responses.md).
NO_WEB_SEARCH = 'web_search = "disabled"'
CATALOGUE_MODEL = "gpt-6.1-sol"
"""A model in the pinned Codex's own catalogue (its fixture: client_codex_known_model.json)."""


def config_for(gateway: Gateway) -> str:
    return "" if gateway.kind == "responses" else NO_WEB_SEARCH


async def test_codex_exec_runs_a_command_then_answers(gateway: Gateway, tmp_path: Path) -> None:
    gateway.upstream.enqueue(
        Reply(tool_calls=[("call_c1", "exec_command", {"cmd": "echo hello > hello.txt"})]),
        Reply(text="Created hello.txt."),
    )

    run = await codex.run_codex(
        gateway.url + "/v1",
        GATEWAY_KEY,
        "Create a file hello.txt that says hello.",
        model=gateway.model,
        extra_config=config_for(gateway),
        root=tmp_path,
    )

    assert run.returncode == 0, run.stderr + run.stdout
    assert run.last_message == "Created hello.txt."
    assert (run.cwd / "hello.txt").read_text() == "hello\n"
    assert gateway.upstream.hits == 2
    assert "Process exited with code 0" in gateway.upstream.last.body.decode()


async def test_codex_usage_comes_from_the_completed_event(gateway: Gateway, tmp_path: Path) -> None:
    gateway.upstream.enqueue(Reply(text="Hi.", input_tokens=1234, output_tokens=7))

    run = await codex.run_codex(
        gateway.url + "/v1",
        GATEWAY_KEY,
        "Say hi.",
        model=gateway.model,
        extra_config=config_for(gateway),
        root=tmp_path,
    )

    assert run.returncode == 0, run.stderr + run.stdout
    [done] = [e for e in run.events if e.get("type") == "turn.completed"]
    assert done["usage"]["output_tokens"] == 7
    # Anthropic counts input without cache reads; either way the gateway reports the upstream's count.
    assert done["usage"]["input_tokens"] == 1234


@pytest.mark.parametrize("gateway", ["responses"], indirect=True)
async def test_codex_hosted_web_search_reaches_a_responses_upstream(gateway: Gateway, tmp_path: Path) -> None:
    gateway.upstream.enqueue(Reply(text="Hi."))

    run = await codex.run_codex(
        gateway.url + "/v1", GATEWAY_KEY, "Say hi.", model=gateway.model, root=tmp_path
    )

    assert run.returncode == 0, run.stderr + run.stdout
    sent = gateway.upstream.last.json
    assert {"type": "web_search", "external_web_access": False} in sent["tools"]
    assert sent["model"] == "gpt-up"
    assert "prompt_cache_key" in sent and "client_metadata" in sent


@pytest.mark.parametrize("gateway", ["chat", "anthropic"], indirect=True)
async def test_codex_hosted_web_search_elsewhere_is_refused_by_name(gateway: Gateway, tmp_path: Path) -> None:
    run = await codex.run_codex(
        gateway.url + "/v1", GATEWAY_KEY, "Say hi.", model=gateway.model, root=tmp_path
    )

    assert run.returncode != 0
    assert "web_search" in run.stdout + run.stderr
    assert gateway.upstream.hits == 0


async def test_codex_with_a_model_of_its_own_catalogue_completes_a_turn(
    gateway: Gateway, tmp_path: Path
) -> None:
    # A model name Codex knows changes its request: no ``tools``, an ``additional_tools`` input
    # item with namespaced and custom tools, ``text.verbosity``, ``reasoning.context``.
    async with serve(settings(model_for(gateway.kind, gateway.upstream, name=CATALOGUE_MODEL))) as url:
        gateway.upstream.enqueue(Reply(text="Hello."))

        run = await codex.run_codex(
            url + "/v1",
            GATEWAY_KEY,
            "Say hello.",
            model=CATALOGUE_MODEL,
            extra_config=NO_WEB_SEARCH,
            root=tmp_path,
        )

    assert run.returncode == 0, run.stderr + run.stdout
    assert run.last_message == "Hello."
