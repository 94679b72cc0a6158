"""Process settings: one ``KDOCTOR_*`` environment variable per field.

Settings configure a kdoctor *process* (worker, coordinator, client). They are kept apart from
inspection *specs*, which describe one inspection and travel through the queue. A process reads
its environment once, at its entry point (the CLI, or ``Client()`` without settings), and passes
the :class:`Settings` down as an argument from there; nothing below reads the environment. Every field is
documented with its unit and why its default was chosen; the README's settings table is generated
from these docstrings (``kdoctor settings``) and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["DISK_ENGINES", "Setting", "Settings"]

DISK_ENGINES = ("auto", "libaio", "psync")
"""``KDOCTOR_DISK_ENGINE``'s values (see :mod:`kdoctor.probes.diskio`)."""


def _field(env: str, default: Any, doc: str, unit: str = "", fallback: str = "") -> Any:
    # fallback: a variable other tools already use for the same thing (KUBECONFIG), read when
    # the KDOCTOR_* one is not set.
    return dataclasses.field(default=default, metadata={"env": env, "doc": doc, "unit": unit,
                                                        "fallback": fallback})


@dataclasses.dataclass(frozen=True)
class Setting:
    """Description of one setting, for help texts and the README."""

    name: str
    env: str
    default: Any
    unit: str
    doc: str


@dataclasses.dataclass(frozen=True)
class Settings:
    """All process settings. Build with :meth:`from_env`; override with :func:`dataclasses.replace`."""

    broker_url: str = _field(
        "KDOCTOR_BROKER_URL",
        "redis://127.0.0.1:6379/0",
        "Redis URL used as Celery broker and kdoctor's own store (registry, rounds, reports). "
        "`rediss://` enables TLS; a password goes in the URL (`redis://:secret@host:6379/0`); "
        "`sentinel://:secret@s1:26379/0;sentinel://s2:26379;...` follows a Sentinel group's master "
        "(`sentinels://` with TLS).",
    )
    redis_sentinel_master: str = _field(
        "KDOCTOR_REDIS_SENTINEL_MASTER",
        "kdoctor",
        "With a `sentinel://` (or `sentinels://`, TLS) broker URL: the name the sentinels monitor the "
        "master under (`sentinel monitor NAME ...`; the shipped overlay's is `kdoctor`).",
    )
    redis_ca_file: str = _field(
        "KDOCTOR_REDIS_CA_FILE", "", "CA bundle that verifies a `rediss://` server. Empty: system CAs."
    )
    redis_cert_file: str = _field(
        "KDOCTOR_REDIS_CERT_FILE", "", "Client certificate for mutual TLS with Redis. Empty: none."
    )
    redis_key_file: str = _field("KDOCTOR_REDIS_KEY_FILE", "", "Private key of `KDOCTOR_REDIS_CERT_FILE`.")
    node_name: str = _field(
        "KDOCTOR_NODE_NAME",
        "",
        "Name of the node a worker probes from. In Kubernetes, set it from `spec.nodeName` through "
        "the downward API. `kdoctor worker --node` overrides it.",
    )
    agent_port: int = _field(
        "KDOCTOR_AGENT_PORT",
        5710,
        "TCP port of the agent server other nodes probe. 0 picks a free port (several workers on one "
        "machine); the chosen port is published in the registry.",
    )
    agent_addresses: str = _field(
        "KDOCTOR_AGENT_ADDRESSES",
        "",
        "Comma-separated addresses the agent listens on and advertises (IPv4 and IPv6). Empty: every "
        "global address of the machine, or 127.0.0.1 and ::1 when there is none.",
    )
    node_labels: str = _field(
        "KDOCTOR_NODE_LABELS", "", "Comma-separated `key=value` labels advertised for this node."
    )
    node_addresses: str = _field(
        "KDOCTOR_NODE_ADDRESSES",
        "",
        "Comma-separated addresses of the node itself, where NodePorts listen (in Kubernetes: "
        "`status.hostIPs` through the downward API). Empty: the agent addresses. The `kubernetes` "
        "inventory uses the Node's InternalIPs instead.",
    )
    heartbeat_seconds: float = _field(
        "KDOCTOR_HEARTBEAT_SECONDS",
        5.0,
        "How often a worker refreshes its registry entry. 5 s keeps 1,000 nodes at 200 small writes/s.",
        "s",
    )
    node_timeout_seconds: float = _field(
        "KDOCTOR_NODE_TIMEOUT_SECONDS",
        15.0,
        "A node whose last heartbeat is older than this is not live: it is reported `missing` and "
        "nothing is published to its queue. Three missed heartbeats, so one slow write is tolerated.",
        "s",
    )
    node_forget_seconds: float = _field(
        "KDOCTOR_NODE_FORGET_SECONDS",
        86400.0,
        "A registry node silent for longer than this is no longer expected (a node removed from the "
        "cluster stops being reported `missing` after a day).",
        "s",
    )
    stopped_nodes_expected: bool = _field(
        "KDOCTOR_STOPPED_NODES_EXPECTED",
        False,
        "With the `registry` inventory: whether a node whose worker stopped cleanly (SIGTERM, the "
        "end of `kdoctor worker`) is still expected. No (the default): it is left out of rounds as "
        "`skipped` (named in the report, not failing it) until its worker is back or it is "
        "forgotten (`kdoctor nodes forget`), since a clean stop is someone's decision. Yes: it is "
        "reported `missing` and fails every round until then. A static or Kubernetes inventory "
        "decides by itself which nodes are expected.",
    )
    round_grace_seconds: float = _field(
        "KDOCTOR_ROUND_GRACE_SECONDS",
        10.0,
        "Added to duration + per-request timeout to give each round its deadline: time for a probe "
        "to be picked up, to drain and to report. Bounded by the spec's `roundTimeoutMinute`.",
        "s",
    )
    start_lead_seconds: float = _field(
        "KDOCTOR_START_LEAD_SECONDS",
        1.0,
        "Pressure starts this long after planning, plus the time planning and publishing to every "
        "node takes (measured by each coordinator), so that every node has received its task and "
        "all start at the same wall-clock instant.",
        "s",
    )
    stall_seconds: float = _field(
        "KDOCTOR_STALL_SECONDS",
        30.0,
        "A worker whose Celery consumer has not run for this long, or whose agent does not answer, "
        "stops reporting itself live (its node is `missing` with the reason); after twice as long "
        "it exits, so that its supervisor (the DaemonSet) starts a fresh one.",
        "s",
    )
    report_retention_days: float = _field(
        "KDOCTOR_REPORT_RETENTION_DAYS", 30.0, "Reports older than this are deleted from Redis.", "days"
    )
    report_retention_mb: float = _field(
        "KDOCTOR_REPORT_RETENTION_MB",
        512.0,
        "The stored reports together may take this much of Redis (compressed); past it the oldest are "
        "deleted first. Half of the shipped Redis's 1 GiB, so queues, the registry and a round in "
        "progress always have room (see the README's Redis sizing). 0: no size cap, only the age.",
        "MiB",
    )
    coordinator_timeout_seconds: float = _field(
        "KDOCTOR_COORDINATOR_TIMEOUT_SECONDS",
        20.0,
        "`submit` refuses to enqueue when no coordinator has sent a heartbeat for this long, "
        "instead of leaving a job queued that nobody plans.",
        "s",
    )
    data_dir: str = _field(
        "KDOCTOR_DATA_DIR",
        "/var/lib/kdoctor",
        "The only directory under which a worker may write (DiskIO test files); DiskIO's "
        "`target.directory` is relative to it. `kdoctor worker --data-dir` overrides it.",
    )
    disk_engine: str = _field(
        "KDOCTOR_DISK_ENGINE",
        "auto",
        "DiskIO's engine for randRead/randWrite above queue depth 1: `auto` (Linux native AIO on "
        "O_DIRECT files where the kernel allows it, else threads), `libaio` (the same, with a "
        "warning when it falls back), `psync` (one thread per request in flight, as before).",
    )
    inventory: str = _field(
        "KDOCTOR_INVENTORY",
        "",
        "Where expected nodes and targets come from: `kubernetes` (the Kubernetes API), `registry` "
        "(the live workers), or the path of a static inventory YAML. Empty: `kubernetes` inside a "
        "pod (`KUBERNETES_SERVICE_HOST` set and a service account token mounted), else `registry`.",
    )
    kubeconfig: str = _field(
        "KDOCTOR_KUBECONFIG",
        "",
        "Kubeconfig file(s) of the `kubernetes` inventory outside a cluster (colon-separated, as "
        "kubectl takes them). Empty: `$KUBECONFIG`, else `~/.kube/config`.",
        fallback="KUBECONFIG",
    )
    kubernetes_context: str = _field(
        "KDOCTOR_KUBERNETES_CONTEXT",
        "",
        "Kubeconfig context of the `kubernetes` inventory (`kdoctor --context`). Empty: the current one.",
    )
    kubernetes_namespace: str = _field(
        "KDOCTOR_KUBERNETES_NAMESPACE",
        "",
        "Namespace of kdoctor's own objects (agent pods, Service, Ingress) and of ConfigMaps and Secrets "
        "a spec names without a namespace. Empty: the service account's namespace, else `kdoctor`.",
    )
    kubernetes_agent_selector: str = _field(
        "KDOCTOR_KUBERNETES_AGENT_SELECTOR",
        "app.kubernetes.io/name=kdoctor-worker",
        "Label selector of the worker (agent) pods, as `deploy/base` labels them.",
    )
    kubernetes_agent_service: str = _field(
        "KDOCTOR_KUBERNETES_AGENT_SERVICE",
        "kdoctor-agent",
        "Name of the agent Service (ClusterIP, NodePort, LoadBalancer) and of the agent Ingress.",
    )
    kubernetes_node_selector: str = _field(
        "KDOCTOR_KUBERNETES_NODE_SELECTOR",
        "",
        "Label selector of the Nodes the worker DaemonSet runs on (its `nodeSelector`). Empty: every "
        "Node, as `deploy/base` tolerates every taint.",
    )
    kubernetes_service_account_dir: str = _field(
        "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR",
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "Where a pod's service account is mounted (`token`, `ca.crt`, `namespace`): the in-cluster "
        "credentials.",
    )
    kubernetes_service_host: str = _field(
        "KUBERNETES_SERVICE_HOST",
        "",
        "Set by Kubernetes in every pod: the API server's address for in-cluster access.",
    )
    kubernetes_service_port: str = _field(
        "KUBERNETES_SERVICE_PORT",
        "",
        "Set by Kubernetes in every pod: the API server's port for in-cluster access.",
    )
    resolv_conf: str = _field(
        "KDOCTOR_RESOLV_CONF",
        "/etc/resolv.conf",
        "The resolver file whose `nameserver` lines a Netdns `targetDns` queries on each node (in a "
        "pod with the ClusterFirst DNS policy: the cluster DNS Service).",
    )
    generator_processes: int = _field(
        "KDOCTOR_GENERATOR_PROCESSES",
        0,
        "At most this many processes press one node's AppHttpHealthy or Netdns schedule together "
        "(one event loop is one core): a round asking more than one process holds "
        "(`KDOCTOR_GENERATOR_LOOP_QPS`) is split over as many as its rate needs, each a slice of "
        "every target's schedule, their figures merged; the result says how many ran "
        "(`generatorProcesses`). 0: the CPUs the worker may run on, at most its cgroup's CPU "
        "quota rounded up (`limits.cpu`; the node's generator may use them all, as wrk's threads do). "
        "1: one process, whatever the rate.",
    )
    generator_loop_qps: float = _field(
        "KDOCTOR_GENERATOR_LOOP_QPS",
        0.0,
        "Requests per second one generator process is trusted to hold, which decides how many "
        "processes a round needs. 0: each kind's own figure, about half of what one process "
        "saturates at on a 2-vCPU VM: 40,000 for HTTP/1.1, 20,000 for HTTP/2, 70,000 UDP and "
        "30,000 TCP/TLS DNS queries.",
        "requests/s",
    )
    lab_dir: str = _field(
        "KDOCTOR_LAB_DIR",
        "/run/kdoctor-lab",
        "Where `kdoctor lab` keeps each lab's state, logs and inventory (one subdirectory per lab "
        "prefix). On tmpfs, so a reboot, which also removes the namespaces, forgets the lab.",
    )
    health_file: str = _field(
        "KDOCTOR_HEALTH_FILE",
        "",
        "A file every long-running role (worker, coordinator, beat) rewrites at each heartbeat with its "
        "own health; `kdoctor health FILE` reads it for Kubernetes liveness and readiness probes. Empty: "
        "not written (several processes on one machine would share it).",
    )
    metrics_port: int = _field(
        "KDOCTOR_METRICS_PORT",
        5711,
        "TCP port of `kdoctor exporter`'s `/metrics` (Prometheus text format). 0: no metrics (the "
        "exporter then only sends notifications). 5711 is kdoctor's metrics port, next to the agent's 5710.",
    )
    metrics_address: str = _field(
        "KDOCTOR_METRICS_ADDRESS",
        "127.0.0.1",
        "Address `/metrics` listens on. In a pod: `0.0.0.0` (or `::`), so Prometheus reaches it.",
    )
    metrics_token_file: str = _field(
        "KDOCTOR_METRICS_TOKEN_FILE",
        "",
        "File holding the bearer token a scrape must send (`Authorization: Bearer …`; Prometheus: "
        "`authorization.credentials_file`). The exporter refuses to serve `/metrics` without this or "
        "`KDOCTOR_METRICS_BASIC_AUTH_FILE`.",
    )
    metrics_basic_auth_file: str = _field(
        "KDOCTOR_METRICS_BASIC_AUTH_FILE",
        "",
        "File of `user:password` lines accepted by `/metrics` as HTTP basic auth (Prometheus: `basic_auth`).",
    )
    metrics_oneshot_seconds: float = _field(
        "KDOCTOR_METRICS_ONESHOT_SECONDS",
        3600.0,
        "How long the series of a task without an installed schedule (a `kdoctor run`, or a schedule's "
        "last round) stay exported after its report: time for an alert to fire and a dashboard to show "
        "it. A task whose schedule is removed (`kdoctor schedule rm`) disappears at once.",
        "s",
    )
    notify_file: str = _field(
        "KDOCTOR_NOTIFY_FILE",
        "",
        "YAML file of notification receivers (webhook, Slack, Alertmanager) `kdoctor exporter` tells "
        "about failed rounds and recoveries; it holds URLs and tokens (or names the variables or "
        "files that do), so mount it from a Secret. Empty: no notifications.",
    )
    log_level: str = _field("KDOCTOR_LOG_LEVEL", "WARNING", "Log level of kdoctor processes.")

    def __post_init__(self) -> None:
        if self.disk_engine not in DISK_ENGINES:
            raise ValueError(f"KDOCTOR_DISK_ENGINE={self.disk_engine!r}: use {', '.join(DISK_ENGINES)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from its ``KDOCTOR_*`` variable; keyword arguments win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"]) or (env.get(f.metadata["fallback"]) if f.metadata["fallback"] else None)
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.metadata["env"], raw, type(f.default))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def describe(cls) -> list[Setting]:
        """Every setting with its variable, default, unit and documentation."""
        return [
            Setting(f.name, f.metadata["env"], f.default, f.metadata["unit"], f.metadata["doc"])
            for f in dataclasses.fields(cls)
        ]

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, to hand them to a child process."""
        return {
            f.metadata["env"]: str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != ""
        }


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _convert(env: str, raw: str, kind: type) -> Any:
    if kind is bool:  # before int: bool is an int
        if raw.strip().lower() not in _BOOLS:
            raise ValueError(f"{env}={raw!r} is not a boolean: use true or false")
        return _BOOLS[raw.strip().lower()]
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not a valid {kind.__name__}") from None
    return raw
