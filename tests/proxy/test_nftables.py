"""The nftables backend for real, inside fresh network namespaces made by this module (root only).

Topology: client (192.168.50.9) --veth-- node (192.168.50.2; bridge nk0 10.244.0.1/24) --nk0-- pods
p1..p3 (10.244.0.11-13) each running echo_server.py, which answers "<server> <client>" per line/datagram.
The node namespace stands in for the node: the proxy programs it through `ip netns exec`-style setns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.proxy.objects import endpoint, endpoint_slice, service

from nanokube.proxy import libnft
from nanokube.proxy.commands import CommandError, Commands
from nanokube.proxy.nftables import NftablesBackend
from nanokube.proxy.proxier import Proxier
from nanokube.proxy.run import ProxySettings, make_backend, make_proxier

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and nft")]

ECHO = Path(__file__).with_name("echo_server.py")
NODE_IP, CLIENT_IP = "192.168.50.2", "192.168.50.9"
PODS = ["10.244.0.11", "10.244.0.12", "10.244.0.13"]
CLONE_NEWNET = 0x40000000


@dataclass
class Lab:
    node: str
    client: str
    pods: list[str]

    def socket(self, ns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket living in network namespace `ns` (made in a short-lived thread that entered it)."""
        box: list[socket.socket] = []

        def make() -> None:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            box.append(socket.socket(socket.AF_INET, kind))

        t = threading.Thread(target=make)
        t.start()
        t.join()
        s = box[0]
        s.settimeout(3)
        return s

    def ask(self, ns: str, ip: str, port: int) -> str:
        with self.socket(ns) as s:
            s.connect((ip, port))
            s.sendall(b"hi\n")
            return s.makefile().readline().strip()

    def sh(self, ns: str, *argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True,
                              text=True).stdout


def _ip(*cmds: str) -> None:
    for cmd in cmds:
        subprocess.run(["ip", *cmd.split()], check=True, capture_output=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    tag = secrets.token_hex(3)
    node, client = f"nk-proxytest-{tag}-n", f"nk-proxytest-{tag}-c"
    pods = [f"nk-proxytest-{tag}-p{i}" for i in range(1, 4)]
    names = [node, client, *pods]
    procs: list[subprocess.Popen[str]] = []
    try:
        _ip(*(f"netns add {n}" for n in names))
        cmds = [f"-n {n} link set lo up" for n in names]
        cmds += [f"-n {node} link add nk0 type bridge", f"-n {node} addr add 10.244.0.1/24 dev nk0",
                 f"-n {node} link set nk0 up",
                 f"-n {node} link add vc type veth peer name eth0 netns {client}",
                 f"-n {node} addr add {NODE_IP}/24 dev vc", f"-n {node} link set vc up",
                 f"-n {client} addr add {CLIENT_IP}/24 dev eth0", f"-n {client} link set eth0 up",
                 f"-n {client} route add default via {NODE_IP}"]
        for i, (pod, ip) in enumerate(zip(pods, PODS, strict=True)):
            cmds += [f"-n {node} link add vp{i} type veth peer name eth0 netns {pod}",
                     f"-n {node} link set vp{i} master nk0", f"-n {node} link set vp{i} up",
                     # with br_netfilter loaded a hairpin DNAT is bridged back out of the port it came in
                     # on, which the bridge allows only in hairpin mode (kubelet sets it for the same reason)
                     f"-n {node} link set vp{i} type bridge_slave hairpin on",
                     f"-n {pod} addr add {ip}/24 dev eth0", f"-n {pod} link set eth0 up",
                     f"-n {pod} route add default via 10.244.0.1"]
        _ip(*cmds)
        subprocess.run(["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
        for pod, ip in zip(pods, PODS, strict=True):
            p = subprocess.Popen(["ip", "netns", "exec", pod, sys.executable, "-I", "-S", str(ECHO), ip, "8080"],
                                 stdout=subprocess.PIPE, text=True)
            procs.append(p)
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield Lab(node, client, pods)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for n in names:
            subprocess.run(["ip", "netns", "delete", n], check=False, capture_output=True)


def settings(lab: Lab) -> ProxySettings:
    return ProxySettings(mode="nftables", node_name="node-a", node_ips=[NODE_IP], service_cidr="10.96.0.0/12",
                         pod_cidr="10.244.0.0/16", lb_pool="10.250.0.0/24", netns=lab.node)


@contextlib.asynccontextmanager
async def proxy(lab: Lab):  # type: ignore[no-untyped-def]
    p = make_proxier(settings(lab), make_backend(settings(lab)))
    p.on_services_synced()
    p.on_endpointslices_synced()
    try:
        yield p
    finally:
        await p.backend.stop()


WEB = [{"name": "http", "port": 80, "targetPort": 8080}]
EPP = [{"name": "http", "port": 8080}]
UDP_PORTS = [{"name": "u", "port": 53, "targetPort": 8080, "protocol": "UDP"}]
UDP_EPP = [{"name": "u", "port": 8080, "protocol": "UDP"}]


def slice_of(svc: str, ips: list[str], ports: list[dict] = EPP, rv: str = "1", node: str = "node-a") -> dict:
    return endpoint_slice(svc, [endpoint(ip, node=node) for ip in ips], ports, rv=rv)


async def test_cluster_ip_spread_host_access_and_hairpin(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("web", "10.96.0.10", WEB))
        p.on_endpointslice_add(slice_of("web", PODS))
        await p.sync()
        seen: dict[str, int] = {}
        for _ in range(60):
            server, client = lab.ask(lab.client, "10.96.0.10", 80).split()
            seen[server] = seen.get(server, 0) + 1
            assert client.startswith("10.244.0.1:")  # from outside the pod CIDR: masqueraded
        assert set(seen) == {f"{ip}:8080" for ip in PODS} and max(seen.values()) <= 40
        assert lab.ask(lab.node, "10.96.0.10", 80).split()[0] in seen  # a host process reaches the ClusterIP
        p.on_service_add(service("self", "10.96.0.11", WEB))
        p.on_endpointslice_add(slice_of("self", PODS[:1]))
        await p.sync()
        server, client = lab.ask(lab.pods[0], "10.96.0.11", 80).split()  # the pod reaches itself
        assert server == f"{PODS[0]}:8080" and client.startswith("10.244.0.1:")
        for _ in range(10):
            server, client = lab.ask(lab.pods[1], "10.96.0.10", 80).split()
            if server != f"{PODS[1]}:8080":
                assert client.startswith(PODS[1] + ":")  # pod to another pod: source kept
            else:
                assert client.startswith("10.244.0.1:")  # landed on itself: hairpin masquerade
        routes = lab.sh(lab.node, "ip", "route", "show", "proto", "78")
        assert "10.96.0.0/12 dev nk0" in routes and "10.250.0.0/24 dev nk0" in routes


async def test_no_endpoints_refused_at_once_and_unallocated_dropped(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("empty", "10.96.0.20", WEB))
        await p.sync()
        with lab.socket(lab.client) as s:
            t0 = time.monotonic()
            with pytest.raises(ConnectionRefusedError):
                s.connect(("10.96.0.20", 80))
            assert time.monotonic() - t0 < 0.5
        with lab.socket(lab.node) as s:
            with pytest.raises(ConnectionRefusedError):
                s.connect(("10.96.0.20", 80))
        with lab.socket(lab.client) as s:
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):  # dropped, not routed anywhere
                s.connect(("10.96.0.99", 80))


async def test_node_port_lb_address_and_local_policy_keeps_client_ip(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("lb", "10.96.0.30", [{"name": "http", "port": 80, "targetPort": 8080,
                                                       "nodePort": 31111}], type="LoadBalancer",
                                 lb_ips=("10.250.0.5",)))
        p.on_endpointslice_add(slice_of("lb", PODS[:1]))
        p.on_service_add(service("loc", "10.96.0.31", [{"name": "http", "port": 80, "targetPort": 8080,
                                                        "nodePort": 31112}], type="NodePort", etp="Local"))
        p.on_endpointslice_add(slice_of("loc", PODS[1:2]))
        await p.sync()
        server, client = lab.ask(lab.client, NODE_IP, 31111).split()
        assert server == f"{PODS[0]}:8080" and client.startswith("10.244.0.1:")  # Cluster policy: masqueraded
        server, client = lab.ask(lab.client, "10.250.0.5", 80).split()
        assert server == f"{PODS[0]}:8080"
        assert lab.ask(lab.node, "10.250.0.5", 80).split()[0] == server  # LB address is local on the node
        assert "10.250.0.5/32" in lab.sh(lab.node, "ip", "-4", "addr", "show", "dev", "nk0")
        server, client = lab.ask(lab.client, NODE_IP, 31112).split()
        assert server == f"{PODS[1]}:8080" and client.startswith(CLIENT_IP + ":")  # client address kept
        await p.backend.stop()
        assert "10.250.0.5" not in lab.sh(lab.node, "ip", "-4", "addr", "show", "dev", "nk0")
        assert lab.sh(lab.node, "ip", "route", "show", "proto", "78") == ""
        assert "nanokube" not in lab.sh(lab.node, "nft", "list", "tables")


async def test_udp_follows_endpoint_change_with_conntrack_cleanup(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("dns", "10.96.0.53", UDP_PORTS))
        first = slice_of("dns", PODS[:1], UDP_EPP)
        p.on_endpointslice_add(first)
        await p.sync()
        with lab.socket(lab.client, socket.SOCK_DGRAM) as s:
            s.connect(("10.96.0.53", 53))
            for _ in range(3):
                s.send(b"q")
                assert s.recv(100).decode().split()[0] == f"{PODS[0]}:8080"
            p.on_endpointslice_update(first, slice_of("dns", PODS[2:3], UDP_EPP, rv="2"))
            await p.sync()
            s.send(b"q")  # same client port: without cleanup conntrack would still send it to PODS[0]
            assert s.recv(100).decode().split()[0] == f"{PODS[2]}:8080"


async def test_full_sync_after_a_restart_drops_udp_flows_to_endpoints_removed_meanwhile(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("dns2", "10.96.0.54", UDP_PORTS))
        p.on_endpointslice_add(slice_of("dns2", PODS[:1], UDP_EPP))
        await p.sync()
        with lab.socket(lab.client, socket.SOCK_DGRAM) as s:
            s.connect(("10.96.0.54", 53))
            s.send(b"q")
            assert s.recv(100).decode().split()[0] == f"{PODS[0]}:8080"
            # the endpoint changed while no proxy watched: a new proxy only ever sees the new state
            p2: Proxier = make_proxier(settings(lab), make_backend(settings(lab)))
            p2.on_service_add(service("dns2", "10.96.0.54", UDP_PORTS))
            p2.on_endpointslice_add(slice_of("dns2", PODS[1:2], UDP_EPP))
            p2.on_services_synced()
            p2.on_endpointslices_synced()
            await p2.sync()
            s.send(b"q")  # same client port: the old flow would still carry it to PODS[0]
            assert s.recv(100).decode().split()[0] == f"{PODS[1]}:8080"


async def test_restart_keeps_established_connections_and_rebuilds_identically(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("web", "10.96.0.10", WEB))
        p.on_endpointslice_add(slice_of("web", PODS))
        await p.sync()
        before = lab.sh(lab.node, "nft", "list", "table", "ip", "nanokube")
        with lab.socket(lab.client) as s:
            s.connect(("10.96.0.10", 80))
            f = s.makefile("rwb")
            f.write(b"1\n")
            f.flush()
            first = f.readline()
            # a new proxy process: fresh state, full sync over the stale table (the old one never cleaned up)
            p2: Proxier = make_proxier(settings(lab), make_backend(settings(lab)))
            p2.on_service_add(service("web", "10.96.0.10", WEB))
            p2.on_endpointslice_add(slice_of("web", PODS))
            p2.on_services_synced()
            p2.on_endpointslices_synced()
            await p2.sync()
            f.write(b"2\n")
            f.flush()
            assert f.readline() == first  # same backend, same translated connection
        assert lab.sh(lab.node, "nft", "list", "table", "ip", "nanokube") == before
        assert isinstance(p2.backend, NftablesBackend)


async def test_session_affinity_pins_a_client(lab: Lab) -> None:
    async with proxy(lab) as p:
        p.on_service_add(service("sticky", "10.96.0.40", WEB, affinity_timeout=30))
        p.on_endpointslice_add(slice_of("sticky", PODS))
        await p.sync()
        servers = {lab.ask(lab.client, "10.96.0.40", 80).split()[0] for _ in range(15)}
        assert len(servers) == 1
        out = await Commands(lab.node).run(["nft", "list", "map", "ip", "nanokube", "affinity"])
        assert "10.96.0.40 . tcp . 80" in out


@pytest.mark.skipif(not libnft.available(), reason="libnftables is not installed")
async def test_in_process_nft_applies_in_the_right_namespace_and_reports_errors(lab: Lab) -> None:
    commands = Commands(lab.client)  # a namespace with no nanokube table
    try:
        await commands.nft("add table ip nk-libtest\nadd set ip nk-libtest s { type ipv4_addr; }\n", in_process=True)
        await commands.nft("add element ip nk-libtest s { 10.1.2.3 }\n", in_process=True)
        assert "10.1.2.3" in lab.sh(lab.client, "nft", "list", "set", "ip", "nk-libtest", "s")
        assert "nk-libtest" not in await Commands().run(["nft", "list", "tables"])  # not in this namespace
        with pytest.raises(CommandError, match="No such file or directory"):
            await commands.nft("add element ip nk-libtest absent { 10.1.2.4 }\n", in_process=True)
        # a failed transaction changes nothing, and the context keeps working afterwards
        await commands.nft("add element ip nk-libtest s { 10.1.2.5 }\n", in_process=True)
        listing = lab.sh(lab.client, "nft", "list", "set", "ip", "nk-libtest", "s")
        assert "10.1.2.5" in listing and "10.1.2.4" not in listing
    finally:
        commands.close()
        lab.sh(lab.client, "nft", "delete", "table", "ip", "nk-libtest")


async def test_a_periodic_sync_rebuilds_rules_removed_from_outside(lab: Lab) -> None:
    """`nft flush ruleset` or a firewall reload removes our table; the next periodic sync (no Service changed)
    notices and rebuilds it, so Services do not stay broken until something changes."""
    async with proxy(lab) as p:
        p.on_service_add(service("web", "10.96.0.10", WEB))
        p.on_endpointslice_add(slice_of("web", PODS))
        await p.sync()
        assert lab.ask(lab.client, "10.96.0.10", 80).split()[0].split(":")[0] in PODS
        lab.sh(lab.node, "nft", "delete", "table", "ip", "nanokube")
        await p.sync()  # what the runner's max interval runs with nothing queued
        assert "table ip nanokube" in lab.sh(lab.node, "nft", "list", "tables")
        assert lab.ask(lab.client, "10.96.0.10", 80).split()[0].split(":")[0] in PODS
        rebuilt_at = p.status.last_full_sync
        await p.sync()  # intact now: a plain periodic sync, nothing rebuilt
        assert p.status.last_full_sync == rebuilt_at
