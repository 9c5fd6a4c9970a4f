"""What a `nanokube.Cluster` starts: a loopback cluster proxies Services inside the server process (no proxy
worker processes to boot before it is ready), unless the caller's environment asks for workers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.testing.conftest import SERVER_ARGS

from nanokube import Cluster


def descendants(pid: int) -> list[str]:
    """Command lines of every process below pid."""
    out: list[str] = []
    todo = [pid]
    while todo:
        children = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout.split()
        for child in children:
            try:
                out.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
            todo.append(int(child))
    return out


def proxy_workers(cluster: Cluster) -> list[str]:
    assert cluster._proc is not None
    return [cmd for cmd in descendants(cluster._proc.pid) if "nanokube.proxy.worker_process" in cmd]


def listener_pids(address: str, port: int) -> set[str]:
    """PIDs of the processes listening on address:port (TCP)."""
    out = subprocess.run(["ss", "-ltnpH", f"src {address}:{port}"], capture_output=True, text=True).stdout
    return {part.split(",")[0] for part in out.split("pid=")[1:]}


def test_a_loopback_cluster_proxies_in_the_server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NANOKUBE_PROXY_WORKERS", raising=False)
    with Cluster(args=SERVER_ARGS) as c:
        assert c._proc is not None
        assert proxy_workers(c) == []
        # the `kubernetes` Service (ClusterIP .0.1, port 443) is served from the start, by the server itself
        ip = c.get("service", "kubernetes")["spec"]["clusterIP"]
        assert listener_pids(ip, 443) == {str(c._proc.pid)}
    assert "NANOKUBE_PROXY_WORKERS" not in os.environ  # set for the server only, not in the caller's environment


def test_the_callers_proxy_workers_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANOKUBE_PROXY_WORKERS", "2")
    with Cluster(args=SERVER_ARGS) as c:
        assert len(proxy_workers(c)) == 2
