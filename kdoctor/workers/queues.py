"""Queue names: the single source of truth for where messages go."""

from __future__ import annotations

import re

COORDINATOR_QUEUE = "kdoctor.coordinator"
NODE_QUEUE_PREFIX = "kdoctor.node."

# Kubernetes node names are DNS-1123 subdomains; refusing anything else keeps queue names and
# Redis keys unambiguous.
_NODE_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def node_queue(node: str) -> str:
    """The queue a node's worker consumes: ``kdoctor.node.<node>``."""
    check_node_name(node)
    return NODE_QUEUE_PREFIX + node


def worker_hostname(node: str) -> str:
    """The Celery hostname of a node's worker, as Flower shows it."""
    return f"kdoctor@{node}"


def check_node_name(node: str) -> str:
    """Return ``node`` if it is a valid node name, else raise ``ValueError`` saying what is allowed."""
    if len(node) > 253 or not _NODE_RE.match(node):
        raise ValueError(
            f"invalid node name {node!r}: use lowercase letters, digits, '-' and '.', starting and "
            "ending with a letter or digit (as Kubernetes node names)"
        )
    return node
