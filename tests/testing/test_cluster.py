"""`nanokube.Cluster`: its public surface, two clusters side by side, reaching Services and DNS from the test
process, and a clean stop on exit, exception and KeyboardInterrupt."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from tests.testing.conftest import SERVER_ARGS, listeners_of

import nanokube
from nanokube import Cluster, ClusterError

# The public surface: changing it breaks users. Update this on purpose only.
SURFACE = {
    "__init__": "(self, *, network: 'Network' = 'loopback', args: 'list[str] | tuple[str, ...]' = (), "
                "data_dir: 'str | Path | None' = None, ready_timeout: 'float' = 60.0, "
                "cluster_domain: 'str' = 'cluster.local') -> 'None'",
    "start": "(self) -> 'Cluster'",
    "stop": "(self) -> 'int | None'",
    "api_client": "(self) -> 'kubernetes.client.ApiClient'",
    "kubectl": "(self, *args: 'str', input: 'str | None' = None, check: 'bool' = True, timeout: 'float' = 60) "
               "-> 'subprocess.CompletedProcess[str]'",
    "apply": "(self, manifest: 'Manifest', namespace: 'str | None' = None) -> 'str'",
    "get": "(self, kind: 'str', name: 'str | None' = None, namespace: 'str | None' = None) -> 'dict[str, Any]'",
    "wait": "(self, kind: 'str', name: 'str', condition: 'str' = 'Ready', namespace: 'str | None' = None, "
            "timeout: 'float' = 60) -> 'None'",
    "url": "(self, service: 'str', port: 'int | str | None' = None, scheme: 'str' = 'http', "
           "namespace: 'str' = 'default') -> 'str'",
    "resolve": "(self, name: 'str', rdtype: 'str' = 'A', namespace: 'str' = 'default') -> 'list[str]'",
    "logs": "(self, pod: 'str', namespace: 'str | None' = None, container: 'str | None' = None, "
            "tail: 'int | None' = None, previous: 'bool' = False) -> 'str'",
    "events": "(self, namespace: 'str | None' = None) -> 'str'",
    "server_log": "(self, lines: 'int | None' = None) -> 'str'",
}
PROPERTIES = {"kubeconfig", "running"}
ATTRIBUTES = {"network", "args", "ready_timeout", "cluster_domain", "ready_line", "data_dir", "log_path",
              "api_url", "dns_address", "node_ip", "service_cidr", "pod_cidr", "lb_pool"}

ECHO = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: echo, image: nanokube/echo, ports: [{containerPort: 8080}]}]
"""


def services(node_port: int) -> list[dict]:
    def svc(name: str, kind: str, **port: int) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"type": kind, "selector": {"app": "echo"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080, **port}]}}

    return [svc("echo", "ClusterIP"), svc("echo-np", "NodePort", nodePort=node_port),
            svc("echo-lb", "LoadBalancer", nodePort=node_port + 1),
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo-headless"},
             "spec": {"clusterIP": "None", "selector": {"app": "echo"}, "ports": [{"port": 8080}]}}]


def fetch(url: str, deadline: float = 20.0) -> dict:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as reply:
                return json.loads(reply.read())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_public_surface_is_pinned() -> None:
    assert nanokube.Cluster is Cluster and nanokube.ClusterError is ClusterError
    public = {name for name in vars(Cluster) if not name.startswith("_")}
    assert public == set(SURFACE) - {"__init__"} | PROPERTIES
    for name, signature in SURFACE.items():
        assert str(inspect.signature(getattr(Cluster, name))) == signature, name
        assert getattr(Cluster, name).__doc__ or name == "__init__", f"{name} has no docstring"
    assert Cluster.__doc__
    fresh = Cluster()
    assert {a for a in vars(fresh) if not a.startswith("_")} == ATTRIBUTES
    for dunder in ("__enter__", "__exit__", "__aenter__", "__aexit__"):
        assert dunder in vars(Cluster)


def test_import_nanokube_stays_cheap() -> None:
    code = "import sys, nanokube; print(sorted(m for m in sys.modules if m.startswith('nanokube')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['nanokube']"


def test_two_clusters_side_by_side_serve_every_service_type() -> None:
    """Same manifests, same NodePorts, in two clusters at once: nothing clashes, each answers on its own."""
    with Cluster(args=SERVER_ARGS) as one, Cluster(args=SERVER_ARGS) as two:
        assert one.service_cidr != two.service_cidr and one.node_ip != two.node_ip
        mine = {line.split()[4] for line in listeners_of(one._proc.pid)}  # type: ignore[union-attr]
        theirs = {line.split()[4] for line in listeners_of(two._proc.pid)}  # type: ignore[union-attr]
        assert mine and theirs and not mine & theirs
        for cluster in (one, two):
            cluster.apply(ECHO)
            cluster.apply(services(30080))
        for cluster in (one, two):
            cluster.wait("deployment", "echo", "Available")
            pod = cluster.get("pods", namespace="default")["items"][0]["metadata"]["name"]
            for name in ("echo", "echo-np", "echo-lb", "echo-headless"):
                url = cluster.url(name, None if name == "echo-headless" else "http")
                assert fetch(url)["pod"] == pod, (name, url)
            lb = cluster.get("service", "echo-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
            assert cluster.url("echo-lb", 80) == f"http://{lb}:80/"
            assert fetch(f"http://{cluster.node_ip}:30080/")["pod"] == pod  # the NodePort on the node IP
            assert cluster.resolve("echo") == [cluster.get("service", "echo")["spec"]["clusterIP"]]
            assert cluster.resolve("kubernetes.default") == [cluster.get("service", "kubernetes")["spec"]["clusterIP"]]
            assert cluster.resolve("no-such-service") == []
            assert "listening on" in cluster.logs(pod)
            assert "Created pod" in cluster.events("default") or "SuccessfulCreate" in cluster.events("default")
            from kubernetes import client

            names = [p.metadata.name for p in client.CoreV1Api(cluster.api_client()).list_namespaced_pod("default").items]
            assert names == [pod]


def test_stops_cleanly_on_exception_and_keyboard_interrupt() -> None:
    for error in (ValueError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), Cluster(args=SERVER_ARGS) as cluster:
            pid, base = cluster._proc.pid, cluster.data_dir.parent  # type: ignore[union-attr]
            assert cluster.running
            raise error
        assert not cluster.running
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        assert not base.exists()
        with Cluster(args=SERVER_ARGS) as again:  # the address range was given back (it may be chosen again)
            assert again.running


def test_async_with() -> None:
    async def main() -> str:
        async with Cluster(args=SERVER_ARGS) as cluster:
            await asyncio.to_thread(cluster.apply, {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "c"}, "data": {"k": "v"}})
            return (await asyncio.to_thread(cluster.get, "configmap", "c"))["data"]["k"]

    assert asyncio.run(main()) == "v"


def test_bad_server_flags_raise_with_the_servers_reason_and_leave_nothing() -> None:
    cluster = Cluster(args=["--service-node-port-range", "nonsense"])
    with pytest.raises(ClusterError, match="--service-node-port-range"):
        cluster.start()
    assert not cluster.running and cluster._base is None and cluster._claim is None


def test_a_failure_while_spawning_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nanokube.testing import addresses

    def no_range() -> addresses.OctetClaim:
        raise RuntimeError("no free range")

    monkeypatch.setattr(addresses, "claim_loopback_plan", no_range)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    cluster = Cluster()
    with pytest.raises(RuntimeError, match="no free range"):
        cluster.start()
    with pytest.raises(RuntimeError, match="no free range"):
        asyncio.run(cluster.__aenter__())
    assert list(tmp_path.iterdir()) == []  # the temporary directories made before the failure are gone


@pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")
def test_netns_cluster_is_reached_through_relays_and_leaves_nothing() -> None:
    with Cluster(network="netns", args=SERVER_ARGS) as cluster:
        namespace = cluster._netns
        assert namespace and Path(f"/run/netns/{namespace}").exists()
        cluster.apply(ECHO)
        cluster.apply(services(30080))
        cluster.wait("deployment", "echo", "Available")
        pod = cluster.get("pods")["items"][0]["metadata"]["name"]
        for name in ("echo", "echo-np", "echo-lb"):
            assert fetch(cluster.url(name, 80))["pod"] == pod
        assert cluster.url("echo", 80).startswith("http://127.0.0.1:")
        assert cluster.resolve("echo") == [cluster.get("service", "echo")["spec"]["clusterIP"]]
    assert not Path(f"/run/netns/{namespace}").exists()


def test_a_cluster_started_in_a_thread_outlives_the_thread() -> None:
    """The parent-death signal follows the thread that forked: a cluster started in a worker thread (a pool,
    asyncio.to_thread) must not be stopped when that thread ends."""
    started: list[Cluster] = []
    worker = threading.Thread(target=lambda: started.append(Cluster(args=SERVER_ARGS).start()))
    worker.start()
    worker.join()
    cluster = started[0]
    try:
        until = time.monotonic() + 3  # a SIGTERM at the thread's end stops the server well within this
        while time.monotonic() < until:
            assert cluster.running, cluster.server_log(20)
            time.sleep(0.1)
        assert cluster.kubectl("get", "namespace", "default").returncode == 0
    finally:
        cluster.stop()


def test_a_range_something_listens_in_is_never_chosen() -> None:
    """Another program (or a cluster of another user) listening anywhere in 127.N.0.0/16 keeps N off limits."""
    import socket

    from nanokube.testing import addresses

    squatters = []
    try:
        for octet in addresses.OCTETS:
            if octet % 2:  # every odd range is taken
                sock = socket.create_server((f"127.{octet}.200.7", 0))
                squatters.append(sock)
        assert {o for o in addresses.OCTETS if o % 2} <= addresses.listening_octets()
        claims = [addresses.claim_loopback_plan() for _ in range(5)]
        try:
            assert all(c.plan.octet % 2 == 0 for c in claims)
            assert len({c.plan.octet for c in claims}) == 5  # and never one claimed twice
        finally:
            for claim in claims:
                claim.release()
    finally:
        for sock in squatters:
            sock.close()
