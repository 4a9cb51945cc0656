"""deploy/observability: every dashboard query and alert rule names what the services export.

The exported metrics come from the real thing: each service's app (the gateway included) is
built in-process as `main.create_app` builds it and its `/metrics` scraped, so a metric renamed
in a service or library leaves a dashboard or rule naming nothing, and this fails. Label names
come from kit's metric constructors (`kit.metrics.label_names`, the same objects), label values
where the code has a closed set (event types, order statuses). A small PromQL tokenizer is
enough for that: it finds the selectors (`name{label="value"}`), the functions called and the
grouping labels, and refuses what it does not understand.

Also checked: the rule files' shape (groups, `for`, severity, annotations whose `$labels` the
expression keeps), the four alerts issue 21 asks for, Grafana's provisioning (every panel and
variable on the provisioned datasource uid, the dashboards directory compose mounts), and
Prometheus scraping every service where compose runs it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from order_service.domain import STATUSES
from prometheus_client.parser import text_string_to_metric_families

from contracts.registry import all_events
from kit.metrics import label_names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OBS = DEPLOY / "observability"
DASHBOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((OBS / "prometheus" / "rules").glob("*.yml"))
sys.path.insert(0, str(ROOT / "scripts"))
from runner.config import SERVICES  # noqa: E402

pytestmark = pytest.mark.unit

# Series Prometheus makes itself for every target (not exported by a service).
PROMETHEUS_SERIES = {"up": ("job", "instance")}
TARGET_LABELS = ("job", "instance")  # added by Prometheus to every scraped series
SEVERITIES = {"critical", "warning"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


# --- what the services export ----------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """Sample names the services' /metrics render, and each one's label names."""

    labels: dict[str, frozenset[str]]

    def knows(self, name: str) -> bool:
        return name in self.labels


def _app(service: str) -> Any:
    main = importlib.import_module(f"{service}_service.main")
    settings = importlib.import_module(f"{service}_service.settings")
    return main.create_app(getattr(settings, f"{service.capitalize()}Settings")(env="test"))


async def _scrape(service: str) -> str:
    """The service's /metrics. No lifespan: building the app imports every metric definition
    of the service, which is what its /metrics renders."""
    transport = httpx.ASGITransport(app=_app(service))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, service
    return response.text


def _sample_names(family: str, kind: str) -> dict[str, frozenset[str]]:
    """The sample names of a family and the extra label each one carries."""
    if kind == "counter":
        return {f"{family}_total": frozenset(), f"{family}_created": frozenset()}
    if kind == "histogram":
        return {
            f"{family}_bucket": frozenset({"le"}),
            f"{family}_count": frozenset(),
            f"{family}_sum": frozenset(),
            f"{family}_created": frozenset(),
        }
    return {family: frozenset()}


@pytest.fixture(scope="module")
def exported() -> Exported:
    families: dict[str, str] = {}
    for service, _ in SERVICES:
        text = asyncio.run(_scrape(service))
        families |= {f.name: f.type for f in text_string_to_metric_families(text)}
    defined = label_names()  # now that every service's metrics are imported
    labels: dict[str, frozenset[str]] = {}
    for family, kind in families.items():
        own = defined.get(family, defined.get(f"{family}_total", ()))
        for name, extra in _sample_names(family, kind).items():
            labels[name] = frozenset(own) | extra | frozenset(TARGET_LABELS)
    for name, target in PROMETHEUS_SERIES.items():
        labels[name] = frozenset(target)
    return Exported(labels)


def closed_values(metric: str, label: str) -> frozenset[str] | None:
    """The values a label can take, where the code has a closed set."""
    if label == "type":
        return frozenset(all_events())
    if (metric, label) in {
        ("shop_orders_by_status", "status"),
        ("shop_saga_step_duration_seconds_bucket", "step"),
        ("shop_saga_step_duration_seconds_count", "step"),
    }:
        return frozenset(STATUSES)
    if label in {"service", "job"}:
        return frozenset(name for name, _ in SERVICES)
    return None


# --- a small PromQL tokenizer ------------------------------------------------------------------

TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
   |(?P<range>\[[^\]]*\])
   |(?P<number>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?(?:ms|s|m|h|d|w|y)?)
   |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
   |(?P<punct>[(){},])
   |(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=])
   |(?P<space>\s+)
    """,
    re.VERBOSE,
)
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk"}
AGGREGATIONS |= {"bottomk", "quantile", "count_values", "limitk", "limit_ratio"}
FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile"}
FUNCTIONS |= {"abs", "absent", "absent_over_time", "clamp", "clamp_min", "clamp_max", "time"}
FUNCTIONS |= {"vector", "scalar", "sort", "sort_desc", "label_replace", "round", "changes"}
FUNCTIONS |= {"resets", "max_over_time", "min_over_time", "avg_over_time", "last_over_time"}
FUNCTIONS |= {"sum_over_time", "count_over_time", "timestamp", "predict_linear"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
MATCH_OPS = {"=", "!=", "=~", "!~"}


@dataclass
class Matcher:
    label: str
    op: str
    value: str


@dataclass
class Selector:
    metric: str
    matchers: list[Matcher] = field(default_factory=list)


@dataclass
class Query:
    selectors: list[Selector] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    at = 0
    while at < len(expr):
        match = TOKEN.match(expr, at)
        assert match, f"cannot read {expr[at : at + 20]!r} in {expr!r}"
        kind = match.lastgroup or ""
        if kind != "space":
            found.append((kind, match.group()))
        at = match.end()
    return found


def _label_list(toks: list[tuple[str, str]], at: int) -> tuple[list[str], int]:
    """The labels of `( a, b )` starting at `at`, and the index after `)`."""
    assert toks[at][1] == "(", toks[at:]
    labels: list[str] = []
    at += 1
    while toks[at][1] != ")":
        kind, text = toks[at]
        assert kind == "ident" or text == ",", f"unexpected {text!r} in a label list"
        if kind == "ident":
            labels.append(text)
        at += 1
    return labels, at + 1


def _matchers(toks: list[tuple[str, str]], at: int) -> tuple[list[Matcher], int]:
    """The matchers of `{ l="v", … }` starting at `at`, and the index after `}`."""
    assert toks[at][1] == "{"
    found: list[Matcher] = []
    at += 1
    while toks[at][1] != "}":
        if toks[at][1] == ",":
            at += 1
            continue
        (k1, label), (_, op), (k3, value) = toks[at : at + 3]
        assert k1 == "ident" and op in MATCH_OPS and k3 == "string", toks[at : at + 3]
        found.append(Matcher(label, op, value[1:-1]))
        at += 3
    return found, at + 1


def parse(expr: str) -> Query:
    """The selectors, functions and grouping labels of a PromQL expression."""
    toks = tokens(expr)
    query = Query()
    depth, at = 0, 0
    while at < len(toks):
        kind, text = toks[at]
        following = toks[at + 1][1] if at + 1 < len(toks) else None
        if text in "()":
            depth += 1 if text == "(" else -1
            assert depth >= 0, f"unbalanced parentheses in {expr!r}"
            at += 1
        elif kind == "ident" and text in GROUPING:
            if following == "(":  # group_left and group_right may go without a list
                labels, at = _label_list(toks, at + 1)
                query.grouping.update(labels)
            else:
                assert text in {"group_left", "group_right"}, f"{text} needs labels"
                at += 1
        elif kind == "ident" and (text in AGGREGATIONS or following == "("):
            assert text in AGGREGATIONS | FUNCTIONS, f"unknown function {text} in {expr!r}"
            query.functions.append(text)
            at += 1
        elif kind == "ident" and text.lower() not in KEYWORDS:
            selector = Selector(text)
            at += 1
            if following == "{":
                selector.matchers, at = _matchers(toks, at)
            query.selectors.append(selector)
        else:
            assert text != "{", f"a selector without a metric name in {expr!r}"
            at += 1
    assert depth == 0, f"unbalanced parentheses in {expr!r}"
    assert query.selectors, f"no metric in {expr!r}"
    return query


def check_query(expr: str, exported: Exported, where: str) -> Query:
    """Every selector names an exported metric, selects on its labels, with known values."""
    query = parse(expr)
    for selector in query.selectors:
        assert exported.knows(selector.metric), f"{where}: {selector.metric} is not exported"
        labels = exported.labels[selector.metric]
        for matcher in selector.matchers:
            assert matcher.label in labels, (
                f"{where}: {selector.metric} has no label {matcher.label} ({sorted(labels)})"
            )
            values = closed_values(selector.metric, matcher.label)
            if values is None or "$" in matcher.value:
                continue
            literals = matcher.value.split("|") if matcher.op in {"=~", "!~"} else [matcher.value]
            if all(re.fullmatch(r"[A-Za-z0-9_]+", v) for v in literals):
                unknown = set(literals) - values
                assert not unknown, f"{where}: {matcher.label} never takes {sorted(unknown)}"
    return query


def test_the_tokenizer_reads_selectors_functions_and_grouping() -> None:
    query = parse(
        'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{a="1", b=~"p|q"}[5m])))'
        " / on (route) group_left max without (c) (y) > bool 0.5"
    )
    assert [s.metric for s in query.selectors] == ["x_bucket", "y"]
    assert query.selectors[0].matchers == [Matcher("a", "=", "1"), Matcher("b", "=~", "p|q")]
    assert query.functions == ["histogram_quantile", "sum", "rate", "max"]
    assert query.grouping == {"le", "route", "c"}
    with pytest.raises(AssertionError, match="unknown function"):
        parse("histogram_quantil(0.5, x)")
    with pytest.raises(AssertionError, match="unbalanced"):
        parse("sum(rate(x[5m])")


def test_a_renamed_metric_or_label_fails_the_check(exported: Exported) -> None:
    check_query('shop_dlq_depth{service="order"}', exported, "ok")
    with pytest.raises(AssertionError, match="not exported"):
        check_query("shop_dlq_messages", exported, "renamed")
    with pytest.raises(AssertionError, match="has no label"):
        check_query('shop_dlq_depth{queue="order"}', exported, "label")
    with pytest.raises(AssertionError, match="never takes"):
        check_query('shop_orders_by_status{status="SHIPPED"}', exported, "value")


# --- Grafana ---------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def provisioned_datasource() -> dict[str, Any]:
    sources = load_yaml(OBS / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert len(sources) == 1 and sources[0]["type"] == "prometheus"
    return dict(sources[0])


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def test_there_are_the_three_dashboards_the_issue_asks_for() -> None:
    titles = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert titles == {"shop-saga", "shop-messaging", "shop-http"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_names_exported_metrics(path: Path, exported: Exported) -> None:
    board = json.loads(path.read_text())
    uid = provisioned_datasource()["uid"]
    ids = [p["id"] for p in panels(board["panels"])]
    assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
    queried = 0
    for panel in panels(board["panels"]):
        if panel["type"] == "row":
            continue
        where = f"{path.name} / {panel['title']}"
        assert panel["datasource"]["uid"] == uid, where
        assert panel.get("description"), f"{where}: say what the panel shows"
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, where
            check_query(target["expr"], exported, where)
            queried += 1
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]
        found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
        assert found, f"{path.name}: variable {variable['name']} is not a label_values query"
        metric, label = found.groups()
        assert exported.knows(metric) and label in exported.labels[metric], variable["name"]
    assert queried >= 5, f"{path.name}: hardly a dashboard"


def test_grafana_is_provisioned_from_the_files_compose_mounts() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")["services"]
    mounts = dict(v.rsplit(":", 1)[0].split(":") for v in compose["grafana"]["volumes"])
    provider = load_yaml(OBS / "grafana/provisioning/dashboards/shop.yml")["providers"][0]
    assert mounts["./observability/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./observability/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = compose["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).name in {p.name for p in DASHBOARDS}
    assert provisioned_datasource()["url"] == "http://prometheus:9090"
    for service in ("prometheus", "grafana"):
        image = compose[service]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{image}: pin a version"
        for volume in compose[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source


# --- Prometheus ------------------------------------------------------------------------------


def test_prometheus_scrapes_every_service_and_loads_the_rule_files() -> None:
    config = load_yaml(OBS / "prometheus/prometheus.yml")
    compose = load_yaml(DEPLOY / "compose.yaml")["services"]
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {name: [f"{name}:{8000 + offset}"] for name, offset in SERVICES}
    for name, _ in SERVICES:
        assert name in compose, name
    mounts = dict(v.rsplit(":", 1)[0].split(":") for v in compose["prometheus"]["volumes"][:2])
    assert mounts["./observability/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    rules_dir = mounts["./observability/prometheus/rules"]
    assert config["rule_files"] == [f"{rules_dir}/*.yml"]
    assert RULE_FILES, "no rule file"


def rules() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                yield path, rule


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_files_have_the_shape_prometheus_loads(path: Path) -> None:
    document = load_yaml(path)
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)), "group names repeat"
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "labels", "limit"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            where = f"{path.name} / {rule.get('alert')}"
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, where
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), where
            assert DURATION.match(rule["for"]), f"{where}: `for` {rule['for']!r}"
            assert rule["labels"]["severity"] in SEVERITIES, where
            assert all(isinstance(v, str) for v in rule["labels"].values()), where
            annotations = rule["annotations"]
            assert set(annotations) == {"summary", "description"}, where
            assert all(isinstance(v, str) and v.strip() for v in annotations.values()), where


def test_every_rule_names_exported_metrics_and_keeps_the_labels_it_prints(
    exported: Exported,
) -> None:
    alerts = [rule["alert"] for _, rule in rules()]
    assert len(alerts) == len(set(alerts)), "alert names repeat"
    for path, rule in rules():
        where = f"{path.name} / {rule['alert']}"
        query = check_query(rule["expr"], exported, where)
        printed = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
        if query.grouping:
            kept = query.grouping
        else:
            kept = set.intersection(*(set(exported.labels[s.metric]) for s in query.selectors))
        assert printed <= kept, f"{where}: prints {sorted(printed - kept)} the query drops"


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    """DLQ not empty, outbox lag over 30 s, orders past a deadline, a service not ready."""
    by_metric: dict[str, list[str]] = {}
    for _, rule in rules():
        for selector in parse(rule["expr"]).selectors:
            by_metric.setdefault(selector.metric, []).append(rule["expr"])
    assert any(e.endswith("> 0") for e in by_metric["shop_dlq_depth"])
    assert any(e.endswith("> 30") for e in by_metric["shop_outbox_lag_seconds"])
    assert by_metric["shop_orders_past_deadline_seconds"]
    assert any(e.endswith("== 0") for e in by_metric["shop_ready"])
    assert any(e.strip() == "up == 0" for e in by_metric["up"])


# --- promtool, where it is installed ----------------------------------------------------------


def promtool() -> str:
    """`make test` fetches it into .tools/bin (scripts/ensure-promtool.sh); a bare pytest run
    without it skips these two (the checks above stand in)."""
    fetched = Path(__file__).resolve().parents[2] / ".tools/bin/promtool"
    found = str(fetched) if fetched.exists() else shutil.which("promtool")
    if found is None:
        pytest.skip("no promtool: `make promtool` fetches it (Debian's prometheus package)")
    return found


def test_promtool_accepts_the_config_and_the_rules(tmp_path: Path) -> None:
    tool = promtool()
    rules_dir = tmp_path / "rules"
    shutil.copytree(OBS / "prometheus/rules", rules_dir)
    config = (OBS / "prometheus/prometheus.yml").read_text()
    local = tmp_path / "prometheus.yml"  # the rules where compose mounts them, here
    local.write_text(config.replace("/etc/prometheus/rules", str(rules_dir)))
    result = subprocess.run(
        [tool, "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    """deploy/observability/prometheus/tests: each alert quiet below its threshold and before
    its `for`, firing with its labels and rendered annotations after."""
    tool = promtool()
    tests = sorted((OBS / "prometheus/tests").glob("*.yml"))
    assert tests
    result = subprocess.run(
        [tool, "test", "rules", *map(str, tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
