"""Object dicts shaped the way the API returns them, for the pure-logic tests."""

from __future__ import annotations

import itertools
from typing import Any

from nanokube.api.meta import Obj

_uids = itertools.count(1)


def service(name: str = "web", *, selector: dict[str, str] | None = None, ports: list[Obj] | None = None,
            cluster_ip: str = "10.96.0.20", publish: bool = False, labels: dict[str, str] | None = None,
            ns: str = "default") -> Obj:
    spec: Obj = {"selector": selector if selector is not None else {"app": name}, "clusterIP": cluster_ip,
                 "clusterIPs": [cluster_ip] if cluster_ip != "None" else ["None"], "ipFamilies": ["IPv4"],
                 "ipFamilyPolicy": "SingleStack", "type": "ClusterIP", "sessionAffinity": "None",
                 "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP",
                                                           "targetPort": 8080}]}
    if publish:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": f"svc-uid-{name}", "resourceVersion": "10",
                         "creationTimestamp": "2024-01-01T00:00:00Z", **({"labels": labels} if labels else {})},
            "spec": spec, "status": {"loadBalancer": {}}}


def pod(name: str, ip: str | None, *, ready: bool = True, labels: dict[str, str] | None = None,
        node: str = "node-1", ports: list[Obj] | None = None, deleting: bool = False, phase: str = "Running",
        hostname: str | None = None, subdomain: str | None = None, ns: str = "default") -> Obj:
    spec: Obj = {"containers": [{"name": "main", "image": "echo", "ports": ports or []}], "nodeName": node,
                 "restartPolicy": "Always"}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    md: Obj = {"name": name, "namespace": ns, "uid": f"pod-uid-{name}", "resourceVersion": str(next(_uids)),
               "labels": labels if labels is not None else {"app": "web"},
               "creationTimestamp": "2024-01-01T00:00:00Z"}
    if deleting:
        md["deletionTimestamp"] = "2024-01-01T00:01:00Z"
    status: Obj = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": status}


def node(name: str = "node-1", zone: str | None = None) -> Obj:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": f"node-{name}", "labels": labels},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def nodes_by_name(*items: Obj) -> Any:
    table = {n["metadata"]["name"]: n for n in items}
    return table.get
