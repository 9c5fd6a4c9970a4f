"""Labs of hosts (network namespaces on a bridge with no uplink): a server and two agents, removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.multihost.lab import HERE, SKIP_REASON, Lab


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.netns)
            if SKIP_REASON:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def running_lab(**kwargs: object) -> Iterator[Lab]:
    lab = Lab(**kwargs)  # type: ignore[arg-type]
    try:
        lab.start()
        yield lab
    finally:
        problems = lab.destroy()
        assert not problems, problems
