"""Parts shared by every spec kind: metadata, schedule, request, expect.

Field names and defaults are kdoctor's (``kdoctor.io/v1beta1``) so existing task files load
unchanged. Where kdoctor's default is a bug we deviate, and say so in the field's description:

* ``perRequestTimeoutInMS`` defaults to 1000 ms, not kdoctor's CRD default of 5 ms (its docs claim
  500 ms; 5 ms fails any cross-node request that is not on the same rack).
* ``roundTimeoutMinute`` defaults to the interval of an ``"M N"`` schedule when that is shorter
  than 60 minutes: kdoctor's own default ("0 1" with 60) is rejected by kdoctor's own validator.
* ``expect.meanAccessDelayInMs`` accepts fractions of a millisecond; latencies are measured in
  microseconds, not whole milliseconds.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kdoctor.specs import schedule as schedule_mod

API_VERSION = "kdoctor.io/v1beta1"

# A DNS-1123 subdomain, as Kubernetes requires of object names: names end up in Redis keys,
# queue names and file names, so the same rule keeps them safe everywhere.
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


# No string in a task file needs more (paths, URLs, header lines, names); an inline body may be a
# whole file, up to kdoctor.specs.reading.MAX_BYTES.
MAX_STRING = 4096


class Model(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields refused, immutable, every number
    finite and every string bounded (a spec the validator accepts must always plan)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False,
        str_max_length=MAX_STRING,
    )


class Metadata(BaseModel):
    """Kubernetes-style object metadata. Only ``name`` is used; other keys (labels, annotations,
    the fields ``kubectl get -o yaml`` adds) are accepted so exported objects load unchanged."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False, str_max_length=MAX_STRING)

    name: str = Field(max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "must be lowercase letters, digits, '-' or '.', starting and ending with a letter "
                f"or digit (a Kubernetes object name); got {value!r}"
            )
        return value


class AgentSpec(BaseModel):
    """kdoctor's ``agentSpec`` (which workload runs the agents). Accepted for compatibility and
    kept in the report; kdoctor's worker DaemonSet is deployed separately, so it is not acted on."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False, str_max_length=MAX_STRING)


class Schedule(Model):
    """When rounds run: kdoctor's ``spec.schedule``."""

    schedule: str = Field(
        default="0 60",
        description="'M N' (start after M minutes, then every N minutes), a 5-field cron "
        "expression (UTC), or ours for short tests: 'Ms Ns' in seconds, e.g. '0s 10s'.",
    )
    round_number: int = Field(
        default=1, ge=-1, description="Number of rounds; -1 runs forever; 0 runs none (`schedule add` installs "
        "nothing, as kdoctor marks such a task finished at once)."
    )
    round_timeout_minute: int | None = Field(
        default=None,
        ge=1,
        description="Deadline of a round from its start. Default: 60, or the interval of an "
        "'M N' schedule when shorter (kdoctor's default contradicts its own validator).",
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        schedule_mod.parse(value)  # raises ValueError with the allowed forms
        return value

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> Schedule:
        parsed = schedule_mod.parse(self.schedule)
        if (
            isinstance(parsed, schedule_mod.Interval)
            and parsed.unit == "minutes"
            and self.round_timeout_minute is not None
            and self.round_timeout_minute * 60 > parsed.every_seconds
        ):
            raise ValueError(
                f"roundTimeoutMinute ({self.round_timeout_minute}) must not exceed the interval of "
                f"schedule {self.schedule!r} ({parsed.every_seconds // 60} min): rounds would overlap"
            )
        return self

    @property
    def round_timeout_seconds(self) -> float:
        """The effective per-round deadline, in seconds."""
        if self.round_timeout_minute is not None:
            return self.round_timeout_minute * 60.0
        parsed = schedule_mod.parse(self.schedule)
        if isinstance(parsed, schedule_mod.Interval) and parsed.unit == "minutes":
            return float(min(3600, parsed.every_seconds))
        return 3600.0


class Request(Model):
    """How hard and how long to press: kdoctor's ``spec.request`` (HTTP and DNS kinds)."""

    qps: int = Field(
        default=5,
        ge=1,
        le=1_000_000,
        description="Requests per second from each node to each target. kdoctor caps this at "
        "19/99 by webhook; we do not (the driver reports when it cannot keep up).",
    )
    duration_in_second: int = Field(default=2, ge=1, le=86400, description="Pressure duration (s).")
    per_request_timeout_in_ms: int = Field(
        default=1000,
        ge=1,
        le=3_600_000,
        alias="perRequestTimeoutInMS",
        description="Per-request timeout (ms). kdoctor's CRD default is 5 ms; ours is 1000 ms.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Ours: upper bound on requests in flight per target (connections for HTTP). "
        "Default: enough for qps × timeout, at most 1,000.",
    )

    @classmethod
    def webhook_default(cls) -> Request:
        """What kdoctor's webhook fills in when a NetReach or AppHttpHealthy has no ``request``
        (its ``netHttpDefaultRequest*`` settings): 10 QPS for 2 s, 500 ms per request."""
        return cls(qps=10, duration_in_second=2, per_request_timeout_in_ms=500)

    @property
    def timeout_seconds(self) -> float:
        """The per-request timeout in seconds."""
        return self.per_request_timeout_in_ms / 1000.0

    @property
    def total_requests(self) -> int:
        """How many requests one node sends to one target in a round."""
        return self.qps * self.duration_in_second

    def effective_concurrency(self) -> int:
        """The in-flight bound: explicit, or what the rate needs if every request timed out."""
        if self.concurrency is not None:
            return self.concurrency
        needed = int(self.qps * self.timeout_seconds) + 1
        return max(1, min(1000, needed))


class Expect(Model):
    """Success conditions shared by the request kinds: kdoctor's ``spec.expect``."""

    success_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Minimum successes / requests per target."
    )
    mean_access_delay_in_ms: float = Field(
        default=5000.0, gt=0, description="Maximum mean latency per target (ms, fractions allowed)."
    )
    p99_access_delay_in_ms: float | None = Field(
        default=None, gt=0, description="Ours: maximum 99th percentile latency per target (ms)."
    )


class NetExpect(Expect):
    """kdoctor's shared success block as NetReach and Netdns take it: ``statusCode`` is allowed by
    kdoctor's CRD for every kind and used by AppHttpHealthy only."""

    status_code: int | None = Field(
        default=None, ge=100, le=599, description="Accepted and ignored, as kdoctor does (the report warns): "
        "a NetReach target succeeds on a 2xx answer, a Netdns query on its reply codes.")


class SpecBase(Model):
    """Fields every kind's ``spec`` has."""

    agent_spec: AgentSpec | None = None
    schedule: Schedule = Field(default_factory=Schedule)


class DocumentBase(Model):
    """The envelope: ``apiVersion``, ``kind``, ``metadata``, ``spec`` (and kdoctor's ``status``,
    which exported objects carry; it is accepted and ignored)."""

    api_version: Literal["kdoctor.io/v1beta1"] = Field(alias="apiVersion")
    metadata: Metadata
    status: dict[str, Any] | None = Field(default=None, exclude=True)

    @property
    def name(self) -> str:
        """The task name (``metadata.name``)."""
        return self.metadata.name
