"""The kube-dns endpoint follows its node: a server running the DNS (and its node's agent) beside a control-plane
server on one etcd is frozen (SIGSTOP: its Lease stops being renewed, the process stays); once the node lifecycle
controller turns the node Ready=Unknown, the DNS endpoint becomes ready=false / serving=false in the nanokube-dns
EndpointSlice and moves to notReadyAddresses in the Endpoints, as a lost node's pods do. Thawed (SIGCONT), the
node is Ready again and so is the endpoint; the DNS answers again. With two DNS servers, a live one takes the
endpoints over from the one whose node was lost."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import dns.message
import dns.query
from tests.conftest import Server
from tests.etcd_cluster import EtcdCluster, running_etcd
from tests.polling import eventually
from tests.scale_out.conftest import control_plane_args, ranges

from nanokube.testing.ports import free_port

NODE = "dnsnode"
GRACE = "4"  # --node-monitor-grace-period: the control plane's patience and the DNS node's Lease duration
READY = {"ready": True, "serving": True, "terminating": False}
NOT_READY = {"ready": False, "serving": False, "terminating": False}


def get(srv: Server, *args: str) -> dict:
    return json.loads(srv.kubectl("get", "-n", "kube-system", *args, "-o", "json").stdout)


def dns_endpoint(srv: Server) -> tuple[list[str], dict, dict[str, list[str]]]:
    """(addresses, conditions) of the DNS's endpoint on NODE, and the Endpoints' addresses by readiness."""
    eps = get(srv, "endpointslice", "kube-dns")
    (ep,) = [e for e in eps["endpoints"] if e.get("nodeName") == NODE]
    subsets = get(srv, "endpoints", "kube-dns")["subsets"]
    by = {key: [a["ip"] for s in subsets for a in s.get(key) or []] for key in ("addresses", "notReadyAddresses")}
    return ep["addresses"], ep.get("conditions") or {}, by


def node_ready(srv: Server) -> str:
    node = json.loads(srv.kubectl("get", "node", NODE, "-o", "json").stdout)
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


def answers(address: str) -> bool:
    return answers_at(address, 53)


def answers_at(address: str, port: int) -> bool:
    try:
        reply = dns.query.udp(dns.message.make_query("kubernetes.default.svc.cluster.local", "A"), address,
                              port=port, timeout=1)
    except Exception:
        return False
    return bool(reply.answer)


def test_dns_endpoint_turns_not_ready_with_its_node_and_back(etcd: EtcdCluster,
                                                             start: Callable[..., Server]) -> None:
    common = [*control_plane_args(etcd), *ranges(), "--node-monitor-grace-period", GRACE]
    control = start(*common, "--components=controllers", "--no-agent")
    node = start(*common, "--components=agent,proxy,dns", "--node-name", NODE)
    assert node.proc is not None
    eventually(lambda: node_ready(control) == "True", timeout=30, what="the DNS's node Ready")
    addresses, _, by = eventually(lambda: (e := dns_endpoint(control))[1] == READY and e, timeout=30,
                                  what="the DNS endpoint, ready")
    assert by == {"addresses": addresses, "notReadyAddresses": []}
    assert answers(addresses[0])

    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        eventually(lambda: node_ready(control) == "Unknown", timeout=30, what="the frozen node Ready=Unknown")
        eventually(lambda: dns_endpoint(control)[1] == NOT_READY, timeout=20, what="the DNS endpoint not ready")
        assert dns_endpoint(control)[2] == {"addresses": [], "notReadyAddresses": addresses}
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)

    eventually(lambda: node_ready(control) == "True", timeout=30, what="the thawed node Ready again")
    eventually(lambda: dns_endpoint(control)[1:] == (READY, {"addresses": addresses, "notReadyAddresses": []}),
               timeout=20, what="the DNS endpoint ready again")
    assert answers(addresses[0])



def node_ready_of(srv: Server, name: str) -> str:
    node = json.loads(srv.kubectl("get", "node", name, "-o", "json").stdout)
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


def test_a_live_dns_server_takes_over_from_one_whose_node_was_lost(start: Callable[..., Server]) -> None:
    """Two servers run the DNS (each on its own node, on 127.0.0.1 at ports of their own); the last started owns
    the kube-dns endpoints. Its node lost, its endpoint turns not ready and the other DNS server points the
    endpoints at itself; thawed, the first does not take them back (no flapping between live servers)."""
    servers: list[Server] = []
    with running_etcd() as etcd:  # a store of its own: the module's other DNS server would compete
        common = [*control_plane_args(etcd), *ranges(), "--node-monitor-grace-period", GRACE]

        def started(*args: str) -> Server:
            servers.append(start(*common, *args))
            return servers[-1]

        try:
            takeover(started)
        finally:
            for srv in servers:  # while their etcd still runs
                srv.stop()


def takeover(started: Callable[..., Server]) -> None:
    started("--components=controllers", "--no-agent")
    control = started("--components=", "--no-agent")  # an API to ask while a DNS server is frozen
    ports = {"dns-a": free_port(), "dns-b": free_port()}
    started("--components=agent,dns", "--node-name", "dns-a", "--dns-listen", f"127.0.0.1:{ports['dns-a']}")

    def owner() -> tuple[str, int, dict]:
        eps = get(control, "endpointslice", "kube-dns")
        (ep,) = eps["endpoints"]
        port = next(p["port"] for p in eps["ports"] if p["name"] == "dns")
        return ep.get("nodeName", ""), port, ep.get("conditions") or {}

    def endpoints_addresses() -> list[tuple[str, int]]:
        return [(a["nodeName"], s["ports"][0]["port"]) for s in get(control, "endpoints", "kube-dns")["subsets"]
                for a in s.get("addresses") or []]

    eventually(lambda: owner() == ("dns-a", ports["dns-a"], READY), timeout=30, what="dns-a owns kube-dns")
    second = started("--components=agent,dns", "--node-name", "dns-b", "--dns-listen", f"127.0.0.1:{ports['dns-b']}")
    assert second.proc is not None
    eventually(lambda: owner() == ("dns-b", ports["dns-b"], READY), timeout=30, what="the last started owns it")

    os.kill(second.proc.pid, signal.SIGSTOP)
    try:
        eventually(lambda: owner() == ("dns-a", ports["dns-a"], READY), timeout=40,
                   what="the live DNS server took the endpoints over")
        eventually(lambda: endpoints_addresses() == [("dns-a", ports["dns-a"])], timeout=30,
                   what="the Endpoints taken over too")
    finally:
        os.kill(second.proc.pid, signal.SIGCONT)
    eventually(lambda: node_ready_of(control, "dns-b") == "True", timeout=30, what="dns-b Ready again")
    assert owner() == ("dns-a", ports["dns-a"], READY)
    assert answers_at("127.0.0.1", ports["dns-a"])
