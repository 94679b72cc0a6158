"""What probes return and what reports hold: the result and report wire format (JSON, camelCase).

The report format is a contract: fields are only added, never renamed or removed, within one
``reportVersion``. Status and verdict vocabularies are closed sets (``Literal``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

REPORT_VERSION = 1

Verdict = Literal["passed", "failed"]
NodeStatus = Literal["passed", "failed", "missing", "timeout", "error"]


class ResultModel(BaseModel):
    """Base of result models: camelCase on the wire; unknown fields ignored so that an older
    reader can read a newer worker's result."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data with camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)


class LatencyMs(ResultModel):
    """Latency figures in milliseconds, at microsecond resolution; ``None`` without samples."""

    count: int = 0
    min: float | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None


class GeneratorStats(ResultModel):
    """How the load generator itself fared, so a slow client is never blamed on the server."""

    cpu_seconds: float = 0.0
    cpu_percent: float = Field(default=0.0, description="Of one core, over the pressure window.")
    send_lag_p99_ms: float | None = Field(default=None, description="Sent minus due time, p99.")
    saturated: bool = False
    reason: str = ""
    processes: int = Field(default=1, description="Processes that pressed (KDOCTOR_GENERATOR_PROCESSES).")


class DnsFigures(ResultModel):
    """What a DNS target answered, beyond the common figures (Netdns only)."""

    server: str
    port: int
    protocol: str
    query_type: str
    domains: list[str] = Field(default_factory=list)
    rcodes: dict[str, int] = Field(default_factory=dict, description="Replies per RCODE name.")
    timeouts: int = 0
    answers_checked: int = Field(default=0, description="Replies whose answer section was parsed and checked.")
    answer_failures: int = Field(default=0, description="Checked replies whose answer was not the expected one.")
    empty_answers: int = Field(default=0, description="Replies without answer records when one was required.")
    stray_replies: int = Field(default=0, description="Replies to no query in flight (after its timeout).")
    events: dict[str, int] = Field(default_factory=dict, description="ICMP errors, malformed datagrams.")


class TargetResult(ResultModel):
    """One target as seen from one node."""

    name: str
    kind: str = Field(description="Target kind: endpoint, clusterIP, nodePort, url, dns, ...")
    url: str
    destination: str | None = Field(default=None, description="Destination node, when a node is probed.")
    family: Literal[4, 6] | None = None
    requests: int = Field(default=0, description="Requests sent.")
    successes: int = 0
    success_rate: float = 0.0
    intended_qps: float = 0.0
    achieved_qps: float = 0.0
    late: int = Field(default=0, description="Sent later than the lateness threshold after due.")
    unsent: int = Field(default=0, description="Could not be sent within the bounded lateness.")
    latency_ms: LatencyMs = Field(default_factory=LatencyMs)
    status_codes: dict[str, int] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)
    bytes: int = 0
    histogram: str = Field(default="", description="Base64 HDR histogram of latency in µs.")
    verdict: Verdict = "failed"
    reason: str = ""
    dns: DnsFigures | None = Field(default=None, description="Netdns targets only.")
    generator_processes: int = Field(default=1, description="Processes of the node that pressed this target "
                                     "together, each a slice of its schedule (KDOCTOR_GENERATOR_PROCESSES).")


class DiskProfileResult(ResultModel):
    """One DiskIO profile (one queue depth of a random profile) as measured on one node."""

    name: str = Field(description="The profile, with its queue depth for randRead/randWrite: randRead/qd32.")
    profile: str
    queue_depth: int = 1
    block_size: int = Field(default=0, description="Bytes per I/O.")
    directory: str = ""
    filesystem: str = ""
    direct_io: bool = Field(default=False, description="O_DIRECT was used (the page cache bypassed).")
    cache: str = Field(default="", description="How the page cache was kept out of the figures.")
    file_size: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    operations: int = 0
    seconds: float = 0.0
    mib_per_second: float = 0.0
    iops: float = 0.0
    complete: bool = Field(default=True, description="False when durationInSecond cut the profile short.")
    latency_of: str = Field(default="", description="What the latency times: fdatasync, write or read.")
    latency_ms: LatencyMs = Field(default_factory=LatencyMs)
    histogram: str = Field(default="", description="Base64 HDR histogram of latency in µs.")
    engine: str = Field(default="psync", description="libaio: Linux native AIO, one thread keeping queueDepth "
                        "requests in flight (fio's libaio); psync: one thread per request in flight, each a "
                        "blocking pread/pwrite (fio's psync).")
    cpu_percent: float = Field(default=0.0, description="The probe's CPU over this profile, in % of one core; "
                               "at 90 % the generator may be the limit, not the disk.")
    cpu_wait_ms: float = Field(default=0.0, description="How long the probe's I/O threads were ready to run but "
                               "waited for a CPU (run-queue wait, /proc schedstat), summed over the threads.")
    verdict: Verdict = "failed"
    reason: str = ""


class NodeResult(ResultModel):
    """Everything one node reports for one round."""

    node: str
    status: NodeStatus
    reason: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    targets: list[TargetResult] = Field(default_factory=list)
    generator: GeneratorStats | None = None
    warnings: list[str] = Field(default_factory=list)
    profiles: list[DiskProfileResult] = Field(default_factory=list, description="DiskIO only.")


class PairDigest(ResultModel):
    """One node's targets towards one destination node, taken together (a matrix cell)."""

    destination: str
    targets: int = 0
    failed: int = Field(default=0, description="Targets that failed their expectation.")
    requests: int = 0
    successes: int = 0
    p99_ms: float | None = Field(default=None, description="p99 of the pair's merged histograms.")
    histogram: str = Field(default="", description="The pair's targets' histograms merged (base64 HDR): a "
                                                   "destination's latency over its sources (kdoctor.signals).")


class GroupDigest(ResultModel):
    """One node's targets of one kind and family taken together (``endpoint``/ipv4, ``url``/-)."""

    kind: str
    family: Literal[4, 6] | None = None
    targets: int = 0
    failed: int = Field(default=0, description="Targets that failed their expectation.")
    requests: int = 0
    successes: int = 0
    latency_ms: LatencyMs = Field(default_factory=LatencyMs)
    histogram: str = Field(default="", description="The group's histograms merged (base64 HDR).")


class DiskDigest(ResultModel):
    """The figures of one DiskIO profile that metrics carry."""

    name: str
    profile: str
    mib_per_second: float = 0.0
    iops: float = 0.0
    latency_of: str = ""
    p99_ms: float | None = None


class NodeDigest(ResultModel):
    """What the coordinator needs of one node's result to judge the round, made where the
    histograms are (the node, or :func:`kdoctor.specs.digest.digest_of`): a 1,000-node round's
    report then merges 1,000 histograms instead of decoding 40,000 targets."""

    node: str
    status: NodeStatus
    reason: str = ""
    warnings: list[str] = Field(default_factory=list)
    cells: list[PairDigest] = Field(default_factory=list)
    paths: dict[str, bool] = Field(
        default_factory=dict, description="Targets that name no destination node (a Service path, a URL, a DNS "
                                          "server) → whether this node found it bad.")
    requests: int = 0
    successes: int = 0
    latency_ms: LatencyMs = Field(default_factory=LatencyMs)
    histogram: str = Field(default="", description="Every target's latency histogram merged (base64 HDR).")
    # Read by kdoctor.signals (metrics and notifications), not by the judging.
    groups: list[GroupDigest] = Field(default_factory=list, description="Targets per kind and family.")
    generator: GeneratorStats | None = None
    disk: list[DiskDigest] = Field(default_factory=list, description="DiskIO only: one per profile.")


class TaskRef(ResultModel):
    """Which task a report belongs to."""

    kind: str
    name: str


class Summary(ResultModel):
    """Round-wide totals: node counts per status and request totals over all nodes and targets."""

    nodes: dict[str, int] = Field(default_factory=dict)
    requests: int = 0
    successes: int = 0
    success_rate: float | None = None
    latency_ms: LatencyMs = Field(default_factory=LatencyMs)


class MatrixCell(ResultModel):
    """Every target from one source node to one destination node, taken together."""

    source: str
    destination: str
    targets: int = 0
    failed_targets: int = 0
    requests: int = 0
    successes: int = 0
    success_rate: float | None = None
    p99_ms: float | None = Field(default=None, description="p99 latency of the merged targets.")
    bad: bool = Field(default=False, description="Some target of this pair failed its expectation.")


class Suspect(ResultModel):
    """What the blame analysis points at."""

    kind: Literal["node", "source", "destination", "pair", "service"] = Field(
        description="node: its row and column are bad; source: its row (or a Service path that fails "
                    "only from it); destination: its column; pair: one cell not explained by a node; "
                    "service: a ClusterIP / LoadBalancer / Ingress path that fails from most sources.")
    node: str | None = None
    source: str | None = None
    destination: str | None = None
    target: str | None = Field(default=None, description="The Service path, e.g. clusterIP/ipv4.")
    reason: str = ""


class Matrix(ResultModel):
    """Source × destination results of the targets that name a destination node, and blame."""

    nodes: list[str] = Field(default_factory=list)
    cells: list[MatrixCell] = Field(default_factory=list)
    covered: list[list[str]] = Field(
        default_factory=list, description="[source, destination] pairs this round planned to probe.")
    suspects: list[Suspect] = Field(default_factory=list)


class RoundTiming(ResultModel):
    """What the round cost the coordinator, and whether its nodes could start together."""

    plan_seconds: float | None = Field(default=None, description="Reading the inventory and planning.")
    publish_seconds: float | None = Field(default=None, description="Pushing every node's probe message.")
    start_slack_seconds: float | None = Field(
        default=None, description="Start instant minus the end of publishing: negative means nodes started late.")
    report_seconds: float | None = Field(default=None, description="Judging the round and building the report.")


class Report(ResultModel):
    """The report of one round (``reportVersion`` 1)."""

    report_version: int = REPORT_VERSION
    id: str
    job: str
    task: TaskRef
    round: int
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    started: datetime
    finished: datetime
    deadline: datetime
    spec: dict[str, Any]
    nodes: dict[str, NodeResult]
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Nodes left out on purpose, not failed (cordoned without a worker) → why.")
    summary: Summary = Field(default_factory=Summary)
    matrix: Matrix | None = Field(default=None, description="Source × destination matrix with suspects.")
    timing: RoundTiming | None = None

    def head(self) -> ReportHead:
        """The report without its per-node detail, spec and matrix (what listings need)."""
        return ReportHead(
            id=self.id, job=self.job, task=self.task, round=self.round, verdict=self.verdict,
            reasons=self.reasons[:10], started=self.started, finished=self.finished, summary=self.summary,
        )


class ReportHead(ResultModel):
    """A report's identity, verdict and totals: kept beside each report so that listing reports
    never loads whole ones (a 1,000-node NetReach report is tens of MB)."""

    id: str
    job: str
    task: TaskRef
    round: int
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list, description="The first 10 of the report's reasons.")
    started: datetime
    finished: datetime
    summary: Summary = Field(default_factory=Summary)
