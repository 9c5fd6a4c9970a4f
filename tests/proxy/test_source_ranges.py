"""loadBalancerSourceRanges without root: parsing, the plan, the rendered elements and kube-proxy's packet flows
(pkg/proxy/nftables/proxier_test.go TestLoadBalancer) walked through the rendered ruleset by the tracer."""

from __future__ import annotations

from typing import Any

from tests.proxy.objects import endpoint, endpoint_slice, service
from tests.proxy.test_ruleset import CFG, EXTERNAL, NODE_IP, POD, make, ruleset, trace

from nanokube.proxy.elements import ExclusiveGroups
from nanokube.proxy.model import ServicePortName, service_ports, source_ranges
from nanokube.proxy.nftrules import base_ruleset, firewall_elements, frontend_elements
from nanokube.proxy.plan import plan_service_port

LB1, LB2 = "10.250.0.5", "10.250.0.6"
ALLOWED = "192.168.50.9"  # inside 192.168.50.0/25
BLOCKED = "192.168.50.130"  # outside it
PORTS = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31111}]
EP_PORTS = [{"name": "http", "port": 8080}]


def lb_service(ranges: list[str], *, lb_ips: tuple[str, ...] = (LB1, LB2), rv: str = "1", **kw: Any) -> dict:
    svc = service("web", "10.96.0.10", PORTS, type="LoadBalancer", lb_ips=lb_ips, rv=rv, **kw)
    svc["spec"]["loadBalancerSourceRanges"] = ranges
    return svc


def test_ranges_read_as_kube_proxy_does() -> None:
    assert source_ranges([" 203.0.113.0/25", "10.0.0.0/8", "10.1.0.0/16", "2001:db8::/64", "bogus"]) == (
        "10.0.0.0/8", "203.0.113.0/25")  # trimmed, other family and junk skipped, overlaps merged
    assert source_ranges(["10.0.0.0/8", "0.0.0.0/0"]) == ()  # a zero prefix allows everyone
    assert source_ranges(["10.0.0.7/24"]) == ("10.0.0.0/24",)  # host bits ignored, as ParseCIDR does
    info = next(iter(service_ports(lb_service(["192.168.50.0/25"])).values()))
    assert info.lb_source_ranges == ("192.168.50.0/25",)
    node_port = service("np", "10.96.0.11", PORTS, type="NodePort")
    node_port["spec"]["loadBalancerSourceRanges"] = ["192.168.50.0/25"]
    assert next(iter(service_ports(node_port).values())).lb_source_ranges == ()


def test_health_check_port_only_for_local_load_balancers() -> None:
    lb = lb_service([], etp="Local")
    lb["spec"]["healthCheckNodePort"] = 32000
    assert next(iter(service_ports(lb).values())).health_check_node_port == 32000
    cluster = lb_service([], etp="Cluster")
    cluster["spec"]["healthCheckNodePort"] = 32000  # stale field: kube-proxy ignores it (NeedsHealthCheck)
    assert next(iter(service_ports(cluster).values())).health_check_node_port == 0
    np = service("np", "10.96.0.11", PORTS, type="NodePort", etp="Local")
    np["spec"]["healthCheckNodePort"] = 32000
    assert next(iter(service_ports(np).values())).health_check_node_port == 0


def _plan(svc: dict, node_ip: str = "") -> Any:
    (name, info), = service_ports(svc).items()
    eps = {("http", "TCP"): ()}
    return plan_service_port(name, info, eps, node_name="node-a", nodeport_ips=(NODE_IP,), node_ip=node_ip)


def test_only_lb_ingress_frontends_carry_ranges() -> None:
    svc = lb_service(["192.168.50.0/25"], external_ips=("192.168.99.11",))
    by_ip = {fe.ip: fe for fe in _plan(svc).frontends}
    assert by_ip[LB1].source_ranges == by_ip[LB2].source_ranges == ("192.168.50.0/25",)
    assert by_ip["192.168.99.11"].source_ranges == ()  # externalIPs are not LB ingress
    assert by_ip["10.96.0.10"].source_ranges == by_ip[NODE_IP].source_ranges == ()  # ClusterIP, node port
    # the node's own IP inside a range: the LB IP itself becomes an allowed source (VIP loopback)
    by_ip = {fe.ip: fe for fe in _plan(lb_service(["192.168.50.0/24"]), node_ip=NODE_IP).frontends}
    assert by_ip[LB1].source_ranges == ("10.250.0.5/32", "192.168.50.0/24")
    assert by_ip[LB2].source_ranges == ("10.250.0.6/32", "192.168.50.0/24")
    assert {fe.ip: fe for fe in _plan(lb_service(["203.0.113.0/25"]), node_ip=NODE_IP).frontends}[
        LB1].source_ranges == ("203.0.113.0/25",)


def test_rendered_elements_and_fixed_rule() -> None:
    plan = _plan(lb_service(["192.168.50.0/24"]), node_ip=NODE_IP)
    assert firewall_elements(plan) == {
        f"{LB1} . tcp . 80": {("firewall", f"{LB1} . tcp . 80"): "",
                              ("firewall-allow", f"{LB1} . tcp . 80 . {LB1}"): "",
                              ("firewall-allow", f"{LB1} . tcp . 80 . 192.168.50.0/24"): ""},
        f"{LB2} . tcp . 80": {("firewall", f"{LB2} . tcp . 80"): "",
                              ("firewall-allow", f"{LB2} . tcp . 80 . {LB2}"): "",
                              ("firewall-allow", f"{LB2} . tcp . 80 . 192.168.50.0/24"): ""}}
    assert not any(name.startswith("firewall") for fe in plan.frontends for name, _ in frontend_elements(fe))
    rules = base_ruleset(CFG)
    assert "add rule ip nanokube firewall-check ip daddr . meta l4proto . th dport @firewall " \
           "ip daddr . meta l4proto . th dport . ip saddr != @firewall-allow drop" in rules
    for hook in ("prerouting", "output"):
        assert f"add chain ip nanokube filter-{hook}-pre-dnat {{ type filter hook {hook} priority -110 ; " \
               "policy accept ; }" in rules
        assert f"add rule ip nanokube filter-{hook}-pre-dnat ct state new jump firewall-check" in rules


async def test_packet_flows_of_kube_proxys_load_balancer_test() -> None:
    p, c = make()
    p.state.node_ip = NODE_IP
    p.on_service_add(lb_service(["192.168.50.0/24", " 203.0.113.0/25"]))
    p.on_endpointslice_add(endpoint_slice("web", [endpoint("10.244.0.11")], EP_PORTS))
    await p.sync()
    rs = ruleset(c)
    rs.local_addrs |= {LB2}
    ok = {"10.244.0.11:8080"}
    for lb in (LB1, LB2):
        t = trace(rs, "203.0.113.2", lb, 80)
        assert t.verdict == "DNAT" and t.endpoints == ok and t.masquerade  # accepted external
        assert trace(rs, "203.0.113.130", lb, 80).verdict == "DROP"  # blocked external
        assert trace(rs, POD, lb, 80).verdict == "DROP"  # pods are not exempt
        node = trace(rs, NODE_IP, lb, 80, from_node=True)
        assert node.verdict == "DNAT" and node.endpoints == ok  # the node's IP is in a range
        assert trace(rs, lb, lb, 80, from_node=True).endpoints == ok  # ... so is the VIP as source
    blocked_np = trace(rs, "203.0.113.130", NODE_IP, 31111)
    assert blocked_np.verdict == "DNAT" and blocked_np.endpoints == ok  # node ports bypass the ranges
    assert trace(rs, "203.0.113.130", "10.96.0.10", 80).endpoints == ok  # so does the ClusterIP
    state = p.status.service("default", "web")
    assert state is not None
    ranges = {f["address"]: f.get("sourceRanges") for f in state.ports[0]["frontends"]}
    assert ranges == {"10.96.0.10:80": None, f"{LB1}:80": [f"{LB1}/32", "192.168.50.0/24", "203.0.113.0/25"],
                      f"{LB2}:80": [f"{LB2}/32", "192.168.50.0/24", "203.0.113.0/25"], f"{NODE_IP}:31111": None}


async def test_range_changes_only_touch_elements_and_block_even_without_endpoints() -> None:
    p, c = make()
    svc = lb_service([f"{ALLOWED}/32"], lb_ips=(LB1,))
    p.on_service_add(svc)
    await p.sync()
    rs = ruleset(c)
    assert trace(rs, BLOCKED, LB1, 80).verdict == "DROP"  # dropped before the no-endpoint reject
    assert trace(rs, ALLOWED, LB1, 80).verdict == "REJECT"
    sl = endpoint_slice("web", [endpoint("10.244.0.11")], EP_PORTS)
    p.on_endpointslice_add(sl)
    await p.sync()
    assert trace(ruleset(c), ALLOWED, LB1, 80).verdict == "DNAT"
    svc2 = lb_service(["192.168.50.128/25"], lb_ips=(LB1,), rv="2")
    p.on_service_update(svc, svc2)
    await p.sync()
    rs = ruleset(c)
    assert trace(rs, ALLOWED, LB1, 80).verdict == "DROP" and trace(rs, BLOCKED, LB1, 80).verdict == "DNAT"
    svc3 = lb_service([], lb_ips=(LB1,), rv="3")
    p.on_service_update(svc2, svc3)
    await p.sync()
    rs = ruleset(c)
    assert rs.elements["firewall"] == {} and rs.elements["firewall-allow"] == {}
    assert trace(rs, ALLOWED, LB1, 80).verdict == "DNAT"
    assert len(c.scripts) == 4
    for script in c.scripts[2:]:  # range changes: set elements only, no chain or rule
        assert "firewall" in script and all(line.startswith(("add element", "delete element")) for line in script.splitlines()), script
    await p.backend.full_sync(p.state.plans)
    assert ruleset(c).elements == rs.elements


def test_one_service_port_at_a_time_owns_a_frontends_ranges() -> None:
    groups = ExclusiveGroups()
    a, b = ServicePortName("default", "a", "", "TCP"), ServicePortName("default", "b", "", "TCP")
    key = f"{LB1} . tcp . 80"
    wide = {("firewall-allow", f"{key} . 10.0.0.0/8"): ""}
    narrow = {("firewall-allow", f"{key} . 10.1.0.0/16"): ""}  # overlaps: both in the set would be refused
    assert groups.set_owner(b, {key: narrow}) == {key: narrow}
    assert groups.set_owner(a, {key: wide}) == {key: wide}  # the smaller owner wins
    assert groups.set_owner(b, {key: {**narrow, ("firewall", key): ""}}) == {key: wide}
    assert groups.set_owner(a, {}) == {key: {**narrow, ("firewall", key): ""}}  # b takes over
    assert groups.set_owner(b, {}) == {key: {}}


async def test_two_services_claiming_one_frontend_never_write_overlapping_intervals() -> None:
    p, c = make()
    svcs = {}
    for i, (name, ranges) in enumerate((("a", ["10.0.0.0/8"]), ("b", ["10.1.0.0/16"]))):
        svcs[name] = service(name, f"10.96.0.{21 + i}", [{"name": "http", "port": 80, "nodePort": 31001 + i}],
                             type="LoadBalancer", lb_ips=(LB1,))
        svcs[name]["spec"]["loadBalancerSourceRanges"] = ranges
        p.on_service_add(svcs[name])
    await p.sync()
    assert set(ruleset(c).elements["firewall-allow"]) == {f"{LB1} . tcp . 80 . 10.0.0.0/8"}
    p.on_service_delete(svcs["a"])
    await p.sync()
    assert set(ruleset(c).elements["firewall-allow"]) == {f"{LB1} . tcp . 80 . 10.1.0.0/16"}


async def test_client_outside_every_range_is_dropped_from_anywhere() -> None:
    p, c = make()
    p.on_service_add(lb_service([f"{EXTERNAL}/32"], lb_ips=(LB1,)))
    p.on_endpointslice_add(endpoint_slice("web", [endpoint("10.244.0.11")], EP_PORTS))
    await p.sync()
    rs = ruleset(c)
    assert trace(rs, EXTERNAL, LB1, 80).verdict == "DNAT"
    assert trace(rs, NODE_IP, LB1, 80, from_node=True).verdict == "DROP"  # node IP not in a range: no exemption
    assert trace(rs, EXTERNAL, LB1, 80, proto="udp").verdict == "ACCEPT"  # other port/protocol: not a frontend
