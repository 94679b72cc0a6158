"""The pure planner, from tables: who probes, who is missing or idle and why, when everyone
starts, when the round ends."""

from __future__ import annotations

from typing import Any

import pytest

from kdoctor.planning.planner import PUBLISH_SECONDS_PER_NODE, failed, plan
from kdoctor.settings import Settings
from kdoctor.specs.loading import SpecModel, validate
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, Services
from kdoctor.specs.rounds import Job

NOW = 10_000.0
SETTINGS = Settings(start_lead_seconds=1.0, round_grace_seconds=10.0)


def node(name: str, **labels: str) -> NodeInfo:
    index = int(name.rsplit("-", 1)[1])
    return NodeInfo(name=name, ipv4=[f"10.0.0.{index}"], agent_port=5710, labels=labels,
                    last_heartbeat=NOW, clock_offset=index / 10)


def inventory(live: list[str], missing: dict[str, str] | None = None, **labels: dict[str, str]) -> InventoryView:
    names = sorted({*live, *(missing or {})})
    return InventoryView(expected=[node(n, **labels.get(n.replace("-", "_"), {})) for n in names], live=live,
                         missing=missing or {}, services=Services(port=80, cluster_ip=["10.96.0.1"]),
                         source="test")


def netreach(**spec: Any) -> SpecModel:
    body = {"request": {"qps": 10, "durationInSecond": 2, "perRequestTimeoutInMS": 1000},
            "target": {"endpoint": True, "clusterIP": False, "nodePort": False}, **spec}
    return validate({"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": "t"},
                     "spec": body})


def diskio(serial: bool) -> SpecModel:
    return validate({"apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": "d"},
                     "spec": {"target": {"profiles": ["etcd"]},
                              "request": {"durationInSecond": 5, "serial": serial}}})


@pytest.mark.parametrize(("live", "missing", "published", "reported_missing"), [
    (["node-1", "node-2", "node-3"], {}, ["node-1", "node-2", "node-3"], {}),
    (["node-1", "node-2"], {"node-3": "no heartbeat for 40 s"}, ["node-1", "node-2"],
     {"node-3": "no heartbeat for 40 s"}),
    (["node-2"], {"node-1": "worker stopped", "node-3": "no worker has registered"}, ["node-2"],
     {"node-1": "worker stopped", "node-3": "no worker has registered"}),
    ([], {"node-1": "x"}, [], {"node-1": "x"}),
])
def test_live_nodes_probe_and_the_others_are_missing_with_the_inventorys_reason(
        live: list[str], missing: dict[str, str], published: list[str], reported_missing: dict[str, str]) -> None:
    planned = plan(netreach(), inventory(live, missing), NOW, SETTINGS, job="j", number=3)
    assert planned.state.round_id == "j-r3"
    assert [a.node for a in planned.assignments] == planned.state.published == published
    assert planned.state.missing == reported_missing
    assert planned.state.expected == sorted({*live, *missing})
    for assignment in planned.assignments:  # a missing node is no one's destination either
        assert {t.destination for t in assignment.targets} == set(live) - {assignment.node}
    assert sorted(map(tuple, planned.state.coverage)) == sorted(
        (a, b) for a in published for b in live if a != b)


def test_a_node_without_a_reason_is_still_missing() -> None:
    view = InventoryView(expected=[node("node-1"), node("node-2")], live=["node-1"])
    assert plan(netreach(), view, NOW, SETTINGS, job="j", number=1).state.missing == {
        "node-2": "its worker is not live"}


@pytest.mark.parametrize(("selector", "sources", "idle", "error"), [
    ({"names": ["node-1"]}, ["node-1"], ["node-2", "node-3"], ""),
    ({"matchLabels": {"zone": "a"}}, ["node-1", "node-3"], ["node-2"], ""),
    ({"names": ["node-9"]}, [], ["node-1", "node-2", "node-3"], "none of the 3 live node(s) is a source"),
])
def test_source_selector_leaves_nodes_idle_and_an_empty_selection_fails(
        selector: dict[str, Any], sources: list[str], idle: list[str], error: str) -> None:
    view = inventory(["node-1", "node-2", "node-3"], node_1={"zone": "a"}, node_2={"zone": "b"},
                     node_3={"zone": "a"})
    spec = netreach(target={"endpoint": True, "clusterIP": False, "nodePort": False,
                            "sourceNodeSelector": selector})
    planned = plan(spec, view, NOW, SETTINGS, job="j", number=1)
    assert planned.state.published == sources
    assert sorted(planned.state.idle) == idle
    assert all("not selected by target.sourceNodeSelector" in why for why in planned.state.idle.values())
    assert planned.state.error.startswith(error)
    for assignment in planned.assignments:  # idle nodes are still destinations
        assert {t.destination for t in assignment.targets} == {"node-1", "node-2", "node-3"} - {assignment.node}


@pytest.mark.parametrize(("live", "start"), [
    (1, NOW + 1.0 + PUBLISH_SECONDS_PER_NODE),
    (3, NOW + 1.0 + 3 * PUBLISH_SECONDS_PER_NODE),
    (0, NOW + 1.0),
])
def test_every_node_starts_at_one_instant_after_the_lead_and_the_publish_time(live: int, start: float) -> None:
    names = [f"node-{i}" for i in range(1, live + 1)]
    planned = plan(netreach(), inventory(names), NOW, SETTINGS, job="j", number=1)
    assert planned.state.start_at == pytest.approx(start)
    assert {a.start_at for a in planned.assignments} <= {planned.state.start_at}
    assert planned.state.planned == NOW


@pytest.mark.parametrize(("duration", "timeout_ms", "grace", "round_timeout_minute", "deadline_after_start"), [
    (2, 1000, 10.0, None, 2 + 1 + 10),            # budget (duration + one timeout) + grace
    (2, 500, 3.0, None, 2 + 0.5 + 3),
    (30, 1000, 10.0, 1, 30 + 1 + 10),             # 41 s fit in the minute
    (50, 1000, 10.0, 1, 60 - 1.0 - PUBLISH_SECONDS_PER_NODE),  # bounded: roundTimeoutMinute after planning
    (120, 1000, 10.0, 1, 60 - 1.0 - PUBLISH_SECONDS_PER_NODE),
])
def test_deadline_is_budget_plus_grace_bounded_by_round_timeout_minute(
        duration: int, timeout_ms: int, grace: float, round_timeout_minute: int | None,
        deadline_after_start: float) -> None:
    schedule = {"roundTimeoutMinute": round_timeout_minute} if round_timeout_minute else {}
    spec = netreach(request={"qps": 10, "durationInSecond": duration, "perRequestTimeoutInMS": timeout_ms},
                    schedule=schedule)
    settings = Settings(start_lead_seconds=1.0, round_grace_seconds=grace)
    planned = plan(spec, inventory(["node-1"]), NOW, settings, job="j", number=1)
    assert planned.state.deadline - planned.state.start_at == pytest.approx(deadline_after_start)
    assert all(a.deadline == planned.state.deadline for a in planned.assignments)


def test_serial_nodes_start_one_budget_apart_and_the_deadline_covers_them_all() -> None:
    spec = diskio(serial=True)
    planned = plan(spec, inventory(["node-1", "node-2", "node-3"]), NOW, SETTINGS, job="j", number=1)
    starts = [a.start_at for a in planned.assignments]
    budget = starts[1] - starts[0]
    assert budget > 5 and starts[2] - starts[1] == pytest.approx(budget)
    assert planned.state.deadline == pytest.approx(starts[0] + 3 * budget + SETTINGS.round_grace_seconds)
    together = plan(diskio(serial=False), inventory(["node-1", "node-2", "node-3"]), NOW, SETTINGS,
                    job="j", number=1)
    assert len({a.start_at for a in together.assignments}) == 1


def test_clock_offsets_travel_with_the_plan_for_task_expiry() -> None:
    planned = plan(netreach(), inventory(["node-1", "node-2"]), NOW, SETTINGS, job="j", number=1)
    assert planned.clock_offsets == {"node-1": 0.1, "node-2": 0.2}


def test_the_ring_rotation_picks_the_peers() -> None:
    names = [f"node-{i}" for i in range(1, 13)]
    spec = netreach(mesh={"fullMeshMaxNodes": 5, "peers": 3})
    first = plan(spec, inventory(names), NOW, SETTINGS, job="j", number=1, rotation=0)
    second = plan(spec, inventory(names), NOW, SETTINGS, job="j", number=2, rotation=1)
    dests = [{t.destination for t in a.targets} for a in first.assignments]
    assert all(len(d) == 3 for d in dests)
    assert dests[0] == {"node-2", "node-3", "node-4"}
    assert {t.destination for t in second.assignments[0].targets} == {"node-5", "node-6", "node-7"}


def test_a_round_that_cannot_be_planned_ends_at_once_with_the_reason() -> None:
    job = Job(job="j", kind="NetReach", name="t", spec={"kind": "NetReach"}, submitted=NOW)
    state = failed(job, "j", 2, NOW, "boom")
    assert (state.round_id, state.kind, state.name, state.error) == ("j-r2", "NetReach", "t", "boom")
    assert state.start_at == state.deadline == NOW
    gone = failed(None, "x", 1, NOW, "job x is unknown")
    assert (gone.kind, gone.spec) == ("?", {})


def test_skipped_nodes_and_inventory_warnings_reach_the_round_and_its_report() -> None:
    from datetime import UTC, datetime

    from kdoctor.reports.merge import build_report

    view = inventory(["node-1", "node-2"]).model_copy(update={
        "skipped": {"node-9": "cordoned (spec.unschedulable) and no worker runs on it"},
        "warnings": ["the inventory may be stale: the watch of pods in kdoctor has failed for 40 s"]})
    planned = plan(netreach(), view, NOW, SETTINGS, job="j", number=1)
    assert planned.state.skipped == view.skipped
    assert "node-9" not in planned.state.expected and "node-9" not in planned.state.missing
    assert planned.state.warnings[0].startswith("the inventory may be stale")
    report = build_report(planned.state, {}, datetime.fromtimestamp(NOW, UTC))
    assert report.skipped == view.skipped and "node-9" not in report.nodes
    assert "skipped, not inspected: node-9 (cordoned (spec.unschedulable) and no worker runs on it)" in report.warnings


def _all_paths(**target: Any) -> SpecModel:
    return netreach(target={"endpoint": True, "clusterIP": True, "nodePort": True, "loadBalancer": True,
                            "ingress": True, "ipv4": True, "ipv6": True, **target})


def test_node_port_is_probed_on_the_nodes_own_addresses_not_the_agents() -> None:
    nodes = [NodeInfo(name=f"node-{i}", ipv4=[f"10.244.{i}.5"], ipv6=[f"fd00:244:{i}::5"], agent_port=5710,
                      node_ips=[f"172.18.0.{i}", f"fc00::{i}"], last_heartbeat=NOW) for i in (1, 2)]
    view = InventoryView(expected=nodes, live=["node-1", "node-2"], services=Services(port=80, node_port=31234))
    planned = plan(_all_paths(), view, NOW, SETTINGS, job="j", number=1)
    urls = {t.name: t.url for t in planned.assignments[0].targets}
    assert urls["nodePort/ipv4/node-1"] == "http://172.18.0.1:31234/"
    assert urls["nodePort/ipv6/node-2"] == "http://[fc00::2]:31234/"
    assert urls["endpoint/ipv4/node-2"] == "http://10.244.2.5:5710/"  # the agent: its pod IP


def test_paths_without_addresses_are_warnings_naming_the_object() -> None:
    unknown = {"loadBalancer": "the agent Service kdoctor/kdoctor-agent is of type NodePort, not LoadBalancer",
               "ingress": "the agent Ingress kdoctor/kdoctor-agent does not exist"}
    view = inventory(["node-1", "node-2"]).model_copy(update={"services": Services(
        port=80, cluster_ip=["fd00:96::7"], node_port=31234, unknown=unknown)})
    planned = plan(_all_paths(ipv6=False), view, NOW, SETTINGS, job="j", number=1)
    assert planned.state.warnings == [
        "clusterIP requested but the clusterIP addresses (fd00:96::7) are not of the requested families: "
        "not probed",
        "loadBalancer requested but the agent Service kdoctor/kdoctor-agent is of type NodePort, not "
        "LoadBalancer: not probed",
        "ingress requested but the agent Ingress kdoctor/kdoctor-agent does not exist: not probed",
    ]


def test_load_balancer_host_names_and_ingress_hosts_are_probed_as_given() -> None:
    url = "http://172.18.0.240/kdoctoragent"
    view = inventory(["node-1", "node-2"]).model_copy(update={"services": Services(
        port=80, cluster_ip=["10.96.0.7", "fd00:96::7"], load_balancer=["a1b2.elb.example.com"],
        ingress=[url], ingress_hosts={url: "kdoctor.example.com"})})
    planned = plan(_all_paths(ipv6=False), view, NOW, SETTINGS, job="j", number=1)
    targets = {t.name: t for t in planned.assignments[0].targets}
    assert targets["loadBalancer/a1b2.elb.example.com"].url == "http://a1b2.elb.example.com:80/"
    assert targets["loadBalancer/a1b2.elb.example.com"].family is None
    assert targets["ingress/ipv4"].host_header == "kdoctor.example.com"
    assert "clusterIP/ipv6" not in targets and targets["clusterIP/ipv4"].url == "http://10.96.0.7:80/"


def _netdns(target_dns: dict[str, Any], **request: Any) -> SpecModel:
    return validate({"apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "d"},
                     "spec": {"request": request, "target": {"targetDns": target_dns}}})


@pytest.mark.parametrize(("target_dns", "request_", "cluster_dns", "planned_urls", "warning"), [
    ({"testIPv4": True, "testIPv6": True}, {}, {"kube-system/kube-dns": ["10.96.0.10", "fd00:96::a"]},
     [("udp://10.96.0.10:53", "A"), ("udp://[fd00:96::a]:53", "AAAA")], ""),
    ({"serviceName": "coredns", "serviceNamespace": "dns", "testIPv6": True, "testIPv4": False},
     {"protocol": "tcp-tls"}, {"dns/coredns": ["fd00:96::35"]}, [("tls://[fd00:96::35]:853", "AAAA")], ""),
    ({"testIPv6": True}, {}, {"kube-system/kube-dns": ["10.96.0.10"]}, [("udp://10.96.0.10:53", "A")],
     "Service kube-system/kube-dns has no IPv6 ClusterIP: testIPv6 not probed"),
    ({}, {}, {}, [("resolv.conf", "A")], ""),  # no Service known (registry, static): resolv.conf on the node
])
def test_target_dns_is_the_cluster_dns_services_cluster_ips(
        target_dns: dict[str, Any], request_: dict[str, Any], cluster_dns: dict[str, list[str]],
        planned_urls: list[tuple[str, str]], warning: str) -> None:
    view = inventory(["node-1"]).model_copy(update={"cluster_dns": cluster_dns})
    planned = plan(_netdns(target_dns, **request_), view, NOW, SETTINGS, job="j", number=1)
    assert [(t.url, t.extra["queryType"]) for t in planned.assignments[0].targets] == planned_urls
    assert [w for w in planned.state.warnings if "ClusterIP" in w] == ([f"targetDns: {warning}"] if warning else [])
