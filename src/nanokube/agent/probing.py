"""A running container's probers (startup first; then readiness and liveness) and what their results do to it:
started/ready flags, or a kill reason the worker acts on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nanokube.agent.container import ContainerRun
from nanokube.agent.probes import Prober, Target
from nanokube.api.meta import Obj

log = logging.getLogger(__name__)


def probe_target(pod_ip: str, c: ContainerRun) -> Target:
    """Where probes and hooks of the container's current process go: the pod IP, its named ports, exec inside."""
    ports = {p["name"]: int(p["containerPort"]) for p in c.spec.get("ports") or [] if p.get("name")}
    proc = c.proc

    async def run_exec(argv: list[str], timeout: float) -> tuple[int, str]:
        if proc is None:
            return 126, "container is not running"
        return await proc.run_inside(argv, timeout)

    return Target(pod_ip, ports, run_exec)


class ContainerProbing:
    """Starts the probers of one pod's containers; `wake` asks the pod's worker to look again."""

    def __init__(self, pod_label: str, pod_ip: Callable[[], str], wake: Callable[[], None],
                 unhealthy: Callable[[ContainerRun, str, str], None] | None = None) -> None:
        self.pod_label = pod_label
        self.pod_ip = pod_ip
        self.wake = wake
        self.unhealthy = unhealthy  # (container, probe kind, message): the Unhealthy event

    def start(self, c: ContainerRun) -> None:
        startup = c.spec.get("startupProbe")
        if startup:
            self._add(c, "startup", startup)
        else:
            self._started(c)

    def _started(self, c: ContainerRun) -> None:
        c.started = True
        if c.spec.get("readinessProbe"):
            self._add(c, "readiness", c.spec["readinessProbe"])
        else:
            c.ready = True
        if c.spec.get("livenessProbe"):
            self._add(c, "liveness", c.spec["livenessProbe"])
        self.wake()

    def _add(self, c: ContainerRun, kind: str, probe: Obj) -> None:
        proc = c.proc

        def changed(kind: str, ok: bool, message: str) -> None:
            if c.proc is not proc or not c.running:
                return
            if not ok and self.unhealthy is not None:
                self.unhealthy(c, kind, message)
            if kind == "startup":
                if ok:
                    self._started(c)
                else:
                    c.kill_reason = "StartupProbeFailed"
                    log.info("pod %s container %s: startup probe failed: %s", self.pod_label, c.name, message)
            elif kind == "readiness":
                c.ready = ok
            elif kind == "liveness" and not ok:
                log.info("pod %s container %s: liveness probe failed: %s", self.pod_label, c.name, message)
                c.kill_reason = "LivenessProbeFailed"
            self.wake()

        prober = Prober(kind, probe, probe_target(self.pod_ip(), c), changed)
        c.probers.append(asyncio.ensure_future(prober.run()))
