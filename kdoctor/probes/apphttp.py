"""AppHttpHealthy: every node presses one URL at ``request.qps`` for ``durationInSecond``.

The request (method, headers, body) is encoded once; HTTP/1.1 goes through the keep-alive
:class:`~kdoctor.probes.http1.Http1Pool`, HTTP/2 through :class:`~kdoctor.probes.http2.Http2Pool`.
Success is ``expect.statusCode`` (default: 2xx and 3xx). Local files named by the spec (body, TLS
material) are read on the node; a missing or unreadable one ends the node in ``error`` with the
field and the path in the reason.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from kdoctor.errors import SetupError
from kdoctor.probes.http1 import Http1Pool
from kdoctor.probes.http2 import Http2Pool
from kdoctor.probes.httpreq import HttpTarget, TlsFiles, tls_context
from kdoctor.probes.kinds import Kind, NodeContext, request_budget
from kdoctor.probes.measure import GeneratorMonitor, node_result
from kdoctor.probes.pressure import Driver, Pace, run_all
from kdoctor.specs.apphttp import AppHttpHealthy, AppHttpTarget
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, PlannedTarget, RoundContext
from kdoctor.specs.results import NodeResult


def plan(spec: AppHttpHealthy, source: NodeInfo, ctx: RoundContext) -> tuple[list[PlannedTarget], list[str]]:
    """Every node probes the one URL."""
    url = spec.spec.target.host
    return [PlannedTarget(name=url, kind="url", url=url)], []


def http_target(target: AppHttpTarget) -> HttpTarget:
    """The request to send, with the body read from its file when it comes from one."""
    body = target.body.encode() if target.body is not None else b""
    path = target.body_path()
    if path is not None:
        field = "bodyFile" if target.body_file else "bodyConfigmapName"
        try:
            body = Path(path).read_bytes()
        except OSError as exc:
            raise SetupError(f"spec.target.{field}: cannot read {path!r}: {exc.strerror or exc}") from None
    return HttpTarget(target.host, method=target.method, headers=target.headers, body=body)


def ssl_context(target: AppHttpTarget) -> ssl.SSLContext | None:
    """The TLS context for an https URL (``None`` for http); ALPN offers h2 when asked for."""
    if not target.host.startswith("https://"):
        return None
    ca, cert, key = target.tls_paths()
    files = TlsFiles(ca_file=ca, cert_file=cert, key_file=key,
                     insecure_skip_verify=target.tls_insecure_skip_verify)
    try:
        return tls_context(files, alpn=("h2",) if target.http2 else ("http/1.1",))
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(f"{n}={p}" for n, p in (("ca", ca), ("cert", cert), ("key", key)) if p)
        raise SetupError(f"spec.target TLS files ({named}) could not be loaded: {exc}") from None


def client(spec: AppHttpHealthy) -> Http1Pool | Http2Pool:
    """The connection pool for the spec's target."""
    target, request = spec.spec.target, spec.spec.request
    http = http_target(target)
    ctx = ssl_context(target)
    success = spec.spec.expect.success_predicate()
    if target.http2:
        return Http2Pool(http, timeout=request.timeout_seconds, max_streams=request.effective_concurrency(),
                         ssl_context=ctx, success=success)
    return Http1Pool(http, timeout=request.timeout_seconds, max_connections=request.effective_concurrency(),
                     ssl_context=ctx, success=success)


async def run(assignment: Assignment, spec: AppHttpHealthy, t0: float, monitor: GeneratorMonitor,
              node: NodeContext) -> NodeResult:
    """Press the URL from this node, starting at ``t0`` (a ``perf_counter`` instant)."""
    request = spec.spec.request
    paces: list[Pace] = []
    drivers: list[Driver] = []
    for index, _item in enumerate(assignment.targets):
        pool = client(spec)
        pace = Pace(qps=request.qps, duration=request.duration_in_second, timeout=request.timeout_seconds,
                    phase=index / max(len(assignment.targets), 1))
        driver = Driver(pool, pace)
        pool.driver = driver
        paces.append(pace)
        drivers.append(driver)
    all_stats = await run_all(drivers, t0)
    return node_result(assignment.node, list(zip(assignment.targets, all_stats, paces, strict=True)),
                       spec.spec.expect, monitor)


KIND: Kind[AppHttpHealthy] = Kind("AppHttpHealthy", plan, run, request_budget)
