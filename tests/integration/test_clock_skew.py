"""A node whose clock is wrong (libfaketime shifts a real worker's wall clock) is still live,
starts with the others, and the report says its clock is off: kdoctor judges times on the
broker's clock (kdoctor.clock), not on each node's."""

from __future__ import annotations

import glob
import subprocess
import sys
from collections.abc import Callable

import pytest

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from tests.conftest import cli_env
from tests.integration.test_rounds import QPS, netreach


def _faketime_library() -> str:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if not found:
        pytest.fail("libfaketime is missing: ./scripts/install installs the Debian package faketime")
    return found[0]


@pytest.mark.parametrize("shift", ["-20s", "+20s"], ids=["behind", "ahead"])
def test_a_node_with_a_wrong_clock_is_live_on_time_and_named(
        make_cluster: Callable[..., LocalCluster], client: Client, broker_url: str, shift: str) -> None:
    cluster = make_cluster(2)
    skewed = {"LD_PRELOAD": _faketime_library(), "FAKETIME": shift, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
              "FAKETIME_NO_CACHE": "1"}
    cluster.start_worker("node-3", extra_env=skewed)
    cluster.wait_ready(["node-1", "node-2", "node-3"])
    (node3,) = [n for n in client.nodes() if n.name == "node-3"]
    assert abs(abs(node3.clock_offset) - 20) < 1  # measured and published by its heartbeat
    listing = subprocess.run([sys.executable, "-m", "kdoctor", "nodes"], env=cli_env(broker_url), text=True,
                             capture_output=True, timeout=60)
    row = next(line for line in listing.stdout.splitlines() if "node-3" in line)
    assert "live" in row and f"{shift[0]}20." in row, row  # the node's clock minus the broker's

    report = client.submit(netreach("skew", duration=2)).wait(timeout=60)

    assert report.verdict == "passed", report.reasons
    starts = [n.started for n in report.nodes.values()]
    assert all(s is not None for s in starts)
    spread = max(s for s in starts if s) - min(s for s in starts if s)
    assert spread.total_seconds() < 1.0, starts  # it started with the others, on the broker's clock
    for target in report.nodes["node-3"].targets:
        assert abs(target.requests - QPS * 2) <= 0.05 * QPS * 2
    direction = "behind" if shift.startswith("-") else "ahead of"
    assert any(w.startswith(f"node-3: its clock is 20.0 s {direction} the broker's") for w in report.warnings), \
        report.warnings
