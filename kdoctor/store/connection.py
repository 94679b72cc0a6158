"""Redis connections built from settings (password and TLS included), for every process role, and
what a Redis failure means in words (the URL always masked).

==============================================================  ======================================
``KDOCTOR_BROKER_URL``                                          Redis is
==============================================================  ======================================
``redis://[:PASSWORD@]HOST:PORT/DB``                            one server
``rediss://...``                                                one server, over TLS
``unix:///PATH?db=DB``                                          one server, on a local socket
``sentinel://[:PASSWORD@]HOST:PORT/DB;sentinel://HOST:PORT;…``  the master of a Sentinel group
                                                                (``KDOCTOR_REDIS_SENTINEL_MASTER``)
``sentinels://…``                                               the same, every connection over TLS
==============================================================  ======================================

With Sentinel every role (and kdoctor's own client) asks the sentinels for the master and asks
again after a failover: a primary that dies mid-round costs that round, not the installation.
The URL's password authenticates to Redis and to the sentinels alike.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from kdoctor.errors import BrokerUnavailable, SetupError
from kdoctor.settings import Settings

__all__ = ["Broker", "PerProcess", "broker", "broker_error", "celery_ssl_options", "ping", "redis_client",
           "safe_url"]


@dataclass(frozen=True)
class Broker:
    """Where Redis is, parsed from the broker URL."""

    url: str
    tls: bool
    sentinels: tuple[tuple[str, int], ...] = ()
    """The Sentinel group's addresses; empty for a single server."""
    password: str | None = None
    username: str | None = None
    db: int = 0

    @property
    def kombu_url(self) -> str:
        """The URL as kombu and Celery take it (``sentinels://`` is kombu's ``sentinel://`` + TLS)."""
        return self.url.replace("sentinels://", "sentinel://")


def broker(settings: Settings) -> Broker:
    """Parse ``settings.broker_url``; :class:`SetupError` says what a broker URL looks like."""
    url = settings.broker_url
    scheme = url.partition("://")[0]
    if scheme not in ("redis", "rediss", "unix", "sentinel", "sentinels"):
        raise SetupError(
            f"broker URL {safe_url(url)!r} is not a Redis URL: use redis://HOST:PORT/DB, rediss:// for TLS, "
            "unix:///PATH, or sentinel://HOST:PORT;sentinel://HOST:PORT for a Sentinel group "
            "(--broker / KDOCTOR_BROKER_URL)")
    if not scheme.startswith("sentinel"):
        return Broker(url=url, tls=scheme == "rediss")
    hosts: list[tuple[str, int]] = []
    password = username = None
    db = 0
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme not in ("sentinel", "sentinels") or not parsed.hostname:
            raise SetupError(f"broker URL {safe_url(url)!r}: every part must be sentinel://HOST:PORT, "
                             f"not {safe_url(part)!r}")
        hosts.append((parsed.hostname, parsed.port or 26379))
        password = unquote(parsed.password) if parsed.password else password
        username = unquote(parsed.username) if parsed.username else username
        if parsed.path.strip("/").isdigit():
            db = int(parsed.path.strip("/"))
    return Broker(url=url, tls=scheme == "sentinels", sentinels=tuple(hosts), password=password,
                  username=username, db=db)


def _tls_kwargs(settings: Settings) -> dict[str, Any]:
    if not broker(settings).tls:
        return {}
    kwargs: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings.redis_ca_file:
        kwargs["ssl_ca_certs"] = settings.redis_ca_file
    if settings.redis_cert_file:
        kwargs["ssl_certfile"] = settings.redis_cert_file
        kwargs["ssl_keyfile"] = settings.redis_key_file or None
    return kwargs


def redis_client(settings: Settings, *, timeout: float = 5.0) -> redis.Redis:
    """A redis-py client for kdoctor's own keys (registry, rounds, reports).

    ``timeout`` bounds each socket read and write (kdoctor's commands are all quick; a large report
    arrives in many reads), so a Redis that accepts connections but never answers is reported
    within about four timeouts (one retry of the command, each with one retry of the connection
    handshake) instead of hanging. Raises :class:`SetupError` for a URL that is not a Redis URL
    (nothing is connected yet).
    """
    where = broker(settings)
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 5.0),
        "health_check_interval": 30,
        # One retry rides out a dropped connection (a Redis restart, a failover); redis-py's
        # default of ten would keep a caller of a Redis that stopped answering waiting for minutes.
        "retry": Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), retries=1),
        "client_name": "kdoctor",  # tells kdoctor's own connections from Celery's in CLIENT LIST
        **_tls_kwargs(settings),
    }
    if not where.sentinels:
        return redis.Redis.from_url(settings.broker_url, **options)
    if where.tls:
        options["ssl"] = True
    group = Sentinel(list(where.sentinels), sentinel_kwargs=sentinel_kwargs(settings, timeout))  # type: ignore[no-untyped-call]
    client: redis.Redis = group.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master, redis_class=redis.Redis, password=where.password, username=where.username,
        db=where.db, **options)
    return client


def sentinel_kwargs(settings: Settings, timeout: float = 5.0) -> dict[str, Any]:
    """How to talk to the sentinels themselves: the URL's credentials, TLS when asked for."""
    where = broker(settings)
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 5.0)}
    if where.password:
        kwargs["password"] = where.password
    if where.username:
        kwargs["username"] = where.username
    if where.tls:
        kwargs.update(ssl=True, **_tls_kwargs(settings))
    return kwargs


class PerProcess:
    """A Redis client per process, made on first use: a pool child must not share the sockets of
    the client its parent had before the fork. Thread-safe within a process (redis-py pools)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pid = 0
        self._client: redis.Redis | None = None

    def __call__(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            self._client = redis_client(self.settings)
            self._pid = os.getpid()
        return self._client


def celery_ssl_options(settings: Settings) -> dict[str, Any] | None:
    """``broker_use_ssl`` for a ``rediss://`` or ``sentinels://`` URL, else ``None``."""
    if not broker(settings).tls:
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_ca_file:
        options["ssl_ca_certs"] = settings.redis_ca_file
    if settings.redis_cert_file:
        options["ssl_certfile"] = settings.redis_cert_file
        options["ssl_keyfile"] = settings.redis_key_file or None
    return options


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs (every part of a Sentinel URL)."""
    if ";" in url:
        return ";".join(safe_url(part) for part in url.split(";"))
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://***@{host}"


def ping(client: redis.Redis, settings: Settings) -> None:
    """Raise :class:`BrokerUnavailable` (with the URL, password masked) if Redis does not answer."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise broker_error(exc, settings.broker_url) from exc


def broker_error(exc: BaseException, url: str) -> BrokerUnavailable:
    """The :class:`BrokerUnavailable` that says what a Redis failure means and what to check.

    The URL is masked, and so is the password wherever the underlying message might echo it.
    """
    where = safe_url(url)
    detail = _scrub(str(exc).strip().rstrip("."), url) or type(exc).__name__
    lowered = detail.lower()
    if isinstance(exc, redis.AuthenticationError) or any(
            word in lowered for word in ("noauth", "wrongpass", "invalid password", "invalid username")):
        return BrokerUnavailable(
            f"Redis at {where} refused the credentials ({detail}): put the right password in the URL "
            "(redis://:PASSWORD@host:6379/0) given by --broker / KDOCTOR_BROKER_URL")
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return BrokerUnavailable(
            f"Redis at {where} did not answer in time ({detail}): check the network path to it and "
            "that it is not overloaded")
    if isinstance(exc, redis.ConnectionError | OSError):
        return BrokerUnavailable(
            f"cannot reach Redis at {where}: {detail}. Check --broker / KDOCTOR_BROKER_URL and that "
            "redis-server is running")
    return BrokerUnavailable(f"Redis at {where} answered with an error: {detail}")


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL's password(s), should a library have echoed one."""
    for part in url.split(";"):
        creds = part.partition("://")[2].rpartition("@")[0]
        password = creds.partition(":")[2] if ":" in creds else creds
        if len(password) >= 3:
            text = text.replace(password, "***").replace(unquote(password), "***")
    return text
