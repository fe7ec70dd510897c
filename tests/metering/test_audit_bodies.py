"""Bodies on audit rows (docs/metering.md, "Bodies"): kept only with ``audit.log_bodies``, and
then with credentials, key-shaped strings and the configured patterns masked."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import sqlalchemy as sa

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, Running, model, running, settings
from waypost.metering.masking import MASK, Masker
from waypost.store import tables

CARD = r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"
SECRETS = ("sk-proj-abcdefghijklmnop1234", "AKIAABCDEFGHIJKLMNOP", "4111-1111-1111-1111")


def test_the_masker_masks_credentials_key_shapes_and_configured_patterns() -> None:
    text = (
        '{"password": "hunter2", "x_api_key": "k-123", "note": "use sk-ant-api03-abcdefghij or '
        'Bearer abcdefghijklmnopqrstuvwxyz, card 4111-1111-1111-1111", "n": 7}'
    )
    masked = Masker([CARD]).mask(text)
    for secret in ("hunter2", "k-123", "sk-ant-api03-abcdefghij", "abcdefghijklmnopqrstuvwxyz", "4111-1111"):
        assert secret not in masked
    assert f'"password": "{MASK}"' in masked and '"n": 7' in masked


async def row_for(gateway: Running, rid: str) -> dict[str, Any]:
    for _ in range(500):
        await gateway.container.audit.flush()
        async with gateway.container.store.engine.connect() as conn:
            log = tables.request_log
            found = (
                (await conn.execute(sa.select(log).where(log.c.client_request_id == rid))).mappings().all()
            )
        if found:
            return dict(found[0])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no row for {rid}")


async def ask(gateway: Running, rid: str) -> None:
    content = f"My key is {SECRETS[0]}, my AWS key {SECRETS[1]} and my card {SECRETS[2]}."
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt", "messages": [{"role": "user", "content": content}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": rid},
        )
    assert resp.status_code == 200, resp.text


async def test_bodies_are_stored_masked_only_when_asked() -> None:
    async with OpenAIUpstream(api_key="sk-fake") as upstream:
        upstream.enqueue(Reply(text=f"Noted: {SECRETS[2]}", repeat=2))
        entry = model("gpt", "openai", upstream.url, "sk-fake", prices={"input": 1, "output": 2})
        async with running(settings(entry, audit={"log_bodies": True, "mask_patterns": [CARD]})) as gateway:
            await ask(gateway, "bodies-on")
            row = await row_for(gateway, "bodies-on")
        async with running(settings(entry)) as gateway:
            await ask(gateway, "bodies-off")
            plain = await row_for(gateway, "bodies-off")
    request, response = row["request_body"], row["response_body"]
    assert "My key is" in request and MASK in request and "Noted:" in response
    for secret in SECRETS:
        assert secret not in request and secret not in response
    assert plain["request_body"] is None and plain["response_body"] is None
