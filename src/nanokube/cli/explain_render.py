"""The one-screen text form of an explain report."""

from __future__ import annotations

from typing import Any

from nanokube.api.meta import Obj


def render(r: Obj) -> str:
    lines: list[str] = []
    add = lines.append
    svc = r["service"]
    if not r.get("found"):
        add(f"Service {svc['namespace']}/{svc['name']}: not found")
        if r.get("existing"):
            add(f"  Services in {svc['namespace']}: {', '.join(r['existing'][:12])}")
        return _with_verdict(lines, r["verdict"])
    add(f"Service {svc['namespace']}/{svc['name']}  type {svc['type']}")
    _addresses(r, add)
    if svc["type"] != "ExternalName":
        _backends(r, add)
        _ports(r, add)
    _dns(r, add)
    _proxy(r, add)
    if svc["events"]:
        add("Events")
        for e in svc["events"]:
            count = f" (x{e['count']})" if e.get("count", 1) > 1 else ""
            add(f"  {e['type']:<8} {e['reason']}: {e['message']}{count}")
    return _with_verdict(lines, r["verdict"])


def _with_verdict(lines: list[str], v: Obj) -> str:
    lines.append(f"Verdict: {'OK' if v['ok'] else 'PROBLEM'} [{v['code']}] {v['message']}")
    if v.get("fix"):
        lines.append(f"  fix: {v['fix']}")
    return "\n".join(lines) + "\n"


def _port_text(p: Obj) -> str:
    name = f"{p['name']} " if p["name"] else ""
    node = f" nodePort {p['nodePort']}" if p.get("nodePort") else ""
    return f"{name}{p['port']}/{p['protocol']} -> targetPort {p['targetPort']}{node}"


def _addresses(r: Obj, add: Any) -> None:
    svc = r["service"]
    if svc["type"] == "ExternalName":
        add(f"  external name  {svc['externalName']}  (DNS CNAME only: no cluster IP, no proxying)")
        return
    add(f"  cluster IP     {'None (headless: no virtual IP)' if svc['headless'] else ', '.join(svc['clusterIPs'])}")
    node_ports = [p for p in r["ports"] if p.get("nodePort")]
    if node_ports:
        nodes = svc["nodeAddresses"] or ["<node address>"]
        add("  node ports     " + ", ".join(f"{n}:{p['nodePort']}/{p['protocol']}" for p in node_ports
                                           for n in nodes[:2]))
    if svc["type"] == "LoadBalancer":
        if svc["loadBalancerIngress"]:
            add("  load balancer  " + ", ".join(f"{ip}:{p['port']}" for ip in svc["loadBalancerIngress"]
                                               for p in r["ports"]))
        else:
            add(f"  load balancer  <pending>: {svc.get('loadBalancerPending')}")
    if svc["externalIPs"]:
        add(f"  external IPs   {', '.join(svc['externalIPs'])}")


def _backends(r: Obj, add: Any) -> None:
    sel = ",".join(f"{k}={v}" for k, v in r["selector"].items())
    if not sel:
        add("Selector: none (endpoints are managed by hand)")
    else:
        ready = sum(1 for p in r["pods"] if p["ready"])
        add(f"Selector {sel} -> {len(r['pods'])} pod(s), {ready} ready")
        for hint in r.get("selectorHints") or []:
            add(f"  ! {hint}")
    for p in r["pods"]:
        state = "ready" if p["ready"] else "NOT READY"
        restarts = f" restarts={p['restarts']}" if p["restarts"] else ""
        add(f"  {state:<9} {p['name']}  {p['ip'] or '<no IP>'}  {p['phase']}{restarts}")
        for problem in p["problems"][:3]:
            add(f"            - {problem}")
    if r["endpointSlices"]:
        add("EndpointSlices")
        for s in r["endpointSlices"]:
            parts = [f"ready: {', '.join(s['ready']) or '-'}"]
            if s["notReady"]:
                parts.append(f"not ready: {', '.join(s['notReady'])}")
            if s["terminating"]:
                parts.append(f"terminating: {', '.join(s['terminating'])}")
            add(f"  {s['name']}  ports {', '.join(s['ports']) or '-'}  " + "; ".join(parts))
    else:
        add("EndpointSlices: none")


def _ports(r: Obj, add: Any) -> None:
    if not r["ports"]:
        return
    add("Ports")
    for p in r["ports"]:
        add(f"  {_port_text(p)}")
        for e in p["pods"][:6]:
            if e["port"] is None:
                where = "no such named port"
            else:
                listening = {True: "listening", False: "NOTHING LISTENING", None: "not checked"}[e["listening"]]
                declared = "" if e["declared"] else " (not a declared containerPort)"
                where = f"{e['ip']}:{e['port']} {listening}{declared}"
            add(f"    {e['pod']}: {where}")
        if p["problem"]:
            add(f"    ! {p['problem']}")


def _dns(r: Obj, add: Any) -> None:
    d = r["dns"]
    add("DNS" + (f" (server {d['server']})" if d.get("server") else " (no kube-dns endpoint found)"))
    first = d["names"][0]
    add(f"  {first['name']} -> {first['answers']}")
    add(f"    from pods in {r['namespace']} also: {', '.join(first['shortForms'])}")
    for n in d["names"][1:6]:
        add(f"  {n['name']} -> {n['answers']}")
    q = d.get("query")
    if q:
        if q.get("error"):
            add(f"  query {q['type']} {q['name']}: no answer ({q['error']})")
        else:
            add(f"  query {q['type']} {q['name']}: {q['rcode']} {'; '.join(q['answers']) or '(empty)'} "
                f"in {q['ms']} ms")


def _proxy(r: Obj, add: Any) -> None:
    p = r.get("proxy") or {}
    svc = r["service"]
    if not p.get("available"):
        add(f"Proxy: status unknown ({p.get('error', 'not checked')})")
    elif not p.get("programmed"):
        if svc["type"] == "ExternalName" or svc["headless"]:
            add("Proxy: not proxied (nothing to program for this type)")
        else:
            add("Proxy: this Service is NOT programmed")
    else:
        add(f"Proxy ({p.get('mode') or '?'}): programmed at {p['programmedAt']} ({p['secondsAgo']} s ago), "
            f"{len(p['endpoints'])} endpoint(s)")
        for f in p["frontends"][:6]:
            empty = f" (no endpoints: {f['noEndpoints']})" if f["noEndpoints"] else ""
            error = f"  NOT SERVED: {f['error']}" if f.get("error") else ""
            add(f"  {f['kind']:<9} {f['address']} -> {f['endpoints']} endpoint(s){empty}{error}")
