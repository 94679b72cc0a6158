"""``DiskIO`` (ours; kdoctor's roadmap never built it): local disk health on every node.

Same shape as kdoctor's kinds: ``target`` says where and what, ``request`` bounds the run,
``expect`` holds the pass conditions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdoctor.specs.common import DocumentBase, Model, SpecBase

Profile = Literal["etcd", "seqWrite", "seqRead", "randRead", "randWrite"]


class DiskTarget(Model):
    """Where to measure and which profiles to run."""

    directory: str = Field(
        default=".", description="Directory under the worker's data directory (KDOCTOR_DATA_DIR)."
    )
    profiles: list[Profile] = Field(default_factory=lambda: list[Profile](["etcd"]), min_length=1)
    serial: bool = Field(default=False, description="Run the nodes one after another, not all at once.")


class DiskRequest(Model):
    """Bounds of a DiskIO run."""

    duration_in_second: int = Field(default=10, ge=1, le=3600, description="Upper bound per profile (s).")
    size_in_mi_b: int = Field(default=256, ge=1, le=1_048_576, alias="sizeInMiB")
    block_size_in_ki_b: int = Field(default=1024, ge=1, le=65536, alias="blockSizeInKiB")
    queue_depths: list[int] = Field(default_factory=lambda: [1, 32], min_length=1)


class DiskExpect(Model):
    """Pass conditions of a DiskIO run (ours)."""

    fdatasync_p99_in_ms: float | None = Field(default=10.0, gt=0, description="etcd guidance: < 10 ms.")
    min_write_mi_bps: float | None = Field(default=None, gt=0, alias="minWriteMiBps")
    min_read_mi_bps: float | None = Field(default=None, gt=0, alias="minReadMiBps")
    min_iops: float | None = Field(default=None, gt=0)


class DiskIOSpec(SpecBase):
    """``spec`` of a DiskIO."""

    target: DiskTarget = Field(default_factory=DiskTarget)
    request: DiskRequest = Field(default_factory=DiskRequest)
    expect: DiskExpect = Field(default_factory=DiskExpect)


class DiskIO(DocumentBase):
    """A DiskIO task file."""

    kind: Literal["DiskIO"]
    spec: DiskIOSpec = Field(default_factory=DiskIOSpec)
