"""``kdoctor lab``: names, addresses and argument checks that need no root."""

from __future__ import annotations

import ipaddress

import pytest
from click.testing import CliRunner

from kdoctor.cli import cli
from kdoctor.lab import lab
from kdoctor.lab.config import LabConfig


def test_addresses_are_distinct_valid_and_names_fit_linux_limits() -> None:
    config = LabConfig(prefix="kdoctor-lab", net=255, nodes=200)
    addresses = [config.node_v4(i) for i in range(1, 201)] + [config.node_v6(i) for i in range(1, 201)]
    addresses += [config.bridge_v4, config.bridge_v6, config.ingress_v4, config.ingress_v6]
    assert len({ipaddress.ip_address(a) for a in addresses}) == len(addresses)
    assert all(len(config.host_link(i)) <= 15 for i in range(201))
    assert config.index_of("node-7") == config.index_of("7") == config.index_of("kdoctor-lab-7") == 7
    with pytest.raises(ValueError, match=r"node-1 \.\. node-200"):
        config.index_of("node-201")


def test_inventory_of_the_lab_lists_every_node_and_service() -> None:
    inventory = lab.inventory(LabConfig(nodes=3))
    assert [n.name for n in inventory.nodes] == ["node-1", "node-2", "node-3"]
    services = inventory.services_view()
    assert services.node_port and services.port and len(services.cluster_ip) == 2
    assert len(services.ingress) == 2


def test_fault_arguments_are_checked_before_anything_changes(tmp_path: object) -> None:
    runner = CliRunner()
    env = {"KDOCTOR_LAB_DIR": str(tmp_path)}
    result = runner.invoke(cli, ["lab", "--prefix", "nolab", "fault", "node-1", "--loss", "30%"], env=env)
    assert result.exit_code != 0 and "no lab 'nolab' is up" in result.output
    result = runner.invoke(cli, ["lab", "status"], env=env)
    assert result.exit_code == 0 and '"up": false' in result.output
