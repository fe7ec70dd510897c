"""Real token counts for OpenAI-style models, with no network at any time.

OpenAI's models count with one of two BPE encodings: ``o200k_base`` (GPT-4o, GPT-4.1, GPT-4.5,
GPT-5, the o-series, gpt-oss) and ``cl100k_base`` (GPT-4, GPT-3.5, the embedding models).
``encoding_for`` says which one fits a model name, as tiktoken's own table does; other families
(Claude, Llama, Gemini, ...) have no tokenizer here and get the documented estimate
(``metering.estimate``).

The counting is toktok-rs's: both encodings are compiled into its extension module, so nothing is
ever downloaded (tiktoken fetches its encoding files on first use, which fails offline), and its
ids are tiktoken's (checked: docs/usage.md). Loading an encoding takes 0.4 s and 40 MB
(cl100k_base) to 1.2 s and 60 MB (o200k_base), so ``Tokenizers`` loads each one only when a count
first needs it, once per process, in a worker thread: never at import, never on the event loop,
and never in a gateway whose upstreams all report their usage.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("waypost.metering")

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"

# Matched against the model name without a vendor prefix ("openai/", "openai.") or "ft:".
# gpt-oss uses o200k_harmony: o200k_base's ranks plus special tokens, the same count for text.
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[134](?:-|$)|gpt-oss|codex-mini)"),
        O200K_BASE,
    ),
    (
        re.compile(
            r"(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002|davinci-002|babbage-002)"
        ),
        CL100K_BASE,
    ),
)
_VENDOR = re.compile(r"^(?:.*/)?(?:ft:)?(?:openai\.)?")

# Above this many characters a count runs in a worker thread (counting runs at about 60 MB/s
# here: a millisecond of work at most stays on the event loop).
THREAD_THRESHOLD = 64 * 1024


def encoding_for(model: str) -> str | None:
    """The encoding of ``model``'s family (``o200k_base``, ``cl100k_base``), or ``None``."""
    name = _VENDOR.sub("", model.lower(), count=1)
    for pattern, encoding in _FAMILIES:
        if pattern.match(name):
            return encoding
    return None


def _load(encoding: str) -> Any:
    """Import toktok and load ``encoding`` into its cache (blocking: call it in a thread)."""
    import toktok

    toktok.batch_count([""], encoding, threads=1)
    return toktok


class Encoding:
    """One loaded encoding: counts tokens the way OpenAI's models see text."""

    __slots__ = ("_toktok", "name")

    def __init__(self, name: str, toktok: Any) -> None:
        self.name = name
        self._toktok = toktok

    def count(self, texts: Sequence[str]) -> list[int]:
        """The tokens of each text (special-token strings count as the text they are)."""
        counts: list[int] = self._toktok.batch_count(texts, self.name, threads=1)
        return counts

    async def count_async(self, texts: Sequence[str]) -> list[int]:
        """``count``, in a worker thread when the texts are long enough to hold up the loop."""
        if sum(map(len, texts)) > THREAD_THRESHOLD:
            return await asyncio.to_thread(self.count, texts)
        return self.count(texts)


class Tokenizers:
    """The gateway's encodings, each loaded on first need, once, off the event loop.

    An encoding that fails to load is logged once and never tried again: counts for its models
    fall back to the estimate.
    """

    __slots__ = ("_failed", "_loaded", "_loading")

    def __init__(self) -> None:
        self._loaded: dict[str, Encoding] = {}
        self._loading: dict[str, asyncio.Future[Encoding | None]] = {}
        self._failed: set[str] = set()

    def loaded(self, encoding: str) -> Encoding | None:
        """The encoding if it is loaded already (never loads)."""
        return self._loaded.get(encoding)

    async def get(self, encoding: str) -> Encoding | None:
        """The loaded encoding, loading it first if needed; ``None`` if it cannot load."""
        ready = self._loaded.get(encoding)
        if ready is not None or encoding in self._failed:
            return ready
        loading = self._loading.get(encoding)
        if loading is None:
            # A task of its own, shared by every asker meanwhile: a cancelled asker (a client
            # gone) does not cancel the load the others wait for.
            loading = asyncio.ensure_future(self._load(encoding))
            self._loading[encoding] = loading
        return await asyncio.shield(loading)

    async def _load(self, encoding: str) -> Encoding | None:
        try:
            toktok = await asyncio.to_thread(_load, encoding)
        except Exception:
            log.warning("tokenizer %s did not load: counting with the estimate", encoding, exc_info=True)
            self._failed.add(encoding)
            return None
        finally:
            del self._loading[encoding]
        ready = self._loaded[encoding] = Encoding(encoding, toktok)
        return ready
