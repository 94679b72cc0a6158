"""A real Redis Sentinel group on loopback: a primary, a replica and three ``redis-sentinel``
processes watching them (master name ``kdoctor``), all with a password. For the failover test."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from kdoctor.errors import SetupError
from kdoctor.local.ports import free_port
from kdoctor.local.redisserver import RedisServer

MASTER = "kdoctor"


class SentinelGroup:
    """Primary + replica (``RedisServer``) and three sentinels; :meth:`url` is kdoctor's broker URL."""

    def __init__(self, password: str = "s3ntinel-pw") -> None:
        self.password = password
        auth = ["--masterauth", password]
        self.primary = RedisServer(password=password, extra_args=auth)
        self.replica = RedisServer(password=password,
                                   extra_args=[*auth, "--replicaof", "127.0.0.1", str(self.primary.port)])
        self.dir = Path(tempfile.mkdtemp(prefix="kdoctor-sentinel-"))
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise SetupError("redis-sentinel is not installed: ./scripts/install (Debian: redis-sentinel)")
        for port in self.ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\nrequirepass {password}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel auth-pass {MASTER} {password}\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
            self.sentinels.append(subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, start_new_session=True))
        self._wait_replicated()

    def url(self, db: int = 0) -> str:
        return ";".join(f"sentinel://:{self.password}@127.0.0.1:{port}/{db}" for port in self.ports)

    def master_port(self) -> int:
        """The port the sentinels say the master is on now."""
        client = redis.Redis(port=self.ports[0], password=self.password, socket_timeout=2)
        _, port = client.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def _wait_replicated(self) -> None:
        primary = redis.Redis(port=self.primary.port, password=self.password)
        limit = time.monotonic() + 30
        while time.monotonic() < limit:
            info = primary.info("replication")
            known = []
            for port in self.ports:
                try:
                    known.append(redis.Redis(port=port, password=self.password, socket_timeout=1)
                                 .sentinel_master(MASTER).get("num-other-sentinels", 0))
                except redis.RedisError:
                    known.append(-1)
            if info.get("connected_slaves", 0) >= 1 and all(n >= 2 for n in known):
                return
            time.sleep(0.2)
        raise SetupError("the Sentinel group did not come together within 30 s")

    def kill_primary(self) -> None:
        """SIGKILL the current primary (the sentinels promote the replica)."""
        self.primary.down()

    def wait_failover(self, timeout: float = 30.0) -> None:
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            try:
                if self.master_port() == self.replica.port:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise SetupError("the sentinels did not promote the replica")

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait()
        self.replica.stop()
        self.primary.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
