"""What an HTTP request is, independent of the protocol version that carries it.

==================  ==========================================================================
``HttpTarget``      URL, method, headers, body and Host override; encodes HTTP/1.1 bytes once
``parse_header``    ``"Name: value"`` → ``(name, value)``, split at the *first* ``:`` only, so a
                    value such as ``http://x:8080`` or ``12:30`` survives (kdoctor truncates it)
``tls_context``     an ``ssl.SSLContext`` for a CA, mutual TLS, insecure skip, and ALPN
``Dialer``          opens one connection (TCP or TLS) for a protocol object
``classify_error``  an exception → a short, stable error class for counting
==================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from kdoctor.specs.apphttp import parse_header

__all__ = [
    "Dialer",
    "HttpTarget",
    "TlsFiles",
    "classify_error",
    "default_success",
    "parse_header",
    "tls_context",
]


def default_success(code: int) -> bool:
    """2xx and 3xx are successes (kdoctor counts any response, 5xx included)."""
    return 200 <= code < 400


@dataclass(frozen=True)
class HttpTarget:
    """One URL to call, with everything needed to encode the request once."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    host_header: str | None = None
    """Overrides the Host header (e.g. an Ingress rule's host while connecting to its address)."""

    @property
    def parts(self) -> tuple[str, str, int, str]:
        """scheme, host (without brackets), port, path-with-query."""
        split = urlsplit(self.url)
        scheme = split.scheme or "http"
        host = split.hostname or ""
        port = split.port or (443 if scheme == "https" else 80)
        path = split.path or "/"
        if split.query:
            path += "?" + split.query
        return scheme, host, port, path

    @property
    def authority(self) -> str:
        """What goes into ``Host`` (HTTP/1.1) or ``:authority`` (HTTP/2)."""
        if self.host_header:
            return self.host_header
        for name, value in self.headers:
            if name.lower() == "host":
                return value
        return urlsplit(self.url).netloc

    @property
    def sends_length(self) -> bool:
        """Whether the request carries a Content-Length (a body, or a method that expects one)."""
        return bool(self.body) or self.method in ("POST", "PUT", "PATCH")

    def encode(self) -> bytes:
        """The request as HTTP/1.1 bytes on the wire."""
        _, _host, _port, path = self.parts
        lines = [f"{self.method} {path} HTTP/1.1", f"Host: {self.authority}"]
        names = {name.lower() for name, _ in self.headers}
        if "user-agent" not in names:
            lines.append("User-Agent: kdoctor")
        lines += [f"{name}: {value}" for name, value in self.headers
                  if name.lower() not in ("host", "content-length")]
        if self.sends_length:
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + self.body


@dataclass(frozen=True)
class TlsFiles:
    """TLS material for a client, as local file paths."""

    ca_file: str | None = None
    """Verify the server against this CA bundle (default: the system's trust store)."""
    cert_file: str | None = None
    """Client certificate for mutual TLS (with ``key_file``)."""
    key_file: str | None = None
    insecure_skip_verify: bool = False
    """Do not verify the server's certificate or name."""


def tls_context(files: TlsFiles = TlsFiles(), alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client TLS context; reading a missing or bad file raises ``OSError``/``ssl.SSLError``."""
    ctx = ssl.create_default_context(cafile=files.ca_file)
    if files.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if files.cert_file:
        ctx.load_cert_chain(files.cert_file, files.key_file)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class Dialer:
    """Opens connections to one target: plain TCP, or TLS with SNI taken from the URL."""

    def __init__(self, target: HttpTarget, ssl_context: ssl.SSLContext | None = None,
                 connect_host: str | None = None) -> None:
        scheme, host, port, _ = target.parts
        self.host = connect_host or host
        self.port = port
        self.tls = scheme == "https"
        self.ssl: ssl.SSLContext | None = None
        self.server_hostname: str | None = None
        if self.tls:
            self.ssl = ssl_context or tls_context()
            self.server_hostname = host

    async def dial(self, factory: Callable[[], asyncio.Protocol]) -> None:
        """Open one connection; the protocol sees ``connection_made`` on success. Raises on
        failure (pass the exception to :func:`classify_error`)."""
        loop = asyncio.get_running_loop()
        await loop.create_connection(factory, self.host, self.port, ssl=self.ssl,
                                     server_hostname=self.server_hostname)


def classify_error(exc: BaseException) -> str:
    """A short, stable error class for counting: refused, reset, timeout, tls, dns, unreachable,
    ``os:<errno name>``, or the exception's type name."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"os:{errno.errorcode.get(exc.errno, exc.errno)}"
    return type(exc).__name__
