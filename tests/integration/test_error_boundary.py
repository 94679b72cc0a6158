"""One error boundary: every CLI command and every Client method, against a port where nothing
listens, a Redis that refuses the password, and one that accepts connections but never answers,
ends in the documented error (CLI: one line, exit 2; Python: BrokerUnavailable), never a
traceback, with the password masked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kdoctor.api import BrokerUnavailable, Client, Job, KdoctorError
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from kdoctor.specs import load_spec
from tests.conftest import FAST_ENV
from tests.integration.test_rounds import netreach

PASSWORD = "s3cret-Pw"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[RedisServer]:
    server = RedisServer(password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def brokers(locked: RedisServer, *, no_password: bool = False) -> dict[str, tuple[str, str]]:
    """Each broken broker's URL and what its error must say."""
    port = locked.port
    found = {
        "down": (f"redis://:{PASSWORD}@127.0.0.1:{_dead_port()}/0", "cannot reach Redis"),
        "wrong password": (f"redis://:wrong-{PASSWORD}@127.0.0.1:{port}/0", "refused the credentials"),
    }
    if no_password:
        found["no password"] = (f"redis://127.0.0.1:{port}/0", "refused the credentials")
    return found


def commands(spec: Path, inventory: Path) -> dict[str, list[str]]:
    return {
        "run": ["run", str(spec)],
        "run --wait": ["run", str(spec), "--wait"],
        "report": ["report", "some-job-r1"],
        "report html": ["report", "some-job-r1", "-o", "html"],
        "reports": ["reports"],
        "nodes": ["nodes"],
        "nodes --inventory": ["nodes", "--inventory", str(inventory)],
        "schedule add": ["schedule", "add", str(spec)],
        "schedule list": ["schedule", "list"],
        "schedule rm": ["schedule", "rm", "some-job"],
        "worker": ["worker", "--node", "node-1", "--agent-port", "0", "--agent-address", "127.0.0.1"],
        "coordinator": ["coordinator"],
        "beat": ["beat"],
        "flower": ["flower", "--basic-auth", "sre:pw", "--port", "0"],
        "demo": ["demo"],  # with a broker given, the demo uses it
    }


def _files(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "reach.yaml"
    spec.write_text(json.dumps(netreach()))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("nodes: [{name: node-1}]\n")
    return spec, inventory


def _start(url: str, args: list[str]) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/bin:/bin", **FAST_ENV, "KDOCTOR_BROKER_URL": url}
    return subprocess.Popen([sys.executable, "-m", "kdoctor", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _check(name: str, process: subprocess.Popen[str], expected: str) -> None:
    out, err = process.communicate(timeout=90)
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 2, f"{name}: exit {process.returncode}\n{out}{err}"
    assert "Traceback" not in err, f"{name}:\n{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: not one line:\n{err}"
    assert expected in lines[0], f"{name}: {lines[0]}"
    assert PASSWORD not in err + out and ".." not in lines[0], f"{name}: {lines[0]}"


def test_every_command_fails_cleanly_on_a_broken_broker(locked_redis: RedisServer, tmp_path: Path) -> None:
    spec, inventory = _files(tmp_path)
    # All at once: each is its own process, and a clean failure takes a moment (interpreter start).
    running = {(case, name): (_start(url, args), expected)
               for case, (url, expected) in brokers(locked_redis).items()
               for name, args in commands(spec, inventory).items()}
    for (case, name), (process, expected) in running.items():
        _check(f"{name} ({case})", process, expected)


def test_a_broker_that_never_answers_is_a_timeout_not_a_hang(silent_port: int, tmp_path: Path) -> None:
    spec, _ = _files(tmp_path)
    url = f"redis://:{PASSWORD}@127.0.0.1:{silent_port}/0"
    running = {name: _start(url, args) for name, args in
               {"reports": ["reports"], "run": ["run", str(spec)], "worker": commands(spec, spec)["worker"]}.items()}
    for name, process in running.items():
        _check(name, process, "did not answer in time")


def _calls(spec: Any) -> dict[str, Callable[[Client], object]]:
    return {
        "submit": lambda c: c.submit(spec),
        "schedule": lambda c: c.schedule(spec),
        "schedules": lambda c: c.schedules(),
        "unschedule": lambda c: c.unschedule("some-job"),
        "check_ready": lambda c: c.check_ready(),
        "report": lambda c: c.report("some-job-r1"),
        "reports": lambda c: c.reports(),
        "nodes": lambda c: c.nodes(),
        "now": lambda c: c.now(),
        "Job.progress": lambda c: Job(c, "some-job", load_spec(spec)).progress(),
        "Job.wait": lambda c: Job(c, "some-job", load_spec(spec)).wait(timeout=0.5),
    }


def test_every_client_method_raises_broker_unavailable(locked_redis: RedisServer) -> None:
    spec = netreach()
    for case, (url, expected) in brokers(locked_redis, no_password=True).items():
        with Client(settings=Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": url})) as client:
            for name, call in _calls(spec).items():
                with pytest.raises(BrokerUnavailable) as caught:
                    call(client)
                text = str(caught.value)
                assert expected in text and "127.0.0.1" in text, f"{name} ({case}): {text}"
                assert PASSWORD not in text, f"{name} ({case}): {text}"


def test_a_url_that_is_not_redis_is_a_setup_error() -> None:
    with pytest.raises(KdoctorError, match="is not a Redis URL"):
        Client("http://127.0.0.1:6379/0")
    done = subprocess.run([sys.executable, "-m", "kdoctor", "--broker", "http://x:1/0", "reports"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a Redis URL" in done.stderr and "Traceback" not in done.stderr
