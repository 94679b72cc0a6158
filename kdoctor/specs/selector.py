"""Which nodes probe: NetReach's ``sourceNodeSelector`` (ours; kdoctor probes from every node) and
Netdns's ``sourceAgentNodeSelector`` (kdoctor's, a Kubernetes label selector).

A node is selected by a :class:`NodeSelector` when its name is in ``names`` (if given) and it
carries every label of ``matchLabels`` (if given). An empty selector selects every node.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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


class LabelRequirement(Model):
    """One ``matchExpressions`` entry of a Kubernetes label selector."""

    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values; drop them")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (Kubernetes' rules: ``NotIn`` and
        ``DoesNotExist`` hold for a node without the key)."""
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


class LabelSelector(Model):
    """A Kubernetes label selector (``metav1.LabelSelector``), as kdoctor's
    ``sourceAgentNodeSelector``: every ``matchLabels`` pair and every ``matchExpressions``
    requirement must hold; an empty selector selects every node."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelRequirement] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the selector selects every node."""
        return not self.match_labels and not self.match_expressions

    def matches(self, node: NodeInfo) -> bool:
        """Whether ``node``'s labels are selected."""
        return (all(node.labels.get(k) == v for k, v in self.match_labels.items())
                and all(r.matches(node.labels) for r in self.match_expressions))
