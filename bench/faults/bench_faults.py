"""bench/faults: the hostile experiments, repeated, with their figures.

    .venv/bin/python bench/faults/bench_faults.py [--quick]

Each experiment runs on real processes on this machine and prints tries, how many behaved as
they must, and the figures (recovery seconds, memory before and after):

* Redis down 20 s during a round (2 real workers): the workers are the same processes afterwards
  and the next round passes; seconds from Redis back to that round's report.
* the agent flooded: 40 MB of pipelined ``GET /`` never read, 20 MB of ``GET /?delay=600000``:
  agent RSS before and after;
* 13,000 idle connections to the agent: how many it closed within 40 s (idle timeout 30 s), and
  whether a probe is still answered;
* the agent SIGKILLed: seconds until the worker restarted it and it answers again;
* a Sentinel primary killed mid-round: the round's outcome, seconds until the next round passed;
* YAML alias bombs (9^6 and 9^9 aliases): time to refusal.

No reference tool: these are the figures the fault issue asked for, measured. ``--quick``: one try
each and no 13,000-connection experiment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from kdoctor.api import Client, KdoctorError  # noqa: E402
from kdoctor.errors import SpecError  # noqa: E402
from kdoctor.local.cluster import LocalCluster  # noqa: E402
from kdoctor.local.redisserver import RedisServer  # noqa: E402
from kdoctor.settings import Settings  # noqa: E402
from kdoctor.specs import load_text  # noqa: E402
from kdoctor.workers.agent_process import AgentProcess  # noqa: E402
from tests.servers.sentinel import SentinelGroup  # noqa: E402

FAST = {"heartbeat_seconds": 0.5, "node_timeout_seconds": 2.5, "round_grace_seconds": 3.0,
        "start_lead_seconds": 0.5, "coordinator_timeout_seconds": 5.0}


def reach(name: str, duration: int) -> dict[str, Any]:
    return {"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": name},
            "spec": {"request": {"qps": 20, "durationInSecond": duration},
                     "target": {"endpoint": True, "clusterIP": False, "nodePort": False}}}


def wait_running(job: Any) -> None:
    while job.progress().phase in ("queued", "waiting"):
        time.sleep(0.1)


def redis_down(tries: int) -> str:
    good, recoveries = 0, []
    for _ in range(tries):
        server = RedisServer()
        settings = Settings(broker_url=server.url(), stall_seconds=15.0, **FAST)  # type: ignore[arg-type]
        try:
            with LocalCluster(settings) as cluster, Client(settings=settings) as client:
                cluster.start(2)
                cluster.wait_ready(["node-1", "node-2"])
                pids = {n: cluster.processes[n].pid for n in ("node-1", "node-2")}
                job = client.submit(reach("down", 3))
                wait_running(job)
                server.down()
                time.sleep(20)
                server.up()
                back = time.monotonic()
                with contextlib.suppress(KdoctorError):
                    job.wait(timeout=30)
                cluster.wait_ready(["node-1", "node-2"], timeout=120)
                report = client.submit(reach("after", 1)).wait(timeout=60)
                same = {n: cluster.processes[n].pid for n in pids} == pids
                if same and report.verdict == "passed":
                    good += 1
                    recoveries.append(time.monotonic() - back)
        finally:
            server.stop()
    spread = f"{min(recoveries):.1f}–{max(recoveries):.1f} s" if recoveries else "-"
    return (f"| Redis down 20 s mid-round | {tries} | {good} | same workers, next round passed {spread} after Redis "
            "came back |")


def rss(agent: AgentProcess) -> float:
    assert agent.process is not None
    return float(psutil.Process(agent.process.pid).memory_info().rss) / 2**20


def flood() -> list[str]:
    rows = []
    agent = AgentProcess("bench", ["127.0.0.1"], 0)
    agent.start()
    try:
        for label, request, total in (("pipelined GET / never read", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 40),
                                      ("GET /?delay=600000", b"GET /?delay=600000 HTTP/1.1\r\nHost: x\r\n\r\n", 20)):
            before = rss(agent)
            sent = 0
            chunk = request * (65536 // len(request))
            while sent < total * 2**20:
                sock = socket.create_connection(("127.0.0.1", agent.port))
                sock.settimeout(1.0)
                with contextlib.suppress(OSError):
                    for _ in range(64):
                        sent += sock.send(chunk)
                sock.close()
            time.sleep(1)
            rows.append(f"| agent: {total} MB of {label} | 1 | 1 | agent RSS {before:.0f} → {rss(agent):.0f} MB |")
    finally:
        agent.stop()
    return rows


def idle_connections(count: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    agent = AgentProcess("bench", ["127.0.0.1"], 0)
    agent.start()
    try:
        socks = []
        for _ in range(count):
            try:
                socks.append(socket.create_connection(("127.0.0.1", agent.port)))
            except OSError:
                break
        time.sleep(40)
        closed = 0
        for sock in socks:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            sock.close()
        probe = socket.create_connection(("127.0.0.1", agent.port))
        probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = probe.recv(20).startswith(b"HTTP/1.1 200")
        probe.close()
    finally:
        agent.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    correct = int(answered and closed == len(socks))
    return (f"| agent: {len(socks):,} idle connections | 1 | {correct} | {closed:,} closed within 40 s; a probe "
            f"{'answered' if answered else 'NOT answered'} |")


def agent_killed(tries: int) -> str:
    server = RedisServer()
    settings = Settings(broker_url=server.url(), **FAST)  # type: ignore[arg-type]
    good, recoveries = 0, []
    try:
        with LocalCluster(settings) as cluster, Client(settings=settings) as client:
            cluster.start(2)
            cluster.wait_ready(["node-1", "node-2"])
            port = next(n.agent_port for n in client.nodes() if n.name == "node-2")
            for _ in range(tries):
                main = psutil.Process(cluster.processes["node-2"].pid)
                (agent,) = [p for p in main.children() if "kdoctor.workers.agent" in " ".join(p.cmdline())]
                killed = time.monotonic()
                os.kill(agent.pid, signal.SIGKILL)
                while time.monotonic() - killed < 60:
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                            if sock.recv(20).startswith(b"HTTP/1.1 200"):
                                break
                    except OSError:
                        time.sleep(0.05)
                recovered = time.monotonic() - killed
                cluster.wait_ready(["node-1", "node-2"])
                if client.submit(reach("agent", 1)).wait(timeout=60).verdict == "passed":
                    good += 1
                    recoveries.append(recovered)
    finally:
        server.stop()
    spread = f"{min(recoveries):.1f}–{max(recoveries):.1f} s" if recoveries else "-"
    return f"| agent process SIGKILLed | {tries} | {good} | restarted and answering after {spread}; next round passed |"


def sentinel_failover(tries: int) -> str:
    good, outcomes, recoveries = 0, [], []
    for _ in range(tries):
        group = SentinelGroup()
        settings = Settings(broker_url=group.url(), **FAST)  # type: ignore[arg-type]
        try:
            with LocalCluster(settings) as cluster, Client(settings=settings) as client:
                cluster.start(2)
                cluster.wait_ready(["node-1", "node-2"])
                pids = {n: p.pid for n, p in cluster.processes.items()}
                job = client.submit(reach("failover", 3))
                wait_running(job)
                killed = time.monotonic()
                group.kill_primary()
                try:
                    outcomes.append(job.wait(timeout=90).verdict)
                except KdoctorError as exc:
                    outcomes.append(type(exc).__name__)
                cluster.wait_ready(["node-1", "node-2"], timeout=120)
                after = client.submit(reach("after", 1)).wait(timeout=90)
                if after.verdict == "passed" and {n: p.pid for n, p in cluster.processes.items()} == pids:
                    good += 1
                    recoveries.append(time.monotonic() - killed)
        finally:
            group.stop()
    spread = f"{min(recoveries):.1f}–{max(recoveries):.1f} s" if recoveries else "-"
    return (f"| Sentinel primary killed mid-round | {tries} | {good} | that round: {', '.join(outcomes)}; next round "
            f"passed {spread} after the kill, nothing restarted |")


def alias_bombs() -> list[str]:
    rows = []
    for depth in (6, 9):
        lines = ["a: &a [" + ", ".join(["x"] * 9) + "]"]
        names = "abcdefghij"
        for i in range(1, depth):
            lines.append(f"{names[i]}: &{names[i]} [{', '.join(['*' + names[i - 1]] * 9)}]")
        text = "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata:\n  name: x\n  annotations:\n" + "\n".join(
            "    " + line for line in lines) + "\n"
        started = time.perf_counter()
        try:
            load_text(text, "bomb.yaml")
            verdict = "ACCEPTED"
        except SpecError as err:
            verdict = f"refused: {str(err)[:60]}…"
        seconds = time.perf_counter() - started
        rows.append(f"| YAML alias bomb 9^{depth} ({len(text)} bytes) | 1 | {int(verdict.startswith('refused'))} | "
                    f"{seconds * 1000:.0f} ms, {verdict} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tries = 1 if args.quick else 5
    print("bench/faults: hostile experiments on real processes")
    print("| experiment | tries | correct | figures |\n|---|---|---|---|")
    for row in [*alias_bombs(), *flood()]:
        print(row, flush=True)
    print(agent_killed(tries), flush=True)
    print(redis_down(tries), flush=True)
    print(sentinel_failover(1 if args.quick else 3), flush=True)
    if not args.quick:
        print(idle_connections(13_000), flush=True)


if __name__ == "__main__":
    main()
