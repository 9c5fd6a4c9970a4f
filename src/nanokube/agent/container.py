"""One container of a pod as its worker tracks it: spec, process, state, restarts, probers, and how long it
is given to stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nanokube.agent import process
from nanokube.agent.backoff import Backoff
from nanokube.agent.logs import ContainerLog
from nanokube.api.meta import Obj, rfc3339

MIN_GRACE = 2.0


@dataclass
class ContainerRun:
    spec: Obj
    init: bool
    log: ContainerLog
    backoff: Backoff
    runs: int = 0  # processes started so far (restartCount = runs - 1 once one ran)
    restart_count: int = 0
    proc: process.ContainerProcess | None = None
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    last_exit: process.ExitStatus | None = None
    finished_mono: float = 0.0
    started: bool = False
    ready: bool = False
    succeeded: bool = False  # init container finished with 0
    probers: list[asyncio.Task] = field(default_factory=list)
    kill_reason: str | None = None
    killing: bool = False
    image_id: str = ""
    container_id: str = ""
    pull_backoff: float = 0.0  # seconds until the next look in the catalogue (ImagePullBackOff), doubling
    pull_retry_at: float = 0.0  # monotonic
    ephemeral: bool = False  # added by `kubectl debug` (pods/ephemeralcontainers): started once, never restarted

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    @property
    def sidecar(self) -> bool:
        return self.init and self.spec.get("restartPolicy") == "Always"

    @property
    def init_complete(self) -> bool:
        """An init container that no longer holds the pod back: succeeded, or a sidecar that started."""
        return self.succeeded or (self.sidecar and self.running and self.started)

    def stop_probers(self) -> None:
        for task in self.probers:
            task.cancel()
        self.probers.clear()

    def terminated_state(self) -> Obj:
        exit_status = self.last_exit
        if exit_status is None:
            return {}
        reason = "Completed" if exit_status.code == 0 else ("OOMKilled" if exit_status.oom_killed else "Error")
        return {"exitCode": exit_status.code, "reason": reason, "startedAt": rfc3339(exit_status.started_at),
                "finishedAt": rfc3339(exit_status.finished_at), "containerID": self.container_id}


def grace_period(pod: Obj, c: ContainerRun | None = None) -> float:
    """Seconds a stopping container gets: the deletion's grace, a failed probe's own, else the pod's."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None and c is not None and c.kill_reason in ("LivenessProbeFailed", "StartupProbeFailed"):
        probe = c.spec.get("livenessProbe" if c.kill_reason == "LivenessProbeFailed" else "startupProbe") or {}
        grace = probe.get("terminationGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(float(grace), MIN_GRACE)
