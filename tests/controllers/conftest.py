"""Fixtures of the controller e2e modules: each module defines its own `server`; the test plays kubelet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import Server
from tests.controllers.kubelet import FakeKubelet


@pytest.fixture(scope="module")
def kubelet(server: Server) -> Iterator[FakeKubelet]:
    with FakeKubelet(server) as k:
        yield k
