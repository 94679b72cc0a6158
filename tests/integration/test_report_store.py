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


def test_reports_are_compressed_and_read_back_whole(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url, decode_responses=True)
    report = _report(3, nodes=200)
    store.save(client, report, retention_seconds=3600)
    stored = client.get(keys.report(report.id))
    assert stored is not None and stored.startswith("z1:")
    assert len(stored) < len(report.model_dump_json(by_alias=True)) / 3
    assert store.load(client, report.id) == report


def test_retention_by_age_and_by_size(broker_url: str) -> None:
    client = redis.Redis.from_url(broker_url, decode_responses=True)
    for number in range(1, 7):  # an hour apart, the newest last
        store.save(client, _report(number * 10 - 50), retention_seconds=7 * 86400)
    ids = [f"job-NetReach-r{n * 10 - 50}" for n in range(1, 7)]
    gone = store.enforce_retention(client, retention_seconds=25 * 60)
    assert gone == ids[:3]  # older than 25 minutes before the newest
    # A cap of exactly the two newest reports' sizes (compressed sizes differ by a byte or two with
    # their timestamps, so twice the newest's could be a byte short of the two).
    size = sum(int(client.hget(keys.REPORTS_BYTES, i) or 0) for i in ids[-2:])
    assert store.enforce_retention(client, retention_seconds=86400, cap_bytes=size) == [ids[3]]
    assert [str(i) for i in client.zrange(keys.REPORTS_INDEX, 0, -1)] == ids[4:]
    assert not any(client.exists(keys.report(i), keys.report_head(i)) for i in ids[:4])
    assert sorted(client.hkeys(keys.REPORTS_BYTES)) == sorted(ids[4:])


def test_lookups_of_any_id_or_corrupt_value_end_in_a_clear_error(broker_url: str) -> None:
    import pytest

    from kdoctor.errors import ReportNotFound, ReportUnreadable

    client = redis.Redis.from_url(broker_url, decode_responses=True)
    good = _report(1)
    store.save(client, good, retention_seconds=3600)
    for odd in (f"{good.id}:head", "", "x" * 10_000, "../../etc", "KDOCTOR", "a b"):
        with pytest.raises(ReportNotFound) as err:
            store.load(client, odd)
        assert len(str(err.value)) < 300
    client.set(keys.report("broken-r1"), "{not json")
    client.set(keys.report("zipped-r1"), "z1:AAAA")
    client.set(keys.report("other-r1"), '{"id": 1}')
    for broken in ("broken-r1", "zipped-r1", "other-r1"):
        with pytest.raises(ReportUnreadable, match=f"stored report '{broken}' is unreadable"):
            store.load(client, broken)
    client.zadd(keys.REPORTS_INDEX, {"broken-r1": 1e12})
    client.set(keys.report_head("broken-r1"), "{not json")
    skipped: list[str] = []
    assert [h.id for h in store.latest(client, unreadable=skipped)] == [good.id]
    assert skipped == ["broken-r1"]
