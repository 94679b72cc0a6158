"""The wire contract: spec models (what to inspect) and result/report models (what was found).

Pure pydantic, no I/O beyond reading a spec file; every other package imports from here. The
names below are loaded when first used (PEP 562), so a process that needs only the result
models (a node's worker) does not build every spec model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "AppHttpHealthy": "apphttp", "DiskIO": "diskio", "Netdns": "netdns", "NetReach": "netreach",
    **dict.fromkeys(("KINDS", "Spec", "SpecModel", "load_spec", "load_text", "spec_json", "validate"), "loading"),
    **dict.fromkeys(("REPORT_VERSION", "GeneratorStats", "LatencyMs", "NodeResult", "NodeStatus", "Report",
                     "ReportHead", "Summary", "TargetResult", "TaskRef", "Verdict"), "results"),
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kdoctor.specs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kdoctor.specs.{module}"), name)
