"""DiskIO on a real filesystem: every profile does the I/O it reports and leaves nothing behind;
directories that lead out of the data directory, and runs that would fill the disk, are refused
before anything is written."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from kdoctor.errors import ProbeError, SpecError
from kdoctor.probes import diskio, diskplace
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.specs import load_spec
from kdoctor.specs.diskio import DiskExpect, DiskIO
from kdoctor.specs.plan import Assignment
from kdoctor.specs.results import DiskProfileResult, LatencyMs, NodeResult

MIB = 1024 * 1024
ALL = ["etcd", "seqWrite", "seqRead", "randRead", "randWrite"]


def spec(directory: str = "disk", profiles: list[str] | None = None, **request: Any) -> DiskIO:
    model = load_spec({
        "apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": "disk"},
        "spec": {"target": {"directory": directory, "profiles": profiles or ALL},
                 "request": {"durationInSecond": 10, "sizeInMiB": 2, "freeSpaceMarginInMiB": 0,
                             "queueDepths": [1, 4], **request}},
    })
    assert isinstance(model, DiskIO)
    return model


def node(data_dir: Path) -> NodeContext:
    return NodeContext(name="n", data_dir=str(data_dir), resolv_conf="/etc/resolv.conf")


def run(model: DiskIO, data_dir: Path, timeout: float | None = None) -> NodeResult:
    assignment = Assignment(round_id="r", job="j", round=1, kind="DiskIO", name="disk", spec={}, node="n",
                            start_at=0, deadline=0)

    async def go() -> NodeResult:
        return await asyncio.wait_for(
            diskio.run(assignment, model, time.perf_counter(), GeneratorMonitor(), node(data_dir)), timeout)

    return asyncio.run(go())


def everything_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("direct", [True, False])
def test_every_profile_does_what_it_reports_and_leaves_nothing(
        tmp_path: Path, direct: bool) -> None:
    result = run(spec("a/b", directIO=direct), tmp_path)
    assert result.status == "passed", result.reason
    by_name = {p.name: p for p in result.profiles}
    assert list(by_name) == ["etcd", "seqWrite", "seqRead", "randRead/qd1", "randRead/qd4",
                             "randWrite/qd1", "randWrite/qd4"]
    size = 2 * MIB
    etcd = by_name["etcd"]
    assert etcd.bytes_written == size and etcd.block_size == 2300
    assert etcd.operations == -(-size // 2300) == etcd.latency_ms.count
    assert etcd.latency_of == "fdatasync" and not etcd.direct_io
    assert by_name["seqWrite"].bytes_written == size and by_name["seqWrite"].operations == 2
    assert by_name["seqRead"].bytes_read == size and by_name["seqRead"].bytes_written == 0
    for name in ("randRead/qd1", "randRead/qd4", "randWrite/qd1", "randWrite/qd4"):
        prof = by_name[name]
        assert prof.operations == size // 4096 == prof.latency_ms.count
        assert prof.bytes_read + prof.bytes_written == size
    assert by_name["randRead/qd4"].queue_depth == 4
    for prof in result.profiles:
        assert prof.complete and prof.verdict == "passed"
        assert prof.filesystem not in ("", "unknown")
        assert prof.mib_per_second > 0 and prof.iops > 0 and prof.histogram
        lat = prof.latency_ms
        assert lat.min is not None and lat.max is not None and lat.p50 is not None and lat.p99 is not None
        assert 0 < lat.min <= lat.p50 <= lat.p99 <= lat.max
        if prof.profile != "etcd":
            assert prof.direct_io is direct
            assert ("O_DIRECT" in prof.cache) is direct
    # Files and the directories the probe created are gone.
    assert everything_under(tmp_path) == []


def test_cancelled_run_removes_its_files(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError):
        run(spec(profiles=["etcd"], sizeInMiB=22, durationInSecond=60), tmp_path, timeout=0.3)
    assert everything_under(tmp_path) == []


def test_files_of_a_killed_run_are_swept_at_the_next_run(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys

    # A real process creates a test file the way a probe does, then dies by SIGKILL.
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from kdoctor.probes import diskplace\n"
        f"place = diskplace.open_place({str(tmp_path)!r}, 'disk')\n"
        "place.new_file('etcd', direct=False)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait()
    (orphan,) = os.listdir(tmp_path / "disk")
    # Files of a live process and of another host sharing the storage must survive.
    live = f"{diskplace.FILE_PREFIX}etcd-{socket.gethostname()}-{os.getpid()}-{'a' * 12}"
    other_host = f"{diskplace.FILE_PREFIX}etcd-elsewhere-{child.pid}-{'b' * 12}"
    for name in (live, other_host):
        (tmp_path / "disk" / name).write_bytes(b"x")

    result = run(spec(profiles=["etcd"]), tmp_path)

    assert result.status == "passed", result.reason
    assert sorted(os.listdir(tmp_path / "disk")) == sorted([live, other_host])
    assert any("removed 1 test file(s)" in w and orphan in w for w in result.warnings), result.warnings


def test_duration_cuts_a_profile_short_and_says_so(tmp_path: Path) -> None:
    result = run(spec(profiles=["etcd"], sizeInMiB=22, durationInSecond=1), tmp_path)
    (etcd,) = result.profiles
    if etcd.complete:  # a disk that syncs 10,000 times a second finishes anyway
        pytest.skip("the disk finished 22 MiB of synced writes within 1 s")
    assert etcd.bytes_written < 22 * MIB and "cut by durationInSecond" in etcd.reason


@pytest.mark.parametrize("directory", ["../outside", "a/../../outside"])
def test_dotdot_is_refused_by_the_spec(directory: str) -> None:
    with pytest.raises(SpecError, match=r"target\.directory: must not contain '\.\.'"):
        spec(directory)


def test_escapes_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (data / "link").symlink_to(outside)
    (data / "real").mkdir()
    (data / "real" / "deeper").symlink_to(outside)
    with pytest.raises(ProbeError, match="outside this worker's data directory"):
        run(spec(str(outside)), data)
    for escape in ("link", "link/sub", "real/deeper"):
        with pytest.raises(ProbeError, match="symlink"):
            run(spec(escape), data)
    # The place itself refuses '..' even if a spec bypassed validation.
    with pytest.raises(ProbeError, match=r"'\.\.'"):
        diskplace.open_place(str(data), "../outside")
    assert everything_under(outside) == []
    assert everything_under(data) == ["link", "real", "real/deeper"]


def test_absolute_path_inside_the_data_directory_is_accepted(tmp_path: Path) -> None:
    result = run(spec(str(tmp_path / "inside"), profiles=["seqWrite"]), tmp_path)
    assert result.status == "passed", result.reason
    assert result.profiles[0].directory == str(tmp_path.resolve() / "inside")


def test_missing_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="--data-dir"):
        run(spec(), tmp_path / "nope")


def test_too_small_free_space_margin_is_refused(tmp_path: Path) -> None:
    free_mib = diskplace.open_place(str(tmp_path), ".").free_bytes() // MIB
    with pytest.raises(ProbeError, match=r"not enough free space.*request\.freeSpaceMarginInMiB"):
        run(spec(freeSpaceMarginInMiB=free_mib), tmp_path)
    assert everything_under(tmp_path) == []


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(SpecError) as err:
        spec(blockSizeInKiB=6, queueDepths=[0, 4], profiles=["etcd", "etcd"])
    text = str(err.value)
    assert "request.blockSizeInKiB: must be a multiple of 4 KiB" in text
    assert "request.queueDepths: each queue depth must be 1..256" in text
    assert "target.profiles: each profile at most once" in text
    with pytest.raises(SpecError, match=r"target\.profiles\.0: input should be 'etcd'"):
        spec(profiles=["fsync"])
    with pytest.raises(SpecError, match=r"minIopsByDepth names depth\(s\) \[32\] that request\.queueDepths"):
        load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": "d"},
                   "spec": {"request": {"queueDepths": [1, 4]}, "expect": {"minIopsByDepth": {1: 10, 32: 10}}}})
    loaded = load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": "d"},
                        "spec": {"request": {"queueDepths": [1, 4]}, "expect": {"minIopsByDepth": {"4": 10}}}})
    assert isinstance(loaded, DiskIO) and loaded.spec.expect.min_iops_at(4) == 10


def test_budget_covers_every_phase() -> None:
    model = spec(durationInSecond=3)
    # etcd, seqWrite, layout, seqRead, 2 depths × (randRead, randWrite)
    assert diskio.phases(model) == 8
    assert diskio.budget(model) == 8 * 3 + diskio.SETUP_SECONDS
    assert not diskio.serial(model) and diskio.serial(spec(serial=True))


def _profile(profile: str, **figures: Any) -> DiskProfileResult:
    return DiskProfileResult(name=profile, profile=profile, operations=10, **figures)


@pytest.mark.parametrize(("result", "expect", "verdict"), [
    (_profile("etcd", latency_ms=LatencyMs(p99=9.0)), DiskExpect(), "passed"),
    (_profile("etcd", latency_ms=LatencyMs(p99=11.0)), DiskExpect(), "failed"),
    (_profile("seqWrite", mib_per_second=90.0), DiskExpect(minWriteMiBps=100), "failed"),
    (_profile("seqRead", mib_per_second=90.0), DiskExpect(minReadMiBps=50), "passed"),
    (_profile("randRead", iops=900.0), DiskExpect(minIops=1000), "failed"),
    (_profile("randWrite", iops=900.0), DiskExpect(minIops=100), "passed"),
    (_profile("randRead", iops=9000.0, queue_depth=32), DiskExpect(minIops=1000, minIopsByDepth={32: 20000}),
     "failed"),
    (_profile("randRead", iops=900.0, queue_depth=1), DiskExpect(minIops=5000, minIopsByDepth={1: 800}), "passed"),
    (DiskProfileResult(name="etcd", profile="etcd"), DiskExpect(), "failed"),
])
def test_judge(result: DiskProfileResult, expect: DiskExpect, verdict: str) -> None:
    got, reason = diskio.judge(result, expect)
    assert got == verdict
    assert bool(reason) == (verdict == "failed")


def test_filesystem_type_is_found() -> None:
    fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert diskplace.filesystem_of(fd) == "proc"
    finally:
        os.close(fd)


def test_a_refused_directory_ends_as_an_error_node_with_the_reason(
        tmp_path: Path) -> None:
    from kdoctor.probes.runner import run_assignment
    from kdoctor.specs.loading import spec_json

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "out").symlink_to(tmp_path)
    now = time.time()
    result = run_assignment(Assignment(
        round_id="r", job="j", round=1, kind="DiskIO", name="disk", spec=spec_json(spec("out")), node="n",
        start_at=now, deadline=now + 30), node(tmp_path / "data"))
    assert result.status == "error"
    assert "symlink" in result.reason and result.profiles == []
    assert everything_under(tmp_path) == ["data", "data/out"]
