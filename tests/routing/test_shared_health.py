"""With ``state.backend: redis`` (a real Redis at 127.0.0.1:6379, or $WAYPOST_TEST_REDIS_URL;
skipped when absent) replicas agree on outages: a deployment one gateway ejects is out of the
other's rotation once that one reads the shared state (every ``refresh_seconds``; here at once)."""

from __future__ import annotations

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import running, settings
from tests.routing.pools import chat, get_json, pooled, states


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
