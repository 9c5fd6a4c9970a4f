"""Which store `nanokube server` runs on: the embedded SQLite log (default) or etcd (`--datastore-endpoint`).
The etcd store's modules are imported only when asked for, so the default start path stays as it was."""

from __future__ import annotations

from pathlib import Path

from nanokube.control_plane import ControlPlane
from nanokube.store.base import Store


def open_store(data_dir: Path, plane: ControlPlane) -> Store:
    if not plane.datastore_endpoints:
        from nanokube.store.sqlite import SqliteStore

        return SqliteStore(str(data_dir / "state.db"))
    from nanokube.store.etcd import EtcdStore
    from nanokube.store.etcd_gateway import EtcdGateway, ssl_context

    context = ssl_context(plane.datastore_cafile, plane.datastore_certfile, plane.datastore_keyfile)
    return EtcdStore(EtcdGateway(plane.datastore_endpoints, ssl_context=context), root=plane.datastore_prefix)
