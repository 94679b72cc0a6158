"""A list-then-watch cache of one collection, as client-go's reflector keeps one.

:meth:`Reflector.start` lists the collection once (from the API server's watch cache,
``resourceVersion=0``) and a daemon thread then watches it from the list's resourceVersion,
applying every ``ADDED``/``MODIFIED``/``DELETED`` event to a dict of small records and moving its
resourceVersion on with each event and ``BOOKMARK``. A stream the server ends (``timeoutSeconds``,
5 to 10 minutes, jittered so the watches of many coordinators do not all reconnect at once) is
resumed from the last resourceVersion, so no event is lost or repeated. When that version has
expired the server answers 410 Gone (an ``ERROR`` event, or an HTTP 410) and the collection is
listed again, this time consistently (``resourceVersion`` unset) so the cache never goes back in
time. A connection error is retried with backoff (1 s doubling to 30 s) and reported by
:meth:`Reflector.trouble`; meanwhile the cache keeps its last state.

Why not ``kubernetes.watch.Watch``: it turns every event into the client's models (slow), and
with ``deserialize=False`` it fails on ``ERROR`` events (kubernetes 37.0 looks up a
``raw_object`` key only the deserializing path sets), which is exactly how 410 arrives.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kdoctor.errors import SetupError
from kdoctor.inventory.kubernetes.api import Api, Gone, Resource

__all__ = ["Reflector"]

log = logging.getLogger(__name__)

R = TypeVar("R")
Raw = dict[str, Any]

WATCH_SECONDS = (300, 600)
BACKOFF_SECONDS = (1.0, 30.0)
SHORT_WATCH_SECONDS = 1.0


class Reflector(Generic[R]):
    """The records of one collection, kept current by a watch thread."""

    def __init__(self, api: Api, resource: Resource, parse: Callable[[Raw], R], *,
                 namespace: str | None = None, label_selector: str = "", field_selector: str = "") -> None:
        self.api = api
        self.resource = resource
        self.parse = parse
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.what = resource.plural + (f" in {namespace}" if namespace else "")
        self._items: dict[str, R] = {}
        self._lock = threading.Lock()
        self._version = ""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._listed_at = 0.0
        self._error = ""
        self.lists = 0
        """How many times the collection was listed (1 + one per 410 Gone)."""

    # -- reading -------------------------------------------------------------------------------

    def items(self) -> list[R]:
        """The current records."""
        with self._lock:
            return list(self._items.values())

    def trouble(self, after: float) -> str | None:
        """Why the cache may be stale, once its watch has been failing for ``after`` seconds."""
        since = self._failing_since
        if since is None or time.monotonic() - since < after:
            return None
        return f"the watch of {self.what} has failed for {time.monotonic() - since:.0f} s ({self._error})"

    # -- keeping it current --------------------------------------------------------------------

    def list(self, *, consistent: bool = False) -> None:
        """Replace the cache with a fresh list (``consistent``: from etcd, not the watch cache)."""
        raw, version = self.api.list(self.resource, self.namespace, label_selector=self.label_selector,
                                     field_selector=self.field_selector,
                                     resource_version=None if consistent else "0")
        items = {}
        for obj in raw:
            parsed = self._parse(obj)
            if parsed is not None:
                items[self._key(obj)] = parsed
        with self._lock:
            self._items = items
            self._version = version
        self._listed_at = time.monotonic()
        self.lists += 1

    def start(self) -> Reflector[R]:
        """List now (raising :class:`SetupError` when that fails), then watch in a thread."""
        self.list()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.what}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the thread ends with its current stream, within its timeout)."""
        self._stopping.set()

    def _run(self) -> None:
        backoff = BACKOFF_SECONDS[0]
        relist = False
        while not self._stopping.is_set():
            try:
                if relist:
                    self.list(consistent=True)
                    relist = False
                self._watch()
                backoff = BACKOFF_SECONDS[0]
            except Gone as exc:
                log.info("%s: %s; listing again", self.what, exc)
                if time.monotonic() - self._listed_at < SHORT_WATCH_SECONDS:
                    # Gone straight after a fresh list: listing again at once would only loop.
                    self._stopping.wait(backoff)
                    backoff = min(BACKOFF_SECONDS[1], backoff * 2)
                relist = True
            except SetupError as exc:
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                self._error = str(exc)
                log.warning("%s (retrying in %.0f s)", exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(BACKOFF_SECONDS[1], backoff * 2)
            except Exception:  # a thread that dies silently would leave the cache stale forever
                log.exception("watch of %s failed; listing again", self.what)
                relist = True
                self._stopping.wait(backoff)

    def _watch(self) -> None:
        timeout = random.randint(*WATCH_SECONDS)
        opened, seen = time.monotonic(), 0
        with self.api.watch(self.resource, self.namespace, label_selector=self.label_selector,
                            field_selector=self.field_selector, resource_version=self._version,
                            timeout=timeout) as events:
            self._failing_since, self._error = None, ""
            for event in events:
                if self._stopping.is_set():
                    return
                self._apply(event)
                seen += 1
        if not seen and time.monotonic() - opened < SHORT_WATCH_SECONDS:
            # A server that ends every stream at once would otherwise be asked again in a tight loop.
            self._stopping.wait(BACKOFF_SECONDS[0])

    def _apply(self, event: Raw) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code, message = obj.get("code"), obj.get("message", "")
            if code == 410:
                raise Gone(f"watch of {self.what}: {message}")
            raise SetupError(f"the watch of {self.what} ended with an error: {code} {message}")
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        with self._lock:
            if kind in ("ADDED", "MODIFIED"):
                parsed = self._parse(obj)
                if parsed is not None:
                    self._items[self._key(obj)] = parsed
            elif kind == "DELETED":
                self._items.pop(self._key(obj), None)
            if version:
                self._version = version

    @staticmethod
    def _key(obj: Raw) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def _parse(self, obj: Raw) -> R | None:
        try:
            return self.parse(obj)
        except (KeyError, TypeError, ValueError) as exc:  # one odd object must not stop the cache
            log.warning("ignoring a malformed %s object: %s", self.resource.kind, exc)
            return None
