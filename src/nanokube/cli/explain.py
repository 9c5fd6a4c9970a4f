"""`nanokube explain service NAME`: why can't I reach my Service? Gathers, checks and builds the report.

The report is a plain JSON-able dict (printed as is by `-o json`); explain_render turns it into one screen
and explain_verdict picks the one-line verdict. Only nanokube.client / nanokube.api talk to the cluster.
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nanokube.api.endpointslices import LABEL_SERVICE_NAME as SERVICE_NAME_LABEL
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.cli import explain_checks as checks
from nanokube.cli.explain_pods import container_ports, is_ready, pod_ip, pod_problems, resolve_target_port
from nanokube.cli.explain_verdict import verdict
from nanokube.client import ApiClient

SERVICES = by_kind("", "Service")
PODS = by_kind("", "Pod")
NODES = by_kind("", "Node")
EVENTS = by_kind("", "Event")
SLICES = by_kind("discovery.k8s.io", "EndpointSlice")
MAX_PORT_CHECKS = 32


@dataclass
class ExplainOptions:
    cluster_domain: str = "cluster.local"
    proxy_status_url: str = checks.DEFAULT_PROXY_STATUS
    timeout: float = 1.0
    live_checks: bool = True  # DNS query, proxy status, TCP connects to pod ports
    proxy_status_socket: str | None = None  # the proxy's 0600 status socket (DATA_DIR/proxy.sock), tried first


async def explain_service(client: ApiClient, namespace: str, name: str, options: ExplainOptions) -> Obj:
    try:
        svc = await client.get(SERVICES, name, namespace)
    except ApiError as err:
        if err.code != 404:
            raise
        return await _not_found(client, namespace, name)
    proxy_task = asyncio.ensure_future(checks.proxy_status(options.proxy_status_url, options.timeout,
                                                           token=client.token, socket=options.proxy_status_socket)
                                       if options.live_checks else _none())
    try:
        pods_list, slices_list, events_list, nodes_list, dns_slices = await asyncio.gather(
            client.list(PODS, namespace), client.list(SLICES, namespace, label_selector=f"{SERVICE_NAME_LABEL}={name}"),
            client.list(EVENTS, namespace), client.list(NODES),
            client.list(SLICES, "kube-system", label_selector=f"{SERVICE_NAME_LABEL}=kube-dns"))
        proxy = await proxy_task
    finally:
        proxy_task.cancel()
    report = build_report(svc, pods_list.get("items") or [], slices_list.get("items") or [],
                          events_list.get("items") or [], nodes_list.get("items") or [], options)
    report["proxy"] = _proxy_section(report, proxy, options)
    dns_server = _dns_server(dns_slices.get("items") or [])
    report["dns"]["server"] = f"{dns_server[0]}:{dns_server[1]}" if dns_server else None
    if options.live_checks:
        await _live_checks(report, dns_server, options)
    report["verdict"] = verdict(report)
    return report


async def _none() -> Obj:
    return {"error": "live checks disabled"}


async def _not_found(client: ApiClient, namespace: str, name: str) -> Obj:
    names = [s["metadata"]["name"] for s in (await client.list(SERVICES, namespace)).get("items") or []]
    report: Obj = {"found": False, "service": {"namespace": namespace, "name": name},
                   "similar": difflib.get_close_matches(name, names, n=3, cutoff=0.5), "existing": sorted(names)}
    report["verdict"] = verdict(report)
    return report


# --- the report --------------------------------------------------------------------------------------------

def build_report(svc: Obj, pods: list[Obj], slices: list[Obj], events: list[Obj], nodes: list[Obj],
                 options: ExplainOptions) -> Obj:
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
        "dns": {"names": _dns_names(svc, slices, options.cluster_domain)},
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
    started = [((c.get("state") or {}).get("running") or {}).get("startedAt") for c in
               status.get("containerStatuses") or []]
    if not started or not all(started):
        return None
    newest = max(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in started)
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


def _proxy_section(report: Obj, proxy: Obj, options: ExplainOptions) -> Obj:
    key = f"{report['namespace']}/{report['name']}"
    out: Obj = {"available": False, "url": options.proxy_status_url}
    if "error" in proxy:
        return {**out, "error": proxy["error"]}
    node_ips = proxy.get("nodeIPs") or []
    if node_ips and not set(node_ips) & set(report["service"]["nodeAddresses"]):
        return {**out, "error": f"the proxy there serves another cluster (node IPs {', '.join(node_ips)})"}
    out.update(available=True, mode=proxy.get("mode"), programmed=False)
    state = (proxy.get("services") or {}).get(key)
    if not isinstance(state, dict):
        return out
    at = checks.programmed_time(state.get("programmed_at"))
    ports = state.get("ports")
    endpoints = state.get("endpoints")
    out.update(programmed=bool(ports), programmedAt=at.isoformat(timespec="milliseconds") if at else None,
               secondsAgo=round((datetime.now(UTC) - at).total_seconds(), 1) if at else None,
               endpoints=endpoints if isinstance(endpoints, list) else [],
               frontends=[{"address": f.get("address"), "kind": f.get("kind"), "endpoints": len(f.get("endpoints") or []),
                           "noEndpoints": f.get("noEndpoints") or "", "error": f.get("error") or "",
                           **({"reason": f["reason"]} if f.get("reason") else {})}
                          for p in (ports if isinstance(ports, list) else []) for f in p.get("frontends") or []])
    return out


def _dns_server(kube_dns_slices: list[Obj]) -> tuple[str, int] | None:
    for eps in kube_dns_slices:
        port = next((p.get("port") for p in eps.get("ports") or [] if (p.get("protocol") or "TCP") == "UDP"), 53)
        for ep in eps.get("endpoints") or []:
            if ep.get("addresses"):
                return ep["addresses"][0], int(port or 53)
    return None


async def _live_checks(report: Obj, dns_server: tuple[str, int] | None, options: ExplainOptions) -> None:
    jobs: list[Any] = []
    checked: list[Obj] = []
    for port in report["ports"]:
        if port["protocol"] != "TCP":
            continue
        for entry in port["pods"]:
            if entry["ip"] and entry["port"] and len(jobs) < MAX_PORT_CHECKS:
                jobs.append(checks.tcp_listening(entry["ip"], entry["port"], options.timeout))
                checked.append(entry)
    if dns_server:
        svc = report["service"]
        rdtype = "CNAME" if svc["type"] == "ExternalName" else "A"
        jobs.append(checks.dns_query(dns_server[0], dns_server[1], report["dns"]["names"][0]["name"], rdtype,
                                     options.timeout))
    results = await asyncio.gather(*jobs)
    for entry, listening in zip(checked, results, strict=False):
        entry["listening"] = listening
    if dns_server:
        report["dns"]["query"] = results[-1]
    for port in report["ports"]:
        ready = [p for p in port["pods"] if p["ready"] and p["port"]]
        if port["problem"] is None and ready and all(p["listening"] is False for p in ready):
            declared = sorted({c["port"] for pod in report["pods"] for c in pod["containerPorts"]})
            if all(p["declared"] for p in ready):
                # the port is the one the pods declare: the app has not opened it (yet), the Service is right
                by_name = {pod["name"]: pod for pod in report["pods"]}
                running = [s for p in ready if (s := (by_name.get(p["pod"]) or {}).get("runningSeconds")) is not None]
                port["notListeningYet"] = {"port": ready[0]["port"], "runningSeconds": min(running) if running
                                           else None, "pod": ready[0]["pod"]}
                port["problem"] = f"nothing listens on targetPort {port['targetPort']} yet"
                continue
            port["problem"] = (f"nothing listens on targetPort {port['targetPort']} in the ready pods"
                               + (f" (they declare containerPort {', '.join(map(str, declared))})" if declared
                                  else ""))
