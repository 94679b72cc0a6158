"""A real Prometheus and a real Alertmanager (Debian's packages) for the tests: each started on a
free loopback port with a data directory of its own, and stopped (process group and all)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kdoctor.local.ports import free_port


class _Process:
    binary = ""

    def __init__(self) -> None:
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} is not installed: run ./scripts/install")
        self.dir = Path(tempfile.mkdtemp(prefix=f"kdoctor-{self.binary}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self, args: list[str], ready: str) -> None:
        log = open(self.dir / "log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        limit = time.monotonic() + 30
        while time.monotonic() < limit:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited:\n{self.log()}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + ready, timeout=1).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.binary} not ready in 30 s:\n{self.log()}")

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as answer:
            return json.load(answer)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Prometheus(_Process):
    """Prometheus scraping ``target`` (host:port) every second with a bearer token file, with the
    given rule files."""

    binary = "prometheus"

    def __init__(self, target: str, token_file: str, rule_files: tuple[str, ...] = ()) -> None:
        super().__init__()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": list(rule_files),
            "scrape_configs": [{"job_name": "kdoctor", "static_configs": [{"targets": [target]}],
                                "authorization": {"credentials_file": token_file}}],
        }
        (self.dir / "prometheus.yml").write_text(json.dumps(config))
        self._start(["--config.file", str(self.dir / "prometheus.yml"), "--storage.tsdb.path", str(self.dir / "data"),
                     "--web.listen-address", f"127.0.0.1:{self.port}"], "/-/ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/targets")["data"]["activeTargets"])


class Alertmanager(_Process):
    """Alertmanager with one do-nothing receiver (alerts are read back through its v2 API)."""

    binary = "prometheus-alertmanager"

    def __init__(self) -> None:
        super().__init__()
        config = {"route": {"receiver": "null", "group_wait": "1s"}, "receivers": [{"name": "null"}]}
        (self.dir / "alertmanager.yml").write_text(json.dumps(config))
        self._start(["--config.file", str(self.dir / "alertmanager.yml"), "--storage.path", str(self.dir / "data"),
                     "--web.listen-address", f"127.0.0.1:{self.port}", "--cluster.listen-address", ""],
                    "/-/ready")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/alerts", **filters))
