"""`kdoctor demo` is the README's first command: it must pass on a fresh machine, all four kinds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import redis


def test_demo_exits_0_with_a_passed_report() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDOCTOR_")}
    result = subprocess.run([sys.executable, "-m", "kdoctor", "demo"], env=env, text=True,
                            capture_output=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    # One passed round of each of the four kinds, every node in each.
    for kind in ("NetReach 'demo-netreach'", "AppHttpHealthy 'demo-apphttp'", "Netdns 'demo-netdns'",
                 "DiskIO 'demo-diskio'"):
        assert kind in result.stdout
    assert result.stdout.count("PASSED") == 4
    assert "FAILED" not in result.stdout
    assert "endpoint/ipv6/node-3" in result.stdout
    assert "udp/A/127.0.0.1" in result.stdout
    assert "randRead/qd1" in result.stdout


def _processes_using(url: str) -> list[int]:
    """Pids whose environment names the broker ``url`` (the demo's workers and coordinator)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as env:
                    if f"KDOCTOR_BROKER_URL={url}".encode() in env.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_stopped_mid_round_leaves_nothing_running(sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDOCTOR_")}
    demo = subprocess.Popen([sys.executable, "-m", "kdoctor", "demo"], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert demo.stderr is not None
        line = demo.stderr.readline()
        match = re.search(r"broker (redis://\S+)", line)
        assert match, line
        url = match.group(1)
        client = redis.Redis.from_url(url)
        limit = time.monotonic() + 60
        while not client.keys("kdoctor:round:*") and time.monotonic() < limit:  # a round is under way
            time.sleep(0.1)
        assert _processes_using(url), "the demo's workers should be running now"
        demo.send_signal(sig)
        assert demo.wait(60) != 0
    finally:
        if demo.poll() is None:
            demo.kill()
    leftovers = _processes_using(url)
    for pid in leftovers:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert leftovers == []
    with pytest.raises(redis.ConnectionError):
        client.ping()
