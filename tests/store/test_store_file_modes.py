"""The store files hold Secrets: owner-only like the token (issue 14)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nanokube.store.sqlite import SqliteStore


def loosen(directory: Path) -> None:
    for p in directory.iterdir():
        p.chmod(0o644)


def modes(path: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir() if p.name.startswith("state.db")}


async def test_database_wal_and_shm_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SqliteStore(tmp_path / "state.db")
        await store.start()
        await store.create("/registry/secrets/default/s", {"metadata": {"name": "s"}, "data": {"k": "dg=="}})
        found = modes(tmp_path / "state.db")
        await store.close()
    finally:
        os.umask(old)
    assert {"state.db", "state.db-wal", "state.db-shm"} <= set(found)
    assert found == dict.fromkeys(found, 0o600)


async def test_files_left_0644_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    await store.create("/registry/configmaps/default/c", {"metadata": {"name": "c"}})
    loosen(tmp_path)
    await store.close()
    loosen(tmp_path)
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    found = modes(tmp_path / "state.db")
    await store.close()
    assert found and found == dict.fromkeys(found, 0o600)
