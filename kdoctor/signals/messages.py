"""What a notification says, per receiver type. Pure: no I/O.

* **webhook**: one JSON object per event (``failed``, ``recovered``): task, report id and link,
  round, verdict, the first reasons, the suspects, node counts.
* **slack**: a Slack-compatible incoming webhook message (``text``, mrkdwn).
* **alertmanager**: Alertmanager's v2 alerts (``POST /api/v2/alerts``): one
  ``KdoctorRoundFailed`` per failing task and one ``KdoctorSuspect`` per suspect, labelled with the
  task, its kind and the suspect; ``endsAt`` in the future while firing (re-sent every minute,
  as Prometheus does), now when resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kdoctor.signals.record import Signals

__all__ = ["alerts", "slack", "webhook"]

MESSAGE_VERSION = 1


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _suspect_labels(suspect: Any) -> dict[str, str]:
    if suspect.kind == "pair":
        return {"suspect_kind": "pair", "pair": f"{suspect.source}->{suspect.destination}"}
    if suspect.kind == "service":
        return {"suspect_kind": "service", "service": suspect.target or ""}
    return {"suspect_kind": suspect.kind, "node": suspect.node or ""}


def webhook(event: str, record: Signals, link: str) -> dict[str, Any]:
    """The generic JSON webhook body of ``event`` for the round ``record``."""
    return {
        "version": MESSAGE_VERSION,
        "event": event,
        "task": {"kind": record.kind, "name": record.name},
        "report": record.id,
        "link": link or None,
        "job": record.job,
        "round": record.round,
        "verdict": record.verdict,
        "finished": _iso(record.finished),
        "reasons": record.reasons,
        "suspects": [{**_suspect_labels(s), "reason": s.reason} for s in record.suspects],
        "nodes": record.nodes_by_status,
    }


def slack(event: str, record: Signals, link: str) -> dict[str, Any]:
    """A Slack incoming-webhook message of ``event``."""
    head = (f":red_circle: kdoctor *{record.kind}/{record.name}* round {record.round} failed"
            if event == "failed" else
            f":large_green_circle: kdoctor *{record.kind}/{record.name}* recovered: round {record.round} passed")
    lines = [head]
    if event == "failed":
        lines += [f"• {_escape(reason)}" for reason in record.reasons[:5]]
    report = f"<{link}|{record.id}>" if link else f"`kdoctor report {record.id}`"
    lines.append(f"Report: {report}")
    return {"text": "\n".join(lines)}


def _escape(text: str) -> str:
    """Slack's three control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alerts(record: Signals, link: str, *, ends: float) -> list[dict[str, Any]]:
    """The v2 alerts of a failed round ``record``, ending at ``ends`` (seconds since the epoch;
    in the future while firing, now to resolve them)."""
    base = {"kind": record.kind, "task": record.name}
    summary = f"kdoctor {record.kind}/{record.name}: round {record.round} failed"
    annotations = {"summary": summary, "description": "\n".join(record.reasons), "report": record.id,
                   "command": f"kdoctor report {record.id}"}
    found: list[dict[str, Any]] = [{"labels": {"alertname": "KdoctorRoundFailed", "severity": "critical", **base},
              "annotations": annotations}]
    for suspect in record.suspects:
        found.append({"labels": {"alertname": "KdoctorSuspect", "severity": "critical", **base,
                                 **_suspect_labels(suspect)},
                      "annotations": {**annotations, "summary": f"{summary}; suspect {suspect.kind}",
                                      "description": suspect.reason}})
    for alert in found:
        alert["startsAt"] = _iso(record.finished)
        alert["endsAt"] = _iso(ends)
        if link:
            alert["generatorURL"] = link
    return found
