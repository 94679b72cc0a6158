"""The lab's processes: started detached (own session), found again by pid or by what they run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(args: Sequence[str], log: Path, env: Mapping[str, str], ns: str | None = None) -> int:
    """Start ``args`` (inside namespace ``ns``) in a session of its own; returns its pid."""
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=dict(env), start_new_session=True)
    return process.pid


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def netns_pids(ns: str) -> list[int]:
    """Every process inside namespace ``ns``."""
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def pids_mentioning(directory: str) -> list[int]:
    """Processes whose command line mentions ``directory`` (the lab's) or that run inside it:
    found so after a crash lost the state file. The working directory catches redis-server,
    which rewrites its command line but ``chdir``s to its ``--dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if directory.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
                continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "cwd").startswith(directory.rstrip("/") + "/"):
                found.append(int(entry.name))
    return found


def stop(pids: Sequence[int], timeout: float = 3.0) -> None:
    """SIGTERM each process and its group, SIGKILL what is left after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, sig)
        limit = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < limit and any(alive(p) for p in pids):
            _reap(pids)
            time.sleep(0.05)
        if not any(alive(p) for p in pids):
            return


def _reap(pids: Sequence[int]) -> None:
    # Children of this process (a test that started the lab in-process) must be waited for.
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
