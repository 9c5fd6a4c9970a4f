"""Helpers for the tests of `nanokube.Cluster` and its pytest plugin."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path

PLUGIN = "nanokube.testing.pytest_plugin"
# Nothing in these tests may leave the machine: cluster DNS forwards to a dead local port.
SERVER_ARGS = ["--dns-upstream", "127.0.0.1:9"]


def plugin_args() -> list[str]:
    """`-p` for the plugin unless an installed nanokube already registers it through its entry point."""
    # every distribution, as pluggy loads them (entry_points() keeps only the first of each name on sys.path)
    for dist in importlib.metadata.distributions():
        if any(ep.group == "pytest11" and ep.value == PLUGIN for ep in dist.entry_points):
            return []
    return ["-p", PLUGIN]


def server_processes(data_dir_part: str) -> list[str]:
    """Command lines of running `nanokube server` processes whose data dir is under `data_dir_part` (tests on
    a shared machine look only at their own: other runs may have clusters of their own)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if " nanokube server " in cmd and data_dir_part in cmd:
            out.append(f"{entry}: {cmd}")
    return out


def listeners_of(pid: int) -> list[str]:
    """Listening sockets (`ss -ltnup` lines) of a process and its children."""
    pids = {str(pid), *subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()}
    out = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if any(f"pid={p}," in line for p in pids)]
