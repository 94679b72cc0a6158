"""A throw-away ``redis-server`` (no persistence) for the demo, the tests, the benchmarks and the lab."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence

import redis

from kdoctor.errors import SetupError
from kdoctor.local.ports import free_port

__all__ = ["RedisServer", "local_redis"]


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
        self.down()
        self.up()

    def down(self) -> None:
        """Kill the server (everything in it is lost: no persistence); :meth:`up` starts it again."""
        self.process.kill()
        self.process.wait()

    def up(self) -> None:
        """Start the server again on the same port, empty."""
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


@contextlib.contextmanager
def local_redis() -> Iterator[RedisServer]:
    """A RedisServer for the duration of a ``with`` block."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()
