"""The shipped alert rules and Grafana dashboard: valid PromQL (promtool), alert unit
tests (promtool test rules), and every metric and label they use is one the appliance
exports (so a rename in the code breaks CI, not an operator's dashboard)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from speaker.ipvs_stats import IpvsStatsPoller
from speaker.metrics import REGISTRY

MONITORING = Path(__file__).resolve().parents[2] / "examples" / "monitoring"
METRIC_MODULES = ("speaker.bgp.metrics", "speaker.election.metrics", "speaker.health.metrics",
                  "speaker.l2.metrics", "speaker.dns.publisher", "speaker.hooks.runner",
                  "speaker.daemon", "speaker.election.etcd_metrics", "speaker.bfd.metrics")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "info": ("_info",), "gauge": ("",), "summary": ("_sum", "_count", "")}
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset"}
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool (Debian package prometheus) missing")


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric the appliance can export."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    out: dict[str, set[str]] = {}

    def add(name: str, kind: str, labels: tuple[str, ...]) -> None:
        for suffix in SUFFIXES.get(kind, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            out[name + suffix] = set(labels) | extra

    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            add(collector._name, collector._type, collector._labelnames)
        else:
            for family in collector.collect():
                add(family.name, family.type, tuple(family.samples[0].labels)
                    if family.samples else ())
    poller = IpvsStatsPoller(None, lambda: None)  # type: ignore[arg-type]
    for family in poller.collect():
        add(family.name, family.type, tuple(family._labelnames))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads((MONITORING / "dashboard.json").read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def used(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, labels named in its matchers or the aggregation around it)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not names
    grouped = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        grouped |= {w.strip() for w in clause.split(",") if w.strip()}
    found = []
    for name, matchers in re.findall(r"\b(speaker_[a-z0-9_]+)\s*(\{[^}]*\})?", expr):
        labels = set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers))
        found.append((name, labels | grouped))
    return found


@pytest.mark.parametrize(("title", "expr"), dashboard_exprs() + alert_exprs())
def test_every_metric_and_label_is_exported(title: str, expr: str) -> None:
    metrics = exported()
    for name, labels in used(expr):
        assert name in metrics, f"{title}: {name} is not a metric the appliance exports"
        unknown = labels - metrics[name] - TARGET_LABELS - PROMQL_WORDS
        # labels an outer aggregation groups by may belong to another metric of the expr
        others = set().union(*(metrics.get(n, set()) for n, _ in used(expr)))
        assert not unknown - others, f"{title}: {name} has no label(s) {unknown - others}"


@needs_promtool
def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        out = subprocess.run(["promtool", *args], cwd=MONITORING, capture_output=True,
                             text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    rules: list[dict[str, Any]] = []
    for i, (_title, expr) in enumerate(dashboard_exprs()):
        concrete = expr.replace("$job", "edge-speaker").replace("$instance", ".*")
        rules.append({"record": f"dashboard:expr_{i}", "expr": concrete})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout


def test_a_misspelled_metric_or_label_would_fail() -> None:
    metrics = exported()
    assert "speaker_bgp_session_up" in metrics
    assert "type" in metrics["speaker_check_duration_seconds_bucket"]
    assert "kind" not in metrics["speaker_check_duration_seconds_bucket"]
    assert next(n for n, _ in used("rate(speaker_vip_anounced[5m])")) not in metrics
