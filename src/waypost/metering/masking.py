"""Masking secrets out of bodies before they are stored (``audit.log_bodies``).

What is masked, whatever the configuration: the values of JSON members whose name says they
hold a credential (``api_key``, ``authorization``, ``password``, ``secret``, ``*_token``), and
anything shaped like a well-known key (OpenAI ``sk-``, Anthropic ``sk-ant-``, Waypost ``wp-``,
AWS access key ids, Google API keys, ``Bearer`` credentials). ``audit.mask_patterns`` adds the
operator's own regular expressions (e.g. card or account numbers); each match becomes ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"

_SECRET_MEMBER = re.compile(
    r'("(?:[A-Za-z0-9_-]*(?:api[_-]?key|apikey|authorization|password|passwd|secret|access[_-]?token|'
    r'refresh[_-]?token|id[_-]?token|session[_-]?token|private[_-]?key))"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)
_KEY_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_-]{10,}"
    r"|sk-(?:proj-)?[A-Za-z0-9_-]{16,}"
    r"|wp-[A-Za-z0-9_-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}"
)


class Masker:
    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self._extra = [re.compile(p) for p in patterns]

    def mask(self, text: str) -> str:
        text = _SECRET_MEMBER.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
        text = _KEY_SHAPES.sub(MASK, text)
        for pattern in self._extra:
            text = pattern.sub(MASK, text)
        return text
