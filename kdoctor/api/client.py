"""The Python API: submit inspections, wait for their reports, read reports and nodes.

>>> from kdoctor.api import Client
>>> client = Client("redis://127.0.0.1:6379/0")
>>> job = client.submit("netreach.yaml")          # a path, a dict or a spec model
>>> report = job.wait(timeout=120)
>>> report.verdict
'passed'

Validation happens here, before anything is enqueued: a bad spec, or one naming a ConfigMap,
Secret or DNS Service the Kubernetes API does not have, raises :class:`~kdoctor.errors.SpecError`
and nothing is published. Whatever goes wrong below (Redis
down, a wrong password, a timeout) reaches the caller as a :class:`~kdoctor.errors.KdoctorError`
(:mod:`kdoctor.api.boundary`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from kdoctor.api.boundary import translated
from kdoctor.errors import BrokerUnavailable, NodeNotFound, SetupError, WaitTimeout
from kdoctor.inventory import references
from kdoctor.inventory.source import kind_of, open_source
from kdoctor.probes import kinds
from kdoctor.settings import Settings
from kdoctor.specs.loading import SpecModel, load_spec, spec_json
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView
from kdoctor.specs.results import Report, ReportHead
from kdoctor.specs.rounds import Job as JobRecord
from kdoctor.specs.rounds import new_job_id, round_id
from kdoctor.store import keys, reports, rounds
from kdoctor.store import nodes as registry
from kdoctor.store.clock import broker_now
from kdoctor.store.connection import ping, redis_client
from kdoctor.tasks.app import build_app
from kdoctor.tasks.names import PLAN

__all__ = ["Client", "Job", "Progress"]

# How long a submitted job may wait for a coordinator to plan it before waiting gives up (s).
PLAN_PICKUP_TIMEOUT = 60.0
# After the round deadline the report is normally written within the sweeper's 0.25 s; this
# covers a coordinator restarting at that moment.
REPORT_AFTER_DEADLINE = 30.0
# A waiting client rides out a Redis restart up to this long (s), then says Redis is unreachable.
BROKER_OUTAGE = 60.0


@dataclass(frozen=True)
class Progress:
    """Where a round stands, for progress displays."""

    phase: str
    """``queued`` (not planned yet), ``waiting`` (planned, before the start instant),
    ``running``, ``finalizing`` (past the deadline), ``done``, or ``lost`` (Redis no longer knows
    the job: it was restarted without persistence, or flushed)."""
    expected: int = 0
    published: int = 0
    results: int = 0
    start_at: float = 0.0
    deadline: float = 0.0
    now: float = 0.0
    """The broker's time at this reading: ``start_at`` and ``deadline`` are on that clock."""
    sent: int = 0
    """Requests the nodes have sent so far (each probing node tells about once a second; DiskIO
    sends none)."""


class Job:
    """A submitted inspection; :meth:`wait` returns the report of its first round."""

    def __init__(self, client: Client, job_id: str, spec: SpecModel, number: int = 1) -> None:
        self.client = client
        self.id = job_id
        self.spec = spec
        self.round_id = round_id(job_id, number)
        # Broker time (kdoctor.clock), carried forward on this machine's monotonic clock, so the
        # wait's own limits hold even while Redis is unreachable.
        try:
            self.submitted = broker_now(client.redis)
        except redis.RedisError:
            self.submitted = time.time()
        self._submitted_mono = time.monotonic()

    def __repr__(self) -> str:
        return f"Job({self.id!r}, round_id={self.round_id!r})"

    @property
    def _error_url(self) -> str:
        return self.client.settings.broker_url

    @translated
    def progress(self) -> Progress:
        """The round's current phase and how many nodes have answered.

        One round trip of four small reads (``rounds.progress``), whatever the cluster's size: a
        waiting client never loads the round's plan.
        """
        r = self.client.redis
        done, fields, answered, now = rounds.progress(r, self.round_id)
        if done:
            return Progress("done")
        if not fields:
            return Progress("queued" if rounds.load_job(r, self.id) is not None else "lost")
        start_at, deadline = float(fields["startAt"]), float(fields["deadline"])
        phase = "waiting" if now < start_at else "running" if now < deadline else "finalizing"
        return Progress(phase, int(fields["expected"]), int(fields["published"]), answered, start_at, deadline, now,
                        int(fields.get("sent", 0)))

    @translated
    def wait(self, timeout: float | None = None, poll: float = 0.1,
             on_progress: Any = None) -> Report:
        """Block until the round's report exists and return it.

        Args:
            timeout: seconds to wait at most. ``None`` waits as long as the round can take (its
                deadline plus a margin), so it never hangs.
            poll: seconds between checks.
            on_progress: called with a :class:`Progress` after each check.

        Raises:
            WaitTimeout: no report in time (the message says which phase it was stuck in).
            BrokerUnavailable: Redis refuses us, or stayed unreachable for ``BROKER_OUTAGE``
                seconds, or for the whole wait (a restart of a few seconds is waited through).
        """
        limit = None if timeout is None else time.monotonic() + timeout
        last = Progress("queued")
        outage: BrokerUnavailable | None = None
        outage_since = 0.0
        reached = False
        while True:
            try:
                last = self.progress()
                reached, outage = True, None
                if last.phase == "done":
                    return self.client.report(self.round_id)
            except BrokerUnavailable as exc:
                if not _restarting(exc):
                    raise
                # Redis restarting: keep the last phase and let the limits below decide.
                if outage is None:
                    outage_since = time.monotonic()
                outage = exc
                if time.monotonic() - outage_since > BROKER_OUTAGE:
                    raise
            if on_progress is not None:
                on_progress(last)
            if last.phase == "lost":
                raise WaitTimeout(f"job {self.id} is gone from Redis (restarted without persistence, or "
                                  "flushed?): its report will never be written; submit it again")
            now = self.submitted + (time.monotonic() - self._submitted_mono)
            if limit is not None and time.monotonic() >= limit:
                if outage is not None and not reached:
                    raise outage  # never reached Redis: that, not the round, is why there is no report
                raise WaitTimeout(f"no report for {self.round_id} after {timeout:g} s (phase: {last.phase})")
            if limit is None:
                if last.phase == "queued" and now - self.submitted > PLAN_PICKUP_TIMEOUT:
                    raise WaitTimeout(
                        f"job {self.id} was not planned within {PLAN_PICKUP_TIMEOUT:g} s: is a "
                        "coordinator running (`kdoctor coordinator`) on this broker?")
                if last.deadline and now > last.deadline + REPORT_AFTER_DEADLINE:
                    raise WaitTimeout(
                        f"round {self.round_id} passed its deadline {REPORT_AFTER_DEADLINE:g} s ago "
                        "without a report: is the coordinator still running?")
            time.sleep(poll)


def _restarting(exc: BrokerUnavailable) -> bool:
    """Whether Redis is only unreachable for now (worth waiting through), not refusing us."""
    cause = exc.__cause__
    return isinstance(cause, redis.ConnectionError | redis.TimeoutError) and not isinstance(
        cause, redis.AuthenticationError)


class Client:
    """A connection to one kdoctor installation (one Redis)."""

    def __init__(self, broker_url: str | None = None, *, settings: Settings | None = None) -> None:
        """Talk to ``broker_url``, or to what ``settings`` say; with neither, the ``KDOCTOR_*``
        environment (the Python API is an entry point, like the CLI)."""
        self.settings = settings or Settings.from_env(broker_url=broker_url)
        self.redis = redis_client(self.settings)
        self._app: Celery | None = None

    @property
    def _error_url(self) -> str:
        return self.settings.broker_url

    @property
    def app(self) -> Celery:
        """kdoctor's Celery app for these settings (built on first use)."""
        if self._app is None:
            self._app = build_app(self.settings)
        return self._app

    def close(self) -> None:
        """Release connections."""
        self.redis.close()
        if self._app is not None:
            self._app.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @translated
    def submit(self, spec: SpecModel | dict[str, Any] | str | Path, *, source: str = "api") -> Job:
        """Validate ``spec`` and enqueue one round of it now.

        Raises:
            SpecError: the spec is invalid, or names an API object that does not exist (nothing
                was enqueued).
            SetupError: this build cannot run the kind, no coordinator is running, or the
                Kubernetes API cannot be asked.
            BrokerUnavailable: Redis cannot be reached.
        """
        model = load_spec(spec)
        kinds.check(model.kind)
        self.check_references(model)
        self.check_ready()
        job_id = new_job_id(model.name)
        data = spec_json(model)
        ttl = int(self.settings.report_retention_days * 86400)
        rounds.save_job(self.redis, JobRecord(job=job_id, kind=model.kind, name=model.name, spec=data,
                                              submitted=broker_now(self.redis), source=source), ttl)
        self.app.send_task(PLAN, args=(job_id, 1), queue=keys.COORDINATOR_QUEUE)
        return Job(self, job_id, model)

    @translated
    def schedule(self, spec: SpecModel | dict[str, Any] | str | Path, *, source: str = "api") -> str:
        """Validate ``spec`` and install its ``spec.schedule`` (rounds fired by ``kdoctor beat``).

        Returns the job id; every round's report is ``<job>-r<n>``. Raises like :meth:`submit`.
        A ``roundNumber`` of 0 installs nothing (kdoctor marks such a task finished at once): the
        id returned then names no round.
        """
        from kdoctor.tasks import schedules

        model = load_spec(spec)
        if model.spec.schedule.round_number == 0:
            return new_job_id(model.name)
        kinds.check(model.kind)
        self.check_references(model)
        self.check_ready()
        job = JobRecord(job=new_job_id(model.name), kind=model.kind, name=model.name,
                        spec=spec_json(model), submitted=broker_now(self.redis), source=source, scheduled=True)
        # A schedule may run for a long time: its job record outlives the report retention.
        rounds.save_job(self.redis, job, max(int(self.settings.report_retention_days * 86400),
                                             keys.SCHEDULE_TTL_SECONDS))
        schedules.add(self.app, self.redis, job, model)
        return job.job

    @translated
    def schedules(self) -> list[Any]:
        """Installed schedules (``ScheduleInfo``), soonest first."""
        from kdoctor.tasks import schedules

        ping(self.redis, self.settings)
        return schedules.list_all(self.app, self.redis)

    @translated
    def unschedule(self, job_id: str) -> bool:
        """Remove a schedule; ``False`` if there was none. Reports already written are kept."""
        from kdoctor.tasks import schedules

        ping(self.redis, self.settings)
        return schedules.remove(self.app, self.redis, job_id)

    @translated
    def check_references(self, spec: SpecModel) -> None:
        """Raise :class:`SpecError` when ``spec`` names a ConfigMap, Secret or DNS Service the
        inventory (``settings.inventory``; only the ``kubernetes`` one has API objects) says does
        not exist, and :class:`SetupError` when the inventory cannot be asked."""
        references.check(open_source(self.settings, self.redis), spec)

    @translated
    def check_ready(self) -> None:
        """Raise unless Redis answers and a coordinator is alive."""
        ping(self.redis, self.settings)
        if not registry.live_coordinators(self.redis, self.settings.coordinator_timeout_seconds):
            raise SetupError(
                "no kdoctor coordinator is running on this broker (no heartbeat in the last "
                f"{self.settings.coordinator_timeout_seconds:g} s): start one with `kdoctor coordinator`"
            )

    @translated
    def report(self, report_id: str) -> Report:
        """The report with that id; :class:`~kdoctor.errors.ReportNotFound` if there is none."""
        return reports.load(self.redis, report_id)

    @translated
    def reports(self, *, limit: int = 20, job: str | None = None, kind: str | None = None,
                name: str | None = None, unreadable: list[str] | None = None) -> list[ReportHead]:
        """The heads (verdict, reasons, totals) of stored reports, newest first; :meth:`report`
        gives a whole one. A stored head that cannot be read is skipped (and its id appended to
        ``unreadable`` when given)."""
        return reports.latest(self.redis, limit=limit, job=job, kind=kind, name=name, unreadable=unreadable)

    @translated
    def inventory(self) -> InventoryView:
        """The inventory as the next round would see it (``settings.inventory``: the Kubernetes
        Nodes, the worker registry or a file): the expected nodes, which are live, why the others
        are missing, and the nodes it leaves out on purpose (``skipped``: cordoned, stopped)."""
        return open_source(self.settings, self.redis).snapshot(broker_now(self.redis))

    @translated
    def nodes(self) -> list[NodeInfo]:
        """Every node of the inventory, expected or skipped, by name, with its last heartbeat (see
        :meth:`NodeInfo.state` and :meth:`now`; :meth:`inventory` says which are skipped)."""
        view = self.inventory()
        return sorted([*view.expected, *view.skipped_nodes], key=lambda n: n.name)

    @translated
    def forget_node(self, name: str) -> None:
        """Remove ``name`` from the worker registry: rounds stop expecting it (a node taken out of
        service). Only a node whose worker is not running can be forgotten, since a running one
        registers again at its next heartbeat; a worker started later registers it anew.

        Raises:
            NodeNotFound: no node of that name is registered.
            SetupError: its worker is running, or the inventory is the Kubernetes API (which
                decides by itself: delete or cordon the Node).
        """
        if kind_of(self.settings) == "kubernetes":
            raise SetupError(f"the kubernetes inventory expects every Node of the API: delete the Node "
                             f"(`kubectl delete node {name}`) or cordon it to leave it out of rounds")
        now = broker_now(self.redis)
        entry = next((n for n in registry.nodes(self.redis) if n.name == name), None)
        if entry is None:
            raise NodeNotFound(f"no node named {name!r} is registered (`kdoctor nodes` lists them)")
        if entry.stopped is None and now - entry.last_heartbeat <= self.settings.node_timeout_seconds:
            raise SetupError(f"{name}'s worker is running (last heartbeat {now - entry.last_heartbeat:.0f} s ago): "
                             "stop it first, or it registers again at its next heartbeat")
        registry.forget(self.redis, name)

    @translated
    def now(self) -> float:
        """The broker's clock (seconds since the epoch): what heartbeats and round instants use."""
        return broker_now(self.redis)
