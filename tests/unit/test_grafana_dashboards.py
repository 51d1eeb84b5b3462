"""The provisioned Grafana dashboards, read against Grafana 11.2's dashboard JSON model.

docker-compose.yml runs ``grafana/grafana-oss:11.2.2`` on deploy/grafana/provisioning and mounts
deploy/grafana/dashboards into it. No Grafana runs where the unit tests do, so this test reads every dashboard
file as that Grafana would load it and reports what it would refuse, quietly rewrite, or query in vain:

* the dashboard: a ``title``; a ``uid`` Grafana accepts as a short UID (at most 40 of ``[A-Za-z0-9_-]``),
  unique across the files; ``schemaVersion`` 36..39; a ``panels`` list; ``time.from`` and ``time.to``;
  ``templating.list`` a list; no database ``id`` pinned; ``editable`` a boolean;
* every panel, those inside rows too: an integer ``id`` unique in the dashboard; a ``type`` that is a core
  panel of Grafana 11; a ``gridPos`` on the 24-column grid, not overlapping another; ``targets`` with unique
  ``refId``s and a PromQL ``expr``;
* every ``datasource`` reference: ``{"type": "prometheus", "uid": ...}`` whose uid is a datasource of
  deploy/grafana/provisioning/datasources or a ``$var`` / ``${var}`` naming a ``datasource`` variable; a
  plain string (the legacy datasource name) fails;
* template variables: a ``name`` and a known ``type``; a query variable has a datasource;
* every PromQL ``expr``: balanced brackets and quotes, known functions, and metric names that the code
  exports (the name literals of the prometheus_client constructors under controller/, media_worker/ and
  switchyard/, with the sample suffixes of each type: a counter ``x`` is only ever queried as ``x_total``,
  a histogram as ``x_bucket``, ``x_sum``, ``x_count``) or that Prometheus writes for every target (``up``);
* the dashboard provider: ``type: file``, reading the directory docker-compose.yml mounts the dashboards at.

Why these bounds:

* ``schemaVersion``: Grafana 11.2 writes 39 (``DASHBOARD_SCHEMA_VERSION`` in its DashboardMigrator); a file
  above it comes from a newer Grafana, whose fields 11.2 does not know. Below 36 Grafana migrates the
  datasource references as it loads (schema 33 and 36 turn names into ``{type, uid}`` refs and fill in
  defaults), so what this test reads would not be what Grafana shows.
* Panel types: the panel plugins Grafana 11 ships that take a place on a dashboard. The Angular ``graph``,
  ``singlestat`` and ``table-old`` fail: Grafana 11 turns Angular off and auto-migrates them to timeseries,
  stat and table, dropping whatever the new panel has no option for.
* Panels that send no query (their plugin.json sets ``skipDataQuery``: text, news, dashboard, alert and
  annotation lists) and rows need no targets.

tests/unit/test_dashboards.py checks the deployment around the dashboards (promtool on the queries, the scrape
config, the metrics classes instantiated); this file is the JSON model. Each check is a function returning the
problems it finds, so the tests at the end can show on deliberately broken copies that each check fails.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import pytest
import yaml

Json: TypeAlias = dict[str, Any]

ROOT: Final = Path(__file__).resolve().parents[2]
GRAFANA: Final = ROOT / "deploy/grafana"
DASHBOARDS: Final = sorted((GRAFANA / "dashboards").glob("*.json"))
COMPOSE: Final = ROOT / "docker-compose.yml"
METRIC_PACKAGES: Final = ("controller", "media_worker", "switchyard")


def _yaml_files(folder: Path) -> list[Path]:
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


def _title(where: str, panel: Json) -> str:
    return f"{where} {panel.get('title')!r}"


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
        name = _title(where, panel)
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
    for path in _yaml_files(GRAFANA / "provisioning/datasources"):
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


# ------------------------------------------------------------------------------------------ PromQL
# prometheus.io/docs/prometheus/latest/querying/functions/ and .../operators/; `start`/`end` are the `@`
# modifier's. Function names are case-sensitive, keywords and aggregations are not.
FUNCTIONS: Final = _words(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg
    delta deriv double_exponential_smoothing end exp floor histogram_avg histogram_count histogram_fraction
    histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase
    irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time
    minute month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin
    sinh sort sort_by_label sort_by_label_desc sort_desc sqrt start stddev_over_time stdvar_over_time
    sum_over_time tan tanh time timestamp vector year"""
)
AGGREGATIONS: Final = _words(
    "avg bottomk count count_values group limitk limit_ratio max min quantile stddev stdvar sum topk"
)
KEYWORDS: Final = _words(
    "and or unless atan2 bool offset by without on ignoring group_left group_right inf nan"
)
LABEL_LISTS: Final = _words("by without on ignoring group_left group_right")
_TOKEN: Final = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<variable>\$\{[^}]*\}|\$\w+)
    |(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
    |(?P<ident>[A-Za-z_:][\w:]*)
    |(?P<open>[(\[{])
    |(?P<close>[)\]}])
    |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_OPENER: Final = {")": "(", "]": "[", "}": "{"}
Tokens: TypeAlias = list[tuple[str, str]]


@dataclass(frozen=True)
class PromQL:
    """What read_promql found in an expression."""

    names: frozenset[str]
    problems: tuple[str, ...]


def _tokens(expr: str) -> Tokens:
    """(kind, text) of each token of ``expr``; Grafana's ``$var``/``${var}`` are tokens of their own."""
    return [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"]


def _nesting(tokens: Tokens) -> tuple[list[str], list[str]]:
    """The innermost bracket each token is in ("" for none), and the unbalanced brackets and quotes."""
    stack: list[str] = []
    inside: list[str] = []
    problems: list[str] = []
    for kind, text in tokens:
        inside.append(stack[-1] if stack else "")
        if kind == "open":
            stack.append(text)
        elif kind == "close" and (not stack or stack.pop() != _OPENER[text]):
            problems.append(f"unbalanced {text!r}")
        elif kind == "other" and text in "\"'`":
            problems.append(f"unterminated {text} string")
    if stack:
        problems.append(f"unclosed {''.join(stack)!r}")
    return inside, problems


def _label_list_end(tokens: Tokens, start: int) -> int | None:
    """The index of the ``)`` closing the label list that opens at ``start``; None if it is not one."""
    for j in range(start + 1, len(tokens)):
        kind, text = tokens[j]
        if text == ")":
            return j
        if kind not in ("ident", "string") and text != ",":
            return None
    return None


def _name_matcher(tokens: Tokens, i: int) -> set[str]:
    """The metric a ``__name__="x"`` matcher at ``i`` selects (none for ``!=``, ``=~`` and ``!~``)."""
    operator, value = (tokens[i + 1 : i + 3] + [("", "")] * 2)[:2]
    if tokens[i][1] == "__name__" and operator == ("other", "=") and value[0] == "string":
        return {value[1][1:-1]}
    return set()


def _role(text: str, after: str) -> str:
    """What an identifier outside label matchers and ranges is, from itself and the token after it."""
    low = text.lower()
    if low in LABEL_LISTS and after == "(":
        return "label list"
    if low in KEYWORDS:
        return "keyword"
    if after == "(":
        return "function" if text in FUNCTIONS or low in AGGREGATIONS else "unknown function"
    if low in AGGREGATIONS and after.lower() in ("by", "without"):
        return "function"
    return "metric"


def read_promql(expr: str) -> PromQL:
    """The metric names a PromQL expression (with Grafana variables) selects, and what is wrong with it."""
    tokens = _tokens(expr)
    inside, problems = _nesting(tokens)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        role = _role(text, tokens[i + 1][1] if i + 1 < len(tokens) else "")
        if kind != "ident" or inside[i] == "[":
            pass
        elif inside[i] == "{":
            names |= _name_matcher(tokens, i)
        elif role == "label list":
            end = _label_list_end(tokens, i + 1)
            if end is None:
                problems.append(f"malformed label list after {text!r}")
                break
            i = end
        elif role == "unknown function":
            problems.append(f"unknown function {text!r}")
        elif role == "metric":
            names.add(text)
        i += 1
    return PromQL(frozenset(names), tuple(problems))


# ------------------------------------------------------------------------------------------ exported names
# Series Prometheus writes itself for every target (prometheus.io/docs/concepts/jobs_instances/).
PROMETHEUS_SERIES: Final = _words(
    """up scrape_duration_seconds scrape_samples_scraped scrape_samples_post_metric_relabeling
    scrape_series_added"""
)
# The sample names prometheus_client writes for a family of each type (``_created`` left out: no panel
# should chart creation times).
SAMPLE_SUFFIXES: Final = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}
# The calls whose first argument names a metric family, and the family's type.
CONSTRUCTORS: Final = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "ScrapeGauge": "gauge",  # controller/metrics.py: a labelled gauge read at scrape time
    "counter": "counter",  # controller/janus/metrics.py: JanusMetrics' local helper making a Counter
}
_IMPORTS_PROMETHEUS_CLIENT: Final = re.compile(r"^\s*(?:from|import)\s+prometheus_client\b", re.MULTILINE)


def metrics_modules() -> Iterator[tuple[Path, ast.Module]]:
    """The parsed modules of the project's packages that use prometheus_client."""
    for package in METRIC_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            if _IMPORTS_PROMETHEUS_CLIENT.search(source):
                yield path, ast.parse(source, str(path))


def _callee(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _name_argument(call: ast.Call) -> str | None:
    """The string literal a metric constructor gets as its name (first argument or ``name=``)."""
    for arg in [*call.args[:1], *(k.value for k in call.keywords if k.arg == "name")]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


@functools.cache
def metric_families() -> Mapping[str, str]:
    """Name -> type of each metric family the code defines (a counter's ``_total`` dropped, as
    prometheus_client does)."""
    families: dict[str, str] = {}
    for _, module in metrics_modules():
        for node in ast.walk(module):
            if not isinstance(node, ast.Call):
                continue
            kind, name = CONSTRUCTORS.get(_callee(node.func)), _name_argument(node)
            if kind is not None and name is not None:
                families[name.removesuffix("_total") if kind == "counter" else name] = kind
    return families


def sample_names(families: Mapping[str, str]) -> frozenset[str]:
    """The sample names a Prometheus scrape of ``families`` holds."""
    return frozenset(name + suffix for name, kind in families.items() for suffix in SAMPLE_SUFFIXES[kind])


def exported() -> frozenset[str]:
    """Every metric name a dashboard may query: the code's samples and Prometheus' own series."""
    return sample_names(metric_families()) | PROMETHEUS_SERIES


def query_problems(dashboard: Json, names: frozenset[str]) -> list[str]:
    """Malformed PromQL in ``dashboard``, and metric names it queries that are not in ``names``."""
    problems: list[str] = []
    for where, panel in walk_panels(dashboard):
        targets = panel.get("targets") if isinstance(panel, dict) else None
        for target in targets if isinstance(targets, list) else []:
            expr = target.get("expr") if isinstance(target, dict) else None
            if not isinstance(expr, str):
                continue  # target_problems reports it
            promql = read_promql(expr)
            at = f"{_title(where, panel)} {target.get('refId')}"
            problems += [f"{at}: {problem} in {expr!r}" for problem in promql.problems]
            problems += [f"{at}: no code exports {name} ({expr!r})" for name in sorted(promql.names - names)]
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


# ------------------------------------------------------------------------------------------ the files
def test_there_are_dashboards_a_provider_and_a_prometheus_datasource() -> None:
    assert DASHBOARDS, "no deploy/grafana/dashboards/*.json"
    assert _yaml_files(GRAFANA / "provisioning/dashboards"), "no dashboard provider file"
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


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries(path: Path) -> None:
    assert query_problems(load(path), exported()) == []


@pytest.mark.parametrize("path", _yaml_files(GRAFANA / "provisioning/dashboards"), ids=lambda p: p.name)
def test_dashboard_provider(path: Path) -> None:
    mount = compose_dashboards_mount()
    assert provider_problems((yaml.safe_load(path.read_text()) or {}).get("providers"), mount) == []


def test_the_metric_scan_sees_every_name_in_the_metrics_code() -> None:
    """A metric defined through a call the scan does not know (a new helper around Counter, say) would make
    a correct panel fail here: every ``switchyard_*`` literal in a module using prometheus_client must be a
    family the scan found, or one of its samples."""
    families = metric_families()
    literals = {
        node.value
        for _, module in metrics_modules()
        for node in ast.walk(module)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if re.fullmatch(r"switchyard_\w+", node.value)
    }
    assert literals - set(families) - sample_names(families) == set()
    assert families["switchyard_calls_started"] == "counter"
    assert families["switchyard_janus_events"] == "counter"  # through JanusMetrics' helper
    assert families["switchyard_workers"] == "gauge"  # a ScrapeGauge
    assert families["switchyard_route_seconds"] == "histogram"
    assert "switchyard_calls_started" not in exported()  # a counter is queried as ..._total


# ------------------------------------------------------------------------------------ each check can fail
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum(up{job="worker"})', {"up"}),
        ("sum(rate(a_total[$__rate_interval]))", {"a_total"}),
        ('histogram_quantile(0.95, sum by (le, stage) (rate(h_bucket{stage="asr"}[5m])))', {"h_bucket"}),
        ("sum(rate(s_sum[1m])) / sum(rate(s_count[1m]))", {"s_sum", "s_count"}),
        ("count(g) - sum(g)", {"g"}),
        ("a / on (instance) group_left (node) b offset 1h30m", {"a", "b"}),
        ("sum without (instance) (x) > bool 0", {"x"}),
        ('{__name__="x", job="w"}', {"x"}),
        ("SUM BY (le) (x)", {"x"}),
        ("max_over_time(rate(x_total[5m])[1h:1m])", {"x_total"}),
        ("time() - timestamp(x @ start())", {"x"}),
        ('label_replace(x, "dst", "$1", "src", "(rate|sum)")', {"x"}),
        ('x{node=~"${node:regex}"} * 1e3 + Inf', {"x"}),
    ],
)
def test_read_promql_finds_the_metric_names(expr: str, names: set[str]) -> None:
    assert read_promql(expr) == PromQL(frozenset(names), ())


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(x_total[5m])", "unclosed '('"),
        ("rate(x[5m)", "unbalanced ')'"),
        ("x]", "unbalanced ']'"),
        ('x{a="b}', 'unterminated " string'),
        ("rat(x[5m])", "unknown function 'rat'"),
        ("sum by (le (x)", "malformed label list after 'by'"),
    ],
)
def test_read_promql_reports_what_is_not_promql(expr: str, problem: str) -> None:
    assert problem in read_promql(expr).problems


DATASOURCES: Final = {"prometheus": "prometheus", "loki": "loki"}
NAMES: Final = frozenset({"switchyard_calls_started_total", "up"})


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
    """Every check of this file on one dashboard, with the datasources and names above."""
    return [
        *dashboard_problems(dashboard),
        *panel_problems(dashboard),
        *datasource_problems(dashboard, DATASOURCES),
        *variable_problems(dashboard),
        *query_problems(dashboard, NAMES),
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
        (lambda d: _target(d).update(expr="rate(switchyard_calls_started[5m])"),
         "no code exports switchyard_calls_started"),
        (lambda d: _target(d).update(expr="sum(rate(switchyard_calls_started_total[5m])"), "unclosed '('"),
        (lambda d: _target(d).update(expr="rat(up[5m])"), "unknown function 'rat'"),
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
