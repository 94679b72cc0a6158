"""AppHttpHealthy with kdoctor's ``bodyConfigmapName`` and ``tlsSecretName`` read from the
Kubernetes API on the node (a fake API server serving recorded objects): the server receives
the ConfigMap's data as kdoctor sends it, the Secret's CA verifies it and its certificate is the
client's; a missing object or a wrong CA is the node's reason, naming the object, never the
material."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from kdoctor.inventory import references
from kdoctor.inventory.kubernetes.source import KubernetesSource
from kdoctor.probes import apphttp
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.settings import Settings
from kdoctor.specs import AppHttpHealthy, spec_json
from kdoctor.specs.plan import Assignment, InventoryView, RoundContext
from kdoctor.specs.results import NodeResult
from tests.fakekube.server import FakeKube
from tests.integration.test_apphttp_probe import server_tls, spec
from tests.servers.certs import Pki, make_pki
from tests.servers.http1 import Http1Server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_secret(pki: Pki, name: str, ca: Path) -> dict[str, str]:
    b64 = {k: base64.b64encode(p.read_bytes()).decode()
           for k, p in (("CA_CRT", ca), ("TLS_CRT", pki.client_cert), ("TLS_KEY", pki.client_key))}
    return {**b64, "NAME": name}


@pytest.fixture
def node(pki: Pki, tmp_path: Path) -> Iterator[NodeContext]:
    with FakeKube() as fake:
        fake.load("cluster")
        fake.load("tls-secret", substitutions=tls_secret(pki, "orders-tls", pki.ca))
        fake.load("tls-secret", substitutions=tls_secret(pki, "wrong-ca", pki.other_ca))
        settings = Settings.from_env({"KDOCTOR_KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
                                      "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path / "none")})
        objects = KubernetesSource(settings, None)  # type: ignore[arg-type]  # reads single objects only
        yield NodeContext(name="local", data_dir="/nonexistent", resolv_conf="/etc/resolv.conf", objects=objects)


def probe(doc: AppHttpHealthy, node: NodeContext) -> NodeResult:
    """Run the probe as a worker does: what the spec names read first, then the pressure."""
    assert node.objects is not None
    node = dataclasses.replace(node, objects=references.prefetch(node.objects, doc))  # type: ignore[arg-type]
    targets, _ = apphttp.plan(doc, None, RoundContext(InventoryView()))  # type: ignore[arg-type]
    now = time.time()
    assignment = Assignment(round_id="r", job="j", round=1, kind=doc.kind, name=doc.name, spec=spec_json(doc),
                            node="local", targets=targets, start_at=now, deadline=now + 60)

    async def main() -> NodeResult:
        monitor = GeneratorMonitor()
        monitor.start()
        return await apphttp.run(assignment, doc, time.perf_counter() + 0.05, monitor, node)

    return uvloop.run(main())


def test_the_configmap_body_is_sent_as_kdoctor_sends_it(node: NodeContext) -> None:
    with Http1Server() as server:
        assert isinstance(server, Http1Server)
        result = probe(spec(server.url, qps=10, method="POST", bodyConfigmapName="kdoctor-test-body",
                            bodyConfigmapNamespace="kdoctor-test-server"), node)
        received = list(server.requests)
    assert result.status == "passed", result.reason
    assert len(received) == 10 and {r.body for r in received} == {b'{"test1":"test1","test2":"test2"}'}


def test_go_json_of_a_configmap() -> None:
    sent = apphttp.configmap_body({"b": "<&>", "a": "é\u2028"})
    assert sent == '{"a":"é\\u2028","b":"\\u003c\\u0026\\u003e"}'.encode()  # as Go's json.Marshal


def test_the_secret_verifies_the_server_and_is_the_client_certificate(node: NodeContext, pki: Pki) -> None:
    with Http1Server(server_tls(pki, client_ca=pki.ca)) as server:
        good = probe(spec(server.url, qps=20, tlsSecretName="orders-tls", tlsSecretNamespace="kdoctor-test-server"),
                     node)
        wrong = probe(spec(server.url, qps=20, tlsSecretName="wrong-ca", tlsSecretNamespace="kdoctor-test-server"),
                      node)
    assert good.status == "passed", good.reason
    assert good.targets[0].successes == 20
    assert wrong.targets[0].errors == {"tls": 20}


def test_missing_objects_name_the_field_and_the_object(node: NodeContext, pki: Pki) -> None:
    with pytest.raises(Exception, match=r"spec\.target\.bodyConfigmapName: ConfigMap kdoctor/nope does not exist"):
        probe(spec("http://127.0.0.1:1/", method="POST", bodyConfigmapName="nope"), node)
    with pytest.raises(Exception) as caught:
        probe(spec("https://127.0.0.1:1/", tlsSecretName="kdoctor-test-tls", tlsSecretNamespace="kdoctor-test-server"),
              node)  # the recorded Secret holds placeholders, not PEM
    text = str(caught.value)
    assert "Secret kdoctor-test-server/kdoctor-test-tls" in text and "could not be loaded" in text
    assert "MIGH" not in text and "PRIVATE KEY" not in text  # the material is never in a reason
