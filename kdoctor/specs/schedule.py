"""The three forms of ``spec.schedule.schedule`` and when their rounds fall due.

* ``"M N"``: kdoctor's interval form, first round M minutes after submission, then every N minutes.
* ``"Ms Ns"``: ours, the same in seconds, for short tests and demos (``"0s 10s"``).
* five cron fields (``"*/5 * * * *"``), evaluated in UTC, as kdoctor does with robfig/cron.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from croniter import croniter

_INTERVAL_RE = re.compile(r"^\s*(\d+)(s?)\s+(\d+)(s?)\s*$")

FORMS = "'M N' (minutes: start after M, then every N), 'Ms Ns' (the same in seconds) or 5 cron fields"


@dataclass(frozen=True)
class Interval:
    """Start after ``delay_seconds``, then every ``every_seconds``."""

    delay_seconds: int
    every_seconds: int
    unit: Literal["minutes", "seconds"]

    def first(self, submitted: datetime) -> datetime:
        """When the first round is due."""
        return submitted + timedelta(seconds=self.delay_seconds)

    def after(self, previous: datetime) -> datetime:
        """When the round after one due at ``previous`` is due."""
        return previous + timedelta(seconds=self.every_seconds)


@dataclass(frozen=True)
class Cron:
    """A standard five-field cron expression, in UTC."""

    expression: str

    def first(self, submitted: datetime) -> datetime:
        """When the first round is due: the first cron time after submission."""
        return self.after(submitted)

    def after(self, previous: datetime) -> datetime:
        """The next cron time strictly after ``previous``."""
        nxt: datetime = croniter(self.expression, previous.astimezone(UTC)).get_next(datetime)
        return nxt.astimezone(UTC)


def parse(text: str) -> Interval | Cron:
    """Parse a schedule string; ``ValueError`` names the allowed forms."""
    match = _INTERVAL_RE.match(text)
    if match:
        delay, delay_s, every, every_s = match.groups()
        if delay_s != every_s:
            raise ValueError(f"{text!r}: use seconds ('0s 10s') or minutes ('0 1') for both numbers")
        unit: Literal["minutes", "seconds"] = "seconds" if every_s else "minutes"
        scale = 1 if every_s else 60
        if int(every) < 1:
            raise ValueError(f"{text!r}: the interval N must be at least 1")
        return Interval(int(delay) * scale, int(every) * scale, unit)
    fields = text.split()
    if len(fields) == 5 and croniter.is_valid(text):
        return Cron(" ".join(fields))
    raise ValueError(f"{text!r} is not a schedule; allowed: {FORMS}")
