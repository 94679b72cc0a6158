"""The kubernetes inventory against a fake API server speaking the wire protocol, serving
recorded objects (``tests/data/kubernetes``): each object shape → what the planner sees, the
list-then-watch cache (events, expiry and re-list), credentials (kubeconfig, contexts, in-cluster)
and every kind of API failure as one line."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kdoctor.errors import SetupError, SpecError
from kdoctor.inventory import references
from kdoctor.inventory.kubernetes import reflector as reflector_module
from kdoctor.inventory.kubernetes.api import Resource
from kdoctor.inventory.kubernetes.source import KubernetesSource
from kdoctor.inventory.kubernetes.view import CORDONED
from kdoctor.settings import Settings
from kdoctor.specs import load_spec
from kdoctor.specs.nodes import NodeInfo
from tests.fakekube.server import Call, FakeKube

NOW = 1_717_405_964.0  # 2024-06-03 09:12:44 UTC, the recorded objects' moment
AGENTS = "pods app.kubernetes.io/name=kdoctor-worker in namespace kdoctor"


class Registry:
    """The worker registry: which workers beat (stands in for Redis)."""

    def __init__(self, *names: str) -> None:
        self.beating = list(names)

    def workers(self) -> list[NodeInfo]:
        return [NodeInfo(name=n, ipv4=["127.0.0.9"], agent_port=5710, last_heartbeat=NOW) for n in self.beating]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server.load("cluster")


def settings_for(fake: FakeKube, tmp_path: Path, **env: str) -> Settings:
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig")
    return Settings.from_env({"KDOCTOR_INVENTORY": "kubernetes", "KDOCTOR_KUBECONFIG": str(kubeconfig),
                              "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path / "no-service-account"),
                              **env})


def source(fake: FakeKube, tmp_path: Path, *beating: str, cache: bool = False, **env: str) -> KubernetesSource:
    return KubernetesSource(settings_for(fake, tmp_path, **env), Registry(*beating), cache=cache)  # type: ignore[arg-type]


def test_a_dual_stack_cluster_gives_every_path_and_node_fact(fake: FakeKube, tmp_path: Path) -> None:
    view = source(fake, tmp_path, "node-1", "node-2", "node-3").snapshot(NOW)
    assert view.live == ["node-1", "node-2", "node-3"] and view.missing == {} and view.skipped == {}
    node = view.expected[0]
    assert (node.ipv4, node.ipv6) == (["10.244.1.5"], ["fd00:10:244:1::5"])  # the agent pod's podIPs
    assert node.node_ips == ["172.18.0.2", "fc00:f853:ccd:e793::2"]  # the Node's InternalIPs: NodePort
    assert node.labels["kubernetes.io/os"] == "linux" and node.labels["topology.kubernetes.io/zone"] == "zone-a"
    assert node.agent_port == 5710  # where the worker says its agent listens
    services = view.services
    assert services.cluster_ip == ["10.96.112.7", "fd00:10:96::7e1"] and services.port == 80
    assert services.node_port == 31710
    assert services.ingress == ["http://172.18.0.240/kdoctoragent", "http://[fc00:f853:ccd:e793::f0]/kdoctoragent"]
    assert services.load_balancer == []
    assert services.unknown == {
        "loadBalancer": "the agent Service kdoctor/kdoctor-agent is of type NodePort, not LoadBalancer"}
    assert view.source == f"kubernetes:{fake.url}"


@pytest.mark.parametrize(("recorded", "node", "reason"), [
    ("node-notready", "node-5",
     "node NotReady since 2024-06-03 08:47:12 UTC: NodeStatusUnknown: Kubelet stopped posting node status."),
    ("pod-image-pull", "node-6",
     'worker pod kdoctor-worker-k8j7h is Pending: container worker: ImagePullBackOff: Back-off pulling image '
     '"kdoctor:0.1.0"'),
    ("pod-unschedulable", "node-7",
     "worker pod kdoctor-worker-m3n4b is Pending, not scheduled: Unschedulable: 0/8 nodes are available: 1 "
     "Insufficient memory, 7 node(s) didn't match Pod's node affinity/selector."),
    ("pod-crashloop", "node-8",
     "worker pod kdoctor-worker-p0o9i: container worker is in CrashLoopBackOff, restarted 7 times, last Error, "
     "exit code 2: back-off 5m0s restarting failed container=worker pod=kdoctor-worker-p0o9i_kdoctor("),
    ("node-without-pod", "node-9", f"no kdoctor worker pod on this node ({AGENTS}): the DaemonSet has not "
     "scheduled one here"),
    ("pod-terminating", "node-10", "worker pod kdoctor-worker-t1e2r is terminating"),
])
def test_a_node_without_a_live_worker_is_missing_with_the_apis_reason(
        fake: FakeKube, tmp_path: Path, recorded: str, node: str, reason: str) -> None:
    fake.load(recorded)
    view = source(fake, tmp_path, "node-1", "node-2", "node-3").snapshot(NOW)
    assert view.live == ["node-1", "node-2", "node-3"]
    assert list(view.missing) == [node]
    assert view.missing[node].startswith(reason), view.missing[node]


def test_a_running_pod_whose_worker_is_silent_says_so(fake: FakeKube, tmp_path: Path) -> None:
    view = source(fake, tmp_path, "node-1").snapshot(NOW)
    assert view.missing["node-2"] == ("worker pod kdoctor-worker-9qz7m is Running and Ready, but its worker never "
                                      "registered in Redis (is it on another broker, or refused by it?)")


def test_a_worker_registered_under_another_name_is_named(fake: FakeKube, tmp_path: Path) -> None:
    src = source(fake, tmp_path, "node-1", "node-3")
    stray = NodeInfo(name="worker-b", hostname="kdoctor-worker-9qz7m", last_heartbeat=NOW)
    src.registry.workers = lambda: [*Registry("node-1", "node-3").workers(), stray]  # type: ignore[method-assign]
    view = src.snapshot(NOW)
    assert view.missing["node-2"] == ("worker pod kdoctor-worker-9qz7m registered its worker as 'worker-b', not as "
                                      "this Node's name: KDOCTOR_NODE_NAME must be the pod's spec.nodeName")
    assert "worker-b" not in [n.name for n in view.expected]


def test_a_cordoned_node_is_skipped_unless_its_worker_runs(fake: FakeKube, tmp_path: Path) -> None:
    fake.load("node-cordoned")
    view = source(fake, tmp_path, "node-1", "node-2", "node-3").snapshot(NOW)
    assert view.skipped == {"node-4": CORDONED} and "node-4" not in view.missing
    assert "node-4" not in [n.name for n in view.expected]
    probed = source(fake, tmp_path, "node-1", "node-2", "node-3", "node-4").snapshot(NOW)
    assert "node-4" in probed.live and probed.skipped == {}


def test_a_deleted_node_is_gone_and_a_worker_without_a_node_is_not_expected(fake: FakeKube, tmp_path: Path) -> None:
    src = source(fake, tmp_path, "node-1", "node-2", "node-3", "old-node")
    assert [n.name for n in src.snapshot(NOW).expected] == ["node-1", "node-2", "node-3"]
    fake.delete("Node", "node-3")
    assert [n.name for n in src.snapshot(NOW).expected] == ["node-1", "node-2"]


@pytest.mark.parametrize(("recorded", "load_balancer", "unknown"), [
    ("service-loadbalancer", ["172.18.255.200", "fc00:f853:ccd:e793::c8"], None),
    ("service-loadbalancer-hostname", ["a1b2c3d4e5f6-1234567890.eu-west-1.elb.amazonaws.com"], None),
    ("service-loadbalancer-pending", [],
     "the agent Service kdoctor/kdoctor-agent has no LoadBalancer address yet (status.loadBalancer is empty)"),
])
def test_load_balancer_addresses_come_from_the_services_status(
        fake: FakeKube, tmp_path: Path, recorded: str, load_balancer: list[str], unknown: str | None) -> None:
    fake.load(recorded)
    services = source(fake, tmp_path).snapshot(NOW).services
    assert services.load_balancer == load_balancer
    assert services.unknown.get("loadBalancer") == unknown
    assert services.node_port == 31710 if recorded != "service-loadbalancer-pending" else True


def test_an_ingress_rule_with_a_host_is_probed_on_its_address_with_that_host(fake: FakeKube, tmp_path: Path) -> None:
    fake.load("ingress-with-host")
    services = source(fake, tmp_path).snapshot(NOW).services
    assert services.ingress == ["http://172.18.0.240/kdoctoragent"]
    assert services.ingress_hosts == {"http://172.18.0.240/kdoctoragent": "kdoctor.example.com"}


def test_missing_agent_service_and_ingress_are_named(fake: FakeKube, tmp_path: Path) -> None:
    fake.delete("Service", "kdoctor-agent", "kdoctor")
    fake.delete("Ingress", "kdoctor-agent", "kdoctor")
    services = source(fake, tmp_path).snapshot(NOW).services
    assert services.cluster_ip == [] and services.node_port is None and services.ingress == []
    assert services.unknown == {
        "clusterIP": "the agent Service kdoctor/kdoctor-agent does not exist",
        "nodePort": "the agent Service kdoctor/kdoctor-agent does not exist",
        "loadBalancer": "the agent Service kdoctor/kdoctor-agent does not exist",
        "ingress": "the agent Ingress kdoctor/kdoctor-agent does not exist"}


def test_an_ipv6_only_cluster(tmp_path: Path) -> None:
    with FakeKube() as fake:
        fake.load("ipv6-only")
        src = source(fake, tmp_path, "v6-node-1", "v6-node-2")
        view = src.snapshot(NOW)
        assert [(n.ipv4, n.ipv6, n.node_ips) for n in view.expected] == [
            ([], ["fd00:10:244:1::5"], ["fd00:172:18::2"]), ([], ["fd00:10:244:2::5"], ["fd00:172:18::3"])]
        assert view.services.cluster_ip == ["fd00:10:96::7e1"]
        assert "ingress" in view.services.unknown
        assert src.cluster_dns("kube-system", "kube-dns") == ["fd00:10:96::a"]


def test_node_selector_and_agent_settings_are_sent_to_the_api(fake: FakeKube, tmp_path: Path) -> None:
    src = source(fake, tmp_path, KDOCTOR_KUBERNETES_NODE_SELECTOR="topology.kubernetes.io/zone=zone-a",
                 KDOCTOR_KUBERNETES_NAMESPACE="kdoctor")
    assert [n.name for n in src.snapshot(NOW).expected] == ["node-1", "node-2"]
    assert fake.calls == [Call("list", "", "nodes", None), Call("list", "", "pods", "kdoctor"),
                          Call("list", "", "services", "kdoctor"),
                          Call("list", "networking.k8s.io", "ingresses", "kdoctor")]


def test_the_cache_lists_once_and_follows_the_watch(fake: FakeKube, tmp_path: Path) -> None:
    src = source(fake, tmp_path, "node-1", "node-3", cache=True)
    assert len(src.snapshot(NOW).expected) == 3
    fake.wait_for(lambda: fake.watchers() == 4)
    fake.load("node-without-pod")  # a Node joins: an ADDED event, no new list
    fake.delete("Pod", "kdoctor-worker-9qz7m", "kdoctor")  # node-2's pod goes: a DELETED event
    fake.wait_for(lambda: "node-9" in src.snapshot(NOW).missing
                  and src.snapshot(NOW).missing["node-2"].startswith("no kdoctor worker pod on this node"))
    assert [c.verb for c in fake.calls].count("list") == 4  # one per collection, ever
    for _ in range(20):
        src.snapshot(NOW)
    assert len(fake.calls) == 8  # 4 lists + 4 watches: rounds cost no request
    src.close()


@pytest.mark.parametrize("gone_as_status", [False, True])
def test_an_expired_watch_lists_again(tmp_path: Path, gone_as_status: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reflector_module, "BACKOFF_SECONDS", (0.05, 0.05))
    with FakeKube(gone_as_status=gone_as_status) as fake:
        fake.load("cluster")
        src = source(fake, tmp_path, "node-1", "node-2", "node-3", cache=True)
        src.snapshot(NOW)
        fake.wait_for(lambda: fake.watchers() == 4)
        nodes = src._reflectors["nodes"]
        # The Node watch is cut off while a Node changes and etcd compacts its history: when it
        # comes back its resourceVersion is gone (410), and the only way on is a new list.
        fake.deny("watch", "nodes")
        fake.drop_watches()
        fake.wait_for(lambda: nodes.trouble(0) is not None)
        node = fake.get("Node", "node-3")
        node["spec"]["unschedulable"] = True
        fake.apply(node)
        fake.compact()
        fake.allow("watch", "nodes")
        fake.wait_for(lambda: nodes.lists == 2)
        assert {n.name: n.unschedulable for n in nodes.items()}["node-3"] is True
        assert [c for c in fake.calls if c.verb == "list"].count(Call("list", "", "nodes", None)) == 2
        fake.wait_for(lambda: nodes.trouble(0) is None)
        src.close()


def test_a_watch_that_fails_is_reported_as_trouble(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reflector_module, "BACKOFF_SECONDS", (0.05, 0.05))
    fake = FakeKube().start().load("cluster")
    src = source(fake, tmp_path, "node-1", cache=True)
    src.snapshot(NOW)
    fake.stop()  # the API server goes away; the cache keeps its last state
    nodes = src._reflectors["nodes"]
    fake.wait_for(lambda: nodes.trouble(0) is not None)
    assert "cannot reach the Kubernetes API" in str(nodes.trouble(0))
    assert [n.name for n in src.snapshot(NOW).expected] == ["node-1", "node-2", "node-3"]
    src.close()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_failures_are_one_line_each(fake: FakeKube, tmp_path: Path) -> None:
    fake.deny("list", "nodes")
    with pytest.raises(SetupError) as denied:
        source(fake, tmp_path).snapshot(NOW)
    assert str(denied.value) == (
        f"the Kubernetes API at {fake.url} forbids kdoctor to list nodes (403 Forbidden): nodes is forbidden: User "
        '"system:serviceaccount:kdoctor:kdoctor-coordinator" cannot list resource "nodes" in API group "" at the '
        "cluster scope; grant it as deploy/base/rbac.yaml does")
    port = _dead_port()
    (tmp_path / "dead").write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
users: [{{name: u, user: {{token: x}}}}]
current-context: c
""")
    dead = KubernetesSource(Settings.from_env({"KDOCTOR_KUBECONFIG": str(tmp_path / "dead")}), Registry())  # type: ignore[arg-type]
    with pytest.raises(SetupError) as unreachable:
        dead.snapshot(NOW)
    assert str(unreachable.value) == (f"cannot reach the Kubernetes API at http://127.0.0.1:{port} to list nodes: "
                                      "Connection refused")
    with pytest.raises(SetupError, match="no usable Kubernetes credentials"):
        KubernetesSource(Settings.from_env({"KDOCTOR_KUBECONFIG": str(tmp_path / "none")}), Registry()).snapshot(NOW)  # type: ignore[arg-type]


def test_a_wrong_token_is_refused_credentials(tmp_path: Path) -> None:
    with FakeKube(token="right") as fake:
        fake.load("cluster")
        fake.token = "wrong"
        settings = settings_for(fake, tmp_path)  # the kubeconfig carries the wrong token
        fake.token = "right"
        with pytest.raises(SetupError, match=r"refused kdoctor's credentials \(401 Unauthorized\) to list nodes"):
            KubernetesSource(settings, Registry()).snapshot(NOW)  # type: ignore[arg-type]


def test_the_kubeconfig_context_picks_the_cluster(tmp_path: Path) -> None:
    with FakeKube() as prod, FakeKube() as staging:
        prod.load("cluster")
        staging.load("ipv6-only")
        kubeconfig = prod.kubeconfig(tmp_path / "kc", context="prod", others={"staging": staging.url})
        for context, first in (("", "node-1"), ("staging", "v6-node-1")):
            settings = Settings.from_env({"KDOCTOR_KUBECONFIG": str(kubeconfig), "KDOCTOR_KUBERNETES_CONTEXT": context})
            assert KubernetesSource(settings, Registry()).snapshot(NOW).expected[0].name == first  # type: ignore[arg-type]


def test_in_a_pod_the_service_account_is_used(tmp_path: Path) -> None:
    from tests.servers.certs import make_pki

    pki = make_pki(tmp_path)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_bytes(pki.ca.read_bytes())
    (account / "namespace").write_text("kdoctor-system\n")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    with FakeKube(token="pod-token", ssl_context=context) as fake:
        fake.load("cluster")
        settings = Settings.from_env({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(fake.port),
                                      "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(account)})
        from kdoctor.inventory.source import kind_of

        assert kind_of(settings) == "kubernetes"  # nothing configured: inside a pod, the API
        src = KubernetesSource(settings, Registry())  # type: ignore[arg-type]
        view = src.snapshot(NOW)
        assert src.namespace == "kdoctor-system" and view.source == f"kubernetes:https://127.0.0.1:{fake.port}"
        assert Call("list", "", "pods", "kdoctor-system") in fake.calls


def test_single_objects_are_read_when_asked_and_missing_ones_named(fake: FakeKube, tmp_path: Path) -> None:
    src = source(fake, tmp_path)
    assert src.cluster_dns("kube-system", "kube-dns") == ["10.96.0.10", "fd00:10:96::a"]
    assert src.config_map("kdoctor-test-server", "kdoctor-test-body") == {"test1": "test1", "test2": "test2"}
    secret = src.secret("kdoctor-test-server", "kdoctor-test-tls")
    assert secret is not None and sorted(secret) == ["ca.crt", "tls.crt", "tls.key"]
    assert secret["tls.key"].startswith(b"-----BEGIN PRIVATE KEY-----")
    with pytest.raises(LookupError, match=r"^ConfigMap kdoctor/nope does not exist$"):
        src.config_map(None, "nope")  # no namespace: kdoctor's own
    assert fake.calls[-1] == Call("get", "", "configmaps", "kdoctor")


def _apphttp(**target: Any) -> Any:
    return load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "a"},
                      "spec": {"target": {"host": "https://10.0.0.9/", "method": "POST", **target}}})


def test_submit_refuses_references_that_do_not_exist(fake: FakeKube, tmp_path: Path) -> None:
    src = source(fake, tmp_path)
    ok = _apphttp(bodyConfigmapName="kdoctor-test-body", bodyConfigmapNamespace="kdoctor-test-server",
                  tlsSecretName="kdoctor-test-tls", tlsSecretNamespace="kdoctor-test-server")
    references.check(src, ok)
    with pytest.raises(SpecError) as missing:
        references.check(src, _apphttp(bodyConfigmapName="kdoctor-test-body"))
    assert str(missing.value) == ("spec.target.bodyConfigmapName: ConfigMap kdoctor/kdoctor-test-body does not exist "
                                  "(kdoctor reads the request body from it)")
    fake.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "half", "namespace": "kdoctor"},
                "data": {"tls.crt": base64.b64encode(b"x").decode()}})
    with pytest.raises(SpecError, match=r"Secret half has tls\.crt or tls\.key without the other"):
        references.check(src, _apphttp(tlsSecretName="half"))
    dns = load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "d"},
                     "spec": {"target": {"targetDns": {"serviceName": "coredns"}}}})
    with pytest.raises(SpecError, match=r"^spec\.target\.targetDns: Service kube-system/coredns does not exist"):
        references.check(src, dns)


def test_resources_name_their_kinds() -> None:
    assert [r.kind for r in Resource] == ["Node", "Pod", "Service", "Ingress", "ConfigMap", "Secret"]


def test_the_shipped_examples_plan_on_a_cluster_running_deploy_base(fake: FakeKube, tmp_path: Path) -> None:
    from kdoctor.planning.planner import plan

    examples = Path(__file__).parent.parent.parent / "examples"
    src = source(fake, tmp_path, "node-1", "node-2", "node-3")
    view = src.snapshot(NOW)
    reach = plan(load_spec(examples / "cluster-netreach.yaml"), view, NOW, Settings(), job="j", number=1)
    # kubernetes.io/os comes from the Node objects: every node is a source
    assert reach.state.published == ["node-1", "node-2", "node-3"] and not reach.state.error
    assert reach.state.warnings == ["loadBalancer requested but the agent Service kdoctor/kdoctor-agent is of "
                                    "type NodePort, not LoadBalancer: not probed"]
    kinds = {t.kind for t in reach.assignments[0].targets}
    assert kinds == {"endpoint", "clusterIP", "nodePort", "ingress"}
    dns_spec = load_spec(examples / "cluster-netdns.yaml")
    dns = plan(dns_spec, references.resolve(src, dns_spec, view), NOW, Settings(), job="j", number=2)
    assert [t.url for t in dns.assignments[0].targets] == ["udp://10.96.0.10:53", "udp://[fd00:10:96::a]:53"]
