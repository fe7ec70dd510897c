"""Reload without a restart, on real ``waypost serve`` processes sent a real SIGHUP: the config
file's models, request limits and logging level change while serving; a setting that needs a
restart is named and kept; a bad file is refused in one log line and the running configuration
stays. With several workers the parent checks the file and passes the signal on to every worker,
which reloads in place (none is restarted). ``waypost serve --reload`` restarts on a file change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.server.test_process import cli, environment, free_port, wait_until_live, write_config
from waypost.api.reload import merged_settings, needs_restart
from waypost.settings import Settings

WAIT = 60.0  # seconds for what should happen long before


@contextmanager
def serving(directory: Path, *args: str, **sections: Any) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``waypost serve`` on a config in ``directory`` (its log: ``stderr.log``); it must exit 0 at
    SIGTERM in the end."""
    port = free_port()
    config = write_config(directory, server={"port": port, **sections.pop("server", {})}, **sections)
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            cli("serve", "--config", str(config), *args),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=environment(),
            start_new_session=True,
        )
    try:
        wait_until_live(port, process)
        yield process, f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0, log_text(directory)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log_text(directory: Path) -> str:
    return (directory / "stderr.log").read_text(errors="replace")


def log_lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_text(directory).splitlines() if line.startswith("{")]


def messages(directory: Path, prefix: str) -> list[str]:
    return [line["msg"] for line in log_lines(directory) if line["msg"].startswith(prefix)]


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT:g} s: {what}")
        time.sleep(0.05)


def rewrite(directory: Path, **changes: Any) -> None:
    """The config file with ``changes`` to its sections (merged one level deep)."""
    path = directory / "waypost.yaml"
    doc = yaml.safe_load(path.read_text())
    for section, value in changes.items():
        doc[section] = {**doc[section], **value} if isinstance(value, dict) and section in doc else value
    path.write_text(yaml.safe_dump(doc))


def model_names(url: str) -> list[str]:
    return [m["id"] for m in httpx.get(url + "/v1/models", timeout=WAIT).json()["data"]]


def chat(url: str, model: str, **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=WAIT)


BASE: dict[str, Any] = {
    "auth": {"jwt_secret": "s" * 40, "open": True},
    "logging": {"level": "info", "json": True},
    "models": [{"name": "first", "provider": "mock"}],
}


def test_sighup_swaps_in_models_limits_and_the_log_level_and_names_what_needs_a_restart(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, **{**BASE, "logging": {"level": "warning", "json": True}}) as (process, url):
        assert chat(url, "first", n=3).status_code == 200
        rewrite(
            tmp_path,
            models=[{"name": "first", "provider": "mock"}, {"name": "second", "provider": "mock"}],
            limits={"max_choices": 2},
            logging={"level": "info"},
            server={"header_timeout": 5.0},
        )
        process.send_signal(signal.SIGHUP)
        eventually(lambda: bool(messages(tmp_path, "reloaded ")), "the reload (logged at info)")
        (line,) = messages(tmp_path, "reloaded ")
        assert line.endswith(": 2 model(s); changed but kept until a restart: server.header_timeout")
        assert model_names(url) == ["first", "second"]
        assert chat(url, "second").status_code == 200
        refused = chat(url, "first", n=3)
        assert refused.status_code == 400 and "above the limit of 2" in refused.json()["error"]["message"]
        rid = refused.headers["x-request-id"]  # info: requests have access lines now
        eventually(lambda: any(line.get("request_id") == rid for line in log_lines(tmp_path)), "its line")


def test_a_bad_file_is_refused_in_one_line_and_the_running_configuration_stays(tmp_path: Path) -> None:
    with serving(tmp_path, **BASE) as (process, url):
        rewrite(tmp_path, models=[{"name": "first", "provider": "nope"}])
        process.send_signal(signal.SIGHUP)
        eventually(lambda: bool(messages(tmp_path, "reload refused")), "the refusal")
        (refused,) = messages(tmp_path, "reload refused")
        assert refused.startswith("reload refused, the running configuration stays: models[0].provider: ")
        (tmp_path / "waypost.yaml").write_text("models: [unclosed\n")
        process.send_signal(signal.SIGHUP)
        eventually(lambda: len(messages(tmp_path, "reload refused")) == 2, "the second refusal")
        assert "invalid YAML" in messages(tmp_path, "reload refused")[1]
        assert model_names(url) == ["first"]
        assert chat(url, "first").status_code == 200
        assert not messages(tmp_path, "reloaded ")


def test_with_two_workers_every_worker_reloads_in_place_and_a_bad_file_is_refused_once(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, server={"workers": 2}, **BASE) as (process, url):
        # At least two: on a loaded machine the supervisor may restart a worker slow to start,
        # which then starts again (the restarts asserted on below are those after this point).
        eventually(lambda: len(messages(tmp_path, "Application startup complete")) >= 2, "both workers")
        started = messages(tmp_path, "Started server process")
        rewrite(
            tmp_path, models=[{"name": "first", "provider": "mock"}, {"name": "second", "provider": "mock"}]
        )
        process.send_signal(signal.SIGHUP)
        eventually(lambda: len(messages(tmp_path, "reloaded ")) == 2, "a reload in each worker")
        # Each of many new connections, whichever worker takes it, sees the new model.
        for _ in range(20):
            with httpx.Client() as client:
                assert (
                    client.post(
                        url + "/v1/chat/completions",
                        json={"model": "second", "messages": [{"role": "user", "content": "hi"}]},
                        timeout=WAIT,
                    ).status_code
                    == 200
                )
        rewrite(tmp_path, models="not a list")
        process.send_signal(signal.SIGHUP)
        eventually(lambda: bool(messages(tmp_path, "reload refused")), "the refusal")
        # A good file after it: once both workers have reloaded it, they would have logged the bad
        # one's refusal before (each reloads in the order the signals came), had it reached them.
        rewrite(tmp_path, models=[{"name": "third", "provider": "mock"}])
        process.send_signal(signal.SIGHUP)
        eventually(lambda: len(messages(tmp_path, "reloaded ")) == 4, "the next reload in each worker")
        assert len(messages(tmp_path, "reload refused")) == 1
        assert messages(tmp_path, "Started server process") == started  # no worker was restarted


def test_serve_reload_restarts_when_the_config_file_changes(tmp_path: Path) -> None:
    with serving(tmp_path, "--reload", **BASE) as (_, url):
        assert model_names(url) == ["first"]
        rewrite(tmp_path, models=[{"name": "changed", "provider": "mock"}])

        def restarted() -> bool:
            try:
                return model_names(url) == ["changed"]
            except httpx.HTTPError:
                return False  # between the old process and the new one

        eventually(restarted, "the restart with the new file")


def test_what_a_reload_takes_from_the_new_file_and_what_it_names_for_a_restart() -> None:
    old = Settings.model_validate({"logging": {"level": "warning", "access_log": False}})
    new = Settings.model_validate(
        {
            "logging": {"level": "debug", "access_log": True, "json": False},
            "limits": {"max_choices": 3},
            "server": {"port": 5000},
            "models": [{"name": "m", "provider": "mock"}],
        }
    )
    merged = merged_settings(old, new)
    assert (merged.logging.level, merged.logging.access_log) == ("debug", True)
    assert merged.logging.json_format is True  # needs a restart: kept
    assert (merged.limits.max_choices, [m.name for m in merged.models]) == (3, ["m"])
    assert merged.server.port == old.server.port
    assert needs_restart(old, new) == ["logging.json", "server.port"]


def test_a_worker_not_yet_started_survives_a_sighup(tmp_path: Path) -> None:
    """The supervisor passes SIGHUP to every worker; one still importing the app (its lifespan,
    which installs the reload handler, not yet run) must not be stopped by it."""
    config = write_config(tmp_path)
    code = (
        "import os, signal; from waypost.app import app_from_env; app_from_env(); "
        "os.kill(os.getpid(), signal.SIGHUP); print('alive')"
    )
    env = {**environment(), "WAYPOST_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "alive"), done.stderr[-2000:]
