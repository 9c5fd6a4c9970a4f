"""A real `nanokube server --network loopback` (all components) per module, on address ranges of its own.

Each server gets random 127.x ranges for Services, pods and LoadBalancer addresses, so modules (and other
servers on the machine) never fight over a ClusterIP, a pod address or the DNS listener. Cluster DNS stays
on its default address, the kube-dns ClusterIP port 53. Upstream DNS points at a dead local port: nothing
in these tests may leave the machine.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.conftest import Server, start_server

TAKEN_OCTETS = {96, 97, 240, 241, 244, 245, 250, 251}  # defaults, benches and other helpers' manual runs


def _free_octets(n: int) -> list[int]:
    return random.sample([o for o in range(100, 230) if o not in TAKEN_OCTETS], n)


def start_loopback_server() -> Server:
    """A loopback-mode server on Service, pod and LoadBalancer ranges of its own, DNS upstream a dead port."""
    svc, pod, lb = _free_octets(3)
    return start_server("--network", "loopback", "--service-cidr", f"127.{svc}.0.0/16",
                        "--pod-cidr", f"127.{pod}.0.0/16", "--lb-pool", f"127.{lb}.0.0/24",
                        "--dns-upstream", "127.0.0.1:9", "--backoff-base", "1")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Server]:
    srv = start_loopback_server()
    try:
        yield srv
    finally:
        srv.stop()


def dns_address(srv: Server) -> tuple[str, int]:
    field = next(f for f in srv.ready_line.split() if f.startswith("dns="))
    host, _, port = field[4:].rpartition(":")
    return host, int(port)



def http_get(ip: str, port: int, path: str = "/", *, source: str | None = None, timeout: float = 2.0) -> dict:
    """One request on a new TCP connection (so the proxy chooses an endpoint each time); the echo's JSON."""
    with socket.create_connection((ip, port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"unexpected reply from {ip}:{port}: {head[:80]!r}")
    return json.loads(body)


def kubectl_json(srv: Server, *args: str) -> dict:
    return json.loads(srv.kubectl("get", *args, "-o", "json").stdout)


def echo_deployment(name: str, replicas: int, labels: dict[str, str] | None = None,
                    selector: dict[str, str] | None = None) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector or labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 5,
                                           "containers": [{"name": "echo", "image": "nanokube/echo",
                                                           "ports": [{"containerPort": 8080, "name": "http"},
                                                                     {"containerPort": 8081, "name": "udp",
                                                                      "protocol": "UDP"}]}]}}}}


def service(name: str, selector: dict[str, str], ports: list[dict], **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": ports, **spec}}


def manifest(*objs: dict) -> str:
    return yaml.safe_dump_all(objs)


def ready_pod_ips(srv: Server, selector: str) -> dict[str, str]:
    """name -> IP of the Running, Ready pods matching a label selector (as the API reports them)."""
    out = {}
    for pod in kubectl_json(srv, "pods", "-l", selector)["items"]:
        conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions") or []}
        if conds.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
            out[pod["metadata"]["name"]] = pod["status"]["podIP"]
    return out
