"""Scheduled rounds through real `kdoctor beat` processes (celery beat + redbeat)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster


def scheduled(rounds: int, every: str = "0s 2s") -> dict[str, object]:
    return {
        "apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": "every-two-seconds"},
        "spec": {
            "schedule": {"schedule": every, "roundNumber": rounds},
            "request": {"qps": 5, "durationInSecond": 1},
            "target": {"clusterIP": False, "nodePort": False},
        },
    }


def test_schedule_fires_each_round_once_even_with_two_beats(
        make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    cluster = make_cluster(2)
    # Two beats: redbeat's lock must let only one of them fire.
    cluster.start_beat("beat-a")
    cluster.start_beat("beat-b")
    job = client.schedule(scheduled(3))
    listed = client.schedules()
    assert [s.job for s in listed] == [job] and listed[0].rounds == 3
    limit = time.monotonic() + 45
    while len(client.reports(job=job)) < 3 and time.monotonic() < limit:
        time.sleep(0.25)
    time.sleep(3)  # a fourth round, if the schedule failed to stop, would have fired by now
    reports = sorted(client.reports(job=job), key=lambda r: r.round)
    assert [r.round for r in reports] == [1, 2, 3]
    assert all(r.verdict == "passed" for r in reports)
    # A double fire (two beats, or a lost lock) would plan two rounds in the same instant.
    starts = [r.started.timestamp() for r in reports]
    assert all(b - a > 1.0 for a, b in itertools.pairwise(starts))
    assert client.schedules() == []


def test_forever_schedule_runs_until_removed(make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    cluster = make_cluster(2)
    cluster.start_beat()
    job = client.schedule(scheduled(-1, every="0s 1s"))
    limit = time.monotonic() + 30
    while len(client.reports(job=job)) < 2 and time.monotonic() < limit:
        time.sleep(0.25)
    assert client.unschedule(job)
    assert not client.unschedule(job)
    time.sleep(4)  # the round fired just before removal has time to report
    count = len(client.reports(job=job))
    time.sleep(3)
    assert len(client.reports(job=job)) == count >= 2
