"""`bench/replicas`: the throughput of one, two and three Waypost replicas sharing PostgreSQL and
Redis, as a deployment runs them (docs/scaling.md).

Each replica is a ``waypost serve`` process (``--workers`` each, one by default) on its own port,
all on one new PostgreSQL database (the audit log, tokens) and one Redis prefix (rate limits,
budgets and cache counters: ``state.backend: redis``), with a budget on everyone so that every
request reserves and settles in Redis. One load-driver process per replica drives it (the
connections split evenly: what a load balancer in front would do), non-streamed requests to
the benchmark's mock upstream. Nothing is pinned: on a machine with fewer cores than processes
the replicas, the drivers and the mock share them, and the table says how busy the machine was.

Run: bench/replicas [--max 3] [--workers 1] [--duration 8] [--concurrency 64]
     [--postgres postgresql://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from bench import procfs, servers
from bench.ab import FERNET_KEY, JWT_SECRET, fresh_postgres
from bench.runner import CHAT_PATH, GATEWAY_KEY, _seed_database, waypost_config

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "replicas"
PYTHON = str(REPO / ".venv" / "bin" / "python")


def start_replicas(
    count: int, workers: int, mock_port: int, database: str, redis: str, prefix: str
) -> list[tuple[subprocess.Popen[bytes], int]]:
    started = []
    for i in range(count):
        port = servers.free_port()
        config = waypost_config(port, mock_port, OUT / "unused.db")
        config["server"]["workers"] = workers
        config["database"] = {"url": database}
        config["state"] = {"backend": "redis", "redis_url": redis, "key_prefix": prefix}
        config["auth"] = {"jwt_secret": JWT_SECRET}
        config["security"]["encryption_keys"] = [FERNET_KEY]
        config["logging"] = {"level": "warning"}
        path = OUT / f"replica-{i}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = (OUT / f"replica-{i}.log").open("wb")
        argv = [PYTHON, "-m", "waypost.cli", "serve", "--config", str(path)]
        process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        started.append((process, port))
    for process, port in started:
        for _ in range(6000):
            if servers.health_status("127.0.0.1", port, "/health/ready") == 200:
                break
            if process.poll() is not None:
                raise SystemExit(f"a replica did not start; see {OUT}/replica-*.log")
            time.sleep(0.01)
        else:
            raise SystemExit(f"a replica did not become ready; see {OUT}/replica-*.log")
    return started


def drive(ports: list[int], pids: list[int], args: argparse.Namespace) -> dict[str, float]:
    """One measured run over every replica at once: requests per second in all, server CPU per
    request (summed over the replicas' process trees), and the busy share of the machine."""
    drivers = []
    share = max(1, args.concurrency // len(ports))
    for port in ports:
        argv = [
            PYTHON, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}{CHAT_PATH}",
            "-c", str(share), "--duration", str(args.duration), "--warmup", "1", "--wait-go",
            "--header", f"Authorization: Bearer {GATEWAY_KEY}",
        ]  # fmt: skip
        drivers.append(
            subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    for driver in drivers:
        assert driver.stdout is not None
        json.loads(driver.stdout.readline())  # connected and warmed up
    before = [procfs.cpu_seconds(pid) for pid in pids]
    busy_before = procfs.machine_busy_seconds()
    for driver in drivers:
        assert driver.stdin is not None
        driver.stdin.write("go\n")
        driver.stdin.flush()
    results = []
    for driver in drivers:
        assert driver.stdout is not None
        results.append(json.loads(driver.stdout.readline()))
        driver.wait()
    spent = sum(procfs.cpu_spent(b, procfs.cpu_seconds(pid)) for b, pid in zip(before, pids, strict=True))
    busy = procfs.machine_busy_seconds() - busy_before
    requests = sum(r["requests"] for r in results)
    errors = sum(r["errors"] for r in results)
    if errors or not requests:
        raise SystemExit(f"run failed: {errors} errors, {requests} requests")
    latencies = sorted(x for r in results for x in r["latencies_s"])
    return {
        "rps": requests / args.duration,
        "cpu_ms": spent / requests * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "busy_cores": busy / args.duration,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=3, help="measure 1 .. MAX replicas")
    parser.add_argument("--workers", type=int, default=1, help="workers per replica")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64, help="connections in all, split over replicas")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    mock_port = servers.free_port()
    mock = subprocess.Popen([PYTHON, "-m", "bench.mock_upstream", "--port", str(mock_port)], cwd=REPO)
    rows = []
    try:
        time.sleep(1.0)
        for count in range(1, args.max + 1):
            database = fresh_postgres(args.postgres, f"waypost_bench_replicas_{count}")
            asyncio.run(_seed_database(database, 0, True))
            prefix = f"waypost-bench-{uuid.uuid4().hex[:8]}:"
            started = start_replicas(count, args.workers, mock_port, database, args.redis, prefix)
            try:
                result = drive([port for _, port in started], [p.pid for p, _ in started], args)
            finally:
                for process, _ in started:
                    process.terminate()
                for process, _ in started:
                    process.wait(60)
            rows.append((count, result))
            print(
                f"{count} replica(s): {result['rps']:.0f} req/s, {result['cpu_ms']:.3f} ms CPU/req, "
                f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                f"{result['busy_cores']:.2f} cores busy",
                flush=True,
            )
    finally:
        mock.terminate()
        mock.wait(30)
    lines = [
        f"{args.workers} worker(s) per replica, {args.concurrency} connections in all, {args.duration:g} s, "
        f"PostgreSQL and Redis, a budget on everyone; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at the end",
        "",
        "| replicas | req/s | server CPU ms/req | p50 ms | p99 ms | machine busy (cores) |",
        "|---|---|---|---|---|---|",
    ]
    for count, r in rows:
        lines.append(
            f"| {count} | {r['rps']:.0f} | {r['cpu_ms']:.3f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['busy_cores']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (OUT / "replicas.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
