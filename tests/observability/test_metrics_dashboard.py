"""The Grafana dashboard (deploy/grafana/waypost-dashboard.json) and the Prometheus config
(deploy/prometheus/prometheus.yml) name only metrics Waypost exports: the names are taken from a
test gateway's own /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import running, settings
from waypost.observability.metrics_catalog import exported_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "waypost-dashboard.json"
METRIC = re.compile(r"\bwaypost_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name a gateway's /metrics declares (its HELP and TYPE lines, samples or not)."""

    async def read() -> str:
        async with running(settings()) as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            return (await client.get("/metrics")).text

    import asyncio

    text = asyncio.run(read())
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def panels() -> list[dict]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    stack = list(dashboard["panels"])
    while stack:  # rows may hold panels
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        if panel.get("type") != "row":
            found.append(panel)
    return found


def test_every_panel_queries_only_metrics_waypost_exports(exported: set[str]) -> None:
    for panel in panels():
        exprs = [t["expr"] for t in panel["targets"]]
        named = {name for expr in exprs for name in METRIC.findall(expr)}
        assert named, f"panel {panel['title']!r} queries no Waypost metric"
        assert named <= exported, f"panel {panel['title']!r}: {sorted(named - exported)} not exported"


def test_the_dashboard_shows_what_operators_need(exported: set[str]) -> None:
    queried = {name for panel in panels() for t in panel["targets"] for name in METRIC.findall(t["expr"])}
    for needed in (
        "waypost_requests_total",
        "waypost_request_duration_seconds_bucket",
        "waypost_time_to_first_token_seconds_bucket",
        "waypost_request_errors_total",
        "waypost_cost_usd_total",
        "waypost_group_cost_usd_total",
        "waypost_tokens_total",
        "waypost_cache_requests_total",
        "waypost_rejections_total",
        "waypost_deployment_up",
    ):
        assert needed in queried


def test_the_catalogue_lists_exactly_what_a_gateway_exports(exported: set[str]) -> None:
    assert {n for n in exported if n.startswith("waypost_")} == exported_names()


def test_prometheus_scrapes_waypost() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "waypost"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["waypost:4000"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert any("4000" in str(p) for p in compose["services"]["waypost"].get("ports", []))
