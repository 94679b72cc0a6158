"""kdoctor fields a spec may carry that this project accepts but does not act on.

kdoctor's CRDs and webhooks accept them, so a task file written for kdoctor loads unchanged; each
one set is named in the round's report warnings (with why, and what to use instead), never
silently dropped. The README's deviations table lists the same fields.

=================================================  =============================================
field                                              why it is not acted on
=================================================  =============================================
``spec.agentSpec.*``                               workers are one DaemonSet, deployed once
``spec.target.enableLatencyMetric``                percentiles are always measured
``spec.expect.statusCode`` (NetReach, Netdns)      kdoctor ignores it too for these kinds
``bodyConfigmapNamespace``, ``tlsSecretNamespace``  outside Kubernetes the names are local paths
``tlsSecretName`` on an ``http://`` host            no TLS to use it for (kdoctor only checks it)
=================================================  =============================================
"""

from __future__ import annotations

from kdoctor.specs.apphttp import AppHttpHealthy
from kdoctor.specs.common import DocumentBase
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.netreach import NetReach

__all__ = ["ignored"]


def ignored(spec: DocumentBase, inventory: str) -> list[str]:
    """Report warnings for the fields of ``spec`` that are accepted but not acted on, under the
    inventory source called ``inventory`` (``kubernetes``, ``registry``, ``static``)."""
    notes: list[str] = []
    agent = getattr(spec.spec, "agent_spec", None)  # type: ignore[attr-defined]
    if agent is not None:
        fields = ", ".join(sorted(agent.model_extra or {})) or "none set"
        notes.append(f"spec.agentSpec is ignored ({fields}): kdoctor's workers are one DaemonSet deployed "
                     "once (deploy/base), not an agent workload per task; set resources, affinity and "
                     "environment there")
    target = getattr(spec.spec, "target", None)  # type: ignore[attr-defined]
    if getattr(target, "enable_latency_metric", False):
        notes.append("spec.target.enableLatencyMetric is ignored: latency percentiles are always measured "
                      "(microsecond HDR histograms)")
    if isinstance(spec, NetReach | Netdns) and spec.spec.expect.status_code is not None:
        success = "a 2xx answer from the agent" if isinstance(spec, NetReach) else "spec.expect.replyCodes"
        notes.append(f"spec.expect.statusCode is ignored by {spec.kind}, as kdoctor ignores it: success is "
                     f"{success}")
    if isinstance(spec, AppHttpHealthy):
        notes += _apphttp(spec, inventory)
    return notes


def _apphttp(spec: AppHttpHealthy, inventory: str) -> list[str]:
    target = spec.spec.target
    notes = []
    if target.tls_secret_name and not target.host.startswith("https://"):
        notes.append(f"spec.target.tlsSecretName ({target.tls_secret_name}) is not used: the host is http:// "
                     "(kdoctor only checks that the Secret exists)")
    if inventory != "kubernetes":
        for field, name, value in (("bodyConfigmapNamespace", "bodyConfigmapName", target.body_configmap_namespace),
                                   ("tlsSecretNamespace", "tlsSecretName", target.tls_secret_namespace)):
            if value:
                notes.append(f"spec.target.{field} is ignored by the {inventory} inventory: there {name} names "
                             "a local path on each node (the kubernetes inventory reads it from the API)")
    return notes
