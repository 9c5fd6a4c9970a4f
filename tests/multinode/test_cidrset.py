"""Node IPAM's range set (pure): lowest free /24, ranges recovered from existing Nodes, reservations."""

from __future__ import annotations

from nanokube.controllers.nodeipam import CidrSet, node_pod_cidr


def test_lowest_free_range_and_release() -> None:
    cidrs = CidrSet("127.244.0.0/16")
    assert cidrs.allocate("a") == "127.244.0.0/24"
    assert cidrs.allocate("b") == "127.244.1.0/24"
    assert cidrs.allocate("a") == "127.244.0.0/24"  # asked again before its Node shows it: the same range
    cidrs.release("a")
    assert cidrs.allocate("c") == "127.244.0.0/24"


def test_ranges_of_existing_nodes_are_recovered_and_never_handed_out_twice() -> None:
    cidrs = CidrSet("10.244.0.0/16")
    assert cidrs.occupy("old1", "10.244.0.0/24") and cidrs.occupy("old2", "10.244.2.0/24")
    assert not cidrs.occupy("intruder", "10.244.2.0/24")  # another node's
    assert not cidrs.occupy("outside", "10.250.0.0/24")
    assert cidrs.allocate("new") == "10.244.1.0/24"
    assert cidrs.allocate("newer") == "10.244.3.0/24"


def test_reserved_range_goes_only_to_its_node() -> None:
    cidrs = CidrSet("127.244.0.0/16", reserved={"server": "127.244.0.0/24"})
    assert cidrs.allocate("joined") == "127.244.1.0/24"
    assert cidrs.allocate("server") == "127.244.0.0/24"


def test_full_cluster_cidr() -> None:
    cidrs = CidrSet("127.244.0.0/23")
    assert [cidrs.allocate(n) for n in "abc"] == ["127.244.0.0/24", "127.244.1.0/24", None]


def test_pod_cidr_of_a_node() -> None:
    assert node_pod_cidr({"spec": {"podCIDRs": ["10.0.1.0/24"]}}) == "10.0.1.0/24"
    assert node_pod_cidr({"spec": {"podCIDR": "10.0.2.0/24"}}) == "10.0.2.0/24"
    assert node_pod_cidr({"metadata": {}}) is None
