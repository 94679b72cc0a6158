"""Settings come from KDOCTOR_* variables; queue names come from one function."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdoctor.settings import Settings
from kdoctor.store.keys import COORDINATOR_QUEUE, check_node_name, node_queue
from kdoctor.workers.identity import worker_hostname

README = Path(__file__).parent.parent.parent / "README.md"


def test_from_env_converts_and_overrides() -> None:
    s = Settings.from_env({"KDOCTOR_BROKER_URL": "redis://h:1/2", "KDOCTOR_HEARTBEAT_SECONDS": "0.5",
                           "KDOCTOR_AGENT_PORT": "0"}, log_level="DEBUG")
    assert s.broker_url == "redis://h:1/2"
    assert s.heartbeat_seconds == 0.5
    assert s.agent_port == 0
    assert s.log_level == "DEBUG"
    assert Settings.from_env({}).broker_url == "redis://127.0.0.1:6379/0"


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="KDOCTOR_AGENT_PORT"):
        Settings.from_env({"KDOCTOR_AGENT_PORT": "eighty"})


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    for setting in Settings.describe():
        assert setting.doc
        assert f"`{setting.env}`" in text, f"{setting.env} missing from README.md"


def test_queue_names() -> None:
    assert node_queue("node-1") == "kdoctor.node.node-1"
    assert worker_hostname("node-1") == "kdoctor@node-1"
    assert COORDINATOR_QUEUE == "kdoctor.coordinator"
    for bad in ("Node1", "a b", "-x", "x/y", ""):
        with pytest.raises(ValueError, match="invalid node name"):
            check_node_name(bad)
