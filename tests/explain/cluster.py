"""A loopback-mode server on addresses of its own, so it can run beside other nanokube servers on this host."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.conftest import Server


@dataclass(frozen=True)
class AddressPlan:
    """127.S.0.0/16 Services, 127.S+1.0.0/16 pods, 127.S+2.0.0/24 LB pool, node at 127.S+2.255.1."""

    octet: int

    @property
    def service_cidr(self) -> str:
        return f"127.{self.octet}.0.0/16"

    @property
    def pod_cidr(self) -> str:
        return f"127.{self.octet + 1}.0.0/16"

    @property
    def node_ip(self) -> str:
        return f"127.{self.octet + 2}.255.1"

    @property
    def dns(self) -> str:
        return f"127.{self.octet}.0.10"

    def lb_pool(self, size: int = 0) -> str:
        base = f"127.{self.octet + 2}.0"
        return f"{base}.1-{base}.{size}" if size else f"{base}.0/24"

    def args(self, lb_pool_size: int = 0) -> list[str]:
        return ["--network", "loopback", "--service-cidr", self.service_cidr, "--pod-cidr", self.pod_cidr,
                "--lb-pool", self.lb_pool(lb_pool_size), "--node-ip", self.node_ip]


def _free(octet: int) -> bool:
    for third in (0, 1, 2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((f"127.{octet + third}.0.10", 53 if third == 0 else 0))
            except OSError:
                return False
    return True


def pick_plan() -> AddressPlan:
    """A random 127.S/16 trio nobody on this host is using (other test runs, a user's server)."""
    candidates = list(range(100, 238, 3))
    random.shuffle(candidates)
    for octet in candidates:
        if _free(octet):
            return AddressPlan(octet)
    raise RuntimeError("no free 127.x address range for a test server")


def explain(server: Server, name: str, namespace: str = "default", *extra: str) -> tuple[int, dict[str, Any]]:
    """Run the real `nanokube explain service NAME -o json`; (exit code, report)."""
    proc = subprocess.run([sys.executable, "-m", "nanokube", "explain", "service", name, "-n", namespace, "-o", "json",
                           "--kubeconfig", str(server.kubeconfig), *extra], capture_output=True, text=True, timeout=30)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


