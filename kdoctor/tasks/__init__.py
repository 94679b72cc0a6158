"""Celery: the app factory (:mod:`~kdoctor.tasks.app`) and thin task wrappers around the planner,
the probes and the reports. Task names (:mod:`~kdoctor.tasks.names`) are the wire contract."""
