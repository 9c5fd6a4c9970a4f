"""The kube-dns endpoint follows its node: a server running the DNS (and its node's agent) beside a control-plane
server on one etcd is frozen (SIGSTOP: its Lease stops being renewed, the process stays); once the node lifecycle
controller turns the node Ready=Unknown, the DNS endpoint becomes ready=false / serving=false in the nanokube-dns
EndpointSlice and moves to notReadyAddresses in the Endpoints, as a lost node's pods do. Thawed (SIGCONT), the
node is Ready again and so is the endpoint; the DNS answers again."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import dns.message
import dns.query
from tests.conftest import Server
from tests.etcd_cluster import EtcdCluster
from tests.polling import eventually
from tests.scale_out.conftest import control_plane_args, ranges

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
    try:
        reply = dns.query.udp(dns.message.make_query("kubernetes.default.svc.cluster.local", "A"), address, timeout=1)
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
