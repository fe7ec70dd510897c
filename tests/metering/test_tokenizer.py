"""The tokenizers of OpenAI's model families: which one fits a model, the ids they count (known
answers of tiktoken 0.14), loading once and off the event loop, and no network at any time."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
import textwrap

import pytest

from waypost.metering.tokenizer import CL100K_BASE, O200K_BASE, Tokenizers, encoding_for

MIXED = "I'm can't HELLO'S camelCaseWord  123456 \n\n  x"
CJK_EMOJI = "你好\uff0c世界 🌍🚀"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K_BASE),
        ("gpt-4o-mini-2024-07-18", O200K_BASE),
        ("GPT-4o", O200K_BASE),
        ("chatgpt-4o-latest", O200K_BASE),
        ("gpt-4.1-nano", O200K_BASE),
        ("gpt-4.5-preview", O200K_BASE),
        ("gpt-5", O200K_BASE),
        ("gpt-5.1-mini", O200K_BASE),
        ("o1", O200K_BASE),
        ("o3-mini", O200K_BASE),
        ("o4-mini-2025-04-16", O200K_BASE),
        ("gpt-oss-20b", O200K_BASE),
        ("openai/gpt-4o", O200K_BASE),
        ("openai.gpt-oss-120b-1:0", O200K_BASE),
        ("ft:gpt-4o-mini:acme::abc123", O200K_BASE),
        ("gpt-4", CL100K_BASE),
        ("gpt-4-turbo", CL100K_BASE),
        ("gpt-3.5-turbo", CL100K_BASE),
        ("gpt-35-turbo", CL100K_BASE),
        ("text-embedding-3-small", CL100K_BASE),
        ("ft:gpt-3.5-turbo:acme::x", CL100K_BASE),
        ("claude-sonnet-4-20250514", None),
        ("llama-3.1-8b-instruct", None),
        ("smollm2-360m", None),
        ("gemini-2.5-flash", None),
        ("omni-moderation", None),
        ("o10", None),
    ],
)
def test_each_openai_family_has_its_encoding_and_other_families_none(
    model: str, encoding: str | None
) -> None:
    assert encoding_for(model) == encoding


async def test_counts_are_tiktokens_known_answers() -> None:
    tokenizers = Tokenizers()
    o200k = await tokenizers.get(O200K_BASE)
    cl100k = await tokenizers.get(CL100K_BASE)
    assert o200k is not None and cl100k is not None
    # tiktoken 0.14: o200k_base [24912, 2375] / 15 ids / 7 ids; cl100k_base [15339, 1917] / 17 / 12.
    assert o200k.count(["hello world", MIXED, CJK_EMOJI, ""]) == [2, 15, 7, 0]
    assert cl100k.count(["hello world", MIXED, CJK_EMOJI, ""]) == [2, 17, 12, 0]


async def test_special_token_strings_count_as_the_text_they_are() -> None:
    cl100k = await Tokenizers().get(CL100K_BASE)
    assert cl100k is not None
    assert cl100k.count(["<|endoftext|>"]) == [7]


async def test_long_texts_count_the_same_off_the_loop() -> None:
    o200k = await Tokenizers().get(O200K_BASE)
    assert o200k is not None
    long = "The quick brown fox jumps over the lazy dog. " * 10_000  # over THREAD_THRESHOLD
    assert await o200k.count_async([long]) == o200k.count([long])


async def test_concurrent_first_uses_share_one_load() -> None:
    tokenizers = Tokenizers()
    first, second = await asyncio.gather(tokenizers.get(O200K_BASE), tokenizers.get(O200K_BASE))
    assert first is not None and first is second
    assert tokenizers.loaded(O200K_BASE) is first


async def test_an_encoding_that_cannot_load_is_none_and_tried_once(caplog: pytest.LogCaptureFixture) -> None:
    tokenizers = Tokenizers()
    with caplog.at_level(logging.WARNING, logger="waypost.metering"):
        assert await tokenizers.get("no_such_encoding") is None
        assert await tokenizers.get("no_such_encoding") is None
    assert len([r for r in caplog.records if "no_such_encoding" in r.getMessage()]) == 1


# The check runs in a fresh interpreter: with no network namespace where the machine allows one
# (root, as CI runs), and in any case with every attempt to reach out refused by an audit hook.
NO_NETWORK = textwrap.dedent(
    """
    import asyncio, sys

    REACHING_OUT = {
        "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.sendto", "urllib.Request", "http.client.connect",
    }

    def refuse(event, args):
        if event in REACHING_OUT:
            raise RuntimeError(f"network use: {event}")

    sys.addaudithook(refuse)
    import waypost.api.chat  # the hot path's modules
    from waypost.metering.tokenizer import Tokenizers
    assert "toktok" not in sys.modules, "the tokenizer was imported with the gateway"

    async def main():
        tokenizers = Tokenizers()
        o200k = await tokenizers.get("o200k_base")
        cl100k = await tokenizers.get("cl100k_base")
        print(o200k.count(["hello world"])[0], cl100k.count(["hello world"])[0])

    asyncio.run(main())
    """
)


def _isolated(command: list[str]) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n", *command]
    return command


def test_counting_needs_no_network_and_nothing_loads_at_import() -> None:
    result = subprocess.run(
        _isolated([sys.executable, "-c", NO_NETWORK]), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]
