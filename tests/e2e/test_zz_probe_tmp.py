from __future__ import annotations
import asyncio, time
import aiohttp
from tests.e2e.test_failures import *  # noqa

async def test_probe_watch_negative() -> None:
    async with watched_upstream("openai") as fake:
        fake.enqueue(Reply(text=" ".join(["w"]*6), chunk_delay_s=0.1))
        async with serve(settings(entry("slow", fake))) as url:
            raw = await post(url, "openai", "slow", stream=True)
            print(raw.body[-200:])
            await asyncio.sleep(0.3)
        print("disconnected?", fake.disconnected.is_set())

async def test_probe_bodies(openai_upstream, anthropic_upstream) -> None:
    for fmt in FORMATS:
        for up in FORMATS:
            fake = upstream_of(up, openai_upstream, anthropic_upstream)
            for r in [Reply(text=LONG_TEXT, stall_after_chunks=4), Reply(text=LONG_TEXT, reset_after_chunks=4), Reply(text=LONG_TEXT, error_event_after_chunks=4)]:
                fake.enqueue(r)
                async with serve(settings(entry("x", fake, timeouts={"idle": 0.3}))) as url:
                    raw = await post(url, fmt, "x", stream=True)
                print(fmt, up, r.stall_after_chunks, r.reset_after_chunks, r.error_event_after_chunks, raw.status, dict(raw.headers))
                print(raw.body.decode()[-700:])
                print("=====")

async def test_probe_timing() -> None:
    for up in FORMATS:
        async with watched_upstream(up) as fake:
            fake.enqueue(Reply(text=LONG_TEXT, chunk_delay_s=0.2))
            async with serve(settings(entry("slow", fake))) as url:
                async with aiohttp.ClientSession() as session:
                    resp = await session.post(url + path_for("openai"), json=body_for("openai", "slow", stream=True), headers=HEADERS)
                    print(await resp.content.readany())
                    resp.close(); t=time.perf_counter()
                await asyncio.wait_for(fake.disconnected.wait(), 1.5)
                print(up, "stream disconnect after", fake.disconnected_at - t)
        async with watched_upstream(up) as fake:
            fake.enqueue(Reply(latency_s=5))
            async with serve(settings(entry("slow", fake))) as url:
                async with aiohttp.ClientSession() as session:
                    try:
                        await session.post(url + path_for("openai"), json=body_for("openai", "slow", stream=False), headers=HEADERS, timeout=aiohttp.ClientTimeout(total=0.2))
                    except TimeoutError: pass
                    t=time.perf_counter()
                await asyncio.wait_for(fake.disconnected.wait(), 2.0)
                print(up, "plain disconnect after", fake.disconnected_at - t)
