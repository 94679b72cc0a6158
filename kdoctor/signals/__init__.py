"""Signals out: kdoctor's results as Prometheus metrics, and notifications of failed rounds.

::

    coordinator: finalize_round ──report──▶ Redis ◀── kdoctor exporter (one replica)
                        └──record (recorder)──▶ │      ├─ /metrics (metrics, server)
                                                 │      └─ notifications (notifier → webhook,
                                                 ▼         Slack, Alertmanager v2)
                      kdoctor:report:<id>:signals, kdoctor:signals:tasks, :health, :notified

* :mod:`~kdoctor.signals.record`: the compact record of a round, made once by the report writer
  from the report's shell and the nodes' digests (a report itself is never loaded here);
* :mod:`~kdoctor.signals.recorder`: what the coordinators call (the record, health counters);
* :mod:`~kdoctor.signals.tasks`: which tasks are current (the index, removed tasks);
* :mod:`~kdoctor.signals.series` and :mod:`~kdoctor.signals.metrics`: every exported series and
  the collector; :mod:`~kdoctor.signals.server`: ``/metrics`` behind authentication;
* :mod:`~kdoctor.signals.receivers`, :mod:`~kdoctor.signals.messages`,
  :mod:`~kdoctor.signals.delivery`, :mod:`~kdoctor.signals.notifier`: who is told what, how it is
  said, how it is delivered (timeouts, bounded retries), and when (failure, recovery, once).

Why a separate ``kdoctor exporter`` rather than ``/metrics`` on every coordinator: several
coordinators run, and each would export the same series (Prometheus would store them twice, and
every sum would double); notifications must go out once, and deciding "recovered" needs the
previous verdict of each task, which one reader of Redis keeps simply. The exporter holds no
state of its own that matters: counters live in Redis (kept by every coordinator), the
notification state too, so it can be restarted or moved at any time.
"""
