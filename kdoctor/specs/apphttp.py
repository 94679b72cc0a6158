"""``AppHttpHealthy``: one URL at a fixed QPS from every node.

kdoctor's fields, plus ours for running outside Kubernetes. As in kdoctor, with the
``kubernetes`` inventory the body comes from a ConfigMap and the TLS material from a Secret (read
by each node, :mod:`kdoctor.probes.apphttp`; checked at submit, :mod:`kdoctor.inventory.references`).
With another inventory those references name local files on each node:

==============================  ==================================================================
``bodyConfigmapName``           a local file whose content is the request body
``tlsSecretName``               a local directory holding the Secret's keys as files: ``ca.crt``,
                                ``tls.crt``, ``tls.key`` (those present are used)
``bodyFile``, ``tls*File``      ours: explicit paths; they take precedence over the above
==============================  ==================================================================

``expect.statusCode`` takes kdoctor's single code, or ours: a class ``"2xx"``, a range
``"200-299"``, or a list of any of these. Unset, 2xx and 3xx succeed; kdoctor counts every
response, 5xx included, as a success.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kdoctor.specs.common import DocumentBase, Expect, Model, Request, SpecBase

METHODS = ("GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "HEAD")
StatusCodes = int | str | list[int | str]

_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_RANGE = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")


def parse_header(line: str) -> tuple[str, str]:
    """Split ``"Name: value"`` at the first colon only, so values such as ``http://x:8080`` stay
    whole (kdoctor truncates them); :class:`ValueError` names what is wrong."""
    name, sep, value = line.partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"header {line!r} must look like 'Name: value'")
    if any(c in name for c in " \t\r\n"):
        raise ValueError(f"header name {name!r} must not contain whitespace")
    if any(c in value for c in "\r\n"):
        raise ValueError(f"header {name!r}: the value must not contain a line break")
    return name, value.strip()


def status_ranges(value: StatusCodes) -> list[tuple[int, int]]:
    """``200``, ``"2xx"``, ``"200-299"`` or a list of those → inclusive ``(low, high)`` ranges."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("must not be an empty list; leave it out for the default (2xx and 3xx)")
    ranges = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, int) or text.isdigit():
            low = high = int(text)
        elif match := _CLASS.match(text):
            low = int(match.group(1)) * 100
            high = low + 99
        elif match := _RANGE.match(text):
            low, high = int(match.group(1)), int(match.group(2))
        else:
            raise ValueError(f"{item!r} is not a status code; use e.g. 200, '2xx', '200-299' or a list of these")
        if not (100 <= low <= high <= 599):
            raise ValueError(f"{item!r}: status codes run from 100 to 599, low to high")
        ranges.append((low, high))
    return ranges


class AppHttpTarget(Model):
    """The URL and how to call it: kdoctor's ``spec.target`` of AppHttpHealthy."""

    host: str = Field(description="Full URL; 'http://' is prepended when no scheme is given.")
    method: Literal["GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "HEAD"] = "GET"
    http2: bool = Field(default=False, description="HTTP/2: over TLS with ALPN for https, h2c "
                        "(prior knowledge) for http.")
    header: list[str] = Field(
        default_factory=list,
        description="'Name: value' strings; the value may itself contain ':' (kdoctor truncates it).",
    )
    body: str | None = Field(default=None, max_length=1024 * 1024, description="Ours: the request body, inline.")
    body_file: str | None = Field(default=None, description="Ours: read the request body from this file.")
    body_configmap_name: str | None = Field(
        default=None, description="kdoctor's ConfigMap holding the body (its data sent as a JSON object); "
        "outside Kubernetes a local file.")
    body_configmap_namespace: str | None = Field(default=None, description="Its namespace (default: kdoctor's).")
    tls_secret_name: str | None = Field(
        default=None, description="kdoctor's TLS Secret (ca.crt, tls.crt, tls.key); outside Kubernetes a "
        "local directory with those files.")
    tls_secret_namespace: str | None = Field(default=None, description="Its namespace (default: kdoctor's).")
    tls_ca_file: str | None = Field(default=None, description="Ours: CA that verifies the server.")
    tls_cert_file: str | None = Field(default=None, description="Ours: client certificate (mTLS).")
    tls_key_file: str | None = Field(default=None, description="Ours: client key (mTLS).")
    tls_insecure_skip_verify: bool = Field(default=False, description="Ours: do not verify the server.")
    enable_latency_metric: bool = False

    @field_validator("host")
    @classmethod
    def _scheme(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must be a URL such as http://10.0.0.1:8080/healthz")
        if "://" not in value:
            value = "http://" + value
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"scheme must be http or https; got {value!r}")
        return value

    @field_validator("header")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_header(item)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AppHttpTarget:
        bodies = [n for n, v in (("body", self.body), ("bodyFile", self.body_file),
                                 ("bodyConfigmapName", self.body_configmap_name)) if v is not None]
        if len(bodies) > 1:
            raise ValueError(f"give at most one of body, bodyFile, bodyConfigmapName; got {', '.join(bodies)}")
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("tlsKeyFile needs tlsCertFile (the client certificate it belongs to)")
        # kdoctor's tlsSecretName on an http:// host is accepted (kdoctor only checks that the
        # Secret exists; the report warns that it is unused). Our own TLS fields are refused there.
        tls = [n for n, v in (("tlsCaFile", self.tls_ca_file), ("tlsCertFile", self.tls_cert_file),
                              ("tlsInsecureSkipVerify", self.tls_insecure_skip_verify)) if v]
        if tls and not self.host.startswith("https://"):
            raise ValueError(f"{', '.join(tls)} given but host is not https://: use an https URL or drop them")
        return self

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The headers as (name, value) pairs."""
        return tuple(parse_header(item) for item in self.header)

    def body_path(self) -> str | None:
        """The local file holding the body, if the body comes from a file."""
        return self.body_file or self.body_configmap_name

    def tls_paths(self) -> tuple[str | None, str | None, str | None]:
        """CA, client certificate and client key files: explicit ``tls*File`` fields first, then
        the files present in the ``tlsSecretName`` directory."""
        ca, cert, key = self.tls_ca_file, self.tls_cert_file, self.tls_key_file
        if self.tls_secret_name:
            def found(name: str) -> str | None:
                path = os.path.join(str(self.tls_secret_name), name)
                return path if os.path.exists(path) else None
            ca = ca or found("ca.crt")
            if not cert:
                cert, key = found("tls.crt"), found("tls.key")
        return ca, cert, key


class AppHttpExpect(Expect):
    """AppHttpHealthy's success conditions."""

    status_code: StatusCodes | None = Field(
        default=None,
        union_mode="left_to_right",
        description="The expected status: kdoctor's single code, or ours: '2xx', '200-299' or a list. "
        "Unset: 2xx and 3xx succeed (kdoctor counts any response, 5xx included, as success).",
    )

    @field_validator("status_code", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | str | list):
            raise ValueError(f"{value!r} is not a status code; use e.g. 200, '2xx', '200-299' or a list")
        status_ranges(value)
        return value

    def success_predicate(self) -> Callable[[int], bool]:
        """A fast test of whether a status code counts as success."""
        if self.status_code is None:
            return lambda code: 200 <= code < 400
        codes = frozenset(c for low, high in status_ranges(self.status_code) for c in range(low, high + 1))
        return codes.__contains__


class AppHttpSpec(SpecBase):
    """``spec`` of an AppHttpHealthy."""

    request: Request = Field(default_factory=lambda: Request.webhook_default(), description="Absent: kdoctor's "
                             "webhook default, 10 QPS for 2 s with a 500 ms timeout.")
    target: AppHttpTarget
    expect: AppHttpExpect = Field(default_factory=AppHttpExpect)


class AppHttpHealthy(DocumentBase):
    """An AppHttpHealthy task file."""

    kind: Literal["AppHttpHealthy"]
    spec: AppHttpSpec
