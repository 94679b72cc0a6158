"""Flower is only ever served behind authentication."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import urllib.error
import urllib.request

from kdoctor.local.ports import free_port
from tests.conftest import cli_env


def _get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_flower_refuses_to_run_open(broker_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "kdoctor", "flower"], env=cli_env(broker_url),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--basic-auth" in result.stderr


def test_flower_api_needs_the_password(broker_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kdoctor", "flower", "--basic-auth", "sre:s3cret",
                             "--port", str(port)], env=cli_env(broker_url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # /api/tasks answers from Flower's memory (no broadcast to workers), so it is quick.
        url = f"http://127.0.0.1:{port}/api/tasks"
        limit = time.monotonic() + 30
        status = 0
        while time.monotonic() < limit:
            try:
                status = _get(url)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert status == 401
        assert _get(url, "sre:wrong") == 401
        assert _get(url, "sre:s3cret") == 200
    finally:
        proc.kill()
        proc.wait(10)
