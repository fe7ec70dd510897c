"""A gateway listening beyond loopback with /metrics open to anyone says so when it starts."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.server.test_process import cli, environment, free_port, wait_until_live, write_config

WARNING = "/metrics is readable by anyone"


def started_log(tmp_path: Path, **metrics: object) -> str:
    port = free_port()
    config = write_config(
        tmp_path,
        server={"host": "0.0.0.0", "port": port},
        auth={"jwt_secret": "s" * 40, "admin_password": "a-long-enough-admin-password-42"},
        metrics=metrics,
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            cli("serve", "--config", str(config)), stdout=out, stderr=subprocess.STDOUT, env=environment()
        )
        try:
            wait_until_live(port, process)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    return log.read_text()


def test_open_metrics_off_loopback_are_warned_about(tmp_path: Path) -> None:
    assert WARNING in started_log(tmp_path)


@pytest.mark.parametrize("metrics", [{"token": "t" * 32}, {"enabled": False}])
def test_protected_or_disabled_metrics_are_not(tmp_path: Path, metrics: dict[str, object]) -> None:
    assert WARNING not in started_log(tmp_path, **metrics)
