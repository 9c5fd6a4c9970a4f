"""kubectl port-forward (SPDY in a WebSocket tunnel) to a pod, a Deployment and a Service, many concurrent
connections, a closed remote port reported as on a real cluster; the Python client's portforward()."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from tests.conftest import Server
from tests.loopback.conftest import echo_deployment, manifest, service
from tests.polling import eventually
from tests.procnet import tcp_sockets

from nanokube.testing.ports import free_port


@pytest.fixture(scope="module")
def web(cluster: Server) -> str:
    cluster.apply(manifest(echo_deployment("web", 2), service("web", {"app": "web"},
                                                               [{"port": 80, "targetPort": "http"}])))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
    return "web"


@contextmanager
def port_forward(cluster: Server, target: str, ports: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "port-forward", target, ports],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(b"Forwarding from"), (line, proc.stderr.read() if proc.poll() is not None else b"")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=30)


def get(port: int, path: str = "/") -> bytes:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).read()


def test_service_forward_answers_200_concurrent_requests(cluster: Server, web: str) -> None:
    local = free_port()
    with port_forward(cluster, "svc/web", f"{local}:80"):
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            answers = list(pool.map(lambda i: get(local, f"/req{i}"), range(200)))
    assert all(f'"path": "/req{i}"'.encode() in a for i, a in enumerate(answers))


def test_deployment_and_pod_targets(cluster: Server, web: str) -> None:
    pod = cluster.kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}").stdout
    for target, remote in (("deploy/web", "8080"), (f"pod/{pod}", "http")):
        local = free_port()
        with port_forward(cluster, target, f"{local}:{remote}"):
            assert b'"pod": "web-' in get(local)


def test_keep_alive_connection_and_large_body(cluster: Server, web: str) -> None:
    local = free_port()
    with port_forward(cluster, "svc/web", f"{local}:80"), socket.create_connection(("127.0.0.1", local)) as sock:
        for i in range(20):
            sock.sendall(f"GET /k{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            reply = b""
            while b"}" not in reply:
                chunk = sock.recv(65536)
                assert chunk
                reply += chunk
            assert f'"/k{i}"'.encode() in reply


def test_closed_remote_port_is_reported_and_kubectl_stops(cluster: Server, web: str) -> None:
    local = free_port()
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "port-forward", "deploy/web",
                             f"{local}:81"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"Forwarding from")
        with pytest.raises(OSError):
            get(local)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    text = err.decode()
    assert "an error occurred forwarding" in text and "error forwarding port 81 to pod" in text, text
    assert "connection refused" in text and "error: lost connection to pod" in text, text


def test_python_client_portforward(cluster: Server, web: str) -> None:
    from kubernetes.stream import portforward

    client, api_client = cluster.client()
    core = client.CoreV1Api(api_client)
    pod = core.list_namespaced_pod("default", label_selector="app=web").items[0].metadata.name
    for _ in range(3):
        pf = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="8080,81")
        sock = pf.socket(8080)
        sock.setblocking(True)
        sock.sendall(b"GET /py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        assert b'"path": "/py"' in data
        assert "error forwarding port 81" in (pf.error(81) or "")
        pf.close() if hasattr(pf, "close") else None


def test_no_connections_left_after_clients_go(cluster: Server, web: str) -> None:
    assert cluster.proc is not None
    server_pid = cluster.proc.pid
    pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    backends = {(p["status"]["podIP"], 8080) for p in pods}

    def forwarded() -> int:
        return sum(1 for s in tcp_sockets(server_pid) if s.remote in backends)

    # the earlier tests' forwarded connections are closed first (a leak there fails here too)
    eventually(lambda: forwarded() == 0, 20, what="no forwarded connection from earlier tests")
    local = free_port()
    with port_forward(cluster, "svc/web", f"{local}:80"):
        held = [socket.create_connection(("127.0.0.1", local)) for _ in range(20)]
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in held:
            assert sock.recv(65536)
        assert forwarded() == 20  # each held connection answered: the server has its connection to the pod open
    for sock in held:
        sock.close()
    eventually(lambda: forwarded() == 0, 20, what="the server's connections to the pods to close")
