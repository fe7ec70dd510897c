"""`bench/ab BASE [TARGET]`: the cost of a change on the request path, measured side by side.

Both builds' ``src/`` (a git ref each; TARGET defaults to the working tree) run from this
repository's virtualenv as one-worker gateways in front of one mock upstream, pinned as the benchmark
pins them (servers on the last CPU, mock and load driver on the others). Runs alternate between the
builds, non-streamed and 20-chunk streamed, and each run's server CPU per request is read from
``/proc``. The report (stdout and ``bench/out/ab-BASE-TARGET.md``) gives every run and the medians.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import procfs, servers
from bench.runner import CATALOG_MODEL, CATALOG_USERS, CHAT_PATH, GATEWAY_KEY, waypost_config

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PYTHON = str(REPO / ".venv" / "bin" / "python")
# Both builds get explicit secrets, so older builds (which had built-in ones) and newer builds (which
# generate them into a file) start from the same configuration.
JWT_SECRET = "bench-ab-jwt-secret-0123456789abcdef"
FERNET_KEY = "YmVuY2gtYWItZmVybmV0LWtleS0wMTIzNDU2Nzg5YWI="
MODES = ("plain", "stream")


def _cpus() -> tuple[str, str]:
    """(server CPU, CPUs for the mock and the driver), as the benchmark pins them."""
    last = (os.cpu_count() or 1) - 1
    return str(last), ",".join(str(c) for c in range(last)) or "0"


def extract(ref: str | None, into: Path) -> Path:
    """``src/`` of ``ref`` (or of the working tree) copied to ``into/src``."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    if ref is None:
        shutil.copytree(REPO / "src", into / "src")
        return into
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def policy_sections() -> dict[str, Any]:
    """``--policy``: issue 11's benchmark configuration. Ten rules, none of which acts on the
    benchmark's requests (so each is evaluated: a model, a header, a parameter and a content
    condition, nested groups, a regex), a default rate limit per user far above the load (requests
    and tokens per minute: every request is counted and settled), and the response cache (memory,
    storing every answer: ``sampled``, since the requests set no temperature)."""
    rules = []
    for i in range(10):
        conditions: list[dict[str, Any]]
        if i % 4 == 0:
            conditions = [{"type": "parameter", "parameter": "model", "operator": "exact", "value": f"m{i}"}]
        elif i % 4 == 1:
            conditions = [{"type": "header", "header": "x-team", "operator": "in", "value": ["a", "b"]}]
        elif i % 4 == 2:
            conditions = [
                {
                    "or": [
                        {"type": "parameter", "parameter": "max_tokens", "operator": "gt", "value": 100_000},
                        {"type": "parameter", "parameter": "temperature", "operator": "gt", "value": 1.9},
                    ]
                }
            ]
        else:
            conditions = [
                {"type": "content", "target": "messages", "operator": "regex", "value": f"secret-{i}"}
            ]
        rules.append(
            {"name": f"rule-{i}", "weight": i, "conditions": conditions, "action": {"type": "block"}}
        )
    return {
        "rules": {"rules": rules},
        "rate_limits": {
            "limits": [
                {
                    "name": "everyone",
                    "scope": "default",
                    "windows": [{"per": "minute", "requests": 10**9, "tokens": 10**12}],
                }
            ]
        },
        "cache": {"enabled": True, "sampled": True},
    }


def fresh_postgres(server: str, name: str) -> str:
    """A new, empty database ``name`` on the PostgreSQL ``server`` (a URL whose database is
    replaced), dropped first if a previous run left it; its URL."""
    import asyncio

    import asyncpg  # the gateway's own PostgreSQL driver
    from sqlalchemy.engine import make_url

    url = make_url(server)

    async def create() -> None:
        conn = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)


def seed(root: Path, database: str, others: int, budget: bool) -> None:
    """The build's own database, migrated and seeded by the build's own code (``bench.runner``'s
    seeding, with ``waypost`` imported from ``root/src``): a build migrates only to the schema it
    knows."""
    code = "import asyncio, sys; from bench.runner import _seed_database; "
    code += "asyncio.run(_seed_database(sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'))"
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{REPO}"}
    argv = [PYTHON, "-c", code, database, str(others), "1" if budget else "0"]
    subprocess.run(argv, cwd=REPO, env=env, check=True)


def start(
    root: Path,
    upstream_port: int,
    server_cpu: str,
    catalog: bool = False,
    budget: bool = False,
    postgres: str | None = None,
    environ: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    database = root / "waypost.db"
    database.unlink(missing_ok=True)
    url = fresh_postgres(postgres, f"waypost_{root.name.replace('-', '_')}") if postgres else None
    seed(root, url or f"sqlite:///{database}", CATALOG_USERS if catalog else 0, budget)
    port = servers.free_port()
    config = waypost_config(port, upstream_port, database, catalog)
    if url is not None:
        config["database"] = {"url": url}
    config.update(extra or {})
    config["auth"] = {"jwt_secret": JWT_SECRET}
    config["security"]["encryption_keys"] = [FERNET_KEY]
    config["logging"] = {"level": "warning"}
    (root / "waypost.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, **(environ or {}), "PYTHONPATH": str(root / "src")}
    log = (root / "server.log").open("wb")
    argv = ["taskset", "-c", server_cpu, PYTHON, "-m", "waypost.cli", "serve", "--config", "waypost.yaml"]
    process = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(3000):
        if servers.health_status("127.0.0.1", port, "/health") == 200:
            return process, port
        if process.poll() is not None:
            raise SystemExit(f"{root.name} did not start:\n" + (root / "server.log").read_text()[-2000:])
        time.sleep(0.01)
    raise SystemExit(f"{root.name} did not answer /health")


def stop(started: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    for process, _ in started:
        process.terminate()
        process.wait(30)


def drive(port: int, pid: int, stream: bool, args: argparse.Namespace, load_cpus: str) -> tuple[float, int]:
    """One run: (server CPU ms per request, requests per second)."""
    argv = [
        "taskset", "-c", load_cpus, PYTHON, "-m", "bench.load",
        "--url", f"http://127.0.0.1:{port}{CHAT_PATH}", "-c", str(args.concurrency),
        "--duration", str(args.duration), "--warmup", "1", "--wait-go",
        "--header", f"Authorization: Bearer {GATEWAY_KEY}",
    ]  # fmt: skip
    if stream:
        argv.append("--stream")
    if args.catalog:
        argv += ["--model", CATALOG_MODEL]
    if args.policy == "miss":
        argv.append("--unique")
    driver = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None and driver.stdin is not None
    json.loads(driver.stdout.readline())  # connected and warmed up
    before = procfs.cpu_seconds(pid)
    driver.stdin.write("go\n")
    driver.stdin.flush()
    result = json.loads(driver.stdout.readline())
    spent = procfs.cpu_spent(before, procfs.cpu_seconds(pid))
    driver.wait()
    if result["errors"] or not result["requests"]:
        raise SystemExit(f"run failed: {result}")
    return spent / result["requests"] * 1000, result["requests"] / args.duration


def report(
    names: list[str],
    runs: dict[tuple[str, str], list[tuple[float, float]]],
    args: argparse.Namespace,
    modes: tuple[str, ...] = MODES,
) -> str:
    lines = [
        f"A/B at concurrency {args.concurrency}, {args.rounds} alternating rounds of {args.duration:g} s"
        f"{' (new server processes each round)' if args.fresh else ''}"
        f"{', catalogue scenario' if args.catalog else ''}{', a budget on everyone' if args.budget else ''}"
        f"{', on PostgreSQL' if args.postgres else ''}"
        f"{f', policy on the target ({args.policy} path)' if args.policy else ''}, "
        f"load average {os.getloadavg()[0]:.2f} at the end",
        "",
        "| leg | build | CPU ms/req, each run | median CPU ms/req | median req/s |",
        "|---|---|---|---|---|",
    ]
    for mode in modes:
        for name in names:
            cpu = [c for c, _ in runs[(name, mode)]]
            rate = [r for _, r in runs[(name, mode)]]
            each = ", ".join(f"{c:.3f}" for c in cpu)
            lines.append(
                f"| {mode} | {name} | {each} | {statistics.median(cpu):.3f} | {statistics.median(rate):.0f} |"
            )
        base, target = (statistics.median(c for c, _ in runs[(n, mode)]) for n in names)
        lines.append(f"| {mode} | change | | {(target - base) / base * 100:+.1f} % | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the git ref measured first (e.g. the commit before the change)")
    parser.add_argument("target", nargs="?", help="the git ref to compare (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mode", choices=["both", *MODES], default="both")
    parser.add_argument(
        "--catalog", action="store_true", help="both builds with bench/run's --catalog configuration"
    )
    parser.add_argument(
        "--budget",
        action="store_true",
        help="a budget on everyone (builds that have budgets): bench/run's --budget",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="each build on its own new database on this PostgreSQL server instead of SQLite "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--target-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the target build's server only, e.g. "
        "WAYPOST_AUDIT__ENABLED=false: with BASE and TARGET the same ref, the cost of one setting",
    )
    parser.add_argument(
        "--policy",
        choices=["miss", "hit"],
        help="the target build with issue 11's policy (10 rules, a rate limit, the response cache): "
        "every request different (cache misses, for both builds) or every request the same (hits)",
    )
    parser.add_argument(
        "--policy-both",
        action="store_true",
        help="with --policy, the base build gets the policy too (both builds must have the policy "
        "stages): what a change costs on the miss or the hit path, e.g. --policy hit --policy-both",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start both servers anew (new databases) for each round: the medians then span as many "
        "processes as rounds, not one per build (a process's own layout moves its CPU by several %%)",
    )
    args = parser.parse_args(argv)
    target_env = dict(item.split("=", 1) for item in args.target_env)
    modes = MODES if args.mode == "both" else (args.mode,)
    names = [args.base, args.target or "working-tree"]
    if args.target_env:
        names[1] += " " + " ".join(args.target_env)
    if args.policy:
        names[1] += f" (policy, {args.policy})"
        if args.policy_both:
            names[0] += f" (policy, {args.policy})"
    if names[0] == names[1]:  # one ref against itself: each build's runs under its own name
        names = [f"{names[0]} (A)", f"{names[1]} (B)"]
    server_cpu, load_cpus = _cpus()
    roots = [extract(ref, OUT / f"ab-{i}") for i, ref in enumerate((args.base, args.target))]
    mock_port = servers.free_port()
    mock = subprocess.Popen(
        ["taskset", "-c", load_cpus, PYTHON, "-m", "bench.mock_upstream", "--port", str(mock_port)], cwd=REPO
    )
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        time.sleep(1.0)

        def start_both() -> None:
            """Both servers, each in ``started`` as soon as it runs (stopped however this ends)."""
            started.clear()
            for i, root in enumerate(roots):
                started.append(
                    start(
                        root,
                        mock_port,
                        server_cpu,
                        args.catalog,
                        args.budget,
                        args.postgres,
                        target_env if i else None,
                        policy_sections() if (i or args.policy_both) and args.policy else None,
                    )
                )

        start_both()
        for round_ in range(args.rounds):
            if args.fresh and round_:
                stop(started)
                start_both()
            order = [0, 1] if round_ % 2 == 0 else [1, 0]
            for mode in modes:
                for i in order:
                    process, port = started[i]
                    cpu, rate = drive(port, process.pid, mode == "stream", args, load_cpus)
                    runs.setdefault((names[i], mode), []).append((cpu, rate))
                    print(
                        f"round {round_} {mode:6} {names[i]}: {cpu:.3f} ms CPU/req, {rate:.0f} req/s",
                        flush=True,
                    )
    finally:
        stop(started)
        mock.terminate()
        mock.wait(30)
    text = report(names, runs, args, modes)
    safe = "-".join(n.replace("/", "_") for n in names)
    (OUT / f"ab-{safe}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
