"""DiskIO: measure the disk under a directory of this node, profile by profile.

==========  ==========================  ==================  =====================  ================
profile     I/O                         file                latency is of          judged by
==========  ==========================  ==================  =====================  ================
etcd        2,300 B write + fdatasync   new, preallocated   fdatasync              fdatasyncP99InMs
seqWrite    blockSizeInKiB writes       new, preallocated   each write             minWriteMiBps
seqRead     blockSizeInKiB reads        laid out first      each read              minReadMiBps
randRead    4 KiB reads, depth N        laid out first      each read              minIops(ByDepth)
randWrite   4 KiB writes, depth N       laid out first      each write             minIops(ByDepth)
==========  ==========================  ==================  =====================  ================

Engines (each result names its own, ``engine``): the random profiles at a depth above 1 on an
O_DIRECT file use Linux native AIO (``libaio``, :mod:`kdoctor.probes.diskaio`: one thread keeps N
requests in flight, as fio's libaio engine); everything else, and the fallback where AIO is not
available or ``KDOCTOR_DISK_ENGINE=psync``, is ``psync``: N threads, each a blocking
``pread``/``pwrite`` (:mod:`kdoctor.probes.diskwork`), which the GIL caps well below a fast disk at
depth 32. Each profile reports the probe's CPU over its timed window; at
:data:`~kdoctor.probes.measure.SATURATED_CPU_PERCENT` of a core the generator, not the disk, may be
the limit, and the node's ``generator`` block and warnings say so.

Needs: a writable directory under the worker's data directory (a hostPath in Kubernetes); no
privileges. Safety: the directory is opened by :mod:`kdoctor.probes.diskplace` (no escape, free
space checked before writing, files always removed). Bandwidth and IOPS use O_DIRECT where the
filesystem supports it; otherwise buffered I/O with the page cache dropped before reads
(``posix_fadvise(DONTNEED)``) and writes flushed inside the timing, and the report says so.
The etcd profile is buffered on purpose: that is what etcd's WAL (and fio's recipe) does.
seqWrite ends with an fdatasync inside the timing even with O_DIRECT (fio ``--end_fsync=1``):
O_DIRECT bypasses the page cache, not the device's volatile write cache, and without the flush the
figure was that cache's speed (issue 17: 0.94-1.44 x fio from one run to the next).

Each profile also reports ``cpuWaitMs``, the time its I/O threads were ready to run but waited for
a CPU (``/proc/thread-self/schedstat``): a latency ends when the thread that timed it runs again,
so on a node whose cores are busy, the etcd p99 is a scheduler tick (4 ms at HZ=250) whatever the
disk does (measured in issue 17: the p99 of real rounds followed that wait, fio's alike); a
profile that waited 2 % of its time gets a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kdoctor.probes import diskaio, diskplace, diskwork
from kdoctor.probes.kinds import Kind, NodeContext
from kdoctor.probes.measure import SATURATED_CPU_PERCENT, CpuMeter, GeneratorMonitor
from kdoctor.specs import diskio as dspec
from kdoctor.specs.diskio import DiskExpect, DiskIO, Profile
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import Assignment, PlannedTarget, RoundContext
from kdoctor.specs.results import DiskProfileResult, GeneratorStats, NodeResult, Verdict

MIB = 1024 * 1024
# Opening the directory, probing O_DIRECT and removing the files; kept out of the profiles' time.
SETUP_SECONDS = 2.0
# How long a stopped probe waits for its I/O threads before reporting anyway.
HALT_SECONDS = 1.0


def _started() -> CpuMeter:
    """The probe's CPU from now on (the probe runs in a process of its own, so this is the
    probe's: its I/O threads, setup and the kernel's work on its behalf)."""
    meter = CpuMeter()
    meter.start()
    return meter


def phases(spec: DiskIO) -> int:
    """How many ``durationInSecond`` slots a node needs: one per profile and queue depth, plus one
    to lay out the file the read and random profiles share."""
    profiles = set(spec.spec.target.profiles)
    depths = len(spec.spec.request.queue_depths)
    count = ("etcd" in profiles) + ("seqWrite" in profiles) + ("seqRead" in profiles)
    count += depths * (("randRead" in profiles) + ("randWrite" in profiles))
    return count + bool(profiles & {"seqRead", "randRead", "randWrite"})


def budget(spec: DiskIO) -> float:
    """Seconds one node needs at most (the coordinator staggers ``serial`` nodes by this)."""
    return phases(spec) * spec.spec.request.duration_in_second + SETUP_SECONDS


def serial(spec: DiskIO) -> bool:
    """Whether the nodes run one after another (``request.serial``)."""
    return spec.spec.request.serial


def etcd_bytes(spec: DiskIO) -> int:
    """Bytes the etcd profile writes: fio's 22 MiB, or ``sizeInMiB`` when smaller."""
    return min(dspec.ETCD_SIZE_MIB, spec.spec.request.size_in_mi_b) * MIB


def needed_bytes(spec: DiskIO) -> int:
    """The most this run can have on disk (every file it may create, counted at once)."""
    profiles = set(spec.spec.target.profiles)
    size = spec.spec.request.size_bytes
    needed = etcd_bytes(spec) if "etcd" in profiles else 0
    needed += size if "seqWrite" in profiles else 0
    needed += size if profiles & {"seqRead", "randRead", "randWrite"} else 0
    return needed


def plan(spec: DiskIO, source: NodeInfo, ctx: RoundContext) -> tuple[list[PlannedTarget], list[str]]:
    """One target per node: its own disk under ``target.directory``."""
    directory = spec.spec.target.directory
    return [PlannedTarget(name=f"disk/{source.name}", kind="disk", url=f"file:{directory}",
                          destination=source.name)], []


def judge(result: DiskProfileResult, expect: DiskExpect) -> tuple[Verdict, str]:
    """The verdict of one profile against ``expect`` (pure)."""
    if result.operations == 0:
        return "failed", "no I/O completed"
    p99 = result.latency_ms.p99
    if result.profile == "etcd" and expect.fdatasync_p99_in_ms is not None and p99 is not None \
            and p99 > expect.fdatasync_p99_in_ms:
        return "failed", f"fdatasync p99 {p99:.3f} ms > {expect.fdatasync_p99_in_ms:g} ms"
    if result.profile == "seqWrite" and expect.min_write_mi_bps is not None \
            and result.mib_per_second < expect.min_write_mi_bps:
        return "failed", f"write {result.mib_per_second:.1f} MiB/s < {expect.min_write_mi_bps:g} MiB/s"
    if result.profile == "seqRead" and expect.min_read_mi_bps is not None \
            and result.mib_per_second < expect.min_read_mi_bps:
        return "failed", f"read {result.mib_per_second:.1f} MiB/s < {expect.min_read_mi_bps:g} MiB/s"
    minimum = expect.min_iops_at(result.queue_depth)
    if result.profile in ("randRead", "randWrite") and minimum is not None and result.iops < minimum:
        return "failed", f"{result.iops:.0f} IOPS < {minimum:g} at depth {result.queue_depth}"
    return "passed", ""


def node_verdict(profiles: list[DiskProfileResult]) -> tuple[Verdict, str]:
    """A node passes when every profile passed; the reason names the failed ones."""
    failed = [p for p in profiles if p.verdict != "passed"]
    if not failed:
        return "passed", ""
    shown = "; ".join(f"{p.name}: {p.reason}" for p in failed)
    return "failed", f"{len(failed)} of {len(profiles)} profile(s) failed: {shown}"


@dataclass
class _File:
    fd: int
    name: str
    size: int
    direct: bool


@dataclass
class _Session:
    """One node's run: the place, the open files, the clock."""

    place: diskplace.Place
    spec: DiskIO
    end: float
    stopper: diskwork.Stopper = field(default_factory=diskwork.Stopper)
    engine: str = "auto"
    fds: list[int] = field(default_factory=list)
    shared: _File | None = None
    warnings: list[str] = field(default_factory=list)
    _aio_missing: str | None = None

    def engine_for(self, file: _File, depth: int) -> str:
        """``libaio`` or ``psync`` for a random profile at ``depth`` on ``file``; a fallback the
        user asked not to have is said once in the warnings."""
        if depth == 1 or self.engine == "psync":
            return "psync"
        why = ""
        if not file.direct:
            why = "the file is buffered (AIO on a buffered file blocks in io_submit)"
        else:
            if self._aio_missing is None:
                self._aio_missing = diskaio.unavailable()
            if self._aio_missing:
                why = f"Linux AIO is not available here ({self._aio_missing})"
        if not why:
            return "libaio"
        note = (f"queue depths above 1 ran with the psync engine (one thread per request in flight, "
                f"bound by Python's GIL: compare with fio --ioengine=psync --numjobs=N): {why}")
        if (self.engine == "libaio" or file.direct) and note not in self.warnings:
            self.warnings.append(note)
        return "psync"

    def deadline(self) -> float:
        return min(time.perf_counter() + self.spec.spec.request.duration_in_second, self.end)

    async def _in_thread(self, work: Callable[[int], diskwork.Outcome]) -> diskwork.Outcome:
        # Through in_threads, so that Stopper.halt can join the thread before its file is closed.
        return await asyncio.to_thread(diskwork.in_threads, self.stopper, 1, work)

    async def _aio(self, file: _File, block: int, depth: int, end: float, *, write: bool) -> diskwork.Outcome:
        size = self.spec.spec.request.size_bytes
        return await self._in_thread(lambda _: diskaio.random_io(
            file.fd, file.size, block, depth, size, end, self.stopper, write=write))

    def _open(self, tag: str, direct: bool) -> _File:
        fd, name, used = self.place.new_file(tag, direct)
        self.fds.append(fd)
        return _File(fd, name, 0, used)

    def _close(self, file: _File) -> None:
        self.fds.remove(file.fd)
        os.close(file.fd)
        self.place.remove(file.name)

    async def _shared_file(self) -> _File:
        """The file seqRead, randRead and randWrite use, laid out (written) once."""
        if self.shared is None:
            req = self.spec.spec.request
            file = self._open("data", req.direct_io)
            os.posix_fallocate(file.fd, 0, req.size_bytes)
            block = req.block_size_in_ki_b * 1024
            end = self.deadline()
            out = await self._in_thread(lambda _: diskwork.write_sequential(
                file.fd, req.size_bytes, block, end, self.stopper, sync_at_end=True))
            # Only what was laid out in time is read (a slow disk gets a smaller file, reported).
            file.size = out.bytes - out.bytes % (req.random_block_size_in_ki_b * 1024)
            self.shared = file
        return self.shared

    def _drop_cache(self, file: _File) -> None:
        if not file.direct:
            os.posix_fadvise(file.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _result(self, profile: Profile, out: diskwork.Outcome, file: _File, *, block: int, depth: int = 1,
                written: bool, latency_of: str, cpu_percent: float, engine: str = "psync",
                direct: bool | None = None) -> DiskProfileResult:
        used = file.direct if direct is None else direct
        if used and profile == "seqWrite":
            cache = "bypassed (O_DIRECT); the device's write cache flushed by fdatasync inside the timing"
        elif used:
            cache = "bypassed (O_DIRECT)"
        elif latency_of == "fdatasync" or written:
            cache = "buffered; flushed by fdatasync inside the timing"
        else:
            cache = "buffered; page cache dropped before reading (posix_fadvise DONTNEED)"
        seconds = max(out.seconds, 1e-9)
        name = f"{profile}/qd{depth}" if profile in ("randRead", "randWrite") else profile
        result = DiskProfileResult(
            name=name, profile=profile, queue_depth=depth, block_size=block, directory=self.place.path,
            filesystem=self.place.filesystem, direct_io=used, cache=cache, file_size=file.size,
            bytes_written=out.bytes if written else 0, bytes_read=0 if written else out.bytes,
            operations=out.operations, seconds=round(out.seconds, 6),
            mib_per_second=round(out.bytes / MIB / seconds, 3), iops=round(out.operations / seconds, 1),
            complete=out.complete, latency_of=latency_of, latency_ms=out.latency.summary(),
            histogram=out.latency.encode(), engine=engine,
            cpu_percent=round(cpu_percent, 1), cpu_wait_ms=round(out.waited_ns / 1e6, 3),
        )
        verdict, reason = judge(result, self.spec.spec.expect)
        if not out.complete and verdict == "passed":
            reason = f"cut by durationInSecond after {out.bytes / MIB:.1f} MiB"
        return result.model_copy(update={"verdict": verdict, "reason": reason})

    async def etcd(self) -> list[DiskProfileResult]:
        size = etcd_bytes(self.spec)
        file = self._open("etcd", direct=False)
        os.posix_fallocate(file.fd, 0, size)
        file.size = size
        end = self.deadline()
        cpu = _started()
        out = await self._in_thread(lambda _: diskwork.write_sequential(
            file.fd, size, dspec.ETCD_BLOCK_BYTES, end, self.stopper, sync_each=True))
        _, percent = cpu.cpu()
        self._close(file)
        return [self._result("etcd", out, file, block=dspec.ETCD_BLOCK_BYTES, written=True,
                             latency_of="fdatasync", cpu_percent=percent)]

    async def seq_write(self) -> list[DiskProfileResult]:
        req = self.spec.spec.request
        file = self._open("seqwrite", req.direct_io)
        os.posix_fallocate(file.fd, 0, req.size_bytes)
        file.size = req.size_bytes
        block = req.block_size_in_ki_b * 1024
        end = self.deadline()
        cpu = _started()
        out = await self._in_thread(lambda _: diskwork.write_sequential(
            file.fd, req.size_bytes, block, end, self.stopper, sync_at_end=True))
        _, percent = cpu.cpu()
        self._close(file)
        return [self._result("seqWrite", out, file, block=block, written=True, latency_of="write", cpu_percent=percent)]

    async def seq_read(self) -> list[DiskProfileResult]:
        file = await self._shared_file()
        block = self.spec.spec.request.block_size_in_ki_b * 1024
        self._drop_cache(file)
        end = self.deadline()
        cpu = _started()
        out = await self._in_thread(lambda _: diskwork.read_sequential(
            file.fd, file.size, block, end, self.stopper))
        _, percent = cpu.cpu()
        return [self._result("seqRead", out, file, block=block, written=False, latency_of="read", cpu_percent=percent)]

    async def random(self, profile: Profile) -> list[DiskProfileResult]:
        req = self.spec.spec.request
        file = await self._shared_file()
        write = profile == "randWrite"
        block = req.random_block_size_in_ki_b * 1024
        results = []
        for depth in req.queue_depths:
            self._drop_cache(file)
            if not file.direct:
                os.posix_fadvise(file.fd, 0, 0, os.POSIX_FADV_RANDOM)
            end = self.deadline()
            engine = self.engine_for(file, depth)
            cpu = _started()
            if engine == "libaio":
                out = await self._aio(file, block, depth, end, write=write)
            else:
                out = await asyncio.to_thread(
                    diskwork.random_io, file.fd, file.size, block, depth, req.size_bytes, end, self.stopper,
                    write=write, sync_at_end=write and not file.direct)
            _, percent = cpu.cpu()
            results.append(self._result(profile, out, file, block=block, depth=depth, written=write,
                                        latency_of="write" if write else "read", cpu_percent=percent, engine=engine))
        return results

    def close(self) -> list[str]:
        """Stop every loop, close the files, remove them; warnings when something lingered."""
        warnings = []
        fds, self.fds = self.fds, []

        def close_fds() -> None:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

        # Bounded: the result must still reach the coordinator before the round's deadline.
        if self.stopper.halt(HALT_SECONDS):
            close_fds()
        else:
            # A thread still inside a system call owns its descriptor: its number must not be
            # reused under it, so the descriptors are closed once the thread is out (the pool
            # process lives on, so leaving them open would pin the disk space). Names go now.
            warnings.append("a disk I/O was still in flight when the probe stopped; its file is "
                            "removed and its space freed when the I/O returns")

            def reap() -> None:
                self.stopper.halt(timeout=3600.0)
                close_fds()

            threading.Thread(target=reap, name="kdoctor-disk-reaper", daemon=True).start()
        self.place.close()
        return warnings


async def run(assignment: Assignment, spec: DiskIO, t0: float, monitor: GeneratorMonitor,
              node: NodeContext) -> NodeResult:
    """Run every requested profile under ``node.data_dir``, starting at ``t0``; always clean up."""
    request = spec.spec.request
    place = diskplace.open_place(node.data_dir, spec.spec.target.directory)
    session = _Session(place, spec, end=t0 + budget(spec) - SETUP_SECONDS / 2, engine=node.disk_engine)
    results: list[DiskProfileResult] = []
    warnings: list[str] = []
    try:
        swept = place.sweep_orphans()
        if swept:
            warnings.append(f"removed {len(swept)} test file(s) an earlier, killed run left in "
                            f"{place.path}: {', '.join(sorted(swept)[:3])}{' …' if len(swept) > 3 else ''}")
        place.check_free_space(needed_bytes(spec), request.free_space_margin_in_mi_b * MIB)
        if request.direct_io and not place.supports_direct():
            warnings.append(f"{place.filesystem} at {place.path} refuses O_DIRECT: buffered I/O with "
                            "the page cache dropped before reads")
        wanted = set(spec.spec.target.profiles)
        for profile in dspec.PROFILES:
            if profile not in wanted:
                continue
            if profile == "etcd":
                results += await session.etcd()
            elif profile == "seqWrite":
                results += await session.seq_write()
            elif profile == "seqRead":
                results += await session.seq_read()
            else:
                results += await session.random(profile)
    finally:
        warnings += session.warnings
        warnings += session.close()
    status, reason = node_verdict(results)
    warnings += contention_notes(assignment.node, results)
    generator = generator_stats(monitor.finish(0), results)
    if generator.saturated:
        warnings.append(f"{assignment.node}: I/O generator saturated ({generator.reason}): those "
                        "figures are the generator's limit, not necessarily the disk's")
    return NodeResult(node=assignment.node, status=status, reason=reason, profiles=results, warnings=warnings,
                      generator=generator)


CPU_WAIT_SHARE = 0.02
"""A profile whose I/O threads waited for a CPU this share of its time gets a warning..."""
CPU_WAIT_MIN_MS = 50.0
"""...when the wait is at least this long: a dozen scheduler ticks (4 ms at HZ=250) over a short
profile cannot move its tail, and a warning on every profile of a busy 2-core demo is noise."""


def contention_notes(node: str, profiles: list[DiskProfileResult]) -> list[str]:
    """Warnings for profiles whose I/O threads waited for a CPU: the latency of each I/O includes
    the wake-up after it, so other processes on the node's cores show in the tail (one scheduler
    tick, 4 ms at HZ=250, per I/O that waited), not the disk."""
    notes = []
    for p in profiles:
        threads = p.queue_depth if p.engine == "psync" else 1
        if (p.seconds > 0 and p.cpu_wait_ms >= CPU_WAIT_MIN_MS
                and p.cpu_wait_ms / 1000 >= CPU_WAIT_SHARE * p.seconds * threads):
            notes.append(f"{node}: {p.name}: the I/O thread(s) waited {p.cpu_wait_ms:.0f} ms for a CPU over "
                         f"{p.seconds:.1f} s: other processes share this node's cores, and the latency tail "
                         "includes that wait, not only the disk's")
    return notes


def generator_stats(whole: GeneratorStats, profiles: list[DiskProfileResult]) -> GeneratorStats:
    """The node's generator block: CPU of the whole run, judged profile by profile (a run that
    mostly waits on fdatasync must not hide a random profile that kept a core busy)."""
    busy = [p for p in profiles if p.cpu_percent >= SATURATED_CPU_PERCENT]
    if not busy:
        return whole.model_copy(update={"saturated": False, "reason": ""})
    shown = ", ".join(f"{p.name} ({p.engine}) at {p.cpu_percent:.0f}%" for p in busy)
    return whole.model_copy(update={"saturated": True, "reason": f"CPU of a core: {shown}",
                                    "cpu_percent": max(p.cpu_percent for p in busy)})


KIND: Kind[DiskIO] = Kind("DiskIO", plan, run, budget, serial)
