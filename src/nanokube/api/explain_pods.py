"""Reading pods for `nanokube explain`: why a pod is not ready, and where a Service port lands in it."""

from __future__ import annotations

from nanokube.api.meta import Obj
from nanokube.api.pods import find_port


def _status(pod: Obj) -> Obj:
    return pod.get("status") or {}


def _condition(pod: Obj, ctype: str) -> Obj | None:
    return next((c for c in _status(pod).get("conditions") or [] if c.get("type") == ctype), None)


def pod_ip(pod: Obj) -> str:
    return _status(pod).get("podIP") or ""


def is_ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def describe_probe(probe: Obj) -> str:
    """`httpGet :8080/healthz`, `tcpSocket :3306`, `exec [cat /tmp/ready]`, `grpc :9000`."""
    if "httpGet" in probe:
        h = probe["httpGet"]
        return f"httpGet {h.get('scheme', 'HTTP').lower()}://{h.get('host') or ''}:{h.get('port')}{h.get('path', '/')}"
    if "tcpSocket" in probe:
        return f"tcpSocket :{probe['tcpSocket'].get('port')}"
    if "exec" in probe:
        return f"exec {probe['exec'].get('command') or []}"
    if "grpc" in probe:
        return f"grpc :{probe['grpc'].get('port')}"
    return "probe"


def _container_problem(spec: Obj | None, status: Obj) -> str | None:
    name = status.get("name", "?")
    state = status.get("state") or {}
    restarts = status.get("restartCount") or 0
    again = f" (restarted {restarts}x)" if restarts else ""
    if "waiting" in state:
        w = state["waiting"]
        reason = w.get("reason") or "Waiting"
        last = (status.get("lastState") or {}).get("terminated")
        detail = w.get("message") or ""
        if not detail and last:
            detail = f"last exit code {last.get('exitCode')}" + (f" ({last['reason']})" if last.get("reason") else "")
        return f"container {name} waiting: {reason}" + (f": {detail}" if detail else "") + again
    if "terminated" in state:
        t = state["terminated"]
        return (f"container {name} terminated: {t.get('reason') or 'exit'} (exit code {t.get('exitCode')})"
                + (f": {t['message']}" if t.get("message") else "") + again)
    if status.get("ready"):
        return None
    if status.get("started") is False and spec and spec.get("startupProbe"):
        return f"container {name} running, startup probe not passed yet: {describe_probe(spec['startupProbe'])}"
    if spec and spec.get("readinessProbe"):
        return f"container {name} running, readiness probe failing: {describe_probe(spec['readinessProbe'])}" + again
    return f"container {name} running but not ready" + again


def pod_problems(pod: Obj, events: list[Obj] = ()) -> list[str]:  # type: ignore[assignment]
    """Why the pod is not ready, most specific first; empty when it is ready."""
    md = pod.get("metadata") or {}
    status = _status(pod)
    out: list[str] = []
    if md.get("deletionTimestamp"):
        out.append("terminating (being deleted)")
    phase = status.get("phase") or "Pending"
    if phase in ("Succeeded", "Failed"):
        out.append(f"phase {phase}" + (f": {status['reason']}" if status.get("reason") else ""))
    scheduled = _condition(pod, "PodScheduled")
    if not (pod.get("spec") or {}).get("nodeName"):
        why = (scheduled or {}).get("message") or "no node assigned yet"
        out.append(f"not scheduled: {why}")
    specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    init_specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("initContainers") or []}
    for st in status.get("initContainerStatuses") or []:
        problem = _container_problem(init_specs.get(st.get("name")), st)
        if problem and not ((st.get("state") or {}).get("terminated") or {}).get("exitCode") == 0:
            out.append("init " + problem)
    for st in status.get("containerStatuses") or []:
        problem = _container_problem(specs.get(st.get("name")), st)
        if problem:
            out.append(problem)
    for ev in events:
        if ev.get("type") == "Warning" and ev.get("reason") in ("Unhealthy", "Failed", "BackOff", "FailedMount"):
            out.append(f"event {ev.get('reason')}: {ev.get('message', '')}")
    if not out and not is_ready(pod):
        ready = _condition(pod, "Ready") or {}
        out.append("not ready" + (f": {ready.get('reason')}" if ready.get("reason") else "")
                   + (f" ({ready['message']})" if ready.get("message") else ""))
    return out


def container_ports(pod: Obj) -> list[tuple[str, int, str, str]]:
    """(container, containerPort, name, protocol) of every declared port, sidecars included."""
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return [(c.get("name", ""), int(p.get("containerPort", 0)), p.get("name") or "", p.get("protocol") or "TCP")
            for c in (spec.get("containers") or []) + sidecars for p in c.get("ports") or []]


def resolve_target_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod port a Service port sends to (as Kubernetes' FindPort); None when a named port is missing."""
    return find_port(pod, service_port)
