"""The built-in Ingress controller in netns mode: nginx listens on the node address, the nftables proxy DNATs
the controller's LoadBalancer address to it, and nginx sends to the pods' addresses (curl from the node)."""

from __future__ import annotations

import json
import time

import pytest
from tests.netns.cluster import NetnsCluster
from tests.netns.manifests import echo_deployment, service

pytestmark = pytest.mark.timeout(300)


def rule(host: str, path: str, svc: str) -> dict:
    return {"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix",
                                              "backend": {"service": {"name": svc, "port": {"name": "http"}}}}]}}


def curl(cluster: NetnsCluster, url: str, address: str) -> tuple[int, str]:
    host = url.split("/")[2]
    proc = cluster.run("curl", "-sS", "--max-time", "5", "--resolve", f"{host}:80:{address}", "-o", "-",
                       "-w", "\n%{http_code}", url, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def test_ingress_routes_by_host_and_path_in_netns(cluster: NetnsCluster) -> None:
    cluster.apply([echo_deployment("ia", 1), echo_deployment("ib", 1), service("ia", "ia"), service("ib", "ib"),
                   {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "routes"},
                    "spec": {"rules": [rule("a.example.test", "/", "ia"), rule("b.example.test", "/api", "ib")]}}])
    cluster.kubectl("rollout", "status", "deployment/ia", "deployment/ib", "--timeout=60s", timeout=90)
    pods = {app: cluster.pod_names(f"app={app}")[0] for app in ("ia", "ib")}
    deadline = time.monotonic() + 60
    address = ""
    while time.monotonic() < deadline:
        lbs = (cluster.get("ingress", "routes").get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        address = lbs[0]["ip"] if lbs else ""
        if address and curl(cluster, "http://a.example.test/", address)[0] == 200 \
                and curl(cluster, "http://b.example.test/api", address)[0] == 200:
            break
        time.sleep(0.2)
    assert address, "no address in the Ingress's status"
    code, body = curl(cluster, "http://a.example.test/x", address)
    assert code == 200 and json.loads(body)["pod"] == pods["ia"], (code, body)
    code, body = curl(cluster, "http://b.example.test/api/v1", address)
    assert code == 200 and json.loads(body)["pod"] == pods["ib"], (code, body)
    assert curl(cluster, "http://b.example.test/apix", address)[0] == 404
    assert curl(cluster, "http://nowhere.example.test/", address)[0] == 404
