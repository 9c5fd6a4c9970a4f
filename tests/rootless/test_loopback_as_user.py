"""Loopback mode run by a real non-root user says what it cannot do instead of crashing.

Ports below net.ipv4.ip_unprivileged_port_start (1024) cannot be bound: one warning line names the cause
and the remedies, the DNS moves to port 10053 (on the ready line), and `nanokube explain` says
`privileged-port` for the `kubernetes` Service's 443 (nothing else holds it). The server uses random 127.x
ranges and free ports: the host's loopback is shared with other tests.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.polling import eventually
from tests.rootless.conftest import User, children

from nanokube.testing.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _octets(n: int) -> list[int]:
    return random.sample(range(100, 230), n)


@dataclass
class UserServer:
    proc: subprocess.Popen[bytes]
    out: str
    err_path: Path
    status_port: int

    def stop(self) -> int:
        """SIGTERM to the server itself (runuser, its parent, would just die of it); runuser's exit status."""
        for pid in children(self.proc.pid):
            os.kill(pid, signal.SIGTERM)
        return self.proc.wait(15)


def start_server_as(user: User, *extra: str, timeout: float = 60) -> UserServer:
    """`nanokube server` as `user` with free ports and a fresh data dir; returned once it printed the
    export line."""
    api_port, status_port = free_port(), free_port()
    data = user.home / f"data-{api_port}"
    argv = [f"{user.repo}/.venv/bin/nanokube", "server", "--data-dir", str(data),
            "--api-listen", f"127.0.0.1:{api_port}", "--proxy-status-port", str(status_port), *extra]
    out_path, err_path = user.home / f"server-{api_port}.out", user.home / f"server-{api_port}.err"
    proc = user.popen(argv, stdout=open(out_path, "wb"), stderr=open(err_path, "wb"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out_path.read_text()
        if "export KUBECONFIG=" in text:
            return UserServer(proc, text, err_path, status_port)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"not ready:\n{out_path.read_text()}\n{err_path.read_text()[-4000:]}")


def loopback_args() -> list[str]:
    svc, pod, lb = random.sample(range(100, 230), 3)
    return ["--network", "loopback", "--service-cidr", f"127.{svc}.0.0/16", "--pod-cidr", f"127.{pod}.0.0/16",
            "--lb-pool", f"127.{lb}.0.0/24", "--dns-upstream", "127.0.0.1:9"]


def test_loopback_as_a_user_warns_once_and_moves_dns(throwaway_user: User):
    user = throwaway_user
    srv = start_server_as(user, *loopback_args())
    try:
        ready = re.search(r"^nanokube ready kubeconfig=(\S+) api=\S+ dns=(\S+):(\d+) network=loopback", srv.out, re.M)
        assert ready, srv.out
        kubeconfig, dns_ip, dns_port = ready.groups()
        assert dns_port == "10053"
        assert f"export KUBECONFIG={kubeconfig}" in srv.out
        def explain() -> subprocess.CompletedProcess[str] | None:  # once the proxy's first sync has met port 443
            proc = user.run(f"KUBECONFIG={kubeconfig} nanokube explain service kubernetes -o json "
                            f"--proxy-status http://127.0.0.1:{srv.status_port}", check=False)
            return proc if '"privileged-port"' in proc.stdout else None

        explained = eventually(explain, timeout=30, interval=0.1, what="explain's privileged-port verdict")
        assert explained.returncode == 1, explained.stdout + explained.stderr
        verdict = json.loads(explained.stdout)["verdict"]
        assert verdict["code"] == "privileged-port", verdict
        assert "ip_unprivileged_port_start" in verdict["fix"] and "rootless" in verdict["fix"]
        answer = subprocess.run(["dig", "+short", f"@{dns_ip}", "-p", dns_port,
                                 "kubernetes.default.svc.cluster.local"], capture_output=True, text=True, timeout=10)
        assert re.fullmatch(r"127\.\d+\.0\.1\n", answer.stdout), answer
        err = srv.err_path.read_text()
        warnings = [line for line in err.splitlines() if "WARNING" in line and "1024" in line]
        assert len(warnings) == 1, warnings  # one line about the ports, however many Services use them
        assert "cannot bind ports below 1024" in warnings[0] and "10053" in warnings[0]
        assert "Traceback" not in err
    finally:
        assert srv.stop() == 0
