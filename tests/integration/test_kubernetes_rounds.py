"""Rounds through real coordinator and worker processes whose inventory is a fake Kubernetes API
(recorded objects, every address loopback): expected nodes come from the API, a node whose
worker pod cannot start is ``missing`` with the pod's reason and leaves with its Node, a cordoned
node is skipped, Node labels select sources, and an AppHttpHealthy round sends a ConfigMap's body
read by each worker from the API."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.settings import Settings
from tests.conftest import FAST_ENV
from tests.fakekube.server import FakeKube
from tests.servers.http1 import Http1Server


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server.load("local-cluster", "local-node-image-pull", "local-node-cordoned")


def kubernetes_env(fake: FakeKube, tmp_path: Path) -> dict[str, str]:
    return {"KDOCTOR_INVENTORY": "kubernetes", "KDOCTOR_KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
            "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path / "no-service-account")}


def netreach(**target: Any) -> dict[str, Any]:
    return {"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": "k8s-reach"},
            "spec": {"request": {"qps": 5, "durationInSecond": 1},
                     "target": {"endpoint": True, "clusterIP": False, "nodePort": False, **target},
                     "expect": {"successRate": 1}}}


def test_expected_nodes_come_from_the_api(make_cluster: Callable[..., LocalCluster], broker_url: str,
                                          fake: FakeKube, tmp_path: Path) -> None:
    env = kubernetes_env(fake, tmp_path)
    make_cluster(3, env=env)
    settings = Settings.from_env({**FAST_ENV, **env, "KDOCTOR_BROKER_URL": broker_url})
    with Client(settings=settings) as client:
        report = client.submit(netreach(sourceNodeSelector={"matchLabels": {"zone": "zone-a"}})).wait(60)
        assert report.nodes["node-4"].status == "missing"
        assert report.nodes["node-4"].reason == (
            "worker pod kdoctor-worker-l7g8h is Pending: container worker: ErrImagePull: failed to pull and unpack "
            'image "docker.io/library/kdoctor:0.1.0": not found')
        assert report.skipped == {"node-5": "cordoned (spec.unschedulable) and no worker runs on it"}
        assert any(w.startswith("skipped, not inspected: node-5") for w in report.warnings)
        # zone is a Node label: only node-1 and node-2 probe, node-3 is a destination only
        assert {n for n, r in report.nodes.items() if r.targets} == {"node-1", "node-2"}
        assert all(report.nodes[n].status == "passed" for n in ("node-1", "node-2", "node-3"))
        assert report.verdict == "failed"
        # The inventory's nodes: node-5 is listed too, as skipped (it is not expected).
        view = client.inventory()
        assert {n.name for n in [*view.expected, *view.skipped_nodes]} == {"node-1", "node-2", "node-3", "node-4",
                                                                           "node-5"}
        assert view.skipped == {"node-5": "cordoned (spec.unschedulable) and no worker runs on it"}

        gone = fake.delete("Node", "node-4")  # the coordinator's watch sees it: gone at the next round
        fake.wait_delivered("Node", gone)
        again = client.submit(netreach()).wait(60)
    assert set(again.nodes) == {"node-1", "node-2", "node-3"}
    assert again.verdict == "passed", again.reasons
    lists = [c for c in fake.calls if c.verb == "list" and c.resource == "nodes"]
    # the coordinator listed Nodes once and watched since; the others are the client's one-shot lists
    assert len(lists) == 2


def test_each_worker_reads_the_body_configmap_from_the_api(make_cluster: Callable[..., LocalCluster],
                                                          broker_url: str, fake: FakeKube, tmp_path: Path) -> None:
    env = kubernetes_env(fake, tmp_path)
    fake.delete("Node", "node-4")
    make_cluster(3, env=env)
    settings = Settings.from_env({**FAST_ENV, **env, "KDOCTOR_BROKER_URL": broker_url})
    with Http1Server() as server, Client(settings=settings) as client:
        assert isinstance(server, Http1Server)
        report = client.submit({
            "apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "body"},
            "spec": {"request": {"qps": 5, "durationInSecond": 1},
                     "target": {"host": server.url, "method": "POST", "bodyConfigmapName": "kdoctor-test-body",
                                "bodyConfigmapNamespace": "kdoctor-test-server"},
                     "expect": {"successRate": 1}}}).wait(60)
        bodies = {r.body for r in server.requests}
        count = server.count
    assert report.verdict == "passed", report.reasons
    assert count == 15 and bodies == {b'{"test1":"test1","test2":"test2"}'}
    reads = [c for c in fake.calls if c.resource == "configmaps"]
    assert len(reads) == 1 + 3  # the submit's check, then one read per node


def test_secret_material_stays_out_of_redis_reports_and_logs(make_cluster: Callable[..., LocalCluster],
                                                            broker_url: str, fake: FakeKube, tmp_path: Path) -> None:
    import base64
    import ssl

    import redis

    from tests.servers.certs import make_pki

    pki = make_pki(tmp_path)
    material = {k: base64.b64encode(p.read_bytes()).decode()
                for k, p in (("CA_CRT", pki.ca), ("TLS_CRT", pki.client_cert), ("TLS_KEY", pki.client_key))}
    fake.load("tls-secret", substitutions={**material, "NAME": "orders-tls"})
    fake.delete("Node", "node-4")
    env = kubernetes_env(fake, tmp_path)
    cluster = make_cluster(3, env={**env, "KDOCTOR_LOG_LEVEL": "DEBUG"})  # the chattiest logs
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki.server_cert, pki.server_key)
    server_tls.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the Secret's tls.crt is the client's
    server_tls.load_verify_locations(pki.ca)
    settings = Settings.from_env({**FAST_ENV, **env, "KDOCTOR_BROKER_URL": broker_url, "KDOCTOR_LOG_LEVEL": "DEBUG"})
    with Http1Server(server_tls) as server, Client(settings=settings) as client:
        report = client.submit({
            "apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "mtls"},
            "spec": {"request": {"qps": 5, "durationInSecond": 1},
                     "target": {"host": server.url, "tlsSecretName": "orders-tls",
                                "tlsSecretNamespace": "kdoctor-test-server"},
                     "expect": {"successRate": 1}}}).wait(60)
    assert report.verdict == "passed", report.reasons
    key_pem = pki.client_key.read_text()
    secrets = [material["TLS_KEY"], material["TLS_CRT"], key_pem.splitlines()[1], "PRIVATE KEY"]
    # Every byte kdoctor keeps: Celery messages and results, round state, reports, the registry...
    r = redis.Redis.from_url(broker_url)
    stored = []
    for key in r.scan_iter():
        kind = r.type(key)
        if kind == b"string":
            stored.append(r.get(key) or b"")
        elif kind == b"hash":
            stored += [k + b"=" + v for k, v in r.hgetall(key).items()]
        elif kind == b"list":
            stored += r.lrange(key, 0, -1)
        elif kind in (b"set", b"zset"):
            stored += list(r.zrange(key, 0, -1) if kind == b"zset" else r.smembers(key))
    blob = b"\n".join(_readable(v) for v in stored).decode(errors="replace")
    assert "orders-tls" in blob  # the Secret's name is in the spec, as it should be
    assert not [s for s in secrets if s in blob]
    logs = "\n".join(cluster.log_tail(name, 100000) for name in cluster.processes)
    assert not [s for s in secrets if s in logs]
    assert not [s for s in secrets if s in report.model_dump_json()]


def _readable(value: bytes) -> bytes:
    """A stored value as its bytes say it: reports are zlib-compressed JSON behind ``z1:`` (base64),
    signals records plain zlib; a secret must not hide in either."""
    if value.startswith(b"z1:"):
        return zlib.decompress(base64.b64decode(value[3:]))
    try:
        return zlib.decompress(value)
    except zlib.error:
        return value
