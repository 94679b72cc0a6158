"""DiskIO's engines on a real filesystem: Linux native AIO at queue depths above 1 on O_DIRECT files,
psync threads everywhere else and as the fallback (by setting, on a buffered file, where the kernel
refuses AIO); each result names its engine and its CPU, and a CPU-bound generator is
said in the node's generator block and warnings."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from kdoctor.probes import diskaio, diskio, diskwork
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.settings import Settings
from kdoctor.specs.diskio import DiskIO
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import DiskProfileResult, GeneratorStats, NodeResult
from tests.unit.test_diskio import MIB, everything_under, spec

aio_missing = diskaio.unavailable()
needs_aio = pytest.mark.skipif(bool(aio_missing), reason=f"no Linux AIO here: {aio_missing}")


def run(model: DiskIO, data_dir: Path, engine: str = "auto") -> NodeResult:
    assignment = Assignment(round_id="r", job="j", round=1, kind="DiskIO", name="disk", spec={}, node="n",
                            start_at=0, deadline=0)
    node = NodeContext(name="n", data_dir=str(data_dir), resolv_conf="/etc/resolv.conf", disk_engine=engine)
    return asyncio.run(diskio.run(assignment, model, time.perf_counter(), GeneratorMonitor(), node))


def random_profiles(result: NodeResult) -> dict[str, DiskProfileResult]:
    return {p.name: p for p in result.profiles}


@needs_aio
def test_deep_queues_run_on_aio_and_do_exactly_the_io_they_report(tmp_path: Path) -> None:
    result = run(spec(profiles=["randRead", "randWrite"], queueDepths=[1, 8, 32], sizeInMiB=4), tmp_path)
    assert result.status == "passed", result.reason
    by_name = random_profiles(result)
    assert [by_name[f"randRead/qd{d}"].engine for d in (1, 8, 32)] == ["psync", "libaio", "libaio"]
    assert [by_name[f"randWrite/qd{d}"].engine for d in (1, 8, 32)] == ["psync", "libaio", "libaio"]
    for prof in result.profiles:
        assert prof.direct_io and prof.complete
        assert prof.operations == 4 * MIB // 4096 == prof.latency_ms.count
        assert prof.bytes_read + prof.bytes_written == 4 * MIB
        assert (prof.bytes_written > 0) is (prof.profile == "randWrite")
        assert prof.cpu_percent > 0
    assert not any("psync engine" in w for w in result.warnings), result.warnings
    assert everything_under(tmp_path) == []


@needs_aio
def test_aio_reads_what_the_file_holds(tmp_path: Path) -> None:
    # The engine's bytes come from the disk: a 64 KiB file of known blocks read at depth 4.
    path = tmp_path / "f"
    blocks = [bytes([i]) * 4096 for i in range(16)]
    path.write_bytes(b"".join(blocks))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        out = diskaio.random_io(fd, 16 * 4096, 4096, 4, 64 * 4096, time.perf_counter() + 30,
                                diskwork.Stopper(), write=False)
    finally:
        os.close(fd)
    assert out.operations == 64 == out.latency.count and out.bytes == 64 * 4096 and out.complete


@needs_aio
def test_aio_stops_at_the_deadline_and_drains(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(MIB))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        out = diskaio.random_io(fd, MIB, 4096, 8, 1 << 40, time.perf_counter() + 0.2, diskwork.Stopper(),
                                write=False)
    finally:
        os.close(fd)
    assert not out.complete and out.operations == out.latency.count > 0 and out.bytes == out.operations * 4096


def test_psync_setting_keeps_the_threads(tmp_path: Path) -> None:
    result = run(spec(profiles=["randRead"], queueDepths=[1, 8], sizeInMiB=2), tmp_path, engine="psync")
    assert result.status == "passed", result.reason
    assert [p.engine for p in result.profiles] == ["psync", "psync"]
    assert all(p.operations == 2 * MIB // 4096 for p in result.profiles)
    assert not any("psync engine" in w for w in result.warnings)


def test_a_buffered_file_runs_on_threads_and_a_user_who_asked_for_aio_is_told(tmp_path: Path) -> None:
    # AIO on a buffered file would block in io_submit (directIO: false here; the same happens on
    # a filesystem that refuses O_DIRECT).
    result = run(spec(profiles=["randRead"], queueDepths=[8], sizeInMiB=2, directIO=False), tmp_path,
                 engine="libaio")
    (prof,) = result.profiles
    assert prof.engine == "psync" and not prof.direct_io and prof.operations == 2 * MIB // 4096
    assert any("psync engine" in w and "buffered" in w for w in result.warnings), result.warnings
    quiet = run(spec(profiles=["randRead"], queueDepths=[8], sizeInMiB=2, directIO=False), tmp_path)
    assert quiet.profiles[0].engine == "psync" and not any("psync engine" in w for w in quiet.warnings)


def test_aio_refused_by_the_kernel_falls_back_to_threads_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As io_setup answers when fs.aio-max-nr is used up.
    monkeypatch.setattr(diskaio, "unavailable", lambda: "io_setup: Resource temporarily unavailable")
    result = run(spec(profiles=["randRead", "randWrite"], queueDepths=[8], sizeInMiB=2), tmp_path)
    assert [p.engine for p in result.profiles] == ["psync", "psync"]
    assert all(p.operations == 2 * MIB // 4096 for p in result.profiles)
    (note,) = [w for w in result.warnings if "psync engine" in w]
    assert "Resource temporarily unavailable" in note and "GIL" in note


def test_a_cpu_bound_profile_marks_the_generator_saturated() -> None:
    busy = DiskProfileResult(name="randRead/qd32", profile="randRead", queue_depth=32, engine="psync",
                             cpu_percent=99.0)
    idle = DiskProfileResult(name="etcd", profile="etcd", cpu_percent=4.0)
    whole = GeneratorStats(cpu_seconds=2.0, cpu_percent=20.0)
    stats = diskio.generator_stats(whole, [idle, busy])
    assert stats.saturated and stats.cpu_percent == 99.0
    assert "randRead/qd32 (psync) at 99%" in stats.reason and "etcd" not in stats.reason
    calm = diskio.generator_stats(whole, [idle])
    assert not calm.saturated and calm.reason == "" and calm.cpu_percent == 20.0


def test_disk_engine_setting_is_checked() -> None:
    assert Settings.from_env({}).disk_engine == "auto"
    assert Settings.from_env({"KDOCTOR_DISK_ENGINE": "psync"}).disk_engine == "psync"
    with pytest.raises(ValueError, match="KDOCTOR_DISK_ENGINE"):
        Settings.from_env({"KDOCTOR_DISK_ENGINE": "uring"})


def test_waiting_for_a_cpu_is_measured_and_said() -> None:
    # The kernel's run-queue wait of this thread moves forward (or is 0 where it is not told).
    assert diskwork.run_queue_wait_ns() >= 0
    waited = DiskProfileResult(name="etcd", profile="etcd", seconds=2.0, cpu_wait_ms=80.0)
    calm = DiskProfileResult(name="seqRead", profile="seqRead", seconds=2.0, cpu_wait_ms=1.0)
    threads = DiskProfileResult(name="randRead/qd32", profile="randRead", queue_depth=32, engine="psync",
                                seconds=1.0, cpu_wait_ms=100.0)  # 32 threads: 0.3 % each
    (note,) = diskio.contention_notes("n", [waited, calm, threads])
    assert note.startswith("n: etcd: the I/O thread(s) waited 80 ms for a CPU over 2.0 s")


def test_profiles_report_their_cpu_wait(tmp_path: Path) -> None:
    result = run(spec(profiles=["etcd", "randRead"], queueDepths=[4], sizeInMiB=1), tmp_path)
    assert all(p.cpu_wait_ms >= 0 for p in result.profiles)
    assert all(p.cpu_percent > 0 for p in result.profiles)


def test_a_short_wait_on_a_short_profile_is_not_said() -> None:
    short = DiskProfileResult(name="seqRead", profile="seqRead", seconds=0.02, cpu_wait_ms=6.0)  # 30 %, 6 ms
    assert diskio.contention_notes("n", [short]) == []
