"""Nothing outlives a kill (issue 14): after kill -9 of the server its pods' processes, children and
daemonised descendants included, die too (the agent's reaper), and a restarted server starts them again.
The netns-mode twin is tests/netns/test_kill9_orphans.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from tests.agent_e2e.conftest import loopback_args, pod_processes
from tests.conftest import Server
from tests.polling import eventually

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "family"}, "spec": {
    "terminationGracePeriodSeconds": 1,
    "containers": [{"name": "app", "image": "busybox", "command": [
        "sh", "-c", "sleep 3601 & setsid sleep 3602 & exec sleep 3603"]}]}}


def reapers(data_dir: Path) -> list[int]:
    marker = f"nanokube.agent.reaper\0{data_dir}/pods".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("how", ["kill", "killpg"])
def test_pods_die_with_a_killed_server_and_come_back(make_server, how: str) -> None:
    srv: Server = make_server(*loopback_args())
    srv.apply(POD)
    eventually(lambda: len(pod_processes(srv.data_dir)) >= 3, timeout=60, what="the pod's three processes")
    assert len(reapers(srv.data_dir)) == 1
    assert srv.proc is not None
    if how == "kill":
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(5)
        srv.proc = None
    else:
        srv.kill9()
    started = time.monotonic()
    eventually(lambda: not pod_processes(srv.data_dir), timeout=20, what="no pod process left")
    eventually(lambda: not reapers(srv.data_dir), timeout=20, what="the reaper to finish")
    cleaned_in = time.monotonic() - started
    # The restarted server starts the pod again; a clean stop leaves nothing either.
    srv.start()
    eventually(lambda: len(pod_processes(srv.data_dir)) >= 3, timeout=60, what="the pod again")
    assert len(reapers(srv.data_dir)) == 1
    assert srv.stop() == 0
    assert pod_processes(srv.data_dir) == [] and reapers(srv.data_dir) == []
    assert cleaned_in < 20
