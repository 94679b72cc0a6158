"""A job and the plan of one of its rounds, as the coordinator stores them (pure models)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from kdoctor.specs.results import ResultModel


def new_job_id(name: str) -> str:
    """A readable, time-sortable job id: ``<name>-<yyyymmdd>-<hhmmss>-<4 hex>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name[:40]}-{stamp}-{secrets.token_hex(2)}"


def round_id(job: str, number: int) -> str:
    """The id of round ``number`` of ``job``; reports carry the same id."""
    return f"{job}-r{number}"


class Job(ResultModel):
    """A submitted inspection."""

    job: str
    kind: str
    name: str
    spec: dict[str, Any]
    submitted: float
    source: str = Field(default="api", description="api, cli or demo")
    scheduled: bool = Field(default=False, description="Rounds are fired by a schedule; else one round.")


class RoundState(ResultModel):
    """The plan of one round, as the coordinator made it."""

    round_id: str
    job: str
    round: int
    kind: str
    name: str
    spec: dict[str, Any]
    expected: list[str] = Field(default_factory=list)
    published: list[str] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict, description="node → why it is missing")
    idle: dict[str, str] = Field(
        default_factory=dict, description="live node → why it was not asked to probe (not published to)")
    skipped: dict[str, str] = Field(
        default_factory=dict, description="node → why it was left out on purpose (cordoned, no worker)")
    planned: float = 0.0
    start_at: float = 0.0
    deadline: float = 0.0
    warnings: list[str] = Field(default_factory=list)
    inventory: str = "registry"
    error: str = Field(default="", description="Why the round could not be planned, if it could not.")
    coverage: list[list[str]] = Field(
        default_factory=list, description="[source, destination] pairs planned (per-node targets).")


class Busy(ResultModel):
    """A node's round in progress: the node takes no other round's probe before ``until``."""

    round: str
    until: float = Field(description="The round's deadline (broker clock).")
