"""bench/scale --quick (N = 100) runs in CI: the benchmark itself must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_scale_quick_prints_its_row() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "scale" / "bench_scale.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 100 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "4200"  # 100 nodes × 42 targets: the real shape was planned and reported
