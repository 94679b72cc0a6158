"""``/metrics`` over HTTP, never without authentication.

A threaded WSGI server (the standard library's, as prometheus_client's own) serves one path,
``/metrics``, in the Prometheus text format (OpenMetrics when the scraper asks for it; gzip when
it accepts it). Every request must carry a credential: the bearer token of
``KDOCTOR_METRICS_TOKEN_FILE`` (Prometheus: ``authorization: {credentials_file: …}``) or a
``user:password`` of ``KDOCTOR_METRICS_BASIC_AUTH_FILE`` (Prometheus: ``basic_auth``); anything
else gets 401 before anything is read from Redis. Credentials are read from their files when the
server starts and compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from kdoctor.errors import SetupError

log = logging.getLogger(__name__)

__all__ = ["Credentials", "MetricsServer", "load_credentials"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Credentials:
    """What a scrape may present: bearer tokens and ``(user, password)`` pairs."""

    tokens: tuple[str, ...] = ()
    users: tuple[tuple[str, str], ...] = field(default=())

    def accepts(self, header: str) -> bool:
        """Whether an ``Authorization`` header value carries one of these credentials."""
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return any(hmac.compare_digest(value.encode(), t.encode()) for t in self.tokens)
        if scheme.lower() == "basic" and value:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            if not sep:
                return False
            # Compare every pair in full, so the time taken says nothing about which part was wrong.
            matches = [hmac.compare_digest(user.encode(), u.encode())
                       & hmac.compare_digest(password.encode(), p.encode()) for u, p in self.users]
            return any(matches)
        return False


def load_credentials(token_file: str, basic_auth_file: str) -> Credentials:
    """The credentials of the two files (either may be empty); :class:`SetupError` when neither
    gives one, or a file is unreadable, empty or has a line that is not ``user:password``."""
    tokens: list[str] = []
    users: list[tuple[str, str]] = []
    if token_file:
        token = _read(token_file, "KDOCTOR_METRICS_TOKEN_FILE").strip()
        if not token or any(c.isspace() for c in token):
            raise SetupError(f"KDOCTOR_METRICS_TOKEN_FILE {token_file}: put one token (no blanks) in the file")
        tokens.append(token)
    if basic_auth_file:
        for number, line in enumerate(_read(basic_auth_file, "KDOCTOR_METRICS_BASIC_AUTH_FILE").splitlines(), 1):
            if not line.strip():
                continue
            user, sep, password = line.strip().partition(":")
            if not sep or not user.strip() or not password.strip():
                raise SetupError(f"KDOCTOR_METRICS_BASIC_AUTH_FILE {basic_auth_file} line {number}: expected "
                                 "user:password, neither empty")
            users.append((user, password))
        if not users:
            raise SetupError(f"KDOCTOR_METRICS_BASIC_AUTH_FILE {basic_auth_file}: no user:password line")
    if not tokens and not users:
        raise SetupError("/metrics needs authentication: give KDOCTOR_METRICS_TOKEN_FILE (a bearer token) or "
                         "KDOCTOR_METRICS_BASIC_AUTH_FILE (user:password lines), or set KDOCTOR_METRICS_PORT=0")
    return Credentials(tuple(tokens), tuple(users))


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{what} {path}: cannot read it ({exc.__class__.__name__})") from None


def guarded(app: Callable[[Environ, StartResponse], Iterable[bytes]], credentials: Credentials
            ) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """``app`` behind the credentials, serving ``/metrics`` only."""

    def guard(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not credentials.accepts(str(environ.get("HTTP_AUTHORIZATION", ""))):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Basic realm="kdoctor", charset="UTF-8"')])
            return [b"authentication required\n"]
        if environ.get("PATH_INFO", "") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"kdoctor serves /metrics only\n"]
        return app(environ, start_response)

    return guard


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class MetricsServer:
    """Serves ``registry`` at ``http://address:port/metrics`` behind ``credentials`` in a thread."""

    def __init__(self, registry: CollectorRegistry, credentials: Credentials, address: str, port: int) -> None:
        server_class = _IPv6Server if ":" in address else _Server
        self._httpd = make_server(address, port, guarded(make_wsgi_app(registry), credentials),
                                  server_class=server_class, handler_class=_QuietHandler)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-server", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
