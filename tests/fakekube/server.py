"""A fake Kubernetes API server speaking the real wire protocol, for the inventory's tests.

It serves recorded objects (``kubectl get -o json`` files under ``tests/data/kubernetes``) over
plain HTTP/1.1 or HTTPS, the way the API server does:

* ``GET`` of a collection: a ``<Kind>List`` with ``metadata.resourceVersion``, filtered by
  ``labelSelector`` and ``fieldSelector`` (items without ``kind``/``apiVersion``, as the API
  returns them);
* ``GET ...?watch=true``: a chunked stream of JSON events, one per line (``ADDED``,
  ``MODIFIED``, ``DELETED``, ``BOOKMARK`` with ``allowWatchBookmarks``), from the given
  ``resourceVersion`` (none or ``0``: synthetic ``ADDED`` events of the current state first),
  closed after ``timeoutSeconds``; a ``resourceVersion`` older than the last compaction gets an
  ``ERROR`` event carrying a 410 ``Expired`` Status (or, with ``gone_as_status``, an HTTP 410);
* ``GET`` of one object; a missing one is a 404 ``NotFound`` Status, a denied request a 403
  ``Forbidden`` Status worded as the API words it, a bad or missing token a 401.

Tests change the world through :meth:`FakeKube.apply` / :meth:`FakeKube.delete` (watchers see
the events), :meth:`FakeKube.compact` (old resource versions expire) and
:meth:`FakeKube.drop_watches` (streams end as when an API server restarts), and read
:attr:`FakeKube.calls`: every request as ``(verb, group, resource, namespace)``, which the RBAC
test compares with ``deploy/base/rbac.yaml``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fakekube.selectors import SelectorError, field_selector, label_selector

DATA = Path(__file__).parent.parent / "data" / "kubernetes"


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = {k.kind: k for k in (
    Kind("Node", "", "v1", "nodes", False),
    Kind("Pod", "", "v1", "pods", True),
    Kind("Service", "", "v1", "services", True),
    Kind("ConfigMap", "", "v1", "configmaps", True),
    Kind("Secret", "", "v1", "secrets", True),
    Kind("Ingress", "networking.k8s.io", "v1", "ingresses", True),
)}
BY_PLURAL = {(k.group, k.plural): k for k in KINDS.values()}


@dataclass(frozen=True)
class Call:
    """One request the server answered (or refused)."""

    verb: str
    """``get``, ``list`` or ``watch``, as RBAC names them."""
    group: str
    resource: str
    namespace: str | None
    """``None``: cluster-scoped, or across all namespaces."""
    user: str = ""
    """Who asked (``users`` maps bearer tokens to names), for RBAC comparisons."""


@dataclass
class _Event:
    rv: int
    type: str
    kind: str
    obj: dict[str, Any]


def status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A ``Status`` object as the API server returns it with an error."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def read_objects(path: Path, substitutions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The objects of a ``kubectl get -o json`` file (a ``List`` or one object); each
    ``@KEY@`` in the text is replaced by ``substitutions[KEY]`` first."""
    text = path.read_text()
    for key, value in (substitutions or {}).items():
        text = text.replace(f"@{key}@", value)
    data = json.loads(text)
    items: list[dict[str, Any]] = data["items"] if data.get("kind", "").endswith("List") else [data]
    return items


def write_kubeconfig(path: Path, servers: dict[str, str], *, current: str, token: str | None = None,
                     namespace: str | None = None, ca_file: Path | None = None) -> Path:
    """A kubeconfig with one context (and cluster) per ``servers`` entry, ``current`` chosen."""
    clusters = []
    for name, url in servers.items():
        cluster: dict[str, Any] = {"server": url}
        if ca_file is not None and url.startswith("https"):
            cluster["certificate-authority"] = str(ca_file)
        clusters.append({"name": name, "cluster": cluster})
    contexts = [{"name": name, "context": {"cluster": name, "user": "kdoctor",
                                           **({"namespace": namespace} if namespace else {})}}
                for name in servers]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": clusters, "contexts": contexts,
        "users": [{"name": "kdoctor", "user": {"token": token} if token else {}}], "current-context": current}))
    return path


class FakeKube:
    """The server; a context manager that starts and stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
                 users: dict[str, str] | None = None, ssl_context: ssl.SSLContext | None = None,
                 gone_as_status: bool = False) -> None:
        self.token = token
        self.users = users or {}
        self.gone_as_status = gone_as_status
        self.calls: list[Call] = []
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._events: list[_Event] = []
        self._rv = 1000
        self._floor = 0  # watches from a resourceVersion below this get 410 Gone
        self._generation = 0  # bumped by drop_watches: open streams end
        self._denied: set[tuple[str, str, str | None]] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._open_watches = 0
        self._connections: set[socket.socket] = set()
        self._cursors: dict[int, tuple[str, int]] = {}  # open watch → (kind, last event sent)
        handler = type("Handler", (_Handler,), {"fake": self})
        self._http = ThreadingHTTPServer((host, port), handler)
        self._http.daemon_threads = True
        if ssl_context is not None:
            self._http.socket = ssl_context.wrap_socket(self._http.socket, server_side=True)
        self.scheme = "https" if ssl_context is not None else "http"
        self.host = host
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKube:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every connection (as a dead API server would)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._http.shutdown()
        self._http.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- the world -------------------------------------------------------------------------

    def load(self, *names: str, substitutions: dict[str, str] | None = None) -> FakeKube:
        """Apply every object of the recorded files ``tests/data/kubernetes/<name>.json``."""
        for name in names:
            for obj in read_objects(DATA / f"{name}.json", substitutions):
                self.apply(obj)
        return self

    def apply(self, obj: dict[str, Any]) -> int:
        """Create or replace an object (``ADDED`` or ``MODIFIED`` for watchers); its new
        resourceVersion."""
        kind = KINDS[obj["kind"]]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (kind.kind, meta.get("namespace", "") if kind.namespaced else "", meta["name"])
        with self._cond:
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
            obj["apiVersion"] = kind.api_version
            event = "MODIFIED" if key in self._objects else "ADDED"
            self._objects[key] = obj
            self._events.append(_Event(self._rv, event, kind.kind, obj))
            self._cond.notify_all()
            return self._rv

    def delete(self, kind: str, name: str, namespace: str = "") -> int:
        """Delete an object (``DELETED`` for watchers); the deletion's resourceVersion."""
        with self._cond:
            obj = self._objects.pop((kind, namespace, name))
            self._rv += 1
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._events.append(_Event(self._rv, "DELETED", kind, gone))
            self._cond.notify_all()
            return self._rv

    def wait_delivered(self, kind: str, rv: int, timeout: float = 10.0) -> None:
        """Wait until every open watch of ``kind`` has been sent the events up to ``rv`` (so
        a watching client can know of a change before the test goes on)."""
        self.wait_for(lambda: all(c >= rv for k, c in list(self._cursors.values()) if k == kind), timeout)

    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
        """A copy of a stored object (to change and :meth:`apply` again)."""
        with self._cond:
            return copy.deepcopy(self._objects[(kind, namespace, name)])

    def compact(self) -> None:
        """Forget the history, as etcd compaction does: a watch from a resourceVersion older
        than the current one is answered 410 Gone."""
        with self._cond:
            self._floor = self._rv

    def drop_watches(self) -> None:
        """End every open watch stream (an API server restart, a load balancer timeout)."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def deny(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Answer 403 Forbidden to ``verb`` on ``resource`` (in ``namespace``, or anywhere)."""
        self._denied.add((verb, resource, namespace))

    def allow(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Undo :meth:`deny`."""
        self._denied.discard((verb, resource, namespace))

    def watchers(self) -> int:
        """Watch streams open now."""
        with self._cond:
            return self._open_watches

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (e.g. a watch is open again)."""
        limit = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > limit:
                raise TimeoutError("the fake API server did not get there in time")
            time.sleep(0.02)

    def kubeconfig(self, path: Path, *, namespace: str | None = None, context: str = "fake",
                   ca_file: Path | None = None, others: dict[str, str] | None = None,
                   token: str | None = None) -> Path:
        """Write a kubeconfig whose current context ``context`` points at this server (with
        ``token``, else the server's, if any); ``others`` adds contexts ``name → server URL``."""
        return write_kubeconfig(path, {context: self.url, **(others or {})}, current=context,
                                token=token or self.token, namespace=namespace, ca_file=ca_file)

    # -- serving ---------------------------------------------------------------------------

    def _matching(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        labels, fields = label_selector(query.get("labelSelector")), field_selector(query.get("fieldSelector"))
        for (k, ns, _), obj in sorted(self._objects.items()):
            if k == kind.kind and (namespace is None or ns == namespace) and labels(obj) and fields(obj):
                yield obj

    def _events_after(self, rv: int, kind: Kind, namespace: str | None,
                      query: dict[str, str]) -> Iterable[_Event]:
        labels, fields = label_selector(query.get("labelSelector")), field_selector(query.get("fieldSelector"))
        for event in self._events:
            if event.rv <= rv or event.kind != kind.kind:
                continue
            ns = event.obj["metadata"].get("namespace", "")
            if (namespace is None or ns == namespace) and labels(event.obj) and fields(event.obj):
                yield event


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeKube

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.fake._connections.add(self.connection)

    def finish(self) -> None:
        self.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _send_json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, path: str) -> tuple[Kind, str | None, str | None] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, rest = parts[1], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2 or (group, rest[0]) not in BY_PLURAL:
            return None
        kind = BY_PLURAL[(group, rest[0])]
        if kind.namespaced is False and namespace is not None:
            return None
        return kind, namespace, rest[1] if len(rest) == 2 else None

    def do_GET(self) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = self._route(url.path)
        if route is None:
            self._send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        kind, namespace, name = route
        watching = query.get("watch") in ("true", "1")
        verb = "get" if name else "watch" if watching else "list"
        given = self.headers.get("Authorization", "")
        token = given.split(" ", 1)[1] if given.lower().startswith("bearer ") else ""
        fake.calls.append(Call(verb, kind.group, kind.plural, namespace, fake.users.get(token, "")))
        if (fake.token is not None and token != fake.token) or (fake.users and token not in fake.users):
            self._send_json(401, status(401, "Unauthorized", "Unauthorized"))
            return
        if (verb, kind.plural, namespace) in fake._denied or (verb, kind.plural, None) in fake._denied:
            where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            subject = "get" if name else verb
            self._send_json(403, status(
                403, "Forbidden",
                f'{kind.plural}{f" {json.dumps(name)}" if name else ""} is forbidden: User '
                f'"system:serviceaccount:kdoctor:kdoctor-coordinator" cannot {subject} resource '
                f'"{kind.plural}" in API group "{kind.group}" {where}',
                kind=kind.plural, **({"name": name} if name else {})))
            return
        try:
            if name:
                self._get(kind, namespace or "", name)
            elif watching:
                self._watch(kind, namespace, query)
            else:
                self._list(kind, namespace, query)
        except SelectorError as exc:
            self._send_json(400, status(400, "BadRequest", str(exc)))

    def _get(self, kind: Kind, namespace: str, name: str) -> None:
        with self.fake._cond:
            obj = self.fake._objects.get((kind.kind, namespace if kind.namespaced else "", name))
        if obj is None:
            self._send_json(404, status(404, "NotFound", f'{kind.plural} "{name}" not found',
                                        name=name, kind=kind.plural))
            return
        self._send_json(200, obj)

    def _list(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> None:
        with self.fake._cond:
            items = []
            for obj in self.fake._matching(kind, namespace, query):
                item = copy.deepcopy(obj)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
            rv = self.fake._rv
        self._send_json(200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(rv)}, "items": items})

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> None:
        fake = self.fake
        since = query.get("resourceVersion", "")
        timeout = float(query.get("timeoutSeconds", "1800"))
        limit = time.monotonic() + timeout
        with fake._cond:
            if since not in ("", "0") and int(since) < fake._floor:
                expired = status(410, "Expired", f"too old resource version: {since} ({fake._floor})")
                if fake.gone_as_status:
                    self._send_json(410, expired)
                    return
                initial = [{"type": "ERROR", "object": expired}]
                cursor = None
            elif since in ("", "0"):  # "any" / "most recent": the current state first
                initial = [{"type": "ADDED", "object": obj} for obj in fake._matching(kind, namespace, query)]
                cursor = fake._rv
            else:
                initial, cursor = [], int(since)
            generation = fake._generation
            fake._open_watches += 1
            if cursor is not None:
                fake._cursors[id(self)] = (kind.kind, cursor)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in initial:
                self._chunk(json.dumps(event).encode() + b"\n")
            while cursor is not None:
                with fake._cond:
                    pending = list(fake._events_after(cursor, kind, namespace, query))
                    while (not pending and not fake._stopping and fake._generation == generation
                           and time.monotonic() < limit):
                        fake._cond.wait(min(0.5, max(0.0, limit - time.monotonic())))
                        pending = list(fake._events_after(cursor, kind, namespace, query))
                    ended = fake._stopping or fake._generation != generation or time.monotonic() >= limit
                for event in pending:
                    self._chunk(json.dumps({"type": event.type, "object": event.obj}).encode() + b"\n")
                    cursor = event.rv
                fake._cursors[id(self)] = (kind.kind, cursor)
                if ended and not pending:
                    break
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with fake._cond:
                fake._open_watches -= 1
                fake._cursors.pop(id(self), None)
