"""A reload of the config file (SIGHUP, api/reload.py) takes the ``routing`` section's outlier
ejection and retry budget too: the router the requests go through follows them at once."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import running, settings
from tests.routing.pools import chat, get_json, pooled, states
from waypost.api.reload import Reloader
from waypost.app import check_config_urls

RETRIES = {"max_retries": 2, "initial_delay": 0.0, "max_delay": 0.0}


async def test_a_reload_applies_the_new_ejection_and_retry_budget(database: dict, tmp_path: Path) -> None:
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        a.default_reply = b.default_reply = Reply(status=500)
        models = [pooled("pool", a, b, retry=RETRIES, strategy="ordered")]
        config = settings(*models, routing={"ejection": {"enabled": False}}, database=database)
        async with running(config) as gw:
            routing = {
                "ejection": {"consecutive_failures": 1},
                "retry_budget": {"ratio": 0, "min_retries": 0},
            }
            path = tmp_path / "waypost.yaml"
            doc = {"security": {"allow_private_targets": True}, "models": models, "routing": routing}
            path.write_text(yaml.safe_dump(doc))
            assert await Reloader(gw.container, path, check_config_urls).reload()
            assert (await chat(gw.url)).status == 502
            assert a.hits + b.hits == 1  # no retry: the new budget has no room for one
            assert states((await get_json(gw.url + "/health"))[1])["d0"] == "ejected"
