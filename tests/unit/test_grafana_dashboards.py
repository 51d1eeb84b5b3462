"""The provisioned Grafana dashboards, read against Grafana 11.2's dashboard JSON model.

The checks are tests/grafana_model.py's. The parametrized tests run each on every file under deploy/grafana;
the tests after them break one thing at a time in a small good dashboard to show that each check fails. The
queries themselves (promtool, metric names the code exports) are tests/unit/test_dashboards.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.grafana_model import (
    GRAFANA,
    GRAFANA_ANNOTATIONS,
    Json,
    compose_dashboards_mount,
    dashboard_problems,
    datasource_problems,
    duplicate_uids,
    load,
    panel_problems,
    provider_problems,
    provisioned_datasources,
    variable_problems,
    yaml_files,
)
from tests.promkit import DASHBOARDS


# ------------------------------------------------------------------------------------------ the files
def test_there_are_dashboards_a_provider_and_a_prometheus_datasource() -> None:
    assert DASHBOARDS, "no deploy/grafana/dashboards/*.json"
    assert yaml_files(GRAFANA / "provisioning/dashboards"), "no dashboard provider file"
    assert "prometheus" in provisioned_datasources().values(), provisioned_datasources()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_top_level(path: Path) -> None:
    assert dashboard_problems(load(path)) == []


def test_dashboard_uids_are_unique() -> None:
    assert duplicate_uids({path.name: load(path) for path in DASHBOARDS}) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_panels(path: Path) -> None:
    assert panel_problems(load(path)) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_datasources(path: Path) -> None:
    assert datasource_problems(load(path), provisioned_datasources()) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variables(path: Path) -> None:
    assert variable_problems(load(path)) == []


@pytest.mark.parametrize("path", yaml_files(GRAFANA / "provisioning/dashboards"), ids=lambda p: p.name)
def test_dashboard_provider(path: Path) -> None:
    mount = compose_dashboards_mount()
    assert provider_problems((yaml.safe_load(path.read_text()) or {}).get("providers"), mount) == []


# ------------------------------------------------------------------------------------ each check can fail
DATASOURCES: Final = {"prometheus": "prometheus", "loki": "loki"}


def _prometheus() -> Json:
    return {"type": "prometheus", "uid": "prometheus"}


def _good() -> Json:
    """A small dashboard that passes every check; the tests below break one thing in a fresh one."""
    return {
        "id": None,
        "uid": "switchyard-test",
        "title": "Switchyard / Test",
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "ds", "type": "datasource", "query": "prometheus"}]},
        "annotations": {"list": [{"builtIn": 1, "datasource": dict(GRAFANA_ANNOTATIONS), "name": "Alerts"}]},
        "panels": [
            {"id": 1, "type": "row", "title": "Calls", "collapsed": False, "panels": [],
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}},
            {"id": 2, "type": "timeseries", "title": "Calls per second", "datasource": _prometheus(),
             "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1},
             "targets": [{"refId": "A", "datasource": _prometheus(),
                          "expr": "sum(rate(switchyard_calls_started_total[$__rate_interval]))"}]},
            {"id": 3, "type": "stat", "title": "Workers up",
             "datasource": {"type": "prometheus", "uid": "${ds}"},
             "gridPos": {"h": 8, "w": 12, "x": 12, "y": 1},
             "targets": [{"refId": "A", "expr": 'sum(up{job="worker"})'}]},
            {"id": 4, "type": "row", "title": "More", "collapsed": True,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": 9},
             "panels": [{"id": 5, "type": "text", "title": "Notes",
                         "gridPos": {"h": 4, "w": 24, "x": 0, "y": 10}}]},
        ],
    }  # fmt: skip


def all_problems(dashboard: Json) -> list[str]:
    """Every check of tests/grafana_model.py on one dashboard, with the datasources above."""
    return [
        *dashboard_problems(dashboard),
        *panel_problems(dashboard),
        *datasource_problems(dashboard, DATASOURCES),
        *variable_problems(dashboard),
    ]


def test_the_good_dashboard_passes() -> None:
    assert all_problems(_good()) == []


def _target(dashboard: Json) -> Json:
    target: Json = dashboard["panels"][1]["targets"][0]
    return target


@pytest.mark.parametrize(
    ("breakage", "reported"),
    [
        (lambda d: d["panels"][1].update(type="graph"), "type 'graph' is no core panel"),
        (lambda d: d["panels"][2].update(type="singlestat"), "type 'singlestat' is no core panel"),
        (lambda d: d["panels"][3]["panels"][0].update(type="table-old"), "type 'table-old' is no core panel"),
        (lambda d: d["panels"][1]["datasource"].update(uid="nope"), "uid 'nope' is no provisioned"),
        (lambda d: d["panels"][1]["datasource"].update(uid="loki"), "uid 'loki' is no provisioned"),
        (lambda d: _target(d).update(datasource="Prometheus"), "'Prometheus' is not a {type, uid} reference"),
        (lambda d: _target(d).update(datasource=None), "None is not a {type, uid} reference"),
        (lambda d: d["panels"][2]["datasource"].update(uid="$nope"), "uid '$nope' names no datasource"),
        (lambda d: d["templating"]["list"][0].update(type="custom"), "uid '${ds}' names no datasource"),
        (lambda d: _target(d).update(refId=""), "has no refId"),
        (lambda d: _target(d).update(expr=" "), "has no PromQL expr"),
        (lambda d: d["panels"][2]["targets"].append({"refId": "A", "expr": "up"}), "refId 'A' is used twice"),
        (lambda d: d["panels"][2].update(targets=[]), "no targets"),
        (lambda d: d["panels"][2].update(id=2), "id 2 is used twice"),
        (lambda d: d["panels"][3]["panels"][0].update(id=1), "id 1 is used twice"),
        (lambda d: d["panels"][2].update(id="3"), "id '3' is not an integer"),
        (lambda d: d["panels"][2]["gridPos"].update(w=24), "x + w = 12 + 24 leaves the 24 columns"),
        (lambda d: d["panels"][2]["gridPos"].update(h=0), "gridPos h 0 is not positive"),
        (lambda d: d["panels"][2]["gridPos"].update(x=6), "panels 2 and 3 overlap"),
        (lambda d: d["panels"][2]["gridPos"].pop("y"), "needs integer h, w, x and y"),
        (lambda d: d["panels"][0]["panels"].append(d["panels"].pop(2)), "an expanded row holding panels"),
        (lambda d: d["panels"][3]["panels"].append({**d["panels"][0], "id": 9}), "a row inside a row"),
        (lambda d: d["panels"][2].update(panels=[d["panels"].pop(1)]), "a panel holding panels"),
        (lambda d: d.update(id=7), "must not pin a database id"),
        (lambda d: d.update(uid="x" * 41), "is not 1 to 40 of"),
        (lambda d: d.update(uid="switchyard.test"), "is not 1 to 40 of"),
        (lambda d: d.update(schemaVersion=27), "schemaVersion 27 is not"),
        (lambda d: d.update(schemaVersion=40), "schemaVersion 40 is not"),
        (lambda d: d.update(schemaVersion="39"), "schemaVersion '39' is not"),
        (lambda d: d.update(title=""), "no title"),
        (lambda d: d["time"].pop("to"), "has no from and to"),
        (lambda d: d.update(editable="yes"), "editable 'yes' is not a boolean"),
        (lambda d: d["templating"].update(list={}), "templating.list is not a list"),
        (lambda d: d["templating"]["list"][0].update(type="select"), "type 'select' is not one of"),
        (lambda d: d["templating"]["list"].append({"name": "node", "type": "query", "query": "up"}),
         "a query variable without a datasource"),
        (lambda d: d["templating"]["list"][0].update(query="loki"), "lists 'loki' datasources"),
        (lambda d: d["panels"][1].update(datasource=dict(GRAFANA_ANNOTATIONS)), "type 'grafana'"),
    ],
)  # fmt: skip
def test_each_check_reports_a_broken_copy(breakage: Callable[[Json], object], reported: str) -> None:
    dashboard = _good()
    breakage(dashboard)
    problems = all_problems(dashboard)
    assert any(reported in problem for problem in problems), problems


def test_a_uid_used_twice_is_reported() -> None:
    assert duplicate_uids({"a.json": _good(), "b.json": _good()}) == [
        "uid 'switchyard-test' in a.json and b.json"
    ]
    assert duplicate_uids({"a.json": _good(), "b.json": {**_good(), "uid": "other"}}) == []


def test_a_provider_elsewhere_or_not_of_files_is_reported() -> None:
    mount = "/var/lib/grafana/dashboards"
    good = {"name": "switchyard", "type": "file", "options": {"path": mount}}
    assert provider_problems([good], mount) == []
    elsewhere = provider_problems([{**good, "options": {"path": "/etc/grafana/dashboards"}}], mount)
    assert elsewhere == [
        f"providers[0]: path '/etc/grafana/dashboards' is not {mount!r}, where compose mounts them"
    ]
    assert provider_problems([{**good, "type": "api"}], mount) == ["providers[0]: type 'api' is not 'file'"]
    assert provider_problems([good], None) != []
