"""The outbound URL guard's static checks: what check_url and check_ip refuse before any request."""

from __future__ import annotations

import pytest
from yarl import URL

from waypost.core.errors import BadRequest
from waypost.security.urlguard import OutboundPolicy, inet_aton_ipv4
from waypost.settings import SecuritySettings

STRICT = OutboundPolicy(allow_private=False)
LENIENT = OutboundPolicy(allow_private=True)


def refusal(policy: OutboundPolicy, url: str) -> str:
    with pytest.raises(BadRequest) as caught:
        policy.check_url(url)
    return caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://api.openai.com/v1/chat/completions?api-version=2024-10-21",
        "http://8.8.8.8:8080/x",
        "https://[2606:4700::1111]/",
        "https://my-resource.openai.azure.com",
        "https://münchen.example/v1",
    ],
)
def test_public_http_urls_pass(url: str) -> None:
    STRICT.check_url(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://x/", "ftp://example.com/", "javascript:alert(1)"]
)
def test_only_http_and_https_are_allowed(url: str) -> None:
    assert "only http:// and https://" in refusal(LENIENT, url)


@pytest.mark.parametrize(
    "url",
    ["https://good.example@evil.example/", "https://user:pass@api.openai.com/", "https://@api.openai.com/"],
)
def test_userinfo_is_refused(url: str) -> None:
    assert "credentials" in refusal(LENIENT, url)


def test_a_fragment_trick_is_refused() -> None:
    assert "fragment" in refusal(LENIENT, "https://evil.example#@api.openai.com/v1")


@pytest.mark.parametrize(
    "url", ["https://evil.example\\@api.openai.com/", "https://api.openai.com\\.evil.example/"]
)
def test_backslashes_are_refused(url: str) -> None:
    assert "backslash" in refusal(LENIENT, url)


@pytest.mark.parametrize(
    "url", ["https://api.openai.com /v1", "https://api.openai.com/v1\n", "https://a\tb/"]
)
def test_whitespace_and_control_characters_are_refused(url: str) -> None:
    assert "whitespace" in refusal(LENIENT, url)


def test_an_empty_host_is_refused() -> None:
    assert "no host" in refusal(LENIENT, "https:///v1")


def test_a_percent_encoded_host_is_refused() -> None:
    assert "percent-encoded" in refusal(LENIENT, "http://%31%32%37.0.0.1/")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:4000/", "is private (loopback)"),
        ("http://10.1.2.3/", "is private and"),
        ("http://192.168.0.10/", "is private and"),
        ("http://172.16.5.4/", "is private and"),
        ("http://169.254.10.10/", "is private (link-local)"),
        ("http://100.64.1.1/", "is private (carrier-grade NAT)"),
        ("http://0.0.0.0/", "is private (unspecified)"),
        ("http://[::1]/", "is private (loopback)"),
        ("http://[fd12:3456::1]/", "is private and"),
        ("http://[fe80::1]/", "is private (link-local)"),
        ("http://224.0.0.1/", "is private (multicast)"),
        ("http://[ff02::1]/", "is private (multicast)"),
        ("http://240.0.0.1/", "is private"),
        ("http://[::127.0.0.1]/", "is private (reserved)"),
    ],
)
def test_private_ip_literals_are_refused_naming_the_setting(url: str, kind: str) -> None:
    message = refusal(STRICT, url)
    assert kind in message and "security.allow_private_targets is off" in message


def test_private_ip_literals_pass_when_private_targets_are_allowed() -> None:
    for url in ("http://127.0.0.1:4000/", "http://10.1.2.3/", "http://[::1]/", "http://[fd12::1]/"):
        LENIENT.check_url(url)


@pytest.mark.parametrize(
    ("url", "embedded"),
    [
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
        ("http://[::ffff:a00:1]/", "10.0.0.1"),
        ("http://[64:ff9b::a00:1]/", "10.0.0.1"),
        ("http://[2002:c0a8:101::1]/", "192.168.1.1"),
    ],
)
def test_ipv6_addresses_embedding_a_private_ipv4_are_refused(url: str, embedded: str) -> None:
    assert f"embeds {embedded}" in refusal(STRICT, url)


def test_a_nat64_address_of_a_public_ipv4_passes() -> None:
    STRICT.check_url("http://[64:ff9b::808:808]/")


@pytest.mark.parametrize(
    ("host", "decoded"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("134744072", "8.8.8.8"),
    ],
)
def test_numeric_ipv4_spellings_are_decoded_and_refused(host: str, decoded: str) -> None:
    assert str(inet_aton_ipv4(host)) == decoded
    message = refusal(LENIENT, f"http://{host}/")
    assert f"non-standard spelling of the IPv4 address {decoded}" in message


def test_a_host_that_looks_numeric_but_is_no_address_is_refused() -> None:
    assert "looks like a numeric address" in refusal(LENIENT, "http://08.1.2.3/")
    assert "looks like a numeric address" in refusal(LENIENT, "http://1.2.3.4.5/")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://metadata/",
        "http://metadata.goog/",
        "http://instance-data/",
    ],
)
def test_metadata_endpoints_are_refused_even_when_private_targets_are_allowed(url: str) -> None:
    assert "metadata" in refusal(LENIENT, url)


def test_messages_name_the_host_but_never_the_query() -> None:
    message = refusal(STRICT, "http://127.0.0.1/v1beta/models?key=AIza-secret-key")
    assert "127.0.0.1" in message and "AIza-secret-key" not in message


def test_dot_segments_in_an_encoded_path_are_refused() -> None:
    # A URL built with encoded=True (signed requests) is sent as is: nothing normalises its path.
    with pytest.raises(BadRequest, match=r"'\.\.' segments"):
        LENIENT.check_url(URL("https://api.example.com/v1/%2e%2e/admin", encoded=True))


def test_check_url_names_the_field_when_given() -> None:
    with pytest.raises(BadRequest, match=r"^base_url: ") as caught:
        STRICT.check_url("http://127.0.0.1/", field="base_url")
    assert caught.value.param == "base_url"


def test_check_ip_gives_the_reason_or_none() -> None:
    assert STRICT.check_ip("8.8.8.8") is None
    assert "loopback" in (STRICT.check_ip("127.0.0.1") or "")
    assert LENIENT.check_ip("127.0.0.1") is None
    assert "metadata" in (LENIENT.check_ip("169.254.169.254") or "")


# -- the allow-list -----------------------------------------------------------------------------------


def test_an_allow_list_admits_only_matching_urls() -> None:
    policy = OutboundPolicy(allowed_patterns=["https://api.openai.com/v1", "https://*.openai.azure.com"])
    policy.check_url("https://api.openai.com/v1/chat/completions")
    policy.check_url("https://team.openai.azure.com/openai/deployments/x/chat/completions")
    assert "https://api.anthropic.com is not in security.allowed_base_urls" in refusal(
        policy, "https://api.anthropic.com/v1/messages"
    )


def test_the_allow_list_matches_path_segments_not_prefixes_of_them() -> None:
    policy = OutboundPolicy(allowed_patterns=["https://api.openai.com/v1"])
    assert "allowed_base_urls" in refusal(policy, "https://api.openai.com/v1beta/x")


def test_a_host_wildcard_cannot_reach_into_the_path() -> None:
    policy = OutboundPolicy(allowed_patterns=["https://*.openai.azure.com"])
    assert "allowed_base_urls" in refusal(policy, "https://evil.example/.openai.azure.com")


def test_the_allow_list_checks_scheme_and_port() -> None:
    policy = OutboundPolicy(allowed_patterns=["https://api.openai.com"])
    assert "allowed_base_urls" in refusal(policy, "http://api.openai.com/v1")
    assert "allowed_base_urls" in refusal(policy, "https://api.openai.com:8443/v1")
    OutboundPolicy(allowed_patterns=["https://api.openai.com:*"]).check_url("https://api.openai.com:8443/")


def test_the_allow_list_does_not_bypass_the_address_checks() -> None:
    policy = OutboundPolicy(allowed_patterns=["http://*"])
    assert "loopback" in refusal(policy, "http://127.0.0.1/")


def test_a_malformed_pattern_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"'api\.openai\.com' is not a URL pattern"):
        OutboundPolicy(allowed_patterns=["api.openai.com"])


def test_from_settings_reads_the_security_section() -> None:
    policy = OutboundPolicy.from_settings(
        SecuritySettings(allow_private_targets=True, allowed_base_urls=["http://127.0.0.1:*"])
    )
    assert policy.allow_private and policy.allowed_patterns == ["http://127.0.0.1:*"]
    policy.check_url("http://127.0.0.1:9999/v1")
