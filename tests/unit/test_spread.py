"""One target's schedule over several processes: the slices are exactly the schedule, their
figures merge exactly, and a real team of forked processes hands them over (on a virtual clock:
no timing threshold)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kdoctor.probes import spread
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.probes.pressure import Driver, DriverStats, Pace
from kdoctor.probes.spread import Share, Team
from tests.unit.virtual import ScriptedClient, VirtualClock

T0 = 1024.5


def press(pace: Pace, capacity: int = 4, service: Callable[[float], float] = lambda _: 1 / 256,
          timeout: float = 1.0) -> tuple[DriverStats, ScriptedClient]:
    clock = VirtualClock()
    client = ScriptedClient(clock, capacity, service, timeout)
    driver = Driver(client, pace, clock)
    client.driver = driver
    return asyncio.run(driver.run(T0)), client


@pytest.mark.parametrize("count", [1, 2, 4])
def test_the_slices_together_are_exactly_the_schedule(count: int) -> None:
    whole = Pace(qps=128, duration=2, timeout=1.0, phase=0.5)
    dues: list[float] = []
    for index in range(count):
        part = whole.share(index, count)
        assert part.qps == 128 / count
        _, client = press(part)
        dues += [s.due for s in client.log]
    assert sorted(dues) == [T0 + (k + 0.5) / 128 for k in range(256)]  # every token once, none moved


def test_slices_of_an_uneven_schedule_add_up_to_it() -> None:
    whole = Pace(qps=101, duration=1, timeout=1.0)
    parts = [whole.share(i, 3) for i in range(3)]
    assert [p.total for p in parts] == [34, 34, 33]
    dues = sorted(d for p in parts for d in (s.due for s in press(p)[1].log))
    assert dues == pytest.approx([T0 + k / 101 for k in range(101)], abs=1e-9)
    with pytest.raises(ValueError):
        whole.share(3, 3)
    assert Pace(qps=0, duration=1, timeout=1.0).share(1, 2).closed_loop  # closed loop is not sliced


def test_merged_counts_are_exact_when_slices_fall_behind() -> None:
    # One connection answering in 31.25 ms carries 32/s; each slice is asked for 64/s: most tokens
    # are dropped as unsent, and sent + unsent is still exactly the plan, slice by slice and merged.
    whole = Pace(qps=128, duration=1, timeout=0.25)
    merged = DriverStats()
    for index in range(2):
        stats, client = press(whole.share(index, 2), capacity=1, service=lambda _: 1 / 32, timeout=0.25)
        assert stats.sent + stats.unsent == stats.intended == 64
        assert stats.sent == len(client.log)
        merged.merge(stats)
    assert merged.intended == whole.total == merged.sent + merged.unsent
    assert merged.unsent > 0 and merged.successes == merged.sent


def test_merge_adds_counts_histograms_codes_and_errors() -> None:
    def stats(sent: int, lat_us: list[int], codes: dict[str, int], errors: dict[str, int], window: float,
              first: float, last: float) -> DriverStats:
        s = DriverStats(intended=sent + 1, sent=sent, successes=sent - 1, late=1, unsent=1, bytes=10 * sent,
                        first_send=first, last_send=last, start=first, end=last + 1, window=window)
        for us in lat_us:
            s.latency.record_us(us)
            s.lag.record_us(us // 10)
        s.codes.update(codes)
        s.errors.update(errors)
        return s

    a = stats(10, [100, 200], {"200": 9}, {"timeout": 1}, 5.0, 2.0, 7.0)
    b = stats(20, [50, 400, 300], {"200": 18, "503": 1}, {"reset": 1}, 5.2, 1.5, 6.5)
    a.merge(b)
    assert (a.intended, a.sent, a.successes, a.late, a.unsent, a.bytes) == (32, 30, 28, 2, 2, 300)
    assert (a.first_send, a.last_send, a.start, a.end, a.window) == (1.5, 7.0, 1.5, 8.0, 5.2)
    assert (a.latency.count, a.latency.min_us, a.latency.max_us, a.latency.sum_us) == (5, 50, 400, 1050)
    assert a.latency.percentile_ms(100) == 0.4 and a.lag.count == 5
    assert a.codes == {"200": 27, "503": 1} and a.errors == {"timeout": 1, "reset": 1}
    assert a.achieved_qps(6) == pytest.approx(30 / 5.2)


def test_how_many_processes_a_rate_needs() -> None:
    assert spread.processes(300_000, 40_000, 4) == 4
    assert spread.processes(50_000, 40_000, 4) == 2
    assert spread.processes(1_000, 40_000, 4) == 1  # below one loop's rate: alone, as always
    assert spread.processes(300_000, 40_000, 1) == 1
    assert spread.processes(0, 40_000, 4) == 1
    assert 1 <= spread.processes(10**9, 1, 0) <= 1024  # 0: the CPUs this process may use


def test_parts_of_a_bound_add_up_to_it() -> None:
    for bound in (1, 5, 1000):
        for count in (1, 2, 3):
            parts = [Share(i, count).part(bound) for i in range(count)]
            assert sum(parts) == max(bound, count) and min(parts) >= 1


def test_the_busiest_process_decides_saturation() -> None:
    monitor = GeneratorMonitor()
    monitor.start()
    monitor.wall0 -= 1000.0  # this process idled over a long window: its own share is ~0 %
    monitor.processes = 2
    monitor.peers.append((4.8, 96.0))
    figures = monitor.finish(0)
    assert figures.saturated and figures.processes == 2
    assert "96% of a core (the busiest of 2 processes)" in figures.reason
    assert figures.cpu_seconds >= 4.8


def test_a_team_of_forked_processes_merges_its_figures_exactly() -> None:
    whole = Pace(qps=128, duration=2, timeout=1.0)

    async def slice_of(share: Share, monitor: GeneratorMonitor) -> DriverStats:
        stats, _ = await asyncio.to_thread(press, share.pace(whole))
        await spread.gather(share, [("t", stats, share.pace(whole), None)], monitor)
        return stats

    def helper(share: Share) -> None:
        asyncio.run(slice_of(share, GeneratorMonitor()))

    team = Team.fork(3, helper)
    try:
        monitor = GeneratorMonitor()
        monitor.start()
        merged = asyncio.run(slice_of(team.lead, monitor))
    finally:
        team.close()
    assert merged.intended == merged.sent == merged.successes == whole.total == 256
    assert merged.latency.count == 256 and merged.latency.min_us == merged.latency.max_us == int(1e6 / 256)
    assert merged.codes == {"200": 256}
    assert monitor.processes == 3 and len(monitor.peers) == 2 and not monitor.behind


def test_a_helper_that_dies_fails_the_probe_with_the_reason() -> None:
    def helper(share: Share) -> None:
        raise SystemExit(3)

    team = Team.fork(2, helper)
    try:
        with pytest.raises(RuntimeError, match="generator process 2 of 2 died"):
            asyncio.run(spread.gather(team.lead, [], GeneratorMonitor()))
    finally:
        team.close()


def _files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize(("proc", "files", "cpus"), [
    # cgroup v2, a pod with limits.cpu 1.5 (rounded up), no quota above it
    ("0::/kubepods/pod1/c1\n", {"kubepods/pod1/c1/cpu.max": "150000 100000\n", "kubepods/cpu.max": "max 100000\n"}, 2),
    # v2, the tighter quota is the parent's
    ("0::/a/b\n", {"a/b/cpu.max": "max 100000\n", "a/cpu.max": "100000 100000\n"}, 1),
    # v2 inside a cgroup namespace: the container's own cgroup is the root
    ("0::/\n", {"cpu.max": "100000 100000\n"}, 1),
    # v1 (and a hybrid host's unified line), container's cgroup mounted at the controller's root
    ("2:cpu,cpuacct:/kubepods/x\n0::/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
                                          "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 1),
    # v1 without a quota (-1), and no readable files at all: the affinity decides
    ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ("0::/gone\n", {}, None),
])
def test_usable_cpus_is_the_affinity_at_most_the_cgroup_quota(
        tmp_path: Path, proc: str, files: dict[str, str], cpus: int | None) -> None:
    (tmp_path / "cgroup").write_text(proc)
    root = tmp_path / "fs"
    root.mkdir()
    _files(root, files)
    affinity = len(os.sched_getaffinity(0))
    assert spread.usable_cpus(tmp_path / "cgroup", root) == min(affinity, cpus or affinity)


def test_usable_cpus_on_this_machine_and_a_missing_proc_file(tmp_path: Path) -> None:
    assert 1 <= spread.usable_cpus() <= len(os.sched_getaffinity(0))
    assert spread.usable_cpus(tmp_path / "none", tmp_path) == len(os.sched_getaffinity(0))
