"""Builders for realistic objects at known ages relative to a fixed server clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp `delta` before NOW (timedelta keyword arguments)."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago_micro(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def meta(name: str, namespace: str | None = "default", age: dict[str, float] | None = None, **extra: Any) -> dict:
    m: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "creationTimestamp": ago(**(age or {"hours": 1})),
    }
    if namespace is not None:
        m["namespace"] = namespace
    m.update(extra)
    return m


def container_status(name: str = "app", *, ready: bool = True, restarts: int = 0, state: dict | None = None,
                     last_state: dict | None = None, started: bool | None = None) -> dict:
    cs: dict[str, Any] = {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "image": "nginx:1.25",
        "imageID": "",
        "state": state if state is not None else {"running": {"startedAt": ago(hours=1)}},
        "lastState": last_state or {},
    }
    if started is not None:
        cs["started"] = started
    return cs


def pod(name: str = "web-1", *, age: dict[str, float] | None = None, containers: int = 1, statuses: list | None = None,
        init_containers: list | None = None, init_statuses: list | None = None, phase: str = "Running",
        conditions: list | None = None, reason: str | None = None, deleting: bool = False,
        node: str = "node-1", ip: str | None = "10.244.0.5", readiness_gates: list | None = None) -> dict:
    m = meta(name, age=age or {"hours": 12})
    if deleting:
        m["deletionTimestamp"] = ago(seconds=10)
        m["deletionGracePeriodSeconds"] = 30
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}" if i else "app", "image": "nginx:1.25"} for i in range(containers)],
        "restartPolicy": "Always",
    }
    if node:
        spec["nodeName"] = node
    if init_containers is not None:
        spec["initContainers"] = init_containers
    if readiness_gates is not None:
        spec["readinessGates"] = [{"conditionType": c} for c in readiness_gates]
    status: dict[str, Any] = {"phase": phase}
    if conditions is not None:
        status["conditions"] = conditions
    if reason:
        status["reason"] = reason
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": status}


def service(name: str, svc_type: str = "ClusterIP", *, ports: list | None = None, cluster_ip: str | None = "10.96.0.10",
            selector: dict | None = None, age: dict[str, float] | None = None, **spec_extra: Any) -> dict:
    spec: dict[str, Any] = {"type": svc_type, "ports": ports if ports is not None else []}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    if selector is not None:
        spec["selector"] = selector
    spec.update(spec_extra)
    status = {"loadBalancer": spec.pop("_lb", {})}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, age=age), "spec": spec, "status": status}


def tcp(port: int, node_port: int | None = None, protocol: str = "TCP", name: str | None = None) -> dict:
    p: dict[str, Any] = {"port": port, "protocol": protocol, "targetPort": port}
    if node_port is not None:
        p["nodePort"] = node_port
    if name:
        p["name"] = name
    return p


EXTERNAL_NAME = "training-aurora.cluster-c6xkqz0fwyd.us-east-1.rds.amazonaws.com"


def article_services() -> dict[str, dict]:
    """The article's services, with addresses of the widths its `kubectl get svc` spacing implies."""
    return {
        "kubernetes": service("kubernetes", cluster_ip="10.96.0.1", ports=[tcp(443, name="https")],
                              age={"hours": 5, "minutes": 23, "seconds": 40}),
        "mariadb-service": service("mariadb-service", cluster_ip="10.108.38.75", ports=[tcp(3306)],
                                   selector={"app": "mariadb"}, age={"seconds": 113}),
        "svc-nodeport-mariadb": service("svc-nodeport-mariadb", "NodePort", cluster_ip="10.97.14.218",
                                        ports=[tcp(3306, 31111)], selector={"app": "mariadb"}, age={"seconds": 100}),
        "svc-mariadb-loadbalancer": service("svc-mariadb-loadbalancer", "LoadBalancer", cluster_ip="10.104.22.31",
                                            ports=[tcp(3306, 30942)], selector={"app": "mariadb"},
                                            _lb={"ingress": [{"ip": "34.123.45.67", "ipMode": "VIP"}]},
                                            age={"seconds": 55}),
        "training-aurora-svc": service("training-aurora-svc", "ExternalName", cluster_ip=None,
                                       externalName=EXTERNAL_NAME, age={"seconds": 97}),
    }
