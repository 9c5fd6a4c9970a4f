"""Pure readers of Pod objects shared by the controllers and `nanokube explain`."""

from __future__ import annotations

from nanokube.api.meta import Obj


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """Resolve a Service port's targetPort against a pod (Kubernetes' podutil.FindPort): a number is itself;
    a name is the first container port (regular containers, then restartable init containers) with that
    name and the Service port's protocol; None when no such port exists."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec", {})
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in (spec.get("containers") or []) + sidecars:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None
