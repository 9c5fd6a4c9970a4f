"""The agent's use of cgroups for pods: a cgroup per container run (limits from its resources) under one per
pod, removed when the pod goes; and the pod's QoS class, as the kubelet computes it."""

from __future__ import annotations

import logging

from nanokube.agent.cgroups import Cgroup, Limits
from nanokube.agent.container import ContainerRun
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.api.meta import Obj
from nanokube.api.quantity import parse_quantity

log = logging.getLogger(__name__)
POD_PIDS_LIMIT = 4096  # the kubelet's podPidsLimit is unlimited by default; this keeps a fork bomb on the pod


def pod_dir(uid: str) -> str:
    return f"pod{uid}"


def container_cgroup(rt: NodeRuntime, pod: Obj, c: ContainerRun) -> Cgroup | None:
    driver = rt.cgroups
    if driver is None or not driver.enabled:
        return None
    uid = pod["metadata"]["uid"]
    if driver.create(pod_dir(uid)) is None:
        return None
    group = driver.create(pod_dir(uid), c.name)
    if group is None:
        return None
    try:
        group.apply(Limits.of(c.spec, pids=POD_PIDS_LIMIT))
    except ValueError as err:  # an unparsable quantity: validation's job, run unlimited rather than fail
        log.warning("pod %s container %s: resources: %s", pod["metadata"].get("name"), c.name, err)
    return group


async def remove_pod_cgroup(rt: NodeRuntime, uid: str) -> None:
    driver = rt.cgroups
    if driver is None or not driver.enabled:
        return
    group = driver.cgroup(pod_dir(uid))
    group.kill()
    group.remove_soon()


def qos_class(pod: Obj) -> str:
    """Guaranteed: every container limits cpu and memory and requests equal them; BestEffort: no container
    requests or limits anything; Burstable otherwise (init containers count too)."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, list[str]] = {}
    limits: dict[str, list[str]] = {}
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        lim = {k: str(v) for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        req = {k: str(v) for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        for k, v in req.items():
            requests.setdefault(k, []).append(v)
        for k, v in lim.items():
            limits.setdefault(k, []).append(v)
        if set(lim) != {"cpu", "memory"} or any(
                parse_quantity(req.get(k, lim[k])) != parse_quantity(lim[k]) for k in lim):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
