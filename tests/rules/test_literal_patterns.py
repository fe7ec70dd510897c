"""A regex without metacharacters is matched as a plain substring (a fast path): it must give the
same answers as RE2 itself, non-ASCII text included."""

from __future__ import annotations

import pytest

from waypost.pipeline.rules.compile import matcher
from waypost.settings_rules import compile_regex

TEXTS = ["", "a secret-3 here", "SECRET-3", "secret-", "naïve café ünïcode", "line\nsecret-3\n", "x" * 500]


@pytest.mark.parametrize("pattern", ["secret-3", "café", "ünï", "", " ", "ret-3\n", "a b,c;d:e'f\"g/h"])
def test_literal_pattern_matches_as_re2_does(pattern: str) -> None:
    match = matcher("regex", pattern, "text")
    regex = compile_regex(pattern)
    for text in TEXTS:
        assert match(text) is (regex.search(text) is not None), (pattern, text)


@pytest.mark.parametrize(
    "pattern", ["secret.3", "^a", "b$", "a|b", "x?", "x*", "x+", "(a)", "[a]", "a{2}", r"\d"]
)
def test_patterns_with_syntax_still_go_to_re2(pattern: str) -> None:
    match = matcher("regex", pattern, "text")
    regex = compile_regex(pattern)
    for text in [*TEXTS, "a", "aa", "b", "5", "secretX3"]:
        assert match(text) is (regex.search(text) is not None), (pattern, text)


def test_an_invalid_pattern_is_still_refused() -> None:
    with pytest.raises(ValueError, match="RE2"):
        matcher("regex", "(unclosed", "text")
