"""The node's kubelet port asks who is calling (issue 14): TLS with a certificate from the cluster CA, and
only callers with the cluster's token (the API server proxying `kubectl logs`, or a user holding it)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest
import urllib3
from tests.agent_e2e.conftest import kubectl_json, loopback_args
from tests.conftest import Server, start_server
from tests.polling import eventually


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    server = start_server(*loopback_args())
    try:
        server.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "busybox",
                            "command": ["sh", "-c", "echo secret-log-line; exec sleep 3600"]}]}})
        yield server
    finally:
        server.stop()


def kubelet_address(srv: Server) -> tuple[str, int]:
    node = kubectl_json(srv, "get", "nodes")["items"][0]
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    return ip, node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]


def test_kubectl_logs_go_through_the_authenticated_tls_port(srv: Server) -> None:
    eventually(lambda: "secret-log-line" in srv.kubectl("logs", "talker", check=False).stdout, timeout=60,
               what="kubectl logs")


def test_the_kubelet_port_speaks_tls_from_the_cluster_ca(srv: Server) -> None:
    ip, port = kubelet_address(srv)
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    with socket.create_connection((ip, port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=ip) as tls:
        cert = tls.getpeercert()
    assert ("commonName", f"system:node:{kubectl_json(srv, 'get', 'nodes')['items'][0]['metadata']['name']}") in \
        [entry for rdn in cert["subject"] for entry in rdn]
    # Plain HTTP gets no logs.
    with socket.create_connection((ip, port), timeout=10) as raw:
        raw.sendall(b"GET /containerLogs/default/talker/app HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"secret-log-line" not in raw.recv(65536)


def test_the_kubelet_port_refuses_callers_without_the_token(srv: Server) -> None:
    ip, port = kubelet_address(srv)
    eventually(lambda: "secret-log-line" in srv.kubectl("logs", "talker", check=False).stdout, timeout=60)
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    pool = urllib3.PoolManager(ssl_context=ctx, retries=False)
    url = f"https://{ip}:{port}/containerLogs/default/talker/app"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": srv.token}):
        resp = pool.request("GET", url, headers=headers, timeout=10)
        assert resp.status == 401 and b"secret-log-line" not in resp.data, headers
    resp = pool.request("GET", url, headers={"Authorization": f"Bearer {srv.token}"}, timeout=10)
    assert resp.status == 200 and b"secret-log-line" in resp.data
    assert pool.request("GET", f"https://{ip}:{port}/healthz", timeout=10).status == 200
