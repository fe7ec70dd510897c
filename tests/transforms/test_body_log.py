"""``logging.bodies``: each request's body and its answer on one JSON log line, with keys, tokens
and the configured patterns masked; read from the log output itself."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, serve, settings
from tests.transforms.wire import ASK
from waypost.app import build_container
from waypost.observability.logging import JsonFormatter
from waypost.pipeline.body_log import MASK_MARGIN

CARD = "4111-1111-1111-1111"
KEY = "sk-proj-abcdefghijklmnop1234567890"
TEXT = f"my card is {CARD}, my key {KEY}, my name Jane"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the ``waypost.bodies`` logger writes, formatted as the JSON log formats it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("waypost.bodies")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def lines(out: io.StringIO, request_id: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return [f for f in found if f.get("request_id") == request_id]


@pytest.fixture
async def gateway(openai_upstream: OpenAIUpstream) -> AsyncIterator[str]:
    config = settings(
        model("gpt", "openai", openai_upstream.url, openai_upstream.api_key),
        logging={"level": "info", "bodies": True},
        audit={"mask_patterns": [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"]},
    )
    async with serve(config) as url:
        yield url


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
async def test_the_request_and_its_answer_are_logged_masked(
    gateway: str, log_output: io.StringIO, client: str, stream: bool
) -> None:
    answer = await ASK[client](gateway, "gpt", TEXT, stream=stream)

    assert answer.status == 200, answer.body
    [line] = lines(log_output, answer.headers["x-request-id"])
    assert (line["logger"], line["level"], line["status"], line["stream"]) == (
        "waypost.bodies",
        "info",
        200,
        stream,
    )
    request, response = line["request_body"], line["response_body"]
    assert "my name Jane" in request and "Jane" in response  # the fake echoes the prompt (word by word)
    for secret in (CARD, KEY, GATEWAY_KEY):
        assert secret not in request and secret not in response
    assert request.count("***") == 2
    if stream:
        assert "data: " in response  # the stream as the client got it
    else:
        assert json.loads(response)["usage"]  # the body as the client got it


async def test_a_refused_request_is_logged_with_its_error(gateway: str, log_output: io.StringIO) -> None:
    answer = await ASK["openai"](gateway, "no-such-model", TEXT)

    assert answer.status == 404
    [line] = lines(log_output, answer.headers["x-request-id"])
    assert line["status"] == 404 and line["error"] == "ModelNotFound" and "no-such-model" in line["detail"]
    assert CARD not in line["request_body"] and line["response_body"] is None


def test_long_bodies_are_cut_after_masking() -> None:
    from waypost.metering.masking import Masker
    from waypost.pipeline.body_log import BodyLogStage

    stage = BodyLogStage(Masker(), max_chars=300)
    shown = stage.shown("x" * 290 + " " + KEY)

    assert KEY not in shown and KEY[:10] not in shown
    assert shown.startswith("x" * 290) and "***" in shown


async def test_a_long_stream_is_kept_only_as_far_as_it_is_shown(
    openai_upstream: OpenAIUpstream, log_output: io.StringIO
) -> None:
    """A stream far longer than ``bodies_max_chars`` is not held whole until it ends: its first
    bytes are kept, the rest counted, and the line says how much more there was."""
    config = settings(
        model("gpt", "openai", openai_upstream.url, openai_upstream.api_key),
        logging={"level": "info", "bodies": True, "bodies_max_chars": 256},
    )
    long_text = " ".join(f"word{i}" for i in range(3000))
    async with serve(config) as url:
        answer = await ASK["openai"](url, "gpt", long_text, stream=True)

    assert answer.status == 200
    [line] = lines(log_output, answer.headers["x-request-id"])
    response = line["response_body"]
    assert response.startswith("data: ") and len(response) < 400
    kept_chars, dropped_bytes = re.search(
        r"\[(\d+) more characters and (\d+) more bytes\]$", response
    ).groups()
    assert int(dropped_bytes) > 100_000  # the echoed 3,000 words, in SSE chunks, mostly not kept
    assert int(kept_chars) <= 256 * 4 + MASK_MARGIN


def test_the_stage_is_first_and_only_there_when_asked_for(tmp_path: Path) -> None:
    # A database in tmp_path: the generated secrets are kept beside it, not in the working directory.
    database = {"url": f"sqlite:///{tmp_path}/waypost.db"}
    assert build_container(settings(database=database)).pipeline.stage("bodies") is None
    stages = build_container(settings(logging={"bodies": True}, database=database)).pipeline.stages
    assert stages[0].name == "bodies"
