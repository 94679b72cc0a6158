"""Redis connections built from settings (password and TLS included), for every process role."""

from __future__ import annotations

import ssl
from typing import Any

import redis

from kdoctor.errors import BrokerUnavailable
from kdoctor.settings import Settings

__all__ = ["celery_ssl_options", "redis_client", "safe_url"]


def _tls_kwargs(settings: Settings) -> dict[str, Any]:
    if not settings.broker_url.startswith("rediss://"):
        return {}
    kwargs: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings.redis_ca_file:
        kwargs["ssl_ca_certs"] = settings.redis_ca_file
    if settings.redis_cert_file:
        kwargs["ssl_certfile"] = settings.redis_cert_file
        kwargs["ssl_keyfile"] = settings.redis_key_file or None
    return kwargs


def redis_client(settings: Settings, *, timeout: float = 10.0) -> redis.Redis:
    """A redis-py client for kdoctor's own keys (registry, rounds, reports)."""
    return redis.Redis.from_url(
        settings.broker_url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 5.0),
        health_check_interval=30,
        retry_on_timeout=True,
        **_tls_kwargs(settings),
    )


def celery_ssl_options(settings: Settings) -> dict[str, Any] | None:
    """``broker_use_ssl`` / ``redis_backend_use_ssl`` for a ``rediss://`` URL, else ``None``."""
    if not settings.broker_url.startswith("rediss://"):
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_ca_file:
        options["ssl_ca_certs"] = settings.redis_ca_file
    if settings.redis_cert_file:
        options["ssl_certfile"] = settings.redis_cert_file
        options["ssl_keyfile"] = settings.redis_key_file or None
    return options


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
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
    except redis.RedisError as exc:
        raise BrokerUnavailable(
            f"cannot reach Redis at {safe_url(settings.broker_url)}: {exc}. Check --broker / "
            "KDOCTOR_BROKER_URL and that redis-server is running."
        ) from exc
