"""Health-check node ports through the real server in loopback mode: kubectl makes a LoadBalancer Service with
externalTrafficPolicy Local, an HTTP client asks spec.healthCheckNodePort on the node IP while the Deployment
scales and the Service changes policy and goes away."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.conftest import Server
from tests.loopback.conftest import echo_deployment, kubectl_json, manifest, service
from tests.polling import eventually

HTTP = [{"name": "http", "port": 80, "targetPort": 8080}]


def health(ip: str, port: int) -> tuple[int, dict[str, str], dict] | None:
    """(status, headers, JSON body), or None when the port is closed."""
    conn = http.client.HTTPConnection(ip, port, timeout=2)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    except ConnectionRefusedError:
        return None
    finally:
        conn.close()


def test_health_check_node_port(cluster: Server) -> None:
    svc = service("hc", {"app": "hc"}, HTTP, type="LoadBalancer", externalTrafficPolicy="Local")
    cluster.apply(manifest(echo_deployment("hc", 1), svc))
    node = kubectl_json(cluster, "nodes")["items"][0]
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = int(kubectl_json(cluster, "svc", "hc")["spec"]["healthCheckNodePort"])

    def answers(code: int, count: int) -> Any:
        got = health(ip, port)
        return got if got and got[0] == code and got[2]["localEndpoints"] == count else None

    _, headers, body = eventually(lambda: answers(200, 1), what="200 with one local endpoint")
    assert body == {"service": {"namespace": "default", "name": "hc"}, "localEndpoints": 1,
                    "serviceProxyHealthy": True}
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    assert headers["x-load-balancing-endpoint-weight"] == "1"
    cluster.kubectl("scale", "deployment/hc", "--replicas=0")
    eventually(lambda: answers(503, 0), what="503 after scaling to zero")
    cluster.kubectl("scale", "deployment/hc", "--replicas=1")
    eventually(lambda: answers(200, 1), what="200 again")
    cluster.kubectl("patch", "svc", "hc", "-p", '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    eventually(lambda: health(ip, port) is None, what="port closed after the switch to Cluster")
    cluster.kubectl("patch", "svc", "hc", "-p", '{"spec":{"externalTrafficPolicy":"Local"}}')
    port = int(kubectl_json(cluster, "svc", "hc")["spec"]["healthCheckNodePort"])
    eventually(lambda: answers(200, 1), what="200 on the new port")
    cluster.kubectl("delete", "svc", "hc")
    eventually(lambda: health(ip, port) is None, what="port closed after the delete")
