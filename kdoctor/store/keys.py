"""Every name kdoctor puts in Redis, in one place: keys, queues, their types and their expiry.

Nothing else in kdoctor builds a key string; the modules of :mod:`kdoctor.store` read and write
through these names, and Celery/kombu/redbeat are handed the queue names and prefixes below.

Written by kdoctor (:mod:`kdoctor.store`)
=========================================

Per round, while it runs (all deleted when its report is written, in the same transaction):

=====================================  ======  =========================================  ==================
key                                    type    holds                                      expires
=====================================  ======  =========================================  ==================
``kdoctor:round:<round>``              string  the round's plan (:class:`RoundState`)     report retention
``kdoctor:round:<round>:progress``     hash    published, expected, startAt, deadline,    with the plan
                                               sent (requests so far): what waiting
                                               clients poll (a few bytes)
``kdoctor:round:<round>:results``      hash    node → NodeResult JSON (first write wins)  with the plan
``kdoctor:round:<round>:digests``      hash    node → NodeDigest JSON (what judging       with the plan
                                               reads: a few KB per node)
``kdoctor:round:<round>:pending``      string  results still expected; the worker that    with the plan
                                               takes it to 0 makes the round due now
``kdoctor:round:<round>:lease``        string  the coordinator writing the report         2 min (a writer
                                                                                          that dies retries)
=====================================  ======  =========================================  ==================

Kept:

=====================================  ======  =========================================  ==================
``kdoctor:report:<round>``             string  the report (zlib-compressed JSON, base64)  report retention
``kdoctor:report:<round>:head``        string  the report's head (what listings read)     report retention
``kdoctor:report:<round>:signals``     string  the round's signals record (what metrics   report retention
                                               and notifications read; zlib JSON, base64)
``kdoctor:reports``                    zset    report id → finish time (the index)        trimmed to the
                                                                                          retention on write
``kdoctor:reports:bytes``              hash    report id → stored bytes (the size cap)    trimmed with it
``kdoctor:job:<job>``                  string  the job (kind, name, normalized spec)      deleted with a one-
                                                                                          shot job's report;
                                                                                          400 d for schedules
``kdoctor:job:<job>:fired``            string  rounds a schedule has fired (INCR)         400 d
``kdoctor:rounds:open``                zset    round → deadline (what the sweeper reads)  removed when
                                                                                          reported
``kdoctor:rotation:<kind>:<name>``     string  a task's round counter (NetReach ring)     report retention
``kdoctor:busy``                       hash    node → {round, until}: the round it runs   removed when
                                                                                          reported
``kdoctor:nodes``                      hash    node → NodeInfo JSON (worker registry)     entries pruned after
                                                                                          ``node_forget_seconds``
``kdoctor:coordinators``               hash    coordinator id → heartbeat JSON            removed on clean stop
``kdoctor:lock:plan``                  string  held while a coordinator plans a round     10 s
``kdoctor:signals:tasks``              hash    ``<kind>/<name>`` → its newest report      entries removed
                                               (id, job, finish time, verdict): what the  by the exporter
                                               exporter reads first                       with the report
``kdoctor:signals:health``             hash    counters of every coordinator: rounds      never (counters)
                                               planned, reports written, rounds ended
                                               by deadline, plan/finalize seconds
                                               histogram buckets (HINCRBY)
``kdoctor:signals:notified``           hash    ``<kind>/<name>`` → the last round the     removed with the
                                               exporter notified about, and its verdict   task's index entry
=====================================  ======  =========================================  ==================

Written by Celery, kombu and redbeat under names chosen here
============================================================

=====================================  ======  =========================================================
key                                    type    holds
=====================================  ======  =========================================================
``kdoctor.coordinator``                list    plan / fire messages (kombu)
``kdoctor.node.<node>``                list    probe messages of one node (pushed by the coordinator in
                                               one pipeline, kombu's envelope; those a node never
                                               consumed are removed when the round is reported)
``_kombu.binding.<queue>``             set     kombu's exchange bindings of each queue
``unacked``, ``unacked_index``         hash,   messages delivered but not yet acknowledged (kombu's
                                       zset    visibility timeout)
``kdoctor:beat:<job>``                 hash    a schedule's beat entry (redbeat)
``kdoctor:beat::schedule``             zset    beat entries by due time (redbeat)
``kdoctor:beat::lock``                 string  the lock that lets one beat fire (redbeat)
=====================================  ======  =========================================================

Celery stores no result: every kdoctor task ignores its result (results travel in kdoctor's own
hash above), so there is no ``celery-task-meta-*`` key and no chord state.
"""

from __future__ import annotations

import re

# -- kdoctor's own keys ------------------------------------------------------------------------------
OPEN_ROUNDS = "kdoctor:rounds:open"
REPORTS_INDEX = "kdoctor:reports"
REPORTS_BYTES = "kdoctor:reports:bytes"
NODES = "kdoctor:nodes"
COORDINATORS = "kdoctor:coordinators"
BUSY = "kdoctor:busy"
PLAN_LOCK = "kdoctor:lock:plan"
SIGNALS_TASKS = "kdoctor:signals:tasks"
SIGNALS_HEALTH = "kdoctor:signals:health"
SIGNALS_NOTIFIED = "kdoctor:signals:notified"

# A schedule's job record and fire counter outlive the report retention: a schedule may run for
# a year, and its counter is what keeps a duplicate fire from planning a round twice.
SCHEDULE_TTL_SECONDS = 400 * 86400


def job(job_id: str) -> str:
    """The job record."""
    return f"kdoctor:job:{job_id}"


def job_fired(job_id: str) -> str:
    """How many rounds a schedule has fired."""
    return f"kdoctor:job:{job_id}:fired"


def round_plan(round_id: str) -> str:
    """The round's plan (``RoundState`` JSON)."""
    return f"kdoctor:round:{round_id}"


def round_results(round_id: str) -> str:
    """The round's node results (hash node → NodeResult JSON)."""
    return f"kdoctor:round:{round_id}:results"


def round_digests(round_id: str) -> str:
    """The round's node digests (hash node → NodeDigest JSON)."""
    return f"kdoctor:round:{round_id}:digests"


def round_progress(round_id: str) -> str:
    """What a waiting client reads of a round (hash)."""
    return f"kdoctor:round:{round_id}:progress"


def round_pending(round_id: str) -> str:
    """How many node results the round still expects."""
    return f"kdoctor:round:{round_id}:pending"


def round_lease(round_id: str) -> str:
    """Which coordinator is writing the round's report."""
    return f"kdoctor:round:{round_id}:lease"


def round_keys(round_id: str) -> list[str]:
    """Every key of a round in progress (deleted once its report is written)."""
    return [round_plan(round_id), round_progress(round_id), round_results(round_id), round_digests(round_id),
            round_pending(round_id), round_lease(round_id)]


def rotation(kind: str, name: str) -> str:
    """The round counter of task ``kind``/``name`` (turns the NetReach peer ring)."""
    return f"kdoctor:rotation:{kind}:{name}"


def report(report_id: str) -> str:
    """A stored report."""
    return f"kdoctor:report:{report_id}"


def report_head(report_id: str) -> str:
    """A stored report's head."""
    return f"kdoctor:report:{report_id}:head"


def report_signals(report_id: str) -> str:
    """A stored report's signals record (:mod:`kdoctor.signals.record`)."""
    return f"kdoctor:report:{report_id}:signals"


def beat_entry(job_id: str) -> str:
    """A schedule's beat entry (redbeat's key for it): present while the schedule is installed."""
    return BEAT_PREFIX + job_id


# -- names handed to Celery, kombu and redbeat -------------------------------------------------------
COORDINATOR_QUEUE = "kdoctor.coordinator"
NODE_QUEUE_PREFIX = "kdoctor.node."
BEAT_PREFIX = "kdoctor:beat:"
BEAT_SCHEDULE = BEAT_PREFIX + ":schedule"
BEAT_LOCK = BEAT_PREFIX + ":lock"

# Kubernetes node names are DNS-1123 subdomains; refusing anything else keeps queue names and
# Redis keys unambiguous.
_NODE_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def node_queue(node: str) -> str:
    """The queue a node's worker consumes: ``kdoctor.node.<node>``."""
    check_node_name(node)
    return NODE_QUEUE_PREFIX + node


def check_node_name(node: str) -> str:
    """Return ``node`` if it is a valid node name, else raise ``ValueError`` saying what is allowed."""
    if len(node) > 253 or not _NODE_RE.match(node):
        raise ValueError(
            f"invalid node name {node!r}: use lowercase letters, digits, '-' and '.', starting and "
            "ending with a letter or digit (as Kubernetes node names)"
        )
    return node
