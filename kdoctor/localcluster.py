"""A kdoctor installation on one machine: its own redis-server, a coordinator and N workers.

Used by ``kdoctor demo``, the test suite and the benchmarks. Every process is started in its own
process group and stopped (group and all) when the cluster closes, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from kdoctor.connections import redis_client
from kdoctor.errors import SetupError
from kdoctor.inventory import registry
from kdoctor.settings import Settings

__all__ = ["LocalCluster", "RedisServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throw-away ``redis-server`` on a free port (no persistence), on loopback unless ``bind``
    names another address (the lab binds its bridge address so every namespace reaches it)."""

    def __init__(self, port: int | None = None, password: str | None = None,
                 extra_args: Sequence[str] = (), bind: str = "127.0.0.1",
                 directory: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SetupError("redis-server is not installed: run ./scripts/install (Debian: redis-server)")
        self.host = bind
        self.port = port or free_port(bind)
        self.password = password
        self.dir = directory or tempfile.mkdtemp(prefix="kdoctor-redis-")
        self.args = [binary, "--port", str(self.port), "--bind", bind, "--save", "", "--appendonly", "no",
                     "--dir", self.dir, "--databases", "64", "--maxclients", "10000",
                     "--logfile", os.path.join(self.dir, "redis.log"), *extra_args]
        if password:
            self.args += ["--requirepass", password]
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self._wait_ready()

    def restart(self) -> None:
        """Stop the server (losing everything: no persistence) and start it again on the same port."""
        self.process.kill()
        self.process.wait()
        self._start()

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{auth}{host}:{self.port}/{db}"

    def _wait_ready(self) -> None:
        client = redis.Redis(host=self.host, port=self.port, password=self.password, socket_connect_timeout=0.5)
        for _ in range(100):
            if self.process.poll() is not None:
                raise SetupError(f"redis-server exited with {self.process.returncode}; see {self.dir}/redis.log")
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise SetupError(f"redis-server on port {self.port} did not answer within 5 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def kdoctor_command(*args: str) -> list[str]:
    """The command line of a kdoctor subcommand, run with this interpreter."""
    return [sys.executable, "-m", "kdoctor", *args]


@dataclass
class LocalCluster:
    """A coordinator and workers ``node-1..N`` on loopback, all talking to ``broker_url``."""

    broker_url: str
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kdoctor-logs-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KDOCTOR_")}
        env.update({"KDOCTOR_BROKER_URL": self.broker_url, "PYTHONUNBUFFERED": "1"})
        env.update(self.env)
        return env

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        env = self._env()
        env.update(extra_env or {})
        self.processes[name] = subprocess.Popen(
            kdoctor_command(*args), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def start_coordinator(self) -> None:
        self._spawn("coordinator", ["coordinator"])

    def start_beat(self, name: str = "beat") -> None:
        self._spawn(name, ["beat"])

    def start_worker(self, node: str, *, addresses: Sequence[str] = ("127.0.0.1",),
                     extra_env: dict[str, str] | None = None) -> None:
        args = ["worker", "--node", node, "--agent-port", "0"]
        for address in addresses:
            args += ["--agent-address", address]
        self._spawn(node, args, extra_env)

    def start(self, nodes: int = 3, *, addresses: Sequence[str] = ("127.0.0.1",)) -> LocalCluster:
        self.start_coordinator()
        for index in range(1, nodes + 1):
            self.start_worker(f"node-{index}", addresses=addresses)
        return self

    def wait_ready(self, nodes: Sequence[str], timeout: float = 60.0) -> None:
        """Wait until every node in ``nodes`` is live and a coordinator beats."""
        settings = Settings.from_env(self._env())
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


@contextlib.contextmanager
def local_redis() -> Iterator[RedisServer]:
    """A RedisServer for the duration of a ``with`` block."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()
