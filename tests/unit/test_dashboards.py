"""The observability deployment: Grafana dashboards, their provisioning, and the Prometheus config.

The metric-name check reads every panel target's PromQL, extracts the metric names it selects and asserts
the code exports each of them: the families of ``ControllerMetrics``, ``WorkerMetrics`` and ``JanusMetrics``,
each built on a fresh ``CollectorRegistry`` and expanded into the sample names prometheus_client writes for
the family's type (a counter ``x`` is exported as ``x_total``, never as ``x``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.metrics_core import Metric

from tests.promkit import DASHBOARDS, PROMETHEUS_YML, ROOT, panels, targets

DATASOURCES_YML = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
PROVIDERS_YML = ROOT / "deploy/grafana/provisioning/dashboards/switchyard.yml"
COMPOSE_YML = ROOT / "docker-compose.yml"

# Series Prometheus itself writes for every target (prometheus.io/docs/concepts/jobs_instances/).
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"})

# ------------------------------------------------------------------------------------------ PromQL names
# Function and aggregation names of PromQL (prometheus.io/docs/prometheus/latest/querying/functions/ and
# .../operators/); `start`/`end` are the `@` modifier's preprocessors.
_WORDS = (
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv
    double_exponential_smoothing end exp floor histogram_avg histogram_count histogram_fraction
    histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase info
    irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time
    minute month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin
    sinh sort sort_by_label sort_by_label_desc sort_desc sqrt start stddev_over_time stdvar_over_time
    sum_over_time tan tanh time timestamp vector year""",
    "avg bottomk count count_values group limit_ratio limitk max min quantile stddev stdvar sum topk",
    "and atan2 bool by group_left group_right ignoring offset on or unless without inf nan",
)
FUNCTIONS, AGGREGATIONS, KEYWORDS = (frozenset(words.split()) for words in _WORDS)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_STR = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"""
_TOKEN = re.compile(
    rf"""(?P<skip>{_STR}|\#[^\n]*|\$\{{[^}}]*\}}|\$\w+|\[[^\]]*\]|\s+)
    |(?P<braces>\{{(?:{_STR}|[^{{}}"'`])*\}})
    |(?P<number>\.?\d[\w.]*)
    |(?P<ident>[A-Za-z_:][\w:]*)
    |(?P<op>.)""",
    re.VERBOSE | re.DOTALL,
)
_NAME_MATCHER = re.compile(rf"__name__\s*=\s*({_STR})")


def _tokens(expr: str) -> list[tuple[str, str]]:
    """Identifiers and operators of ``expr``; strings, comments, Grafana variables, ranges and label
    matchers dropped (a ``__name__="x"`` matcher becomes a ``name`` token)."""
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(expr):
        kind, text = m.lastgroup or "", m.group()
        if kind == "braces":
            out += [("name", lit[1:-1]) for lit in _NAME_MATCHER.findall(text)]
        elif kind == "op" and text in "{}[]\"'`":
            raise ValueError(f"unbalanced {text!r} in {expr!r}")
        elif kind in ("ident", "op"):
            out.append((kind, text))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (Grafana variables allowed) selects.

    Raises:
        ValueError: an unknown function, a malformed label list, or an unbalanced bracket or quote.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        low = text.lower()  # keywords and aggregations are case-insensitive, function names are not
        after = tokens[i + 1][1].lower() if i + 1 < len(tokens) else ""
        if kind == "name":
            names.add(text)
        elif kind != "ident":
            pass
        elif low in _LABEL_LISTS and after == "(":
            close = next((j for j in range(i + 2, len(tokens)) if tokens[j][1] == ")"), None)
            if close is None or any(t[1] != "," and t[0] != "ident" for t in tokens[i + 2 : close]):
                raise ValueError(f"malformed label list after {text!r} in {expr!r}")
            i = close
        elif low in KEYWORDS:
            pass
        elif after == "(":
            if text not in FUNCTIONS and low not in AGGREGATIONS:
                raise ValueError(f"unknown function {text!r} in {expr!r}")
        elif not (low in AGGREGATIONS and after in ("by", "without")):
            names.add(text)
        i += 1
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ("rate(a_total[5m])", {"a_total"}),
        ('sum by (le, stage) (rate(x_bucket{stage="asr", job=~"w.*"}[$__rate_interval]))', {"x_bucket"}),
        ("histogram_quantile(0.95, sum(rate(h_bucket[1m])) by (le))", {"h_bucket"}),
        ("a / on (instance) group_left (node) b", {"a", "b"}),
        ("a * on(instance) group_left b", {"a", "b"}),
        ("a and ignoring(x) b unless c or d", {"a", "b", "c", "d"}),
        ("count(up == 1) > bool 0", {"up"}),
        ("x offset 1h30m + y @ 1609746000 - z @ start()", {"x", "y", "z"}),
        ("sum without (instance) (x) atan2 y", {"x", "y"}),
        ('label_replace(x, "dst", "$1", "src", "(rate|by) sum(q)")', {"x"}),
        ('x{node="$node", job="${job:regex}"} / topk($n, y)', {"x", "y"}),
        ("1e3 * x + 0x1f - .5 + Inf + NaN", {"x"}),
        ("job:http_requests:rate5m", {"job:http_requests:rate5m"}),
        ('{__name__="foo", a="b"} + {__name__=~"bar.*"}', {"foo"}),
        ("max_over_time(rate(x[1m])[5m:30s])", {"x"}),
        ('x{a="b\\"}c"} # sum(comment)\n+ y', {"x", "y"}),
        ("sum by (on) (count_values without (le) (x))", {"x"}),
        ("time() - timestamp(x)", {"x"}),
        ("a and (b or c) unless on() (-d)", {"a", "b", "c", "d"}),
        ("SUM BY (le) (x)", {"x"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ["rat(x[1m])", "x{a='b'", "rate(x[1m)", 'x{a="b}', "sum by (le (x)"])
def test_metric_names_refuses_what_is_not_promql(expr: str) -> None:
    with pytest.raises(ValueError, match=r"^(unknown function|unbalanced|malformed)"):
        metric_names(expr)


# ------------------------------------------------------------------------------------------ exported names
# The sample names prometheus_client writes per family type (prometheus_client/metrics.py `_samples`).
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",), "stateset": ("",),
             "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created")}  # fmt: skip


def sample_names(family: Metric) -> set[str]:
    """The names of the samples prometheus_client exports for ``family``, from its type alone."""
    if family.type not in _SUFFIXES:
        raise ValueError(f"{family.name}: no rule for metric type {family.type!r}")
    return {family.name + suffix for suffix in _SUFFIXES[family.type]}


def test_sample_names_are_what_prometheus_client_exports() -> None:
    registry = CollectorRegistry()
    Counter("c", "c", registry=registry).inc()
    Gauge("g", "g", registry=registry).set(1)
    Histogram("h", "h", registry=registry).observe(1)
    Summary("s", "s", registry=registry).observe(1)
    Info("i", "i", registry=registry).info({"v": "1"})
    Enum("e", "e", states=["a", "b"], registry=registry)
    for family in registry.collect():
        written = {s.name for s in family.samples}
        derived = sample_names(family)
        assert written <= derived, family.name
        assert all(n.endswith("_created") for n in derived - written), family.name
    every = {name for family in registry.collect() for name in sample_names(family)}
    assert not {"c", "h", "s"} & every  # a counter's or histogram's own name is never a sample


_SOURCES = (("controller.metrics", "ControllerMetrics"), ("media_worker.metrics", "WorkerMetrics"),
            ("controller.janus.metrics", "JanusMetrics"))  # fmt: skip


def _stand_in(owner: str, name: str, annotation: str, registry: CollectorRegistry) -> object:
    """An argument for a metrics class's parameter: the registry, or an inert callback or collection."""
    head = re.sub(r"^[\s'\"]*(?:[\w.]*\.)?(\w+).*$", r"\1", annotation, flags=re.DOTALL)
    if head == "CollectorRegistry" or name == "registry":
        return registry
    if head == "Callable":
        return lambda *args, **kwargs: 0
    if head in ("Mapping", "MutableMapping", "dict"):
        return {}
    if head in ("Sequence", "Iterable", "Collection", "list", "tuple", "set", "frozenset"):
        return ()
    pytest.fail(f"{owner}({name}: {annotation}): no stand-in for this parameter; add one to _stand_in")


def _families(module_name: str, class_name: str) -> list[Metric] | None:
    """The families one metrics class registers on a fresh registry; None if it does not exist yet."""
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        cls = None
    if cls is None:
        return None
    registry = CollectorRegistry()
    kwargs = {
        name: _stand_in(class_name, name, str(p.annotation), registry)
        for name, p in inspect.signature(cls).parameters.items()
        if name == "registry" or p.default is p.empty
    }
    cls(**kwargs)
    return list(registry.collect())


@functools.cache
def exported() -> tuple[frozenset[str], tuple[str, ...]]:
    """(every sample name the code exports, the metrics classes that are not importable yet)."""
    names: set[str] = set()
    unavailable: list[str] = []
    for module_name, class_name in _SOURCES:
        families = _families(module_name, class_name)
        if families is None:
            unavailable.append(f"{module_name}.{class_name}")
        for family in families or ():
            names |= sample_names(family)
    return frozenset(names), tuple(unavailable)


def test_exported_names_come_from_the_real_classes() -> None:
    names, _ = exported()
    assert {"switchyard_calls_started_total", "switchyard_worker_active_streams"} <= names
    assert "switchyard_calls_started" not in names


# ------------------------------------------------------------------------------------------ dashboards
def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _datasources(node: object) -> Iterator[object]:
    """Every value of a ``datasource`` key anywhere in the JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasources(item)


def test_the_dashboards_are_there_with_unique_uids() -> None:
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) >= 5
    assert len(set(uids)) == len(uids), uids
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids), uids


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_panels(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["title"].startswith("Switchyard / ")
    assert 38 <= dashboard["schemaVersion"] <= 40  # Grafana 10.0 wrote 38; 11.3 writes 40
    every = list(panels(dashboard["panels"]))
    ids = [p["id"] for p in every]
    assert len(set(ids)) == len(ids), f"duplicate panel ids: {ids}"
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']}: no target"
        assert all(t["expr"].strip() for t in targets), panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_datasources_are_the_provisioned_one(path: Path) -> None:
    provisioned = yaml.safe_load(DATASOURCES_YML.read_text())["datasources"][0]
    refs = list(_datasources(_load(path)))
    assert refs
    assert all(ref == {"type": provisioned["type"], "uid": provisioned["uid"]} for ref in refs), refs


_SERIES_NEEDING_RANGE = re.compile(
    rf"\b([A-Za-z_:][\w:]*_(?:total|bucket|sum|count))\b\s*(?:\{{(?:{_STR}|[^{{}}])*\}})?\s*(.?)"
)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_are_rates_of_counters(path: Path) -> None:
    """Ranges are ``$__rate_interval``; counter and histogram series only appear under a range; quantiles
    keep ``le``."""
    for title, expr in targets(_load(path)):
        assert set(re.findall(r"\[[^\]]*\]", expr)) <= {"[$__rate_interval]"}, (title, expr)
        for name, following in _SERIES_NEEDING_RANGE.findall(expr):
            assert following == "[", f"{title}: {name} without a range in {expr}"
        if "histogram_quantile" in expr:
            lists = re.findall(r"\bby\s*\(([^)]*)\)", expr)
            assert lists, (title, expr)
            assert all("le" in re.split(r"\s*,\s*", x.strip()) for x in lists), (title, expr)


def test_dashboards_use_only_exported_metrics() -> None:
    """Every metric a dashboard queries is exported by the code; the failure lists exactly the missing."""
    assert DASHBOARDS
    names, unavailable = exported()
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for title, expr in targets(_load(path)):
            for name in metric_names(expr):
                used.setdefault(name, set()).add(f"{path.stem}/{title}")
    missing = sorted(set(used) - names - SCRAPE_SERIES)
    if missing:
        where = "\n".join(f"  {n}: {'; '.join(sorted(used[n]))}" for n in missing)
        note = f"\nnot importable yet: {', '.join(unavailable)}" if unavailable else ""
        pytest.fail(f"metrics no code exports: {' '.join(missing)}\n{where}{note}", pytrace=False)


# ------------------------------------------------------------------------------------------ prometheus
def test_promtool_accepts_the_config_and_the_dashboard_queries(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    exprs = [expr for path in DASHBOARDS for _, expr in targets(_load(path))]
    rules = [{"record": f"switchyard:dashboard_query:{i}", "expr": e.replace("$__rate_interval", "20s")}
             for i, e in enumerate(exprs)]  # fmt: skip
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    for check in (["config", str(PROMETHEUS_YML)], ["rules", str(rules_file)]):
        done = subprocess.run([promtool, "check", *check], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_the_controller_and_every_worker() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert set(config) == {"global", "scrape_configs"}  # no remote write, no rules, no alerting
    assert config["global"]["scrape_interval"] == "5s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"controller", "worker"}
    controller, worker = jobs["controller"], jobs["worker"]
    # controller/api/system.py serves /metrics as a "health" operation: no bearer token
    assert controller["metrics_path"] == "/metrics"
    assert "authorization" not in controller
    assert controller["static_configs"] == [{"targets": ["controller:8080"]}]
    assert worker["metrics_path"] == "/metrics"  # media_worker/server.py build_app
    assert "static_configs" not in worker
    assert worker["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 8000, "refresh_interval": "5s"}
    ]


def test_grafana_provisioning() -> None:
    (source,) = yaml.safe_load(DATASOURCES_YML.read_text())["datasources"]
    assert (source["type"], source["uid"], source["isDefault"]) == ("prometheus", "prometheus", True)
    assert source["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load(PROMETHEUS_YML.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape  # $__rate_interval is derived from it
    (provider,) = yaml.safe_load(PROVIDERS_YML.read_text())["providers"]
    assert (provider["type"], provider["folder"]) == ("file", "Switchyard")
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_compose_has_the_services_prometheus_scrapes() -> None:
    services = yaml.safe_load(COMPOSE_YML.read_text())["services"]
    for name in ("controller", "worker", "prometheus"):
        assert name in services, f"compose has no service {name!r}"
        assert services[name].get("network_mode") != "host", f"{name}: no service DNS on the host network"
    assert "container_name" not in services["worker"], "a fixed container_name breaks --scale worker=N"
    provider_path = yaml.safe_load(PROVIDERS_YML.read_text())["providers"][0]["options"]["path"]
    for name, wanted in (
        ("prometheus", "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml"),
        ("grafana", "./deploy/grafana/provisioning:/etc/grafana/provisioning"),
        ("grafana", f"./deploy/grafana/dashboards:{provider_path}"),
    ):
        assert wanted in {v.removesuffix(":ro") for v in services[name].get("volumes", [])}, (name, wanted)
