"""Probe engines: pure asyncio, no Celery. They measure; ``judge`` decides.

A probe never raises because a target is unhealthy: that is a result. It raises only when it
could not run at all (:class:`kdoctor.errors.ProbeError`).
"""
