"""`nanokube server --network netns` end to end, inside a fresh network namespace made for each test module.

The namespace (`nk-e2e-<random>`) has loopback up and nothing else: no uplink, so nothing the server does can
reach the machine's network. The server and every client (kubectl, curl, dig, python) run inside it with
`ip netns exec`; commands "inside a pod" enter the pod's network, mount and UTS namespaces with nsenter (what
`kubectl exec` does on a real node). Afterwards everything is removed, even when a test failed, and the
fixture fails if anything was left: processes, network namespaces, links, addresses, routes, nft tables, mounts.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.netns.cluster import HERE, SKIP_REASON, NetnsCluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.netns)
            if SKIP_REASON:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@contextmanager
def netns_cluster(*args: str, tmp_dir: str | None = None) -> Iterator[NetnsCluster]:
    """A netns-mode server started with `args` in a fresh namespace; on exit stopped (within 10 s, exit 0 unless a
    test stopped it already), checked for leaks, and everything removed even when a test failed."""
    tmp = Path(tempfile.mkdtemp(prefix="nk-e2e-", dir=tmp_dir))
    c = NetnsCluster(name=f"nk-e2e-{secrets.token_hex(4)}", data_dir=tmp / "data", log_path=tmp / "server.log")
    try:
        c.start(*args)
        yield c
        if c.proc is not None:  # not stopped by a test already
            code, took = c.stop()
            assert code == 0 and took < 10, f"stop: exit {code} after {took:.1f}s\n{c.logs()[-3000:]}"
        left = c.leftovers()
        assert not left, f"left behind: {left}\n{c.logs()[-3000:]}"
    finally:
        problems = c.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not problems, problems


@pytest.fixture(scope="module")
def cluster() -> Iterator[NetnsCluster]:
    """A netns-mode server in a fresh namespace, shared by one test module; checked for leaks afterwards."""
    with netns_cluster() as c:
        yield c
