"""Celery: the app factory and thin task wrappers around probes and reports.

Task names are the wire contract (``kdoctor.plan``, ``kdoctor.probe``, ``kdoctor.finalize``):
Flower and routing address tasks by name, so renaming a module never breaks a message in flight.
"""
