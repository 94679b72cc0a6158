"""The error boundary of the Python API: the one place where Redis, kombu and Celery exceptions
become kdoctor's (as httpx maps its transports' errors), with the broker URL masked.

Every public method of :class:`~kdoctor.api.client.Client` and :class:`~kdoctor.api.client.Job`
is wrapped by :func:`translated`; a caller sees only the :mod:`kdoctor.errors` tree:

======================================================  ============================================
raised below                                            reaches the caller as
======================================================  ============================================
``redis.ConnectionError``, ``OSError`` (refused, DNS)   :class:`BrokerUnavailable`: cannot reach Redis
``redis.AuthenticationError``, ``NOAUTH``/``WRONGPASS``  :class:`BrokerUnavailable`: refused the password
``redis.TimeoutError``                                  :class:`BrokerUnavailable`: did not answer in time
any other ``redis.RedisError``                          :class:`BrokerUnavailable`: answered with an error
``kombu.exceptions.OperationalError``                   :class:`BrokerUnavailable` (from its cause)
``celery.exceptions.CeleryError``                       :class:`SetupError`
======================================================  ============================================

The original exception is chained (``raise ... from exc``) for debugging; its text is never
shown with a password in it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import redis
from celery.exceptions import CeleryError
from kombu.exceptions import OperationalError

from kdoctor.errors import KdoctorError, SetupError
from kdoctor.store.connection import broker_error, safe_url

__all__ = ["translate", "translated"]

P = ParamSpec("P")
R = TypeVar("R")


class _Bound(Protocol):
    """An API object that knows which broker its errors are about."""

    @property
    def _error_url(self) -> str: ...


B = TypeVar("B", bound=_Bound)


def translate(exc: BaseException, url: str) -> KdoctorError | None:
    """The kdoctor error ``exc`` stands for, or ``None`` when it is not a broker or Celery error."""
    if isinstance(exc, KdoctorError):
        return exc
    if isinstance(exc, OperationalError):
        cause = exc.__cause__ or exc.__context__
        return broker_error(cause if isinstance(cause, redis.RedisError | OSError) else exc, url)
    if isinstance(exc, redis.RedisError | OSError):
        return broker_error(exc, url)
    if isinstance(exc, CeleryError):
        return SetupError(f"Celery could not do it on {safe_url(url)}: {exc}")
    return None


def translated(method: Callable[Concatenate[B, P], R]) -> Callable[Concatenate[B, P], R]:
    """Wrap an API method so that only kdoctor errors leave it."""

    @functools.wraps(method)
    def wrapper(self: B, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except KdoctorError:
            raise
        except Exception as exc:
            mapped = translate(exc, self._error_url)
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper
