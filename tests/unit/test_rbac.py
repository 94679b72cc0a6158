"""deploy/base/rbac.yaml grants exactly what the code asks the API for.

The coordinator's and the workers' real code paths run against the fake API server, each with
its service account's token: the coordinator plans (list-then-watch of Nodes, agent pods, the
agent Service and Ingress), resolves a Netdns ``targetDns`` Service and checks a submitted spec's
ConfigMap and Secret; a worker reads them before probing. Every request recorded is compared
with the rules bound to that account, both ways: nothing used is missing, nothing granted is
unused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kdoctor.inventory import references
from kdoctor.inventory.kubernetes.source import KubernetesSource
from kdoctor.settings import Settings
from kdoctor.specs import load_spec
from tests.fakekube.server import FakeKube

BASE = Path(__file__).parent.parent.parent / "deploy" / "base"
NOW = 1_717_405_964.0

Grant = tuple[str, str, str, str]
"""(verb, API group, resource, namespace or ``*`` for cluster-wide)."""


class NoWorkers:
    def workers(self) -> list[Any]:
        return []


def granted() -> dict[str, set[Grant]]:
    """Per service account, what its bindings grant (a Role in the kustomization's namespace)."""
    namespace = yaml.safe_load((BASE / "kustomization.yaml").read_text())["namespace"]
    docs = [d for d in yaml.safe_load_all((BASE / "rbac.yaml").read_text()) if d]
    roles = {(d["kind"], d["metadata"]["name"]): d["rules"] for d in docs if d["kind"] in ("Role", "ClusterRole")}
    grants: dict[str, set[Grant]] = {}
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        ref = binding["roleRef"]
        scope = "*" if binding["kind"] == "ClusterRoleBinding" else namespace
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            for rule in roles[(ref["kind"], ref["name"])]:
                grants.setdefault(subject["name"], set()).update(
                    (verb, group, resource, scope)
                    for verb in rule["verbs"] for group in rule["apiGroups"] for resource in rule["resources"])
    return grants


def covers(grant: Grant, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    return grant[:3] == (verb, group, resource) and grant[3] in ("*", namespace)


def test_rbac_grants_exactly_what_the_coordinator_and_the_workers_use(tmp_path: Path) -> None:
    users = {"coordinator-token": "kdoctor-coordinator", "worker-token": "kdoctor-worker"}
    with FakeKube(users=users) as fake:
        fake.load("cluster")
        fake.apply({**fake.get("ConfigMap", "kdoctor-test-body", "kdoctor-test-server"),
                    "metadata": {"name": "kdoctor-test-body", "namespace": "kdoctor"}})
        fake.apply({**fake.get("Secret", "kdoctor-test-tls", "kdoctor-test-server"),
                    "metadata": {"name": "kdoctor-test-tls", "namespace": "kdoctor"}})

        def as_(token: str, name: str) -> KubernetesSource:
            kubeconfig = fake.kubeconfig(tmp_path / name, token=token)
            settings = Settings.from_env({"KDOCTOR_KUBECONFIG": str(kubeconfig),
                                          "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path / "none")})
            return KubernetesSource(settings, NoWorkers(), cache=True)  # type: ignore[arg-type]

        apphttp = load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "a"},
                             "spec": {"target": {"host": "https://10.0.0.9/", "method": "POST",
                                                 "bodyConfigmapName": "kdoctor-test-body",
                                                 "tlsSecretName": "kdoctor-test-tls"}}})
        netdns = load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "d"},
                            "spec": {"target": {"targetDns": {"testIPv4": True}}}})
        coordinator = as_("coordinator-token", "coordinator")
        view = coordinator.snapshot(NOW)                          # planning: lists, then watches
        references.resolve(coordinator, netdns, view)             # targetDns: the DNS Service
        references.check(coordinator, apphttp)                    # `kdoctor run` in the coordinator pod
        worker = as_("worker-token", "worker")
        prefetched = references.prefetch(worker, apphttp)         # a worker, before it probes
        assert all(not isinstance(v, Exception) for v in prefetched.found.values()), prefetched.found
        fake.wait_for(lambda: fake.watchers() == 4)
        coordinator.close()

    grants = granted()
    used: dict[str, set[tuple[str, str, str, str | None]]] = {}
    for call in fake.calls:
        used.setdefault(call.user, set()).add((call.verb, call.group, call.resource, call.namespace))
    assert set(used) == {"kdoctor-coordinator", "kdoctor-worker"}
    for account, calls in used.items():
        missing = [c for c in calls if not any(covers(g, *c) for g in grants.get(account, set()))]
        unused = [g for g in grants.get(account, set()) if not any(covers(g, *c) for c in calls)]
        assert (account, missing, unused) == (account, [], [])
    assert set(grants) == set(used)  # no account is granted anything it never asks for
