"""kdoctor's Python API: ``from kdoctor.api import Client``."""

from kdoctor.api.client import Client, Job, Progress
from kdoctor.errors import (
    BrokerUnavailable,
    KdoctorError,
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
    "Progress",
    "Report",
    "ReportHead",
    "ReportNotFound",
    "SetupError",
    "SpecError",
    "WaitTimeout",
    "load_spec",
]
