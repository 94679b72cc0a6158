"""``DiskIO`` (ours; kdoctor's roadmap never built it): local disk health on every node.

Same shape as kdoctor's kinds: ``target`` says where and what, ``request`` bounds the run,
``expect`` holds the pass conditions. Profiles:

===========  ==================================================================================
profile      what one node does
===========  ==================================================================================
etcd         sequential 2,300-byte writes, each followed by ``fdatasync`` (fio's etcd recipe,
             22 MiB or ``sizeInMiB`` if smaller); reports fdatasync latency
seqWrite     sequential writes of ``blockSizeInKiB`` (default 1 MiB); bandwidth
seqRead      sequential reads of ``blockSizeInKiB`` from a file laid out beforehand; bandwidth
randRead     ``randomBlockSizeInKiB`` (4 KiB) random reads at each of ``queueDepths``; IOPS
randWrite    ``randomBlockSizeInKiB`` random writes at each of ``queueDepths``; IOPS
===========  ==================================================================================

Each profile (each queue depth of the random ones) stops after ``sizeInMiB`` of I/O or
``durationInSecond``, whichever comes first.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kdoctor.specs.common import DocumentBase, Model, SpecBase

Profile = Literal["etcd", "seqWrite", "seqRead", "randRead", "randWrite"]
PROFILES: tuple[Profile, ...] = ("etcd", "seqWrite", "seqRead", "randRead", "randWrite")

ETCD_BLOCK_BYTES = 2300
"""fio's etcd recipe: ``--bs=2300`` (the size of a typical etcd WAL entry)."""
ETCD_SIZE_MIB = 22
"""fio's etcd recipe: ``--size=22m``."""


class DiskTarget(Model):
    """Where to measure and which profiles to run."""

    directory: str = Field(
        default=".",
        description="Directory to test, relative to the worker's data directory (--data-dir, "
        "KDOCTOR_DATA_DIR), or an absolute path inside it. Missing directories are created.",
    )
    profiles: list[Profile] = Field(
        default_factory=lambda: list[Profile](["etcd"]), min_length=1,
        description="Any of etcd, seqWrite, seqRead, randRead, randWrite; run in that order.",
    )

    @field_validator("directory")
    @classmethod
    def _no_escape(cls, value: str) -> str:
        if not value or "\x00" in value:
            raise ValueError(f"must be a directory path under the worker's data directory; got {value!r}")
        if ".." in value.split("/"):
            raise ValueError(
                f"must not contain '..' (it would leave the worker's data directory); got {value!r}"
            )
        return posixpath.normpath(value)

    @field_validator("profiles")
    @classmethod
    def _unique(cls, value: list[Profile]) -> list[Profile]:
        twice = sorted({p for p in value if value.count(p) > 1})
        if twice:
            raise ValueError(f"each profile at most once; repeated: {', '.join(twice)}")
        return value


class DiskRequest(Model):
    """Bounds of a DiskIO run."""

    duration_in_second: int = Field(
        default=10, ge=1, le=3600,
        description="Upper bound of each profile (and of each queue depth of randRead/randWrite).",
    )
    size_in_mi_b: int = Field(
        default=256, ge=1, le=1_048_576, alias="sizeInMiB",
        description="Upper bound of the I/O of each profile (MiB), and the size of its test file.",
    )
    serial: bool = Field(
        default=False,
        description="Run the nodes one after another instead of all at once (nodes sharing storage "
        "would otherwise measure each other).",
    )
    free_space_margin_in_mi_b: int = Field(
        default=1024, ge=0, le=1 << 40, alias="freeSpaceMarginInMiB",
        description="Refuse to run when the test files would leave less free space than this (MiB).",
    )
    block_size_in_ki_b: int = Field(
        default=1024, ge=4, le=65536, alias="blockSizeInKiB",
        description="Block size of seqWrite and seqRead (KiB, a multiple of 4).",
    )
    random_block_size_in_ki_b: int = Field(
        default=4, ge=4, le=65536, alias="randomBlockSizeInKiB",
        description="Block size of randRead and randWrite (KiB, a multiple of 4).",
    )
    queue_depths: list[int] = Field(
        default_factory=lambda: [1, 32], min_length=1, max_length=8,
        description="I/Os in flight for randRead and randWrite; each depth is measured on its own.",
    )
    direct_io: bool = Field(
        default=True, alias="directIO",
        description="Bypass the page cache (O_DIRECT) where the filesystem supports it. Without it "
        "(or false) I/O is buffered: writes are flushed inside the timing, the cache is dropped "
        "before reads. The report says which was used.",
    )

    @field_validator("block_size_in_ki_b", "random_block_size_in_ki_b")
    @classmethod
    def _aligned(cls, value: int) -> int:
        # Direct I/O needs blocks aligned to the device's logical block (4 KiB covers every disk).
        if value % 4:
            raise ValueError(f"must be a multiple of 4 KiB (direct I/O alignment); got {value}")
        return value

    @field_validator("queue_depths")
    @classmethod
    def _depths(cls, value: list[int]) -> list[int]:
        bad = [d for d in value if not 1 <= d <= 256]
        if bad:
            raise ValueError(f"each queue depth must be 1..256; got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"queue depths must be distinct; got {value}")
        return value

    @property
    def size_bytes(self) -> int:
        """``sizeInMiB`` in bytes."""
        return self.size_in_mi_b * 1024 * 1024


class DiskExpect(Model):
    """Pass conditions of a DiskIO run (ours). Unset conditions are not checked."""

    fdatasync_p99_in_ms: float | None = Field(
        default=10.0, gt=0, description="etcd profile: maximum fdatasync p99 (etcd's guidance: < 10 ms)."
    )
    min_write_mi_bps: float | None = Field(
        default=None, gt=0, alias="minWriteMiBps", description="seqWrite: minimum bandwidth (MiB/s)."
    )
    min_read_mi_bps: float | None = Field(
        default=None, gt=0, alias="minReadMiBps", description="seqRead: minimum bandwidth (MiB/s)."
    )
    min_iops: float | None = Field(
        default=None, gt=0, description="randRead and randWrite: minimum IOPS at every queue depth "
        "without an entry in minIopsByDepth."
    )
    min_iops_by_depth: dict[int, float] = Field(
        default_factory=dict, description="randRead and randWrite: minimum IOPS per queue depth, e.g. "
        "{1: 5000, 32: 40000} (a disk does several times more at depth 32 than at depth 1)."
    )

    @field_validator("min_iops_by_depth")
    @classmethod
    def _positive(cls, value: dict[int, float]) -> dict[int, float]:
        bad = [f"{depth}: {iops}" for depth, iops in value.items() if depth < 1 or iops <= 0]
        if bad:
            raise ValueError(f"depths must be >= 1 and IOPS > 0; got {', '.join(bad)}")
        return value

    def min_iops_at(self, depth: int) -> float | None:
        """The minimum IOPS for a random profile at ``depth``, if any."""
        return self.min_iops_by_depth.get(depth, self.min_iops)


class DiskIOSpec(SpecBase):
    """``spec`` of a DiskIO."""

    target: DiskTarget = Field(default_factory=DiskTarget)
    request: DiskRequest = Field(default_factory=DiskRequest)
    expect: DiskExpect = Field(default_factory=DiskExpect)

    @model_validator(mode="after")
    def _depths_are_run(self) -> DiskIOSpec:
        unknown = sorted(set(self.expect.min_iops_by_depth) - set(self.request.queue_depths))
        if unknown:
            raise ValueError(f"expect.minIopsByDepth names depth(s) {unknown} that request.queueDepths "
                             f"{self.request.queue_depths} does not run; add them there or drop them")
        return self


class DiskIO(DocumentBase):
    """A DiskIO task file."""

    kind: Literal["DiskIO"]
    spec: DiskIOSpec = Field(default_factory=DiskIOSpec)
