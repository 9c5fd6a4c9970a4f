"""securityContext.runAsUser/runAsGroup against the user ids this node can use.

A rootless node maps one id (the user who started it, as root inside): no other uid exists there, so a
container that asks for one is refused with a clear status instead of silently running as root.
"""

from __future__ import annotations

from pathlib import Path

from nanokube.agent.envvars import ContainerConfigError
from nanokube.api.meta import Obj


def mapped_ranges(kind: str = "uid") -> list[tuple[int, int]]:
    """(first id inside, count) of each line of /proc/self/{uid,gid}_map."""
    try:
        lines = Path(f"/proc/self/{kind}_map").read_text().splitlines()
    except OSError:
        return [(0, 1 << 32)]
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            out.append((int(parts[0]), int(parts[2])))
    return out


def is_mapped(value: int, ranges: list[tuple[int, int]]) -> bool:
    return any(first <= value < first + count for first, count in ranges)


def refuse_unmapped_ids(pod: Obj, container: Obj) -> None:
    """Raise ContainerConfigError when the container asks (runAsUser/runAsGroup, the container's
    securityContext over the pod's) for an id this node's user namespace lacks."""
    pod_ctx = (pod.get("spec") or {}).get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    for field, kind in (("runAsUser", "uid"), ("runAsGroup", "gid")):
        value = ctx.get(field, pod_ctx.get(field))
        if value is None or is_mapped(int(value), mapped_ranges(kind)):
            continue
        raise ContainerConfigError(
            f"{field} {value}: this rootless node has one {kind} (yours, root inside its user namespace), so it "
            f"cannot run a container as {kind} {value}; give the user subordinate ids (/etc/subuid, /etc/subgid) "
            f"and install newuidmap (Debian: uidmap), or drop {field}")
