"""The report behind `nanokube explain service` and the UI's verdicts: pure, from the objects alone.

What the Service selects, its endpoints, ports and DNS names; `verdict()` (explain_verdict) reads it. The CLI adds
live checks (DNS query, proxy status, TCP connects) on top.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime

from nanokube.api.explain_pods import container_ports, is_ready, pod_ip, pod_problems, resolve_target_port
from nanokube.api.meta import Obj

# --- the report --------------------------------------------------------------------------------------------

def build_report(svc: Obj, pods: list[Obj], slices: list[Obj], events: list[Obj], nodes: list[Obj],
                 cluster_domain: str = "cluster.local") -> Obj:
    md, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    namespace, name = md.get("namespace") or "default", md.get("name", "")
    selector: dict[str, str] = spec.get("selector") or {}
    matched = [p for p in pods if selector and _matches(selector, p)] if spec.get("type") != "ExternalName" else []
    pod_events = _events_by_pod(events)
    report: Obj = {
        "found": True,
        "service": _service_section(svc, events, nodes),
        "selector": selector,
        "publishNotReadyAddresses": bool(spec.get("publishNotReadyAddresses")),
        "pods": [_pod_entry(p, pod_events.get(p["metadata"]["name"], [])) for p in matched],
        "selectorHints": [] if matched or not selector else _selector_hints(selector, pods),
        "endpointSlices": [_slice_entry(s) for s in slices],
        "dns": {"names": _dns_names(svc, slices, cluster_domain)},
    }
    report["ports"] = [_port_entry(port, matched) for port in spec.get("ports") or []]
    report["namespace"], report["name"] = namespace, name
    return report


def _matches(selector: dict[str, str], pod: Obj) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _service_section(svc: Obj, events: list[Obj], nodes: list[Obj]) -> Obj:
    md, spec, status = svc.get("metadata") or {}, svc.get("spec") or {}, svc.get("status") or {}
    kind = spec.get("type") or "ClusterIP"
    ingress = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    own_events = [e for e in events if (e.get("involvedObject") or {}).get("kind") == "Service"
                  and (e.get("involvedObject") or {}).get("name") == md.get("name")]
    own_events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    section: Obj = {
        "namespace": md.get("namespace"), "name": md.get("name"), "type": kind,
        "clusterIPs": [ip for ip in spec.get("clusterIPs") or [] if ip != "None"],
        "headless": spec.get("clusterIP") == "None",
        "externalName": spec.get("externalName"),
        "externalIPs": spec.get("externalIPs") or [],
        "loadBalancerIngress": ingress,
        "nodeAddresses": _node_addresses(nodes),
        "events": [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
                    "count": e.get("count") or 1, "last": e.get("lastTimestamp") or e.get("eventTime")}
                   for e in own_events[-5:]],
    }
    if kind == "LoadBalancer" and not ingress:
        failed = [e for e in own_events if e.get("reason") == "AllocationFailed"]
        section["loadBalancerPending"] = failed[-1].get("message") if failed else "no address assigned yet"
        section["poolExhausted"] = bool(failed) and "no available" in (failed[-1].get("message") or "")
    return section


def _node_addresses(nodes: list[Obj]) -> list[str]:
    out = []
    for node in nodes:
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") in ("InternalIP", "ExternalIP") and addr.get("address") not in out:
                out.append(addr["address"])
    return out


def _events_by_pod(events: list[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for e in events:
        obj = e.get("involvedObject") or {}
        if obj.get("kind") == "Pod":
            out.setdefault(obj.get("name", ""), []).append(e)
    return out


def _pod_entry(pod: Obj, events: list[Obj]) -> Obj:
    status = pod.get("status") or {}
    ready = is_ready(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")
    return {"name": pod["metadata"]["name"], "ip": pod_ip(pod), "phase": status.get("phase") or "Pending",
            "node": (pod.get("spec") or {}).get("nodeName") or "", "ready": ready,
            "restarts": sum(c.get("restartCount") or 0 for c in status.get("containerStatuses") or []),
            "problems": [] if ready else pod_problems(pod, events),
            "runningSeconds": _running_seconds(status),
            "containerPorts": [{"container": c, "port": n, "name": nm, "protocol": pr}
                               for c, n, nm, pr in container_ports(pod)]}


def _running_seconds(status: Obj) -> float | None:
    """How long the pod's containers have been running (the youngest one), None when none runs."""
    started: list[str | None] = [((c.get("state") or {}).get("running") or {}).get("startedAt") for c in
                                 status.get("containerStatuses") or []]
    stamps = [s for s in started if s]
    if not started or len(stamps) != len(started):
        return None
    newest = max(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
    return round((datetime.now(UTC) - newest).total_seconds(), 1)


def _selector_hints(selector: dict[str, str], pods: list[Obj]) -> list[str]:
    """For a selector that matches nothing: labels of the namespace's pods that come close."""
    hints: list[str] = []
    label_sets = [(p["metadata"]["name"], (p.get("metadata") or {}).get("labels") or {}) for p in pods]
    for key, want in selector.items():
        values = sorted({labels[key] for _n, labels in label_sets if key in labels})
        if values and want not in values:
            close = difflib.get_close_matches(want, values, n=1, cutoff=0.5)
            hints.append(f"pods have {key}={', '.join(values[:5])}, the selector wants {key}={want}"
                         + (f" (did you mean {key}={close[0]}?)" if close else ""))
        elif not values:
            keys = sorted({k for _n, labels in label_sets for k in labels})
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
            hints.append(f"no pod has a label {key!r}" + (f" (did you mean {close[0]}?)" if close else ""))
    if not label_sets:
        hints.append("there are no pods in this namespace")
    return hints


def _slice_entry(eps: Obj) -> Obj:
    ready, not_ready, terminating = [], [], []
    for ep in eps.get("endpoints") or []:
        cond = ep.get("conditions") or {}
        target = (ep.get("targetRef") or {}).get("name") or ep.get("hostname") or ""
        for address in ep.get("addresses") or []:
            entry = f"{address} ({target})" if target else address
            if cond.get("terminating"):
                terminating.append(entry)
            elif cond.get("ready") is False:
                not_ready.append(entry)
            else:
                ready.append(entry)
    ports = [f"{p.get('name') or '<unnamed>'}={p.get('port')}/{p.get('protocol') or 'TCP'}"
             for p in eps.get("ports") or []]
    return {"name": eps["metadata"]["name"], "ready": ready, "notReady": not_ready, "terminating": terminating,
            "ports": ports}


def _port_entry(port: Obj, pods: list[Obj]) -> Obj:
    target = port.get("targetPort", port.get("port"))
    entry: Obj = {"name": port.get("name") or "", "port": port.get("port"), "protocol": port.get("protocol") or "TCP",
                  "targetPort": target, "nodePort": port.get("nodePort"), "pods": [], "problem": None}
    for pod in pods:
        resolved = resolve_target_port(pod, port)
        declared = [n for _c, n, _nm, pr in container_ports(pod) if pr == entry["protocol"]]
        entry["pods"].append({"pod": pod["metadata"]["name"], "ip": pod_ip(pod), "ready": is_ready(pod),
                              "port": resolved, "declared": resolved in declared if resolved else False,
                              "listening": None})
    if isinstance(target, str) and not target.isdigit() and pods:
        missing = [p["pod"] for p in entry["pods"] if p["port"] is None]
        if missing:
            names = sorted({f"{nm} ({n}/{pr})" for pod in pods for _c, n, nm, pr in container_ports(pod) if nm})
            entry["problem"] = (f"targetPort {target!r} matches no containerPort name in {len(missing)} of "
                                f"{len(pods)} pods" + (f"; named ports there: {', '.join(names)}" if names
                                                       else "; their containerPorts have no names"))
    return entry


def _dns_names(svc: Obj, slices: list[Obj], domain: str) -> list[Obj]:
    md, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    name, ns = md.get("name"), md.get("namespace") or "default"
    fqdn = f"{name}.{ns}.svc.{domain}"
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        what = f"CNAME {spec.get('externalName')}"
    elif spec.get("clusterIP") == "None":
        what = "A: the ready pod IPs"
    else:
        what = f"A {', '.join(ip for ip in spec.get('clusterIPs') or [] if ip != 'None')}"
    names: list[Obj] = [{"name": fqdn, "answers": what,
                         "shortForms": [name, f"{name}.{ns}", f"{name}.{ns}.svc"]}]
    if kind != "ExternalName":
        for port in spec.get("ports") or []:
            if port.get("name"):
                proto = (port.get("protocol") or "TCP").lower()
                names.append({"name": f"_{port['name']}._{proto}.{fqdn}", "answers": f"SRV port {port.get('port')}"})
    if spec.get("clusterIP") == "None":
        for eps in slices:
            for ep in eps.get("endpoints") or []:
                if ep.get("hostname") and ep.get("addresses"):
                    names.append({"name": f"{ep['hostname']}.{fqdn}", "answers": f"A {ep['addresses'][0]}"})
    return names
