"""A kdoctor installation on one machine: a coordinator and N workers on one broker.

Used by ``kdoctor demo``, the test suite and the benchmarks. Every process is a real ``kdoctor``
command started in its own process group, configured through its ``KDOCTOR_*`` environment as a
user would, and stopped (group and all) when the cluster closes, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kdoctor.errors import SetupError
from kdoctor.settings import Settings
from kdoctor.store import nodes as registry
from kdoctor.store.connection import redis_client

__all__ = ["LocalCluster", "kdoctor_command"]


def kdoctor_command(*args: str) -> list[str]:
    """The command line of a kdoctor subcommand, run with this interpreter."""
    return [sys.executable, "-m", "kdoctor", *args]


@dataclass
class LocalCluster:
    """A coordinator and workers ``node-1..N`` on loopback, every process configured by
    ``settings`` (handed to each as its ``KDOCTOR_*`` environment, which is how a kdoctor command
    is configured; the environment of this process is not passed on)."""

    settings: Settings
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kdoctor-logs-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KDOCTOR_")}
        env.update(self.settings.as_env())
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        env = self._env(extra_env)
        self.processes[name] = subprocess.Popen(
            kdoctor_command(*args), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def start_coordinator(self, extra_env: dict[str, str] | None = None) -> None:
        self._spawn("coordinator", ["coordinator"], extra_env)

    def start_beat(self, name: str = "beat", extra_env: dict[str, str] | None = None) -> None:
        self._spawn(name, ["beat"], extra_env)

    def start_exporter(self, extra_env: dict[str, str] | None = None) -> None:
        """Start ``kdoctor exporter`` (``extra_env``: its metrics port, credentials, receivers file)."""
        self._spawn("exporter", ["exporter"], extra_env)

    def start_worker(self, node: str, *, addresses: Sequence[str] = ("127.0.0.1",), data_dir: str | None = None,
                     extra_env: dict[str, str] | None = None) -> None:
        """Start ``kdoctor worker --node NODE`` (``extra_env``: e.g. a fake clock's preload)."""
        args = ["worker", "--node", node, "--agent-port", "0"]
        for address in addresses:
            args += ["--agent-address", address]
        if data_dir is not None:
            args += ["--data-dir", data_dir]
        self._spawn(node, args, extra_env)

    def start(self, nodes: int = 3, *, addresses: Sequence[str] = ("127.0.0.1",)) -> LocalCluster:
        self.start_coordinator()
        for index in range(1, nodes + 1):
            self.start_worker(f"node-{index}", addresses=addresses)
        return self

    def wait_ready(self, nodes: Sequence[str], timeout: float = 60.0) -> None:
        """Wait until every node in ``nodes`` is live and a coordinator beats."""
        settings = self.settings
        client = redis_client(settings)  # the cluster's own TLS settings, not a bare URL
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            self._check_alive()
            now = time.time()
            live = {n.name for n in registry.nodes(client)
                    if n.state(now, settings.node_timeout_seconds) == "live"}
            if set(nodes) <= live and registry.live_coordinators(client, settings.coordinator_timeout_seconds):
                # A registered worker has started its consumer a moment later; give Celery that moment.
                time.sleep(0.3)
                return
            time.sleep(0.1)
        raise SetupError(f"nodes {sorted(nodes)} not ready within {timeout:g} s; logs in {self.log_dir}")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log_tail(name)
                raise SetupError(f"{name} exited with {process.returncode}:\n{tail}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process's whole group (a node dying takes its agent and pool with it)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """Stop one process cleanly (SIGTERM), killing it if it does not exit in time."""
        process = self.processes[name]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(name)
                process.wait()
        self.kill(name)  # whatever is left of its group

    def close(self) -> None:
        for name in list(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.processes[name].pid, signal.SIGTERM)
        limit = time.monotonic() + 10
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(name)
                process.wait()
            self.kill(name)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
