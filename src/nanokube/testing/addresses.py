"""Free address ranges for a throwaway loopback cluster, so several run side by side on one machine.

A loopback cluster owns one whole 127.N.0.0/16: Services in the first quarter, pods in the second, the
LoadBalancer pool and the node's own address after them. The API listens on the node address, so it needs no
port of its own either. N is claimed with an advisory lock file held for the cluster's lifetime (released by
the kernel even when the process dies) and skipped when anything already listens inside 127.N.0.0/16.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

# 127.0.x is everybody's (127.0.0.1, 127.0.0.53); the server's defaults (96, 240, 244), the project's tests
# and benches (100-251) sit above this band.
OCTETS = range(10, 96)
API_PORT = 6443


@dataclass(frozen=True)
class LoopbackPlan:
    """The addresses of one loopback cluster inside 127.`octet`.0.0/16."""

    octet: int

    @property
    def service_cidr(self) -> str:
        return f"127.{self.octet}.0.0/18"

    @property
    def pod_cidr(self) -> str:
        return f"127.{self.octet}.64.0/18"

    @property
    def lb_pool(self) -> str:
        return f"127.{self.octet}.128.0/24"

    @property
    def node_ip(self) -> str:
        return f"127.{self.octet}.192.1"

    def server_args(self) -> list[str]:
        return ["--network", "loopback", "--service-cidr", self.service_cidr, "--pod-cidr", self.pod_cidr,
                "--lb-pool", self.lb_pool, "--node-ip", self.node_ip,
                "--api-listen", f"{self.node_ip}:{API_PORT}"]


def _lock_dir() -> Path:
    # One place for every process of the user, whatever its $TMPDIR: claims must meet to exclude each other
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    path = base / f"nanokube-clusters-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def listening_octets() -> set[int]:
    """Second octets of every 127.x address something listens on (TCP) or is bound to (UDP) right now."""
    out: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/udp"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if table.endswith("tcp") and fields[3] != "0A":  # TCP: listeners only (not TIME_WAIT leftovers)
                continue
            local = fields[1].split(":")[0]
            addr = bytes.fromhex(local)[::-1]  # the kernel prints the address in host (little-endian) order
            if addr[0] == 127:
                out.add(addr[1])
    return out


class OctetClaim:
    """An exclusive claim on 127.N.0.0/16 among the clusters of this user; `release()` gives it back."""

    def __init__(self, octet: int, fd: int, path: Path) -> None:
        self.plan = LoopbackPlan(octet)
        self._fd: int | None = fd
        self._path = path

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def claim_loopback_plan() -> OctetClaim:
    """Claim a free 127.N.0.0/16: not locked by another cluster and with nothing listening in it."""
    busy = listening_octets()
    candidates = [o for o in OCTETS if o not in busy]
    random.shuffle(candidates)
    directory = _lock_dir()
    for octet in candidates:
        path = directory / f"127.{octet}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if octet in listening_octets():  # someone started listening there between the scan and the lock
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            continue
        return OctetClaim(octet, fd, path)
    raise RuntimeError(f"no free 127.N.0.0/16 left for a cluster (N in {OCTETS.start}-{OCTETS.stop - 1})")
