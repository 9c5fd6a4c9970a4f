"""The map of one namespace as the browser draws it: Services -> endpoints -> pods -> nodes, plain JSON.

Pure: built from informer caches; each Service carries the `nanokube explain` verdict from the shared report.
"""

from __future__ import annotations

from nanokube.api.endpointslices import LABEL_SERVICE_NAME
from nanokube.api.explain_pods import is_ready, pod_ip
from nanokube.api.explain_report import build_report
from nanokube.api.explain_verdict import verdict
from nanokube.api.meta import Obj


def _service(svc: Obj, slices: list[Obj], pods: list[Obj], events: list[Obj], nodes: list[Obj],
             domain: str) -> Obj:
    md, spec, status = svc.get("metadata") or {}, svc.get("spec") or {}, svc.get("status") or {}
    name, ns = md.get("name", ""), md.get("namespace") or "default"
    report = build_report(svc, pods, slices, events, nodes, domain)
    report["proxy"] = {"available": False}
    endpoints: list[Obj] = []
    seen: set[str] = set()
    for eps in slices:
        for ep in eps.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            for address in ep.get("addresses") or []:
                if address in seen:  # one endpoint per address, however many slices/families list it
                    continue
                seen.add(address)
                entry: Obj = {"address": address, "ready": cond.get("ready") is not False,
                              "terminating": bool(cond.get("terminating")),
                              "pod": (ep.get("targetRef") or {}).get("name") or "", "node": ep.get("nodeName") or "",
                              "ports": [p.get("port") for p in eps.get("ports") or []]}
                if spec.get("clusterIP") == "None":  # as the cluster DNS names them: hostname, else the dashed IP
                    label = ep.get("hostname") or address.replace(".", "-").replace(":", "-")
                    entry["dns"] = f"{label}.{name}.{ns}.svc.{domain}"
                endpoints.append(entry)
    endpoints.sort(key=lambda e: (e["pod"], e["address"]))
    return {
        "name": name, "type": spec.get("type") or "ClusterIP",
        "clusterIPs": [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"],
        "headless": spec.get("clusterIP") == "None", "externalName": spec.get("externalName") or "",
        "ports": [{"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
                   "targetPort": p.get("targetPort", p.get("port")), "nodePort": p.get("nodePort")}
                  for p in spec.get("ports") or []],
        "loadBalancer": [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress")
                         or []],
        "externalIPs": spec.get("externalIPs") or [],
        "selector": spec.get("selector") or {},
        "dns": [n["name"] for n in report["dns"]["names"]],
        "endpoints": endpoints,
        "verdict": verdict(report),
    }


def _pod(pod: Obj) -> Obj:
    status = pod.get("status") or {}
    md = pod.get("metadata") or {}
    return {"name": md.get("name", ""), "phase": status.get("phase") or "Pending",
            "ready": is_ready(pod) and not md.get("deletionTimestamp"), "terminating": bool(md.get("deletionTimestamp")),
            "restarts": sum(c.get("restartCount") or 0 for c in status.get("containerStatuses") or []),
            "node": (pod.get("spec") or {}).get("nodeName") or "", "ip": pod_ip(pod)}


def _node(node: Obj) -> Obj:
    status = node.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return {"name": node["metadata"]["name"], "ready": ready,
            "addresses": [a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]}


def namespace_view(namespace: str, namespaces: list[str], services: list[Obj], slices: list[Obj], pods: list[Obj],
                   events: list[Obj], nodes: list[Obj], domain: str = "cluster.local") -> Obj:
    by_service: dict[str, list[Obj]] = {}
    for eps in slices:
        owner = ((eps.get("metadata") or {}).get("labels") or {}).get(LABEL_SERVICE_NAME)
        if owner:
            by_service.setdefault(owner, []).append(eps)
    ns_pods = sorted(pods, key=lambda p: p["metadata"]["name"])
    return {
        "namespace": namespace, "namespaces": sorted(namespaces),
        "services": [_service(s, by_service.get(s["metadata"]["name"], []), ns_pods, events, nodes, domain)
                     for s in sorted(services, key=lambda s: s["metadata"]["name"])],
        "pods": [_pod(p) for p in ns_pods],
        "nodes": [_node(n) for n in sorted(nodes, key=lambda n: n["metadata"]["name"])],
    }
