"""The wire contract: spec models (what to inspect) and result/report models (what was found).

Pure pydantic, no I/O beyond reading a spec file; every other package imports from here.
"""

from kdoctor.specs.apphttp import AppHttpHealthy
from kdoctor.specs.diskio import DiskIO
from kdoctor.specs.loading import KINDS, Spec, SpecModel, load_spec, load_text, spec_json, validate
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.netreach import NetReach
from kdoctor.specs.results import (
    REPORT_VERSION,
    GeneratorStats,
    LatencyMs,
    NodeResult,
    NodeStatus,
    Report,
    ReportHead,
    Summary,
    TargetResult,
    TaskRef,
    Verdict,
)

__all__ = [
    "KINDS",
    "REPORT_VERSION",
    "AppHttpHealthy",
    "DiskIO",
    "GeneratorStats",
    "LatencyMs",
    "NetReach",
    "Netdns",
    "NodeResult",
    "NodeStatus",
    "Report",
    "ReportHead",
    "Spec",
    "SpecModel",
    "Summary",
    "TargetResult",
    "TaskRef",
    "Verdict",
    "load_spec",
    "load_text",
    "spec_json",
    "validate",
]
