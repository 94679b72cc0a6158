"""Redis that can fail over: every role follows a Sentinel group's master; a primary killed
mid-round costs that round at most, and the next one passes without restarting anything."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kdoctor.api import Client, KdoctorError
from kdoctor.local.cluster import LocalCluster
from kdoctor.settings import Settings
from kdoctor.store.connection import broker, redis_client, safe_url
from tests.conftest import FAST_ENV
from tests.integration.test_rounds import netreach
from tests.servers.sentinel import SentinelGroup


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    sentinels = SentinelGroup()
    yield sentinels
    sentinels.stop()


def test_sentinel_urls_parse_and_mask() -> None:
    url = "sentinels://:p%40ss@s1:26379/3;sentinels://:p%40ss@s2"
    where = broker(Settings(broker_url=url))
    assert where.sentinels == (("s1", 26379), ("s2", 26379)) and where.password == "p@ss" and where.db == 3
    assert where.tls and where.kombu_url.startswith("sentinel://")
    assert "p%40ss" not in safe_url(url) and safe_url(url).count("***") == 2


def test_primary_killed_mid_round_then_the_next_round_passes(group: SentinelGroup) -> None:
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": group.url()})
    assert redis_client(settings).ping()
    with LocalCluster(settings) as cluster, Client(settings=settings) as client:
        cluster.start(2)
        cluster.wait_ready(["node-1", "node-2"])
        pids = {name: process.pid for name, process in cluster.processes.items()}
        job = client.submit(netreach("failover", duration=3))
        while job.progress().phase in ("queued", "waiting"):
            time.sleep(0.1)
        group.kill_primary()
        group.wait_failover()
        try:  # the round ends honestly: a report (whatever it says) or a clear error, never a hang
            report = job.wait(timeout=90)
            assert report.id == job.round_id
        except KdoctorError as exc:
            assert str(exc)
        cluster.wait_ready(["node-1", "node-2"], timeout=90)
        after = client.submit(netreach("after", duration=1)).wait(timeout=90)
        assert after.verdict == "passed", after.reasons
        assert {name: process.pid for name, process in cluster.processes.items()} == pids
        assert all(process.poll() is None for process in cluster.processes.values())
