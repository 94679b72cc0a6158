"""What a user sees when the kubernetes inventory cannot be used, through the command line: an
unreachable API server, a 403 (RBAC missing), a ConfigMap or DNS Service that does not exist, no
credentials. One line each, exit 2, and nothing enqueued (a coordinator is beating, so only the
inventory can have refused)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kdoctor.store import keys
from kdoctor.store import nodes as registry
from tests.conftest import cli_env
from tests.fakekube.server import FakeKube

APPHTTP = {"apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "orders"},
           "spec": {"target": {"host": "http://10.0.0.9/", "method": "POST", "bodyConfigmapName": "kdoctor-test-body",
                               "bodyConfigmapNamespace": "kdoctor-test-server"}}}


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server.load("cluster")


def _kdoctor(broker_url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kdoctor", *args], env={**cli_env(broker_url), **env}, text=True,
                          capture_output=True, timeout=60)


def _one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def _nothing_enqueued(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url)
    assert client.llen(keys.COORDINATOR_QUEUE) == 0
    assert client.keys(keys.job("*")) == []


def _spec(tmp_path: Path, doc: dict[str, object]) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(doc))
    return str(path)


def _env(kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    return {"KDOCTOR_INVENTORY": "kubernetes", "KDOCTOR_KUBECONFIG": str(kubeconfig),
            "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path / "none")}


@pytest.fixture
def coordinator(broker_url: str) -> str:
    registry.coordinator_beat(redis.Redis.from_url(broker_url), "test", {"host": "test"})
    return broker_url


def test_a_missing_configmap_is_refused_at_submit(coordinator: str, fake: FakeKube, tmp_path: Path) -> None:
    env = _env(fake.kubeconfig(tmp_path / "kc"), tmp_path)
    spec = {**APPHTTP, "spec": {"target": {**APPHTTP["spec"]["target"], "bodyConfigmapName": "kdoctor-test-bdy"}}}  # type: ignore[index]
    line = _one_line_exit_2(_kdoctor(coordinator, env, "run", _spec(tmp_path, spec)))
    assert line == ("error: spec.target.bodyConfigmapName: ConfigMap kdoctor-test-server/kdoctor-test-bdy does not "
                    "exist (kdoctor reads the request body from it)")
    _nothing_enqueued(coordinator)


def test_a_missing_dns_service_is_refused_at_submit(coordinator: str, fake: FakeKube, tmp_path: Path) -> None:
    env = _env(fake.kubeconfig(tmp_path / "kc"), tmp_path)
    spec = {"apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "dns"},
            "spec": {"target": {"targetDns": {"serviceName": "coredns", "serviceNamespace": "kube-system"}}}}
    line = _one_line_exit_2(_kdoctor(coordinator, env, "run", _spec(tmp_path, spec), "--wait"))
    assert line == ("error: spec.target.targetDns: Service kube-system/coredns does not exist (kdoctor reads the "
                    "cluster DNS addresses from it)")
    _nothing_enqueued(coordinator)


def test_rbac_missing_is_one_line(coordinator: str, fake: FakeKube, tmp_path: Path) -> None:
    fake.deny("get", "configmaps")
    fake.deny("list", "nodes")
    env = _env(fake.kubeconfig(tmp_path / "kc"), tmp_path)
    line = _one_line_exit_2(_kdoctor(coordinator, env, "run", _spec(tmp_path, APPHTTP)))
    assert line.startswith(f"error: SetupError: the Kubernetes API at {fake.url} forbids kdoctor to get ConfigMap "
                           "kdoctor-test-server/kdoctor-test-body (403 Forbidden): configmaps \"kdoctor-test-body\" "
                           "is forbidden: User")
    _nothing_enqueued(coordinator)
    nodes = _one_line_exit_2(_kdoctor(coordinator, env, "nodes"))
    assert "forbids kdoctor to list nodes (403 Forbidden)" in nodes


def test_an_unreachable_api_server_is_one_line(coordinator: str, fake: FakeKube, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(fake.kubeconfig(tmp_path / "real").read_text().replace(fake.url, f"http://127.0.0.1:{port}"))
    line = _one_line_exit_2(_kdoctor(coordinator, _env(kubeconfig, tmp_path), "run", _spec(tmp_path, APPHTTP)))
    assert line == (f"error: SetupError: cannot reach the Kubernetes API at http://127.0.0.1:{port} to get ConfigMap "
                    "kdoctor-test-server/kdoctor-test-body: Connection refused")
    _nothing_enqueued(coordinator)


def test_no_credentials_stop_the_coordinator_at_once(broker_url: str, tmp_path: Path) -> None:
    line = _one_line_exit_2(_kdoctor(broker_url, _env(tmp_path / "nope", tmp_path), "coordinator"))
    assert "no usable Kubernetes credentials (kubeconfig" in line
    bad = _kdoctor(broker_url, {}, "coordinator", "--inventory", "kubernete")
    assert bad.returncode == 2 and "neither 'kubernetes', 'registry' nor an inventory file" in bad.stderr
