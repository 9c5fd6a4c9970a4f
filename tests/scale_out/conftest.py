"""Several `nanokube server` processes on one throwaway etcd (loopback mode, random address ranges)."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import Server, _scratch
from tests.etcd_cluster import ETCD, EtcdCluster, running_etcd
from tests.loopback.conftest import TAKEN_OCTETS

# Fast leader election for tests (the defaults are 15 s / 10 s / 2 s).
LEASE, RENEW, RETRY = 6.0, 4.0, 1.0
APISERVER_LEASE = 3.0

def ranges() -> list[str]:
    svc, pod, lb = random.sample([o for o in range(100, 230) if o not in TAKEN_OCTETS], 3)
    return ["--service-cidr", f"127.{svc}.0.0/16", "--pod-cidr", f"127.{pod}.0.0/16",
            "--lb-pool", f"127.{lb}.0.0/24"]


def control_plane_args(etcd: EtcdCluster) -> list[str]:
    return ["--network", "loopback", "--datastore-endpoint", etcd.endpoints,
            "--leader-elect-lease-duration", f"{LEASE}s", "--leader-elect-renew-deadline", f"{RENEW}s",
            "--leader-elect-retry-period", f"{RETRY}s", "--apiserver-lease-duration", f"{APISERVER_LEASE}s",
            "--dns-upstream", "127.0.0.1:9", "--backoff-base", "1"]


def new_server(*args: str) -> Server:
    data = Path(tempfile.mkdtemp(prefix="nanokube-scale-", dir=_scratch()))
    return Server(data_dir=data, api_port=0, args=list(args))  # the server picks the port and reports it


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    if ETCD is None:
        pytest.skip("etcd (Debian's etcd-server) is not installed")
    with running_etcd() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def start() -> Iterator[Callable[..., Server]]:
    """Start servers that are stopped when the module is done."""
    started: list[Server] = []

    def factory(*args: str) -> Server:
        srv = new_server(*args)
        started.append(srv)
        return srv.start(timeout=60)

    yield factory
    for srv in started:
        srv.stop()
