"""A lab whose inventory is a fake Kubernetes API serving the lab's own addresses: Nodes (their
InternalIPs), agent Pods (their podIPs), the agent Service (ClusterIP, NodePort, LoadBalancer:
the lab's kube-proxy NAT), the agent Ingress (the lab's nginx) and a kube-dns Service whose
ClusterIPs the nodes' NAT sends to a dnsmasq. The coordinator and every worker run with
``--inventory kubernetes``; the workers read ConfigMaps and Secrets from the same API. Runs as
root (see conftest); one lab for the module, its last test stops a worker."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from kdoctor.api import Client
from kdoctor.lab import lab, net, processes
from kdoctor.lab.config import LabConfig
from kdoctor.local.dnsmasq import DOMAIN, Dnsmasq
from kdoctor.local.ports import free_port
from kdoctor.settings import Settings
from kdoctor.specs.results import Report
from kdoctor.store import nodes as registry
from tests.conftest import FAST_ENV
from tests.fakekube.server import FakeKube, write_kubeconfig
from tests.lab.conftest import require_root
from tests.lab.test_lab import ALL, PER_NODE
from tests.servers.certs import Pki, make_pki
from tests.servers.http1 import Http1Server

pytestmark = pytest.mark.lab

BODY = b'{"test1":"test1","test2":"test2"}'  # the recorded ConfigMap's data, as kdoctor sends it


@dataclass
class KubeLab:
    config: LabConfig
    state: lab.LabState
    settings: Settings
    fake: FakeKube
    dns: Dnsmasq
    pki: Pki

    def submit(self, kind: str, name: str, spec: dict[str, Any]) -> Report:
        with Client(settings=self.settings) as client:
            return client.submit({"apiVersion": "kdoctor.io/v1beta1", "kind": kind, "metadata": {"name": name},
                                  "spec": spec}).wait(60)

    def netreach(self, name: str, target: dict[str, bool]) -> Report:
        return self.submit("NetReach", name, {"request": {"qps": 5, "durationInSecond": 1}, "target": target,
                                              "expect": {"successRate": 1}})


def _v6(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _dns_nat(config: LabConfig, port: int) -> tuple[str, str]:
    """kube-proxy for the kube-dns Service: its ClusterIPs, port 53, to the dnsmasq on the host."""
    cluster_ips = (f"10.214.{config.net}.53", _v6(f"fd6b:6c62:{config.net:x}::35"))
    for index in range(1, config.nodes + 1):
        for tool, service, backend in (("iptables", cluster_ips[0], f"{config.bridge_v4}:{port}"),
                                       ("ip6tables", cluster_ips[1], f"[{config.bridge_v6}]:{port}")):
            for proto in ("udp", "tcp"):
                net.sh(tool, "-t", "nat", "-A", "OUTPUT", "-d", service, "-p", proto, "--dport", "53",
                       "-j", "DNAT", "--to-destination", backend, ns=config.namespace(index))
    return cluster_ips


@pytest.fixture(scope="module")
def kube_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    require_root()
    work = tmp_path_factory.mktemp("kube-lab")
    config = LabConfig(prefix=f"kdk{os.getpid()}", net=(100 + os.getpid() + 37) % 150 + 100, nodes=4,
                       lab_dir=tempfile.mkdtemp(prefix="kdoctor-labtest-"))
    # The API server listens on the lab's bridge, which exists once the lab is up; the kubeconfig
    # must exist before (the coordinator checks its credentials when it starts).
    port = free_port()
    kubeconfig = write_kubeconfig(work / "kubeconfig", {"lab": f"http://{config.bridge_v4}:{port}"}, current="lab")
    # A worker's first round with the API loads the client and reads the ConfigMap and Secret before
    # the start instant: a lead of 2 s (1 s by default) leaves room for that on a loaded machine.
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_INVENTORY": "kubernetes", "KDOCTOR_KUBECONFIG": str(kubeconfig),
                                  "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(work / "no-service-account"),
                                  "KDOCTOR_START_LEAD_SECONDS": "2"})
    state = lab.up(config, settings, timeout=120)
    fake = dns = None
    try:
        fake = FakeKube(host=config.bridge_v4, port=port).start()
        fake.load("lab-cluster", substitutions={"NET": str(config.net), "NETX": f"{config.net:x}"})
        (work / "pki").mkdir()
        pki = make_pki(work / "pki", server_ips=(config.bridge_v4,))
        for name, ca in (("lab-tls", pki.ca), ("lab-wrong-ca", pki.other_ca)):
            fake.load("tls-secret", substitutions={"NAME": name, **_b64(ca, pki)})
        dns = Dnsmasq(also_listen=[config.bridge_v4, config.bridge_v6])
        _dns_nat(config, dns.port)
        yield KubeLab(config, state, dataclasses.replace(settings, broker_url=state.broker_url), fake, dns, pki)
    finally:
        if dns is not None:
            dns.stop()
        if fake is not None:
            fake.stop()
        lab.down(config)
        os.rmdir(config.lab_dir)


def _b64(ca: Path, pki: Pki) -> dict[str, str]:
    return {key: base64.b64encode(path.read_bytes()).decode()
            for key, path in (("CA_CRT", ca), ("TLS_CRT", pki.client_cert), ("TLS_KEY", pki.client_key))}


def test_netreach_probes_all_five_paths_from_the_api_on_ipv4_and_ipv6(kube_lab: KubeLab) -> None:
    report = kube_lab.netreach("kube-all", ALL)
    assert report.verdict == "passed", report.reasons
    assert set(report.nodes) == {"node-1", "node-2", "node-3", "node-4"}
    assert [w for w in report.warnings if "not probed" in w] == []  # the API knew every path
    config = kube_lab.config
    for result in report.nodes.values():
        seen = {(t.kind, t.family) for t in result.targets}
        assert seen == {(k, f) for k in ("endpoint", "clusterIP", "nodePort", "loadBalancer", "ingress")
                        for f in (4, 6)}
        assert all(t.requests > 0 and t.success_rate == 1.0 for t in result.targets)
    urls = {t.name: t.url for t in report.nodes["node-1"].targets}
    assert urls["nodePort/ipv4/node-2"] == f"http://{config.node_v4(2)}:30710/"  # the Node's InternalIP
    assert urls["clusterIP/ipv6"] == f"http://[{_v6(f'fd6b:6c62:{config.net:x}::a')}]:80/"
    assert urls["loadBalancer/ipv4"] == f"http://10.215.{config.net}.10:80/"
    assert urls["ingress/ipv6"] == f"http://[{config.ingress_v6}]/kdoctoragent"


def test_netdns_target_dns_reaches_the_dnsmasq_behind_the_kube_dns_service(kube_lab: KubeLab) -> None:
    before = kube_lab.dns.query_count()
    report = kube_lab.submit("Netdns", "kube-dns", {
        "request": {"qps": 20, "durationInSecond": 1, "domain": f"www.{DOMAIN}"},
        "target": {"targetDns": {"testIPv4": True, "testIPv6": True}},
        "expect": {"successRate": 1, "answerNonEmpty": True}})
    assert report.verdict == "passed", report.reasons
    v4, v6 = f"10.214.{kube_lab.config.net}.53", _v6(f"fd6b:6c62:{kube_lab.config.net:x}::35")
    for result in report.nodes.values():
        assert sorted(t.name for t in result.targets) == sorted([f"udp/A/{v4}:53", f"udp/AAAA/[{v6}]:53"])
    assert kube_lab.dns.wait_quiet() - before == report.summary.requests == 4 * 2 * 20


def test_apphttp_sends_the_configmaps_body_and_verifies_with_the_secrets_ca(kube_lab: KubeLab) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(kube_lab.pki.server_cert, kube_lab.pki.server_key)

    def spec(url: str, secret: str) -> dict[str, Any]:
        return {"request": {"qps": 10, "durationInSecond": 1},
                "target": {"host": url, "method": "POST", "bodyConfigmapName": "kdoctor-test-body",
                           "bodyConfigmapNamespace": "kdoctor-test-server", "tlsSecretName": secret,
                           "tlsSecretNamespace": "kdoctor-test-server"},
                "expect": {"successRate": 1}}

    with Http1Server(server_tls, host=kube_lab.config.bridge_v4) as server:
        assert isinstance(server, Http1Server)
        report = kube_lab.submit("AppHttpHealthy", "kube-body", spec(server.url, "lab-tls"))
        count, received = server.count, server.body_bytes
        wrong = kube_lab.submit("AppHttpHealthy", "kube-wrong-ca", spec(server.url, "lab-wrong-ca"))
    assert report.verdict == "passed", report.reasons
    assert count == 4 * 10 == report.summary.requests
    assert received == count * len(BODY)  # the server's own byte count: the ConfigMap's body, every time
    assert all(t.errors == {"tls": 10} for n in wrong.nodes.values() for t in n.targets)  # another CA: refused


def test_a_listed_node_without_a_running_worker_is_missing_with_the_apis_reason(kube_lab: KubeLab) -> None:
    fake, state = kube_lab.fake, kube_lab.state
    substitutions = {"NET": str(kube_lab.config.net), "NETX": f"{kube_lab.config.net:x}"}
    fake.load("lab-node-5", substitutions=substitutions)  # a new Node whose worker pod cannot pull its image
    processes.stop([state.pids["node-4"]])                # node-4's worker dies...
    pod = fake.get("Pod", "kdoctor-worker-lab4x", "kdoctor")
    pod["status"]["containerStatuses"][0].update({        # ...and the kubelet says so
        "ready": False, "restartCount": 3, "started": False,
        "state": {"waiting": {"reason": "CrashLoopBackOff",
                              "message": "back-off 40s restarting failed container=worker"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}})
    for condition in pod["status"]["conditions"]:
        if condition["type"] in ("Ready", "ContainersReady"):
            condition["status"] = "False"
    fake.wait_delivered("Pod", fake.apply(pod))
    client = redis.Redis.from_url(state.broker_url, decode_responses=True)
    limit = time.monotonic() + 15
    while {n.name: n for n in registry.nodes(client)}["node-4"].state(time.time(), 2.5) == "live":
        assert time.monotonic() < limit, "node-4 still beats"
        time.sleep(0.1)
    report = kube_lab.netreach("kube-missing", PER_NODE)
    assert report.nodes["node-4"].status == "missing"
    assert report.nodes["node-4"].reason == ("worker pod kdoctor-worker-lab4x: container worker is in "
                                             "CrashLoopBackOff, restarted 3 times, last Error, exit code 1: "
                                             "back-off 40s restarting failed container=worker")
    assert report.nodes["node-5"].status == "missing"
    assert report.nodes["node-5"].reason == ('worker pod kdoctor-worker-lab5x is Pending: container worker: '
                                             'ImagePullBackOff: Back-off pulling image "kdoctor:0.1.0"')
    for name in ("node-1", "node-2", "node-3"):
        assert report.nodes[name].status == "passed", report.nodes[name].reason
    assert report.verdict == "failed"
