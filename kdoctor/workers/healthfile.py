"""The health file every long-running role rewrites at each heartbeat, and its check.

``python -m kdoctor.workers.healthfile FILE [--max-age S] [--ready]`` exits 0 when the file is
fresh and says the role is alive (and ready, with ``--ready``), 1 otherwise with the reason: the
liveness and readiness probes of ``deploy/base``. It imports nothing but the standard library, so
a probe every few seconds costs a few milliseconds, not an interpreter full of Celery
(``kdoctor health`` is the same check for people).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Health", "main", "read_health", "write_health"]


@dataclass(frozen=True)
class Health:
    """What a role says of itself in its health file."""

    role: str
    alive: bool
    """False: restart me (liveness fails)."""
    ready: bool
    """False: don't count on me yet (readiness fails); implies nothing about liveness."""
    why: str = ""
    at: float = 0.0


def write_health(path: str, health: Health) -> None:
    """Replace the health file atomically (a probe never reads half of it); no-op without a path."""
    if not path:
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"role": health.role, "alive": health.alive, "ready": health.ready,
                               "why": health.why, "at": health.at or time.time()}))
    tmp.replace(target)


def read_health(path: str, max_age: float, *, ready: bool) -> tuple[bool, str]:
    """Whether a probe should pass, and why not: the file must be fresh and say alive (and ready,
    for a readiness probe). A role that stopped writing it is as good as dead."""
    try:
        found = json.loads(Path(path).read_text())
        age = time.time() - float(found["at"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable health file at {path}: {exc}"
    if age > max_age:
        return False, f"{found.get('role', 'the process')} has not written its health for {age:.0f} s"
    if not found.get("alive"):
        return False, f"not alive: {found.get('why', '')}"
    if ready and not found.get("ready"):
        return False, f"not ready: {found.get('why', '')}"
    return True, "ok"


def main(argv: Sequence[str] | None = None) -> int:
    """The probe: exit 0 healthy, 1 not (the reason on standard error)."""
    parser = argparse.ArgumentParser(prog="kdoctor-health", description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds; older counts as dead")
    parser.add_argument("--ready", action="store_true", help="also require ready (a readiness probe)")
    args = parser.parse_args(argv)
    ok, why = read_health(args.file, args.max_age, ready=args.ready)
    if not ok:
        print(why, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
