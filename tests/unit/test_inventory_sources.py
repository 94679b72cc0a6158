"""Choosing the inventory source from the settings, and the static file merged with workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdoctor.inventory.source import kind_of
from kdoctor.inventory.static import StaticInventory, StaticNode, merge
from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo


@pytest.mark.parametrize(("inventory", "in_pod", "kind"), [
    ("", False, "registry"),
    ("", True, "kubernetes"),        # inside a pod with a service account: the API, unasked
    ("registry", True, "registry"),
    ("kubernetes", False, "kubernetes"),
    ("/etc/kdoctor/inventory.yaml", True, "static"),
])
def test_the_inventory_setting_names_the_source(inventory: str, in_pod: bool, kind: str, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0ken")
    env = {"KDOCTOR_INVENTORY": inventory, "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path)}
    if in_pod:
        env |= {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert kind_of(Settings.from_env(env)) == kind


def test_a_pod_without_a_mounted_token_is_not_in_cluster(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
           "KDOCTOR_KUBERNETES_SERVICE_ACCOUNT_DIR": str(tmp_path)}
    assert kind_of(Settings.from_env(env)) == "registry"


def test_kubeconfig_falls_back_to_the_variable_kubectl_reads() -> None:
    assert Settings.from_env({"KUBECONFIG": "/a:/b"}).kubeconfig == "/a:/b"
    assert Settings.from_env({"KUBECONFIG": "/a", "KDOCTOR_KUBECONFIG": "/k"}).kubeconfig == "/k"


def test_a_workers_pod_ips_do_not_replace_the_files_node_addresses_for_node_port() -> None:
    inventory = StaticInventory(nodes=[StaticNode(name="node-1", ipv4=["172.18.0.2"], ipv6=["fc00::2"]),
                                       StaticNode(name="node-2")])
    workers = [NodeInfo(name=n, ipv4=[f"10.244.{i}.5"], agent_port=40000 + i, last_heartbeat=1.0)
               for i, n in ((1, "node-1"), (2, "node-2"))]
    merged = {n.name: n for n in merge(inventory, workers)}
    assert merged["node-1"].addresses == ["10.244.1.5"] and merged["node-1"].agent_port == 40001  # the agent
    assert merged["node-1"].node_port_addresses == ["172.18.0.2", "fc00::2"]  # the node's own
    assert merged["node-2"].node_port_addresses == ["10.244.2.5"]  # the file says nothing: the worker's
