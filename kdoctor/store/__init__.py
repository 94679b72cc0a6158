"""Everything kdoctor keeps in Redis, and the only code that touches it.

:mod:`~kdoctor.store.keys` names every key and queue (with types and expiry);
:mod:`~kdoctor.store.connection` makes clients from settings and says what a failure means;
:mod:`~kdoctor.store.clock` is the broker's clock; :mod:`~kdoctor.store.rounds`,
:mod:`~kdoctor.store.reports` and :mod:`~kdoctor.store.nodes` read and write jobs and rounds,
reports, and the worker/coordinator registry.
"""
