"""One node's generator over several processes, when one event loop cannot hold the asked rate.

A probe runs on one uvloop event loop, which is one core: at rates beyond what one loop sends
(about 90 k HTTP/1.1 requests or 140 k DNS queries per second on a 2-vCPU VM) the generator, not
the target, would set the figures. A kind then asks for a *team* of processes
(:func:`processes`): the probe's process forks its helpers before the round's start instant
(:meth:`Team.fork`), every process waits for that instant on its own and presses its slice of
every target's schedule (:meth:`~kdoctor.probes.pressure.Pace.share`: token ``k`` goes to process
``k mod n``, so the slices together are exactly the schedule), and the helpers hand their figures
to the first process (:func:`gather`), which merges them (counts, histograms, status codes,
errors: :meth:`~kdoctor.probes.pressure.DriverStats.merge`) and builds the node's one result.
Sent plus unsent is still exactly what was planned.

When to spread is decided up front, from the asked rate against what one loop is trusted to hold
(``loop_qps``, per kind): deciding on the way, when a process falls behind, would fork while
tokens are already late, and the late ones would be charged to the target. Below that rate one
process runs, as it always did. The team is bounded by ``KDOCTOR_GENERATOR_PROCESSES`` (0: the
CPUs this process may run on, at most its cgroup's CPU quota: :func:`usable_cpus`).

The generator's health is judged per process and merged: the CPU of the busiest process, each
process's send lag against its own slice (:meth:`GeneratorMonitor.judge_lag`), the unsent of all.
Progress (requests sent so far) is summed over the team through a small shared memory array.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import mmap
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, Protocol

from kdoctor.lifetime import die_with_parent
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.probes.pressure import DriverStats, Pace
from kdoctor.specs.latency import Latency

__all__ = ["ALONE", "Share", "Tallied", "Team", "gather", "processes", "usable_cpus"]

log = logging.getLogger(__name__)

# A helper that has sent its figures exits at once; one that has not after this long is killed.
REAP_SECONDS = 2.0


def processes(qps: float, loop_qps: float, limit: int) -> int:
    """How many processes press a node's ``qps`` (all its targets together): what the rate needs
    at ``loop_qps`` per event loop, at most ``limit`` (0: :func:`usable_cpus`)."""
    if qps <= 0 or loop_qps <= 0:
        return 1
    bound = limit if limit > 0 else usable_cpus()
    return max(1, min(bound, math.ceil(qps / loop_qps)))


def usable_cpus(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: those it may run on, at most its cgroup's CPU quota
    (rounded up). A pod with ``limits.cpu: 2`` on a 64-core node sees 64 CPUs through its
    affinity, but 64 processes in a 2-CPU quota would be throttled in turns: every process's
    sends would wait for the next CFS period, which is the lag the generator must not add."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_quota(proc_cgroup, root)
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def _cgroup_quota(proc_cgroup: Path, root: Path) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup and its ancestors, cgroup v2
    (``cpu.max``) or v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); ``None``: no quota, or
    nothing readable (a missing or foreign layout means no limit we can see, not an error)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        base: Path | None
        if number == "0" and controllers == "":  # v2: one unified tree
            base, read = root, _v2_quota
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own tree
            base = next((root / name for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu") if (root / name).is_dir()), None)
            read = _v1_quota
        else:
            continue
        if base is None:
            continue
        parts = [part for part in path.split("/") if part and part != ".."]
        for depth in range(len(parts), -1, -1):  # the cgroup itself, then each ancestor
            found = read(base.joinpath(*parts[:depth]))
            if found is not None:
                quotas.append(found)
    return min(quotas) if quotas else None


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


@dataclass(frozen=True)
class Share:
    """Which slice of the node's schedules this process presses: ``index`` of ``count``."""

    index: int = 0
    count: int = 1
    conn: Connection | None = field(default=None, compare=False)
    """A helper's end of its pipe to the first process."""
    peers: tuple[Connection, ...] = field(default=(), compare=False)
    """The first process's ends of the helpers' pipes."""
    slots: memoryview | None = field(default=None, compare=False)
    """Requests sent so far by each process (shared memory, one int64 each)."""

    def pace(self, pace: Pace) -> Pace:
        """This process's slice of ``pace``."""
        return pace.share(self.index, self.count)

    def part(self, bound: int) -> int:
        """This process's part of a per-node bound (connections, queries in flight): the
        processes' parts add up to ``bound`` (each at least 1)."""
        return max(1, bound // self.count + (1 if self.index < bound % self.count else 0))

    def tell(self, sent: int) -> None:
        """Record this process's requests sent so far (for the team's progress)."""
        if self.slots is not None:
            self.slots[self.index] = sent

    def helpers_sent(self) -> int:
        """Requests sent so far by the other processes of the team."""
        if self.slots is None:
            return 0
        return sum(self.slots[i] for i in range(self.count) if i != self.index)


ALONE = Share()
"""One process, as always: no team."""


class Tallied(Protocol):
    """A client that counts figures of its own beyond the driver's (a DNS query table)."""

    def tally(self) -> dict[str, Any]:
        """Its figures, as plain data."""

    def absorb(self, tally: dict[str, Any]) -> None:
        """Add another process's :meth:`tally`."""


@dataclass
class Team:
    """The helper processes of one probe, forked by the first (index 0), which stays the caller."""

    lead: Share
    pids: list[int]

    @classmethod
    def fork(cls, count: int, helper: Callable[[Share], None]) -> Team:
        """Fork ``count - 1`` helpers, each running ``helper(share)`` and then exiting; returns
        the team with this process's share. Call before any event loop runs (a forked loop is
        not a loop), and before the round's start instant: every process then starts on time."""
        if count <= 1:
            return cls(ALONE, [])
        buffer = mmap.mmap(-1, 8 * count)
        slots = memoryview(buffer).cast("q")
        peers: list[Connection] = []
        pids: list[int] = []
        for index in range(1, count):
            receiver, sender = Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:  # the helper
                code = 0
                try:
                    # It holds the probe's pipe to the worker too: it must not outlive the probe.
                    die_with_parent()
                    for peer in peers:
                        peer.close()
                    receiver.close()
                    helper(Share(index, count, conn=sender, slots=slots))
                except BaseException:  # its pipe closes unused: the first process says it died
                    log.exception("generator process %d of %d failed", index + 1, count)
                    code = 1
                finally:
                    os._exit(code)
            sender.close()
            peers.append(receiver)
            pids.append(pid)
        return cls(Share(0, count, peers=tuple(peers), slots=slots), pids)

    def close(self) -> None:
        """Reap the helpers, killing any still running (a probe cut at its deadline). Called
        after the event loop has ended (it sleeps between its looks)."""
        limit = time.monotonic() + REAP_SECONDS
        for pid in self.pids:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > limit:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
        for peer in self.lead.peers:
            peer.close()


Item = tuple[str, DriverStats, Pace, "Tallied | None"]
"""One target in this process: its name, its driver's figures, the slice it pressed, its client
when the client counts figures of its own."""


async def gather(share: Share, items: Sequence[Item], monitor: GeneratorMonitor) -> None:
    """Bring a team's figures together in its first process, in place.

    Every process first judges its own send lag against its own slice. A helper then sends its
    figures (and its CPU) to the first process; the first process waits for every helper and adds
    their figures into ``items`` (matched by target name) and their CPU and lag verdicts into
    ``monitor``. Alone, nothing happens. A helper that died makes the probe fail with the reason.
    """
    if share.count == 1:
        return
    monitor.processes = share.count
    label = f"generator process {share.index + 1} of {share.count}"
    for name, stats, pace, _ in items:
        monitor.judge_lag(stats, pace, f"{name} ({label})")
    if share.conn is not None:
        seconds, percent = monitor.cpu()
        payload = {"items": {name: (_pack(stats), client.tally() if client is not None else None)
                             for name, stats, _, client in items},
                   "cpu": (seconds, percent), "behind": monitor.behind}
        share.conn.send_bytes(json.dumps(payload).encode())  # JSON, as everywhere: no pickle
        share.conn.close()
        return
    mine = {name: (stats, client) for name, stats, _, client in items}
    loop = asyncio.get_running_loop()
    for number, peer in enumerate(share.peers, start=2):
        try:
            frame = await _receive(loop, peer)
        except (EOFError, OSError) as exc:
            raise RuntimeError(f"generator process {number} of {share.count} died before reporting "
                               "its requests") from exc
        payload = json.loads(frame)
        for name, (packed, tally) in payload["items"].items():
            if name not in mine:
                continue  # a target that process could not press (its socket failed): its own result is lost
            stats, client = mine[name]
            stats.merge(_unpack(packed))
            if client is not None and tally is not None:
                client.absorb(tally)
        seconds, percent = payload["cpu"]
        monitor.peers.append((seconds, percent))
        monitor.behind.extend((lag, reason) for lag, reason in payload["behind"])


async def _receive(loop: asyncio.AbstractEventLoop, conn: Connection) -> bytes:
    """One frame from ``conn``, waiting for it on the event loop (the other processes' drivers
    finish at about the same time, so the wait is short, but it must not block the loop)."""
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv_bytes()


def _pack_latency(latency: Latency) -> tuple[str, int, int, int, int]:
    return latency.encode(), latency.count, latency.sum_us, latency.min_us, latency.max_us


def _unpack_latency(packed: tuple[str, int, int, int, int]) -> Latency:
    text, count, total, low, high = packed
    latency = Latency.decode(text)
    latency.count, latency.sum_us, latency.min_us, latency.max_us = count, total, low, high
    return latency


# DriverStats fields that are not plain numbers: packed on their own.
_RICH = ("latency", "lag", "codes", "errors")


def _pack(stats: DriverStats) -> dict[str, Any]:
    """``stats`` as plain data for JSON: the histograms encoded, with their exact count, sum, min
    and max."""
    plain = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats) if f.name not in _RICH}
    return {**plain, "latency": _pack_latency(stats.latency), "lag": _pack_latency(stats.lag),
            "codes": dict(stats.codes), "errors": dict(stats.errors)}


def _unpack(packed: dict[str, Any]) -> DriverStats:
    stats = DriverStats(**{k: v for k, v in packed.items() if k not in _RICH})
    stats.latency = _unpack_latency(packed["latency"])
    stats.lag = _unpack_latency(packed["lag"])
    stats.codes.update(packed["codes"])
    stats.errors.update(packed["errors"])
    return stats
