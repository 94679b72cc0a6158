"""Hostile task files through the real command line: exit 2, one clear line, nothing enqueued."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import redis
import yaml

from tests.conftest import cli_env
from tests.unit.test_spec_fuzz import SEEDS, mutate


def test_hostile_files_exit_2_without_a_traceback_and_enqueue_nothing(broker_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    originals = [yaml.safe_load(path.read_text()) for path in SEEDS]
    files: list[Path] = []
    for index in range(12):
        path = tmp_path / f"case-{index}.yaml"
        text = mutate(rng, rng.choice(originals))
        # Half of them broken for sure: an unknown field next to whatever the mutation did.
        path.write_text(text + ("\nbogus: 1\n" if index % 2 and not text.lstrip().startswith("{") else ""))
        files.append(path)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [" + ", ".join(["x"] * 9) + "]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"kind: caf\xe9\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    files += [bomb, latin, fifo, Path("/dev/zero")]
    env = cli_env(broker_url)
    running = [(path, command, subprocess.Popen([sys.executable, "-m", "kdoctor", command, str(path)], env=env,
                                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
               for path in files for command in ("validate", "run")]
    for path, command, process in running:
        out, err = process.communicate(timeout=120)
        if command == "validate" and process.returncode == 0:
            continue  # a mutation that is still a valid spec; `run` then finds no coordinator: exit 2
        assert process.returncode == 2, f"{command} {path.name}: exit {process.returncode}\n{out}{err}"
        assert "Traceback" not in err and err.startswith("error: "), f"{command} {path.name}:\n{err}"
        assert len(err) < 20_000
    assert redis.Redis.from_url(broker_url).llen("kdoctor.coordinator") == 0
