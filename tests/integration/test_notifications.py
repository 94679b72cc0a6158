"""Notifications over real HTTP: a local server receives the webhook and Slack payloads, a real
Alertmanager receives the v2 alerts and lists them through its own API; failure and recovery only,
once per round; a receiver that fails is retried a bounded number of times and counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.registry import CollectorRegistry

from bench.signals.synthetic import synthetic_round
from kdoctor.errors import SetupError
from kdoctor.settings import Settings
from kdoctor.signals import receivers, recorder
from kdoctor.signals.delivery import Delivery
from kdoctor.signals.notifier import Notifier
from kdoctor.store.connection import redis_client
from tests.servers.hooks import HookServer
from tests.servers.prom import Alertmanager


@pytest.fixture
def client(settings: Settings) -> redis.Redis:
    return redis_client(settings)


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.stop()


def config(tmp_path: Path, *receivers_: dict[str, object]) -> receivers.NotifyConfig:
    path = tmp_path / "notify.yaml"
    path.write_text(json.dumps({"reportUrl": "https://kdoctor.example/reports/{id}", "receivers": list(receivers_)}))
    return receivers.load(str(path))


def notifier(client: redis.Redis, cfg: receivers.NotifyConfig, registry: CollectorRegistry | None = None,
             resend: float = 3600) -> Notifier:
    return Notifier(lambda: client, cfg, Delivery(registry or CollectorRegistry(), sleep=lambda _: None),
                    oneshot_seconds=3600, resend_seconds=resend)


def round_(client: redis.Redis, number: int, *, broken: bool, job: str = "mesh") -> None:
    state, shell, judged = synthetic_round(12, job=job, number=number, broken=broken)
    recorder.record_round(client, state, shell, judged, scheduled=False, finalize_seconds=0.1, retention=3600)


def step(n: Notifier) -> None:
    n.poll()
    n.flush()


def test_failed_then_recovered_only_and_once(client: redis.Redis, hooks: HookServer, tmp_path: Path) -> None:
    cfg = config(tmp_path, {"name": "hook", "type": "webhook", "url": hooks.url + "/hook", "bearerToken": "t0k"},
                 {"name": "chat", "type": "slack", "url": hooks.url + "/slack"},
                 {"name": "other", "type": "webhook", "url": hooks.url + "/other", "tasks": ["DiskIO/*"]})
    one, two = notifier(client, cfg), notifier(client, cfg)  # two exporters by mistake: still once
    round_(client, 1, broken=False)
    step(one)
    step(two)
    assert hooks.received == []  # a passed round says nothing
    round_(client, 2, broken=True)
    step(one)
    step(two)
    round_(client, 3, broken=True)  # still failing: nothing new to say
    step(two)
    round_(client, 4, broken=False)
    step(one)
    round_(client, 5, broken=False)  # passed again: nothing
    step(one)
    step(two)
    events = [(b["event"], b["round"]) for b in hooks.bodies("/hook")]
    assert events == [("failed", 2), ("recovered", 4)]
    failed = hooks.bodies("/hook")[0]
    assert failed["task"] == {"kind": "NetReach", "name": "synthetic"}
    assert failed["suspects"][0]["node"] == "node-8" and failed["suspects"][0]["suspect_kind"] == "node"
    assert failed["link"] == "https://kdoctor.example/reports/mesh-r2"
    assert failed["reasons"][0].startswith("suspect node node-8")
    assert {r["headers"]["Authorization"] for r in hooks.received if r["path"] == "/hook"} == {"Bearer t0k"}
    slack = [b["text"] for b in hooks.bodies("/slack")]
    assert len(slack) == 2 and "failed" in slack[0] and "recovered" in slack[1]
    assert "<https://kdoctor.example/reports/mesh-r2|mesh-r2>" in slack[0]
    assert hooks.bodies("/other") == []  # not its task
    one.close()
    two.close()


def test_a_failing_receiver_is_retried_a_bounded_number_of_times_and_counted(
        client: redis.Redis, tmp_path: Path) -> None:
    broken = HookServer(script=(500, "hang", "hang", 200))
    registry = CollectorRegistry()
    cfg = config(tmp_path, {"name": "flaky", "type": "webhook", "url": broken.url, "timeoutSeconds": 0.5,
                            "retries": 2})
    n = notifier(client, cfg, registry)
    try:
        round_(client, 1, broken=True)
        step(n)
    finally:
        broken.stop()
        n.close()
    assert len(broken.received) == 3  # the first attempt and two retries, never the fourth
    labels = {"receiver": "flaky", "type": "webhook", "event": "failed"}
    assert registry.get_sample_value("kdoctor_notification_failures_total", labels) == 1
    assert registry.get_sample_value("kdoctor_notifications_total", labels) is None


def test_a_client_error_is_not_retried(client: redis.Redis, tmp_path: Path) -> None:
    refusing = HookServer(script=(400,))
    registry = CollectorRegistry()
    n = notifier(client, config(tmp_path, {"name": "bad", "type": "webhook", "url": refusing.url}), registry)
    try:
        round_(client, 1, broken=True)
        step(n)
    finally:
        refusing.stop()
        n.close()
    assert len(refusing.received) == 1
    assert registry.get_sample_value("kdoctor_notification_failures_total",
                                     {"receiver": "bad", "type": "webhook", "event": "failed"}) == 1


def test_alertmanager_lists_kdoctors_alerts_and_their_resolution(client: redis.Redis, tmp_path: Path) -> None:
    manager = Alertmanager()
    try:
        n = notifier(client, config(tmp_path, {"name": "am", "type": "alertmanager", "url": manager.url}))
        round_(client, 1, broken=True)
        step(n)
        firing = {a["labels"]["alertname"]: a for a in manager.alerts(active="true")}
        assert set(firing) == {"KdoctorRoundFailed", "KdoctorSuspect"}
        suspect = firing["KdoctorSuspect"]["labels"]
        assert suspect == {"alertname": "KdoctorSuspect", "severity": "critical", "kind": "NetReach",
                           "task": "synthetic", "suspect_kind": "node", "node": "node-8"}
        assert firing["KdoctorRoundFailed"]["generatorURL"] == "https://kdoctor.example/reports/mesh-r1"
        assert firing["KdoctorRoundFailed"]["annotations"]["report"] == "mesh-r1"
        assert all(a["status"]["state"] == "active" for a in firing.values())
        round_(client, 2, broken=False)
        step(n)
        assert manager.alerts(active="true") == []  # resolved: endsAt now
        n.close()
    finally:
        manager.stop()


def test_the_receivers_file_is_checked_and_secrets_stay_out_of_messages(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SetupError, match="exactly one of url, urlEnv, urlFile"):
        config(tmp_path, {"name": "x", "type": "webhook"})
    with pytest.raises(SetupError, match="KDOCTOR_TEST_HOOK is not set"):
        config(tmp_path, {"name": "x", "type": "slack", "urlEnv": "KDOCTOR_TEST_HOOK"})
    with pytest.raises(SetupError, match="type"):
        config(tmp_path, {"name": "x", "type": "pager", "url": "http://x"})
    (tmp_path / "url").write_text("https://hooks.example/T000/secret\n")
    monkeypatch.setenv("KDOCTOR_TEST_TOKEN", "abc")
    cfg = config(tmp_path, {"name": "x", "type": "webhook", "urlFile": str(tmp_path / "url"),
                            "bearerTokenEnv": "KDOCTOR_TEST_TOKEN"})
    assert cfg.receivers[0].resolved_url() == "https://hooks.example/T000/secret"
    assert cfg.receivers[0].token() == "abc"
