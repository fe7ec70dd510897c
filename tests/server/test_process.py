"""``waypost serve`` as a real process: its stderr is JSON from the first line to the last, SIGTERM
drains in-flight requests and exits 0, and it refuses exactly what ``waypost config check`` does."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

START_TIMEOUT = 60.0
WORDS = ["one", "two", "three", "four", "five", "six"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, **sections: Any) -> Path:
    """A config with its own secrets (nothing generated) and the given sections."""
    doc: dict[str, Any] = {
        "auth": {"jwt_secret": "s" * 40},
        "security": {"encryption_keys": [Fernet.generate_key().decode()]},
        **sections,
    }
    path = directory / "waypost.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "waypost.cli", *args]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WAYPOST_")}


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    """``waypost ARGS`` run to its end (a refused start ends by itself), its output captured. Past
    the timeout its whole process group is killed: workers must not outlive a failed test."""
    with subprocess.Popen(
        cli(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def wait_until_live(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.05)


@dataclass
class Stopped:
    """What one run of ``waypost serve`` did: a malformed request, then a stream in flight when
    SIGTERM came."""

    malformed_answer: bytes
    stream: str
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    directory = tmp_path_factory.mktemp("serve")
    port = free_port()
    mock = {"reply": " ".join(WORDS), "chunks": len(WORDS), "chunk_delay_ms": 200}
    config = write_config(
        directory,
        server={"port": port},
        auth={"jwt_secret": "s" * 40, "open": True},
        logging={"level": "info", "json": True},
        models=[{"name": "slow", "provider": "mock", "mock": mock}],
    )
    (directory / f"{config.stem}.local.yaml").write_text("logging: {level: info}\n")  # named in the log
    with (directory / "stderr.log").open("w+b") as stderr:
        process = subprocess.Popen(
            cli("serve", "--config", str(config)), stdout=subprocess.DEVNULL, stderr=stderr, env=environment()
        )
        try:
            wait_until_live(port, process)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /v1/models HTTP/9.9 junk\r\n\r\n")
                malformed = b"".join(iter(lambda: sock.recv(65536), b""))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            conn.request(
                "POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"}
            )
            resp = conn.getresponse()
            first = resp.readline()  # the stream has begun: the request is in flight
            process.send_signal(signal.SIGTERM)
            stream = (first + resp.read()).decode()
            conn.close()
            returncode = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        yield Stopped(malformed, stream, returncode, stderr.read().decode())


def test_sigterm_with_one_worker_exits_0(stopped: Stopped) -> None:
    assert stopped.returncode == 0, stopped.stderr


def test_a_stream_in_flight_at_sigterm_completes(stopped: Stopped) -> None:
    assert stopped.stream.rstrip().endswith("data: [DONE]")
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in stopped.stream.splitlines()
        if line.startswith("data: {") and '"choices":[{' in line.replace(" ", "")
    ]
    assert "".join(pieces).split() == WORDS


def test_every_line_on_stderr_is_json(stopped: Stopped) -> None:
    lines = [json.loads(line) for line in stopped.stderr.splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers  # the HTTP server's own lines ("Uvicorn running on ...")
    assert "waypost.access" in loggers
    # Where it listens, said once by the gateway itself, with the files its settings came from.
    (listening,) = [line["msg"] for line in lines if line["msg"].startswith("serving on http://127.0.0.1:")]
    assert " with 1 worker(s); config: " in listening and listening.endswith(".local.yaml; 1 model(s)")


def test_a_malformed_request_is_answered_in_json_and_logged(stopped: Stopped) -> None:
    head, _, body = stopped.malformed_answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["message"].startswith("Invalid HTTP request: ")
    access = [json.loads(line) for line in stopped.stderr.splitlines() if '"waypost.access"' in line]
    assert any(line["status"] == 400 and line["error"] == "BadRequest" for line in access)


def test_serve_and_config_check_refuse_the_same_base_url(tmp_path: Path) -> None:
    bad = {"name": "meta", "provider": "openai", "base_url": "http://169.254.169.254/v1", "api_key": "k"}
    config = write_config(tmp_path, server={"port": free_port()}, models=[bad])
    check = run_to_exit("config", "check", "--config", str(config))
    serve = run_to_exit("serve", "--config", str(config))
    assert (check.returncode, serve.returncode) == (2, 2)
    assert "models[0].base_url: " in check.stderr
    assert check.stderr == serve.stderr
    assert "Traceback" not in serve.stderr


@pytest.mark.parametrize(
    ("workers", "content", "mode"),
    [
        (1, "{}", 0o644),  # generated secrets readable by others
        (2, '{"jwt_secret": ', 0o600),  # damaged: each worker would build its app and fail
    ],
    ids=["one-worker-readable-by-others", "two-workers-damaged"],
)
def test_a_configuration_error_found_while_building_the_app_is_one_log_line(
    tmp_path: Path, workers: int, content: str, mode: int
) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(content)
    secrets.chmod(mode)
    config = tmp_path / "waypost.yaml"
    config.write_text(
        yaml.safe_dump(
            {"server": {"port": free_port(), "workers": workers}, "security": {"secrets_file": str(secrets)}}
        )
    )
    serve = run_to_exit("serve", "--config", str(config))
    assert serve.returncode == 2, serve.stderr
    lines = [json.loads(line) for line in serve.stderr.splitlines() if line.strip()]
    assert len(lines) == 1  # the reason alone, as a log line: no traceback
    assert lines[0]["msg"].startswith("cannot start: ")
    assert str(secrets) in lines[0]["msg"]


def test_a_worker_that_cannot_start_ends_the_server_with_status_3_as_one_worker_does(tmp_path: Path) -> None:
    # The database cannot be created (its directory would be inside a file): every worker's
    # start fails, and so does the server, as a single worker's would.
    (tmp_path / "file").touch()
    config = write_config(
        tmp_path,
        server={"port": free_port(), "workers": 2},
        database={"url": f"sqlite:///{tmp_path}/file/waypost.db"},
    )
    serve = run_to_exit("serve", "--config", str(config))
    assert serve.returncode == 3, serve.stderr
