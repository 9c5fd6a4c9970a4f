"""`nanokube explain ingress NAME --url URL`: which rule of the Ingress a URL hits, which Service and endpoints
it goes to, and why not when it does not. Reads the API only and applies the controller's own matching."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.cli.explain_output import fetch_report, print_report
from nanokube.cli.kubeconfig import context_namespace, default_kubeconfig
from nanokube.client import ApiClient
from nanokube.ingress.classes import is_ours
from nanokube.ingress.routes import BackendResolver, build_hosts, match


async def explain_ingress(client: ApiClient, namespace: str, name: str, url: str) -> Obj:
    ingress = await client.get(by_kind("networking.k8s.io", "Ingress"), name, namespace)
    classes = (await client.list(by_kind("networking.k8s.io", "IngressClass")))["items"]
    services = {f"{namespace}/{s['metadata']['name']}": s
                for s in (await client.list(by_kind("", "Service"), namespace))["items"]}
    slices: dict[str, list[Obj]] = {}
    for eps in (await client.list(by_kind("discovery.k8s.io", "EndpointSlice"), namespace))["items"]:
        service = (eps["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if service:
            slices.setdefault(f"{namespace}/{service}", []).append(eps)
    parts = urlsplit(url if "://" in url else "http://" + url)
    host, path = (parts.hostname or ""), (parts.path or "/")
    address = [e.get("ip") or e.get("hostname") for e in
               ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    report: Obj = {"ingress": f"{namespace}/{name}", "class": (ingress.get("spec") or {}).get("ingressClassName"),
                   "address": address, "url": {"host": host, "path": path}, "rule": None, "backend": None}
    if not is_ours(ingress, classes):
        report["verdict"] = {"ok": False, "why": f"ingress class {report['class']!r} is not served by nanokube's "
                                                 "controller (nanokube.io/ingress-nginx): the Ingress is ignored"}
        return report
    vhost, route = match(build_hosts([ingress], BackendResolver(services, slices)), host, path)
    backend = route.backend if route else vhost.fallback
    if route is not None:
        report["rule"] = {"host": vhost.host or "*", "path": route.path,
                          "pathType": "Exact" if route.exact else "Prefix"}
    if backend is None:
        hosts = sorted({h.host or "*" for h in build_hosts([ingress], BackendResolver(services, slices))})
        report["verdict"] = {"ok": False, "why": f"no rule matches host {host!r} path {path!r} and there is no "
                                                 f"defaultBackend: nginx answers 404 (hosts: {', '.join(hosts)})"}
        return report
    report["backend"] = {"service": backend.service, "port": backend.port, "endpoints": backend.servers,
                         "via": "rule" if route else "defaultBackend"}
    if backend.problem:
        report["verdict"] = {"ok": False, "why": backend.problem + (": nginx answers 503" if "endpoints" in
                                                                     backend.problem else "")}
    else:
        report["verdict"] = {"ok": True, "why": f"served by {len(backend.servers)} endpoint(s)"}
    return report


def render_text(report: Obj) -> str:
    lines = [f"Ingress {report['ingress']}  class={report['class'] or '<default>'}  "
             f"address={','.join(a for a in report['address'] if a) or '<pending>'}",
             f"URL     host={report['url']['host']} path={report['url']['path']}"]
    if report["rule"]:
        r = report["rule"]
        lines.append(f"Rule    host={r['host']} path={r['path']} ({r['pathType']})")
    if report["backend"]:
        b = report["backend"]
        lines.append(f"Backend service={b['service']} port={b['port']} (by {b['via']})")
        lines.append(f"Endpoints {', '.join(b['endpoints']) or '<none>'}")
    verdict = report["verdict"]
    lines.append(("OK      " if verdict["ok"] else "PROBLEM ") + verdict["why"])
    return "\n".join(lines) + "\n"


def run_explain_ingress(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig or default_kubeconfig()
    namespace = args.namespace or context_namespace(kubeconfig)
    if not args.url:
        print("nanokube: explain ingress needs --url URL (e.g. http://a.example.test/api)", file=sys.stderr)
        return 2

    report = fetch_report(kubeconfig, lambda client: explain_ingress(client, namespace, args.name, args.url))
    return 2 if report is None else print_report(report, args.output, render_text)
