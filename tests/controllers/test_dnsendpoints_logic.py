"""The kube-dns endpoints' readiness as their node's (controllers/dnsendpoints.py), and when a DNS server takes
the endpoints over (dns/publish.py): the pure decisions, on objects shaped as the API returns them."""

from __future__ import annotations

from nanokube.controllers.dnsendpoints import endpoints_with_readiness, node_ready, slice_with_readiness
from nanokube.dns.publish import desired_objects, needs_taking_over

READY = {"ready": True, "serving": True, "terminating": False}
NOT_READY = {"ready": False, "serving": False, "terminating": False}


def node(ready: str) -> dict:
    return {"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_node_ready_is_the_ready_condition_and_none_without_a_node() -> None:
    assert node_ready(node("True")) is True
    assert node_ready(node("Unknown")) is False and node_ready(node("False")) is False
    assert node_ready(None) is None


def test_slice_endpoints_follow_their_nodes_and_unknown_nodes_are_left_alone() -> None:
    endpoints, eps = desired_objects("10.0.0.1", 53, "n1", 9153)
    eps["endpoints"].append({"addresses": ["10.0.0.2"], "nodeName": "gone", "conditions": dict(READY)})
    nodes = {"n1": False}
    body = slice_with_readiness(eps, nodes.get)
    assert body is not None and [e["conditions"] for e in body["endpoints"]] == [NOT_READY, READY]
    assert eps["endpoints"][0]["conditions"] == READY  # the informer's copy is not touched
    assert slice_with_readiness(body, nodes.get) is None  # converged
    assert slice_with_readiness(body, {"n1": True}.get)["endpoints"][0]["conditions"] == READY  # type: ignore[index]

    moved = endpoints_with_readiness(endpoints, nodes.get)
    assert moved is not None and moved["subsets"][0].get("addresses") is None
    assert moved["subsets"][0]["notReadyAddresses"] == [{"ip": "10.0.0.1", "nodeName": "n1"}]
    assert [p["name"] for p in moved["subsets"][0]["ports"]] == ["dns", "dns-tcp", "metrics"]
    assert endpoints_with_readiness(moved, nodes.get) is None
    back = endpoints_with_readiness(moved, {"n1": True}.get)
    assert back is not None and back["subsets"][0]["addresses"] == [{"ip": "10.0.0.1", "nodeName": "n1"}]
    assert "notReadyAddresses" not in back["subsets"][0]


def test_a_dns_server_takes_over_only_endpoints_without_a_ready_one_that_are_not_its_own() -> None:
    endpoints, eps = desired_objects("10.0.0.1", 53, "n1")
    for obj in (endpoints, eps):
        assert not needs_taking_over(obj, "10.0.0.2", "n2")  # another server's ready endpoint
    lost_slice = {**eps, "endpoints": [{**eps["endpoints"][0], "conditions": dict(NOT_READY)}]}
    lost_endpoints = endpoints_with_readiness(endpoints, {"n1": False}.get)
    assert lost_endpoints is not None
    for obj in (lost_slice, lost_endpoints):
        assert needs_taking_over(obj, "10.0.0.2", "n2")  # a lost node's: take over
        assert not needs_taking_over(obj, "10.0.0.1", "n1")  # its own node is NotReady: not to paper over
    assert needs_taking_over({**eps, "endpoints": []}, "10.0.0.1", "n1")  # emptied
