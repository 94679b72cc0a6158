"""A seeded fuzzer of task files: hundreds of mutations of real files per run. Whatever the input,
reading it ends in a spec or one SpecError, and a spec the validator accepts always plans."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdoctor.errors import SpecError
from kdoctor.planning.planner import plan
from kdoctor.settings import Settings
from kdoctor.specs import load_text
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, Services

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("kdoctor/examples/*.yaml"), *ROOT.glob("tests/data/*.yaml")])
CASES = 400

ODD_VALUES: list[Any] = [
    None, True, -1, 0, 2**63, -(2**70), 1e308, float("inf"), float("-inf"), float("nan"), "", " ", "x" * 5000,
    "\u202e\u0000", "ünïcødé", "1e999", [], [None], {}, {"a": {"b": {"c": [1, 2, {}]}}}, [[[[[[]]]]]], "0x10",
    "http://[::1", "fe80::1%eth0", "../../etc/passwd", "${HOME}", "*", "?", "2xx", "600", "-1", ".inf",
]


def inventory() -> InventoryView:
    nodes = [NodeInfo(name=f"node-{i}", ipv4=[f"10.0.0.{i}"], ipv6=[f"fd00::{i}"], agent_port=5710,
                      labels={"kubernetes.io/os": "linux"}, last_heartbeat=1000.0) for i in range(1, 4)]
    return InventoryView(expected=nodes, live=[n.name for n in nodes],
                         services=Services(port=80, cluster_ip=["10.96.0.1"], node_port=30000,
                                           load_balancer=["10.97.0.1"], ingress=["http://10.0.0.250/x"]))


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


def put(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


def mutate(rng: random.Random, data: Any) -> str:
    """One mutated document, as text."""
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(paths(data))
        action = rng.random()
        try:
            if action < 0.5:
                data = put(data, where, copy.deepcopy(rng.choice(ODD_VALUES)))
            elif action < 0.7 and where:
                parent = data
                for step in where[:-1]:
                    parent = parent[step]
                del parent[where[-1]]
            elif action < 0.85:
                target = data
                for step in where:
                    target = target[step]
                if isinstance(target, dict):
                    key = rng.choice(["bogus", "podIP", "Kind", "", "spec", "qps", "x" * 300])
                    target[key] = copy.deepcopy(rng.choice(ODD_VALUES))
            else:
                inner = copy.deepcopy(data)
                data = put(data, where, [inner] if rng.random() < 0.5 else {"nested": inner})
        except (KeyError, IndexError, TypeError):
            continue
    text = json.dumps(data, allow_nan=True) if rng.random() < 0.3 else yaml.safe_dump(data, allow_unicode=True)
    if rng.random() < 0.15:  # and sometimes break the text itself
        position = rng.randrange(max(1, len(text)))
        text = text[:position] + rng.choice(["\x00", "{", "]", ": ", "\t", "&a", "*a", "- ", "'"]) + text[position:]
    return text


def check(text: str) -> None:
    try:
        spec = load_text(text, "fuzz.yaml")
    except SpecError as err:
        assert str(err) and len(str(err)) < 20_000
        return
    planned = plan(spec, inventory(), 1000.0, Settings(), job="fuzz", number=1)  # must not raise
    assert planned.state.round_id == "fuzz-r1"


@pytest.mark.parametrize("seed", range(4))
def test_mutated_task_files_end_in_a_spec_that_plans_or_one_spec_error(seed: int) -> None:
    rng = random.Random(seed)
    originals = [yaml.safe_load(path.read_text()) for path in SEEDS]
    assert len(originals) >= 8
    failures: list[str] = []
    for case in range(CASES // 4):
        text = mutate(rng, rng.choice(originals))
        try:
            check(text)
        except Exception as exc:  # the point: nothing but SpecError may come out
            failures.append(f"case {seed}/{case}: {type(exc).__name__}: {exc}\n{text[:500]}")
    assert not failures, "\n\n".join(failures[:3])


def test_the_seeds_themselves_plan() -> None:
    for path in SEEDS:
        check(path.read_text())


