"""Configuration: YAML + WAYPOST_* overrides + env:// references, errors that name the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from waypost.settings import ConfigError, Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waypost.yaml"
    path.write_text(text)
    return path


MINIMAL = """
models:
  - name: gpt-4
    provider: openai
    base_url: http://127.0.0.1:9/v1
    api_key: env://UP_KEY,fallback-key
"""


def test_yaml_values_are_loaded(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), {})
    assert settings.models[0].name == "gpt-4"
    assert settings.models[0].base_url == "http://127.0.0.1:9/v1"


def test_env_reference_uses_variable_when_set(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), {"UP_KEY": "from-env"})
    assert settings.models[0].api_key == "from-env"


def test_env_reference_falls_back_to_default(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, MINIMAL), {}).models[0].api_key == "fallback-key"


def test_env_reference_without_default_names_key_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "models: [{name: a, provider: openai, api_key: 'env://MISSING_VAR'}]")
    with pytest.raises(
        ConfigError, match=r"models\[0\]\.api_key: environment variable MISSING_VAR is not set"
    ):
        load_settings(path, {})


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), {"WAYPOST_SERVER__PORT": "9000"})
    assert settings.server.port == 9000


def test_environment_overrides_list_items_by_index(tmp_path: Path) -> None:
    env = {"WAYPOST_MODELS__0__UPSTREAM_MODEL": "llama3"}
    assert load_settings(write(tmp_path, MINIMAL), env).models[0].upstream_model == "llama3"


def test_environment_sets_lists_as_json(tmp_path: Path) -> None:
    env = {"WAYPOST_SECURITY__ALLOWED_BASE_URLS": '["https://api.openai.com/*", "https://*.example.com/*"]'}
    settings = load_settings(write(tmp_path, MINIMAL), env)
    assert settings.security.allowed_base_urls == ["https://api.openai.com/*", "https://*.example.com/*"]


def test_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"WAYPOST_DATABASE__URL": "postgresql://gw@db.internal/waypost"}
    assert load_settings(write(tmp_path, MINIMAL), env).database.url == "postgresql://gw@db.internal/waypost"


def test_relative_sqlite_file_lives_beside_the_config(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "database: {url: 'sqlite:///data/gw.db'}"), {})
    assert settings.database.url == f"sqlite:///{tmp_path.resolve()}/data/gw.db"


def test_unknown_database_scheme_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"database\.url: must be a sqlite:// or postgresql:// URL"):
        load_settings(write(tmp_path, "database: {url: 'mysql://x/y'}"), {})


def test_admin_password_comes_from_its_variable(tmp_path: Path) -> None:
    env = {"WAYPOST_ADMIN_PASSWORD": "a-long-and-unusual-passphrase"}
    assert load_settings(write(tmp_path, MINIMAL), env).auth.admin_password == "a-long-and-unusual-passphrase"


def test_unrelated_waypost_variables_are_ignored(tmp_path: Path) -> None:
    load_settings(write(tmp_path, MINIMAL), {"WAYPOST_CONFIG": "x", "WAYPOST_ADMIN_PASSWORD": "y"})


def test_unknown_key_is_rejected_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.prot: Extra inputs are not permitted"):
        load_settings(write(tmp_path, "server: {prot: 1}"), {})


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    text = "models: [{name: a, provider: mock, retry: {max_retries: many}}]"
    with pytest.raises(ConfigError, match=r"models\[0\]\.retry\.max_retries: .*integer.*'many'"):
        load_settings(write(tmp_path, text), {})


def test_invalid_regex_pattern_is_rejected_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.match: invalid regular expression"):
        load_settings(write(tmp_path, "models: [{name: a, provider: mock, match: 'gpt-(4'}]"), {})


def test_unknown_provider_type_is_rejected_by_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.provider"):
        load_settings(write(tmp_path, "models: [{name: a, provider: nope}]"), {})


def test_fallback_to_unknown_model_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.fallbacks\[0\]: unknown model 'ghost'"):
        load_settings(write(tmp_path, "models: [{name: a, provider: mock, fallbacks: [ghost]}]"), {})


def test_duplicate_model_names_are_rejected(tmp_path: Path) -> None:
    text = "models: [{name: a, provider: mock}, {name: a, provider: mock}]"
    with pytest.raises(ConfigError, match=r"models\[1\]\.name: duplicate model name 'a'"):
        load_settings(write(tmp_path, text), {})


@pytest.mark.parametrize(
    "url", ["ftp://x", "http://user:pw@host/v1", "http://host/v1#frag", "http://host/v1?x=1"]
)
def test_base_url_must_be_plain_http(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.base_url"):
        load_settings(write(tmp_path, f"models: [{{name: a, provider: openai, base_url: '{url}'}}]"), {})


OFF_LOOPBACK_SECRETS = (
    "server: {host: 0.0.0.0}\n"
    "auth: {jwt_secret: a-real-secret-of-some-length-0123456789}\n"
    "security: {encryption_keys: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=]}\n"
)


def test_off_loopback_with_real_secrets_is_accepted(tmp_path: Path) -> None:
    assert not load_settings(write(tmp_path, OFF_LOOPBACK_SECRETS), {}).loopback_only


def test_open_mode_refused_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.open: an open gateway is only allowed on loopback"):
        load_settings(
            write(tmp_path, OFF_LOOPBACK_SECRETS.replace("jwt_secret", "open: true, jwt_secret")), {}
        )


def test_missing_jwt_secret_refused_off_loopback(tmp_path: Path) -> None:
    text = "server: {host: 0.0.0.0}\nsecurity: {encryption_keys: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=]}\n"
    with pytest.raises(ConfigError, match=r"auth\.jwt_secret: a secret is required"):
        load_settings(write(tmp_path, text), {})


def test_missing_encryption_key_refused_off_loopback(tmp_path: Path) -> None:
    text = "server: {host: 0.0.0.0}\nauth: {jwt_secret: a-real-secret-of-some-length-0123456789}\n"
    with pytest.raises(ConfigError, match=r"security\.encryption_keys: a key is required"):
        load_settings(write(tmp_path, text), {})


def test_encryption_key_must_be_a_fernet_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"security\.encryption_keys: \[0\] is not a Fernet key"):
        load_settings(write(tmp_path, "security: {encryption_keys: [not-a-key]}"), {})


def test_open_mode_allowed_on_loopback(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "server: {host: 127.0.0.1}\nauth: {open: true}"), {}).open_mode


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(write(tmp_path, "models: [unclosed"), {})


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "waypost.example.yaml"
    settings = load_settings(example, {})
    assert {m.provider for m in settings.models} == {
        "mock",
        "openai",
        "anthropic",
        "gemini",
        "bedrock",
        "ollama",
        "auto",
    }


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waypost.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_config_check_accepts_valid_file(tmp_path: Path) -> None:
    # A loopback upstream is one `serve` allows only with allow_private_targets; `check` agrees.
    text = MINIMAL + "security: {allow_private_targets: true}\n"
    result = run_cli("config", "check", "--config", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    assert f"ok: checked {tmp_path}" in result.stdout and "1 model(s) (gpt-4)" in result.stdout


def test_config_check_without_a_file_says_it_checked_only_the_defaults(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "waypost.cli", "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("WAYPOST_")},
    )
    assert result.returncode == 0, result.stderr
    assert "ok: checked the built-in defaults (no --config or $WAYPOST_CONFIG given)" in result.stdout


def test_config_check_reports_every_problem_in_one_run(tmp_path: Path) -> None:
    text = """
server: {host: 0.0.0.0, bogus: 1}
models:
  - {name: a, provider: nosuch, extra_thing: 2}
  - {name: b, provider: openai, match: "(["}
  - {name: b, provider: mock}
"""
    result = run_cli("config", "check", "--config", str(write(tmp_path, text)))
    assert result.returncode == 2
    for problem in (
        "server.bogus: Extra inputs are not permitted",
        "models[0].extra_thing: Extra inputs are not permitted",
        "models[1].match: invalid regular expression",
        "models[0].provider: unknown provider 'nosuch'",
        "models[2].name: duplicate model name 'b'",
        "auth.jwt_secret: a secret is required",
        "security.encryption_keys: a key is required",
    ):
        assert problem in result.stderr


def test_checks_between_settings_are_all_reported_at_once(tmp_path: Path) -> None:
    text = "models:\n  - {name: a, provider: nosuch}\n  - {name: b, provider: mock, fallbacks: [zz, b]}\n"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert str(info.value).splitlines() == [
        "models[0].provider: unknown provider 'nosuch'; known: "
        + str(info.value).split("known: ")[1].splitlines()[0],
        "models[1].fallbacks[0]: unknown model 'zz'",
        "models[1].fallbacks[1]: a model cannot fall back to itself",
    ]
    assert not info.value.only_environment


def test_a_bad_environment_override_is_blamed_on_its_variable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"WAYPOST_SERVER__PORT": "abc"})
    assert "server.port:" in str(info.value)
    assert "(set by the environment variable WAYPOST_SERVER__PORT)" in str(info.value)
    assert info.value.only_environment


def test_config_check_prints_offending_key_and_fails(tmp_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(write(tmp_path, "server: {port: 70000}")))
    assert result.returncode == 2
    assert "server.port: Input should be less than or equal to 65535" in result.stderr


def test_serve_refuses_invalid_config_with_the_same_message(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(write(tmp_path, "server: {port: 70000}")))
    assert result.returncode == 2
    assert "server.port: Input should be less than or equal to 65535" in result.stderr


# -- presets and auto -------------------------------------------------------------------------------


def test_preset_fills_base_url_key_model_and_prices(tmp_path: Path) -> None:
    path = write(tmp_path, "models: [{name: deepseek, provider: deepseek}]")
    model = load_settings(path, {"DEEPSEEK_API_KEY": "sk-ds"}).models[0]
    assert (model.provider, model.preset) == ("openai", "deepseek")
    assert model.base_url == "https://api.deepseek.com/v1"
    assert model.api_key == "sk-ds"
    assert model.upstream_model == "deepseek-chat"
    assert model.prices is not None and model.prices.output > 0


def test_explicit_values_win_over_the_preset(tmp_path: Path) -> None:
    text = "models: [{name: fast, provider: groq, api_key: mine-123, upstream_model: llama-3.1-8b-instant}]"
    model = load_settings(write(tmp_path, text), {"GROQ_API_KEY": "theirs"}).models[0]
    assert model.api_key == "mine-123"
    assert model.upstream_model == "llama-3.1-8b-instant"
    assert model.prices is not None and model.prices.input == 0.05


def test_user_preset_in_config_needs_no_python(tmp_path: Path) -> None:
    text = """
presets:
  acme: {base_url: "https://llm.acme.test/v1", api_key_env: ACME_KEY, default_model: acme-1,
         prices: {acme-1: {input: 1, output: 2}}}
models: [{name: acme, provider: acme}]
"""
    model = load_settings(write(tmp_path, text), {"ACME_KEY": "k-acme"}).models[0]
    assert (model.base_url, model.api_key, model.upstream_model) == (
        "https://llm.acme.test/v1",
        "k-acme",
        "acme-1",
    )


def test_unknown_provider_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"models\[0\]\.provider: unknown provider 'nope'; known: openai, .*deepseek"
    ):
        load_settings(write(tmp_path, "models: [{name: a, provider: nope}]"), {})


def test_auto_needs_existing_candidates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.candidates\[0\]: 'ghost' is not a non-auto model"):
        load_settings(write(tmp_path, "models: [{name: a, provider: auto, candidates: [ghost]}]"), {})


def test_azure_needs_a_resource_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\]\.base_url: azure needs"):
        load_settings(write(tmp_path, "models: [{name: a, provider: azure}]"), {})


def test_serve_with_several_workers_answers(tmp_path: Path) -> None:
    """workers > 1 runs uvicorn's multi-process mode, each worker loading the same config."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write(
        tmp_path,
        f"server: {{port: {port}, workers: 2}}\nauth: {{open: true}}\nmodels: [{{name: echo, provider: mock}}]\n",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "waypost.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}',
            headers={"content-type": "application/json"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    assert b"You said: hi" in resp.read()
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- a refused config never repeats a secret --------------------------------------------------

SECRET = "s3cr3t-value-0123456789"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            f"models: [{{name: a, provider: gemini, base_url: 'https://x/v1?key={SECRET}'}}]",
            "models[0].base_url: ",
        ),
        (
            f"models: [{{name: a, provider: openai, base_url: 'https://user:{SECRET}@x/v1'}}]",
            "models[0].base_url: ",
        ),
        (
            f"models: [{{name: a, provider: bedrock, aws: {{endpoint_url: 'https://x?token={SECRET}'}}}}]",
            "models[0].aws.endpoint_url: ",
        ),
        (f"database: {{url: 'mysql://user:{SECRET}@db/waypost'}}", "database.url: "),
        ("models: [{name: a, provider: openai, api_key: 1234567890123}]", "models[0].api_key: "),
        (
            f"models: [{{name: a, provider: openai, headers: {{Authorization: [{SECRET}]}}}}]",
            "models[0].headers.Authorization: ",
        ),
        (f"models: [{{name: a, provider: openai, api_key: 'env://1BAD,{SECRET}'}}]", "models[0].api_key: "),
        (f'models: [{{name: a, provider: openai, api_key: "{SECRET}}}]', "(line 1, column "),  # invalid YAML
    ],
    ids=[
        "url-query",
        "url-password",
        "aws-endpoint",
        "database-url",
        "numeric-key",
        "header",
        "env-default",
        "yaml",
    ],
)
def test_a_config_error_never_repeats_a_secret(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), {})
    message = str(err.value)
    assert SECRET not in message
    assert "1234567890123" not in message
    assert names in message  # it still says where the problem is


def test_a_refused_base_url_names_its_key_and_shows_the_url_without_its_query(tmp_path: Path) -> None:
    text = f"models: [{{name: a, provider: gemini, base_url: 'https://x/v1?key={SECRET}'}}]"
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), {})
    assert str(err.value) == (
        "models[0].base_url: must be an http(s) URL without query, fragment or credentials "
        "(got 'https://x/v1?key=[redacted]')"
    )


def test_config_check_never_prints_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, f"models: [{{name: a, provider: gemini, base_url: 'https://x/v1?key={SECRET}'}}]")
    done = run_cli("config", "check", "--config", str(path))
    assert done.returncode != 0
    assert "models[0].base_url" in done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr


ENVIRONMENTS = """
server: {port: 4000}
logging: {level: info}
environments:
  dev: {logging: {level: debug}}
  prod: {server: {port: 8080}}
"""


def test_a_named_environment_is_merged_over_the_base(tmp_path: Path) -> None:
    path = write(tmp_path, ENVIRONMENTS)
    base = load_settings(path, environ={})
    prod = load_settings(path, environ={"WAYPOST_CONFIG_ENV": "prod"})
    dev = load_settings(path, environ={"WAYPOST_CONFIG_ENV": "dev"})
    assert (base.server.port, base.logging.level) == (4000, "info")
    assert (prod.server.port, prod.logging.level) == (8080, "info")
    assert (dev.server.port, dev.logging.level) == (4000, "debug")


def test_an_unknown_environment_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"WAYPOST_CONFIG_ENV='staging'.*\(it has: dev, prod\)"):
        load_settings(write(tmp_path, ENVIRONMENTS), environ={"WAYPOST_CONFIG_ENV": "staging"})


def test_the_local_override_file_comes_last_before_the_environment_variables(tmp_path: Path) -> None:
    path = write(tmp_path, ENVIRONMENTS)
    (tmp_path / f"{path.stem}.local.yaml").write_text("server: {port: 5000}\nlogging: {level: warning}\n")
    assert load_settings(path, environ={"WAYPOST_CONFIG_ENV": "prod"}).server.port == 5000
    both = load_settings(path, environ={"WAYPOST_CONFIG_ENV": "prod", "WAYPOST_SERVER__PORT": "6000"})
    assert (both.server.port, both.logging.level) == (6000, "warning")


def test_every_unresolved_reference_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    text = """
server: {port: 'env://WP_PORT', bogus: 1}
models:
  - {name: a, provider: openai, api_key: 'env://WP_KEY_A'}
  - {name: b, provider: openai, api_key: 'env://bad name,x'}
  - {name: c, provider: nosuch}
"""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    lines = str(info.value).splitlines()
    assert lines[:3] == [
        "server.port: environment variable WP_PORT is not set and no default is given",
        "models[0].api_key: environment variable WP_KEY_A is not set and no default is given",
        "models[1].api_key: malformed reference 'env://bad name' (expected env://VAR or env://VAR,default)",
    ]
    assert "server.bogus: Extra inputs are not permitted (got 1)" in lines
    assert any(line.startswith("models[2].provider: unknown provider 'nosuch'") for line in lines)
    assert len(lines) == 5  # no second line for a key whose reference is unresolved
    # Alone, an unresolved reference in an optional key is still refused.
    with pytest.raises(ConfigError, match=r"^models\[0\]\.api_key: environment variable WP_KEY_A"):
        load_settings(write(tmp_path, "models: [{name: a, provider: openai, api_key: 'env://WP_KEY_A'}]"), {})


def test_a_problem_is_blamed_on_the_environment_section_or_local_file_that_set_it(tmp_path: Path) -> None:
    path = write(
        tmp_path, ENVIRONMENTS.replace("prod: {server: {port: 8080}}", "prod: {server: {port: 0.5}}")
    )
    local = tmp_path / "waypost.local.yaml"
    local.write_text("logging: {level: loud}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"WAYPOST_CONFIG_ENV": "prod"})
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("server.port: ") and lines[0].endswith("(set by environments.prod)")
    assert lines[1].startswith("logging.level: ") and lines[1].endswith(f"(set in {local})")
    assert not info.value.only_environment
    # An environment variable wins over both, and takes the blame.
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"WAYPOST_CONFIG_ENV": "prod", "WAYPOST_LOGGING__LEVEL": "louder"})
    assert (
        str(info.value).splitlines()[1].endswith("(set by the environment variable WAYPOST_LOGGING__LEVEL)")
    )


def test_config_check_and_serve_name_the_environment_and_local_file(tmp_path: Path) -> None:
    path = write(tmp_path, ENVIRONMENTS)
    (tmp_path / "waypost.local.yaml").write_text("logging: {level: warning}\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WAYPOST_")},
        "WAYPOST_CONFIG_ENV": "prod",
    }
    done = subprocess.run(
        [sys.executable, "-m", "waypost.cli", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"ok: checked {path} (environment 'prod') + {tmp_path / 'waypost.local.yaml'}" in done.stdout
    assert "listening on 127.0.0.1:8080" in done.stdout


def test_serve_with_a_host_the_config_does_not_allow_lists_each_problem(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(write(tmp_path, "auth: {open: true}")), "--host", "0.0.0.0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: invalid configuration with the --host / --port given:",
        "  auth.open: an open gateway is only allowed on loopback (server.host is '0.0.0.0', not a loopback"
        " address)",
        "  auth.jwt_secret: a secret is required (server.host is '0.0.0.0', not a loopback address)",
        "  security.encryption_keys: a key is required (server.host is '0.0.0.0', not a loopback address)",
    ]


def test_an_audit_mask_pattern_that_is_not_a_regular_expression_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"audit": {"mask_patterns": [r"\d{16}", "(unclosed"]}})
    assert "audit.mask_patterns" in str(caught.value)
    assert "[1] '(unclosed' is not a valid regular expression" in str(caught.value)
