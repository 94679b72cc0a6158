"""DiskIO's deep-queue engine: Linux native AIO (``io_submit`` / ``io_getevents``) on O_DIRECT files.

Random I/O at queue depth N with N threads (:func:`kdoctor.probes.diskwork.random_io`) is bound by
the GIL: every I/O needs the interpreter between two system calls, so 32 threads reached about
0.4 × fio's libaio IOPS here (issue 17). One thread that keeps N requests in the kernel's queue
does not need the interpreter while the disk works: this module is fio's ``libaio`` engine in
Python, with fio's defaults: each request submitted by its own ``io_submit`` as soon as a slot is
free (``iodepth_batch_submit=1``), completions reaped as they come (``iodepth_batch_complete_min=1``,
here at most :data:`REAP` at a time). Submitting the whole batch a reap returned in one call was
measured slower (0.75 × fio): the device's queue drains while the batch is rebuilt, and refills
in a burst.

Why the system calls through :mod:`ctypes` rather than a binding (checked 2026-12-02 on PyPI):

* ``liburing`` (2026.3.30, Zig): ``io_uring_prep_read`` takes a ``bytearray`` only, which is not
  aligned as O_DIRECT requires (every read failed with EINVAL); ``prep_readv`` over memoryview
  iovecs ran, but about one completion in eight read back ``res == 0`` when a batch was drained
  through ``Cqe[i]``, and the binding itself warns that batch peeking may segfault;
* ``libaio`` (0.9.5) is itself ctypes, over the system library ``libaio.so.1`` (one more
  package in every node's image), with an ``AIOBlock`` object and an ``onCompletion`` callback
  per request: the same system calls with more Python per I/O;
* ``caio`` completes each request through an asyncio future: far more Python per I/O than a
  4 KiB read can carry at 100 k IOPS.

The kernel ABI used here is four system calls and two fixed structures (``struct iocb``,
``struct io_event``, ``linux/aio_abi.h``), stable since Linux 2.6; io_uring would be the next
step, but needs its rings mapped and driven by hand. Where AIO is not available
(:func:`unavailable`: an architecture without known call numbers, ``io_setup`` refused, e.g.
``fs.aio-max-nr`` exhausted or seccomp), or the file is buffered (AIO on a buffered file blocks in
``io_submit``), the probe falls back to the thread engine and its result says which engine ran.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
import struct
import time

from kdoctor.probes.diskwork import Outcome, Stopper

# System call numbers: io_setup, io_destroy, io_getevents, io_submit.
_CALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB = struct.Struct("<QIIHhIQQqQII")  # struct iocb: 64 bytes
_EVENT_BYTES = 32  # struct io_event: data, obj, res, res2
_PREAD, _PWRITE = 0, 1
REAP = 4
"""Completions taken per ``io_getevents`` at most (measured: 4 kept the queue fuller than 1 or 32)."""
_WAIT = 0.2
"""Seconds one ``io_getevents`` waits before the loop looks at its stopper again."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Calls:
    """The four system calls, typed (``syscall`` is variadic: untyped, a pointer would be cut to
    32 bits)."""

    def __init__(self) -> None:
        machine = os.uname().machine
        if machine not in _CALLS:
            raise OSError(errno.ENOSYS, f"no Linux AIO system call numbers known for {machine}")
        self.setup_nr, self.destroy_nr, self.getevents_nr, self.submit_nr = _CALLS[machine]
        libc = ctypes.CDLL(None, use_errno=True)
        long, ulong, ptr = ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p
        self.setup = libc["syscall"]
        self.setup.argtypes, self.setup.restype = [long, long, ptr], long
        self.destroy = libc["syscall"]
        self.destroy.argtypes, self.destroy.restype = [long, ulong], long
        self.submit = libc["syscall"]
        self.submit.argtypes, self.submit.restype = [long, ulong, long, ptr], long
        self.getevents = libc["syscall"]
        self.getevents.argtypes, self.getevents.restype = [long, ulong, long, long, ptr, ptr], long


_calls: _Calls | None = None


def _the_calls() -> _Calls:
    global _calls
    if _calls is None:
        _calls = _Calls()
    return _calls


def _fail(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


class Context:
    """One AIO context of ``depth`` requests; :meth:`close` waits for those still in flight."""

    def __init__(self, depth: int) -> None:
        self.calls = _the_calls()
        handle = ctypes.c_ulong(0)
        if self.calls.setup(self.calls.setup_nr, depth, ctypes.byref(handle)) < 0:
            raise _fail("io_setup")
        self.handle = handle.value

    def close(self) -> None:
        if self.handle:
            self.calls.destroy(self.calls.destroy_nr, self.handle)
            self.handle = 0


def unavailable() -> str:
    """Why Linux AIO cannot be used here, or ``""`` when it can (one context set up and freed)."""
    try:
        Context(1).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _address(buf: mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def random_io(fd: int, file_size: int, block: int, depth: int, total_bytes: int, deadline: float,
              stopper: Stopper, *, write: bool) -> Outcome:
    """``depth`` requests of ``block`` bytes kept in flight at random aligned offsets of an O_DIRECT
    file, ``total_bytes`` in all, until the deadline or the stopper; the same figures as
    :func:`kdoctor.probes.diskwork.random_io`. Latency runs from just before a request's
    ``io_submit`` to the return of the ``io_getevents`` that reaped it (fio's clat + slat).

    Raises:
        OSError: AIO could not be set up, or a request failed (its errno).
    """
    blocks = max(1, file_size // block)
    quota = max(1, total_bytes // block)
    # Drawn as they are issued: a quota of millions of requests needs no list of millions.
    draw = random.Random(depth * 7919 + os.getpid()).randrange
    depth = min(depth, quota)
    calls = _the_calls()
    context = Context(depth)
    # mmap memory: page aligned, as O_DIRECT needs; random content, as fio writes.
    data = mmap.mmap(-1, block * depth)
    data.write(os.urandom(len(data)))
    iocbs = mmap.mmap(-1, _IOCB.size * depth)
    pointers = mmap.mmap(-1, 8 * depth)
    events = mmap.mmap(-1, _EVENT_BYTES * REAP)
    base, pbase, ebase = _address(iocbs), _address(pointers), _address(events)
    opcode = _PWRITE if write else _PREAD
    for slot in range(depth):
        _IOCB.pack_into(iocbs, _IOCB.size * slot, slot, 0, 0, opcode, 0, fd, _address(data) + slot * block,
                        block, 0, 0, 0, 0)
    words = memoryview(iocbs).cast("Q")  # the iocb's aio_offset is its 6th 64-bit word
    slots_of = memoryview(pointers).cast("Q")
    event_words = memoryview(events).cast("q")  # an io_event is 4 words: data (the slot), obj, res, res2
    address = [base + _IOCB.size * slot for slot in range(depth)]
    wait = _Timespec(int(_WAIT), int(_WAIT % 1 * 1e9))
    wait_ref = ctypes.byref(wait)
    handle, submit, getevents = context.handle, calls.submit, calls.getevents
    submit_nr, getevents_nr = calls.submit_nr, calls.getevents_nr
    clock = time.perf_counter_ns
    end = int(deadline * 1e9)
    event = stopper.event
    stamps = [0] * depth
    times: list[int] = []
    record = times.append
    out = Outcome()
    failure = 0
    done = 0
    issued = 0
    inflight = 0

    def issue(slot: int, now: int) -> bool:
        # One request per io_submit, as fio's libaio engine does by default.
        nonlocal issued, inflight
        words[slot * 8 + 5] = draw(blocks) * block
        slots_of[0] = address[slot]
        stamps[slot] = now
        if submit(submit_nr, handle, 1, pbase) != 1:
            return False
        issued += 1
        inflight += 1
        return True

    start = clock()
    try:
        for slot in range(depth):
            if not issue(slot, clock()):
                raise _fail("io_submit")
        free: list[int] = []
        while inflight:
            got = getevents(getevents_nr, handle, 1, REAP, ebase, wait_ref)
            now = clock()
            if got < 0:
                if ctypes.get_errno() == errno.EINTR:
                    continue
                raise _fail("io_getevents")
            stop = now >= end or event.is_set()
            for index in range(got):
                slot = event_words[index * 4]
                res = event_words[index * 4 + 2]
                inflight -= 1
                if res < 0:
                    failure = failure or -res
                else:
                    done += res
                record(now - stamps[slot])
                free.append(slot)
            if failure:
                stop = True
            while free and not stop and issued < quota:
                if not issue(free[-1], clock()):
                    if ctypes.get_errno() == errno.EAGAIN:
                        break  # the queue is full for now: retried after the next reap
                    raise _fail("io_submit")
                free.pop()
            if stop or issued >= quota:
                free.clear()  # no more requests: what is in flight drains
        finish = clock()
    finally:
        # Requests still in flight (an exception above) are waited for by io_destroy before the
        # buffers they write into are unmapped.
        context.close()
        for view in (words, slots_of, event_words):
            view.release()
        for buf in (data, iocbs, pointers, events):
            buf.close()
    if failure:
        raise OSError(failure, f"asynchronous {'write' if write else 'read'}: {os.strerror(failure)}")
    out.operations = len(times)
    out.bytes = done
    out.seconds = (finish - start) / 1e9
    out.complete = out.operations >= quota
    for ns in times:
        out.latency.record_us(ns // 1000)
    return out
