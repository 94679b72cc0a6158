"""The public API is curated, and importing it loads no probe engine (kinds are imported when
used). Import direction itself is checked by import-linter's contracts (pyproject.toml), which
./scripts/test runs."""

from __future__ import annotations

import subprocess
import sys

import kdoctor.api
from kdoctor.probes import kinds


def test_public_api_is_exactly_the_curated_list() -> None:
    public = {n for n in dir(kdoctor.api) if not n.startswith("_")} - {"client", "boundary"}
    assert set(kdoctor.api.__all__) == public


def test_importing_the_api_loads_no_engine() -> None:
    engines = ("h2", "dns", "httptools", "uvloop", "kdoctor.probes.http1", "kdoctor.probes.netreach")
    code = ("import sys, kdoctor.api; "
            f"print(','.join(m for m in {engines!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_a_kind_is_imported_when_first_used() -> None:
    code = ("import sys; from kdoctor.probes import kinds; kinds.check('Netdns'); a = 'dns' in sys.modules; "
            "kinds.get('Netdns'); print(a, 'dns' in sys.modules, 'h2' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "False"]
    assert kinds.get("DiskIO").name == "DiskIO"
    assert sorted(kinds.names()) == ["AppHttpHealthy", "DiskIO", "NetReach", "Netdns"]
