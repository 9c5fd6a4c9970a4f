from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.etcd_cluster import ETCD, EtcdCluster, running_etcd

from nanokube.store import MemoryStore, SqliteStore, Store


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdCluster]:
    if ETCD is None:
        pytest.skip("etcd (Debian's etcd-server) is not installed")
    with running_etcd() as cluster:
        yield cluster


@pytest.fixture(params=["memory", "sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "etcd":
        from nanokube.store.etcd import EtcdStore
        from nanokube.store.etcd_gateway import EtcdGateway

        cluster: EtcdCluster = request.getfixturevalue("etcd")
        # one etcd for the session; each test under its own root, like kube-apiserver's --etcd-prefix
        opened = EtcdStore(EtcdGateway(cluster.endpoints.split(",")), root=f"/t-{uuid.uuid4().hex[:8]}")
    elif request.param == "memory":
        opened = MemoryStore()
    else:
        opened = SqliteStore(tmp_path / "state.db")
    await opened.start()
    yield opened
    await opened.close()


@pytest.fixture
def log_store(store: Store) -> Store:
    """The store, for behaviour only the log stores (memory, SQLite) have: one revision per op of a txn,
    group commit, their own replay and compaction."""
    if type(store).__name__ == "EtcdStore":
        pytest.skip("log-store behaviour")
    return store
