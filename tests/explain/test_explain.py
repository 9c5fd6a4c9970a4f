"""`nanokube explain service` against a real loopback-mode server, one broken case per namespace."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest
from tests.conftest import Server, start_server
from tests.explain.cluster import explain, pick_plan
from tests.polling import eventually

ECHO = "nanokube/echo"


def deployment(name: str, ns: str, labels: dict[str, str], *, replicas: int = 1, port_name: str = "http",
               readiness: dict[str, Any] | None = None, hostname: str | None = None,
               subdomain: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "echo", "image": ECHO,
                                 "ports": [{"name": port_name, "containerPort": 8080}]}
    if readiness:
        container["readinessProbe"] = readiness
    pod_spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 1}
    if hostname:
        pod_spec["hostname"] = hostname
    if subdomain:
        pod_spec["subdomain"] = subdomain
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}


def service(name: str, ns: str, selector: dict[str, str] | None, *, target: int | str = "http", port: int = 80,
            **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": [{"name": "web", "port": port, "targetPort": target}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def namespace(server: Server, ns: str) -> None:
    server.kubectl("create", "namespace", ns)


def wait_available(server: Server, ns: str, name: str) -> None:
    server.kubectl("wait", "-n", ns, "--for=condition=Available", f"deployment/{name}", "--timeout=30s")


@pytest.fixture(scope="module")
def cluster():
    """One address from the LB pool, so a second LoadBalancer on the same port finds the pool exhausted."""
    plan = pick_plan()
    srv = start_server(*plan.args(lb_pool_size=1), "--disable", "ingress")  # the Ingress controller takes an address
    srv.plan = plan  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


def test_healthy_service(cluster):
    namespace(cluster, "healthy")
    cluster.apply(deployment("echo", "healthy", {"app": "echo"}, replicas=2))
    cluster.apply(service("echo", "healthy", {"app": "echo"}))
    wait_available(cluster, "healthy", "echo")
    code, r = eventually(lambda: (res := explain(cluster, "echo", "healthy")) and res[1]["verdict"]["ok"] and res)
    assert code == 0 and r["verdict"]["code"] == "reachable"
    ip = r["service"]["clusterIPs"][0]
    assert ip.startswith(f"127.{cluster.plan.octet}.")
    assert len(r["pods"]) == 2 and all(p["ready"] for p in r["pods"])
    assert sum(len(s["ready"]) for s in r["endpointSlices"]) == 2
    port = r["ports"][0]
    assert port["targetPort"] == "http"
    assert [p["port"] for p in port["pods"]] == [8080, 8080]
    assert all(p["listening"] is True for p in port["pods"])
    assert r["dns"]["names"][0]["name"] == "echo.healthy.svc.cluster.local"
    assert r["dns"]["query"]["rcode"] == "NOERROR" and r["dns"]["query"]["answers"] == [f"A {ip}"]
    assert f"{ip}:80" in r["verdict"]["message"]
    proxy = r["proxy"]
    if proxy["available"]:  # 127.0.0.1:10256 may belong to another server on this host (then explain says so)
        assert proxy["programmed"] and len(proxy["endpoints"]) == 2
        assert {"address": f"{ip}:80", "kind": "cluster", "endpoints": 2, "noEndpoints": "", "error": ""} in proxy["frontends"]
    else:
        assert "another cluster" in proxy["error"] or "no proxy status" in proxy["error"]


def test_text_output_is_one_screen(cluster):
    proc = subprocess.run([sys.executable, "-m", "nanokube", "explain", "svc", "echo", "-n", "healthy",
                           "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Service healthy/echo  type ClusterIP"
    assert lines[-1].startswith("Verdict: OK [reachable] 2 ready endpoint(s)")
    assert len(lines) <= 40


def test_selector_typo(cluster):
    namespace(cluster, "typo")
    cluster.apply(deployment("echo", "typo", {"app": "echo"}))
    cluster.apply(service("echo", "typo", {"app": "ecoh"}))
    wait_available(cluster, "typo", "echo")
    code, r = explain(cluster, "echo", "typo")
    assert code == 1
    assert r["verdict"]["code"] == "selector-matches-no-pod"
    assert "did you mean app=echo?" in r["verdict"]["message"]
    assert r["pods"] == []


def test_all_pods_unready(cluster):
    namespace(cluster, "unready")
    probe = {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 1}
    cluster.apply(deployment("echo", "unready", {"app": "echo"}, replicas=2, readiness=probe))
    cluster.apply(service("echo", "unready", {"app": "echo"}))
    cluster.kubectl("wait", "-n", "unready", "--for=jsonpath={.status.phase}=Running", "pod", "-l", "app=echo",
                    "--timeout=30s")
    code, r = eventually(lambda: (res := explain(cluster, "echo", "unready")) and len(res[1]["pods"]) == 2 and res)
    assert code == 1
    assert r["verdict"]["code"] == "pods-not-ready"
    assert "none of the 2 pod(s) matching app=echo is ready" in r["verdict"]["message"]
    assert "readiness probe failing: tcpSocket :9999" in r["verdict"]["message"]
    assert all(not p["ready"] for p in r["pods"])
    assert eventually(lambda: sum(len(s["notReady"]) for s in explain(cluster, "echo", "unready")[1]
                                  ["endpointSlices"]) == 2)


def test_named_target_port_mismatch(cluster):
    namespace(cluster, "badport")
    cluster.apply(deployment("echo", "badport", {"app": "echo"}, port_name="http"))
    cluster.apply(service("echo", "badport", {"app": "echo"}, target="web-port"))
    wait_available(cluster, "badport", "echo")
    code, r = explain(cluster, "echo", "badport")
    assert code == 1
    assert r["verdict"]["code"] == "target-port-wrong"
    assert "'web-port' matches no containerPort name" in r["verdict"]["message"]
    assert "http (8080/TCP)" in r["verdict"]["message"]
    assert "8080" in r["verdict"]["fix"]


def test_numeric_target_port_nothing_listening(cluster):
    namespace(cluster, "deafport")
    cluster.apply(deployment("echo", "deafport", {"app": "echo"}))
    cluster.apply(service("echo", "deafport", {"app": "echo"}, target=8081))
    wait_available(cluster, "deafport", "echo")
    code, r = eventually(lambda: (res := explain(cluster, "echo", "deafport")) and res[1]["endpointSlices"]
                         and res[1]["endpointSlices"][0]["ready"] and res)
    assert code == 1 and r["verdict"]["code"] == "target-port-wrong"
    assert "nothing listens on targetPort 8081" in r["verdict"]["message"]


def test_pool_exhausted(cluster):
    namespace(cluster, "lb")
    cluster.apply(deployment("echo", "lb", {"app": "echo"}))
    cluster.apply(service("first", "lb", {"app": "echo"}, type="LoadBalancer"))
    wait_available(cluster, "lb", "echo")
    _, first = eventually(lambda: (res := explain(cluster, "first", "lb")) and res[1]["verdict"]["ok"] and res)
    assert first["service"]["loadBalancerIngress"] == [cluster.plan.lb_pool(1).split("-")[0]]
    cluster.apply(service("second", "lb", {"app": "echo"}, type="LoadBalancer"))
    code, r = eventually(lambda: (res := explain(cluster, "second", "lb"))
                         and res[1]["verdict"]["code"] == "lb-pool-exhausted" and res)
    assert code == 1
    assert "no available IPs" in r["verdict"]["message"]
    assert "--lb-pool" in r["verdict"]["fix"]
    assert any(e["reason"] == "AllocationFailed" for e in r["service"]["events"])


def test_node_port_held_by_another_process(cluster):
    """A classic on a laptop: something else already listens on the node port. The proxy serves the rest,
    and explain names the port and the process-finding command."""
    namespace(cluster, "taken")
    cluster.apply(deployment("echo", "taken", {"app": "echo"}))
    blocker, node_port = None, 0
    for candidate in range(31900, 32000):  # a node port we can hold ourselves
        try:
            blocker = socket.create_server((cluster.plan.node_ip, candidate))
        except OSError:
            continue
        node_port = candidate
        break
    assert blocker is not None
    try:
        svc = service("echo", "taken", {"app": "echo"}, type="NodePort")
        svc["spec"]["ports"][0]["nodePort"] = node_port
        cluster.apply(svc)
        wait_available(cluster, "taken", "echo")
        code, r = eventually(lambda: (res := explain(cluster, "echo", "taken"))
                             and res[1]["verdict"]["code"] == "port-taken" and res)
        assert code == 1
        assert f"{cluster.plan.node_ip}:{node_port}" in r["verdict"]["message"]
        assert "Address already in use" in r["verdict"]["message"] and "ss -ltnp" in r["verdict"]["fix"]
        clusterip = next(f for f in r["proxy"]["frontends"] if f["kind"] == "cluster")
        assert clusterip["error"] == ""  # the ClusterIP of the same Service is served
    finally:
        blocker.close()
    # freed: the next sync (at the latest the periodic one) opens it
    code, r = eventually(lambda: (res := explain(cluster, "echo", "taken")) and res[1]["verdict"]["ok"] and res,
                         timeout=60)
    assert r["verdict"]["code"] == "reachable"


def test_external_name(cluster):
    namespace(cluster, "ext")
    cluster.apply(service("db", "ext", None, type="ExternalName", externalName="db.example.test"))
    code, r = explain(cluster, "db", "ext")
    assert code == 0
    assert r["verdict"]["code"] == "external-name"
    assert "DNS only" in r["verdict"]["message"] and "db.example.test" in r["verdict"]["message"]
    assert r["dns"]["query"]["answers"] == ["CNAME db.example.test."]


def test_headless(cluster):
    namespace(cluster, "headless")
    cluster.apply(deployment("peers", "headless", {"app": "peers"}, replicas=2, hostname="peer",
                             subdomain="peers"))
    cluster.apply(service("peers", "headless", {"app": "peers"}, clusterIP="None"))
    wait_available(cluster, "headless", "peers")
    code, r = eventually(lambda: (res := explain(cluster, "peers", "headless"))
                         and sum(len(s["ready"]) for s in res[1]["endpointSlices"]) == 2 and res)
    assert code == 0
    assert r["verdict"]["code"] == "headless"
    assert "no virtual IP" in r["verdict"]["message"]
    pod_ips = sorted(p["ip"] for p in r["pods"])
    assert sorted(a.removeprefix("A ") for a in r["dns"]["query"]["answers"]) == pod_ips
    assert any(n["name"] == "peer.peers.headless.svc.cluster.local" for n in r["dns"]["names"])


def test_service_not_found(cluster):
    code, r = explain(cluster, "eccho", "healthy")
    assert code == 1
    assert r["verdict"]["code"] == "service-not-found"
    assert "Did you mean echo?" in r["verdict"]["message"]


def test_declared_port_not_opened_yet_is_not_a_wrong_target_port(cluster):
    """Right after a rollout the app may not have opened its declared port yet: say so, not "target port wrong"."""
    namespace(cluster, "slowstart")
    slow = deployment("slow", "slowstart", {"app": "slow"})
    slow["spec"]["template"]["spec"]["containers"][0].update(image="busybox", command=["sleep", "3600"])
    cluster.apply(slow)
    cluster.apply(service("slow", "slowstart", {"app": "slow"}, target=8080))
    wait_available(cluster, "slowstart", "slow")
    code, r = eventually(lambda: (res := explain(cluster, "slow", "slowstart")) and res[1]["endpointSlices"]
                         and res[1]["endpointSlices"][0]["ready"] and res)
    assert code == 1 and r["verdict"]["code"] == "not-listening-yet", r["verdict"]
    assert "nothing listens on targetPort 8080 yet" in r["verdict"]["message"]
    assert "running for " in r["verdict"]["message"]
