"""The DiskIO I/O loops: blocking system calls in plain threads, timed one by one.

``os.pwrite``, ``os.preadv`` and ``os.fdatasync`` release the GIL for the duration of the call,
so N threads keep N I/Os in flight (queue depth N), the way fio's ``psync`` engine does with N
jobs. Buffers are ``mmap`` memory, page aligned as O_DIRECT requires, filled with random bytes so
that no layer can compress or deduplicate them. Every loop stops at its byte quota, at its
deadline (``perf_counter``) or when its :class:`Stopper` is set, whichever comes first, and never
leaves a thread behind: :meth:`Stopper.halt` joins them.
"""

from __future__ import annotations

import mmap
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kdoctor.specs.latency import Latency


@dataclass
class Outcome:
    """What one loop (or all threads of one queue depth) did."""

    operations: int = 0
    bytes: int = 0
    seconds: float = 0.0
    complete: bool = True
    latency: Latency = field(default_factory=Latency)
    waited_ns: int = 0
    """Time the loop's threads were ready to run but waited for a CPU (run-queue wait)."""

    def add(self, other: Outcome) -> None:
        self.waited_ns += other.waited_ns
        self.operations += other.operations
        self.bytes += other.bytes
        self.seconds = max(self.seconds, other.seconds)
        self.complete = self.complete and other.complete
        self.latency.merge(other.latency)


class Stopper:
    """Tells loops to stop, and joins the threads running them."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.threads: list[threading.Thread] = []

    def halt(self, timeout: float = 10.0) -> bool:
        """Stop every loop and wait (bounded) for its thread to leave its current system call;
        ``True`` when every thread has ended (only then may their descriptors be closed)."""
        self.event.set()
        limit = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, limit - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)


def _buffer(size: int) -> mmap.mmap:
    buf = mmap.mmap(-1, max(size, mmap.PAGESIZE))
    buf.write(os.urandom(len(buf)))
    return buf


def run_queue_wait_ns() -> int:
    """Nanoseconds the calling thread has waited on a run queue (``/proc/thread-self/schedstat``,
    second field); 0 where the kernel does not tell."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def in_threads(stopper: Stopper, count: int, work: Callable[[int], Outcome]) -> Outcome:
    """Run ``work(i)`` in ``count`` threads at once; the merged outcome (first error re-raised),
    with the time the threads waited for a CPU."""
    results: list[Outcome | BaseException] = [Outcome() for _ in range(count)]

    def body(index: int) -> None:
        try:
            waited = run_queue_wait_ns()
            result = work(index)
            result.waited_ns += run_queue_wait_ns() - waited
            results[index] = result
        except BaseException as exc:  # handed to the caller below
            results[index] = exc
            stopper.event.set()

    threads = [threading.Thread(target=body, args=(i,), name=f"kdoctor-disk-{i}", daemon=True)
               for i in range(count)]
    stopper.threads += threads
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Outcome()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        total.add(result)
    return total


def write_sequential(fd: int, size: int, block: int, deadline: float, stopper: Stopper, *,
                     sync_each: bool = False, sync_at_end: bool = False) -> Outcome:
    """Write ``size`` bytes from offset 0 in ``block``-byte writes.

    With ``sync_each`` every write is followed by ``fdatasync`` and the latency is that of the
    fdatasync (fio's ``--fdatasync=1`` sync percentiles); otherwise the latency is the write's.
    With ``sync_at_end`` a final fdatasync is inside the timing (buffered bandwidth must include
    getting the data to the disk).
    """
    out = Outcome()
    buf = _buffer(block)
    view = memoryview(buf)
    offset = 0
    clock = time.perf_counter_ns
    start = clock()
    end = int(deadline * 1e9)
    try:
        while offset < size:
            if stopper.event.is_set() or clock() >= end:
                out.complete = False
                break
            length = min(block, size - offset)
            t = clock()
            written = os.pwrite(fd, view[:length], offset)
            if sync_each:
                t = clock()
                os.fdatasync(fd)
            out.latency.record_us((clock() - t) // 1000)
            offset += written
            out.operations += 1
        if sync_at_end and not stopper.event.is_set():
            os.fdatasync(fd)
        out.bytes = offset
        out.seconds = (clock() - start) / 1e9
    finally:
        view.release()
        buf.close()
    return out


def read_sequential(fd: int, size: int, block: int, deadline: float, stopper: Stopper) -> Outcome:
    """Read ``size`` bytes from offset 0 in ``block``-byte reads."""
    out = Outcome()
    buf = _buffer(block)
    offset = 0
    clock = time.perf_counter_ns
    start = clock()
    end = int(deadline * 1e9)
    try:
        while offset < size:
            if stopper.event.is_set() or clock() >= end:
                out.complete = False
                break
            want = min(block, size - offset)
            t = clock()
            got = os.preadv(fd, [buf], offset) if want == len(buf) else os.preadv(fd, [memoryview(buf)[:want]], offset)
            out.latency.record_us((clock() - t) // 1000)
            if got <= 0:
                break
            offset += got
            out.operations += 1
        out.bytes = offset
        out.seconds = (clock() - start) / 1e9
    finally:
        buf.close()
    return out


def random_io(fd: int, file_size: int, block: int, depth: int, total_bytes: int, deadline: float,
              stopper: Stopper, *, write: bool, sync_at_end: bool = False) -> Outcome:
    """``depth`` threads doing ``block``-sized I/O at random aligned offsets of the file, in all
    ``total_bytes`` (split evenly between the threads), until the deadline.

    The loop holds the GIL as briefly as it can, since every thread needs it between two I/Os:
    offsets are drawn beforehand and latencies go to a plain list, recorded into the histogram
    after the timed window.
    """
    blocks = max(1, file_size // block)
    total_ops = max(1, total_bytes // block)
    end = int(deadline * 1e9)
    clock = time.perf_counter_ns
    windows: list[tuple[int, int]] = []

    def one(index: int) -> Outcome:
        out = Outcome()
        quota = total_ops // depth + (1 if index < total_ops % depth else 0)
        rng = random.Random(index * 7919 + os.getpid())
        offsets = [rng.randrange(blocks) * block for _ in range(quota)]
        buf = _buffer(block)
        bufs = [buf]
        times: list[int] = []
        record = times.append
        event = stopper.event
        io = os.pwrite if write else os.preadv
        target: mmap.mmap | list[mmap.mmap] = buf if write else bufs
        done = 0
        start = now = clock()
        try:
            for offset in offsets:
                if now >= end or event.is_set():
                    out.complete = False
                    break
                done += io(fd, target, offset)  # type: ignore[arg-type]
                after = clock()
                record(after - now)
                now = after
            windows.append((start, now))
        finally:
            buf.close()
        out.operations = len(times)
        out.bytes = done
        out.seconds = (now - start) / 1e9
        for ns in times:
            out.latency.record_us(ns // 1000)
        return out

    total = in_threads(stopper, depth, one)
    if write and sync_at_end and not stopper.event.is_set():
        t = clock()
        os.fdatasync(fd)
        windows.append((t, clock()))
    # IOPS over the union of the threads' timed windows (first start to last end), not per thread.
    if windows:
        total.seconds = (max(w[1] for w in windows) - min(w[0] for w in windows)) / 1e9
    return total
