"""secret://name references inside model settings."""

from __future__ import annotations

import pytest

from waypost.core.errors import BadRequest
from waypost.security.secret_refs import check_secret_name, refs_in, resolve_refs

CONFIG = {
    "api_key": "secret://openai-key",
    "headers": {"x-api-key": "secret://team.key", "x-plain": "hello"},
    "aws": {"secret_access_key": "secret://aws_secret", "region": "eu-west-1"},
    "fallbacks": ["secret://in-a-list"],
    "timeouts": {"connect": 3},
}


def test_refs_in_finds_every_reference_at_any_depth() -> None:
    assert refs_in(CONFIG) == {"openai-key", "team.key", "aws_secret", "in-a-list"}


def test_refs_in_ignores_strings_that_merely_contain_the_scheme() -> None:
    assert refs_in({"a": "see secret://x", "b": None, "c": 3}) == set()


def test_resolve_refs_replaces_each_whole_string_reference() -> None:
    lookup = {"openai-key": "sk-1", "team.key": "k-2", "aws_secret": "s-3", "in-a-list": "l-4"}
    resolved = resolve_refs(CONFIG, lookup)
    assert resolved["api_key"] == "sk-1"
    assert resolved["headers"] == {"x-api-key": "k-2", "x-plain": "hello"}
    assert resolved["aws"] == {"secret_access_key": "s-3", "region": "eu-west-1"}
    assert resolved["fallbacks"] == ["l-4"]
    assert CONFIG["api_key"] == "secret://openai-key"  # the input is not modified


def test_an_unknown_secret_names_the_field_and_the_secret() -> None:
    with pytest.raises(BadRequest, match=r"headers\.x-api-key: secret 'team.key' does not exist") as caught:
        resolve_refs(CONFIG, {"openai-key": "v", "aws_secret": "v", "in-a-list": "v"})
    assert caught.value.param == "headers.x-api-key"


def test_a_malformed_reference_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="api_key: malformed secret reference 'secret://'"):
        resolve_refs({"api_key": "secret://"}, {})


def test_secret_names_follow_the_contract_pattern() -> None:
    assert check_secret_name("model.gpt-4o.api_key") == "model.gpt-4o.api_key"
    for bad in ("", ".hidden", "has space", "x" * 129, "slash/name"):
        with pytest.raises(BadRequest, match="invalid secret name"):
            check_secret_name(bad)
