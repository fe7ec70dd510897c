"""Run the Codex CLI (``codex exec``, non-interactive) against a given Responses API base URL.

The CLI is npm's @openai/codex, pinned and installed under .tools/codex by scripts/install-codex
(``make codex``; ``make test`` runs it first). Each run gets a fresh CODEX_HOME whose config.toml names
one provider, the URL under test, with ``wire_api = "responses"``, so the CLI reads no user config and
reaches nothing else: no update check, no analytics, no OpenTelemetry export, no stored history.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CODEX = Path(os.environ.get("WAYPOST_CODEX", ROOT / ".tools" / "codex" / "node_modules" / ".bin" / "codex"))
KEY_VARIABLE = "WAYPOST_CODEX_TEST_KEY"
"""The variable the provider's ``env_key`` names: the CLI sends its value as the bearer token."""
TIMEOUT_S = 120.0
"""A hung CLI ends the test instead of the suite; a run through loopback fakes takes seconds."""


@dataclass
class CodexRun:
    home: Path
    cwd: Path
    returncode: int
    stdout: str
    stderr: str
    last_message: str
    events: list[dict[str, Any]] = field(default_factory=list)
    """The ``--json`` event lines the CLI printed."""


def installed() -> bool:
    return os.access(CODEX, os.X_OK)


def config_toml(base_url: str, model: str, extra: str = "") -> str:
    """The CLI's whole configuration; ``extra`` adds top-level keys (e.g. ``web_search = "disabled"``)."""
    return f"""\
{extra}
model = {json.dumps(model)}
model_provider = "waypost"
approval_policy = "never"
sandbox_mode = "workspace-write"
check_for_update_on_startup = false

[model_providers.waypost]
name = "Waypost"
base_url = {json.dumps(base_url)}
env_key = "{KEY_VARIABLE}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"

[history]
persistence = "none"
"""


async def run_codex(
    base_url: str,
    api_key: str,
    prompt: str,
    *,
    model: str,
    extra_config: str = "",
    root: Path | None = None,
) -> CodexRun:
    """``codex exec PROMPT`` in a fresh workspace (under ``root``, e.g. pytest's tmp_path), to its end."""
    home = Path(tempfile.mkdtemp(prefix="codex-home-", dir=root))
    cwd = Path(tempfile.mkdtemp(prefix="codex-work-", dir=root))
    (home / "config.toml").write_text(config_toml(base_url, model, extra_config))
    last = home / "last-message.txt"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home),
        KEY_VARIABLE: api_key,
        "NO_COLOR": "1",
    }
    args = [
        str(CODEX),
        "exec",
        "--strict-config",
        "--skip-git-repo-check",
        "--ephemeral",
        "--color",
        "never",
        "--json",
        "-C",
        str(cwd),
        "-o",
        str(last),
        prompt,
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    stdout = out.decode(errors="replace")
    events = []
    for line in stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return CodexRun(
        home=home,
        cwd=cwd,
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=stdout,
        stderr=err.decode(errors="replace"),
        last_message=last.read_text() if last.exists() else "",
        events=events,
    )
