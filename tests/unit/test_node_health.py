"""A worker's heartbeat vouches for its consumer and its agent, not only for a running thread."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kdoctor.errors import SetupError
from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo
from kdoctor.workers import health, node
from kdoctor.workers.flower import check_credentials


class Agent:
    """An agent that answers (or not) as the test says."""

    def __init__(self) -> None:
        self.trouble = ""
        self.restarted: list[str] = []
        self.port = 5710
        self.process: Any = self

    def poll(self) -> int | None:
        return None

    def health(self) -> str:
        return self.trouble

    def restart(self, why: str) -> None:
        self.restarted.append(why)
        self.trouble = ""


@pytest.fixture(autouse=True)
def consumer_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer's steps are started (Celery connected), as in a running worker."""
    monkeypatch.setattr(health.Vitals, "consumer_up", True)


def vouch(stall: float = 10.0) -> tuple[node.NodeHeartbeat, Agent]:
    agent = Agent()
    beat = node.NodeHeartbeat(None, Settings(stall_seconds=stall), NodeInfo(name="n"), agent)  # type: ignore[arg-type]
    return beat, agent


def test_starting_until_ready_then_healthy() -> None:
    beat, _ = vouch()
    health.Vitals.consumer_tick = time.monotonic()
    assert beat.problem() == "starting"
    beat.ready.set()
    assert beat.problem() == ""


def test_a_consumer_that_stopped_running_is_not_live_then_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    beat, _ = vouch(stall=10.0)
    beat.ready.set()
    health.Vitals.consumer_tick = time.monotonic() - 15
    assert beat.problem() == "its Celery consumer has not run for 15 s"
    exits: list[int] = []
    monkeypatch.setattr(node.os, "_exit", exits.append)
    health.Vitals.consumer_tick = time.monotonic() - 25
    beat.problem()
    assert exits == [node.EXIT_STALLED]


def test_an_agent_that_does_not_answer_is_not_live_then_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    beat, agent = vouch(stall=10.0)
    beat.ready.set()
    health.Vitals.consumer_tick = time.monotonic()
    agent.trouble = "agent does not answer on port 5710: timed out"
    assert beat.problem() == agent.trouble and not agent.restarted  # not at once: it may be busy a moment
    later = time.monotonic() + 11
    monkeypatch.setattr(time, "monotonic", lambda: later)
    health.Vitals.consumer_tick = later  # the consumer keeps running meanwhile
    assert beat.problem() == "" and agent.restarted == ["agent does not answer on port 5710: timed out"]


def test_a_dead_agent_is_restarted_at_once() -> None:
    beat, agent = vouch()
    beat.ready.set()
    health.Vitals.consumer_tick = time.monotonic()
    agent.trouble = "agent exited with -9"
    agent.process = type("Dead", (), {"poll": lambda self: -9})()
    assert beat.problem() == "" and agent.restarted == ["agent exited with -9"]


def test_a_node_that_says_it_cannot_work_is_not_live() -> None:
    info = NodeInfo(name="n", last_heartbeat=100.0, unhealthy="its Celery consumer has not run for 40 s")
    assert info.state(101.0, 15.0) == "unhealthy"
    assert info.model_copy(update={"unhealthy": None}).state(101.0, 15.0) == "live"


@pytest.mark.parametrize("auth", ["", ",", "sre", "sre:", ":pw", " : ", "sre: ", " :pw", "a:b, :c", "\t:\t"])
def test_flower_refuses_empty_or_blank_credentials(auth: str) -> None:
    with pytest.raises(SetupError, match="not empty or blank"):
        check_credentials(auth)


def test_flower_takes_real_credentials() -> None:
    assert check_credentials("sre:s3cret,ops:pw2") == ["sre:s3cret", "ops:pw2"]


def test_a_redis_outage_is_not_the_consumers_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    # Celery's consumer cannot run without its broker and backs off between reconnects: the time
    # Redis is away, and the reconnect after it, must not make the worker exit (issue 13's fault).
    now = [1000.0]
    monkeypatch.setattr(health.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(health.Vitals, "broker_lost", 0.0)
    monkeypatch.setattr(health.Vitals, "broker_back", 0.0)
    beat, _ = vouch(stall=15)
    beat.ready.set()
    health.Vitals.consumer_tick = now[0]
    now[0] += 1
    health.Vitals.broker_unreachable()           # Redis goes away; the consumer stops ticking
    health.Vitals.consumer_up = False            # and Celery stops its steps to reconnect
    now[0] += 120                                # two minutes without Redis
    assert health.Vitals.consumer_silence() == 1.0 and beat.problem() == health.RECONNECTING
    health.Vitals.broker_reachable()             # back; the consumer is still in its backoff
    now[0] += 1
    assert beat.problem() == health.RECONNECTING  # the heartbeat is back first: not live yet
    now[0] += 19
    assert health.Vitals.consumer_silence() == 20.0
    assert beat.problem().startswith("its Celery consumer has not run for 20 s")  # not ready, alive
    health.Vitals.consumer_tick = now[0]         # reconnected
    health.Vitals.consumer_up = True
    assert beat.problem() == ""


def test_a_reconnecting_consumer_is_not_ready_even_if_the_heartbeat_saw_no_outage() -> None:
    # A Redis restart shorter than a heartbeat: the heartbeat's next write succeeds on a new
    # connection, while Celery's consumer is still in its reconnect back-off with its steps stopped.
    beat, _ = vouch()
    beat.ready.set()
    health.Vitals.consumer_tick = time.monotonic()
    health.Vitals.consumer_up = False
    assert beat.problem() == health.RECONNECTING
    verdict = health.consumer_verdict("coordinator", 10.0, started=True)
    assert (verdict.alive, verdict.ready, verdict.why) == (True, False, health.RECONNECTING)
    health.Vitals.consumer_up = True
    assert beat.problem() == "" and health.consumer_verdict("coordinator", 10.0, started=True).ready
