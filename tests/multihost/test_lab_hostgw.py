"""Three hosts on one link (host-gw routes): a server on host 1, agents on hosts 2 and 3.

Pods reach each other across hosts with their own IPs, every node's proxy answers every Service (ClusterIP,
NodePort, LB IP) for endpoints on any host, cluster DNS answers on every node, externalTrafficPolicy Local keeps
the client's address; a killed agent's node goes NotReady and its endpoints leave the Services.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.multihost.conftest import running_lab
from tests.multihost.lab import CLIENT_IP, Lab, sh
from tests.netns.manifests import echo_deployment, service
from tests.polling import eventually

NODE_PORT = 31080
LOCAL_NODE_PORT = 31081


def spread(name: str, replicas: int, evict_after: int = 8) -> dict[str, Any]:
    dep = echo_deployment(name, replicas)
    dep["spec"]["template"]["spec"]["tolerations"] = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                                        "effect": "NoExecute", "tolerationSeconds": evict_after}]
    dep["spec"]["template"]["spec"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": name}}}]
    return dep


def headless(name: str, app: str) -> dict[str, Any]:
    svc = service(name, app)
    svc["spec"]["clusterIP"] = "None"
    return svc


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from running_lab(backend="auto")


@pytest.fixture(scope="module")
def echo(lab: Lab) -> dict[str, Any]:
    local = service("solo-local", "solo", type="LoadBalancer", node_port=LOCAL_NODE_PORT)
    local["spec"]["externalTrafficPolicy"] = "Local"
    internal = service("solo-itp", "solo")
    internal["spec"]["internalTrafficPolicy"] = "Local"
    lab.apply([spread("echo", 6, lab.eviction), echo_deployment("solo", 1), service("echo", "echo"), headless("echo-h", "echo"),
               internal,
               service("echo-np", "echo", type="NodePort", node_port=NODE_PORT),
               service("echo-lb", "echo", type="LoadBalancer"), local])
    lab.kubectl("rollout", "status", "deployment/echo", "deployment/solo", "--timeout=90s", timeout=100)
    pods: dict[str, dict[str, str]] = {}  # node -> pod -> IP
    for pod in lab.get("pods", "-l", "app=echo")["items"]:
        pods.setdefault(pod["spec"]["nodeName"], {})[pod["metadata"]["name"]] = pod["status"]["podIP"]
    solo = lab.get("pods", "-l", "app=solo")["items"][0]
    lb = eventually(lambda: (lab.get("svc", "echo-lb")["status"].get("loadBalancer") or {}).get("ingress"),
                    timeout=30)
    return {"pods": pods, "cluster_ip": lab.get("svc", "echo")["spec"]["clusterIP"],
            "solo_node": solo["spec"]["nodeName"], "solo": solo["metadata"]["name"], "lb_ip": lb[0]["ip"],
            "health_port": lab.get("svc", "solo-local")["spec"]["healthCheckNodePort"],
            "itp_ip": lab.get("svc", "solo-itp")["spec"]["clusterIP"]}


def all_pods(echo: dict[str, Any]) -> list[str]:
    return sorted(p for pods in echo["pods"].values() for p in pods)


def test_three_ready_nodes_with_routes_to_each_others_pod_cidrs(lab: Lab) -> None:
    nodes = lab.get("nodes")["items"]
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in n["status"]["conditions"]) for n in nodes}
    assert ready == {"h1": True, "h2": True, "h3": True}
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes}
    for host in lab.hosts:
        routes = json.loads(host.run("ip", "-j", "route", "show", "proto", "79").stdout)
        want = {(cidrs[h.name], h.ip) for h in lab.hosts if h is not host}
        assert {(r["dst"], r["gateway"]) for r in routes} == want, (host.name, routes)


def test_six_pods_spread_over_the_three_hosts(echo: dict[str, Any]) -> None:
    assert sorted(echo["pods"]) == ["h1", "h2", "h3"], echo["pods"]
    assert sum(len(p) for p in echo["pods"].values()) == 6


def test_from_a_pod_on_host3_cluster_ip_pod_ip_and_dns(lab: Lab, echo: dict[str, Any]) -> None:
    h3 = lab.host("h3")
    client = sorted(echo["pods"]["h3"])[0]
    seen = lab.pod_client(h3, client, "until", echo["cluster_ip"], 80, 30, 6)
    assert seen["pods"] == all_pods(echo), seen
    name2, ip2 = sorted(echo["pods"]["h2"].items())[0]
    answer = lab.pod_client(h3, client, "http", ip2, 8080, 1)["answers"][name2]
    # no masquerade between pods: the pod on host 2 sees the pod on host 3's own address
    assert answer["clientIP"] == echo["pods"]["h3"][client]
    resolve = ("import socket,sys,json; print(json.dumps(sorted({a[4][0] for a in "
               "socket.getaddrinfo(sys.argv[1], 80, type=socket.SOCK_STREAM)})))")
    got = json.loads(lab.pod_exec(h3, client, sys.executable, "-c", resolve,
                                  "echo.default.svc.cluster.local").stdout)
    assert got == [echo["cluster_ip"]]
    got = json.loads(lab.pod_exec(h3, client, sys.executable, "-c", resolve, "echo-h").stdout)
    assert got == sorted(ip for pods in echo["pods"].values() for ip in pods.values())


KUBE_DNS = "10.96.0.10"


def test_kube_dns_is_a_service_whose_endpoint_is_the_dns_server_on_host1(lab: Lab) -> None:
    table = lab.kubectl("get", "endpointslices", "-n", "kube-system").stdout
    assert any(line.split()[:1] == ["kube-dns"] and f"{lab.server.ip}" in line for line in table.splitlines()), table
    (eps,) = lab.get("endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns")["items"]
    assert [(e["addresses"], e.get("nodeName")) for e in eps["endpoints"]] == [([lab.server.ip], "h1")]
    for host in lab.hosts:  # every node's proxy carries the ClusterIP; only host 1 runs a DNS server
        assert KUBE_DNS in host.run("nft", "list", "map", "ip", "nanokube", "service-ips").stdout, host.name
        listening = host.run("ss", "-Hlun", "sport = :53").stdout.strip()
        assert bool(listening) == (host is lab.server), (host.name, listening)


def test_a_pod_on_host3_resolves_through_the_kube_dns_cluster_ip_dnated_to_host1(lab: Lab,
                                                                                echo: dict[str, Any]) -> None:
    h3 = lab.host("h3")
    client = sorted(echo["pods"]["h3"])[0]
    conf = lab.pod_exec(h3, client, "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {KUBE_DNS}" in conf.splitlines(), conf
    h3.run("conntrack", "-D", "-d", KUBE_DNS, check=False)  # exit 1 when there was nothing to delete
    for transport in ("+notcp", "+tcp"):
        out = lab.pod_exec(h3, client, "dig", "+short", transport, "+tries=1", "+time=5", f"@{KUBE_DNS}",
                           "echo.default.svc.cluster.local").stdout
        assert out.split() == [echo["cluster_ip"]], (transport, out)
    # h3's conntrack table: the pod's queries to the ClusterIP were DNATed to the DNS server on host 1
    pod_ip = echo["pods"]["h3"][client]
    flows = h3.run("conntrack", "-L", "-d", KUBE_DNS).stdout
    replies = {(m[0], m[1]) for m in re.findall(
        rf"^(\w+)\s.*src={re.escape(pod_ip)} dst={re.escape(KUBE_DNS)} .*dport=53 src=([\d.]+) dst={re.escape(pod_ip)}",
        flows, re.M)}
    assert replies == {("udp", lab.server.ip), ("tcp", lab.server.ip)}, flows


def test_node_port_and_lb_ip_answer_on_every_host_from_the_lab_bridge(lab: Lab, echo: dict[str, Any]) -> None:
    for host in lab.hosts:
        seen = lab.netclient(lab.client_ns, "until", host.ip, NODE_PORT, 30, 6)
        assert seen["pods"] == all_pods(echo), (host.name, seen)
    # ServiceLB-style: every node makes the LB IP local; the client's router here is host 2
    sh("ip", "-n", lab.client_ns, "route", "replace", f"{echo['lb_ip']}/32", "via", lab.host("h2").ip)
    seen = lab.netclient(lab.client_ns, "until", echo["lb_ip"], 80, 30, 6)
    assert seen["pods"] == all_pods(echo), seen


def test_external_traffic_policy_local_answers_only_where_the_pod_runs(lab: Lab, echo: dict[str, Any]) -> None:
    for host in lab.hosts:
        if host.name == echo["solo_node"]:
            answer = lab.netclient(lab.client_ns, "http", host.ip, LOCAL_NODE_PORT, 1)["answers"][echo["solo"]]
            assert answer["clientIP"] == CLIENT_IP
        else:
            result = lab.netclient(lab.client_ns, "tcp", host.ip, LOCAL_NODE_PORT, 2)
            assert result["result"] != "ok", (host.name, result)


def test_health_check_node_port_and_internal_traffic_policy_are_per_node(lab: Lab, echo: dict[str, Any]) -> None:
    probe = ("import sys, urllib.request, urllib.error\n"
             "try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"
             "except urllib.error.HTTPError as err:\n    print(err.code)\n")
    for host in lab.hosts:
        code = sh("ip", "netns", "exec", lab.client_ns, sys.executable, "-c", probe,
                  f"http://{host.ip}:{echo['health_port']}/").stdout.strip()
        assert code == ("200" if host.name == echo["solo_node"] else "503"), (host.name, code)
        client = sorted(echo["pods"][host.name])[0]
        if host.name == echo["solo_node"]:
            assert lab.pod_client(host, client, "http", echo["itp_ip"], 80, 1)["pods"] == {echo["solo"]: 1}
        else:  # no local endpoint: dropped on this node, never sent to the pod on another node
            assert lab.pod_client(host, client, "tcp", echo["itp_ip"], 80, 1)["result"] != "ok"


def test_killed_agent_node_goes_not_ready_and_its_endpoints_leave(lab: Lab, echo: dict[str, Any]) -> None:
    h2 = lab.host("h2")
    lab.kill(h2)
    began = time.monotonic()

    def not_ready() -> bool:
        node = lab.get("node", "h2")
        return any(c["type"] == "Ready" and c["status"] != "True" for c in node["status"]["conditions"])

    eventually(not_ready, timeout=lab.grace + 20)
    gone = set(echo["pods"]["h2"].values())

    def withdrawn() -> bool:
        for sl in lab.get("endpointslices", "-l", "kubernetes.io/service-name=echo")["items"]:
            for ep in sl.get("endpoints") or []:
                if ep["addresses"][0] in gone and (ep.get("conditions") or {}).get("ready"):
                    return False
        return True

    eventually(withdrawn, timeout=30)
    took = time.monotonic() - began
    assert took < lab.grace + 30
    left = sorted(p for n, pods in echo["pods"].items() if n != "h2" for p in pods)
    for host in (lab.host("h1"), lab.host("h3")):
        def shifted(host: Any = host) -> bool:
            return sorted(lab.netclient(lab.client_ns, "http", host.ip, NODE_PORT, 12)["pods"]) == left
        eventually(shifted, timeout=20)  # the proxies have followed the EndpointSlices
        result = lab.netclient(lab.client_ns, "http", host.ip, NODE_PORT, 40)
        assert sum(result["pods"].values()) == 40 and set(result["pods"]) <= set(left), result



def test_pods_of_the_lost_node_are_evicted_and_replaced_elsewhere(lab: Lab, echo: dict[str, Any]) -> None:
    lost = set(echo["pods"]["h2"])

    def replaced() -> bool:
        pods = lab.get("pods", "-l", "app=echo")["items"]
        evicted = all(p["metadata"].get("deletionTimestamp") for p in pods if p["metadata"]["name"] in lost)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        return evicted and len(live) == 6 and all(p["spec"]["nodeName"] != "h2" for p in live)

    eventually(replaced, timeout=lab.eviction + 60)
