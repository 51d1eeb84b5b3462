"""Run the dashboards' panel queries on a real Prometheus over its HTTP API (shared by the loopback test and
the compose smoke test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
PROMETHEUS_YML = ROOT / "deploy/prometheus/prometheus.yml"
RATE_INTERVAL = "1m"
"""What Grafana's ``$__rate_interval`` becomes here: at least four scrape intervals (5 s in deploy)."""


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of ``dashboard``."""
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def panel_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every target of every panel of every dashboard."""
    for path in DASHBOARDS:
        for title, expr in targets(json.loads(path.read_text())):
            yield path.name, title, expr


async def query(http: aiohttp.ClientSession, base: str, expr: str) -> dict[str, Any]:
    """``/api/v1/query`` of ``expr`` now: Prometheus's whole answer (``status``, ``data`` or ``error``)."""
    async with http.get(f"{base}/api/v1/query", params={"query": expr}) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def series_names(http: aiohttp.ClientSession, base: str) -> set[str]:
    """Every metric name Prometheus holds series of."""
    async with http.get(f"{base}/api/v1/label/__name__/values") as resp:
        return set((await resp.json())["data"])


@dataclass
class DashboardRun:
    """What Prometheus made of every panel query."""

    answers: dict[tuple[str, str, str], dict[str, Any]]
    series: set[str]

    def failed(self) -> dict[tuple[str, str, str], str]:
        """Queries Prometheus refused, with its error (a parse or evaluation error)."""
        return {key: str(a.get("error")) for key, a in self.answers.items() if a["status"] != "success"}


async def run_dashboards(http: aiohttp.ClientSession, base: str) -> DashboardRun:
    """Evaluate every panel query (``$__rate_interval`` → ``RATE_INTERVAL``) and read the series names."""
    answers = {}
    for key in panel_queries():
        answers[key] = await query(http, base, key[2].replace("$__rate_interval", RATE_INTERVAL))
    return DashboardRun(answers, await series_names(http, base))
