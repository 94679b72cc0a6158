"""The report store on a real Redis: listings read heads, never whole reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from kdoctor.specs.results import NodeResult, Report, TaskRef
from kdoctor.store import keys
from kdoctor.store import reports as store


def _report(number: int, kind: str = "NetReach", nodes: int = 3) -> Report:
    finished = datetime.now(UTC) - timedelta(minutes=60 - number)  # within the retention
    return Report(id=f"job-{kind}-r{number}", job=f"job-{kind}", task=TaskRef(kind=kind, name="t"), round=number,
                  verdict="failed" if number % 2 else "passed", reasons=[f"r{i}" for i in range(12)],
                  started=finished, finished=finished, deadline=finished, spec={"big": "x" * 1000},
                  nodes={f"n{i}": NodeResult(node=f"n{i}", status="passed") for i in range(nodes)})


def test_listing_reads_heads_newest_first_and_filters(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url, decode_responses=True)
    for number in range(1, 6):
        store.save(client, _report(number), retention_seconds=3600)
    store.save(client, _report(9, kind="DiskIO"), retention_seconds=3600)
    # Listing must not need the whole reports: drop them, the heads still list.
    client.delete(*[keys.report(f"job-NetReach-r{n}") for n in range(1, 6)])
    heads = store.latest(client, limit=3, kind="NetReach")
    assert [h.round for h in heads] == [5, 4, 3]
    assert heads[0].verdict == "failed" and heads[0].reasons == [f"r{i}" for i in range(10)]
    assert [h.id for h in store.latest(client, job="job-DiskIO")] == ["job-DiskIO-r9"]
    assert 0 < client.ttl(keys.report_head("job-DiskIO-r9")) <= 3600


def test_reports_stored_before_heads_existed_still_list(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url, decode_responses=True)
    report = _report(1)
    store.save(client, report, retention_seconds=3600)
    client.delete(keys.report_head(report.id))
    (head,) = store.latest(client)
    assert head == report.head()
