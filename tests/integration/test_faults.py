"""Faults of the infrastructure end in an honest answer, never a hang."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kdoctor.api import Client, WaitTimeout
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from tests.conftest import FAST_ENV
from tests.integration.test_rounds import netreach


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, since the test restarts it."""
    server = RedisServer()
    yield server
    server.stop()


def test_redis_restart_mid_round_then_recovery(own_redis: RedisServer) -> None:
    url = own_redis.url()
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": url})
    with LocalCluster(settings) as cluster, Client(settings=settings) as client:
        cluster.start(2)
        cluster.wait_ready(["node-1", "node-2"])
        job = client.submit(netreach(duration=3))
        while job.progress().phase in ("queued", "waiting"):
            time.sleep(0.1)
        own_redis.restart()  # everything in Redis is gone: plan, open round, results
        # The job is gone with Redis's memory: waiting says so at once instead of hanging.
        with pytest.raises(WaitTimeout, match="gone from Redis"):
            job.wait()
        # Workers and coordinator reconnect and re-register by themselves; the next round passes.
        cluster.wait_ready(["node-1", "node-2"], timeout=60)
        report = client.submit(netreach(duration=1)).wait(timeout=60)
        assert report.verdict == "passed", report.reasons
