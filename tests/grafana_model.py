"""The Grafana 11.2 dashboard JSON model the provisioned dashboards are checked against.

docker-compose.yml runs ``grafana/grafana-oss:11.2.2`` on deploy/grafana/provisioning and mounts
deploy/grafana/dashboards into it. No Grafana runs where the unit tests do, so these checks read a dashboard
as that Grafana would load it and report what it would refuse or quietly rewrite:

* the dashboard: a ``title``; a ``uid`` Grafana accepts as a short UID (at most 40 of ``[A-Za-z0-9_-]``),
  unique across the files; ``schemaVersion`` 36..39; a ``panels`` list; ``time.from`` and ``time.to``;
  ``templating.list`` a list; no database ``id`` pinned; ``editable`` a boolean;
* every panel, those inside rows too: an integer ``id`` unique in the dashboard; a ``type`` that is a core
  panel of Grafana 11; a ``gridPos`` on the 24-column grid, not overlapping another; ``targets`` with unique
  ``refId``s and a non-empty ``expr``;
* every ``datasource`` reference: ``{"type": "prometheus", "uid": ...}`` whose uid is a datasource of
  deploy/grafana/provisioning/datasources or a ``$var`` / ``${var}`` naming a ``datasource`` variable; a
  plain string (the legacy datasource name) fails;
* template variables: a ``name`` and a known ``type``; a query variable has a datasource;
* the dashboard provider: ``type: file``, reading the directory docker-compose.yml mounts the dashboards at.

Why these bounds:

* ``schemaVersion``: Grafana 11.2 writes 39 (``DASHBOARD_SCHEMA_VERSION`` in its DashboardMigrator); a file
  above it comes from a newer Grafana, whose fields 11.2 does not know. Below 36 Grafana migrates the
  datasource references as it loads (schema 33 and 36 turn names into ``{type, uid}`` refs and fill in
  defaults), so what is checked here would not be what Grafana shows.
* Panel types: the panel plugins Grafana 11 ships that take a place on a dashboard. The Angular ``graph``,
  ``singlestat`` and ``table-old`` fail: Grafana 11 turns Angular off and auto-migrates them to timeseries,
  stat and table, dropping whatever the new panel has no option for.
* Panels that send no query (their plugin.json sets ``skipDataQuery``: text, news, dashboard, alert and
  annotation lists) and rows need no targets.

What the PromQL says is not read here: tests/unit/test_dashboards.py runs promtool on every ``expr`` and
checks each metric name it selects against the families the metrics classes register. Each check is a
function returning the problems it finds, so tests/unit/test_grafana_dashboards.py can show on deliberately
broken copies that each one fails.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

import yaml

from tests.promkit import ROOT

Json: TypeAlias = dict[str, Any]

GRAFANA: Final = ROOT / "deploy/grafana"
COMPOSE: Final = ROOT / "docker-compose.yml"


def yaml_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])


def load(path: Path) -> Json:
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a JSON object"
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ------------------------------------------------------------------------------------------ the dashboard
SCHEMA_VERSIONS: Final = range(36, 40)
SHORT_UID: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")


def dashboard_problems(dashboard: Json) -> list[str]:
    """What is wrong with the top level of ``dashboard``."""
    problems: list[str] = []
    if not isinstance(dashboard.get("title"), str) or not dashboard["title"].strip():
        problems.append("no title")
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not SHORT_UID.fullmatch(uid):
        problems.append(f"uid {uid!r} is not 1 to 40 of [A-Za-z0-9_-]")
    version = dashboard.get("schemaVersion")
    if not _is_int(version) or version not in SCHEMA_VERSIONS:
        problems.append(f"schemaVersion {version!r} is not an int in {SCHEMA_VERSIONS}")
    if not isinstance(dashboard.get("panels"), list):
        problems.append("panels is not a list")
    time = dashboard.get("time")
    if not isinstance(time, dict) or not all(
        time.get(k) and isinstance(time[k], str) for k in ("from", "to")
    ):
        problems.append(f"time {time!r} has no from and to")
    if "templating" in dashboard and not isinstance(_variable_list(dashboard), list):
        problems.append("templating.list is not a list")
    if dashboard.get("id") is not None:
        problems.append(f"id {dashboard['id']!r}: a provisioned dashboard must not pin a database id")
    if not isinstance(dashboard.get("editable", False), bool):
        problems.append(f"editable {dashboard['editable']!r} is not a boolean")
    return problems


def duplicate_uids(dashboards: Mapping[str, Json]) -> list[str]:
    """The uids more than one of ``dashboards`` (file name -> dashboard) uses."""
    files: dict[object, list[str]] = {}
    for name, dashboard in dashboards.items():
        files.setdefault(dashboard.get("uid"), []).append(name)
    return [f"uid {uid!r} in {' and '.join(names)}" for uid, names in files.items() if len(names) > 1]


# ------------------------------------------------------------------------------------------ panels
# Grafana 11's panel plugins (public/app/plugins/panel/*/plugin.json) less the hidden welcome and
# gettingstarted panels and the deprecated Angular ones, plus the dashboard's own "row".
PANEL_TYPES: Final = _words(
    """alertlist annolist barchart bargauge candlestick canvas dashlist datagrid flamegraph gauge geomap
    heatmap histogram logs news nodeGraph piechart row stat state-timeline status-history table text
    timeseries traces trend xychart"""
)
NO_QUERY_TYPES: Final = frozenset({"row", "text", "news", "dashlist", "alertlist", "annolist"})
GRID_COLUMNS: Final = 24


def walk_panels(dashboard: Json) -> Iterator[tuple[str, Json]]:
    """(where, panel) of every panel, each row followed by the panels it holds."""
    for i, panel in enumerate(dashboard.get("panels") or []):
        where = f"panels[{i}]"
        yield where, panel
        if isinstance(panel, dict) and isinstance(panel.get("panels"), list):
            for j, inner in enumerate(panel["panels"]):
                yield f"{where}.panels[{j}]", inner


def grid_problems(grid: object) -> list[str]:
    """What is wrong with a ``gridPos``: integers, a height, and within the 24 columns."""
    if not isinstance(grid, dict) or not all(_is_int(grid.get(k)) for k in "hwxy"):
        return [f"gridPos {grid!r} needs integer h, w, x and y"]
    problems = []
    if grid["h"] <= 0:
        problems.append(f"gridPos h {grid['h']} is not positive")
    if not 0 < grid["w"] <= GRID_COLUMNS:
        problems.append(f"gridPos w {grid['w']} is not 1 to {GRID_COLUMNS}")
    if grid["x"] < 0 or grid["x"] + grid["w"] > GRID_COLUMNS:
        problems.append(f"gridPos x + w = {grid['x']} + {grid['w']} leaves the {GRID_COLUMNS} columns")
    if grid["y"] < 0:
        problems.append(f"gridPos y {grid['y']} is negative")
    return problems


def target_problems(panel: Json) -> list[str]:
    """What is wrong with a panel's queries: at least one, each with a unique refId and a PromQL expr."""
    if panel.get("type") in NO_QUERY_TYPES:
        return []
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets:
        return ["no targets"]
    problems: list[str] = []
    ref_ids: set[str] = set()
    for i, target in enumerate(targets):
        ref_id = target.get("refId") if isinstance(target, dict) else None
        if not isinstance(ref_id, str) or not ref_id:
            problems.append(f"targets[{i}] has no refId")
        elif ref_id in ref_ids:
            problems.append(f"targets[{i}]: refId {ref_id!r} is used twice")
        else:
            ref_ids.add(ref_id)
        expr = target.get("expr") if isinstance(target, dict) else None
        if not isinstance(expr, str) or not expr.strip():
            problems.append(f"targets[{i}] has no PromQL expr")
    return problems


def row_problems(panel: Json, nested: bool) -> list[str]:
    """Rows: only at the top level, and only a collapsed row holds panels."""
    inner = panel.get("panels", [])
    if panel.get("type") != "row":
        return ["a panel holding panels: only rows do"] if inner else []
    if nested:
        return ["a row inside a row"]
    if not isinstance(inner, list):
        return ["the row's panels is not a list"]
    if inner and not panel.get("collapsed"):
        return ["an expanded row holding panels: Grafana lays out the panels after it and ignores these"]
    return []


def _panel_problems(panel: Json, nested: bool) -> list[str]:
    problems: list[str] = []
    if panel.get("type") not in PANEL_TYPES:
        problems.append(f"type {panel.get('type')!r} is no core panel of Grafana 11")
    if not isinstance(panel.get("title"), str):
        problems.append(f"title {panel.get('title')!r} is not a string")
    problems += grid_problems(panel.get("gridPos")) + row_problems(panel, nested)
    return problems + target_problems(panel)


def _overlap(a: Json, b: Json, start: str, size: str) -> bool:
    """Whether two gridPos share cells along one axis."""
    return bool(a[start] < b[start] + b[size] and b[start] < a[start] + a[size])


def overlap_problems(dashboard: Json) -> list[str]:
    """Top-level panels sharing grid cells (Grafana would push one down); a collapsed row's panels are laid
    out when it opens, so they are left out."""
    placed = [
        (panel.get("id"), panel["gridPos"])
        for panel in dashboard.get("panels") or []
        if isinstance(panel, dict) and not grid_problems(panel.get("gridPos"))
    ]
    return [
        f"panels {a_id} and {b_id} overlap"
        for i, (a_id, a) in enumerate(placed)
        for b_id, b in placed[i + 1 :]
        if _overlap(a, b, "x", "w") and _overlap(a, b, "y", "h")
    ]


def panel_problems(dashboard: Json) -> list[str]:
    """What is wrong with the panels of ``dashboard``, rows' panels included."""
    problems: list[str] = []
    ids: set[object] = set()
    for where, panel in walk_panels(dashboard):
        if not isinstance(panel, dict):
            problems.append(f"{where} is not an object")
            continue
        name = f"{where} {panel.get('title')!r}"
        panel_id = panel.get("id")
        if not _is_int(panel_id):
            problems.append(f"{name}: id {panel_id!r} is not an integer")
        elif panel_id in ids:
            problems.append(f"{name}: id {panel_id} is used twice")
        else:
            ids.add(panel_id)
        problems += [f"{name}: {p}" for p in _panel_problems(panel, nested=".panels[" in where)]
    return problems + overlap_problems(dashboard)


# ------------------------------------------------------------------------------------------ datasources
VARIABLE_REF: Final = re.compile(r"\$(\w+)|\$\{(\w+)\}")
# What Grafana writes for its built-in "Annotations & Alerts" annotation, allowed in annotations.list only.
GRAFANA_ANNOTATIONS: Final = {"type": "grafana", "uid": "-- Grafana --"}


@functools.cache
def provisioned_datasources() -> Mapping[str, str]:
    """uid -> plugin type of each datasource that deploy/grafana/provisioning/datasources creates."""
    sources: dict[str, str] = {}
    for path in yaml_files(GRAFANA / "provisioning/datasources"):
        for source in (yaml.safe_load(path.read_text()) or {}).get("datasources") or []:
            if "uid" in source:
                sources[source["uid"]] = source["type"]
    return sources


def _variable_list(dashboard: Json) -> object:
    templating = dashboard.get("templating")
    return templating.get("list") if isinstance(templating, dict) else None


def variables(dashboard: Json) -> dict[str, Json]:
    """The dashboard's template variables by name."""
    items = _variable_list(dashboard)
    if not isinstance(items, list):
        return {}
    return {v["name"]: v for v in items if isinstance(v, dict) and isinstance(v.get("name"), str)}


def ref_problem(ref: object, datasources: Mapping[str, str], defined: Mapping[str, Json]) -> str | None:
    """Why ``ref`` does not lead Grafana to a Prometheus datasource, or None when it does."""
    if not isinstance(ref, dict):
        return f"{ref!r} is not a {{type, uid}} reference (a string is a legacy datasource name)"
    if ref.get("type") != "prometheus":
        return f"type {ref.get('type')!r} in {ref!r} is not 'prometheus'"
    uid = ref.get("uid")
    if not isinstance(uid, str):
        return f"uid {uid!r} is not a string"
    if match := VARIABLE_REF.fullmatch(uid):
        variable = defined.get(match.group(1) or match.group(2), {})
        return None if variable.get("type") == "datasource" else f"uid {uid!r} names no datasource variable"
    if datasources.get(uid) != "prometheus":
        return f"uid {uid!r} is no provisioned Prometheus datasource (those: {sorted(datasources)})"
    return None


def _datasource_refs(node: object, path: str) -> Iterator[tuple[str, object]]:
    """(JSON path, value) of each ``datasource`` key anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{path}.{key}", value
            else:
                yield from _datasource_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _datasource_refs(item, f"{path}[{i}]")


def datasource_problems(dashboard: Json, datasources: Mapping[str, str]) -> list[str]:
    """The datasource references anywhere in ``dashboard`` that do not reach Prometheus."""
    defined = variables(dashboard)
    problems = []
    for where, ref in _datasource_refs(dashboard, ""):
        if where.startswith(".annotations.") and ref == GRAFANA_ANNOTATIONS:
            continue
        if (problem := ref_problem(ref, datasources, defined)) is not None:
            problems.append(f"{where[1:]}: {problem}")
    return problems


# ------------------------------------------------------------------------------------------ variables
VARIABLE_TYPES: Final = _words("query custom constant datasource interval textbox adhoc")


def variable_problems(dashboard: Json) -> list[str]:
    """What is wrong with the template variables (their datasource refs are datasource_problems')."""
    items = _variable_list(dashboard)
    problems: list[str] = []
    names: set[str] = set()
    for i, variable in enumerate(items if isinstance(items, list) else []):
        where = f"templating.list[{i}]"
        name = variable.get("name") if isinstance(variable, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"\w+", name):
            problems.append(f"{where}: name {name!r} is not a variable name")
            continue
        if name in names:
            problems.append(f"{where}: variable {name!r} is defined twice")
        names.add(name)
        kind = variable.get("type")
        if kind not in VARIABLE_TYPES:
            problems.append(f"{where} {name!r}: type {kind!r} is not one of {sorted(VARIABLE_TYPES)}")
        if kind == "query" and "datasource" not in variable:
            problems.append(f"{where} {name!r}: a query variable without a datasource")
        if kind == "datasource" and variable.get("query") != "prometheus":
            problems.append(f"{where} {name!r}: lists {variable.get('query')!r} datasources, not prometheus")
    return problems


# ------------------------------------------------------------------------------------------ provisioning
def compose_dashboards_mount() -> str | None:
    """Where docker-compose.yml's grafana service mounts deploy/grafana/dashboards."""
    grafana = (yaml.safe_load(COMPOSE.read_text()).get("services") or {}).get("grafana") or {}
    for volume in grafana.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = str(volume.get("source")), volume.get("target")
        else:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":")[0]
        if (COMPOSE.parent / source).resolve() == (GRAFANA / "dashboards").resolve():
            return str(target)
    return None


def provider_problems(providers: object, mount: str | None) -> list[str]:
    """What is wrong with a provisioning file's ``providers``: file providers reading ``mount``."""
    if mount is None:
        return ["docker-compose.yml's grafana service does not mount deploy/grafana/dashboards"]
    if not isinstance(providers, list) or not providers:
        return ["no dashboard providers"]
    problems = []
    for i, provider in enumerate(providers):
        if not isinstance(provider, dict):
            problems.append(f"providers[{i}] is not a mapping")
            continue
        if provider.get("type") != "file":
            problems.append(f"providers[{i}]: type {provider.get('type')!r} is not 'file'")
        path = (provider.get("options") or {}).get("path")
        if not isinstance(path, str) or path.rstrip("/") != mount.rstrip("/"):
            problems.append(f"providers[{i}]: path {path!r} is not {mount!r}, where compose mounts them")
    return problems
