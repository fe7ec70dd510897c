"""With ``state.backend: redis`` (a real Redis at 127.0.0.1:6379, or $WAYPOST_TEST_REDIS_URL;
skipped when absent) replicas agree on outages: a deployment one gateway ejects is out of the
other's rotation once that one reads the shared state (every ``refresh_seconds``; here at once)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import model, running, settings
from tests.routing.pools import chat, get_json, pooled, states
from tests.tcp_proxy import tcp_proxy
from waypost.core.errors import UpstreamError
from waypost.routing.health import DeploymentHealth
from waypost.routing.registry import ModelRegistry
from waypost.settings import EjectionSettings
from waypost.state.health_redis import RedisHealthStore


async def test_an_ejection_on_one_gateway_holds_on_the_other(database: dict) -> None:
    need_redis()
    prefix = unique_prefix()
    state = {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix}
    ejection = {"consecutive_failures": 2, "base_seconds": 30}
    try:
        async with OpenAIUpstream() as bad, OpenAIUpstream() as good:
            bad.default_reply = Reply(status=500)
            doc = {"routing": {"ejection": ejection}, "state": state}
            first_config = settings(pooled("pool", bad, good, strategy="ordered"), database=database, **doc)
            second_config = settings(pooled("pool", bad, good, strategy="ordered"), **doc)
            async with running(first_config) as first, running(second_config) as second:
                for _ in range(2):
                    assert (await chat(first.url)).status == 200
                assert states((await get_json(first.url + "/health"))[1])["d0"] == "ejected"
                await second.container.router.health.refresh()  # what its loop does every second
                assert states((await get_json(second.url + "/health"))[1])["d0"] == "ejected"
                assert (await chat(second.url)).status == 200
                assert bad.hits == 2  # the second gateway never tried it
                ready = (await get_json(second.url + "/health/ready"))[1]
                assert ready["checks"] == {"database": "ok", "redis": "ok"}
    finally:
        await forget_prefix(prefix)


async def test_replicas_ejecting_at_once_stay_within_the_share(database: dict) -> None:
    """Both gateways see both deployments fail; between them only one is ejected (the share is
    checked and the ejection written in one Redis script)."""
    need_redis()
    prefix = unique_prefix()
    state = {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix}
    doc = {"routing": {"ejection": {"consecutive_failures": 1}}, "state": state}
    try:
        async with OpenAIUpstream() as a, OpenAIUpstream() as b:
            a.default_reply = b.default_reply = Reply(status=500)
            model = pooled("pool", a, b, strategy="ordered")
            async with (
                running(settings(model, database=database, **doc)) as one,
                running(settings(model, **doc)) as two,
            ):
                assert (await chat(one.url)).status == 502  # one ejects a, b's ejection is refused
                await two.container.router.health.refresh()
                assert (await chat(two.url)).status == 502  # two tries b alone: refused again
                await one.container.router.health.refresh()
                for gw in (one, two):
                    seen = states((await get_json(gw.url + "/health"))[1])
                    assert sorted(seen.values()) == ["ejected", "healthy"]
    finally:
        await forget_prefix(prefix)


async def test_while_redis_is_down_the_share_still_counts_the_shared_ejections(database: dict) -> None:
    """Two of four deployments are ejected through Redis (the share: half); then Redis stops
    answering and the two others fail too. The process decides alone meanwhile, but the two
    ejections it knows of still count: the two others stay in rotation."""
    need_redis()
    prefix = unique_prefix()
    parts = urlsplit(REDIS_URL)
    try:
        async with (
            tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy,
            OpenAIUpstream() as a,
            OpenAIUpstream() as b,
            OpenAIUpstream() as c,
            OpenAIUpstream() as d,
        ):
            for fake in (a, b, c, d):
                fake.default_reply = Reply(status=500)
            state = {
                "backend": "redis",
                "redis_url": f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}",
                "key_prefix": prefix,
                "socket_timeout": 0.2,
            }
            doc = {"routing": {"ejection": {"consecutive_failures": 1}}, "state": state}
            config = settings(
                pooled("pool", a, b, c, d, strategy="ordered"),
                database=database,
                budgets={"enabled": False},
                **doc,
            )
            async with running(config) as gw:
                assert (await chat(gw.url)).status == 502  # a and b ejected; c and d refused by the share
                expected = {"d0": "ejected", "d1": "ejected", "d2": "healthy", "d3": "healthy"}
                assert states((await get_json(gw.url + "/health"))[1]) == expected
                proxy.sever()
                assert (await chat(gw.url)).status == 502  # c and d fail again, Redis does not answer
                assert states((await get_json(gw.url + "/health"))[1]) == expected
    finally:
        await forget_prefix(prefix)


class HoldingProxy:
    """A loopback proxy to Redis that can hold the answers of one connection: the first to carry
    a command after ``hold_next()`` keeps its answers until ``release()``; the others flow."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._armed = False
        self._held: asyncio.StreamWriter | None = None  # the client side of the held connection
        self.holding = asyncio.Event()  # an answer is being held
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold_next(self) -> None:
        self._armed = True

    def release(self) -> None:
        self._released.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for task in (self._pipe(reader, up_writer, writer), self._answers(up_reader, writer)):
            self._tasks.add(asyncio.create_task(task))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            if self._armed and self._held is None:
                self._held = client
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _answers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if writer is self._held and not self._released.is_set():
                self.holding.set()
                await self._released.wait()
            writer.write(data)
            await writer.drain()
        writer.close()


async def test_an_ejection_decided_while_a_refresh_reads_is_not_undone_by_it() -> None:
    """The refresh loop reads the shared outages; meanwhile this process ejects a deployment. The
    answer the refresh gets was written before the ejection: the ejection stays in the snapshot."""
    need_redis()
    prefix = unique_prefix()
    parts = urlsplit(REDIS_URL)
    urls = [{"name": f"d{i}", "base_url": f"http://127.0.0.1:{9 + i}/v1"} for i in range(2)]
    models = settings(model("pool", "openai", api_key="sk-test", deployments=urls)).models
    dep = ModelRegistry(models).chain("pool")[0]
    try:
        async with HoldingProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
            url = f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}"
            store = RedisHealthStore(url, prefix=prefix, socket_timeout=30)
            health = DeploymentHealth(EjectionSettings(consecutive_failures=1), store)
            try:
                await asyncio.gather(health.refresh(), health.refresh())  # two pooled connections
                proxy.hold_next()
                reading = asyncio.create_task(health.refresh())
                await proxy.holding.wait()  # its answer: no outage yet
                assert await health.failed(dep, UpstreamError("down", provider="openai"))
                assert health.is_out(dep, health.now())
                proxy.release()
                await reading
                assert health.is_out(dep, health.now())
            finally:
                await health.close()
    finally:
        await forget_prefix(prefix)


async def test_a_redis_that_does_not_answer_is_waited_for_once_not_at_every_failure() -> None:
    """A failed attempt records its failure; when Redis accepts and never answers, the first
    record waits for its timeout and the process decides alone for a while after it, instead of
    every failed attempt (and every refresh) waiting for the timeout again."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    urls = [{"name": f"d{i}", "base_url": f"http://127.0.0.1:{9 + i}/v1"} for i in range(4)]
    models = settings(model("pool", "openai", api_key="sk-test", deployments=urls)).models
    chain = ModelRegistry(models).chain("pool")
    store = RedisHealthStore(f"redis://127.0.0.1:{port}/0", prefix=unique_prefix(), socket_timeout=0.2)
    health = DeploymentHealth(EjectionSettings(consecutive_failures=1), store)
    try:
        assert await health.failed(chain[0], UpstreamError("down", provider="openai"))
        tried = len(connections)
        assert tried >= 1  # it did try Redis, and decided here when Redis did not answer
        assert await health.failed(chain[1], UpstreamError("down", provider="openai"))
        await health.refresh()
        assert len(connections) == tried  # neither went to Redis again
        assert not await health.failed(chain[2], UpstreamError("down", provider="openai"))  # the share
    finally:
        await health.close()
        for writer in connections:
            writer.transport.abort()
        server.close()
        await server.wait_closed()
