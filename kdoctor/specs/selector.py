"""``sourceNodeSelector``: which nodes probe (ours; kdoctor probes from every node).

A node is selected when its name is in ``names`` (if given) and it carries every label of
``matchLabels`` (if given). An empty selector selects every node.
"""

from __future__ import annotations

from pydantic import Field

from kdoctor.specs.common import Model
from kdoctor.specs.nodes import NodeInfo


class NodeSelector(Model):
    """Select nodes by name and/or labels."""

    names: list[str] = Field(default_factory=list, description="Node names; empty: any name.")
    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels a node must all carry; empty: any labels."
    )

    @property
    def empty(self) -> bool:
        """Whether the selector selects every node."""
        return not self.names and not self.match_labels

    def matches(self, node: NodeInfo) -> bool:
        """Whether ``node`` is selected."""
        if self.names and node.name not in self.names:
            return False
        return all(node.labels.get(k) == v for k, v in self.match_labels.items())
