"""The connection to the Kubernetes API, and its errors in kdoctor's words.

Credentials: outside a cluster a kubeconfig (``KDOCTOR_KUBECONFIG``, else ``$KUBECONFIG``, else
``~/.kube/config``; ``--context``), inside a pod the mounted service account (host and port from
``KUBERNETES_SERVICE_HOST``/``PORT``, token and CA from
``KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR``). Everything is read from the settings, never from
the environment (the official client would read ``KUBECONFIG`` and the service variables
itself).

Requests go through the official client's ``ApiClient`` (its authentication, TLS, retries and
token refresh) and objects are read as JSON, never as the client's models: turning a 1,000-node
list into models costs seconds of CPU, and :mod:`.records` keeps a few fields only.

Every client exception becomes a kdoctor error here, with the API's own message and one line:

=========================================  ==========================================================
the client raises                          reaches the caller as
=========================================  ==========================================================
connection refused, DNS, timeout, reset    :class:`SetupError` "cannot reach the Kubernetes API at URL"
TLS failure (``ApiException`` status 0)    :class:`SetupError` naming the TLS problem
401                                        :class:`SetupError`: the credentials were refused
403                                        :class:`SetupError` with the API's message (the RBAC rule)
404 of one object                          ``None`` (the caller names what is missing)
410 Gone                                   :class:`Gone` (a watch's resourceVersion expired: re-list)
anything else                              :class:`SetupError` with the status and message
kubeconfig / service account problems      :class:`SetupError` saying which file or setting
=========================================  ==========================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import load_kube_config
from kubernetes.watch.watch import iter_resp_lines

from kdoctor.errors import SetupError
from kdoctor.inventory.kubernetes.detect import in_cluster
from kdoctor.settings import Settings

__all__ = ["Api", "Gone", "Resource", "open_api"]

Raw = dict[str, Any]
T = TypeVar("T")

# Lists and single reads: a connection is refused at once, a dead address gives up after this
# (s). Reads of a list of 1,000 Nodes take well under the read timeout on a healthy API server.
CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 60.0
# One retry of a failed connection: enough for a pooled connection the server closed while idle,
# short enough that `kdoctor run` says "cannot reach the API" within seconds. urllib3 logs each
# retry as a warning; kdoctor reports the outcome in one line of its own, so those are muted.
RETRIES = 1
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


class Gone(SetupError):
    """410 Gone: the resourceVersion a watch asked for has expired (list again)."""


class Resource(Enum):
    """The collections kdoctor reads: (API group, plural, namespaced)."""

    NODES = ("", "nodes", False)
    PODS = ("", "pods", True)
    SERVICES = ("", "services", True)
    INGRESSES = ("networking.k8s.io", "ingresses", True)
    CONFIGMAPS = ("", "configmaps", True)
    SECRETS = ("", "secrets", True)

    @property
    def plural(self) -> str:
        return self.value[1]

    @property
    def kind(self) -> str:
        """The kind as people write it (``ConfigMap``)."""
        return {"nodes": "Node", "pods": "Pod", "services": "Service", "ingresses": "Ingress",
                "configmaps": "ConfigMap", "secrets": "Secret"}[self.plural]


def _configuration(settings: Settings) -> tuple[Configuration, bool]:
    """The client configuration and whether it is the in-cluster one."""
    cfg = Configuration()
    explicit = bool(settings.kubeconfig or settings.kubernetes_context)
    try:
        if in_cluster(settings) and not explicit:
            directory = Path(settings.kubernetes_service_account_dir)
            loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt"),
                environ={"KUBERNETES_SERVICE_HOST": settings.kubernetes_service_host,
                         "KUBERNETES_SERVICE_PORT": settings.kubernetes_service_port},
            )
            loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
            inside = True
        else:
            load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig or "~/.kube/config",
                context=settings.kubernetes_context or None, client_configuration=cfg, persist_config=False)
            inside = False
    except ConfigException as exc:
        where = settings.kubeconfig or "~/.kube/config"
        raise SetupError(f"no usable Kubernetes credentials (kubeconfig {where}"
                         f"{', context ' + settings.kubernetes_context if settings.kubernetes_context else ''}"
                         f", or a pod's service account): {exc}") from None
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read the Kubernetes credentials: {exc}") from None
    cfg.retries = RETRIES
    return cfg, inside


def _namespace(settings: Settings) -> str:
    """kdoctor's namespace: the setting, else the service account's, else ``kdoctor``."""
    if settings.kubernetes_namespace:
        return settings.kubernetes_namespace
    try:
        found = (Path(settings.kubernetes_service_account_dir) / "namespace").read_text().strip()
    except OSError:
        found = ""
    return found or "kdoctor"


def _network_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection (``Connection refused``), found in
    the chain of causes urllib3 wraps it in; ``timed out`` when nothing refused it."""
    chain: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in chain):
            continue
        chain.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__]
    for item in chain:
        if isinstance(item, OSError) and item.strerror:
            return str(item.strerror)
    # urllib3's NewConnectionError is a ConnectTimeoutError: look for a real refusal first.
    if any(isinstance(item, urllib3.exceptions.TimeoutError | TimeoutError) for item in chain):
        return "timed out"
    text = str(exc)
    return text.rsplit(": ", 1)[-1][:200] if text else type(exc).__name__


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the Status the API answered with, else its reason phrase."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "").splitlines()[0] if exc.reason else ""


@dataclass(frozen=True)
class _Call:
    verb: str
    resource: Resource
    namespace: str | None
    name: str = ""

    def __str__(self) -> str:
        if self.name:
            return f"{self.verb} {self.resource.kind} {self.namespace}/{self.name}"
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.verb} {self.resource.plural}{where}"


class Api:
    """One API server: raw JSON lists, watches and reads, every error translated."""

    def __init__(self, settings: Settings) -> None:
        cfg, self.in_cluster = _configuration(settings)
        self.server = str(cfg.host)
        self.namespace = _namespace(settings)
        self.client = ApiClient(cfg)

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()  # type: ignore[no-untyped-call]

    # -- errors --------------------------------------------------------------------------------

    def error(self, exc: BaseException, call: _Call) -> SetupError:
        """``exc`` (from the client) as a kdoctor error about ``call``."""
        if isinstance(exc, ApiException):
            status, message = exc.status, _status_message(exc)
            if status == 0:
                return SetupError(f"cannot talk to the Kubernetes API at {self.server} (TLS): {message}")
            if status == 401:
                return SetupError(f"the Kubernetes API at {self.server} refused kdoctor's credentials "
                                  f"(401 Unauthorized) to {call}: check the kubeconfig or the token")
            if status == 403:
                return SetupError(f"the Kubernetes API at {self.server} forbids kdoctor to {call} (403 "
                                  f"Forbidden): {message}; grant it as deploy/base/rbac.yaml does")
            if status == 410:
                return Gone(f"{call}: 410 Gone: {message}")
            return SetupError(f"the Kubernetes API at {self.server} answered {status} to {call}: {message}")
        return SetupError(f"cannot reach the Kubernetes API at {self.server} to {call}: {_network_reason(exc)}")

    def _call(self, call: _Call, do: Callable[[], T]) -> T:
        try:
            return do()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self.error(exc, call) from exc
        except ValueError as exc:  # a 200 that is not the API's JSON (a proxy's page, say)
            raise SetupError(f"the Kubernetes API at {self.server} answered {call} with something that is "
                             f"not a Kubernetes object: {exc}") from exc

    # -- requests ------------------------------------------------------------------------------

    def _request(self, resource: Resource, namespace: str | None, name: str = "", *,
                 query: dict[str, str | None] | None = None, read_timeout: float = READ_TIMEOUT) -> Any:
        """GET a path of ``resource`` through the client (its auth, TLS, retries and token refresh);
        the raw urllib3 response, or :class:`ApiException` for a status that is not 2xx.

        The paths are built here rather than through ``CoreV1Api``: importing the generated API
        classes costs a second of CPU, paid again by every fresh process (a CLI check, a pool child)."""
        group, plural, _ = resource.value
        path = f"/apis/{group}/v1" if group else "/api/v1"
        if namespace is not None:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{plural}" + (f"/{quote(name, safe='')}" if name else "")
        serialized = self.client.param_serialize(
            "GET", path, query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = self.client.call_api(*serialized, _request_timeout=(CONNECT_TIMEOUT, read_timeout))
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException(http_resp=response)
        return response.response

    def list(self, resource: Resource, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "", resource_version: str | None = None) -> tuple[list[Raw], str]:
        """The items of a collection and the list's resourceVersion."""
        call = _Call("list", resource, namespace)

        def do() -> tuple[list[Raw], str]:
            response = self._request(resource, namespace, query={
                "labelSelector": label_selector or None, "fieldSelector": field_selector or None,
                "resourceVersion": resource_version})
            body = json.loads(response.data)
            return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

        return self._call(call, do)

    @contextmanager
    def watch(self, resource: Resource, namespace: str | None = None, *, label_selector: str = "",
              field_selector: str = "", resource_version: str, timeout: int) -> Iterator[Iterator[Raw]]:
        """The events of a watch from ``resource_version``, ending after ``timeout`` seconds (the
        server closes the stream); a connection silent for longer than that is given up."""
        call = _Call("watch", resource, namespace)
        response = self._call(call, lambda: self._request(resource, namespace, read_timeout=timeout + READ_TIMEOUT,
                                                          query={
            "labelSelector": label_selector or None, "fieldSelector": field_selector or None,
            "resourceVersion": resource_version, "timeoutSeconds": str(timeout), "allowWatchBookmarks": "true",
            "watch": "true"}))

        def events() -> Iterator[Raw]:
            try:
                for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                    if line.strip():
                        yield json.loads(line)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self.error(exc, call) from exc

        try:
            yield events()
        finally:
            response.close()
            response.release_conn()

    def get(self, resource: Resource, namespace: str, name: str) -> Raw | None:
        """One object, or ``None`` when it does not exist."""
        call = _Call("get", resource, namespace, name)

        def do() -> Raw | None:
            try:
                response = self._request(resource, namespace, name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            found: Raw = json.loads(response.data)
            return found

        return self._call(call, do)


def open_api(settings: Settings) -> Api:
    """The API server the settings point at (no request is made yet)."""
    return Api(settings)

