"""Hosts on two bridges joined by a router: host 1 reaches hosts 2 and 3 only through VXLAN (flannel.1, VNI 1,
port 8472, one FDB entry + neighbour per remote node), hosts 2 and 3 share a link (host-gw between them)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.multihost.conftest import running_lab
from tests.multihost.lab import Lab
from tests.multihost.test_lab_hostgw import all_pods, spread
from tests.netns.manifests import service
from tests.polling import eventually

NODE_PORT = 31090


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab(routed=True, backend="auto")


@pytest.fixture(scope="module")
def echo(lab: Lab) -> dict[str, Any]:
    lab.apply([spread("echo", 3), service("echo", "echo"),
               service("echo-np", "echo", type="NodePort", node_port=NODE_PORT)])
    lab.kubectl("rollout", "status", "deployment/echo", "--timeout=90s", timeout=100)
    pods: dict[str, dict[str, str]] = {}
    for pod in lab.get("pods", "-l", "app=echo")["items"]:
        pods.setdefault(pod["spec"]["nodeName"], {})[pod["metadata"]["name"]] = pod["status"]["podIP"]
    return {"pods": pods, "cluster_ip": lab.get("svc", "echo")["spec"]["clusterIP"]}


def vteps(lab: Lab) -> dict[str, tuple[str, str]]:
    """node -> (VTEP MAC, pod CIDR) as published on the Nodes."""
    out = {}
    for node in lab.get("nodes")["items"]:
        ann = node["metadata"].get("annotations") or {}
        data = json.loads(ann["flannel.alpha.coreos.com/backend-data"])
        assert data["VNI"] == 1 and ann["flannel.alpha.coreos.com/backend-type"] == "vxlan"
        out[node["metadata"]["name"]] = (data["VtepMAC"], node["spec"]["podCIDR"])
    return out


def test_vxlan_device_and_one_fdb_entry_and_neighbour_per_remote_node(lab: Lab) -> None:
    published = vteps(lab)
    h1 = lab.host("h1")
    link = json.loads(h1.run("ip", "-j", "-d", "link", "show", "flannel.1").stdout)[0]
    vx = link["linkinfo"]["info_data"]
    assert (vx["id"], vx["port"], link["mtu"]) == (1, 8472, 1450)
    assert link["address"] == published["h1"][0]
    addrs = json.loads(h1.run("ip", "-j", "addr", "show", "dev", "flannel.1").stdout)[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [("10.244.0.0", 32)]
    fdb = json.loads(h1.run("bridge", "-j", "fdb", "show", "dev", "flannel.1").stdout)
    want_fdb = {(published[h.name][0], h.ip) for h in lab.hosts[1:]}
    assert {(e["mac"], e["dst"]) for e in fdb if e.get("dst")} == want_fdb
    neigh = json.loads(h1.run("ip", "-j", "neigh", "show", "dev", "flannel.1").stdout)
    want_neigh = {(published[h.name][1].split("/")[0], published[h.name][0]) for h in lab.hosts[1:]}
    assert {(n["dst"], n["lladdr"]) for n in neigh} == want_neigh
    # hosts 2 and 3 share a link: a plain route between them, no encapsulation
    routes = json.loads(lab.host("h2").run("ip", "-j", "route", "show", "proto", "79").stdout)
    by_dst = {r["dst"]: r for r in routes}
    assert by_dst[published["h3"][1]]["gateway"] == lab.host("h3").ip
    assert by_dst[published["h1"][1]]["dev"] == "flannel.1"


def test_pods_across_the_router_keep_their_ips(lab: Lab, echo: dict[str, Any]) -> None:
    h1 = lab.host("h1")
    client = sorted(echo["pods"]["h1"])[0]
    for far in ("h2", "h3"):
        name, ip = sorted(echo["pods"][far].items())[0]
        answer = lab.pod_client(h1, client, "http", ip, 8080, 1)["answers"][name]
        assert answer["clientIP"] == echo["pods"]["h1"][client]
    seen = lab.pod_client(h1, client, "until", echo["cluster_ip"], 80, 30, 3)
    assert seen["pods"] == all_pods(echo)


def test_node_port_on_every_host_through_the_router(lab: Lab, echo: dict[str, Any]) -> None:
    for host in lab.hosts:
        seen = lab.netclient(lab.client_ns, "until", host.ip, NODE_PORT, 30, 3)
        assert seen["pods"] == all_pods(echo), (host.name, seen)


def pods_by_node(lab: Lab) -> dict[str, dict[str, str]]:
    pods: dict[str, dict[str, str]] = {}
    for pod in lab.get("pods", "-l", "app=echo")["items"]:
        if pod["status"].get("podIP") and not pod["metadata"].get("deletionTimestamp"):
            pods.setdefault(pod["spec"]["nodeName"], {})[pod["metadata"]["name"]] = pod["status"]["podIP"]
    return pods


def test_routes_and_fdb_follow_a_node_that_changes_ip(lab: Lab, echo: dict[str, Any]) -> None:
    h1, h2, h3 = lab.hosts
    old_ip, new_ip = h3.ip, "192.168.78.23"
    cidr = lab.get("node", "h3")["spec"]["podCIDR"]
    lab.move(h3, new_ip)
    addresses = lab.get("node", "h3")["status"]["addresses"]
    assert {"type": "InternalIP", "address": new_ip} in addresses, addresses

    def followed() -> bool:
        published = vteps(lab)
        fdb = json.loads(h1.run("bridge", "-j", "fdb", "show", "dev", "flannel.1").stdout)
        dsts = {e["mac"]: e["dst"] for e in fdb if e.get("dst")}
        routes = {r["dst"]: r for r in json.loads(h2.run("ip", "-j", "route", "show", "proto", "79").stdout)}
        return (dsts.get(published["h3"][0]) == new_ip and old_ip not in dsts.values()  # h1: VXLAN to h3
                and routes.get(cidr, {}).get("gateway") == new_ip)  # h2: host-gw on their shared link

    eventually(followed, timeout=30)

    def reachable() -> dict[str, dict[str, str]]:
        # the agent runs its pods again (in the same pod CIDR); a pod's status may still show its old run's IP
        # until the agent reports the new one, so ask until the pod on h3 answers from h1 at its reported IP
        pods = pods_by_node(lab)
        assert sorted(pods) == ["h1", "h2", "h3"], pods
        (name3, ip3), = pods["h3"].items()
        client = sorted(pods["h1"])[0]
        assert lab.pod_client(h1, client, "http", ip3, 8080, 1)["answers"][name3]["clientIP"] == pods["h1"][client]
        return pods

    pods = eventually(reachable, timeout=90)
    (name3, ip3), = pods["h3"].items()
    assert ipaddress.ip_address(ip3) in ipaddress.ip_network(cidr)
    for host in (h1, h2):  # pod to pod, each way, with the pods' own addresses
        client, client_ip = sorted(pods[host.name].items())[0]
        answer = lab.pod_client(host, client, "http", ip3, 8080, 1)["answers"][name3]
        assert answer["clientIP"] == client_ip
        assert lab.pod_client(h3, name3, "http", client_ip, 8080, 1)["answers"][client]["clientIP"] == ip3
    seen = lab.pod_client(h1, sorted(pods["h1"])[0], "until", echo["cluster_ip"], 80, 30, 3)
    assert sorted(seen["pods"]) == sorted(p for by in pods.values() for p in by)


def test_a_deleted_node_loses_its_entries_everywhere(lab: Lab, echo: dict[str, Any]) -> None:
    published = vteps(lab)
    lab.kill(lab.host("h3"))
    lab.kubectl("delete", "node", "h3")
    h1, h2 = lab.host("h1"), lab.host("h2")

    def gone() -> bool:
        fdb = json.loads(h1.run("bridge", "-j", "fdb", "show", "dev", "flannel.1").stdout)
        r1 = json.loads(h1.run("ip", "-j", "route", "show", "proto", "79").stdout)
        r2 = json.loads(h2.run("ip", "-j", "route", "show", "proto", "79").stdout)
        cidr = published["h3"][1]
        return (all(e["mac"] != published["h3"][0] for e in fdb)
                and all(r["dst"] != cidr for r in r1 + r2) and len(r1) == 1 and len(r2) == 1)

    eventually(gone, timeout=20)
