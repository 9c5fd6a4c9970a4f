"""The rendered nftables ruleset, walked by the packet tracer (no root): kube-proxy's packet-flow cases."""

from __future__ import annotations

from typing import Any

import pytest
from tests.proxy.objects import endpoint, endpoint_slice, service
from tests.proxy.tracer import Packet, Ruleset, Trace

from nanokube.proxy.commands import Commands
from nanokube.proxy.nftables import NftablesBackend
from nanokube.proxy.nftrules import NetConfig
from nanokube.proxy.proxier import Proxier
from nanokube.proxy.state import ProxyState

CFG = NetConfig(pod_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12", lb_pool="10.250.0.0/24")
NODE_IP = "192.168.50.2"
EXTERNAL = "192.168.50.9"
POD = "10.244.0.99"


class RecordingCommands(Commands):
    """Records the nft transactions instead of running them (the real nft is exercised in test_nftables)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []

    async def nft(self, script: str, *, in_process: bool = False) -> None:
        self.scripts.append(script)

    async def run(self, argv: Any, *, input: str | None = None, check: bool = True) -> str:
        return ""


def make() -> tuple[Proxier, RecordingCommands]:
    commands = RecordingCommands()
    backend = NftablesBackend(cfg=CFG, hostnet=None, commands=commands)
    proxier = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=(NODE_IP,)), backend=backend)
    proxier.on_services_synced()
    proxier.on_endpointslices_synced()
    return proxier, commands


def ruleset(commands: RecordingCommands) -> Ruleset:
    rs = Ruleset("", local_addrs={NODE_IP, "10.250.0.5"})
    for script in commands.scripts:
        rs.apply(script)
    return rs


def trace(rs: Ruleset, src: str, dst: str, dport: int, proto: str = "tcp", from_node: bool = False) -> Trace:
    return rs.trace(Packet(src, dst, proto, dport, from_node))


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": 8080}]
WEB_EP_PORTS = [{"name": "http", "port": 8080}]


async def test_cluster_ip_spreads_and_maps_target_port() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS))
    p.on_endpointslice_add(endpoint_slice("web", [endpoint(f"10.244.0.{i}") for i in (11, 12, 13)], WEB_EP_PORTS))
    await p.sync()
    rs = ruleset(c)
    t = trace(rs, POD, "10.96.0.10", 80)
    assert t.verdict == "DNAT" and t.endpoints == {"10.244.0.11:8080", "10.244.0.12:8080", "10.244.0.13:8080"}
    assert not t.masquerade
    assert trace(rs, "10.244.0.11", "10.96.0.10", 80).masquerade  # hairpin
    assert trace(rs, EXTERNAL, "10.96.0.10", 80).masquerade  # not from the pod CIDR
    host = trace(rs, NODE_IP, "10.96.0.10", 80, from_node=True)
    assert host.verdict == "DNAT" and host.masquerade
    assert trace(rs, POD, "10.96.0.10", 80, proto="udp").verdict == "REJECT"  # protocol not exposed
    assert trace(rs, POD, "10.96.0.10", 81).verdict == "REJECT"  # port not exposed
    assert trace(rs, POD, "10.96.0.77", 80).verdict == "DROP"  # unallocated service-CIDR address
    assert trace(rs, POD, "10.250.0.77", 80).verdict == "DROP"  # unallocated LB-pool address
    assert trace(rs, POD, "8.8.8.8", 53, proto="udp").verdict == "ACCEPT"


async def test_no_endpoints_rejects_then_scales_up_and_down_incrementally() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS))
    await p.sync()
    assert trace(ruleset(c), POD, "10.96.0.10", 80).verdict == "REJECT"
    sl = endpoint_slice("web", [endpoint("10.244.0.11")], WEB_EP_PORTS)
    p.on_endpointslice_add(sl)
    await p.sync()
    assert trace(ruleset(c), POD, "10.96.0.10", 80).endpoints == {"10.244.0.11:8080"}
    sl2 = endpoint_slice("web", [endpoint(f"10.244.0.{i}") for i in range(11, 16)], WEB_EP_PORTS, rv="2")
    p.on_endpointslice_update(sl, sl2)
    await p.sync()
    assert len(c.scripts) == 3 and "add chain" in c.scripts[2]  # pick-5 appears; no other chain is touched
    assert len(trace(ruleset(c), POD, "10.96.0.10", 80).endpoints) == 5
    not_ready = endpoint_slice("web", [endpoint("10.244.0.11"), endpoint("10.244.0.12", ready=False)],
                               WEB_EP_PORTS, rv="3")
    p.on_endpointslice_update(sl2, not_ready)
    await p.sync()
    assert trace(ruleset(c), POD, "10.96.0.10", 80).endpoints == {"10.244.0.11:8080"}
    p.on_endpointslice_delete(not_ready)
    await p.sync()
    rs = ruleset(c)
    assert trace(rs, POD, "10.96.0.10", 80).verdict == "REJECT"
    for script in c.scripts[1:]:  # incremental syncs only ever add new pick-N chains, never touch old ones
        new_chains = {line.split()[4] for line in script.splitlines() if line.startswith("add chain")}
        assert all(line.split()[4] in new_chains for line in script.splitlines() if line.startswith("add rule"))
        assert all(name.startswith("pick-") for name in new_chains)
    # the incremental result equals a fresh full render of the same state
    full = make()[1]
    await p.backend.full_sync(p.state.plans)
    fresh = Ruleset(c.scripts[-1], local_addrs=set())
    del full
    assert {k: v for k, v in rs.elements.items()} == fresh.elements


async def test_terminating_endpoints_used_only_when_none_ready() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS))
    p.on_endpointslice_add(endpoint_slice("web", [
        endpoint("10.244.0.11", ready=False, serving=True, terminating=True),
        endpoint("10.244.0.12", ready=False, serving=False, terminating=True)], WEB_EP_PORTS))
    await p.sync()
    assert trace(ruleset(c), POD, "10.96.0.10", 80).endpoints == {"10.244.0.11:8080"}


async def test_nodeport_and_lb_with_cluster_policy_masquerade() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", [{"name": "http", "port": 80, "targetPort": 8080,
                                                    "nodePort": 31111}], type="LoadBalancer",
                             lb_ips=("10.250.0.5",)))
    p.on_endpointslice_add(endpoint_slice("web", [endpoint("10.244.0.11", node="node-b")], WEB_EP_PORTS))
    await p.sync()
    rs = ruleset(c)
    for dst, port in ((NODE_IP, 31111), ("10.250.0.5", 80)):
        t = trace(rs, EXTERNAL, dst, port)
        assert t.verdict == "DNAT" and t.endpoints == {"10.244.0.11:8080"} and t.masquerade
        assert trace(rs, POD, dst, port).masquerade
    assert trace(rs, EXTERNAL, NODE_IP, 31112).verdict == "ACCEPT"  # not a node port: the node's own business
    assert trace(rs, EXTERNAL, "10.250.0.5", 81).verdict == "ACCEPT"  # LB IP is local: the stack answers


async def test_external_traffic_policy_local() -> None:
    p, c = make()
    svc = service("web", "10.96.0.10", [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31111}],
                  type="LoadBalancer", lb_ips=("10.250.0.5",), etp="Local")
    p.on_service_add(svc)
    sl = endpoint_slice("web", [endpoint("10.244.0.11", node="node-a"), endpoint("10.244.1.12", node="node-b")],
                        WEB_EP_PORTS)
    p.on_endpointslice_add(sl)
    await p.sync()
    rs = ruleset(c)
    ext = trace(rs, EXTERNAL, "10.250.0.5", 80)
    assert ext.endpoints == {"10.244.0.11:8080"} and not ext.masquerade  # client IP preserved, local only
    assert trace(rs, EXTERNAL, NODE_IP, 31111).endpoints == {"10.244.0.11:8080"}
    pod = trace(rs, POD, "10.250.0.5", 80)
    assert pod.endpoints == {"10.244.0.11:8080", "10.244.1.12:8080"} and not pod.masquerade
    node = trace(rs, NODE_IP, "10.250.0.5", 80, from_node=True)
    assert node.endpoints == {"10.244.0.11:8080", "10.244.1.12:8080"} and node.masquerade
    # no local endpoint: external clients are dropped, pods still short-circuit to the cluster endpoints
    sl2 = endpoint_slice("web", [endpoint("10.244.1.12", node="node-b")], WEB_EP_PORTS, rv="2")
    p.on_endpointslice_update(sl, sl2)
    await p.sync()
    rs = ruleset(c)
    assert trace(rs, EXTERNAL, "10.250.0.5", 80).verdict == "DROP"
    assert trace(rs, EXTERNAL, NODE_IP, 31111).verdict == "DROP"
    assert trace(rs, POD, "10.250.0.5", 80).endpoints == {"10.244.1.12:8080"}
    assert trace(rs, POD, "10.96.0.10", 80).endpoints == {"10.244.1.12:8080"}  # ClusterIP unaffected


async def test_internal_traffic_policy_local_drops_without_local_endpoints() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS, itp="Local"))
    p.on_endpointslice_add(endpoint_slice("web", [endpoint("10.244.1.12", node="node-b")], WEB_EP_PORTS))
    await p.sync()
    assert trace(ruleset(c), POD, "10.96.0.10", 80).verdict == "DROP"


async def test_same_port_number_dispatched_by_protocol_and_affinity_first() -> None:
    p, c = make()
    p.on_service_add(service("dns", "10.96.0.53", [{"name": "dns", "port": 53, "protocol": "UDP"},
                                                   {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                                                    "targetPort": 5353}], affinity_timeout=60))
    p.on_endpointslice_add(endpoint_slice("dns", [endpoint("10.244.0.11"), endpoint("10.244.0.12")],
                                          [{"name": "dns", "port": 53, "protocol": "UDP"},
                                           {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}]))
    await p.sync()
    rs = ruleset(c)
    assert trace(rs, POD, "10.96.0.53", 53, "udp").endpoints == {"10.244.0.11:53", "10.244.0.12:53"}
    assert trace(rs, POD, "10.96.0.53", 53, "tcp").endpoints == {"10.244.0.11:5353", "10.244.0.12:5353"}
    assert rs.elements["affinity-services"]["10.96.0.53 . udp . 53"] == "goto affinity-60"
    assert "timeout 60s" in " ".join(rs.chains["affinity-60"])
    rs.affinity[f"{POD} . 10.96.0.53 . udp . 53"] = "10.244.0.12 . 53"  # what the kernel records
    assert trace(rs, POD, "10.96.0.53", 53, "udp").endpoints == {"10.244.0.12:53"}


async def test_nothing_programmed_until_both_informers_synced() -> None:
    commands = RecordingCommands()
    backend = NftablesBackend(cfg=CFG, hostnet=None, commands=commands)
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=()), backend=backend)
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS))
    p.on_services_synced()
    await p.sync()
    assert commands.scripts == [] and not p.synced_once.is_set()
    p.on_endpointslices_synced()
    await p.sync()
    assert len(commands.scripts) == 1 and commands.scripts[0].startswith("add table ip nanokube\ndelete table")
    assert p.status.service("default", "web") is not None


async def test_an_intact_check_that_cannot_run_is_a_failed_sync() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS))
    await p.sync()
    written = len(c.scripts)

    async def cannot_run(script: str, *, in_process: bool = False) -> None:
        raise PermissionError("nft: Operation not permitted")

    c.nft = cannot_run  # type: ignore[method-assign]
    with pytest.raises(PermissionError):
        await p.sync()  # a periodic sync with no changes checks the rules are still there
    assert p.need_full and p.status.last_error.startswith("PermissionError")
    del c.nft
    await p.sync()
    assert len(c.scripts) == written + 1  # the full rebuild (no check before it)
    assert c.scripts[-1].startswith("add table ip nanokube\ndelete table")


async def test_failed_sync_forces_a_full_sync() -> None:
    p, c = make()
    p.on_service_add(service("web", "10.96.0.10", WEB_PORTS))
    await p.sync()

    async def broken(script: str, *, in_process: bool = False) -> None:
        raise RuntimeError("nft failed")

    c.nft = broken  # type: ignore[method-assign]
    p.on_service_add(service("api", "10.96.0.11", WEB_PORTS))
    try:
        await p.sync()
    except RuntimeError:
        pass
    assert p.need_full and p.status.last_error
    del c.nft
    await p.sync()
    assert c.scripts[-1].startswith("add table ip nanokube\ndelete table")
    assert "10.96.0.11" in c.scripts[-1]
