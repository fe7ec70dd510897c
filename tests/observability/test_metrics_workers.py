"""``GET /metrics`` of a real ``waypost serve`` with two workers, on a port of its own: whichever
worker answers a scrape, the counts are every worker's (prometheus_client's multiprocess mode, in
the directory the server prepares before the workers start)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.budgets.test_concurrency import start_gateway
from tests.fakes import OpenAIUpstream, Reply
from tests.observability.metrics_scrape import parse
from tests.server.test_process import free_port

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}
TOKEN = "metrics-token-0123456789"
WAIT = 60.0  # seconds for what should happen long before


def worker_pids(directory: Path) -> set[str]:
    """The processes that wrote counters into the metrics directory (``counter_<pid>.db``)."""
    return {p.stem.split("_")[-1] for p in directory.glob("counter_*.db")}


def live_gauge_pids(directory: Path) -> set[int]:
    """The processes whose in-flight gauges (``gauge_livesum_<pid>.db``) a scrape adds up."""
    return {int(p.stem.split("_")[-1]) for p in directory.glob("gauge_livesum_*.db")}


def two_workers(files: Path, port: int, upstream: OpenAIUpstream, tmp_path: Path) -> dict:
    """A config of two workers, /metrics on ``port`` with its files in ``files``, model "gpt"."""
    return {
        "auth": {"jwt_secret": "s" * 40, "open": True},
        "security": {"encryption_keys": [Fernet.generate_key().decode()], "allow_private_targets": True},
        "logging": {"level": "warning"},
        "database": {"url": f"sqlite:///{tmp_path}/waypost.db"},
        "server": {"workers": 2},
        # On a port of its own, which both workers listen on.
        "metrics": {"multiprocess_dir": str(files), "flush_interval": 0.05, "token": TOKEN, "port": port},
        "models": [
            {
                "name": "gpt",
                "provider": "openai",
                "base_url": upstream.url + "/v1",
                "api_key": "sk-fake",
                "prices": {"input": 1.0, "output": 4.0},
                "public": True,
            }
        ],
    }


async def test_two_workers_scrapes_add_up_every_workers_requests(tmp_path: Path) -> None:
    files = tmp_path / "metrics"
    files.mkdir()
    (files / "counter_999999.db").write_bytes(b"stale")  # an earlier run's: emptied at start
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    async with OpenAIUpstream() as upstream:
        upstream.default_reply = Reply(text="hi", input_tokens=3, output_tokens=2)
        process, url = start_gateway(tmp_path, "gateway", two_workers(files, port, upstream, tmp_path))
        try:
            sent = 0
            # A new connection per request: the kernel spreads them over the workers.
            async with httpx.AsyncClient(base_url=url, timeout=30, headers={"connection": "close"}) as client:
                deadline = time.monotonic() + WAIT  # the second worker may still be starting
                while sent < 20 or (len(worker_pids(files)) < 2 and time.monotonic() < deadline):
                    batch = await asyncio.gather(*(client.post(CHAT, json=BODY) for _ in range(10)))
                    assert [r.status_code for r in batch] == [200] * 10
                    sent += 10
                assert worker_pids(files) - {"999999"} and len(worker_pids(files)) == 2
                totals = set()
                deadline = time.monotonic() + WAIT
                while len(totals) != 1 or totals != {float(sent)}:
                    assert time.monotonic() < deadline, totals
                    totals = set()
                    for _ in range(4):  # answered by either worker
                        resp = await client.get(metrics_url, headers={"authorization": f"Bearer {TOKEN}"})
                        assert resp.status_code == 200
                        got = parse(resp.text)
                        totals.add(got.value("waypost_requests_total", model="gpt", status="200"))
                    await asyncio.sleep(0.05)
                assert got.value("waypost_tokens_total", model="gpt", type="output") == 2 * sent
                assert got.value("waypost_request_duration_seconds_count", model="gpt") == sent
                assert (await client.get(metrics_url)).status_code == 401
                assert (await client.get("/metrics")).status_code == 404  # not on the gateway's port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=WAIT)
    assert not (files / "counter_999999.db").exists()


async def test_a_killed_workers_in_flight_requests_leave_the_gauge_with_it(tmp_path: Path) -> None:
    """A worker killed with a request in flight is replaced by the server; the request it held is
    no longer counted as in flight (its live gauge file goes), whichever worker answers."""
    files = tmp_path / "metrics"
    files.mkdir()
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with OpenAIUpstream() as upstream:
        upstream.default_reply = Reply(stall_after_chunks=0)  # holds the request until the end
        process, url = start_gateway(tmp_path, "gateway", two_workers(files, port, upstream, tmp_path))
        try:
            async with httpx.AsyncClient(
                base_url=url, timeout=WAIT, headers={"connection": "close"}
            ) as client:
                held = asyncio.create_task(client.post(CHAT, json=BODY))
                deadline = time.monotonic() + WAIT
                while (
                    parse((await client.get(metrics_url, headers=auth)).text).value(
                        "waypost_in_flight_requests"
                    )
                    != 1
                ):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                killed = live_gauge_pids(files)
                assert len(killed) == 2
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(httpx.HTTPError):
                    await held
                # Two workers start again (each imports the whole app: slow on a loaded machine).
                deadline = time.monotonic() + 2 * WAIT
                while len(live_gauge_pids(files) - killed) < 2:  # both replaced
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                answered = 0
                while answered < 4:  # by either new worker, once they listen
                    try:
                        resp = await client.get(metrics_url, headers=auth)
                    except httpx.TransportError:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
                        continue
                    assert resp.status_code == 200
                    assert parse(resp.text).value("waypost_in_flight_requests") == 0
                    answered += 1
                assert not live_gauge_pids(files) & killed
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=WAIT)
