"""The exceptions kdoctor raises, in one tree.

::

    KdoctorError
    ├── SpecError            bad input: names every wrong field and what is allowed
    ├── SetupError           kdoctor cannot work here: no broker, no coordinator, no node
    │   └── BrokerUnavailable    Redis cannot be reached
    ├── NodeNotFound         no node of that name in the registry
    ├── ReportNotFound       no report with that id (never written, or past retention)
    │   └── ReportUnreadable     the stored report cannot be read (corrupt, or not a report)
    ├── WaitTimeout          a job produced no report within the caller's timeout
    └── ProbeError           a probe could not run at all (not: the target is unhealthy)

An unhealthy target is never an exception: it is a result with a verdict and a reason. Errors of
third-party libraries are wrapped at the boundary and chained (``raise ... from exc``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BrokerUnavailable",
    "FieldProblem",
    "KdoctorError",
    "NodeNotFound",
    "ProbeError",
    "ReportNotFound",
    "ReportUnreadable",
    "SetupError",
    "SpecError",
    "WaitTimeout",
]


class KdoctorError(Exception):
    """Base of every kdoctor error."""


@dataclass(frozen=True)
class FieldProblem:
    """One wrong field of a spec: where it is and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(KdoctorError, ValueError):
    """A spec is invalid. ``problems`` lists every wrong field, each with what is allowed."""

    def __init__(self, problems: list[FieldProblem], source: str = "", what: str = "spec") -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        if len(problems) == 1 and not problems[0].path:  # one problem with the whole input: say it plainly
            super().__init__(f"{what} {source}: {problems[0].message}" if source else problems[0].message)
            return
        lines = [f"invalid {what}{where}: {len(problems)} problem(s)"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


class SetupError(KdoctorError):
    """kdoctor cannot do its work in this setup (nothing to talk to, nothing to probe)."""


class BrokerUnavailable(SetupError):
    """The Redis broker cannot be reached."""


class NodeNotFound(KdoctorError, LookupError):
    """No node of that name is registered."""


class ReportNotFound(KdoctorError, LookupError):
    """No report exists under that id."""


class ReportUnreadable(ReportNotFound):
    """A report is stored under that id but cannot be read back."""


class WaitTimeout(KdoctorError, TimeoutError):
    """A job produced no report within the caller's timeout."""


class ProbeError(KdoctorError):
    """A probe could not run at all, e.g. its directory is outside the data directory."""
