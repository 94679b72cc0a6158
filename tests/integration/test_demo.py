"""`kdoctor demo` is the README's first command: it must pass on a fresh machine, all four kinds."""

from __future__ import annotations

import os
import subprocess
import sys


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
