"""A throwaway etcd (Debian's etcd-server) for tests: one or three members on free loopback ports, data in a
temp dir (tmpfs when /dev/shm is there: etcd 3.4 fsyncs every commit), stopped by PID and removed after."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nanokube.testing.ports import free_port

ETCD = shutil.which("etcd")


def _die_with_parent() -> None:
    """etcd gets SIGTERM when the process that started it dies (a killed or crashed pytest leaks nothing)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class EtcdCluster:
    members: list[Member]
    root: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # (CA, server certificate, server key): clients must present a certificate signed by the CA
    tls: tuple[Path, Path, Path] | None = None

    @property
    def endpoints(self) -> str:
        """The `--datastore-endpoint` value: every member's client URL, comma-separated."""
        return ",".join(m.client_url for m in self.members)

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        tls: list[str] = []
        if self.tls is not None:
            ca, cert, key = self.tls
            tls = ["--cert-file", str(cert), "--key-file", str(key), "--trusted-ca-file", str(ca),
                   "--client-cert-auth"]
            for m in self.members:
                m.scheme = "https"
        for m in self.members:
            log = open(self.root / f"{m.name}.log", "ab")
            m.proc = subprocess.Popen(
                [ETCD or "etcd", "--name", m.name, "--data-dir", str(m.data_dir),
                 "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                 "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", self.token, "--quota-backend-bytes", str(1 << 30), *tls],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            log.close()
        deadline = time.monotonic() + timeout
        for m in self.members:
            while not self._healthy(m):
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {(self.root / f'{m.name}.log').read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd {m.name} not healthy within {timeout}s")
                time.sleep(0.1)
        return self

    def _healthy(self, m: Member) -> bool:
        if self.tls is not None:  # a TLS member only answers clients with a certificate: wait for the port
            try:
                with socket.create_connection(("127.0.0.1", m.client_port), timeout=2):
                    time.sleep(0.5)  # listening comes just before serving
                    return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(m.client_url + "/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except OSError:
            return False

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def new_cluster(size: int = 1, tls: tuple[Path, Path, Path] | None = None) -> EtcdCluster:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="nanokube-etcd-", dir=base))
    members = [Member(f"m{i + 1}", free_port(), free_port(), root / f"m{i + 1}") for i in range(size)]
    return EtcdCluster(members, root, tls=tls)


@contextlib.contextmanager
def running_etcd(size: int = 1, tls: tuple[Path, Path, Path] | None = None) -> Iterator[EtcdCluster]:
    cluster = new_cluster(size, tls)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
