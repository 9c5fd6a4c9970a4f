"""One Service's part of the namespace map as the browser draws it: the Service -> its endpoints -> their pods
-> nodes, plain JSON, with the `nanokube explain` verdict from the shared report.

Pure: built from the objects that Service depends on (ui/index.py finds them), so a change rebuilds only the
Services it touches.
"""

from __future__ import annotations

from collections.abc import Callable

from nanokube.api.explain_pods import is_ready, pod_ip
from nanokube.api.explain_report import build_report
from nanokube.api.explain_verdict import verdict
from nanokube.api.meta import Obj


def service_entry(svc: Obj, slices: list[Obj], pods: list[Obj], events: list[Obj], nodes: list[Obj],
                  pod_named: Callable[[str], Obj | None], domain: str = "cluster.local") -> tuple[Obj, int]:
    """The Service's entry and how many pods its selector matched.

    `pods`: the namespace's pods sorted by name, or any sorted subset holding every pod the selector matches
    (all of them only when it matches none: the verdict then names close labels). `events`: the Service's own
    and those of the pods it matches. `pod_named` finds the pod an endpoint points to.
    """
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
                pod_name = (ep.get("targetRef") or {}).get("name") or ""
                pod = pod_named(pod_name) if pod_name else None
                entry: Obj = {"address": address, "ready": cond.get("ready") is not False,
                              "terminating": bool(cond.get("terminating")),
                              "pod": pod_name, "node": ep.get("nodeName") or "",
                              "ports": [p.get("port") for p in eps.get("ports") or []],
                              "podInfo": pod_summary(pod) if pod is not None else None}
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
    }, len(report["pods"])


def pod_summary(pod: Obj) -> Obj:
    status = pod.get("status") or {}
    md = pod.get("metadata") or {}
    return {"name": md.get("name", ""), "phase": status.get("phase") or "Pending",
            "ready": is_ready(pod) and not md.get("deletionTimestamp"), "terminating": bool(md.get("deletionTimestamp")),
            "restarts": sum(c.get("restartCount") or 0 for c in status.get("containerStatuses") or []),
            "node": (pod.get("spec") or {}).get("nodeName") or "", "ip": pod_ip(pod)}
