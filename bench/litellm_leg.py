"""The optional LiteLLM leg: install its proxy in a virtualenv of its own and configure it like Waypost.

LiteLLM never enters the project's environment; it lives in bench/.litellm-venv (git-ignored).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from bench.servers import ServerSpec

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".litellm-venv"
MASTER_KEY = "sk-bench-key"  # LiteLLM requires master keys to start with "sk-"
_MARKER = VENV / ".bench-installed"
_INSTALL_TIMEOUT_S = 1800


class InstallFailed(RuntimeError):
    """LiteLLM's proxy could not be installed; the message says why."""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ensure_installed(log_dir: Path) -> str:
    """Install litellm[proxy] once; return its version. Raises InstallFailed with the reason."""
    if _MARKER.exists() and (VENV / "bin" / "litellm").exists():
        return _MARKER.read_text().strip()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "litellm-install.log"
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(VENV / "bin" / "pip"), "install", "--disable-pip-version-check", "litellm[proxy]"],
    ]
    with log_path.open("w") as log:
        for argv in steps:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            try:
                done = subprocess.run(
                    argv, stdout=log, stderr=subprocess.STDOUT, timeout=_INSTALL_TIMEOUT_S, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise InstallFailed(f"`{' '.join(argv)}` failed: {exc}; log {log_path}") from exc
            if done.returncode != 0:
                raise InstallFailed(
                    f"`{' '.join(argv)}` exited with {done.returncode}; log {log_path}:\n"
                    f"{_tail(log_path.read_text(errors='replace'))}"
                )
    probe = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise InstallFailed(f"litellm installed but not importable: {_tail(probe.stderr)}")
    version = probe.stdout.strip()
    _MARKER.write_text(version + "\n")
    return version


def spec(port: int, upstream_port: int, work_dir: Path) -> ServerSpec:
    """A LiteLLM proxy on one worker, routing bench-model to the mock upstream, with a master key."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "model_list": [
            {
                "model_name": "bench-model",
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "sk-mock",
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }
    config_path = work_dir / "litellm.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [
        str(VENV / "bin" / "litellm"),
        "--config",
        str(config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return ServerSpec(
        name="litellm",
        argv=argv,
        port=port,
        health_path="/health/liveliness",
        cwd=work_dir,
        env={"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
        start_timeout_s=180.0,
    )
