"""The lab fixture: one 4-node lab per module, as root. In CI (``CI`` set) a missing root is a
failure, not a skip: these tests are what proves faults are found."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from kdoctor.api import Client
from kdoctor.lab import lab
from kdoctor.lab.config import LabConfig
from kdoctor.settings import Settings
from kdoctor.specs.results import Report
from tests.conftest import FAST_ENV


def require_root() -> None:
    """Skip without root, unless in CI where the lab tests must run."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("the lab tests need root and CI is set: run them as root")
    pytest.skip("the lab needs root (network namespaces); CI runs these as root")


class Lab:
    """A running lab and a client for it."""

    def __init__(self, state: lab.LabState) -> None:
        self.state = state
        self.config = state.config
        self.settings = Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": state.broker_url})

    def run(self, name: str, target: dict[str, Any], *, qps: int = 5, duration: int = 1,
            expect: dict[str, Any] | None = None, mesh: dict[str, int] | None = None) -> Report:
        spec: dict[str, Any] = {
            "apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": name},
            "spec": {"request": {"qps": qps, "durationInSecond": duration}, "target": target,
                     "expect": expect or {"successRate": 1}}}
        if mesh:
            spec["spec"]["mesh"] = mesh
        with Client(settings=self.settings) as client:
            return client.submit(spec).wait(60)

    def cli(self, *args: str) -> str:
        """Run ``kdoctor lab ARGS`` on this lab, as a user would; returns its output."""
        env = {**os.environ, "KDOCTOR_LAB_DIR": self.config.lab_dir}
        done = subprocess.run(
            [sys.executable, "-m", "kdoctor", "lab", "--prefix", self.config.prefix, "--net", str(self.config.net),
             *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def fault(self, node: str | None, **kwargs: Any) -> None:
        state = lab.load_state(self.config)
        assert state is not None
        lab.fault(state, node, **kwargs)


def _lab(nodes: int, net_offset: int) -> Iterator[Lab]:
    require_root()
    # Own prefix, subnet and state directory: never touches a lab someone runs by hand.
    config = LabConfig(prefix=f"kdt{os.getpid()}n{nodes}", net=(100 + os.getpid() + net_offset) % 150 + 100,
                       nodes=nodes, lab_dir=tempfile.mkdtemp(prefix="kdoctor-labtest-"))
    state = lab.up(config, Settings.from_env(FAST_ENV), timeout=120)
    try:
        yield Lab(state)
    finally:
        lab.down(config)
        os.rmdir(config.lab_dir)


@pytest.fixture(scope="module")
def lab4() -> Iterator[Lab]:
    """Four nodes, torn down at the end of the module."""
    yield from _lab(4, 0)


@pytest.fixture(scope="module")
def lab12() -> Iterator[Lab]:
    """Twelve nodes, torn down at the end of the module."""
    yield from _lab(12, 75)
