"""The one-line verdict of `nanokube explain service`: the most likely reason it can't be reached, and the fix.

Checks run in the order traffic needs them: the Service exists, it has backends (selector -> pods -> ready),
the port lands on something, an external address exists, the proxy has programmed it.
"""

from __future__ import annotations

from nanokube.api.meta import Obj
from nanokube.api.privileged_ports import REMEDIES


def _v(ok: bool, code: str, message: str, fix: str = "") -> Obj:
    return {"ok": ok, "code": code, "message": message, "fix": fix}


def verdict(r: Obj) -> Obj:
    if not r.get("found"):
        svc = r["service"]
        similar = f" Did you mean {', '.join(r['similar'])}?" if r.get("similar") else ""
        return _v(False, "service-not-found", f"no Service {svc['name']!r} in namespace {svc['namespace']!r}."
                  + similar, "kubectl get svc -A  (or pass -n NAMESPACE)")
    svc = r["service"]
    name = svc["name"]
    if svc["type"] == "ExternalName":
        return _external_name(r)
    problem = _backends(r)
    if problem:
        return problem
    ports = [p for p in r["ports"] if p["problem"]]
    if ports:
        p = ports[0]
        early = p.get("notListeningYet")
        if early:
            since = f" (running for {early['runningSeconds']:.0f}s)" if early.get("runningSeconds") is not None \
                else ""
            return _v(False, "not-listening-yet", f"port {p['port']}: nothing listens on targetPort "
                      f"{p['targetPort']} yet; it is the containerPort the pods declare, so the process has not "
                      f"opened it yet{since}.",
                      f"wait for the app to start, or see why it does not: kubectl logs {early['pod']}")
        declared = sorted({c["port"] for pod in r["pods"] for c in pod["containerPorts"]})
        hint = f"one of the pods' containerPorts ({', '.join(map(str, declared))})" if declared else "the port the app listens on"
        return _v(False, "target-port-wrong", f"port {p['port']}: {p['problem']}.",
                  f"set targetPort of port {p['port']} to {hint}: kubectl edit svc {name}")
    if svc["type"] == "LoadBalancer" and not svc["loadBalancerIngress"]:
        why = svc.get("loadBalancerPending") or "no address assigned yet"
        if svc.get("poolExhausted"):
            return _v(False, "lb-pool-exhausted", f"LoadBalancer pending: no LB address left in the pool ({why}).",
                      "delete another LoadBalancer Service or restart `nanokube server` with a larger --lb-pool")
        return _v(False, "lb-pending", f"LoadBalancer pending: {why}.",
                  "check that `nanokube server` runs its controllers (--components includes controllers)")
    proxy = r.get("proxy") or {}
    if proxy.get("available") and not svc["headless"]:
        if not proxy.get("programmed"):
            return _v(False, "not-programmed", "the proxy has not programmed this Service (yet).",
                      "check the proxy in the `nanokube server` log")
        taken = [f for f in proxy.get("frontends") or [] if f.get("error")]
        privileged = [f for f in taken if f.get("reason") == "privileged-port"]
        if privileged:
            f = privileged[0]
            return _v(False, "privileged-port", f"the proxy cannot serve {f['kind']} address {f['address']}: "
                      f"{f['error']} (loopback mode run by a user; nothing else holds the port).", REMEDIES)
        if taken:
            f = taken[0]
            return _v(False, "port-taken", f"the proxy cannot serve {f['kind']} address {f['address']}: {f['error']} "
                      "(another process holds that port; the proxy retries on every sync).",
                      f"find it: ss -ltnp 'sport = :{f['address'].rpartition(':')[2]}'  and stop it, "
                      "or change the Service's port/nodePort")
        if _ready_endpoints(r) and not proxy.get("endpoints"):
            return _v(False, "not-programmed", "the proxy has programmed this Service without its ready endpoints "
                      "(yet).", "check the proxy in the `nanokube server` log")
    ready = _ready_endpoints(r)
    not_ready = [p for p in r["pods"] if not p["ready"]]
    partial = f"; {len(not_ready)} of {len(r['pods'])} pods not ready" if not_ready else ""
    if svc["headless"]:
        return _v(True, "headless", f"headless Service: no virtual IP and no proxying; {r['dns']['names'][0]['name']} "
                  f"resolves straight to the {len(ready)} ready pod IP(s){partial}.",
                  "" if not not_ready else f"kubectl describe pod {not_ready[0]['name']}")
    return _v(True, "reachable", f"{len(ready)} ready endpoint(s) behind {', '.join(_addresses(r))}{partial}.",
              "" if not not_ready else f"kubectl describe pod {not_ready[0]['name']}")


def _external_name(r: Obj) -> Obj:
    svc = r["service"]
    fqdn = r["dns"]["names"][0]["name"]
    query = (r.get("dns") or {}).get("query") or {}
    msg = (f"ExternalName: DNS only. {fqdn} is a CNAME to {svc['externalName']}; there is no virtual IP, "
           "no proxying, and ports are not used")
    if query.get("error") or (query and not query.get("answers")):
        return _v(False, "external-name-dns", msg + f"; but the cluster DNS did not answer the CNAME "
                  f"({query.get('error') or query.get('rcode')}).", "check the cluster DNS (`nanokube server` log)")
    return _v(True, "external-name", msg + ".", "clients must resolve the name through the cluster DNS; "
              "TLS/HTTP Host checks see the Service name, not the external name")


def _backends(r: Obj) -> Obj | None:
    name = r["service"]["name"]
    selector = r["selector"]
    if not selector:
        if _ready_endpoints(r):
            return None
        return _v(False, "no-selector-no-endpoints", "the Service has no selector and no ready endpoints in its "
                  "EndpointSlices.", f"add a selector, or create an EndpointSlice labelled "
                  f"kubernetes.io/service-name={name}")
    sel = ",".join(f"{k}={v}" for k, v in selector.items())
    if not r["pods"]:
        hints = "; ".join(r.get("selectorHints") or [])
        return _v(False, "selector-matches-no-pod", f"selector {sel} matches no pod" + (f": {hints}." if hints else "."),
                  f"fix the selector (kubectl edit svc {name}) or the pod template labels")
    ready = [p for p in r["pods"] if p["ready"]]
    if not ready and not r.get("publishNotReadyAddresses"):
        first = r["pods"][0]
        why = first["problems"][0] if first["problems"] else "not ready"
        return _v(False, "pods-not-ready", f"none of the {len(r['pods'])} pod(s) matching {sel} is ready "
                  f"({first['name']}: {why}).", _pod_fix(first))
    if ready and not _ready_endpoints(r):
        return _v(False, "endpoints-missing", f"{len(ready)} pod(s) are ready but no EndpointSlice lists them yet.",
                  "check that `nanokube server` runs its controllers")
    return None


def _pod_fix(pod: Obj) -> str:
    text = " ".join(pod["problems"])
    if "CrashLoopBackOff" in text or "terminated" in text:
        return f"kubectl logs --previous {pod['name']}"
    if "readiness probe" in text or "startup probe" in text:
        return f"check what the probe asks for (kubectl describe pod {pod['name']}) and kubectl logs {pod['name']}"
    if "not scheduled" in text:
        return "check the nodes: kubectl get nodes"
    return f"kubectl describe pod {pod['name']}"


def _ready_endpoints(r: Obj) -> list[str]:
    return [a for s in r["endpointSlices"] for a in s["ready"]]


def _addresses(r: Obj) -> list[str]:
    svc = r["service"]
    out = []
    for p in r["ports"]:
        out += [f"{ip}:{p['port']}" for ip in svc["clusterIPs"]]
        if p.get("nodePort"):
            out += [f"{node}:{p['nodePort']}" for node in svc["nodeAddresses"][:1]]
        out += [f"{ip}:{p['port']}" for ip in svc["loadBalancerIngress"] + svc["externalIPs"]]
    return out
