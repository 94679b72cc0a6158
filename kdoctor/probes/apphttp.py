"""AppHttpHealthy: every node presses one URL at ``request.qps`` for ``durationInSecond``.

The request (method, headers, body) is encoded once; HTTP/1.1 goes through the keep-alive
:class:`~kdoctor.probes.http1.Http1Pool`, HTTP/2 through :class:`~kdoctor.probes.http2.Http2Pool`.
Success is ``expect.statusCode`` (default: 2xx and 3xx).

What the spec names is read on the node when the round starts. With a Kubernetes API at hand
(``NodeContext.objects``), ``bodyConfigmapName`` is a ConfigMap whose ``data`` is sent as a JSON
object, as kdoctor sends it, and ``tlsSecretName`` a Secret whose ``ca.crt`` verifies the server
and whose ``tls.crt``/``tls.key`` are the client certificate. The Secret's material stays in this
process's memory (the key reaches OpenSSL through an anonymous memory file, never the disk) and
in no message, result or log line. Without an API those names, and ``bodyFile``/``tls*File``,
are local files. Whatever cannot be read ends the node in ``error`` with the field and the name.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from kdoctor.errors import SetupError
from kdoctor.probes import spread
from kdoctor.probes.http1 import Http1Pool
from kdoctor.probes.http2 import Http2Pool
from kdoctor.probes.httpreq import HttpTarget, TlsFiles, tls_context
from kdoctor.probes.kinds import ApiObjects, Kind, NodeContext, request_budget
from kdoctor.probes.measure import GeneratorMonitor, node_result
from kdoctor.probes.pressure import Driver, Pace, run_all
from kdoctor.probes.spread import ALONE, Share
from kdoctor.specs.apphttp import AppHttpHealthy, AppHttpTarget
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, PlannedTarget, RoundContext
from kdoctor.specs.results import NodeResult

T = TypeVar("T")

# Requests per second one process (one uvloop event loop) is trusted to hold: about half of what
# one saturates at on a 2-vCPU VM against nginx (HTTP/1.1 ~90 k, HTTP/2 ~40 k req/s), so a single
# process is never pressed to 100 % CPU; above it the node's generator spreads over processes
# (kdoctor.probes.spread). KDOCTOR_GENERATOR_LOOP_QPS overrides both.
HTTP1_LOOP_QPS = 40_000.0
HTTP2_LOOP_QPS = 20_000.0


def plan(spec: AppHttpHealthy, source: NodeInfo, ctx: RoundContext) -> tuple[list[PlannedTarget], list[str]]:
    """Every node probes the one URL."""
    url = spec.spec.target.host
    return [PlannedTarget(name=url, kind="url", url=url)], []


def configmap_body(data: dict[str, str]) -> bytes:
    """A ConfigMap's ``data`` as kdoctor sends it: Go's ``json.Marshal`` of the map (keys sorted,
    no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def _read(what: str, field: str, read: Callable[[], T]) -> T:
    """Call ``read()``, turning a missing object or an API failure into the node's reason."""
    try:
        return read()
    except LookupError as exc:
        raise SetupError(f"spec.target.{field}: {exc}") from None
    except SetupError as exc:
        raise SetupError(f"spec.target.{field}: cannot read {what}: {exc}") from None


def http_target(target: AppHttpTarget, objects: ApiObjects | None = None) -> HttpTarget:
    """The request to send, with the body read from its ConfigMap or file when it comes from one."""
    body = target.body.encode() if target.body is not None else b""
    name = target.body_configmap_name
    data = None
    if objects is not None and name and not target.body_file:
        ns = target.body_configmap_namespace
        data = _read(f"ConfigMap {name}", "bodyConfigmapName", lambda: objects.config_map(ns, name))
    if data is not None:
        body = configmap_body(data)
    elif (path := target.body_path()) is not None:
        field = "bodyFile" if target.body_file else "bodyConfigmapName"
        try:
            body = Path(path).read_bytes()
        except OSError as exc:
            raise SetupError(f"spec.target.{field}: cannot read {path!r}: {exc.strerror or exc}") from None
    return HttpTarget(target.host, method=target.method, headers=target.headers, body=body)


def _secret(target: AppHttpTarget, objects: ApiObjects | None) -> dict[str, bytes] | None:
    name = target.tls_secret_name
    if objects is None or not name:
        return None
    ns = target.tls_secret_namespace
    return _read(f"Secret {name}", "tlsSecretName", lambda: objects.secret(ns, name))


@contextmanager
def _memory_files(*contents: bytes | None) -> Iterator[list[str | None]]:
    """Paths that read as ``contents`` (anonymous memory files: OpenSSL loads a certificate
    chain only from a path, and the key must not touch the disk)."""
    fds: list[int] = []
    paths: list[str | None] = []
    try:
        for content in contents:
            if content is None:
                paths.append(None)
                continue
            fd = os.memfd_create("kdoctor-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            paths.append(f"/proc/self/fd/{fd}")
        yield paths
    finally:
        for fd in fds:
            os.close(fd)


def _secret_context(target: AppHttpTarget, secret: dict[str, bytes]) -> ssl.SSLContext:
    """The TLS context from a Secret's keys (explicit ``tls*File`` fields still win)."""
    namespace = f"{target.tls_secret_namespace}/" if target.tls_secret_namespace else ""
    named = f"Secret {namespace}{target.tls_secret_name}"
    ca = secret.get("ca.crt")
    try:
        if target.tls_ca_file:
            ctx = ssl.create_default_context(cafile=target.tls_ca_file)
        elif ca:
            ctx = ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
        else:
            ctx = ssl.create_default_context()
        if target.tls_insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if target.tls_cert_file:
            ctx.load_cert_chain(target.tls_cert_file, target.tls_key_file)
        elif secret.get("tls.crt") and secret.get("tls.key"):
            with _memory_files(secret["tls.crt"], secret["tls.key"]) as (cert, key):
                assert cert is not None
                ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        # The reason names the Secret and the library's complaint, never the material.
        raise SetupError(f"spec.target.tlsSecretName: {named} (ca.crt, tls.crt, tls.key) could not be "
                         f"loaded: {type(exc).__name__}: {getattr(exc, 'reason', None) or 'bad PEM data'}") from None
    ctx.set_alpn_protocols(["h2"] if target.http2 else ["http/1.1"])
    return ctx


def ssl_context(target: AppHttpTarget, objects: ApiObjects | None = None) -> ssl.SSLContext | None:
    """The TLS context for an https URL (``None`` for http); ALPN offers h2 when asked for."""
    if not target.host.startswith("https://"):
        return None
    secret = _secret(target, objects)
    if secret is not None:
        return _secret_context(target, secret)
    if target.tls_secret_name and not os.path.isdir(target.tls_secret_name):
        # Without an API the Secret is a local directory: a missing one is this node's error, not
        # a silent "no CA" (which would fail every request with `tls` and say nothing).
        raise SetupError(f"spec.target.tlsSecretName: directory {target.tls_secret_name!r} does not exist on this "
                         "node (outside Kubernetes it names a local directory holding ca.crt, tls.crt, tls.key)")
    ca, cert, key = target.tls_paths()
    files = TlsFiles(ca_file=ca, cert_file=cert, key_file=key,
                     insecure_skip_verify=target.tls_insecure_skip_verify)
    try:
        return tls_context(files, alpn=("h2",) if target.http2 else ("http/1.1",))
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(f"{n}={p}" for n, p in (("ca", ca), ("cert", cert), ("key", key)) if p)
        raise SetupError(f"spec.target TLS files ({named}) could not be loaded: {exc}") from None


def unverified_hint(target: AppHttpTarget, objects: ApiObjects | None = None) -> str | None:
    """What to set when an https server is verified against the system CAs only (kdoctor skips
    verification there), for the reason of a target that failed with ``tls``; ``None`` when the
    spec gives a CA or skips verification."""
    if not target.host.startswith("https://") or target.tls_insecure_skip_verify or target.tls_ca_file:
        return None
    if target.tls_secret_name:
        secret = _secret(target, objects) if objects is not None else None
        has_ca = bool(secret.get("ca.crt")) if secret is not None else target.tls_paths()[0] is not None
        if has_ca:
            return None
    return ("no CA was given, so the server was verified against the system CAs (kdoctor skips "
            "verification): give the server's CA (tlsCaFile, or ca.crt in tlsSecretName) or set "
            "tlsInsecureSkipVerify: true")


def _explain_tls(result: NodeResult, hint: str | None) -> NodeResult:
    """``result`` with ``hint`` added to the reason of every target that failed with ``tls``."""
    if hint is None or not any(t.errors.get("tls") for t in result.targets):
        return result
    targets = [t.model_copy(update={"reason": f"{t.reason}; {hint}" if t.reason else hint})
               if t.errors.get("tls") else t for t in result.targets]
    reason = f"{result.reason}; {hint}" if result.reason else hint
    return result.model_copy(update={"targets": targets, "reason": reason})


def client(spec: AppHttpHealthy, objects: ApiObjects | None = None, share: Share = ALONE) -> Http1Pool | Http2Pool:
    """The connection pool for the spec's target (with several processes, this one's part of the
    in-flight bound)."""
    target, request = spec.spec.target, spec.spec.request
    http = http_target(target, objects)
    ctx = ssl_context(target, objects)
    success = spec.spec.expect.success_predicate()
    bound = share.part(request.effective_concurrency())
    if target.http2:
        return Http2Pool(http, timeout=request.timeout_seconds, max_streams=bound, ssl_context=ctx, success=success)
    return Http1Pool(http, timeout=request.timeout_seconds, max_connections=bound, ssl_context=ctx, success=success)


def processes(assignment: Assignment, spec: AppHttpHealthy, node: NodeContext) -> int:
    """How many processes press this node's URL: what its rate needs (:data:`HTTP1_LOOP_QPS`,
    :data:`HTTP2_LOOP_QPS` per process), at most ``node.generator_processes``."""
    per_loop = node.generator_loop_qps or (HTTP2_LOOP_QPS if spec.spec.target.http2 else HTTP1_LOOP_QPS)
    return spread.processes(spec.spec.request.qps * len(assignment.targets), per_loop, node.generator_processes)


async def run(assignment: Assignment, spec: AppHttpHealthy, t0: float, monitor: GeneratorMonitor,
              node: NodeContext) -> NodeResult:
    """Press the URL from this node, starting at ``t0`` (a ``perf_counter`` instant); with
    several processes, this one's slice of the schedule (``node.share``)."""
    request = spec.spec.request
    share = node.share or ALONE
    paces: list[Pace] = []
    drivers: list[Driver] = []
    for index, _item in enumerate(assignment.targets):
        pool = client(spec, node.objects, share)
        pace = Pace(qps=request.qps, duration=request.duration_in_second, timeout=request.timeout_seconds,
                    phase=index / max(len(assignment.targets), 1))
        driver = Driver(pool, share.pace(pace))
        pool.driver = driver
        paces.append(pace)
        drivers.append(driver)
    all_stats = await run_all(drivers, t0)
    await spread.gather(share, [(item.name, stats, driver.pace, None) for item, stats, driver
                                in zip(assignment.targets, all_stats, drivers, strict=True)], monitor)
    result = node_result(assignment.node, list(zip(assignment.targets, all_stats, paces, strict=True)),
                         spec.spec.expect, monitor)
    return _explain_tls(result, unverified_hint(spec.spec.target, node.objects))


KIND: Kind[AppHttpHealthy] = Kind("AppHttpHealthy", plan, run, request_budget, spread=processes)
