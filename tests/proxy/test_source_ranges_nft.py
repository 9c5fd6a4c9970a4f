"""loadBalancerSourceRanges for real: nftables in fresh network namespaces (the lab of test_nftables.py), clients
from an allowed and from a blocked source address reaching (or not) the LB IP, the node port and the ClusterIP."""

from __future__ import annotations

import os

import pytest
from tests.proxy.objects import service
from tests.proxy.test_nftables import CLIENT_IP, NODE_IP, PODS, Lab, lab, proxy, slice_of  # noqa: F401

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and nft")]

LB_IP = "10.250.0.7"
BLOCKED_IP = "192.168.50.10"  # a second address of the client, outside the allowed range
PORTS = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31113}]


def lb(ranges: list[str], rv: str) -> dict:
    svc = service("fw", "10.96.0.70", PORTS, type="LoadBalancer", lb_ips=(LB_IP,), rv=rv)
    svc["spec"]["loadBalancerSourceRanges"] = ranges
    return svc


def ask_from(lb_lab: Lab, ns: str, source: str | None, ip: str, port: int, timeout: float = 0.5) -> str | None:
    """The echo's answer, or None when the connection attempt was silently dropped (timed out)."""
    with lb_lab.socket(ns) as s:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        try:
            s.connect((ip, port))
        except TimeoutError:
            return None
        s.sendall(b"hi\n")
        return s.makefile().readline().strip()


async def test_only_allowed_sources_reach_the_lb_ip(lab: Lab) -> None:  # noqa: F811
    lab.sh(lab.client, "ip", "addr", "add", f"{BLOCKED_IP}/24", "dev", "eth0")
    async with proxy(lab) as p:
        svc = lb([f"{CLIENT_IP}/32"], "1")
        p.on_service_add(svc)
        p.on_endpointslice_add(slice_of("fw", PODS[:1]))
        await p.sync()
        served = f"{PODS[0]}:8080"
        assert (ask_from(lab, lab.client, CLIENT_IP, LB_IP, 80) or "").startswith(served)
        assert ask_from(lab, lab.client, BLOCKED_IP, LB_IP, 80) is None  # dropped, not refused
        # not subject to the ranges: the node port and the ClusterIP
        assert (ask_from(lab, lab.client, BLOCKED_IP, NODE_IP, 31113) or "").startswith(served)
        assert (ask_from(lab, lab.client, BLOCKED_IP, "10.96.0.70", 80) or "").startswith(served)
        # the node itself: its IP is outside the range, so neither it nor the LB IP as source may pass
        assert ask_from(lab, lab.node, None, LB_IP, 80) is None
        # widen the range to the node's subnet: both client addresses and the node itself (from the VIP) pass
        svc2 = lb(["192.168.50.0/24"], "2")
        p.on_service_update(svc, svc2)
        await p.sync()
        assert "add chain" not in p.backend.last_script  # type: ignore[attr-defined]
        for ns, source in ((lab.client, CLIENT_IP), (lab.client, BLOCKED_IP), (lab.node, None)):
            assert (ask_from(lab, ns, source, LB_IP, 80, timeout=2) or "").startswith(served), (ns, source)
        # a range elsewhere blocks everyone here; dropping the ranges opens the LB IP to all again
        svc3 = lb(["203.0.113.0/25"], "3")
        p.on_service_update(svc2, svc3)
        await p.sync()
        assert ask_from(lab, lab.client, CLIENT_IP, LB_IP, 80) is None
        p.on_service_update(svc3, lb([], "4"))
        await p.sync()
        assert (ask_from(lab, lab.client, BLOCKED_IP, LB_IP, 80, timeout=2) or "").startswith(served)
        elements = lab.sh(lab.node, "nft", "list", "set", "ip", "nanokube", "firewall-allow")
        assert "192.168" not in elements and "203.0.113" not in elements
