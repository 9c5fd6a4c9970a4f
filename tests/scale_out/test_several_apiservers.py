"""Three API servers on one etcd: the same objects and watch events through any of them, the `kubernetes`
endpoints listing every live server, and concurrent writers over all three never sharing a ClusterIP or a
NodePort nor losing an acknowledged write."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest
from tests.apiserver.helpers_http import Http, assert_ranges_match, held_by_services
from tests.conftest import KUBECTL, Server
from tests.etcd_cluster import EtcdCluster
from tests.polling import eventually
from tests.scale_out.conftest import control_plane_args, ranges

SERVICES_TOTAL = int(os.environ.get("NANOKUBE_SCALE_SERVICES", "3000"))
WRITERS = 8


@pytest.fixture(scope="module")
def servers(etcd: EtcdCluster, start: Callable[..., Server]) -> Iterator[list[Server]]:
    common = [*control_plane_args(etcd), *ranges(), "--components=controllers", "--no-agent"]
    yield [start(*common) for _ in range(3)]


def kubectl_via(kubeconfig_of: Server, target: Server, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """kubectl with one server's kubeconfig (token, CA) against another server's address."""
    return kubeconfig_of.kubectl("--server", target.url, *args, **kw)  # type: ignore[arg-type]


def test_one_ca_and_token_serve_every_server(servers: list[Server]) -> None:
    first = servers[0]
    for srv in servers:
        assert (srv.data_dir / "pki" / "ca.crt").read_text() == (first.data_dir / "pki" / "ca.crt").read_text()
        assert srv.token == first.token
        assert kubectl_via(first, srv, "get", "namespace", "default", "-o", "name").stdout.strip() == \
            "namespace/default"


def test_objects_and_watch_events_are_the_same_through_any_server(servers: list[Server]) -> None:
    a, b, c = servers
    watch = subprocess.Popen([KUBECTL, "--server", c.url, "get", "configmaps", "--watch-only", "-o",
                              "custom-columns=NAME:.metadata.name,V:.data.v", "--no-headers"],
                             env={**os.environ, "KUBECONFIG": str(a.kubeconfig)}, stdout=subprocess.PIPE, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(line.split()[0] + "=" + line.split()[1]
                                                         for line in watch.stdout or []), daemon=True)
    reader.start()
    try:
        # kubectl lists, then watches from the list's resourceVersion: a change it prints proves it is watching
        a.kubectl("create", "configmap", "canary", "--from-literal=v=0")
        pokes = iter(range(1, 1000))
        eventually(lambda: kubectl_via(a, b, "patch", "configmap", "canary", "-p",
                                       json.dumps({"data": {"v": str(next(pokes))}})) and
                   any(s.startswith("canary=") for s in seen), timeout=30, interval=0.2, what="the watch to start")
        a.kubectl("create", "configmap", "through-a", "--from-literal=v=1")
        kubectl_via(a, b, "patch", "configmap", "through-a", "-p", '{"data":{"v":"2"}}')
        for srv in servers:
            got = json.loads(kubectl_via(a, srv, "get", "configmap", "through-a", "-o", "json").stdout)
            assert got["data"] == {"v": "2"}
        eventually(lambda: [e for e in seen if e.startswith("through-a=")] == ["through-a=1", "through-a=2"],
                   timeout=20, what=f"watch events {seen}")
    finally:
        watch.terminate()
        watch.wait(10)


def kubernetes_endpoints(srv: Server) -> set[tuple[str, int]]:
    ep = json.loads(srv.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout)
    return {(addr["ip"], port["port"]) for subset in ep.get("subsets") or [] for addr in subset["addresses"]
            for port in subset["ports"]}


def test_kubernetes_endpoints_list_every_live_api_server(servers: list[Server]) -> None:
    wanted = {("127.0.0.1", srv.api_port) for srv in servers}
    eventually(lambda: kubernetes_endpoints(servers[0]) == wanted, timeout=30, what="3 endpoints")
    slices = json.loads(servers[1].kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes",
                                           "-o", "json").stdout)["items"]
    assert {(e["addresses"][0], s["ports"][0]["port"]) for s in slices for e in s["endpoints"]} == wanted


def test_concurrent_writers_over_three_servers_share_no_allocation_and_lose_no_write(
        servers: list[Server]) -> None:
    acked: list[list[str]] = [[] for _ in range(WRITERS)]
    failures: list[tuple[int, object]] = []
    per_writer = SERVICES_TOTAL // WRITERS

    def writer(index: int) -> None:
        http = Http(servers[index % len(servers)])
        for n in range(per_writer):
            name = f"w{index}-{n}"
            spec = {"ports": [{"port": 80, "targetPort": 8080}]}
            if n % 10 == 0:
                spec["type"] = "NodePort"
            status, body = http("POST", "/api/v1/namespaces/default/services",
                                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec},
                                timeout=60)
            if status == 201:
                acked[index].append(name)
            else:
                failures.append((status, body))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    names = {name for group in acked for name in group}
    assert len(names) == per_writer * WRITERS
    for srv in servers:
        items = Http(srv).ok("GET", "/api/v1/services")["items"]
        listed = {svc["metadata"]["name"] for svc in items}
        assert names <= listed, f"acknowledged but missing on {srv.url}: {sorted(names - listed)[:5]}"
    held_by_services(items)  # asserts: no ClusterIP or NodePort held twice
    assert_ranges_match(servers[0], items)  # and exactly one allocation key per held value
