"""kdoctor's Python API: ``from kdoctor.api import Client``."""

from kdoctor.api.client import Client, Job, Progress
from kdoctor.errors import (
    BrokerUnavailable,
    KdoctorError,
    NodeNotFound,
    ReportNotFound,
    SetupError,
    SpecError,
    WaitTimeout,
)
from kdoctor.specs import Report, ReportHead, load_spec

__all__ = [
    "BrokerUnavailable",
    "Client",
    "Job",
    "KdoctorError",
    "NodeNotFound",
    "Progress",
    "Report",
    "ReportHead",
    "ReportNotFound",
    "SetupError",
    "SpecError",
    "WaitTimeout",
    "load_spec",
]
