"""A whole round over a Redis that wants a password and TLS, and the errors a wrong password or a
wrong CA give: the security settings are exercised end to end, not only parsed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.ports import free_port
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from tests.conftest import FAST_ENV, cli_env
from tests.integration.test_rounds import netreach
from tests.servers.certs import Pki, make_pki

PASSWORD = "s3cret-broker"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_redis(pki: Pki) -> Iterator[tuple[RedisServer, int]]:
    """redis-server with a password, plain TCP on one port and TLS on another."""
    tls_port = free_port()
    server = RedisServer(password=PASSWORD, extra_args=[
        "--tls-port", str(tls_port), "--tls-cert-file", str(pki.server_cert),
        "--tls-key-file", str(pki.server_key), "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no"])
    yield server, tls_port
    server.stop()


def test_round_over_tls_with_a_password(tls_redis: tuple[RedisServer, int], pki: Pki) -> None:
    _, tls_port = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/5"
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_REDIS_CA_FILE": str(pki.ca), "KDOCTOR_BROKER_URL": url})
    cluster = LocalCluster(settings)
    try:
        cluster.start(2)
        cluster.wait_ready(["node-1", "node-2"])
        with Client(settings=settings) as client:
            report = client.submit(netreach("secure", duration=1)).wait(timeout=60)
    finally:
        cluster.close()
    assert report.verdict == "passed", report.reasons
    assert sorted(report.nodes) == ["node-1", "node-2"]
    assert all(t.requests > 0 and t.successes == t.requests for n in report.nodes.values() for t in n.targets)


@pytest.mark.parametrize(("case", "expected"), [
    ("password", "invalid username-password pair"),
    ("ca", "certificate verify failed"),
])
def test_wrong_password_or_ca_is_exit_2_with_the_url_masked(
        tls_redis: tuple[RedisServer, int], pki: Pki, case: str, expected: str) -> None:
    server, tls_port = tls_redis
    if case == "password":
        url, ca = f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0", ""
    else:
        url, ca = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0", str(pki.other_ca)
    env = {**cli_env(url), "KDOCTOR_REDIS_CA_FILE": ca}
    done = subprocess.run([sys.executable, "-m", "kdoctor", "nodes"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr.lower()
    assert PASSWORD not in done.stderr and "***@127.0.0.1" in done.stderr


def test_password_is_not_in_the_worker_registry_or_logs(tls_redis: tuple[RedisServer, int], tmp_path: Path) -> None:
    server, _ = tls_redis
    url = server.url(6)
    cluster = LocalCluster(Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": url}), log_dir=tmp_path)
    try:
        cluster.start(1)
        cluster.wait_ready(["node-1"])
    finally:
        cluster.close()
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    assert logs and PASSWORD not in logs
