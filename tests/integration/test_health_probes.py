"""Every role's liveness and readiness, as the Kubernetes probes of deploy/base see them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kdoctor.local.cluster import LocalCluster
from kdoctor.settings import Settings


def probe(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kdoctor.workers.healthfile", str(path), *flags],
                          capture_output=True, text=True, timeout=30)


def wait_passing(path: Path, *flags: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    limit = time.monotonic() + timeout
    while True:
        done = probe(path, *flags)
        if done.returncode == 0 or time.monotonic() > limit:
            return done
        time.sleep(0.3)


def test_each_role_writes_its_health_and_a_frozen_one_fails_its_probe(settings: Settings, tmp_path: Path) -> None:
    files = {role: tmp_path / f"{role}.health" for role in ("worker", "coordinator", "beat")}
    with LocalCluster(settings) as cluster:
        cluster.start_coordinator({"KDOCTOR_HEALTH_FILE": str(files["coordinator"])})
        cluster.start_beat(extra_env={"KDOCTOR_HEALTH_FILE": str(files["beat"])})
        cluster.start_worker("node-1", extra_env={"KDOCTOR_HEALTH_FILE": str(files["worker"])})
        cluster.wait_ready(["node-1"])
        for role in ("worker", "coordinator"):
            done = wait_passing(files[role], "--ready", "--max-age", "10")
            assert done.returncode == 0, (role, done.stderr)
        assert wait_passing(files["beat"], "--max-age", "10").returncode == 0
        worker = cluster.processes["node-1"].pid
        os.kill(worker, signal.SIGSTOP)
        try:
            time.sleep(3)
            stale = probe(files["worker"], "--max-age", "2")
            assert stale.returncode == 1 and "has not written its health" in stale.stderr
        finally:
            os.kill(worker, signal.SIGCONT)
        people = subprocess.run([sys.executable, "-m", "kdoctor", "health", str(files["coordinator"]), "--ready"],
                                capture_output=True, text=True, timeout=30)
        assert people.returncode == 0 and people.stdout.strip() == "ok"
