"""kdoctor's own task files run, and mean what they meant (issue 15): the upstream-style files in
tests/data/kdoctor, each through real workers (three nodes labelled as Kubernetes labels them),
a real dnsmasq, nginx and a TLS server."""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.dnsmasq import Dnsmasq
from kdoctor.local.nginx import Nginx
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from kdoctor.specs import Report, load_spec
from tests.conftest import DATA, FAST_ENV, _databases
from tests.integration.test_apphttp_probe import server_tls
from tests.integration.test_rounds import kdoctor
from tests.servers.certs import make_pki
from tests.servers.http1 import Http1Server

FILES = DATA / "kdoctor"
NODES = ["node-1", "node-2", "node-3"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    with Dnsmasq(log_queries=False) as dns, Nginx() as nginx, Http1Server(server_tls(pki)) as https:
        yield {"DNS_PORT": str(dns.port), "HTTP_URL": nginx.url, "HTTPS_URL": https.url}


@pytest.fixture(scope="module")
def broker(redis_server: RedisServer) -> str:
    url = redis_server.url(next(_databases))
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def client(broker: str) -> Iterator[Client]:
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": broker})
    with LocalCluster(settings) as cluster:
        cluster.start_coordinator()
        for node in NODES:  # labelled as the kubelet labels a Node
            cluster.start_worker(node, extra_env={"KDOCTOR_NODE_LABELS": f"kubernetes.io/hostname={node}"})
        cluster.wait_ready(NODES)
        with Client(settings=settings) as c:
            yield c


def spec_text(name: str, servers: dict[str, str]) -> str:
    return string.Template((FILES / name).read_text()).substitute(servers)


def run(client: Client, name: str, servers: dict[str, str], tmp_path: Path) -> Report:
    path = tmp_path / name
    path.write_text(spec_text(name, servers))
    return client.submit(path).wait(timeout=90)


def test_every_file_is_accepted(servers: dict[str, str], tmp_path: Path) -> None:
    for file in sorted(FILES.glob("*.yaml")):
        path = tmp_path / file.name
        path.write_text(spec_text(file.name, servers))
        load_spec(path)  # raises with the field named if one is refused


def test_netreach_with_kdoctor_fields_runs_with_the_webhook_defaults_and_warns(
        client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "netreach-kdoctor-fields.yaml", servers, tmp_path)
    assert report.verdict == "passed", report.reasons
    target = report.nodes["node-1"].targets[0]
    assert target.intended_qps == 10 and target.requests == 20  # 10 QPS for 2 s
    assert report.spec["spec"]["request"]["perRequestTimeoutInMS"] == 500
    warned = "\n".join(report.warnings)
    assert "spec.expect.statusCode is ignored by NetReach" in warned
    assert "spec.agentSpec is ignored (hostNetwork, kind, terminationGracePeriodMinutes)" in warned
    assert "spec.target.enableLatencyMetric is ignored" in warned


def test_netdns_dials_a_host_name_server(client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "netdns-hostname-server.yaml", servers, tmp_path)
    assert report.verdict == "passed", report.reasons
    for node in NODES:
        (target,) = report.nodes[node].targets
        assert target.dns is not None and target.dns.server == "127.0.0.1" and target.dns.query_type == "A"
        assert target.successes == 10
    assert any("spec.expect.statusCode is ignored by Netdns" in w for w in report.warnings)


def test_netdns_queries_aaaa_of_an_ipv6_server(client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "netdns-ipv6-server.yaml", servers, tmp_path)
    assert report.verdict == "passed", report.reasons
    (target,) = report.nodes["node-2"].targets
    assert target.dns is not None and target.dns.query_type == "AAAA" and target.family == 6


def test_netdns_source_agent_node_selector_picks_the_sources(
        client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "netdns-source-selector.yaml", servers, tmp_path)
    assert report.verdict == "passed", report.reasons
    assert len(report.nodes["node-1"].targets) == 1
    for node in ("node-2", "node-3"):
        assert report.nodes[node].targets == []
        assert report.nodes[node].reason.startswith("not selected by spec.sourceAgentNodeSelector")


def test_apphttp_without_request_and_with_an_unused_secret(
        client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "apphttp-defaults.yaml", servers, tmp_path)
    assert report.verdict == "passed", report.reasons
    (target,) = report.nodes["node-3"].targets
    assert target.intended_qps == 10 and target.requests == 20
    assert report.spec["spec"]["request"] == {"qps": 10, "durationInSecond": 2, "perRequestTimeoutInMS": 500,
                                              "concurrency": None}
    warned = "\n".join(report.warnings)
    assert "spec.target.tlsSecretName (https-client-cert) is not used: the host is http://" in warned
    assert "spec.target.tlsSecretNamespace is ignored by the registry inventory" in warned


def test_https_without_a_ca_says_what_to_set(client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "apphttp-https-without-ca.yaml", servers, tmp_path)
    assert report.verdict == "failed"
    (target,) = report.nodes["node-1"].targets
    assert target.errors == {"tls": 5}
    assert "verified against the system CAs (kdoctor skips verification)" in target.reason
    assert "tlsInsecureSkipVerify: true" in target.reason and "tlsCaFile" in target.reason


def test_a_missing_secret_directory_is_a_node_error(client: Client, servers: dict[str, str], tmp_path: Path) -> None:
    report = run(client, "apphttp-secret-missing.yaml", servers, tmp_path)
    assert report.verdict == "failed"
    for node in NODES:
        assert report.nodes[node].status == "error"
        assert "spec.target.tlsSecretName: directory '/nonexistent/kdoctor-secret' does not exist" in \
            report.nodes[node].reason


def test_round_number_zero_installs_nothing(client: Client, broker: str, servers: dict[str, str],
                                           tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.write_text(spec_text("schedule-round-number-zero.yaml", servers))
    added = kdoctor(broker, "schedule", "add", str(path))
    assert added.returncode == 0, added.stderr
    assert added.stdout == "" and "roundNumber is 0: no round runs" in added.stderr
    listed = kdoctor(broker, "schedule", "list")
    assert listed.returncode == 0 and listed.stdout == ""
    assert "no schedule is installed" in listed.stderr
