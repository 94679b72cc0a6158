"""A real nginx on a free loopback port, for tests, ``bench/http`` and the demo.

nginx runs in the foreground in a temporary directory (config, logs, pid, temp paths), so it
needs no root and leaves nothing behind. Every request is written to an access log, one line per
request, so :meth:`Nginx.access_count` is the server's own count of what it received:

>>> with Nginx() as web:
...     web.url, web.access_count()

``/`` serves a 600-byte page; ``/status/NNN`` answers with status NNN (for the codes in
``STATUS_CODES``); ``/nginx_status`` is
``stub_status`` (not logged, so it does not disturb the count).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from kdoctor.errors import SetupError
from kdoctor.local.ports import free_port

__all__ = ["STATUS_CODES", "Nginx"]

STATUS_CODES = (200, 201, 204, 301, 302, 400, 401, 403, 404, 429, 500, 502, 503, 504)

_CONFIG = """\
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    log_format count '$remote_addr $request_method $request_uri $status $body_bytes_sent';
    access_log {access};
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen {host}:{port}{h2} reuseport backlog=4096;
        root {root}/html;
        location = /nginx_status {{ stub_status; access_log off; }}
{status_locations}
        location / {{ }}
    }}
}}
"""


def _status_location(code: int) -> str:
    # For 3xx, ``return``'s argument is the Location; for the other codes it is the body.
    text = "/" if 300 <= code < 400 else f'"status {code}"'
    return f"        location = /status/{code} {{ return {code} {text}; }}"


class Nginx:
    """nginx serving a static page on ``127.0.0.1:<free port>``, logging every request."""

    def __init__(self, *, workers: int = 1, access_log: bool = True, host: str = "127.0.0.1",
                 http2: bool = False) -> None:
        """``http2`` makes the port speak h2c with prior knowledge (and no HTTP/1.1)."""
        if shutil.which("nginx") is None:
            raise SetupError("nginx is not installed (apt-get install nginx)")
        self.host = host
        self.port = free_port(host)
        self.dir = Path(tempfile.mkdtemp(prefix="kdoctor-nginx-"))
        self.dir.chmod(0o755)  # nginx workers run as an unprivileged user when started by root
        (self.dir / "tmp").mkdir()
        (self.dir / "html").mkdir()
        (self.dir / "html" / "index.html").write_text("<html><body>" + "k" * 574 + "</body></html>\n")
        self.access_log = self.dir / "access.log"
        locations = "\n".join(_status_location(code) for code in STATUS_CODES)
        config = _CONFIG.format(workers=workers, h2=" http2" if http2 else "", status_locations=locations,
                                root=self.dir, host=host, port=self.port,
                                access=f"{self.access_log} count" if access_log else "off")
        (self.dir / "nginx.conf").write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, ending in ``/``."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> Nginx:
        """Start nginx and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise SetupError(f"nginx exited at start: {err.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise SetupError(f"nginx did not listen on {self.host}:{self.port} within 10 s")

    def access_count(self) -> int:
        """Requests nginx has logged so far (one access-log line each)."""
        if not self.access_log.exists():
            return 0
        with self.access_log.open("rb") as log:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))

    def settled_count(self, quiet: float = 0.1, timeout: float = 3.0) -> int:
        """:meth:`access_count` once it has stopped changing for ``quiet`` seconds: nginx writes
        the log line after the response, so the last few lines lag the client's count a little."""
        deadline = time.monotonic() + timeout
        count = self.access_count()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.access_count()
            if now == count:
                break
            count = now
        return count

    def pids(self) -> list[int]:
        """Master and worker process ids (for CPU accounting in benchmarks)."""
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [self.proc.pid, *(int(p) for p in out.split())]

    def stop(self) -> None:
        """Stop nginx and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
