"""Shared fixtures: a real redis-server per session, a fresh database per test, and local clusters
of real ``kdoctor worker`` / ``kdoctor coordinator`` processes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings

DATA = Path(__file__).parent / "data"

# Fast liveness for tests: a stopped or killed node is noticed within seconds, not a minute.
FAST_ENV = {
    "KDOCTOR_HEARTBEAT_SECONDS": "0.5",
    "KDOCTOR_NODE_TIMEOUT_SECONDS": "2.5",
    "KDOCTOR_ROUND_GRACE_SECONDS": "3",
    "KDOCTOR_START_LEAD_SECONDS": "0.5",
    "KDOCTOR_COORDINATOR_TIMEOUT_SECONDS": "5",
    # Explicit: a test run inside a pod (a CI runner) must not pick the Kubernetes API by itself.
    "KDOCTOR_INVENTORY": "registry",
}

_databases = itertools.cycle(range(1, 64))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session, on a free loopback port."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """A Redis database of its own for each test, emptied before use."""
    url = redis_server.url(next(_databases))
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def settings(broker_url: str) -> Settings:
    return Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": broker_url})


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    with Client(settings=settings) as c:
        yield c


@pytest.fixture
def make_cluster(broker_url: str) -> Iterator[Callable[..., LocalCluster]]:
    """Start a coordinator and workers node-1..N (real processes); all stopped at teardown."""
    clusters: list[LocalCluster] = []

    def make(nodes: int = 3, *, addresses: tuple[str, ...] = ("127.0.0.1",),
             env: dict[str, str] | None = None, wait: bool = True) -> LocalCluster:
        cluster = LocalCluster(Settings.from_env({**FAST_ENV, **(env or {}), "KDOCTOR_BROKER_URL": broker_url}))
        clusters.append(cluster)
        cluster.start(nodes, addresses=addresses)
        if wait:
            cluster.wait_ready([f"node-{i}" for i in range(1, nodes + 1)])
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


def cli_env(broker_url: str) -> dict[str, str]:
    """Environment for running the ``kdoctor`` CLI against the test broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDOCTOR_")}
    env.update(FAST_ENV)
    env["KDOCTOR_BROKER_URL"] = broker_url
    return env
