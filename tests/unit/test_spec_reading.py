"""Reading a task file is bounded: size, aliases, depth, encoding, file type, duplicate keys; numbers
are finite, strings bounded, and errors echo little."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdoctor.errors import SpecError
from kdoctor.specs import load_spec, load_text
from kdoctor.specs.reading import MAX_BYTES, MAX_DEPTH

GOOD = "apiVersion: kdoctor.io/v1beta1\nkind: NetReach\nmetadata: {name: x}\n"


def refused(text: str) -> str:
    with pytest.raises(SpecError) as err:
        load_text(text, "t.yaml")
    return str(err.value)


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    bomb = GOOD + "metadata:\n  name: x\n  labels: {}\n  annotations:\n" + "\n".join("    " + line for line in lines)
    message = refused(bomb)
    assert "alias" in message and len(message) < 300


def test_small_aliases_are_fine() -> None:
    spec = load_text(GOOD + "spec:\n  request: &r {qps: 3}\n  expect: {successRate: 1}\n", "t.yaml")
    assert spec.spec.request.qps == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "needle"), [
    ("[" * 2000 + "]" * 2000, f"nested more than {MAX_DEPTH} levels"),
    (GOOD + "kind: NetReach\n", "key 'kind' appears twice"),
    ("? [a, b]\n: 1\n", "a list or a mapping cannot be a key"),
    (GOOD + "---\n" + GOOD, "expected one YAML document"),
    (GOOD + "spec: {expect: {meanAccessDelayInMs: .inf}}\n", "finite"),
    (GOOD + "spec: {expect: {successRate: .nan}}\n", "finite"),
    (GOOD + "spec: {target: {sourceNodeSelector: {names: [" + "a" * 100_000 + "]}}}\n", "at most 4096 characters"),
])
def test_hostile_documents_are_refused_with_one_short_message(text: str, needle: str) -> None:
    message = refused(text)
    assert needle in message
    assert len(message) < 600


def test_errors_echo_only_the_start_of_a_huge_value() -> None:
    message = refused("apiVersion: kdoctor.io/v1beta1\nkind: " + "K" * 1_000_000 + "\nmetadata: {name: x}\n")
    assert "characters)" in message and len(message) < 600


def test_files_that_are_not_small_regular_utf8_files_are_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {latin: "not UTF-8", big: "more than a task file can be", fifo: "not a regular file",
             Path("/dev/zero"): "not a regular file", tmp_path: "not a regular file",
             tmp_path / "nope.yaml": "cannot read it"}
    for path, needle in cases.items():
        with pytest.raises(SpecError, match=needle):
            load_spec(path)


def test_a_dict_given_to_the_api_has_the_same_bounds() -> None:
    deep: dict[str, object] = {}
    inner = deep
    for _ in range(1000):
        inner["x"] = {}
        inner = inner["x"]  # type: ignore[assignment]
    data = {**json.loads(json.dumps({"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach",
                                     "metadata": {"name": "x"}})), "spec": deep}
    with pytest.raises(SpecError, match="nested more than"):
        load_spec(data)
