"""Every series kdoctor exports: its name, type, labels, unit and meaning, in one table.

The README's metrics table lists these (a test keeps the two in step), and the exporter builds
its metric families from them, so a series cannot be exported without being documented.

Cardinality is linear in nodes and never per pair. Per task and node: at most 14 series for
NetReach (status ×5, success ratio and 3 latency quantiles as source and as destination, the
generator), 10 for AppHttpHealthy and Netdns (no destination), 6 + 1 + 2·P for DiskIO (P profile
runs, 7 by default: 21). Per task besides: 19 round series, 6 per target kind × family, at most
:data:`~kdoctor.signals.record.MAX_SUSPECTS` suspects. Once: 37 health series, and the
notification counters (per receiver and event). NetReach's pairs appear only merged, per source
and per destination node: a 1,000-node NetReach task is 14,098 series (measured by
tests/integration/test_signals_exporter.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["QUANTILES", "SERIES", "STATUSES", "Series"]

QUANTILES = (("0.5", "p50_ms"), ("0.9", "p90_ms"), ("0.99", "p99_ms"))
"""Latency quantiles exported, as label value and the record's field."""
STATUSES = ("passed", "failed", "missing", "timeout", "error")
SUSPECT_KINDS = ("node", "source", "destination", "pair", "service")
NODE_STATES = ("live", "unhealthy", "stale", "stopped")


@dataclass(frozen=True)
class Series:
    """One exported metric family."""

    name: str
    type: Literal["gauge", "counter", "histogram"]
    labels: tuple[str, ...]
    help: str


_TASK = ("kind", "task")
_NODE = (*_TASK, "node")

SERIES = (
    # The last round of each task.
    Series("kdoctor_round_passed", "gauge", _TASK, "Verdict of the task's last round: 1 passed, 0 failed."),
    Series("kdoctor_round_finished_timestamp_seconds", "gauge", _TASK,
           "When the task's last round was reported (seconds since the epoch, broker clock)."),
    Series("kdoctor_round_duration_seconds", "gauge", _TASK,
           "The last round's start instant to its report (s): pressure, drain and reporting."),
    Series("kdoctor_round_number", "gauge", _TASK, "The last round's number within its job."),
    Series("kdoctor_round_nodes", "gauge", (*_TASK, "status"),
           "Nodes of the last round per status (passed, failed, missing, timeout, error)."),
    Series("kdoctor_round_success_ratio", "gauge", _TASK,
           "Successful requests / requests over every node and target of the last round (absent without requests)."),
    Series("kdoctor_round_latency_seconds", "gauge", (*_TASK, "quantile"),
           "Latency quantiles (0.5, 0.9, 0.99) over every request of the last round, from merged histograms (s)."),
    Series("kdoctor_round_suspects", "gauge", (*_TASK, "suspect_kind"),
           "Suspects the blame analysis named in the last round, per kind (node, source, destination, pair, service)."),
    Series("kdoctor_task_interval_seconds", "gauge", _TASK,
           "How often the task's schedule fires (s); absent for a task without a schedule or after its last round."),
    # Per node of the last round.
    Series("kdoctor_node_status", "gauge", (*_NODE, "status"),
           "State set of each node's status in the last round: 1 for its status, 0 for the four others."),
    Series("kdoctor_node_success_ratio", "gauge", (*_NODE, "role"),
           "Successful / sent requests of a node as a source (everything it probed) and, NetReach, as a "
           "destination (every pair towards it)."),
    Series("kdoctor_node_latency_seconds", "gauge", (*_NODE, "role", "quantile"),
           "Latency quantiles (0.5, 0.9, 0.99) of a node as a source and, NetReach, as a destination (s)."),
    Series("kdoctor_node_generator_saturated", "gauge", _NODE,
           "1 when the node's load generator was saturated (its figures are not to be trusted), else 0."),
    Series("kdoctor_disk_fdatasync_p99_seconds", "gauge", _NODE,
           "DiskIO etcd profile: p99 of fdatasync after a 2,300-byte write (s); etcd wants under 10 ms."),
    Series("kdoctor_disk_throughput_mib_per_second", "gauge", (*_NODE, "profile"),
           "DiskIO: MiB/s of each profile (etcd, seqWrite, seqRead, randRead/qdN, randWrite/qdN)."),
    Series("kdoctor_disk_iops", "gauge", (*_NODE, "profile"), "DiskIO: I/O operations per second of each profile."),
    # Blame.
    Series("kdoctor_suspect", "gauge", (*_TASK, "suspect_kind", "node", "pair", "service"),
           "1 for each suspect of the last round: node, source and destination suspects name the node, a pair "
           "`pair` (source->destination), a service `service` (e.g. clusterIP/ipv4); the others are empty."),
    # Per target kind and family, merged over every node and pair.
    Series("kdoctor_target_success_ratio", "gauge", (*_TASK, "target_kind", "family"),
           "Successful / sent requests of every target of a kind (endpoint, clusterIP, nodePort, loadBalancer, "
           "ingress, url, dns) and family (ipv4, ipv6, any) in the last round."),
    Series("kdoctor_target_latency_seconds", "gauge", (*_TASK, "target_kind", "family", "quantile"),
           "Latency quantiles (0.5, 0.9, 0.99) of a target kind and family, from merged histograms (s)."),
    Series("kdoctor_targets", "gauge", (*_TASK, "target_kind", "family"), "Targets of a kind and family probed."),
    Series("kdoctor_targets_failed", "gauge", (*_TASK, "target_kind", "family"),
           "Targets of a kind and family that failed their expectation."),
    # kdoctor's own health: counters in Redis, kept by every coordinator.
    Series("kdoctor_rounds_planned_total", "counter", (), "Rounds the coordinators planned."),
    Series("kdoctor_reports_written_total", "counter", ("verdict",), "Reports the coordinators wrote, per verdict."),
    Series("kdoctor_rounds_deadline_total", "counter", (),
           "Rounds ended by their deadline: some node had no result (timeout) when the report was written."),
    Series("kdoctor_plan_seconds", "histogram", (),
           "Planning a round and publishing its probes (s): job, inventory, plan lock, planner, one pipeline."),
    Series("kdoctor_finalize_seconds", "histogram", (), "Writing a round's report (s): judging, merging, storing."),
    Series("kdoctor_nodes", "gauge", ("state",),
           "Registered nodes per state: live; unhealthy (beats but cannot work), stale (silent), stopped: "
           "everything but live is reported missing."),
    Series("kdoctor_coordinators", "gauge", (), "Coordinators whose heartbeat is recent."),
    Series("kdoctor_redis_up", "gauge", (), "1 when this scrape could read Redis, else 0 (only this series then)."),
    # The exporter's own.
    Series("kdoctor_notifications_total", "counter", ("receiver", "type", "event"),
           "Notifications delivered, per receiver, receiver type and event (failed, recovered, firing, resolved)."),
    Series("kdoctor_notification_failures_total", "counter", ("receiver", "type", "event"),
           "Notifications given up on after their retries (logged; the round is never affected)."),
)
