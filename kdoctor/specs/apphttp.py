"""``AppHttpHealthy``: one URL at a fixed QPS from every node.

kdoctor's fields, plus ours for running outside Kubernetes. In kdoctor the body and the TLS
material come from a ConfigMap and a Secret; outside Kubernetes, ``bodyFile`` and the ``tls*File``
fields name local files on each node instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kdoctor.specs.common import DocumentBase, Expect, Model, Request, SpecBase

METHODS = ("GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "HEAD")


class AppHttpTarget(Model):
    """The URL and how to call it: kdoctor's ``spec.target`` of AppHttpHealthy."""

    host: str = Field(description="Full URL; 'http://' is prepended when no scheme is given.")
    method: Literal["GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "HEAD"] = "GET"
    http2: bool = False
    header: list[str] = Field(
        default_factory=list,
        description="'Name: value' strings; the value may itself contain ':' (kdoctor truncates it).",
    )
    body: str | None = Field(default=None, description="Ours: the request body, inline.")
    body_file: str | None = Field(default=None, description="Ours: read the request body from this file.")
    body_configmap_name: str | None = None
    body_configmap_namespace: str | None = None
    tls_secret_name: str | None = None
    tls_secret_namespace: str | None = None
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
            name, sep, _ = item.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"header {item!r} must look like 'Name: value'")
        return value


class AppHttpExpect(Expect):
    """AppHttpHealthy's success conditions."""

    status_code: int | None = Field(
        default=None,
        ge=100,
        le=599,
        description="The expected status code. Unset: 2xx and 3xx succeed (kdoctor counts any "
        "response, 5xx included, as success).",
    )


class AppHttpSpec(SpecBase):
    """``spec`` of an AppHttpHealthy."""

    request: Request = Field(default_factory=Request)
    target: AppHttpTarget
    expect: AppHttpExpect = Field(default_factory=AppHttpExpect)


class AppHttpHealthy(DocumentBase):
    """An AppHttpHealthy task file."""

    kind: Literal["AppHttpHealthy"]
    spec: AppHttpSpec
