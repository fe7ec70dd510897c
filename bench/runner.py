"""Orchestration: start each server, drive the same load through it, measure it from /proc, report.

Servers run one at a time next to the mock upstream (which runs throughout), so the only processes
competing for the CPUs are the load driver, the mock and the server being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import math
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import yaml

from bench import litellm_leg, procfs, servers
from bench.mock_upstream import STREAM_CHUNKS
from bench.report import DIRECT, LABELS, LITELLM, PASSTHROUGH, WAYPOST, Cell, Run, Server, render

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
OUT_DIR = BENCH_DIR / "out"
GATEWAY_KEY = "bench-key"
CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
APIS = ("chat", "responses", "responses-translated")
"""``--api``: chat completions; the Responses API with Waypost's deployment serving it natively
(the mock's /v1/responses, the same-format fast path); or with the deployment speaking only chat
completions, so Waypost translates Responses requests and answers to and from chat."""
_IDLE_SETTLE_S = 0.5


class CellFailed(RuntimeError):
    """A load driver died or stopped answering."""


class _Lines:
    """Newline-delimited JSON from a child's stdout, with a timeout (a hung server must not hang us)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._process = process
        self._fd = process.stdout.fileno()
        self._buf = b""

    def read(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellFailed(f"load driver gave no answer within {timeout_s:.0f} s")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                data = os.read(self._fd, 1 << 20)
                if not data:
                    raise CellFailed(f"load driver exited with code {self._process.wait()}")
                self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        parsed: dict[str, Any] = orjson.loads(line)
        return parsed


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_cell(
    server: servers.RunningServer,
    name: str,
    stream: bool,
    concurrency: int,
    headers: list[str],
    args: argparse.Namespace,
    upstream_pid: int | None,
) -> Cell:
    """Warm up, then measure one (server, mode, concurrency) with the server's CPU read around it."""
    responses = args.api != "chat"
    url = f"http://127.0.0.1:{server.spec.port}{RESPONSES_PATH if responses else CHAT_PATH}"
    drivers: list[subprocess.Popen[bytes]] = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        with (OUT_DIR / "load.log").open("ab") as log:
            for share in _split(concurrency, args.load_processes):
                argv = [sys.executable, "-m", "bench.load", "--url", url, "-c", str(share)]
                argv += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--wait-go"]
                argv += ["--stream"] if stream else []
                argv += ["--api", "responses"] if responses else []
                argv += ["--model", CATALOG_MODEL] if args.catalog else []
                for header in headers:
                    argv += ["--header", header]
                driver = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                )
                drivers.append(driver)
                servers.pin(driver.pid, args.load_cpus)
        readers = [_Lines(d) for d in drivers]
        for reader in readers:
            reader.read(args.warmup + 60)
        cpu_before = procfs.cpu_seconds(server.pid)
        upstream_before = procfs.cpu_seconds(upstream_pid) if upstream_pid else {}
        busy_before = procfs.machine_busy_seconds()
        for driver in drivers:
            assert driver.stdin is not None
            driver.stdin.write(b"go\n")
            driver.stdin.flush()
        results = [reader.read(args.duration + 90) for reader in readers]
        busy_after = procfs.machine_busy_seconds()
        cpu_after = procfs.cpu_seconds(server.pid)
        upstream_after = procfs.cpu_seconds(upstream_pid) if upstream_pid else {}
        peak = procfs.memory_mib(server.pid, "VmHWM")
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
            driver.wait()
    server_cpu = procfs.cpu_spent(cpu_before, cpu_after)
    upstream_cpu = procfs.cpu_spent(upstream_before, upstream_after)
    driver_cpu = sum(r["driver_cpu_s"] for r in results)
    return Cell(
        server=name,
        stream=stream,
        concurrency=concurrency,
        requests=sum(r["requests"] for r in results),
        errors=sum(r["errors"] for r in results),
        elapsed_s=max(r["elapsed_s"] for r in results),
        latencies_ms=sorted(1000 * v for r in results for v in r["latencies_s"]),
        ttfts_ms=sorted(1000 * v for r in results for v in r["ttfts_s"]),
        server_cpu_s=server_cpu,
        driver_cpu_s=driver_cpu,
        upstream_cpu_s=upstream_cpu if upstream_pid else math.nan,
        other_cpu_s=max(0.0, busy_after - busy_before - server_cpu - upstream_cpu - driver_cpu),
        peak_mib=peak,
        error_samples=list(dict.fromkeys(s for r in results for s in r["error_samples"]))[:3],
    )


def _print_cell(cell: Cell) -> None:
    mode = "stream" if cell.stream else "plain "
    ttft = f"  TTFT p50 {cell.ttft_p50_ms:6.2f} ms" if cell.stream else ""
    print(
        f"  {cell.server:<12} {mode} c={cell.concurrency:<3} {cell.rps:8,.0f} req/s"
        f"  p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:6.2f} ms  p99.9 {cell.p999_ms:6.2f} ms{ttft}"
        f"  CPU {cell.cpu_ms_per_request:6.3f} ms/req ({cell.server_cpu_pct:3.0f}%)"
        f"  driver {cell.driver_cpu_pct:3.0f}%  other {cell.other_cpu_pct:3.0f}%  errors {cell.errors}",
        flush=True,
    )


def _start_measured(
    spec: servers.ServerSpec, runs: int, record: Server, live: list[servers.RunningServer]
) -> servers.RunningServer:
    """Spawn the server `runs` times for its start-up time; the last one stays up to be measured."""
    for _ in range(runs - 1):
        probe = servers.start(spec, OUT_DIR)
        record.startup_runs_s.append(probe.startup_s)
        servers.stop(probe)
    running = servers.start(spec, OUT_DIR)
    live.append(running)
    record.startup_runs_s.append(running.startup_s)
    time.sleep(_IDLE_SETTLE_S)
    record.idle_mib = procfs.memory_mib(running.pid, "VmRSS")
    return running


def measure_server(
    run: Run,
    name: str,
    spec: servers.ServerSpec,
    headers: list[str],
    args: argparse.Namespace,
    live: list[servers.RunningServer],
    upstream_pid: int | None,
    keep_running: bool = False,
) -> servers.RunningServer | None:
    """Start-up, idle memory, every cell, peak memory. Failures are recorded, not raised."""
    record = Server(name)
    run.servers.append(record)
    print(f"{LABELS[name]}:", flush=True)
    running: servers.RunningServer | None = None
    try:
        running = _start_measured(spec, args.startup_runs if name != LITELLM else 1, record, live)
        print(f"  started in {running.startup_s:.2f} s, idle {record.idle_mib:.1f} MiB", flush=True)
        for stream in args.modes:
            for concurrency in args.concurrency:
                cell = run_cell(running, name, stream, concurrency, headers, args, upstream_pid)
                record.cells.append(cell)
                _print_cell(cell)
        record.peak_mib = procfs.memory_mib(running.pid, "VmHWM")
    except (servers.ServerFailed, CellFailed, OSError) as exc:
        record.status = "failed"
        record.note = str(exc)
        print(f"  FAILED: {exc}", flush=True)
    finally:
        if running is not None and not (keep_running and record.status == "ok"):
            servers.stop(running)
            live.remove(running)
    return running if record.status == "ok" else None


def waypost_available(executable: Path) -> str | None:
    """None when `waypost --help` works, else the reason it does not."""
    if not executable.exists():
        return f"{executable} does not exist"
    try:
        done = subprocess.run(
            [str(executable), "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{executable} --help` failed: {exc}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`{executable} --help` exited with {done.returncode}: {last}"
    return None


# ``--catalog``: the requests name a model matched only by the last of 1,000 entries' patterns.
CATALOG_MODELS = 1000
CATALOG_USERS = 10_000
CATALOG_MODEL = "bench-catalog-model"


def waypost_spec(
    executable: Path,
    port: int,
    upstream_port: int,
    catalog: bool = False,
    budget: bool = False,
    api: str = "chat",
) -> servers.ServerSpec:
    work_dir = OUT_DIR / "waypost"
    work_dir.mkdir(parents=True, exist_ok=True)
    database = work_dir / "waypost.db"
    database.unlink(missing_ok=True)
    asyncio.run(_seed_database(f"sqlite:///{database}", CATALOG_USERS if catalog else 0, budget))
    config = waypost_config(port, upstream_port, database, catalog)
    if api != "chat":
        # Whether the deployment's upstream serves /v1/responses itself (the fast path) or only chat.
        for entry in config["models"]:
            entry["responses_api"] = api == "responses"
    config_path = work_dir / "waypost.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [str(executable), "serve", "--config", str(config_path)]
    return servers.ServerSpec("waypost", argv, port, cwd=work_dir, start_timeout_s=60.0)


def waypost_config(port: int, upstream_port: int, database: Path, catalog: bool = False) -> dict[str, Any]:
    """The gateway's configuration: one public model on the mock upstream, a SQLite database.
    With ``catalog``: 1,000 models instead, half exact names and half ``match`` patterns, the
    requested name matched by the last pattern only."""
    if catalog:
        upstream = {
            "provider": "openai",
            "base_url": f"http://127.0.0.1:{upstream_port}/v1",
            "api_key": "sk-mock",
        }
        half = CATALOG_MODELS // 2
        models = [{"name": f"exact-{i}", **upstream, "public": True} for i in range(half)]
        models += [
            {"name": f"family-{i}", "match": f"family-{i}-.*", **upstream, "public": True}
            for i in range(half - 1)
        ]
        models.append({"name": "last-pattern", "match": "bench-catalog-.*", **upstream, "public": True})
        return {
            "server": {"host": "127.0.0.1", "port": port, "workers": 1},
            "database": {"url": f"sqlite:///{database}"},
            "security": {"allow_private_targets": True},
            "models": models,
        }
    return {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1},
        "database": {"url": f"sqlite:///{database}"},
        "security": {"allow_private_targets": True},  # the mock upstream is on loopback
        "models": [
            {
                "name": "bench-model",
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key": "sk-mock",
                "public": True,
                # Priced, so every request is metered in full (cost, audit row, budgets).
                "prices": {"input": 2.5, "output": 10.0, "cache_read": 1.25},
            }
        ],
    }


async def _seed_database(url: str, others: int = 0, budget: bool = False) -> None:
    """A migrated database holding one user with the API token the load generator sends, as
    `waypost tokens create` would leave it (the token's value is fixed so every leg uses one);
    ``others`` more users with a token each (``--catalog``); with ``budget``, a monthly budget on
    everyone, too large to be reached, so that every request reserves and settles (``--budget``;
    builds without budgets get none)."""
    from waypost.security.api_tokens import hash_api_token
    from waypost.settings import DatabaseSettings
    from waypost.store import Store

    store = Store.from_settings(DatabaseSettings(url=url))
    try:
        await store.upgrade()
        user = await store.users.create("bench@localhost", "Benchmark", role="user")
        await store.tokens.create(
            user.id, "bench", token_hash=hash_api_token(GATEWAY_KEY), prefix=GATEWAY_KEY[:10]
        )
        for i in range(others):
            other = await store.users.create(f"user-{i}@bench.localhost", f"User {i}", role="user")
            key = f"wp-bench-user-{i:06d}-0123456789"
            await store.tokens.create(other.id, "t", token_hash=hash_api_token(key), prefix=key[:10])
        if budget and hasattr(store, "budgets"):
            await store.budgets.create(
                name="bench",
                scope="global",
                target=None,
                limit_micros=10**15,
                limit_tokens=None,
                period="monthly",
            )
    finally:
        await store.close()


def _python_module(module: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", module, "--port", str(port), *extra]


def _command(argv: list[str]) -> str:
    launcher = os.environ.get("WAYPOST_BENCH_LAUNCHER")
    if not launcher:
        python = Path(sys.executable)
        with contextlib.suppress(ValueError):
            python = python.relative_to(REPO)
        launcher = f"{python} -m bench"
    return " ".join([launcher, *(shlex.quote(a) for a in argv)]).strip()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _settings(args: argparse.Namespace) -> dict[str, str]:
    return {
        "measured per cell": f"{args.duration:g} s after {args.warmup:g} s warm-up (closed loop, keep-alive)",
        "concurrency": ", ".join(str(c) for c in args.concurrency),
        "modes": ", ".join("streaming" if s else "non-streaming" for s in args.modes),
        "API": {
            "chat": f"chat completions ({CHAT_PATH})",
            "responses": f"Responses API ({RESPONSES_PATH}), Waypost's deployment serving it natively",
            "responses-translated": f"Responses API ({RESPONSES_PATH}), Waypost translating to chat completions",
        }[args.api],
        "stream shape": (
            f"{STREAM_CHUNKS} content chunks + usage chunk + [DONE]"
            if args.api == "chat"
            else f"the typed Responses events: {STREAM_CHUNKS} output_text deltas, 8 others"
        ),
        "load driver processes": str(args.load_processes),
        "server workers": "1 each",
        "CPU pinning": (
            f"server under test on CPU {_cpus(args.server_cpus)}; "
            f"load driver and mock upstream on CPU {_cpus(args.load_cpus)}"
            if args.server_cpus
            else "none (--no-pin, or a single CPU)"
        ),
        "aiohttp / uvloop / orjson": f"{_version('aiohttp')} / {_version('uvloop')} / {_version('orjson')}",
        "waypost": _version("waypost"),
    }


def _cpus(cpus: frozenset[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))


def cpu_split(pin: bool) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(CPUs for the server under test, CPUs for the load): the last CPU alone against the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return frozenset(cpus[-1:]), frozenset(cpus[:-1])


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def execute(args: argparse.Namespace, argv: list[str]) -> Run:
    run = Run(
        command=_command(argv),
        started_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=procfs.machine(),
        settings=_settings(args),
        concurrencies=args.concurrency,
        modes=args.modes,
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for old_log in OUT_DIR.glob("*.log"):
        if old_log.name != "litellm-install.log":
            old_log.unlink()
    live: list[servers.RunningServer] = []
    bearer = [f"Authorization: Bearer {GATEWAY_KEY}"]
    try:
        mock_port = servers.free_port()
        mock = servers.ServerSpec(
            "mock-upstream", _python_module("bench.mock_upstream", mock_port), mock_port
        )
        upstream = None
        if DIRECT in args.servers:
            mock.cpus = args.server_cpus
            upstream = measure_server(run, DIRECT, mock, bearer, args, live, None, keep_running=True)
        mock.cpus = args.load_cpus
        if upstream is None:
            upstream = servers.start(mock, OUT_DIR)
            live.append(upstream)
        # From here on the mock is part of the load, not the server under test.
        servers.pin(upstream.pid, args.load_cpus)
        upstream_url = f"http://127.0.0.1:{mock_port}"
        legs: list[tuple[str, Callable[[], servers.ServerSpec | str], list[str]]] = []
        if PASSTHROUGH in args.servers:
            port = servers.free_port()
            argv_pt = _python_module("bench.passthrough", port, "--upstream", upstream_url)
            legs.append((PASSTHROUGH, lambda: servers.ServerSpec("passthrough", argv_pt, port), bearer))
        if WAYPOST in args.servers:
            legs.append(
                (WAYPOST, lambda: _waypost_leg(mock_port, args.catalog, args.budget, args.api), bearer)
            )
        if args.litellm:
            litellm_headers = [f"Authorization: Bearer {litellm_leg.MASTER_KEY}"]
            legs.append((LITELLM, lambda: _litellm_leg(mock_port), litellm_headers))
        for name, make_spec, headers in legs:
            spec = make_spec()
            if isinstance(spec, str):
                run.servers.append(Server(name, status="skipped", note=spec))
                print(f"{LABELS[name]}: SKIPPED: {spec}", flush=True)
                continue
            spec.cpus = args.server_cpus
            measure_server(run, name, spec, headers, args, live, upstream.pid)
    finally:
        for server in reversed(live):
            servers.stop(server)
    return run


def _waypost_leg(
    mock_port: int, catalog: bool = False, budget: bool = False, api: str = "chat"
) -> servers.ServerSpec | str:
    executable = Path(sys.executable).parent / "waypost"
    reason = waypost_available(executable)
    if reason is not None:
        return f"the gateway CLI is not usable yet ({reason})"
    return waypost_spec(executable, servers.free_port(), mock_port, catalog, budget, api)


def _litellm_leg(mock_port: int) -> servers.ServerSpec | str:
    print("LiteLLM: installing litellm[proxy] into bench/.litellm-venv (once) ...", flush=True)
    try:
        version = litellm_leg.ensure_installed(OUT_DIR)
    except litellm_leg.InstallFailed as exc:
        return f"install failed: {exc}"
    print(f"LiteLLM {version} ready", flush=True)
    return litellm_leg.spec(servers.free_port(), mock_port, OUT_DIR / "litellm")


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Measure a mock upstream directly, through a bare pass-through and through Waypost.",
    )
    parser.add_argument("--quick", action="store_true", help="short cells (about a minute in all)")
    parser.add_argument("--duration", type=float, help="seconds measured per cell (default 10, quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per cell (default 1.5, quick 0.5)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 16, 64], help="e.g. 1,16,64")
    parser.add_argument("--mode", choices=["both", "plain", "stream"], default="both")
    parser.add_argument(
        "--servers",
        type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
        default=[DIRECT, PASSTHROUGH, WAYPOST],
        help="which of direct,passthrough,waypost to measure (default all)",
    )
    parser.add_argument("--litellm", action="store_true", help="also install and measure LiteLLM's proxy")
    parser.add_argument("--load-processes", type=int, default=1, help="load driver processes per cell")
    parser.add_argument("--startup-runs", type=int, help="spawns timed per server (default 3, quick 1)")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server to its own CPU (default: server on the last CPU, load on the rest)",
    )
    parser.add_argument(
        "--catalog",
        action="store_true",
        help="Waypost with 1,000 models (half patterns; the requests match the last one) and 10,000 users",
    )
    parser.add_argument(
        "--budget",
        action="store_true",
        help="Waypost with a budget on everyone (never reached): every request reserves and settles",
    )
    parser.add_argument(
        "--api",
        choices=APIS,
        default="chat",
        help="chat completions (default), the Responses API served natively, or translated to chat",
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)
    unknown = set(args.servers) - {DIRECT, PASSTHROUGH, WAYPOST}
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.5
    if args.startup_runs is None:
        args.startup_runs = 1 if args.quick else 3
    args.startup_runs = max(1, args.startup_runs)
    args.server_cpus, args.load_cpus = cpu_split(not args.no_pin)
    args.modes = {"both": [False, True], "plain": [False], "stream": [True]}[args.mode]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell starts background jobs with SIGINT ignored; a benchmark should still stop on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = execute(args, argv)
    except KeyboardInterrupt:
        print("\ninterrupted: every server and driver this run started has been stopped", file=sys.stderr)
        return 130
    except servers.ServerFailed as exc:
        print(f"cannot run the benchmark: {exc}", file=sys.stderr)
        return 1
    args.output.write_text(render(run))
    print(f"wrote {args.output}")
    return 0
