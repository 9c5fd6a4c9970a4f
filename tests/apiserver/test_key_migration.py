"""A data dir written with the old key layout (/registry/<group or core>/<plural>/...) comes back whole after
the move to kube-apiserver's layout."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from tests.apiserver.helpers_http import live_keys
from tests.conftest import DATASTORE, Server, _scratch

from nanokube.server import DATA_DIR_MARKER
from nanokube.store import SqliteStore
from nanokube.testing.ports import free_port


async def _write_legacy(path: Path) -> None:
    store = SqliteStore(path)
    await store.start()
    await store.create("/registry/core/configmaps/default/old", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "old", "namespace": "default", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": {"k": "v"}})
    await store.create("/registry/apps/deployments/default/web", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-2", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c",
                                                                                          "image": "busybox"}]}}},
        "status": {}})
    await store.close()


def test_legacy_keys_are_moved_on_start() -> None:
    if DATASTORE != "sqlite":
        return  # a SQLite data dir from an older version; nothing to move on etcd
    data = Path(tempfile.mkdtemp(prefix="nanokube-legacy-", dir=_scratch()))
    (data / DATA_DIR_MARKER).write_text("nanokube data dir\n")
    asyncio.run(_write_legacy(data / "state.db"))
    srv = Server(data_dir=data, api_port=free_port(), args=["--network", "loopback", "--components=", "--no-agent"])
    srv.start()
    try:
        cm = json.loads(srv.kubectl("get", "configmap", "old", "-o", "json").stdout)
        assert cm["data"] == {"k": "v"} and cm["metadata"]["uid"] == "u-1"
        dep = json.loads(srv.kubectl("get", "deployment", "web", "-o", "json").stdout)
        assert dep["metadata"]["uid"] == "u-2"
    finally:
        srv.stop()
    keys = live_keys(srv, "/registry/")
    assert "/registry/configmaps/default/old" in keys and "/registry/deployments/default/web" in keys
    assert not [k for k in keys if k.startswith(("/registry/core/", "/registry/apps/"))]
