"""/health lists every deployment with its state; /health/ready reports whether the database and
Redis answer (without turning 503 for them) and turns 503 from the stop signal on."""

from __future__ import annotations

from tests.fakes import OpenAIUpstream
from tests.harness import model, running, settings
from tests.routing.pools import get_json, pooled


async def test_health_lists_each_deployment_with_its_state(database: dict) -> None:
    async with OpenAIUpstream() as fake:
        keyless = {"name": "elsewhere", "provider": "groq", "region": "eu"}  # the model's key is not its
        pool = pooled("pool", fake)
        pool["deployments"].append(keyless)
        config = settings(pool, model("single", "mock", public=True), database=database)
        async with running(config) as gw:
            status, body = await get_json(gw.url + "/health")
    assert status == 200
    by_name = {(d["model"], d["deployment"]): d for d in body["deployments"]}
    assert by_name[("pool", "d0")] == {
        "model": "pool",
        "deployment": "d0",
        "provider": "openai",
        "state": "healthy",
        "ejections": 0,
    }
    missing = by_name[("pool", "elsewhere")]
    assert (missing["state"], missing["region"]) == ("missing_credentials", "eu")
    assert "GROQ_API_KEY" in missing["reason"]
    assert by_name[("single", "")]["state"] == "healthy"  # a model of one deployment
    assert "pool" not in body["disabled_models"]  # one of its deployments can be called


async def test_ready_reports_the_database(database: dict) -> None:
    async with running(settings(model("m", "mock"), database=database)) as gw:
        status, body = await get_json(gw.url + "/health/ready")
    assert (status, body["status"], body["checks"]) == (200, "ready", {"database": "ok"})


async def test_ready_reports_an_unreachable_redis_without_turning_503(database: dict) -> None:
    state = {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0", "socket_timeout": 0.5}
    config = settings(model("m", "mock"), state=state, budgets={"enabled": False}, database=database)
    async with running(config) as gw:
        status, body = await get_json(gw.url + "/health/ready")
    assert status == 200
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable")


async def test_ready_turns_503_while_draining(database: dict) -> None:
    async with running(settings(model("m", "mock"), database=database)) as gw:
        assert (await get_json(gw.url + "/health/ready"))[0] == 200
        gw.container.drain.begin()  # what the stop signal's handler does
        status, body = await get_json(gw.url + "/health/ready")
    assert (status, body["status"], body["reason"]) == (503, "not ready", "draining")
