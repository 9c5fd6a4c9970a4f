"""Service and EndpointSlice dicts shaped exactly as the API returns them (v1 / discovery.k8s.io/v1)."""

from __future__ import annotations

from typing import Any


def service(name: str, cluster_ip: str, ports: list[dict[str, Any]], *, namespace: str = "default",
            type: str = "ClusterIP", lb_ips: tuple[str, ...] = (), external_ips: tuple[str, ...] = (),
            etp: str = "Cluster", itp: str = "Cluster", affinity_timeout: int | None = None,
            rv: str = "1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": type, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack", "selector": {"app": name}, "sessionAffinity": "None",
        "internalTrafficPolicy": itp,
        "ports": [{"name": p.get("name", ""), "protocol": p.get("protocol", "TCP"), "port": p["port"],
                   "targetPort": p.get("targetPort", p["port"]), **({"nodePort": p["nodePort"]}
                                                                     if "nodePort" in p else {})}
                  for p in ports],
    }
    if type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = etp
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    if affinity_timeout is not None:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_timeout}}
    status: dict[str, Any] = {"loadBalancer": {}}
    if lb_ips:
        status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in lb_ips]}
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": rv,
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": spec, "status": status}


def endpoint(ip: str, *, ready: bool = True, serving: bool | None = None, terminating: bool = False,
             node: str = "node-a") -> dict[str, Any]:
    return {"addresses": [ip],
            "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                           "terminating": terminating},
            "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "default", "name": f"pod-{ip}"}}


def endpoint_slice(service_name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]], *,
                   namespace: str = "default", name: str | None = None, rv: str = "1") -> dict[str, Any]:
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name or f"{service_name}-abcde", "namespace": namespace, "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service_name,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": p.get("name", ""), "protocol": p.get("protocol", "TCP"), "port": p["port"]}
                      for p in ports]}
