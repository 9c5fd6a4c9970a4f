"""`--flannel-backend host-gw` with a node behind a router: no route can reach it, so it is reported once (as
flannel's host-gw refuses an off-link gateway), not retried in a loop, and the nodes keep running."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.multihost.conftest import running_lab
from tests.multihost.lab import Lab
from tests.polling import eventually

REPORT = "is not on this node's link"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab(routed=True, backend="host-gw", hosts_count=2)


def test_an_off_link_node_is_reported_once_and_gets_no_route(lab: Lab) -> None:
    h1, h2 = lab.hosts
    eventually(lambda: REPORT in h1.logs() and REPORT in h2.logs(), timeout=20)
    for n in range(3):  # Node updates make every node re-sync its routes
        lab.kubectl("label", "node", "h2", f"touch={n}", "--overwrite")
    eventually(lambda: "touch=2" in lab.kubectl("get", "node", "h2", "--show-labels").stdout)
    for host in (h1, h2):
        assert json.loads(host.run("ip", "-j", "route", "show", "proto", "79").stdout) == []
        assert "flannel.1" not in host.run("ip", "link", "show").stdout
        assert host.logs().count(REPORT) == 1, host.logs()[-2000:]
        assert host.proc is not None and host.proc.poll() is None
