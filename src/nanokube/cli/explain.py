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
from nanokube.api.explain_report import build_report
from nanokube.api.explain_verdict import verdict
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.cli import explain_checks as checks
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
                          events_list.get("items") or [], nodes_list.get("items") or [], options.cluster_domain)
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
