from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nanokube.store import MemoryStore, SqliteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "state.db")
    await opened.start()
    yield opened
    await opened.close()
