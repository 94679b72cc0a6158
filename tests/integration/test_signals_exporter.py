"""The exporter against the real store: synthetic rounds written by the real recorder into a real
redis-server, scraped over HTTP from the real server with its authentication."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.signals.synthetic import synthetic_round
from kdoctor.settings import Settings
from kdoctor.signals import recorder
from kdoctor.signals.metrics import ResultsCollector, new_registry
from kdoctor.signals.server import MetricsServer, load_credentials
from kdoctor.store import keys
from kdoctor.store.connection import redis_client

TOKEN = "s3cret-token"
PER_NODE_NETREACH = 14  # status ×5, success ratio ×2 roles, latency 3 quantiles ×2 roles, saturated
CONSTANT_BOUND = 200     # per task: round, target kinds × families, ≤ 50 suspects; health; process_*


@pytest.fixture
def exporter(settings: Settings, tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "users").write_text("prom:pass word\n")
    client = redis_client(settings)
    collector = ResultsCollector(lambda: client, oneshot_seconds=3600, node_timeout=15, coordinator_timeout=20)
    server = MetricsServer(new_registry(collector), load_credentials(str(tmp_path / "token"), str(tmp_path / "users")),
                           "127.0.0.1", 0).start()
    yield client, f"http://127.0.0.1:{server.port}/metrics"
    server.close()


def scrape(url: str, authorization: str | None = f"Bearer {TOKEN}") -> str:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(answer.read().decode())


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def record(client: redis.Redis, nodes: int, *, job: str = "synthetic", number: int = 1,
           schedule: dict[str, object] | None = None) -> None:
    state, shell, judged = synthetic_round(nodes, job=job, number=number)
    if schedule is not None:
        state = state.model_copy(update={"spec": {"spec": {"schedule": schedule}}})
    assert recorder.record_round(client, state, shell, judged, scheduled=schedule is not None,
                                 finalize_seconds=0.5, retention=3600) is not None


def test_series_grow_linearly_with_nodes_and_name_the_suspect(exporter: tuple[redis.Redis, str]) -> None:
    client, url = exporter
    record(client, 1000)
    found = samples(scrape(url))
    per_node = [s for s in found if "node" in s[1] and not s[0].startswith("kdoctor_suspect")]
    by_name = Counter(s[0] for s in per_node)
    assert len(per_node) == PER_NODE_NETREACH * 1000, by_name
    assert len(found) <= PER_NODE_NETREACH * 1000 + CONSTANT_BOUND
    print(f"series at 1,000 nodes: {len(found)} ({len(per_node)} per node)")
    suspects = [s for s in found if s[0] == "kdoctor_suspect"]
    assert [(s[1]["suspect_kind"], s[1]["node"]) for s in suspects] == [("node", "node-8")]
    status = {s[1]["status"]: s[2] for s in found if s[0] == "kdoctor_node_status" and s[1]["node"] == "node-8"}
    assert status == {"passed": 0, "failed": 1, "missing": 0, "timeout": 0, "error": 0}
    destination = {s[1]["node"]: s[2] for s in found
                   if s[0] == "kdoctor_node_success_ratio" and s[1]["role"] == "destination"}
    assert destination["node-8"] == pytest.approx(0.4) and destination["node-100"] == 1.0
    kinds = {(s[1]["target_kind"], s[1]["family"]) for s in found if s[0] == "kdoctor_targets"}
    assert kinds == {(k, f) for k in ("clusterIP", "endpoint", "nodePort") for f in ("ipv4", "ipv6")}
    health = {s[0]: s[2] for s in found if not s[1]}
    written = {s[1]["verdict"]: s[2] for s in found if s[0] == "kdoctor_reports_written_total"}
    assert written == {"passed": 0, "failed": 1}
    assert health["kdoctor_finalize_seconds_count"] == 1 and health["kdoctor_redis_up"] == 1


def test_a_scrape_without_credentials_is_refused(exporter: tuple[redis.Redis, str]) -> None:
    _, url = exporter
    for authorization in (None, "Bearer wrong", "Basic " + base64.b64encode(b"prom:wrong").decode(), "Bearer"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(url, authorization)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic")
    assert "kdoctor_redis_up 1.0" in scrape(url, "Basic " + base64.b64encode(b"prom:pass word").decode())
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        scrape(url.replace("/metrics", "/other"))
    assert elsewhere.value.code == 404


def test_series_of_a_removed_schedule_disappear(exporter: tuple[redis.Redis, str]) -> None:
    client, url = exporter
    client.hset(keys.beat_entry("sched"), "definition", "{}")  # an installed schedule (redbeat's entry)
    record(client, 3, job="sched", number=4, schedule={"schedule": "0s 30s", "roundNumber": -1})
    found = samples(scrape(url))
    assert ("kdoctor_round_number", {"kind": "NetReach", "task": "synthetic"}, 4.0) in found
    assert ("kdoctor_task_interval_seconds", {"kind": "NetReach", "task": "synthetic"}, 30.0) in found
    client.delete(keys.beat_entry("sched"))  # `kdoctor schedule rm`
    assert not [s for s in samples(scrape(url)) if s[1].get("task") == "synthetic"]
    assert client.hlen(keys.SIGNALS_TASKS) == 0


def test_redis_away_is_a_series_not_an_error(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    collector = ResultsCollector(lambda: gone, oneshot_seconds=3600, node_timeout=15, coordinator_timeout=20)
    server = MetricsServer(new_registry(collector), load_credentials(str(tmp_path / "token"), ""), "127.0.0.1",
                           0).start()
    try:
        text = scrape(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    assert "kdoctor_redis_up 0.0" in text and "kdoctor_round_passed" not in text
