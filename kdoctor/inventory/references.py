"""The Kubernetes objects a spec names, checked when it is submitted and resolved when it is planned.

=================  ===================================  ======================================
kind               spec field                           read by
=================  ===================================  ======================================
ConfigMap          AppHttpHealthy ``bodyConfigmapName``  each node, when its task arrives
Secret             AppHttpHealthy ``tlsSecretName``      each node, when its task arrives
Service            Netdns ``targetDns.serviceName``      the coordinator, when it plans
=================  ===================================  ======================================

A node reads them as soon as its task arrives (:func:`prefetch`), before the round's common
start instant, so that the API's answer time never delays the pressure.

:func:`check` refuses a spec naming an object that does not exist, as kdoctor's admission webhook
does, so nothing is enqueued and no node ends in ``error`` for it later; a Secret must carry
``ca.crt`` and/or ``tls.crt`` with ``tls.key``, none empty. With an inventory source that has no
API objects (registry, static) the names are local paths and nothing is checked here. Secret
material read for the check stays in this process's memory: messages name the Secret and its
keys, never their values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kdoctor.errors import FieldProblem, SetupError, SpecError
from kdoctor.inventory.source import InventorySource
from kdoctor.specs.apphttp import AppHttpHealthy
from kdoctor.specs.common import DocumentBase
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.plan import InventoryView

__all__ = ["Prefetched", "Reference", "check", "prefetch", "references", "resolve"]

TLS_KEYS = ("ca.crt", "tls.crt", "tls.key")


@dataclass(frozen=True)
class Reference:
    """One API object a spec names."""

    kind: Literal["ConfigMap", "Secret", "Service"]
    namespace: str | None
    """``None``: kdoctor's own namespace."""
    name: str
    field: str
    purpose: str


def references(spec: DocumentBase) -> list[Reference]:
    """Every API object ``spec`` names."""
    found = []
    if isinstance(spec, AppHttpHealthy):
        target = spec.spec.target
        if target.body_configmap_name and not target.body_file:
            found.append(Reference("ConfigMap", target.body_configmap_namespace, target.body_configmap_name,
                                   "spec.target.bodyConfigmapName", "the request body"))
        if target.tls_secret_name:
            found.append(Reference("Secret", target.tls_secret_namespace, target.tls_secret_name,
                                   "spec.target.tlsSecretName", "the TLS CA and client certificate"))
    if isinstance(spec, Netdns) and spec.spec.target.target_dns is not None:
        namespace, name = spec.spec.target.target_dns.service
        found.append(Reference("Service", namespace, name, "spec.target.targetDns",
                               "the cluster DNS addresses"))
    return found


def _refused(ref: Reference, why: str) -> SpecError:
    # One plain line (no field path of its own): the CLI prints it as is.
    return SpecError([FieldProblem("", f"{ref.field}: {why} (kdoctor reads {ref.purpose} from it)")])


def _secret_problem(data: dict[str, bytes]) -> str | None:
    present = {k for k in TLS_KEYS if k in data}
    if not present:
        return f"has none of the keys {', '.join(TLS_KEYS)}"
    empty = sorted(k for k in present if not data[k])
    if empty:
        return f"has an empty {', '.join(empty)}"
    if ("tls.crt" in present) != ("tls.key" in present):
        return "has tls.crt or tls.key without the other (a client certificate needs both)"
    return None


def check(source: InventorySource, spec: DocumentBase) -> None:
    """Raise :class:`SpecError` when ``spec`` names an object ``source`` says does not exist."""
    for ref in references(spec):
        try:
            if ref.kind == "ConfigMap":
                source.config_map(ref.namespace, ref.name)
            elif ref.kind == "Secret":
                data = source.secret(ref.namespace, ref.name)
                problem = _secret_problem(data) if data is not None else None
                if problem:
                    where = f"{ref.namespace}/" if ref.namespace else ""
                    raise _refused(ref, f"Secret {where}{ref.name} {problem}")
            else:
                source.cluster_dns(ref.namespace or "", ref.name)
        except LookupError as exc:
            raise _refused(ref, str(exc)) from None


def resolve(source: InventorySource, spec: DocumentBase, view: InventoryView) -> InventoryView:
    """``view`` with the ClusterIPs of the DNS Service ``spec`` names, when ``source`` knows them."""
    dns = dict(view.cluster_dns)
    for ref in references(spec):
        if ref.kind != "Service":
            continue
        try:
            addresses = source.cluster_dns(ref.namespace or "", ref.name)
        except LookupError as exc:
            raise SetupError(f"{ref.field}: {exc}") from None
        if addresses is not None:
            dns[f"{ref.namespace}/{ref.name}"] = addresses
    return view.model_copy(update={"cluster_dns": dns}) if dns != view.cluster_dns else view


@dataclass
class Prefetched:
    """The ConfigMaps and Secrets of one spec, read once from a source, answered from memory
    (an :class:`~kdoctor.probes.kinds.ApiObjects`); a failed read is raised when it is asked for."""

    source: InventorySource
    found: dict[tuple[str, str | None, str], object] = field(default_factory=dict)

    def _answer(self, kind: str, namespace: str | None, name: str) -> object:
        value = self.found.get((kind, namespace, name))
        if isinstance(value, Exception):
            raise value
        return value

    def config_map(self, namespace: str | None, name: str) -> dict[str, str] | None:
        if ("ConfigMap", namespace, name) not in self.found:
            return self.source.config_map(namespace, name)
        value = self._answer("ConfigMap", namespace, name)
        return value if isinstance(value, dict) else None

    def secret(self, namespace: str | None, name: str) -> dict[str, bytes] | None:
        if ("Secret", namespace, name) not in self.found:
            return self.source.secret(namespace, name)
        value = self._answer("Secret", namespace, name)
        return value if isinstance(value, dict) else None


def prefetch(source: InventorySource, spec: DocumentBase) -> Prefetched:
    """Read now every ConfigMap and Secret ``spec`` names (what cannot be read is kept as its
    error, for the probe to report with the field)."""
    fetched = Prefetched(source)
    for ref in references(spec):
        if ref.kind == "Service":
            continue
        key = (ref.kind, ref.namespace, ref.name)
        read = source.config_map if ref.kind == "ConfigMap" else source.secret
        try:
            fetched.found[key] = read(ref.namespace, ref.name)
        except (LookupError, SetupError) as exc:
            fetched.found[key] = exc
    return fetched
