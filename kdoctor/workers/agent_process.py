"""The worker's agent, as a child process the worker starts, watches and restarts.

The agent is its own interpreter (``python -m kdoctor.workers.agent``), so probes never slow the
answers other nodes measure and it shares no GIL with the worker; it imports only what serving
needs (about 20 MB). It dies with the worker (``PR_SET_PDEATHSIG``). The worker's heartbeat asks
it ``/healthz`` over loopback; an agent that died or stopped answering is restarted on the same
port, logged, and the node reports itself not live until it answers again.
"""

from __future__ import annotations

import http.client
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence

from kdoctor.errors import SetupError

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0
HEALTH_TIMEOUT = 2.0


class AgentProcess:
    """One agent server process of this node."""

    def __init__(self, node: str, addresses: Sequence[str], port: int, extra_args: Sequence[str] = ()) -> None:
        self.node = node
        self.addresses = list(addresses)
        self.port = port
        self.extra_args = list(extra_args)  # the agent's own limits, for tests
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> int:
        """Start the agent and wait until it listens; returns its port (chosen by it when 0)."""
        args = [sys.executable, "-m", "kdoctor.workers.agent", "--node", self.node, "--port", str(self.port)]
        for address in self.addresses:
            args += ["--address", address]
        args += self.extra_args
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline().decode(errors="replace").strip() if readable else ""
        process.stdout.close()
        status, _, value = line.partition(" ")
        if status != "ready":
            process.kill()
            process.wait(5)
            raise SetupError(value if status == "error" else
                             f"the agent server did not start within {START_TIMEOUT:g} s (exit {process.poll()})")
        self.process = process
        self.port = int(value)
        return self.port

    def health(self) -> str:
        """Why the agent is not serving, or ``""`` when it answers ``/healthz``."""
        if self.process is None:
            return "agent not started"
        code = self.process.poll()
        if code is not None:
            return f"agent exited with {code}"
        host = self.addresses[0] if self.addresses else "127.0.0.1"
        try:
            conn = http.client.HTTPConnection(host, self.port, timeout=HEALTH_TIMEOUT)
            try:
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
            finally:
                conn.close()
        except OSError as exc:
            return f"agent does not answer on port {self.port}: {exc}"
        return "" if status == 200 else f"agent answered /healthz with {status}"

    def restart(self, why: str) -> None:
        """Replace the agent (on the same port); raises :class:`SetupError` if it cannot start."""
        log.error("node %s: %s; restarting the agent", self.node, why)
        self.stop()
        self.restarts += 1
        deadline = time.monotonic() + 10
        while True:  # the old socket may take a moment to be released
            try:
                self.start()
                log.warning("node %s: agent restarted on port %d (restart %d)", self.node, self.port, self.restarts)
                return
            except SetupError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
