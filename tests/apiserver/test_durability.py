"""The store survives the server: a clean stop and restart, and a kill -9 in the middle of concurrent creates."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
from tests.apiserver.helpers_http import (
    IP_KEYS,
    PORT_KEYS,
    SERVICES,
    Http,
    assert_ranges_match,
    held_by_services,
    live_keys,
)
from tests.conftest import Server
from tests.polling import eventually

from nanokube.api.served_resources import RESOURCES

API_ONLY = ("--network", "loopback", "--components=")

MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {name: plain, labels: {tier: db}}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: fixed-ip}
spec: {selector: {app: web}, clusterIP: 127.96.7.7, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {selector: {app: web}, clusterIP: None, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: a, port: 80, nodePort: 31111}, {name: b, port: 81}, {name: c, port: 81, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: lb-local}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: web}, ports: [{port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: echo, image: nanokube/echo}]}
"""


def _path(res: Any) -> str:
    return f"/api/v1/{res.plural}" if not res.group else f"/apis/{res.group}/{res.version}/{res.plural}"


def api_dump(http: Http) -> dict[str, dict[str, Any]]:
    """Every object of every resource, by storage key, as the API serves it."""
    out: dict[str, dict[str, Any]] = {}
    for res in RESOURCES:
        if res.group == "events.k8s.io" or "list" not in res.verbs:
            continue  # the core/v1 Events again, in the other group's shape; create-only reviews
        for obj in http.ok("GET", _path(res))["items"]:
            md = obj["metadata"]
            out[res.key(md.get("namespace"), md["name"])] = obj
    return out


def store_dump(srv: Server) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in live_keys(srv, "/registry/").items() if not k.startswith("/registry/ranges/")}


@contextlib.contextmanager
def restarted(srv: Server, *args: str) -> Iterator[Server]:
    """The same server (data dir and API port, so the `kubernetes` endpoints stay the same) started again."""
    again = Server(data_dir=srv.data_dir, api_port=srv.api_port, args=list(args)).start()
    try:
        yield again
    finally:
        again.stop()


def test_restart_keeps_every_object_uid_address_and_resource_version(make_server: Any) -> None:
    srv = make_server("--network", "loopback", "--components=controllers", "--no-agent")
    http = Http(srv)
    srv.apply(MANIFESTS)
    srv.kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    eventually(lambda: len(http.ok("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"]) == 2)
    eventually(lambda: http.ok("GET", f"{SERVICES}/lb-local")["status"]["loadBalancer"].get("ingress"))
    srv.stop()

    before = store_dump(srv)
    services = [v for k, v in before.items() if k.startswith("/registry/services/specs/")]
    assert {s["metadata"]["name"] for s in services} >= {"plain", "fixed-ip", "headless", "nodeport", "lb-local",
                                                         "external", "kubernetes", "kube-dns"}
    ranges_before = live_keys(srv, "/registry/ranges/")
    max_rv = max(int(v["metadata"]["resourceVersion"]) for v in before.values())

    with restarted(srv, *API_ONLY) as srv2:
        check_restarted(srv2, before, ranges_before, max_rv)


def check_restarted(srv2: Server, before: dict[str, Any], ranges_before: dict[str, Any], max_rv: int) -> None:
    http2 = Http(srv2)
    served = api_dump(http2)
    assert served == before  # every object byte-for-byte: uid, resourceVersion, ClusterIPs, NodePorts, status
    assert int(http2.list_rv()) >= max_rv
    assert store_dump(srv2) == before  # starting wrote nothing over them
    assert live_keys(srv2, "/registry/ranges/") == ranges_before
    nodeport = served["/registry/services/specs/default/nodeport"]["spec"]["ports"]
    assert nodeport[0]["nodePort"] == 31111 and nodeport[1]["nodePort"] == nodeport[2]["nodePort"]
    assert served["/registry/services/specs/default/fixed-ip"]["spec"]["clusterIPs"] == ["127.96.7.7"]
    assert served["/registry/services/specs/default/lb-local"]["spec"]["healthCheckNodePort"]
    assert srv2.kubectl("get", "secret", "creds", "-o", "jsonpath={.data.password}").stdout == "czNjcmV0"
    # The restarted allocator knows what is held.
    status, body = http2("POST", SERVICES, {"metadata": {"name": "again"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": 31111}]}})
    assert status == 422 and body["message"].endswith("provided port is already allocated")


# --- kill -9 during concurrent creates -------------------------------------------------------------------------

CLIENTS = 8
CONTESTED_PORTS = list(range(30200, 30216))
CONTESTED_IPS = [f"127.96.200.{i}" for i in range(1, 17)]


def _client(srv: Server, n: int, acked: list[dict[str, Any]], refused: list[int], stop: threading.Event) -> None:
    http = Http(srv)
    i = 0
    while not stop.is_set():
        spec: dict[str, Any] = {"selector": {"app": f"c{n}"}, "ports": [{"port": 80}]}
        if i % 3 == 0:  # collide on purpose: every client asks for the same few nodePorts
            spec.update(type="NodePort", ports=[{"port": 80, "nodePort": CONTESTED_PORTS[i // 3 % 16]}])
        elif i % 3 == 1:
            spec.update(type="NodePort")
            if i % 2:
                spec["clusterIP"] = CONTESTED_IPS[i // 3 % 16]
        try:
            status, body = http("POST", SERVICES, {"metadata": {"name": f"c{n}-{i}"}, "spec": spec}, timeout=5)
        except (urllib3.exceptions.HTTPError, OSError):
            return
        if status == 201:
            acked.append(body)
        else:
            assert status == 422 and "already allocated" in body["message"], body
            refused.append(status)
        i += 1


def test_kill9_during_concurrent_creates_loses_no_acknowledged_create(make_server: Any) -> None:
    srv = make_server(*API_ONLY)
    acked: list[dict[str, Any]] = []
    refused: list[int] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_client, args=(srv, n, acked, refused, stop)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        eventually(lambda: len(acked) >= 150 and refused, timeout=30)
        srv.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads)
    acked_now = list(acked)

    with restarted(srv, *API_ONLY) as srv2:
        check_after_crash(srv2, acked_now)


def check_after_crash(srv2: Server, acked_now: list[dict[str, Any]]) -> None:
    http = Http(srv2)
    services = http.ok("GET", "/api/v1/services")["items"]
    by_name = {s["metadata"]["name"]: s for s in services}
    for ack in acked_now:
        got = by_name.get(ack["metadata"]["name"])
        assert got is not None, f"acknowledged create of {ack['metadata']['name']} is lost"
        assert got == ack
    ips, ports = held_by_services(services)  # raises if any ClusterIP or NodePort is held twice
    assert_ranges_match(srv2, services)  # the repair pass left exactly one record per held value
    assert len(live_keys(srv2, IP_KEYS)) == len(ips) and len(live_keys(srv2, PORT_KEYS)) == len(ports)

    # The restarted allocator refuses what is held and hands out what is not.
    held_port = next(p for p in CONTESTED_PORTS if p in ports)
    status, body = http("POST", SERVICES, {"metadata": {"name": "late"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": held_port}]}})
    assert status == 422 and body["message"].endswith(f"{held_port}: provided port is already allocated")
    held_ip = next(ip for ip in CONTESTED_IPS if ip in ips)
    status, body = http("POST", SERVICES, {"metadata": {"name": "late"}, "spec": {
        "clusterIP": held_ip, "ports": [{"port": 80}]}})
    assert status == 422 and body["message"].endswith("provided IP is already allocated")
    fresh = http.ok("POST", SERVICES, {"metadata": {"name": "late"}, "spec": {"type": "NodePort",
                                                                             "ports": [{"port": 80}]}})
    assert fresh["spec"]["clusterIP"] not in ips and fresh["spec"]["ports"][0]["nodePort"] not in ports
