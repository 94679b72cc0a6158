"""Spec loading: kdoctor's files load unchanged, defaults fixed where kdoctor is wrong, and every
bad field is named with what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdoctor.errors import SpecError
from kdoctor.specs import AppHttpHealthy, DiskIO, Netdns, NetReach, load_spec, load_text, spec_json
from kdoctor.specs import schedule as sched
from kdoctor.specs.common import Request

DATA = Path(__file__).parent.parent / "data"

KDOCTOR_APPHTTP = """
apiVersion: kdoctor.io/v1beta1
kind: AppHttpHealthy
metadata:
  name: apphttphealth
spec:
  agentSpec:
    hostNetwork: false
    kind: DaemonSet
    terminationGracePeriodMinutes: 60
  expect:
    meanAccessDelayInMs: 1500
    successRate: 1
  request:
    durationInSecond: 10
    perRequestTimeoutInMS: 2000
    qps: 10
  schedule:
    roundNumber: 1
    roundTimeoutMinute: 1
    schedule: 0 1
  target:
    enableLatencyMetric: false
    host: http://www.baidu.com
    http2: false
    method: GET
status:
  doneRound: 1
  lastRoundStatus: succeed
"""

KDOCTOR_NETDNS = """
apiVersion: kdoctor.io/v1beta1
kind: Netdns
metadata:
  name: netdns-cluster
spec:
  agentSpec:
    hostNetwork: false
    kind: DaemonSet
  expect:
    meanAccessDelayInMs: 1500
    successRate: 1
  request:
    domain: kubernetes.default.svc.cluster.local
    durationInSecond: 10
    perRequestTimeoutInMS: 1000
    protocol: udp
    qps: 10
  schedule:
    roundNumber: 1
    roundTimeoutMinute: 1
    schedule: 0 1
  target:
    enableLatencyMetric: false
    targetDns:
      serviceName: kube-dns
      serviceNamespace: kube-system
      testIPv4: true
      testIPv6: true
"""


def test_kdoctor_docs_netreach_loads_unchanged() -> None:
    spec = load_spec(DATA / "netreach-kdoctor-docs.yaml")
    assert isinstance(spec, NetReach)
    assert spec.name == "netreach"
    assert spec.spec.request.qps == 10
    assert spec.spec.target.ipv6 and spec.spec.target.ingress
    assert spec.spec.schedule.round_timeout_seconds == 60


def test_kdoctor_docs_apphttp_and_netdns_load_unchanged() -> None:
    http = load_text(KDOCTOR_APPHTTP)
    dns = load_text(KDOCTOR_NETDNS)
    assert isinstance(http, AppHttpHealthy) and http.spec.target.host == "http://www.baidu.com"
    assert isinstance(dns, Netdns) and dns.spec.target.target_dns is not None
    assert dns.spec.target.target_dns.test_ipv6


def test_defaults_fix_kdoctor_flaws() -> None:
    spec = load_text("apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: x}\n")
    assert isinstance(spec, NetReach)
    # No request: kdoctor's webhook fills 10 QPS for 2 s, 500 ms per request; so do we.
    assert spec.spec.request == Request(qps=10, duration_in_second=2, per_request_timeout_in_ms=500)
    # A request without a timeout: kdoctor's CRD default is 5 ms; ours lets a cross-node request finish.
    partial = load_text("apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: x}\n"
                        "spec: {request: {qps: 3}}\n")
    assert partial.spec.request.per_request_timeout_in_ms == 1000 and partial.spec.request.duration_in_second == 2
    # kdoctor's "0 1" + 60 default contradicts its own validator; ours follows the interval.
    one_minute = load_text(
        "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: x}\n"
        "spec: {schedule: {schedule: '0 1'}}\n")
    assert one_minute.spec.schedule.round_timeout_seconds == 60
    http = load_text("apiVersion: kdoctor.io/v1beta1\nkind: AppHttpHealthy\nmetadata: {name: x}\n"
                     "spec: {target: {host: 10.0.0.1:8080}}\n")
    assert isinstance(http, AppHttpHealthy)
    assert http.spec.target.host == "http://10.0.0.1:8080"
    assert http.spec.expect.status_code is None


def test_spec_json_round_trips_with_kdoctor_field_names() -> None:
    spec = load_spec(DATA / "netreach-kdoctor-docs.yaml")
    data = spec_json(spec)
    assert data["spec"]["request"]["perRequestTimeoutInMS"] == 1000
    assert data["spec"]["target"]["clusterIP"] is True
    assert "status" not in data
    assert spec_json(load_spec(data)) == data


def _problems(text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load_text(text)
    return {p.path: p.message for p in info.value.problems}


def test_every_bad_field_is_named_with_what_is_allowed() -> None:
    problems = _problems("""
apiVersion: kdoctor.io/v1beta1
kind: NetReach
metadata: {name: x}
spec:
  request: {qps: -5, durationInSecond: soon}
  target: {clusterIp: true}
  schedule: {schedule: "every day"}
""")
    assert set(problems) == {"spec.request.qps", "spec.request.durationInSecond", "spec.target.clusterIp",
                             "spec.schedule.schedule"}
    assert "greater than or equal to 1" in problems["spec.request.qps"]
    assert "did you mean clusterIP" in problems["spec.target.clusterIp"]
    assert "allowed: endpoint, clusterIP" in problems["spec.target.clusterIp"]
    assert "'M N'" in problems["spec.schedule.schedule"]


def test_unknown_kind_names_the_kinds() -> None:
    problems = _problems("apiVersion: kdoctor.io/v1beta1\nkind: NetReech\nmetadata: {name: x}\n")
    assert "did you mean NetReach" in problems["kind"]
    assert "AppHttpHealthy, Netdns, DiskIO" in problems["kind"]


def test_wrong_api_version_and_name() -> None:
    problems = _problems("apiVersion: v1\nkind: NetReach\nmetadata: {name: Bad Name}\n")
    assert "kdoctor.io/v1beta1" in problems["apiVersion"]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("spec: {schedule: {roundNumber: -2}}", "spec.schedule.roundNumber"),
        ("spec: {schedule: {schedule: '0 1', roundTimeoutMinute: 5}}", "spec.schedule"),
        ("spec: {expect: {successRate: 1.5}}", "spec.expect.successRate"),
        ("spec: {request: {perRequestTimeoutInMS: 0}}", "spec.request.perRequestTimeoutInMS"),
    ],
)
def test_kdoctor_validation_rules(text: str, path: str) -> None:
    problems = _problems(f"apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {{name: x}}\n{text}\n")
    assert path in problems


def test_not_yaml_or_not_a_file() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_text("kind: [")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec("/nonexistent/spec.yaml")


def test_diskio_is_ours_in_the_same_style() -> None:
    spec = load_text("apiVersion: kdoctor.io/v1beta1\nkind: DiskIO\nmetadata: {name: disks}\n"
                     "spec: {target: {directory: etcd, profiles: [etcd, seqWrite]}}\n")
    assert isinstance(spec, DiskIO)
    assert spec.spec.target.profiles == ["etcd", "seqWrite"]
    assert spec.spec.expect.fdatasync_p99_in_ms == 10.0


def test_schedule_forms() -> None:
    interval = sched.parse("2 10")
    assert isinstance(interval, sched.Interval)
    assert (interval.delay_seconds, interval.every_seconds) == (120, 600)
    seconds = sched.parse("0s 5s")
    assert isinstance(seconds, sched.Interval) and seconds.every_seconds == 5
    cron = sched.parse("*/5 * * * *")
    assert isinstance(cron, sched.Cron)
    for bad in ("0 0", "1s 5", "* * *", "x y"):
        with pytest.raises(ValueError):
            sched.parse(bad)


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent.parent / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_example_file_is_valid(path: Path) -> None:
    model = load_spec(str(path))
    assert model.name and model.kind in ("NetReach", "AppHttpHealthy", "Netdns", "DiskIO")
