"""An app's tests against a real cluster: its Deployment behind a Service, reached by URL and by DNS name.

    pip install nanokube pytest
    pytest examples/services-dns
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nanokube/echo
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-pods}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
"""


def get_json(url: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as reply:
                return json.loads(reply.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_service_spreads_requests_over_the_pods(nanokube_cluster: Any, nanokube_namespace: str) -> None:
    nanokube_cluster.apply(APP, namespace=nanokube_namespace)
    nanokube_cluster.wait("deployment", "web", "Available", namespace=nanokube_namespace)
    url = nanokube_cluster.url("web", "http", namespace=nanokube_namespace)
    pods = {p["metadata"]["name"] for p in nanokube_cluster.get("pods", namespace=nanokube_namespace)["items"]}
    seen = {get_json(url)["pod"] for _ in range(20)}
    assert seen == pods


def test_dns_names_resolve_like_in_a_pod(nanokube_cluster: Any, nanokube_namespace: str) -> None:
    nanokube_cluster.apply(APP, namespace=nanokube_namespace)
    nanokube_cluster.wait("deployment", "web", "Available", namespace=nanokube_namespace)
    service = nanokube_cluster.get("service", "web", namespace=nanokube_namespace)
    # `web` from inside the namespace, `web.<namespace>` from anywhere: the Service's ClusterIP
    assert nanokube_cluster.resolve("web", namespace=nanokube_namespace) == [service["spec"]["clusterIP"]]
    assert nanokube_cluster.resolve(f"web.{nanokube_namespace}") == [service["spec"]["clusterIP"]]
    # a headless Service answers with the ready pods' own addresses
    pod_ips = {p["status"]["podIP"] for p in nanokube_cluster.get("pods", namespace=nanokube_namespace)["items"]}
    assert set(nanokube_cluster.resolve("web-pods", namespace=nanokube_namespace)) == pod_ips
