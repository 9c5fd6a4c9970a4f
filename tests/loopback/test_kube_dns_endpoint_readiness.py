"""The kube-dns endpoint's readiness is its node's: set not ready while the node is Ready, the readiness
controller turns it back; left with only another (lost) node's not-ready endpoint, the live DNS server takes the
endpoints over. (The node-lost direction, with a frozen node, is tests/scale_out/test_dns_endpoint_node_lost.py.)"""

from __future__ import annotations

import json

from tests.conftest import Server
from tests.loopback.conftest import kubectl_json
from tests.polling import eventually

READY = {"ready": True, "serving": True, "terminating": False}
NOT_READY = {"ready": False, "serving": False, "terminating": False}


def endpoints(srv: Server) -> list[tuple[str, str, dict]]:
    eps = kubectl_json(srv, "endpointslice", "-n", "kube-system", "kube-dns")
    return [(e["addresses"][0], e.get("nodeName", ""), e.get("conditions")) for e in eps["endpoints"]]


def patch_endpoints(srv: Server, value: list[dict]) -> None:
    srv.kubectl("patch", "endpointslice", "-n", "kube-system", "kube-dns", "--type=json",
                "-p", json.dumps([{"op": "replace", "path": "/endpoints", "value": value}]))


def test_own_endpoint_marked_not_ready_on_a_ready_node_turns_back(cluster: Server) -> None:
    ((address, node, conditions),) = eventually(lambda: endpoints(cluster), timeout=20)
    assert node and conditions == READY
    patch_endpoints(cluster, [{"addresses": [address], "nodeName": node, "conditions": NOT_READY}])
    eventually(lambda: endpoints(cluster) == [(address, node, READY)], timeout=20, what="ready again")


def test_a_lost_nodes_not_ready_endpoint_is_taken_over_by_the_live_dns(cluster: Server) -> None:
    ((address, node, _),) = eventually(lambda: endpoints(cluster), timeout=20)
    patch_endpoints(cluster, [{"addresses": ["127.0.0.77"], "nodeName": "a-lost-node", "conditions": NOT_READY}])
    eventually(lambda: endpoints(cluster) == [(address, node, READY)], timeout=20, what="taken over")
