"""The small things a user notices (issue 15): Ctrl-C while waiting names the round that keeps
running, a waiting client sees the requests sent so far, empty listings say what to do."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from tests.conftest import cli_env
from tests.integration.test_rounds import kdoctor, netreach


def test_ctrl_c_while_waiting_names_the_round_that_keeps_running(
        make_cluster: Callable[..., LocalCluster], client: Client, broker_url: str, tmp_path: Path) -> None:
    make_cluster(2)
    spec = tmp_path / "reach.yaml"
    spec.write_text(yaml.safe_dump(netreach(duration=3)))
    waiting = subprocess.Popen([sys.executable, "-m", "kdoctor", "run", str(spec), "--wait"], env=cli_env(broker_url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not client.redis.keys("kdoctor:round:*:progress") and time.monotonic() < deadline:
            time.sleep(0.1)  # planned: the client is waiting now
        waiting.send_signal(signal.SIGINT)
        _, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 130, err
    (line,) = [x for x in err.splitlines() if x.startswith("interrupted:")]
    round_id = line.split()[2]
    assert line == (f"interrupted: round {round_id} keeps running; its report will be at "
                    f"`kdoctor report {round_id}`")
    report = client.report(round_id) if client.redis.exists(f"kdoctor:report:{round_id}") else None
    deadline = time.monotonic() + 60
    while report is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if client.redis.exists(f"kdoctor:report:{round_id}"):
            report = client.report(round_id)
    assert report is not None and report.verdict == "passed", report


def test_a_waiting_client_sees_the_requests_sent_so_far(
        make_cluster: Callable[..., LocalCluster], client: Client) -> None:
    make_cluster(2)
    job = client.submit(netreach(qps=50, duration=4))
    seen: list[int] = []
    report = job.wait(timeout=60, on_progress=lambda p: seen.append(p.sent) if p.phase == "running" else None)
    assert report.verdict == "passed", report.reasons
    total = report.summary.requests  # 2 nodes × 1 peer × 50 QPS × 4 s
    assert total == 400
    # Seen growing while the probes pressed, and never more than what they sent in the end.
    growing = [s for s in seen if s]
    assert growing and growing == sorted(growing) and 0 < growing[0] < total and growing[-1] <= total, seen


def test_empty_listings_say_what_to_do(broker_url: str) -> None:
    nodes = kdoctor(broker_url, "nodes")
    assert nodes.returncode == 0 and nodes.stdout == ""
    assert "no node is known to the registry inventory: start a worker" in nodes.stderr
    schedules = kdoctor(broker_url, "schedule", "list")
    assert schedules.returncode == 0 and schedules.stdout == ""
    assert "no schedule is installed (`kdoctor schedule add SPEC` installs one)" in schedules.stderr
