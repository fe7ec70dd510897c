"""The data plane knows who is calling: API tokens from the database, cached briefly, and each
user's models (assigned to them, to one of their groups, or public). Runs on both databases."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from tests.api.client import post
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, Running, model, running, settings
from waypost.security.api_tokens import new_api_token

TTL = 0.3  # auth.cache_ttl in these tests: long enough to be cached, short enough to wait out
CHAT = "/v1/chat/completions"


def chat(name: str, text: str = "hi") -> dict[str, Any]:
    return {"model": name, "messages": [{"role": "user", "content": text}]}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def gateway(database: dict[str, Any], *models: dict[str, Any], **auth: Any) -> Any:
    return running(settings(*models, database=database, auth={"cache_ttl": TTL, **auth}))


async def user_with_token(
    gw: Running, email: str, *, role: str = "user", models: list[str] | None = None, **token: Any
) -> tuple[int, str]:
    """A user and one API token of theirs; returns (user id, plaintext token)."""
    store = gw.container.store
    user = await store.users.create(email, email.split("@")[0], role=role)
    plaintext, digest, prefix = new_api_token()
    await store.tokens.create(user.id, "t", token_hash=digest, prefix=prefix, models=models, **token)
    return user.id, plaintext


async def reload(gw: Running) -> None:
    await gw.container.catalog.reload()
    gw.container.authenticator.forget()


@pytest.mark.parametrize(
    "header",
    [lambda t: {"authorization": f"Bearer {t}"}, lambda t: {"x-api-key": t}, lambda t: {"api-key": t}],
)
async def test_a_token_works_in_each_of_the_three_headers(database: dict[str, Any], header: Any) -> None:
    async with gateway(database, model("echo", "mock")) as gw:
        resp = await post(gw.url + CHAT, chat("echo"), header(GATEWAY_KEY))
    assert resp.status == 200


async def test_an_unknown_token_is_refused_in_the_callers_format(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock")) as gw:
        openai = await post(gw.url + CHAT, chat("echo"), bearer("wp-not-a-real-token"))
        anthropic = await post(
            gw.url + "/v1/messages",
            {"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            {"x-api-key": "wp-not-a-real-token", "anthropic-version": "2023-06-01"},
        )
    assert openai.status == 401
    assert openai.body["error"]["message"] == "Invalid API key."
    assert anthropic.status == 401
    assert anthropic.body["type"] == "error"
    assert anthropic.body["error"]["type"] == "authentication_error"


async def test_a_missing_token_is_refused_unless_open(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock")) as gw:
        resp = await post(gw.url + CHAT, chat("echo"), {})
    assert resp.status == 401
    assert "Missing API key" in resp.body["error"]["message"]


async def test_a_deleted_token_stops_working_within_the_cache_ttl(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock", public=True)) as gw:
        _, token = await user_with_token(gw, "ann@example.com")
        assert (await post(gw.url + CHAT, chat("echo"), bearer(token))).status == 200
        for record in await gw.container.store.tokens.list():
            if record.name == "t":
                await gw.container.store.tokens.delete(record.id)
        await asyncio.sleep(TTL * 1.5)
        resp = await post(gw.url + CHAT, chat("echo"), bearer(token))
    assert resp.status == 401


async def test_a_token_revoked_through_one_worker_stops_working_on_another(database: dict[str, Any]) -> None:
    config = settings(model("echo", "mock", public=True), database=database, auth={"cache_ttl": TTL})
    async with running(config) as first, running(config) as second:
        _, token = await user_with_token(first, "bob@example.com")
        assert (await post(second.url + CHAT, chat("echo"), bearer(token))).status == 200
        (record,) = [t for t in await first.container.store.tokens.list() if t.name == "t"]
        await first.container.store.tokens.delete(record.id)
        first.container.authenticator.forget()
        assert (await post(first.url + CHAT, chat("echo"), bearer(token))).status == 401
        await asyncio.sleep(TTL * 1.5)
        assert (await post(second.url + CHAT, chat("echo"), bearer(token))).status == 401


class TokenReads:
    """Counts the gateway's reads of the API-token table (SQLAlchemy's statement hook)."""

    def __init__(self, gw: Running) -> None:
        self.count = 0
        self._engine = gw.container.store.engine.sync_engine

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        text = " ".join(statement.split()).lower()
        if text.startswith("select") and "from api_tokens" in text:
            self.count += 1

    def __enter__(self) -> TokenReads:
        event.listen(self._engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._record)


async def test_requests_that_arrive_together_with_an_uncached_token_read_it_once(
    database: dict[str, Any],
) -> None:
    async with gateway(database, model("echo", "mock", public=True)) as gw:
        _, token = await user_with_token(gw, "hal@example.com")
        with TokenReads(gw) as reads:
            answers = await asyncio.gather(
                *(post(gw.url + CHAT, chat("echo"), bearer(token)) for _ in range(16))
            )
    assert [a.status for a in answers] == [200] * 16
    assert reads.count == 1


async def test_a_token_in_use_is_read_again_in_the_background_before_its_cache_entry_ends(
    database: dict[str, Any],
) -> None:
    ttl = 2.0  # long enough that the request after half of it is certainly inside it
    async with gateway(database, model("echo", "mock", public=True), cache_ttl=ttl) as gw:
        _, token = await user_with_token(gw, "ivy@example.com")
        assert (await post(gw.url + CHAT, chat("echo"), bearer(token))).status == 200
        (record,) = [t for t in await gw.container.store.tokens.list() if t.name == "t"]
        await gw.container.store.tokens.delete(record.id)  # as another worker would
        await asyncio.sleep(ttl * 0.55)
        with TokenReads(gw) as reads:
            # Past half its time the cached principal still answers, and a read starts beside it.
            assert (await post(gw.url + CHAT, chat("echo"), bearer(token))).status == 200
            for _ in range(200):
                if reads.count:
                    break
                await asyncio.sleep(0.01)
        for _ in range(100):  # until the read's answer is cached
            resp = await post(gw.url + CHAT, chat("echo"), bearer(token))
            if resp.status != 200:
                break
            await asyncio.sleep(0.01)
    assert reads.count == 1
    assert resp.status == 401


async def test_an_expired_token_is_refused(database: dict[str, Any]) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    async with gateway(database, model("echo", "mock", public=True)) as gw:
        _, token = await user_with_token(gw, "cy@example.com", expires_at=past)
        resp = await post(gw.url + CHAT, chat("echo"), bearer(token))
    assert resp.status == 401
    assert resp.body["error"]["message"] == "This API key has expired."


async def test_a_deactivated_users_tokens_are_refused(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock", public=True)) as gw:
        user_id, token = await user_with_token(gw, "dee@example.com")
        await gw.container.store.users.update(user_id, active=False)
        gw.container.authenticator.forget()
        resp = await post(gw.url + CHAT, chat("echo"), bearer(token))
    assert resp.status == 401


async def test_a_model_not_assigned_is_refused_like_a_missing_one(database: dict[str, Any]) -> None:
    async with gateway(database, model("private", "mock")) as gw:
        _, token = await user_with_token(gw, "eve@example.com")
        refused = await post(gw.url + CHAT, chat("private"), bearer(token))
        missing = await post(gw.url + CHAT, chat("no-such-model"), bearer(token))
    assert refused.status == missing.status == 404
    assert refused.body["error"]["code"] == "model_not_found"
    assert "does not exist or you do not have access" in refused.body["error"]["message"]


async def test_a_model_assigned_to_the_user_is_usable(database: dict[str, Any]) -> None:
    async with gateway(database, model("private", "mock")) as gw:
        user_id, token = await user_with_token(gw, "fay@example.com")
        await gw.container.store.assignments.assign("private", user_id=user_id)
        await reload(gw)
        resp = await post(gw.url + CHAT, chat("private"), bearer(token))
    assert resp.status == 200


async def test_a_model_assigned_to_a_group_is_usable_by_its_members(database: dict[str, Any]) -> None:
    async with gateway(database, model("private", "mock")) as gw:
        store = gw.container.store
        user_id, token = await user_with_token(gw, "gus@example.com")
        group = await store.groups.create("research")
        await store.assignments.assign("private", group_id=group.id)
        assert (await post(gw.url + CHAT, chat("private"), bearer(token))).status == 404
        await store.groups.add_member(group.id, user_id)
        await reload(gw)
        resp = await post(gw.url + CHAT, chat("private"), bearer(token))
    assert resp.status == 200


async def test_a_models_pattern_is_checked_under_the_models_own_name(database: dict[str, Any]) -> None:
    async with gateway(database, model("llamas", "mock", match="llama-.*")) as gw:
        user_id, token = await user_with_token(gw, "hal@example.com")
        assert (await post(gw.url + CHAT, chat("llama-3"), bearer(token))).status == 404
        await gw.container.store.assignments.assign("llamas", user_id=user_id)
        await reload(gw)
        resp = await post(gw.url + CHAT, chat("llama-3"), bearer(token))
    assert resp.status == 200


async def test_a_tokens_model_restriction_narrows_the_users_access(database: dict[str, Any]) -> None:
    async with gateway(database, model("a", "mock", public=True), model("b", "mock", public=True)) as gw:
        _, token = await user_with_token(gw, "ivy@example.com", models=["a"])
        allowed = await post(gw.url + CHAT, chat("a"), bearer(token))
        refused = await post(gw.url + CHAT, chat("b"), bearer(token))
    assert allowed.status == 200
    assert refused.status == 404


async def test_the_model_list_shows_only_usable_models(database: dict[str, Any]) -> None:
    import aiohttp

    async with gateway(database, model("open", "mock", public=True), model("closed", "mock")) as gw:
        _, token = await user_with_token(gw, "jo@example.com")
        async with aiohttp.ClientSession() as session:
            async with session.get(gw.url + "/v1/models", headers=bearer(token)) as resp:
                user_view = await resp.json()
            async with session.get(gw.url + "/v1/models", headers=bearer(GATEWAY_KEY)) as resp:
                admin_view = await resp.json()
    assert [m["id"] for m in user_view["data"]] == ["open"]
    assert sorted(m["id"] for m in admin_view["data"]) == ["closed", "open"]


async def test_the_embeddings_endpoint_checks_access_too(database: dict[str, Any]) -> None:
    async with gateway(database, model("emb", "mock")) as gw:
        _, token = await user_with_token(gw, "kim@example.com")
        resp = await post(gw.url + "/v1/embeddings", {"model": "emb", "input": "x"}, bearer(token))
    assert resp.status == 404


async def test_last_used_time_is_recorded(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock", public=True)) as gw:
        _, token = await user_with_token(gw, "lu@example.com")
        assert (await post(gw.url + CHAT, chat("echo"), bearer(token))).status == 200
        await gw.container.authenticator.flush_last_used()
        (record,) = [t for t in await gw.container.store.tokens.list() if t.name == "t"]
    assert record.last_used_at is not None


async def test_open_mode_acts_as_the_administrator(database: dict[str, Any]) -> None:
    async with gateway(database, model("closed", "mock"), open=True) as gw:
        resp = await post(gw.url + CHAT, chat("closed"), {})
    assert resp.status == 200


async def test_open_mode_takes_a_placeholder_key_as_no_key_and_a_real_token_as_its_owner(
    database: dict[str, Any],
) -> None:
    """SDKs insist on a key: in open mode one that is no Waypost token (the README's
    ``unused-in-open-mode``) acts as no key, without a read of the token table; a real token still
    acts as its owner. The control plane takes no placeholder."""
    async with gateway(database, model("closed", "mock"), open=True) as gw:
        with TokenReads(gw) as reads:
            placeholder = await post(gw.url + CHAT, chat("closed"), bearer("unused-in-open-mode"))
            anthropic = await post(
                gw.url + "/v1/messages",
                {"model": "closed", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                {"x-api-key": "unused-in-open-mode", "anthropic-version": "2023-06-01"},
            )
        _, token = await user_with_token(gw, "olga@example.com")
        as_owner = await post(gw.url + CHAT, chat("closed"), bearer(token))
        async with aiohttp.ClientSession() as http:
            control = {}
            for path in ("/me", "/admin/users"):
                async with http.get(gw.url + path, headers=bearer("unused-in-open-mode")) as resp:
                    control[path] = resp.status
    assert (placeholder.status, anthropic.status) == (200, 200)
    assert reads.count == 0
    assert as_owner.status == 404  # olga may not use the closed model: her token is hers
    assert control == {"/me": 401, "/admin/users": 401}


@pytest.mark.parametrize(
    "header",
    [lambda t: {"authorization": f"Bearer {t}"}, lambda t: {"x-api-key": t}],
)
async def test_open_mode_still_refuses_a_waypost_token_that_is_no_longer_valid(
    database: dict[str, Any], header: Any
) -> None:
    """A placeholder is no key, but a revoked or expired Waypost token, or one whose user is
    deactivated, is known: refused as in any mode, not let through as the administrator."""
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    async with gateway(database, model("closed", "mock"), open=True) as gw:
        store = gw.container.store
        placeholder = await post(gw.url + CHAT, chat("closed"), header("x"))
        _, expired = await user_with_token(gw, "ex@example.com", role="admin", expires_at=past)
        _, revoked = await user_with_token(gw, "rev@example.com", role="admin")
        assert (await post(gw.url + CHAT, chat("closed"), header(revoked))).status == 200  # valid, cached
        (record,) = [t for t in await store.tokens.list() if t.prefix == revoked[:10]]
        await store.tokens.delete(record.id)
        dee_id, deactivated = await user_with_token(gw, "dee@example.com", role="admin")
        await store.users.update(dee_id, active=False)
        gw.container.authenticator.forget()
        refused = [
            await post(gw.url + CHAT, chat("closed"), header(t)) for t in (expired, revoked, deactivated)
        ]
    assert placeholder.status == 200
    assert [r.status for r in refused] == [401, 401, 401]
    assert refused[0].body["error"]["message"] == "This API key has expired."
    assert refused[1].body["error"]["message"] == "Invalid API key."


async def test_a_database_model_with_a_secret_key_reaches_its_upstream(database: dict[str, Any]) -> None:
    async with OpenAIUpstream(api_key="sk-upstream-secret-1234") as upstream, gateway(database) as gw:
        container = gw.container
        await container.store.secrets.create(
            "openai-key", ciphertext=container.secrets.encrypt("sk-upstream-secret-1234")
        )
        config = {"provider": "openai", "base_url": upstream.url + "/v1", "api_key": "secret://openai-key"}
        await container.store.models.create("runtime", config, public=True)
        await reload(gw)
        resp = await post(gw.url + CHAT, chat("runtime", "hello"), bearer(GATEWAY_KEY))
    assert resp.status == 200, resp.body
    assert upstream.last.headers["authorization"] == "Bearer sk-upstream-secret-1234"


async def test_a_model_whose_secret_is_missing_is_disabled_not_fatal(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock", public=True)) as gw:
        config = {"provider": "openai", "base_url": "https://api.openai.com/v1", "api_key": "secret://gone"}
        await gw.container.store.models.create("broken", config, public=True)
        await reload(gw)
        broken = await post(gw.url + CHAT, chat("broken"), bearer(GATEWAY_KEY))
        fine = await post(gw.url + CHAT, chat("echo"), bearer(GATEWAY_KEY))
    assert broken.status == 404
    assert fine.status == 200


async def test_request_bodies_cannot_redirect_the_upstream(database: dict[str, Any]) -> None:
    async with (
        OpenAIUpstream(api_key="sk-real") as upstream,
        OpenAIUpstream(api_key="sk-real") as elsewhere,
        gateway(database, model("gpt", "openai", upstream.url, "sk-real")) as gw,
    ):
        body = {
            **chat("gpt"),
            "base_url": elsewhere.url + "/v1",
            "api_base": elsewhere.url + "/v1",
            "api_key": "sk-attacker",
            "extra_body": {"api_base": elsewhere.url, "base_url": elsewhere.url},
            "metadata": {"base_url": elsewhere.url},
        }
        resp = await post(gw.url + CHAT, body, bearer(GATEWAY_KEY))
    assert resp.status == 200
    assert upstream.hits == 1
    assert elsewhere.hits == 0
    assert upstream.last.headers["authorization"] == "Bearer sk-real"
    # Nor do the fields reach the upstream, which may itself be a proxy that honours them.
    sent = upstream.last.json
    assert not {"base_url", "api_base", "api_key", "extra_body"} & set(sent)
    assert sent["metadata"] == {}
    assert "metadata.base_url" in resp.headers["x-waypost-dropped"]


async def test_an_invalid_database_model_is_skipped_and_the_others_load(database: dict[str, Any]) -> None:
    async with gateway(database) as gw:
        store = gw.container.store
        await store.models.create("bad", {"provider": "no-such-provider"}, public=True)
        await store.models.create("good", {"provider": "mock"}, public=True)
        await reload(gw)
        good = await post(gw.url + CHAT, chat("good"), bearer(GATEWAY_KEY))
        bad = await post(gw.url + CHAT, chat("bad"), bearer(GATEWAY_KEY))
    assert good.status == 200
    assert bad.status == 404


async def test_a_changed_secret_reaches_the_upstream_after_a_reload(database: dict[str, Any]) -> None:
    async with OpenAIUpstream() as upstream, gateway(database) as gw:
        container = gw.container
        await container.store.secrets.create("key", ciphertext=container.secrets.encrypt("sk-first-1111"))
        config = {"provider": "openai", "base_url": upstream.url + "/v1", "api_key": "secret://key"}
        await container.store.models.create("runtime", config, public=True)
        await reload(gw)
        assert (await post(gw.url + CHAT, chat("runtime"), bearer(GATEWAY_KEY))).status == 200
        first = upstream.last.headers["authorization"]
        await container.store.secrets.update("key", ciphertext=container.secrets.encrypt("sk-second-2222"))
        await reload(gw)
        assert (await post(gw.url + CHAT, chat("runtime"), bearer(GATEWAY_KEY))).status == 200
    assert first == "Bearer sk-first-1111"
    assert upstream.last.headers["authorization"] == "Bearer sk-second-2222"


async def test_a_reload_with_nothing_changed_keeps_the_registry(database: dict[str, Any]) -> None:
    async with gateway(database, model("echo", "mock")) as gw:
        await gw.container.store.models.create("runtime", {"provider": "mock"})
        await gw.container.catalog.reload()
        registry = gw.container.router.registry
        await gw.container.catalog.reload()
        assert gw.container.router.registry is registry
        await gw.container.store.assignments.assign("runtime", user_id=1)
        await gw.container.catalog.reload()
        assert gw.container.router.registry is not registry
