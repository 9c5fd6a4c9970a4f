"""Services through the real server in loopback mode: kubectl creates the objects, real clients send traffic
through the userspace proxy to nanokube/echo pods (issue 5, "What must be shown", loopback column)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import Server
from tests.loopback.conftest import (
    echo_deployment,
    http_get,
    kubectl_json,
    manifest,
    ready_pod_ips,
    service,
)
from tests.polling import eventually

HTTP = [{"name": "http", "port": 80, "targetPort": 8080}]


def cluster_ip(srv: Server, name: str) -> str:
    return srv.kubectl("get", "svc", name, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()


def pods_seen(ip: str, port: int, n: int, **kw: str) -> Counter[str]:
    return Counter(http_get(ip, port, **kw)["pod"] for _ in range(n))


def wait_serving(srv: Server, ip: str, port: int, selector: str, count: int) -> set[str]:
    """Until the Service answers from exactly the `count` ready pods the API lists for `selector`."""
    def check() -> set[str] | None:
        ready = set(ready_pod_ips(srv, selector))
        seen = set(pods_seen(ip, port, 4 * count))
        return seen if len(ready) == count and seen == ready else None
    return eventually(check, what=f"{count} pods behind {ip}:{port}")


def refused_at_once(ip: str, port: int) -> float:
    """Seconds a connection attempt took to be refused; any other outcome fails."""
    t0 = time.monotonic()
    with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
        http_get(ip, port, timeout=3)
    return time.monotonic() - t0


def test_cluster_ip_spreads_scales_up_and_to_zero(cluster: Server) -> None:
    cluster.apply(manifest(echo_deployment("spread", 3), service("spread", {"app": "spread"}, HTTP)))
    ip = cluster_ip(cluster, "spread")
    wait_serving(cluster, ip, 80, "app=spread", 3)

    counts = pods_seen(ip, 80, 300)
    assert len(counts) == 3 and max(counts.values()) <= 180, counts

    cluster.kubectl("scale", "deployment", "spread", "--replicas=5")
    assert len(wait_serving(cluster, ip, 80, "app=spread", 5)) == 5

    cluster.kubectl("scale", "deployment", "spread", "--replicas=0")

    def refused() -> bool:
        try:
            http_get(ip, 80, timeout=3)
        except (ConnectionRefusedError, ConnectionResetError):
            return not ready_pod_ips(cluster, "app=spread")
        return False

    eventually(refused, what="connections refused after scaling to 0")
    for _ in range(5):  # refused at once (RST), never left hanging
        assert refused_at_once(ip, 80) < 0.5


def test_not_ready_pod_gets_no_traffic_until_ready(cluster: Server, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    laggard = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rd-laggard",
                                                              "labels": {"app": "rd", "role": "laggard"}},
               "spec": {"containers": [{"name": "echo", "image": "nanokube/echo",
                                        "readinessProbe": {"exec": {"command": ["cat", str(flag)]},
                                                           "periodSeconds": 1, "failureThreshold": 1}}]}}
    cluster.apply(manifest(echo_deployment("rd", 2, labels={"app": "rd", "role": "main"}),
                           service("rd", {"app": "rd"}, HTTP), laggard))
    ip = cluster_ip(cluster, "rd")
    wait_serving(cluster, ip, 80, "app=rd", 2)
    pod = eventually(lambda: kubectl_json(cluster, "pod", "rd-laggard")["status"].get("podIP"), what="laggard IP")
    assert http_get(pod, 8080)["pod"] == "rd-laggard"  # alive and answering, just not ready

    counts = pods_seen(ip, 80, 200)
    assert "rd-laggard" not in counts and len(counts) == 2, counts

    flag.write_text("ok\n")
    assert len(wait_serving(cluster, ip, 80, "app=rd", 3)) == 3


def test_node_port_and_load_balancer_address(cluster: Server) -> None:
    cluster.apply(manifest(echo_deployment("lb", 2), service("lb", {"app": "lb"}, HTTP, type="LoadBalancer")))

    def external_ip() -> str | None:
        row = cluster.kubectl("get", "svc", "lb", "--no-headers").stdout.split()
        # NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
        return row[3] if row[3] not in ("<pending>", "<none>") else None

    lb_ip = eventually(external_ip, what="EXTERNAL-IP")
    ports = cluster.kubectl("get", "svc", "lb", "--no-headers").stdout.split()[4]
    node_port = int(re.fullmatch(r"80:(\d+)/TCP", ports)[1])  # type: ignore[index]
    pods = set(eventually(lambda: len(ready_pod_ips(cluster, "app=lb")) == 2 and ready_pod_ips(cluster, "app=lb")))

    assert wait_serving(cluster, lb_ip, 80, "app=lb", 2) == pods
    assert wait_serving(cluster, "127.0.0.1", node_port, "app=lb", 2) == pods


def test_session_affinity_pins_each_client(cluster: Server) -> None:
    cluster.apply(manifest(echo_deployment("sticky", 3),
                           service("sticky", {"app": "sticky"}, HTTP, sessionAffinity="ClientIP",
                                   sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})))
    ip = cluster_ip(cluster, "sticky")
    eventually(lambda: len(ready_pod_ips(cluster, "app=sticky")) == 3, what="3 ready pods")
    eventually(lambda: http_get(ip, 80)["pod"] in ready_pod_ips(cluster, "app=sticky"), what="service answers")
    eventually(lambda: len(set(ready_pod_ips(cluster, "app=sticky"))
                           & {http_get(ip, 80, source=f"127.0.1.{i}")["pod"] for i in range(1, 30)}) == 3,
               what="all 3 endpoints programmed")

    chosen = {}
    for i in range(2, 8):  # six clients, told apart by their source address
        counts = pods_seen(ip, 80, 15, source=f"127.0.2.{i}")
        assert len(counts) == 1, counts
        chosen[i] = next(iter(counts))
    assert len(set(chosen.values())) > 1, chosen  # pinned per client, not one pod for everybody


def udp_ask(sock: socket.socket, ip: str, port: int) -> str | None:
    sock.sendto(b"?", (ip, port))
    try:
        data, _ = sock.recvfrom(65536)
    except TimeoutError:
        return None
    return json.loads(data)["pod"]


def test_udp_service_follows_endpoint_change(cluster: Server) -> None:
    cluster.apply(manifest(echo_deployment("dgram", 2, labels={"app": "dgram", "serve": "yes"},
                                           selector={"app": "dgram"}),
                           service("dgram", {"app": "dgram", "serve": "yes"},
                                   [{"name": "echo", "port": 5300, "targetPort": 8081, "protocol": "UDP"}])))
    ip = cluster_ip(cluster, "dgram")
    pods = eventually(lambda: len(ready_pod_ips(cluster, "app=dgram")) == 2 and ready_pod_ips(cluster, "app=dgram"))

    def both_answer() -> bool:
        seen = set()
        for _ in range(6):  # a new client socket is a new session: the proxy picks an endpoint for each
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.5)
                seen.add(udp_ask(s, ip, 5300))
        return seen == set(pods)

    eventually(both_answer, what="both endpoints behind the UDP service")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(0.5)
    try:
        removed = eventually(lambda: udp_ask(client, ip, 5300), what="a UDP answer")
        assert udp_ask(client, ip, 5300) == removed  # the session sticks to its endpoint
        cluster.kubectl("label", "pod", removed, "serve=no", "--overwrite")  # out of the Service, still running

        eventually(lambda: udp_ask(client, ip, 5300) not in (None, removed), what="the session moving")
        after = [udp_ask(client, ip, 5300) for _ in range(30)]
        assert removed not in after and None not in after, after
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as direct:  # the removed pod could still answer
            direct.settimeout(1)
            assert udp_ask(direct, pods[removed], 8081) == removed
    finally:
        client.close()


SLOW_SERVER = r"""
import os, signal, socket
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
srv = socket.create_server((os.environ["NANOKUBE_BIND"], 8080), reuse_port=False)
srv.settimeout(0.2)
while not stop:
    try:
        conn, _ = srv.accept()
    except TimeoutError:
        continue
    conn.settimeout(None)
    try:
        if conn.recv(65536):  # (readiness probes connect and leave without a word)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nfirst-")
            conn.recv(1)  # the client says "g" once it has deleted this pod
            conn.sendall(b"second")
    except OSError:
        pass
    conn.close()
"""


def test_terminating_pod_finishes_in_flight_request(cluster: Server) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow", "labels": {"app": "slow"}},
           "spec": {"terminationGracePeriodSeconds": 20,
                    "containers": [{"name": "srv", "image": "python", "command": ["python3", "-c", SLOW_SERVER],
                                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
    cluster.apply(manifest(pod, service("slow", {"app": "slow"}, HTTP)))
    ip = cluster_ip(cluster, "slow")
    eventually(lambda: "slow" in ready_pod_ips(cluster, "app=slow"), what="slow pod ready")

    def connect() -> socket.socket | None:
        sock = socket.create_connection((ip, 80), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\n\r\n")
        try:
            first = sock.recv(65536)
        except OSError:
            first = b""
        if not first.endswith(b"first-"):
            sock.close()
            return None
        return sock

    sock = eventually(connect, what="a request in flight")
    cluster.kubectl("delete", "pod", "slow", "--wait=false")

    def slices_drop_or_mark_it() -> bool:
        slices = kubectl_json(cluster, "endpointslices", "-l", "kubernetes.io/service-name=slow")["items"]
        eps = [ep for s in slices for ep in s.get("endpoints") or []]
        return not eps or all(ep["conditions"].get("ready") is False for ep in eps)

    eventually(slices_drop_or_mark_it, what="the endpoint leaving the ready set")
    sock.sendall(b"g")
    rest = b""
    while chunk := sock.recv(65536):
        rest += chunk
    sock.close()
    assert rest == b"second"


def test_headless_label_makes_the_proxy_skip_the_service(cluster: Server) -> None:
    """Kubernetes e2e "should implement service.kubernetes.io/headless": the label takes the Service out of the
    proxy (like service-proxy-name); removing it brings the Service back."""
    cluster.apply(manifest(echo_deployment("hdl", 1), service("hdl", {"app": "hdl"}, HTTP)))
    ip = cluster_ip(cluster, "hdl")
    wait_serving(cluster, ip, 80, "app=hdl", 1)
    cluster.kubectl("label", "svc", "hdl", "service.kubernetes.io/headless=")

    def refused() -> bool:
        try:
            http_get(ip, 80, timeout=3)
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        return False

    eventually(refused, what="the labelled Service dropped by the proxy")
    cluster.kubectl("label", "svc", "hdl", "service.kubernetes.io/headless-")
    wait_serving(cluster, ip, 80, "app=hdl", 1)
