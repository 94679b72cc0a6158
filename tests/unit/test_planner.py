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
