"""`kdoctor demo` is the README's first command: it must pass on a fresh machine."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_exits_0_with_a_passed_report() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDOCTOR_")}
    result = subprocess.run([sys.executable, "-m", "kdoctor", "demo"], env=env, text=True,
                            capture_output=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    assert "endpoint/ipv6/node-3" in result.stdout
