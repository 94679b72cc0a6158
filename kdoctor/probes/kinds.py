"""The registry of probe kinds: ``kind`` → how it is planned (on the coordinator) and run (on a node).

Each kind lives in its own module and is named here by ``"module:attribute"``, imported only when
first used (kombu's transport aliases are the model): ``import kdoctor.api`` loads no engine, and
a coordinator loads only the kinds it plans. A kind is a :class:`Kind`, typed against its own
spec model:

* ``plan(spec, source, round) -> (targets, warnings)``: pure; what ``source`` probes this round;
* ``async run(assignment, spec, t0, monitor, node) -> NodeResult``: on the node, from ``t0``;
* ``budget(spec)``: seconds one node needs from the start instant to its last answer;
* ``serial(spec)``: whether nodes run one after another instead of all at once;
* ``idle(spec, node)``: why a live node sends nothing this round (not published to), or ``None``;
* ``spread(assignment, spec, node)``: how many processes press this node's schedule together
  (:mod:`kdoctor.probes.spread`; 1, the default: one event loop).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from kdoctor.errors import SetupError

if TYPE_CHECKING:
    from kdoctor.probes.measure import GeneratorMonitor
    from kdoctor.probes.spread import Share
    from kdoctor.specs.apphttp import AppHttpHealthy
    from kdoctor.specs.common import DocumentBase
    from kdoctor.specs.netdns import Netdns
    from kdoctor.specs.netreach import NetReach
    from kdoctor.specs.nodes import NodeInfo
    from kdoctor.specs.plan import Assignment, PlannedTarget, RoundContext
    from kdoctor.specs.results import NodeResult

__all__ = ["ApiObjects", "Kind", "NodeContext", "check", "get", "names", "request_budget"]

S = TypeVar("S", bound="DocumentBase")

_ALIASES = {
    "NetReach": "kdoctor.probes.netreach:KIND",
    "AppHttpHealthy": "kdoctor.probes.apphttp:KIND",
    "Netdns": "kdoctor.probes.netdns:KIND",
    "DiskIO": "kdoctor.probes.diskio:KIND",
}


class ApiObjects(Protocol):
    """Reads the Kubernetes objects a spec names, from the node (an inventory source is one).

    ``namespace`` ``None`` is kdoctor's own namespace. An answer of ``None`` means there is no API
    to ask (the name is a local path on the node); a missing object raises ``LookupError``, an
    API that cannot be asked a :class:`~kdoctor.errors.SetupError`.
    """

    def config_map(self, namespace: str | None, name: str) -> dict[str, str] | None:
        """The ``data`` of a ConfigMap."""

    def secret(self, namespace: str | None, name: str) -> dict[str, bytes] | None:
        """The decoded ``data`` of a Secret."""


@dataclass(frozen=True)
class NodeContext:
    """What a probe needs to know of the node it runs on (the worker's settings, passed down)."""

    name: str
    data_dir: str
    """The only directory under which the probe may write (DiskIO)."""
    resolv_conf: str
    """The resolver file whose nameservers a Netdns ``targetDns`` queries."""
    objects: ApiObjects | None = None
    """Where ConfigMaps and Secrets named by a spec are read (AppHttpHealthy's body and TLS);
    ``None``: nowhere, the names are local paths."""
    disk_engine: str = "auto"
    """DiskIO's engine for queue depths above 1 (``KDOCTOR_DISK_ENGINE``)."""
    generator_processes: int = 1
    """At most this many processes press one node's schedule (``KDOCTOR_GENERATOR_PROCESSES``;
    0: the CPUs the probe may use, :func:`~kdoctor.probes.spread.usable_cpus`)."""
    generator_loop_qps: float = 0.0
    """Requests per second one event loop is trusted to hold (``KDOCTOR_GENERATOR_LOOP_QPS``;
    0: each kind's own figure)."""
    share: Share | None = None
    """This process's slice of the node's schedules when several press it; ``None``: alone."""


def request_budget(spec: NetReach | AppHttpHealthy | Netdns) -> float:
    """The budget of a request kind: its pressure duration plus one request timeout to drain."""
    request = spec.spec.request
    return float(request.duration_in_second + request.timeout_seconds)


def _never(spec: object) -> bool:
    return False


def _everyone(spec: object, node: NodeInfo) -> str | None:
    return None


def _alone(assignment: object, spec: object, node: object) -> int:
    return 1


@dataclass(frozen=True)
class Kind(Generic[S]):
    """How one ``kind`` is planned and run."""

    name: str
    plan: Callable[[S, NodeInfo, RoundContext], tuple[list[PlannedTarget], list[str]]]
    run: Callable[[Assignment, S, float, GeneratorMonitor, NodeContext], Awaitable[NodeResult]]
    budget: Callable[[S], float]
    serial: Callable[[S], bool] = _never
    idle: Callable[[S, NodeInfo], str | None] = _everyone
    spread: Callable[[Assignment, S, NodeContext], int] = _alone


def names() -> list[str]:
    """The kinds this build runs."""
    return list(_ALIASES)


def check(kind: str) -> str:
    """``kind`` if this build runs it (nothing is imported), else :class:`SetupError`."""
    if kind not in _ALIASES:
        hint = difflib.get_close_matches(kind, list(_ALIASES), n=1)
        maybe = f" Did you mean {hint[0]}?" if hint else ""
        raise SetupError(
            f"this kdoctor build cannot run {kind!r} probes yet; it runs: {', '.join(_ALIASES)}.{maybe}")
    return kind


@cache
def get(kind: str) -> Kind[Any]:
    """The probe kind called ``kind``, its module imported on first use."""
    module, _, attribute = _ALIASES[check(kind)].partition(":")
    found: Kind[Any] = getattr(importlib.import_module(module), attribute)
    return found
