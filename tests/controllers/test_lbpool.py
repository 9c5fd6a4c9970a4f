"""LoadBalancer address pool bookkeeping."""

from __future__ import annotations

import pytest

from nanokube.controllers.lbpool import Pool, parse_pool, service_ports


def ports(*pairs):
    return frozenset(pairs)


def test_parse_cidr_and_range():
    assert Pool("127.240.0.0/24").size() == 254
    assert list(Pool("10.0.0.8-10.0.0.10").addresses()) == ["10.0.0.8", "10.0.0.9", "10.0.0.10"]
    assert Pool("10.0.0.7/32").size() == 1
    with pytest.raises(ValueError):
        parse_pool("10.0.0.9-10.0.0.1")


def test_allocation_exhaustion_release_and_reuse():
    pool = Pool("127.240.0.1-127.240.0.2")
    p = ports(("TCP", 3306))
    assert pool.allocate("a", p) == ("127.240.0.1", None)
    assert pool.allocate("b", p) == ("127.240.0.2", None)
    assert pool.allocate("c", p) == (None, "no available IPs")
    assert pool.allocate("a", p) == ("127.240.0.1", None)  # stable for its holder
    assert pool.release("a") == "127.240.0.1"
    assert pool.allocate("c", p) == ("127.240.0.1", None)


def test_requested_address_shared_when_ports_differ():
    pool = Pool("127.240.0.0/24")
    assert pool.allocate("web", ports(("TCP", 80)), "127.240.0.50") == ("127.240.0.50", None)
    assert pool.allocate("db", ports(("TCP", 3306)), "127.240.0.50") == ("127.240.0.50", None)
    ip, reason = pool.allocate("web2", ports(("TCP", 80)), "127.240.0.50")
    assert ip is None and "web" in reason
    ip, reason = pool.allocate("x", ports(("TCP", 80)), "192.168.1.1")
    assert ip is None and "not in the pool" in reason
    # automatic allocation never lands on a shared address
    assert pool.allocate("auto", ports(("TCP", 1))) == ("127.240.0.1", None)


def test_recovery_assign_and_conflict():
    pool = Pool("127.240.0.0/24")
    assert pool.assign("a", "127.240.0.9", ports(("TCP", 80)))
    assert not pool.assign("b", "127.240.0.9", ports(("TCP", 80)))
    assert not pool.assign("c", "10.1.1.1", ports(("TCP", 80)))
    svc = {"spec": {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}}
    assert service_ports(svc) == ports(("UDP", 53), ("TCP", 53))
