"""What a failing test's report shows about its cluster: recent events, the pods that are not ready (their
state and log tails) and the tail of the server's log. Never raises: a report about a broken cluster is the
point."""

from __future__ import annotations

import json
from typing import Any

from nanokube.testing.cluster import Cluster, ClusterError


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _unready(pod: dict[str, Any]) -> str | None:
    """Why a pod is not ready ("" for a pod that is fine), in `kubectl describe` words."""
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return None
    reasons = []
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for kind in ("waiting", "terminated"):
            if kind in state:
                detail = state[kind]
                reasons.append(f"{cs['name']} {kind}: {detail.get('reason', '')} {detail.get('message', '')}".strip())
        if cs.get("restartCount"):
            reasons.append(f"{cs['name']} restarted {cs['restartCount']} times")
    ready = {c.get("type"): c.get("status") for c in status.get("conditions") or []}.get("Ready")
    if phase == "Running" and ready == "True" and not reasons:
        return None
    return f"phase {phase}, Ready {ready or '-'}" + (f"; {'; '.join(reasons)}" if reasons else "")


def failure_report(cluster: Cluster, namespace: str | None, lines: int = 40) -> str:
    parts = []
    try:
        events = cluster.events(namespace).strip()
        where = namespace or "all namespaces"
        if not events and namespace:  # nothing in the test's namespace: what happened elsewhere may explain it
            events, where = cluster.events().strip(), f"none in {namespace}; all namespaces"
        parts.append(f"--- events ({where}, newest last) ---\n{_tail(events, lines) or '(none)'}")
    except (ClusterError, OSError) as exc:
        parts.append(f"--- events: unavailable: {exc}")
    try:
        scope = ["-n", namespace] if namespace else ["-A"]
        pods = json.loads(cluster.kubectl("get", "pods", *scope, "-o", "json").stdout).get("items") or []
    except (ClusterError, OSError, ValueError) as exc:
        pods = []
        parts.append(f"--- pods: unavailable: {exc}")
    for pod in pods:
        why = _unready(pod)
        if why is None:
            continue
        ns, name = pod["metadata"].get("namespace", "default"), pod["metadata"]["name"]
        proc = cluster.kubectl("logs", name, "-n", ns, "--all-containers", "--prefix", f"--tail={lines}",
                               check=False)
        log = proc.stdout if proc.returncode == 0 else proc.stderr
        parts.append(f"--- pod {ns}/{name} not ready: {why} ---\n{_tail(log, lines) or '(no log)'}")
    parts.append(f"--- server log ({cluster.log_path}), last {lines} lines ---\n{cluster.server_log(lines)}")
    return "\n".join(parts)
