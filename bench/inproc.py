"""What a setting costs per request, measured inside one process: several gateways (one per
variant, each with its own database) built from one build's code, driven in turns through their
ASGI app by concurrent in-process clients, against the mock upstream over loopback.

    .venv/bin/python -m bench.inproc [--src DIR] [--mode plain|stream] [--requests N] [--rounds R]
                                     [--concurrency C] [--include-usage] VARIANT [VARIANT ...]

A VARIANT is ``LABEL`` or ``LABEL:SETTING=VALUE,...``: ``budget=1`` seeds ``bench/run --budget``'s
budget on everyone, ``policy=miss|hit`` adds ``bench/ab --policy``'s rules, rate limit and cache
(every request different, or every request the same), and any other ``a.b=VALUE`` sets that
configuration key (``audit.enabled=false``, ``metrics.enabled=false``; values are YAML). Example:

    .venv/bin/python -m bench.inproc full:budget=1 no-budget no-audit:audit.enabled=false

It prints each variant's process CPU per request (every thread: the SQLite connection's too) in
each round and the median, and each variant's difference from the first one. The server's HTTP
layer and the load driver's sockets are left out, and every variant shares one process: memory
layout, the machine's speed of the moment and the interpreter's caches are the same for all, so
differences of a few microseconds stand out that separate servers (``bench/ab``) blur. Use it to
find what a stage costs; use ``bench/ab`` for what a build costs end to end. ``--src`` runs another
build's ``src/`` (e.g. one ``git archive`` extracted), whose code must have ``create_app``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench import servers
from bench.ab import FERNET_KEY, JWT_SECRET, policy_sections
from bench.event_loop import run_event_loop
from bench.runner import CHAT_PATH, GATEWAY_KEY, _seed_database, waypost_config

REPO = Path(__file__).resolve().parent.parent
Runs = dict[str, list[float]]  # label -> µs per request, each round


@dataclass
class Variant:
    label: str
    budget: bool
    policy: str | None
    settings: dict[str, Any]


def parse_variant(text: str) -> Variant:
    label, _, rest = text.partition(":")
    budget, policy, settings = False, None, {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{text!r}: {item!r} is not SETTING=VALUE")
        if key == "budget":
            budget = value not in ("0", "false", "no")
        elif key == "policy":
            if value not in ("miss", "hit"):
                raise SystemExit(f"{text!r}: policy is miss or hit")
            policy = value
        else:
            settings[key] = yaml.safe_load(value)
    return Variant(label, budget, policy, settings)


class Gateway:
    """One variant's app, started through its ASGI lifespan."""

    def __init__(self, variant: Variant, upstream_port: int) -> None:
        self.variant = variant
        self.upstream_port = upstream_port
        self.app: Any = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from waypost.app import create_app
        from waypost.settings import load_settings

        work = Path(tempfile.mkdtemp(prefix=f"inproc-{self.variant.label}-"))
        database = work / "waypost.db"
        await _seed_database(f"sqlite:///{database}", 0, self.variant.budget)
        config = waypost_config(servers.free_port(), self.upstream_port, database)
        config["auth"] = {"jwt_secret": JWT_SECRET}
        config["security"]["encryption_keys"] = [FERNET_KEY]
        config["logging"] = {"level": "warning"}
        if self.variant.policy:
            config.update(policy_sections())
        for key, value in self.variant.settings.items():
            *path, last = key.split(".")
            section = config
            for part in path:
                section = section.setdefault(part, {})
            section[last] = value
        (work / "waypost.yaml").write_text(yaml.safe_dump(config))
        self.app = create_app(load_settings(work / "waypost.yaml"), configure_logs=False)
        await self._events.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(self.app(scope, self._events.get, self._replies.put))
        reply = await self._replies.get()
        if reply["type"] != "lifespan.startup.complete":
            raise SystemExit(f"{self.variant.label} did not start: {reply}")

    async def stop(self) -> None:
        await self._events.put({"type": "lifespan.shutdown"})
        await self._replies.get()
        if self._lifespan is not None:
            await self._lifespan


def scope_of(body: bytes) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CHAT_PATH,
        "raw_path": CHAT_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {GATEWAY_KEY}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    try:  # as Waypost's own server hands it over (builds that have it)
        from waypost.api.asgi_io import DISCONNECT, Disconnect

        scope[DISCONNECT] = Disconnect()
    except ImportError:
        pass
    return scope


class Driver:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sent = 0

    def body(self, unique: bool) -> bytes:
        self.sent += 1
        text = f"Say hello {self.sent}" if unique else "Say hello"
        request: dict[str, Any] = {
            "model": "bench-model",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 64,
        }
        if self.args.mode == "stream":
            request["stream"] = True
            if self.args.include_usage:
                request["stream_options"] = {"include_usage": True}
        return orjson.dumps(request)

    async def one(self, gateway: Gateway) -> None:
        body = self.body(gateway.variant.policy == "miss")
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await gateway.app(scope_of(body), receive, send)
        if status != 200:
            raise SystemExit(f"{gateway.variant.label}: a request was answered {status}")

    async def run(self, gateway: Gateway, requests: int) -> None:
        each = max(1, requests // self.args.concurrency)

        async def client() -> None:
            for _ in range(each):
                await self.one(gateway)

        await asyncio.gather(*(client() for _ in range(self.args.concurrency)))


class HookTimers:
    """``--hooks``: each stage hook of a gateway timed where it runs (wall time from the call to
    its result, awaited when it waits), summed per round. A hook that waits includes what other
    requests did meanwhile: read those at ``--concurrency 1``."""

    def __init__(self, gateway: Gateway) -> None:
        from types import CoroutineType

        app = gateway.app
        while not hasattr(app, "container"):  # under the middleware
            app = app.app
        self.spent: dict[str, float] = {}
        self.rounds: dict[str, list[float]] = {}
        spent = self.spent
        for stage in app.container.pipeline.stages:
            for hook in ("before", "after"):
                key = f"{stage.name}.{hook}"
                spent[key] = 0.0
                call = getattr(stage, hook)

                async def timed(ctx: Any, call: Any = call, key: str = key) -> Any:
                    started = time.perf_counter()
                    result = call(ctx)
                    if type(result) is CoroutineType:
                        result = await result
                    spent[key] += time.perf_counter() - started
                    return result

                setattr(stage, hook, timed)

    def round_done(self, requests: int) -> None:
        for key, seconds in self.spent.items():
            self.rounds.setdefault(key, []).append(seconds / requests * 1e6)
            self.spent[key] = 0.0


async def measure(args: argparse.Namespace, variants: list[Variant], upstream_port: int) -> tuple[Runs, Runs]:
    gateways = [Gateway(v, upstream_port) for v in variants]
    for gateway in gateways:
        await gateway.start()
    driver = Driver(args)
    try:
        for gateway in gateways:  # warm up: connections, caches, the first flushes
            await driver.run(gateway, args.concurrency * 20)
        try:  # as the server settles its heap after start-up (builds that do)
            from waypost.observability.heap import settle_heap

            settle_heap()
        except ImportError:
            pass
        runs: Runs = {v.label: [] for v in variants}
        requests = args.concurrency * max(1, args.requests // args.concurrency)
        timers = {g.variant.label: HookTimers(g) for g in gateways} if args.hooks else {}
        for round_ in range(args.rounds):
            order = gateways if round_ % 2 == 0 else gateways[::-1]
            for gateway in order:
                started = time.process_time()
                await driver.run(gateway, requests)
                runs[gateway.variant.label].append((time.process_time() - started) / requests * 1e6)
                if timers:
                    timers[gateway.variant.label].round_done(requests)
        hooks = {
            f"{label} {hook}": values for label, t in timers.items() for hook, values in t.rounds.items()
        }
        return runs, hooks
    finally:
        for gateway in gateways:
            await gateway.stop()


def report(args: argparse.Namespace, runs: Runs, hooks: Runs) -> str:
    lines = [
        f"in-process, {args.mode}, concurrency {args.concurrency}, {args.rounds} alternating rounds of "
        f"{args.requests} requests, waypost from {Path(sys.modules['waypost'].__file__ or '').parent.parent}",
        "",
        "| variant | µs CPU per request, each round | median | vs first |",
        "|---|---|---|---|",
    ]
    first = statistics.median(next(iter(runs.values())))
    for label, values in runs.items():
        median = statistics.median(values)
        each = ", ".join(f"{v:.0f}" for v in values)
        lines.append(f"| {label} | {each} | {median:.1f} | {median - first:+.1f} |")
    if hooks:
        lines += [
            "",
            "| variant and stage hook | µs per request (wall, in place), each round | median |",
            "|---|---|---|",
        ]
        for label, values in hooks.items():
            each = ", ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {label} | {each} | {statistics.median(values):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.inproc",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("variants", nargs="+", metavar="VARIANT")
    parser.add_argument(
        "--src", type=Path, default=REPO / "src", help="the build's src/ (default: this tree's)"
    )
    parser.add_argument("--mode", choices=["plain", "stream"], default="plain")
    parser.add_argument("--requests", type=int, default=3200, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--include-usage", action="store_true", help="streams ask for their usage chunk")
    parser.add_argument(
        "--hooks",
        action="store_true",
        help="also time each stage hook in place (µs per request; the wrappers add a little to "
        "the variants' own figures; hooks that wait are best read at --concurrency 1)",
    )
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variants]
    # Several gateways share one event loop here: its lag warnings say nothing about a server.
    logging.getLogger("waypost.loop").setLevel(logging.ERROR)
    if len({v.label for v in variants}) != len(variants):
        raise SystemExit("each variant needs its own label")
    sys.path.insert(0, str(args.src.resolve()))
    cpus = sorted(os.sched_getaffinity(0))
    mine, others = cpus[-1:], cpus[:-1] or cpus
    os.sched_setaffinity(0, mine)  # the gateways on the last CPU, the mock upstream on the others
    port = servers.free_port()
    mock = subprocess.Popen(
        [
            "taskset",
            "-c",
            ",".join(map(str, others)),
            sys.executable,
            "-m",
            "bench.mock_upstream",
            "--port",
            str(port),
        ],
        cwd=REPO,
    )
    try:
        for _ in range(500):
            if servers.health_status("127.0.0.1", port, "/health") == 200:
                break
            time.sleep(0.01)
        runs: Runs = {}
        hooks: Runs = {}

        async def go() -> None:
            measured, timed = await measure(args, variants, port)
            runs.update(measured)
            hooks.update(timed)

        run_event_loop(go())
    finally:
        mock.terminate()
        mock.wait(30)
    print(report(args, runs, hooks), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
