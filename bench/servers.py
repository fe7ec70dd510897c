"""Starting, timing and stopping the servers under test.

Each server gets its own session (process group), so a Ctrl-C in the terminal reaches only the
runner, which then stops every server it started, group by group.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procfs

_POLL_S = 0.01


class ServerFailed(RuntimeError):
    """The server exited or never answered its health endpoint."""


@dataclass(slots=True)
class ServerSpec:
    name: str
    argv: list[str]
    port: int
    health_path: str = "/health"
    host: str = "127.0.0.1"
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 30.0
    cpus: frozenset[int] | None = None


@dataclass(slots=True)
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    startup_s: float
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def health_status(host: str, port: int, path: str, timeout_s: float = 1.0) -> int | None:
    """The health endpoint's HTTP status, or None while nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def pin(root: int, cpus: frozenset[int] | None) -> None:
    """Move every thread of a process tree onto `cpus`; None leaves it where it is."""
    if not cpus:
        return
    for pid in procfs.process_tree(root):
        for tid in procfs.threads(pid):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(spec: ServerSpec, log_dir: Path) -> RunningServer:
    """Spawn the server and time it until its health endpoint answers 200."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    env = {**os.environ, **spec.env}
    with log_path.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
        )
    # Pinned right after the spawn, before the interpreter has started any thread or worker.
    pin(process.pid, spec.cpus)
    server = RunningServer(spec, process, 0.0, log_path)
    deadline = started + spec.start_timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise ServerFailed(
                    f"{spec.name} exited with code {process.returncode} before answering "
                    f"{spec.health_path}; log {log_path}:\n{log_tail(log_path)}"
                )
            if health_status(spec.host, spec.port, spec.health_path) == 200:
                server.startup_s = time.perf_counter() - started
                return server
            if time.perf_counter() > deadline:
                raise ServerFailed(
                    f"{spec.name} did not answer {spec.health_path} within {spec.start_timeout_s:.0f} s; "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(_POLL_S)
    except BaseException:
        stop(server)
        raise


def stop(server: RunningServer, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    # Workers the server forked live in the same group and may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
