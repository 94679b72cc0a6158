"""deploy/monitoring: the rules pass promtool (check and a unit test per alert), the
PrometheusRule carries the plain rules file's groups unchanged, every series a rule or the
dashboard reads is one the exporter exports, and the operator objects have the right shape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdoctor.signals.series import SERIES

MONITORING = Path(__file__).parent.parent.parent / "deploy" / "monitoring"
RULES = MONITORING / "kdoctor-rules.yaml"
README = Path(__file__).parent.parent.parent / "README.md"
EXPORTED = {s.name for s in SERIES} | {f"{s.name}_{part}" for s in SERIES if s.type == "histogram"
                                       for part in ("bucket", "sum", "count")}
# PromQL words that look like metric names in an expression.
PROMQL = {"sum", "by", "max", "min", "rate", "topk", "time", "or", "and", "on", "histogram_quantile", "le",
          "count", "avg", "without", "ignoring", "group_left", "offset", "bool", "unless"}

promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")


def _load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


def _names(expr: str) -> set[str]:
    """The metric names an expression reads (label matchers and strings removed)."""
    bare = re.sub(r'"[^"]*"', "", re.sub(r"\{[^}]*\}", "", expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    return {w for w in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", bare) if w not in PROMQL and not w.isdigit()}


@promtool
def test_the_rules_pass_promtool_check_and_their_unit_tests(tmp_path: Path) -> None:
    for path in (RULES,):
        checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # The PrometheusRule's groups, as the operator hands them to Prometheus.
    operator = tmp_path / "operator-rules.yaml"
    operator.write_text(yaml.safe_dump(_load("prometheusrule.yaml")["spec"]))
    checked = subprocess.run(["promtool", "check", "rules", str(operator)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "kdoctor-rules.test.yaml"], cwd=MONITORING,
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_promtool_case_and_the_operator_rule_is_the_same() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"]}
    cases = _load("kdoctor-rules.test.yaml")["tests"]
    tested = {t["alertname"] for case in cases for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested == alerts
    assert alerts >= {"KdoctorRoundFailed", "KdoctorSuspectNode", "KdoctorTaskStopped", "KdoctorDiskFdatasyncSlow"}
    assert _load("prometheusrule.yaml")["spec"]["groups"] == groups


def test_rules_and_dashboard_read_only_exported_series() -> None:
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    dashboard = json.loads((MONITORING / "kdoctor-dashboard.json").read_text())
    panel_exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert panel_exprs and all(panel_exprs)
    for expr in exprs + panel_exprs:
        assert _names(expr) <= EXPORTED, expr
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for wanted in ("verdict", "node status", "target kind", "suspects"):
        assert wanted in titles
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "kind", "task"}


def test_operator_objects_have_the_fields_the_crds_define() -> None:
    rule = _load("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"} and set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "partial_response_strategy", "limit"}
        for item in group["rules"]:
            assert set(item) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert isinstance(item["expr"], str) and isinstance(item.get("labels", {}), dict)
    monitor = _load("servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    endpoint = monitor["spec"]["endpoints"][0]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "authorization", "basicAuth", "scheme"}
    assert endpoint["authorization"]["credentials"] == {"name": "kdoctor", "key": "metrics-token"}
    base = yaml.safe_load_all((MONITORING.parent / "base" / "exporter.yaml").read_text())
    service = next(d for d in base if d["kind"] == "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    kustomization = _load("kustomization.yaml")
    assert set(kustomization["resources"]) == {"servicemonitor.yaml", "prometheusrule.yaml"}
    assert kustomization["configMapGenerator"][0]["files"] == ["kdoctor-dashboard.json"]


def test_the_readme_documents_every_series() -> None:
    text = README.read_text()
    for series in SERIES:
        assert f"`{series.name}`" in text, f"{series.name} missing from README.md"
